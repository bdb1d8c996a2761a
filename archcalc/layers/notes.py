"""What a layer reports about its output size, as records (their text is written in one place: `text`)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction


@dataclass(frozen=True)
class InexactSize:
    """A sliding window whose output size (N + P - span)/S + 1 is not whole, along one axis.

    `dropped` lists the input indices (0-based, along this axis) that no window reads but one
    more window would: pixels the rounding throws away. Empty when only padding goes unused.
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
    def exact(self) -> Fraction:
        return Fraction(self.size + self.padding - self.span, self.stride) + 1

    @property
    def kind(self) -> str:
        return "drops_input" if self.dropped else "padding_unused"


@dataclass(frozen=True)
class SizeNote:
    """An inexact output size at one layer, along one axis or both (`axes` "H", "W" or "H and W")."""

    path: str
    layer_type: str
    axes: str
    detail: InexactSize

    @property
    def kind(self) -> str:
        return self.detail.kind

    @property
    def message(self) -> str:
        return text(self)


def notes_for(path: str, layer_type: str, records: list[InexactSize]) -> list[SizeNote]:
    """One note per axis; equal records on H and W (a square input) read as one 'H and W' note."""
    if len(records) == 2 and replace(records[0], axis="") == replace(records[1], axis=""):
        return [SizeNote(path, layer_type, "H and W", records[0])]
    return [SizeNote(path, layer_type, r.axis, r) for r in records]


def text(note: SizeNote) -> str:
    d = note.detail
    line = (f"{note.layer_type}: {note.axes}: ({d.size} + {d.padding} - {d.span})/{d.stride} + 1 = "
            f"{float(d.exact):g} is not whole; {'ceil' if d.ceil_mode else 'floor'} gives {d.out}")
    return line + _dropped(note)


def _dropped(note: SizeNote) -> str:
    return ""
