"""What a layer reports about its output size, as records (their text is written in one place: `text`)."""
from typing import TYPE_CHECKING, NamedTuple, Sequence

if TYPE_CHECKING:
    from fractions import Fraction  # exact arithmetic, loaded only when a working is explained


class InexactSize(NamedTuple):
    """A sliding window whose output size (N + P - span)/S + 1 is not whole, along one axis.

    `dropped` lists the input indices (0-based, along this axis) that no window reads but one
    more window would: pixels the rounding throws away. Empty when the rounding drops only
    padding, or pixels the stride skips anyway (a warning then would only teach to ignore it).
    """

    axis: str
    size: int
    padding: int  # before + after
    span: int
    stride: int
    ceil_mode: bool
    out: int
    dropped: tuple[int, ...] = ()

    @property
    def exact(self) -> "Fraction":
        from fractions import Fraction  # exact arithmetic, loaded only when a field or a working asks
        return Fraction(self.size + self.padding - self.span, self.stride) + 1

    @property
    def kind(self) -> str:
        return "drops_input" if self.dropped else "padding_unused"


class SizeNote(NamedTuple):
    """An inexact output size at one layer, along one axis or both (`axes` "H", "W" or "H and W")."""

    path: str
    layer_type: str
    axes: str
    detail: InexactSize

    @property
    def kind(self) -> str:
        return self.detail.kind

    @property
    def drops_input(self) -> bool:
        """A warning: the rounding throws input pixels away. Otherwise a note: only padding is unused."""
        return self.kind == "drops_input"

    @property
    def message(self) -> str:
        return text(self)

    def record(self) -> dict:
        """The note for JSON: its kind, where, the numbers and the text."""
        d = self.detail
        return {"path": self.path, "kind": self.kind, "layer_type": self.layer_type, "axes": self.axes,
                "size": d.size, "padding_total": d.padding, "span": d.span, "stride": d.stride,
                "rounding": "ceil" if d.ceil_mode else "floor", "output": d.out, "dropped": list(d.dropped),
                "message": self.message}


def notes_for(path: str, layer_type: str, records: Sequence[InexactSize]) -> list[SizeNote]:
    """One note per axis; equal records on H and W (a square input) read as one 'H and W' note."""
    if len(records) == 2 and records[0]._replace(axis="") == records[1]._replace(axis=""):
        return [SizeNote(path, layer_type, "H and W", records[0])]
    return [SizeNote(path, layer_type, r.axis, r) for r in records]


def text(note: SizeNote) -> str:
    d = note.detail
    line = (f"{note.layer_type}: {note.axes}: ({d.size} + {d.padding} - {d.span})/{d.stride} + 1 = "
            f"{float(d.exact):g} is not whole; {'ceil' if d.ceil_mode else 'floor'} gives {d.out}")
    return line + _dropped(note)


_LINES = {"H": ("row", "rows"), "W": ("column", "columns"), "H and W": ("row and column", "rows and columns")}


def _dropped(note: SizeNote) -> str:
    d = note.detail
    if not d.dropped:
        return "; the rounding drops no input pixel"
    one, many = _LINES[note.axes]
    n = len(d.dropped)
    if d.dropped == tuple(range(d.size - n, d.size)):
        where = f"the last {one}" if n == 1 else f"the last {n} {many}"
    else:
        where = f"{many if n > 1 else one} {', '.join(map(str, d.dropped))}"
    plural = n > 1 or note.axes == "H and W"
    return f": {where} of its input {'are' if plural else 'is'} never read"
