"""What a command's TARGET names, read one way by every command that takes one (table, check, report, html,
diagram, verify, bench, fit): a zoo name, a spec file, FILE:VARIANT, a torch callable imported on the fly
(`torch:MODULE:CALLABLE`, with --kwargs) or an ONNX file."""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import fmt
from .errors import SpecError, UsageError, one_line

if TYPE_CHECKING:
    from .core.spec import Network

# The end of each such command's --help (click keeps the lines of a paragraph that starts with \b).
HELP = """\b
TARGET, in every command that takes one:
  NAME                    a network of the zoo (`archcalc list`)
  FILE.json               a spec file
  FILE.json:VARIANT       one network of a family file
  torch:MODULE:CALLABLE   a torch model, imported at --input CxHxW; also
                          torch:FILE.py:CALLABLE; --kwargs JSON: the callable's
                          keyword arguments
  FILE.onnx               an ONNX model, imported at its own input (or --input)"""

KWARGS_HELP = "Keyword arguments of a torch: target's callable, a JSON object."


class Target:
    """A target read: its network, the --input still to apply to it (None where an import traced the model at
    the input already), and the notes on stderr that go with it."""

    __slots__ = ("network", "dims", "notes")

    def __init__(self, network: Network, dims: tuple[int, ...] | None, notes: list[str]):
        self.network, self.dims, self.notes = network, dims, notes


TORCH_PREFIX = "torch:"


def is_imported(target: str) -> bool:
    """Whether `target` is a model imported on the fly (torch:..., FILE.onnx) rather than a spec."""
    return is_torch(target) or target.lower().endswith(".onnx")


def is_torch(target: str) -> bool:
    """Whether `target` is a torch callable, `torch:MODULE:CALLABLE` (the one kind --kwargs goes with)."""
    return target.startswith(TORCH_PREFIX)


def resolve(target: str, dims: tuple[int, ...] | None, kwargs: dict[str, Any] | None = None) -> Target:
    """The network `target` names, as every command reads it (`kwargs`: a torch callable's, else unused); bad
    targets raise one SpecError or UsageError line (with "did you mean" for an unknown zoo name, a missing
    file, a callable the module lacks)."""
    if is_imported(target):
        from .importers.commands import load_imported

        kind, source = ("torch", target[len(TORCH_PREFIX):]) if is_torch(target) else ("onnx", target)
        network, notes = load_imported(kind, source, target, dims, kwargs if kind == "torch" else None)
        return Target(network, None, notes)  # an ONNX file's notes: what the import found (folded batch norms, ...)
    from .core.spec import load

    network = load(_not_python(target))
    network.with_input(dims)  # refused here (a batch axis, channels last) before any note on it
    return Target(network, dims, input_notes(network, dims))


def resolve_each(target: str, dims: tuple[int, ...] | None, kwargs: dict[str, Any] | None = None) -> list[Target]:
    """As `resolve`, except that a family file named without a variant gives each of its variants (check)."""
    if is_imported(target):
        return [resolve(target, dims, kwargs)]
    from .core.spec import load_every

    return [resolve(target, dims)] if dims is not None else [Target(n, None, []) for n in load_every(_not_python(target))]


def refuse_stray_kwargs(kwargs_text: str | None, targets: Iterable[str | None], elsewhere: bool = False) -> None:
    """--kwargs without a torch: target to take them (nor another callable, `elsewhere`: verify's --model)."""
    if kwargs_text and not elsewhere and not any(t and is_torch(t) for t in targets):
        raise UsageError("--kwargs gives the callable of a torch:MODULE:CALLABLE target its keyword arguments: "
                         "no target here is one")


def _not_python(target: str) -> str:
    """`target`, unless it names a Python file, which is read as a model only through `torch:`."""
    location, _, attribute = target.rpartition(":")
    if target.endswith(".py") or (location.endswith(".py") and attribute):
        meant = f"torch:{target}" if attribute and location else f"torch:{target}:CALLABLE"
        raise SpecError(f"{one_line(target[:200])}: a Python file is a model through torch: (did you mean {meant!r}?)")
    return target


def input_notes(network: Network, dims: tuple[int, ...] | None) -> list[str]:
    """A note when --input gives the network another number of channels than its spec's."""
    from .core.spec import looks_channels_last

    spec = network.input
    if dims is None or len(dims) != 3 or len(spec) != 3 or dims[0] == spec[0] or looks_channels_last(spec):
        return []
    return [one_line(f"note: --input {fmt.shape(dims)} gives {network.name} {dims[0]} input channel{'' if dims[0] == 1 else 's'} where its spec "
                     f"has {spec[0]} ({fmt.shape(spec)}): its first layers are counted for {dims[0]}")]
