"""The values an import reads off a torch model, computed without its data: shapes, not numbers.

A traced graph runs in the first of three worlds that can run it:
- **meta**: the model's parameters and buffers swapped for meta tensors of their shapes and a meta input, so
  that every op computes its output's shape and nothing else (no memory, no arithmetic: the cost of an
  import does not grow with the input or the batch);
- **fake**: torch's FakeTensorMode (tensors the forward makes on the CPU, a `torch.tensor` constant, mix
  with the fake input), for code the meta device refuses;
- **real**: one forward on random data (code that reads tensor values, `.item()`), within the memory
  budget verify has.

`trace_concrete` traces a model that torch.fx's symbolic tracing cannot (Python control flow on shapes or
flags, an optional argument that defaults to None): it runs the model once in a world and records, with a
TorchFunctionMode and module hooks, the same graph symbolic tracing would give (leaf modules as
`call_module`, functions, methods and operators as calls, each node with its module path in
`nn_module_stack`), for the concrete shapes of this input.
"""
from __future__ import annotations

import contextlib
import logging
import math
import operator
from typing import Any, Callable, Iterator, NamedTuple

from .. import fmt
from ..deps import require_torch


class World(NamedTuple):
    name: str  # meta, fake or real
    enter: Callable[[Any], contextlib.AbstractContextManager]  # module -> the context it computes in here
    input: Callable[[tuple[int, ...]], Any]  # shape, batch included -> an input tensor (made inside `enter`)


def worlds() -> Iterator[World]:
    """The worlds to try, cheapest first (the fake one is made only when asked: it imports torch._dynamo)."""
    torch = require_torch()

    @contextlib.contextmanager
    def on_meta(module):
        from torch.nn.utils.stateless import _reparametrize_module

        tensors = {**dict(module.named_parameters(remove_duplicate=False)),
                   **dict(module.named_buffers(remove_duplicate=False))}
        state = {name: torch.empty_like(t, device="meta") for name, t in tensors.items()}
        with _reparametrize_module(module, state, tie_weights=True, strict=False), torch.no_grad(), _same_shape(torch):
            yield

    yield World("meta", on_meta, lambda shape: torch.empty(shape, device="meta"))
    from torch._subclasses.fake_tensor import FakeTensorMode

    mode = FakeTensorMode(allow_non_fake_inputs=True)

    @contextlib.contextmanager
    def on_fake(module):
        log = logging.getLogger("torch._subclasses.fake_tensor")  # which logs an op it cannot run on stderr
        quiet, log.disabled = log.disabled, True
        try:
            with mode, torch.no_grad():
                yield
        finally:
            log.disabled = quiet

    yield World("fake", on_fake, lambda shape: torch.empty(shape))

    @contextlib.contextmanager
    def on_real(module):
        with torch.no_grad():
            yield

    yield World("real", on_real, lambda shape: torch.randn(shape))


