"""The ONNX front end: the `onnx` package only (no torch), shapes from ONNX shape inference.

Weights are the initializers (and Constant nodes); values computed from the input's shape
(Shape, Gather, Concat feeding a Reshape) are metadata, not ops. Node names give the groups:
torch's exporter writes `/layer1/layer1.0/conv1/Conv` for the module `layer1.0.conv1`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import fmt
from ..core.reading import read_bytes
from ..deps import require
from ..errors import SpecError
from ..layers import MERGES, Shape
from .graph import INPUT, Graph, Node, Op, fold_permutes, to_spec
from .onnx_sequences import outer_inputs, rewrite

ONNX_BYTES = 2**31  # protobuf's limit for one message: an ONNX file without external data
METADATA = {"Shape", "Size"}
RESHAPES = {"Reshape", "Flatten", "Squeeze", "Unsqueeze"}  # a no-op when the per-image shape stays
SETTINGS = {"Clip", "Pad", "Resize", "Upsample", "Reshape", "ReduceMean", "Squeeze", "Unsqueeze", "Dropout"}
""" ops whose constant inputs are settings (bounds, pads, scales, shapes), not weights"""
KEEPS_SHAPE = {"GroupNormalization", "LayerNormalization", "LRN", "Gelu"}
""" ops whose output has their input's shape, which ONNX's shape inference leaves open for some (functions)"""


def _read(path: Path, dims: tuple[int, ...] | None):
    onnx = require("onnx", purpose="reading an ONNX file")
    data = read_bytes(path, ONNX_BYTES, "ONNX models")
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise SpecError(f"not an ONNX model ({type(exc).__name__})", file=str(path)) from None
    if not model.graph.node or not model.graph.output:
        raise SpecError("not an ONNX model (no graph nodes or outputs)", file=str(path))
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise SpecError(f"the graph has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); archcalc needs one",
                        file=str(path))
    if dims is not None:
        shape = inputs[0].type.tensor_type.shape
        if len(shape.dim) != len(dims) + 1:
            raise SpecError(f"--input {fmt.shape(dims)}: the graph's input has rank {len(shape.dim)}", file=str(path))
        for d, size in zip(shape.dim[1:], dims):
            d.ClearField("dim_param")
            d.dim_value = size
    model, computed = _fold_constants(onnx, model, inputs[0].name)
    try:
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:
        raise SpecError(f"ONNX shape inference fails: {' '.join(str(exc).split())[:300]}", file=str(path)) from None
    return onnx, model, inputs[0].name, computed


def _fold_constants(onnx, model, input_name: str):
    """The model with every small value computed from constants only (the pads of an exported ZeroPad2d,
    a Constant node's value) stored as an initializer, so that shape inference sees it; and their names."""
    from onnx.reference import ReferenceEvaluator

    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    data, kept, folded = {input_name}, [], []
    for node in model.graph.node:
        if any(i in data for i in node.input):
            if node.op_type not in METADATA:
                data.update(node.output)
            kept.append(node)
            continue
        feeds = {i: values.get(i) for i in node.input if i}
        try:
            if any(v is None for v in feeds.values()) or sum(v.size for v in feeds.values()) > 4096:
                raise ValueError("not a small constant")
            graph = helper.make_graph(
                [node], "fold", [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                                 for k, v in feeds.items()],
                [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in node.output])
            results = ReferenceEvaluator(helper.make_model(graph, opset_imports=model.opset_import)).run(None, feeds)
        except Exception:  # not foldable: the node stays, its value unknown
            kept.append(node)
            continue
        for name, value in zip(node.output, results):
            values[name] = value
            folded.append(numpy_helper.from_array(value, name))
    if not folded:
        return model, frozenset()
    model = onnx.ModelProto.FromString(model.SerializeToString())
    del model.graph.node[:]
    model.graph.node.extend(kept)
    model.graph.initializer.extend(folded)
    return model, frozenset(t.name for t in folded)


def _per_image(value_info) -> Shape | None:
    dims = value_info.type.tensor_type.shape.dim
    if not dims or any(not d.HasField("dim_value") for d in dims[1:]):
        return None
    return tuple(int(d.dim_value) for d in dims[1:])


def _scope(name: str) -> tuple[tuple[str, ...], str]:
    """(module path components, the node's own name) of an ONNX node name.

    torch's exporter names each scope from the module's last non-numeric name on: the module
    `layer1.0.residual.0.conv1` gives /layer1/layer1.0/residual/residual.0/conv1/Conv.
    """
    parts = [p for p in name.split("/") if p]
    if not parts:
        return (), name
    comps: list[str] = []
    for part in parts[:-1]:
        atoms = part.split(".")
        head, numbers = atoms[0], atoms[1:]
        if numbers and all(a.isdigit() for a in numbers) and head in comps:
            after = len(comps) - 1 - comps[::-1].index(head)
            comps.extend(numbers[len(comps) - after - 1:])
        else:
            comps.extend(atoms)
    return tuple(comps), parts[-1]


class _Reader:
    def __init__(self, onnx, model, input_name: str, file: str, computed: frozenset[str] = frozenset()):
        self.onnx, self.file, self.computed = onnx, file, computed
        self.graph = model.graph
        numpy_helper = onnx.numpy_helper
        self.constants: dict[str, Any] = {i.name: numpy_helper.to_array(i) for i in self.graph.initializer}
        self.shapes = {v.name: _per_image(v) for v in (*self.graph.value_info, *self.graph.output, *self.graph.input)}
        self.ids = {input_name: INPUT}  # data tensor -> graph node id
        self.nodes: list[Node] = []
        self.notes: list[str] = []
        self.used: set[str] = set()  # initializers read by the layers
        self.input_name = input_name

    def attrs(self, node) -> dict:
        out = {}
        for a in node.attribute:
            value = self.onnx.helper.get_attribute_value(a)
            if isinstance(value, (list, tuple)):
                value = [v.decode() if isinstance(v, bytes) else v for v in value]
            out[a.name] = value.decode() if isinstance(value, bytes) else value
        return out

    def read(self) -> Graph:
        self.ops = rewrite(self.onnx, list(self.graph.node), self.constants, self.shapes, self.computed)
        consumers: dict[str, list] = {}
        for node in self.ops:
            for i in (*node.input, *outer_inputs(node)):
                consumers.setdefault(i, []).append(node)
        self.consumers = consumers
        for index, node in enumerate(self.ops):
            self.node(node, index)
        if len(self.graph.output) != 1 or self.graph.output[0].name not in self.ids:
            raise SpecError(f"the graph has {len(self.graph.output)} outputs; archcalc needs one computed from the input",
                            file=self.file)
        if not any(n.op and n.op.target == "BatchNormalization" for n in self.nodes) and any(
                n.op and n.op.target == "Conv" for n in self.nodes):
            self.notes.append("no BatchNormalization in the graph: an exporter in eval mode folds batch norm into "
                              "the convolution before it, which then has a bias")
        if not any(n.op_type == "Dropout" for n in self.graph.node):
            self.notes.append("no Dropout in the graph: exporters leave dropout out at inference")
        graph = Graph(self.nodes, self.shapes[self.input_name] or (), self.ids[self.graph.output[0].name], self.notes)
        fold_permutes(graph)  # before naming: a layer norm between two transposes is its module's only op
        counts: dict[tuple[str, ...], int] = {}
        for n in self.nodes:
            for k in range(1, len(n.scope) + 1):
                counts[n.scope[:k]] = counts.get(n.scope[:k], 0) + 1
        for n in self.nodes:
            if n.scope and counts[n.scope] == 1:
                n.path = n.scope  # the module's only op (a conv, a bn): named by the module
        return graph

    def node(self, node, index: int) -> None:
        data = [i for i in (*node.input, *outer_inputs(node)) if i in self.ids]
        name = node.name or f"{node.op_type}_{index}"
        if not data or node.op_type in METADATA:
            if node.op_type == "Constant":
                self.constants[node.output[0]] = self.onnx.numpy_helper.to_array(node.attribute[0].t) \
                    if node.attribute and node.attribute[0].type == self.onnx.AttributeProto.TENSOR else None
            elif node.op_type == "Identity" and node.input[0] in self.constants:
                self.constants[node.output[0]] = self.constants[node.input[0]]
            return
        scope, own = _scope(name)
        where = f"ONNX node {name} ({node.op_type})"
        out = node.output[0]
        shape = self.shapes.get(out)
        input_shape = self.shapes.get(data[0]) if data[0] != self.input_name else self.shapes[self.input_name]
        if shape is None and node.op_type in KEEPS_SHAPE:
            shape = self.shapes[out] = input_shape
        ids = tuple(self.ids[i] for i in data)
        path = (*scope, own)
        attrs = self.attrs(node)
        kind = next((merge.name for merge in MERGES.values() if node.op_type in merge.onnx_ops), None)
        if kind and len(data) >= 2:
            if kind == "concat" and attrs.get("axis") % (len(input_shape or ()) + 1) != 1:
                raise SpecError(f"{where}: Concat along axis {attrs.get('axis')}; archcalc joins along the channels (axis 1)")
            if kind == "mul" and self._silu(node, data):
                return
            self.add(out, Node(name, "merge", ids, scope, path, where, shape, merge=kind))
            return
        if len(data) != 1:
            raise SpecError(f"{where}: {len(data)} tensor inputs; archcalc layers take one (merges: Add, Concat, Mul)")
        if node.op_type == "Identity" or (node.op_type in RESHAPES and shape is not None and shape == input_shape):
            self.ids[out] = ids[0]
            return
        constants = [i for i in node.input if i and i not in self.ids]
        arrays = [self.constants.get(i) for i in constants]
        if node.op_type == "Transpose":
            perm = tuple(attrs.get("perm", range(len(input_shape or ()) + 1)[::-1]))
            self.add(out, Node(name, "permute", ids, scope, path, where, shape, perm=perm))
            return
        if node.op_type == "Pad":
            pad = self.pad(node, ids, scope, path, where, shape, attrs, arrays)
            if shape is None and input_shape is not None:  # pads computed in the graph: shape inference left it open
                top, bottom, left, right = pad.pad
                pad.shape = self.shapes[out] = (input_shape[0], input_shape[1] + top + bottom, input_shape[2] + left + right)
            self.add(out, pad)
            return
        if input_shape is None:
            raise SpecError(f"{where}: the shape of its input is unknown (give --input CxHxW)")
        weights = tuple(tuple(int(d) for d in a.shape) for a in arrays if a is not None)
        values = tuple(a.flatten().tolist() if a is not None and a.size <= 64 else None for a in arrays)
        target = node.op_type
        if target == "MatMul":
            attrs = {**attrs, "transB": 0}
        op = Op("onnx", target, attrs, input_shape, shape, weights, values)
        if target in ("MatMul", "Gemm") and self._bias_after(node):
            add = self.consumers[out][0]
            bias = [i for i in add.input if i != out][0]
            op = Op("onnx", target, attrs, input_shape, self.shapes.get(add.output[0]), (*weights, self.constants[bias].shape))
            self.used.add(bias)
            out = add.output[0]
        if node.op_type not in SETTINGS:
            self.used.update(constants)
        self.add(out, Node(name, "layer", ids, scope, path, where, shape, op=op))

    def add(self, out: str, node: Node) -> None:
        self.nodes.append(node)
        self.ids[out] = node.id

    def _silu(self, node, data: list[str]) -> bool:
        """x * sigmoid(x), torch's export of SiLU, is one `Swish` op."""
        producers = {n.output[0]: n for n in self.ops}
        for x, s in (data, data[::-1]):
            sig = producers.get(s)
            if sig is not None and sig.op_type == "Sigmoid" and sig.input[0] == x and len(self.consumers[s]) == 1:
                self.nodes = [n for n in self.nodes if n.id != self.ids[s]]
                name = node.name or sig.name
                scope, own = _scope(name)
                shape = self.shapes.get(node.output[0])
                op = Op("onnx", "Swish", {}, shape or (), shape)
                self.add(node.output[0], Node(name, "layer", (self.ids[x],), scope, (*scope, own),
                                              f"ONNX nodes {sig.name} and {node.name} (Sigmoid, Mul)", shape, op=op))
                return True
        return False

    def _bias_after(self, node) -> bool:
        """A MatMul (or a Gemm without C) followed by an Add of a constant vector: a linear layer's bias."""
        if node.op_type == "Gemm" and len(node.input) > 2:
            return False
        users = self.consumers.get(node.output[0], [])
        if len(users) != 1 or users[0].op_type != "Add":
            return False
        others = [i for i in users[0].input if i != node.output[0]]
        return len(others) == 1 and others[0] in self.constants and self.constants[others[0]] is not None \
            and self.constants[others[0]].ndim == 1

    def pad(self, node, ids, scope, path, where, shape, attrs, arrays) -> Node:
        pads = attrs.get("pads", arrays[0].tolist() if arrays and arrays[0] is not None else None)
        value = attrs.get("value", arrays[1].item() if len(arrays) > 1 and arrays[1] is not None else 0.0)
        if attrs.get("mode", "constant") != "constant" or value != 0 or pads is None or len(pads) != 8 \
                or any(pads[i] for i in (0, 1, 4, 5)):
            raise SpecError(f"{where}: only a zero pad of H and W is folded into the next layer (pads {pads})")
        return Node(node.name, "pad", ids, scope, path, where, shape, pad=(pads[2], pads[6], pads[3], pads[7]))


def import_onnx(path: Path, dims: tuple[int, ...] | None = None) -> dict:
    """The spec document of the ONNX model at `path`; `expect` records the parameters it holds."""
    onnx, model, input_name, computed = _read(path, dims)
    reader = _Reader(onnx, model, input_name, str(path), computed)
    graph = reader.read()
    if len(graph.input_shape) != 3 or None in graph.input_shape:
        raise SpecError(f"the input's size per image is {fmt.shape(graph.input_shape) or 'unknown'}; "
                        "give --input CxHxW", file=str(path))
    params = sum(int(reader.constants[i].size) for i in reader.used if reader.constants.get(i) is not None)
    running = sum(int(reader.constants[i].size) for n in model.graph.node if n.op_type == "BatchNormalization"
                  for i in n.input[3:5] if reader.constants.get(i) is not None)
    source = f"imported from {path.name} at {fmt.shape(graph.input_shape)}"
    expect = [{"what": "params", "value": params - running, "source": source},
              {"what": "non_trainable", "value": running, "source": source}]
    name = path.stem
    try:
        return to_spec(graph, name, name, path.name, expect)
    except SpecError as exc:
        raise exc.located(file=str(path)) from None