def _same_shape(torch):
    """Batch norm on meta tensors at its input's shape at once: its meta kernel is a Python decomposition into
    a dozen element-wise ops (15 ms a call), most of the time of a ResNet-50's trace otherwise."""
    from torch.overrides import TorchFunctionMode

    functions = {torch.batch_norm, torch.nn.functional.batch_norm}

    class SameShape(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func in functions and args and args[0].is_meta:
                return torch.empty_like(args[0])
            return func(*args, **(kwargs or {}))

    return SameShape()


def concrete(value) -> bool:
    """Whether a tensor holds numbers that can be read (not a meta or fake tensor)."""
    return not value.is_meta and type(value).__name__ != "FakeTensor"


def real_run_allowed(run, input_shape: tuple[int, ...]) -> None:
    """The values a real pass keeps within the budget verify has (measured on fake tensors before anything is
    allocated; the input alone when the model cannot run on fake tensors), or a SpecError."""
    from ..torch.memory import check_allocation, fake_values_bytes

    needed = fake_values_bytes(run, input_shape)
    check_allocation(math.prod(input_shape) * 4 if needed is None else needed, "import",
                     f"{'the input' if needed is None else 'activations'} of one image of {fmt.shape(input_shape[1:])}")


# ---- the concrete trace --------------------------------------------------------------------------

def _call_of(torch, func, args: tuple) -> tuple[str, Any, tuple]:
    """How torch.fx writes a call that a TorchFunctionMode sees: (op, target, args)."""
    name = getattr(func, "__name__", "")
    if name.startswith("__r") and name.endswith("__") and hasattr(operator, name[3:-2]) and len(args) == 2:
        return "call_function", getattr(operator, name[3:-2]), (args[1], args[0])  # 2 * x: x.__rmul__(2)
    if name.startswith("__") and name.endswith("__") and hasattr(operator, name[2:-2]):
        return "call_function", getattr(operator, name[2:-2]), args  # x[:, 0], x @ w
    if getattr(torch.Tensor, name, None) is func:
        if name.endswith("_") and not name.endswith("__") and hasattr(operator, f"i{name[:-1]}"):
            return "call_function", getattr(operator, name[:-1]), args  # x += y (add_), which fx reads as x + y
        return "call_method", name, args
    return "call_function", func, args


class _Recorder:
    """The graph of one run: nodes by the tensors they made, module scopes from the hooks."""

    def __init__(self, torch, model, is_leaf: Callable[[Any, str], bool]):
        self.torch, self.model, self.is_leaf = torch, model, is_leaf
        self.graph = torch.fx.Graph()
        self.values: dict = {}
        self.nodes: dict[int, Any] = {}  # id(tensor) -> the node that made it
        self.pending: dict[int, tuple[Any, int]] = {}  # id(tensor) -> (node of the tuple it is in, index)
        self.kept: list = []  # every tensor seen, so that no id is reused while tracing
        self.names = {id(m): name for name, m in model.named_modules(remove_duplicate=False)}
        self.attrs = {id(t): name for name, t in (*model.named_parameters(remove_duplicate=False),
                                                  *model.named_buffers(remove_duplicate=False))}
        self.constants: dict[str, Any] = {}
        self.scopes: list[tuple[str, str]] = []  # the modules the current call runs in: (path, class)
        self.frames: list[str] = []  # per module call: scope, leaf or inside (a leaf's own work)

    def node_of(self, t):
        key = id(t)
        if key in self.nodes:
            return self.nodes[key]
        if key in self.pending:
            whole, index = self.pending.pop(key)
            n = self.made(self.graph.call_function(operator.getitem, (whole, index)), t)
            n.meta["nn_module_stack"] = whole.meta["nn_module_stack"]  # taken where the tuple was made, as fx does
            return n
        if key in self.attrs:
            n = self.graph.get_attr(self.attrs[key])
        else:
            name = f"_constant{len(self.constants)}"
            self.constants[name] = t
            n = self.graph.get_attr(name)
        return self.made(n, t)

    def made(self, n, value):
        n.meta["nn_module_stack"] = {path: (path, kind) for path, kind in self.scopes}
        self.values[n] = value
        if isinstance(value, self.torch.Tensor):
            self.nodes[id(value)] = n
            self.kept.append(value)
        elif isinstance(value, (tuple, list)):
            for i, t in enumerate(value):
                if isinstance(t, self.torch.Tensor):
                    self.nodes.pop(id(t), None)
                    self.pending[id(t)] = (n, i)
                    self.kept.append(t)
        return n

    def args(self, a):
        if isinstance(a, self.torch.Tensor):
            return self.node_of(a)
        if isinstance(a, (list, tuple)):
            return type(a)(self.args(b) for b in a) if not hasattr(a, "_fields") else a
        if isinstance(a, dict):
            return {k: self.args(v) for k, v in a.items()}
        return a

    def call(self, op: str, target, args: tuple, kwargs: dict, out) -> None:
        if self.frames and self.frames[-1] != "scope":
            return  # inside a leaf module: the module is the node
        n = self.graph.create_node(op, target, self.args(tuple(args)), self.args(dict(kwargs)))
        self.made(n, out)

    def returns_tensor(self, out) -> bool:
        T = self.torch.Tensor
        return isinstance(out, T) or (isinstance(out, (tuple, list)) and any(isinstance(o, T) for o in out))

    def before(self, module, args, kwargs):
        name = self.names.get(id(module))
        if self.frames and self.frames[-1] != "scope":
            self.frames.append("inside")
        elif name is not None and name and self.is_leaf(module, name):
            self.frames.append("leaf")
        else:
            self.frames.append("scope")
            if name:
                self.scopes.append((name, type(module).__name__))

    def after(self, module, args, kwargs, out):
        frame = self.frames.pop()
        name = self.names.get(id(module))
        if frame == "scope" and name:
            self.scopes.pop()
        if frame == "leaf" and self.returns_tensor(out):
            self.call("call_module", name, args, kwargs, out)

    def mode(self):
        recorder, torch = self, self.torch
        from torch.overrides import TorchFunctionMode

        class Calls(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                if recorder.returns_tensor(out):
                    recorder.call(*_call_of(torch, func, tuple(args)), kwargs or {}, out)
                return out

        return Calls()


def trace_concrete(model, world: World, input_shape: tuple[int, ...], is_leaf: Callable[[Any, str], bool]):
    """The torch.fx GraphModule of one run of `model` in `world` on an input of `input_shape` (batch included),
    the value of each of its nodes, and that input."""
    torch = require_torch()
    modules = {id(m): m for m in model.modules()}.values()
    with world.enter(model):
        recorder = _Recorder(torch, model, is_leaf)
        x = world.input(input_shape)
        recorder.made(recorder.graph.placeholder("x"), x)
        handles = [h for m in modules for h in (m.register_forward_pre_hook(recorder.before, with_kwargs=True),
                                               m.register_forward_hook(recorder.after, with_kwargs=True))]
        try:
            with recorder.mode():
                out = model(x)
            recorder.graph.output(recorder.args(out))
        finally:
            for handle in handles:
                handle.remove()
    root: dict[str, Any] = dict(recorder.constants)  # the model's own tensors, now that the world is left
    for n in recorder.graph.nodes:
        if n.op == "call_module":
            root[n.target] = model.get_submodule(n.target)
        elif n.op == "get_attr" and n.target not in root:
            *outer, last = n.target.split(".")
            root[n.target] = getattr(model.get_submodule(".".join(outer)), last)
    return torch.fx.GraphModule(root, recorder.graph), recorder.values, x
