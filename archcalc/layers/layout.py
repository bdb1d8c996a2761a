"""Tensor layouts: what the axes of a shape mean, declared once.

A shape never holds the batch. Its layout says what its axes are:

| layout | axes | a plain tuple of this rank reads as it |
| --- | --- | --- |
| `image` | (C, H, W), channels first | rank 3 |
| `grid` | (H, W, C), channels last | no: made by a permute or a reshape |
| `tokens` | (L, D): L tokens of D features | rank 2 |
| `flat` | (F,) | rank 1 |
| `tensor` | any other axes (heads, windows: (h, L, d)) | rank 4 and more |

A plain tuple takes its rank's layout, so the shapes of every image network stay plain tuples;
a shape of another layout (a channels-last grid, a rank-3 tensor that is not an image) is a
tuple subclass that names it. Such a shape equals the plain tuple of the same sizes, so
whatever keys on shapes keys on the layout too (`layout_of`). Layer types ask for the layouts
they accept with `need`, which fails with one line naming what it got.
"""
from typing import Iterable

from .. import fmt
from ..errors import SpecError


class Layout:
    """What the axes of a shape are: `axes` as a table writes them ("CxHxW"; "" for any axes), `what` in a
    sentence ("an image CxHxW"), `rank` (None: any). The five below are the only ones: one is compared by
    identity."""

    __slots__ = ("name", "axes", "what", "rank")

    def __init__(self, name: str, axes: str, what: str, rank: int | None):
        self.name, self.axes, self.what, self.rank = name, axes, what, rank

    def __repr__(self) -> str:
        return f"Layout({self.name!r})"


IMAGE = Layout("image", "CxHxW", "an image CxHxW", 3)
GRID = Layout("grid", "HxWxC", "a channels-last grid HxWxC", 3)
TOKENS = Layout("tokens", "LxD", "a token sequence LxD", 2)
FLAT = Layout("flat", "F", "a flat vector", 1)
TENSOR = Layout("tensor", "", "a tensor", None)
LAYOUTS = {layout.name: layout for layout in (IMAGE, GRID, TOKENS, FLAT, TENSOR)}
BY_RANK = {1: FLAT, 2: TOKENS, 3: IMAGE}  # how a plain tuple reads
SPATIAL = {IMAGE: (1, 2), GRID: (0, 1)}  # the axes of H and W


class _Laid(tuple):
    """A shape whose layout is not its rank's default."""

    __slots__ = ()
    layout: Layout = TENSOR

    def __repr__(self) -> str:
        return f"{self.layout.name}{tuple.__repr__(self)}"

    def __reduce__(self):
        return laid, (self.layout.name, tuple(self))


class _Grid(_Laid):
    __slots__ = ()
    layout = GRID


class _Tensor(_Laid):
    __slots__ = ()
    layout = TENSOR


_CLASSES = {GRID: _Grid, TENSOR: _Tensor}


def layout_of(shape: tuple[int, ...]) -> Layout:
    found = getattr(shape, "layout", None)
    return found if found is not None else BY_RANK.get(len(shape), TENSOR)


def laid(layout: Layout | str, dims: Iterable[int]) -> tuple[int, ...]:
    """`dims` as a shape of `layout`: a plain tuple where the rank reads as it."""
    layout = LAYOUTS[layout] if isinstance(layout, str) else layout
    dims = tuple(dims)
    if layout.rank is not None and len(dims) != layout.rank:
        raise SpecError(f"{layout.what} has {layout.rank} axes, got {fmt.shape(dims)}")
    if BY_RANK.get(len(dims)) == layout:
        return dims
    if layout not in _CLASSES:  # image, tokens or flat at their own rank: handled above
        raise SpecError(f"{layout.what} cannot have the shape {fmt.shape(dims)}")  # pragma: no cover
    return _CLASSES[layout](dims)


def like(shape: tuple[int, ...], dims: Iterable[int]) -> tuple[int, ...]:
    """`dims` in the layout of `shape` (a layer that changes sizes but not what the axes mean)."""
    return laid(layout_of(shape), dims)


def describe(shape: tuple[int, ...]) -> str:
    """'a channels-last grid HxWxC 56x56x96'."""
    layout = layout_of(shape)
    return f"{layout.what} {fmt.shape(shape)}" if layout.axes else f"a tensor {fmt.shape(shape)}"


def need(name: str, shape: tuple[int, ...], *layouts: Layout, hint: str = "") -> tuple[int, ...]:
    """`shape` when its layout is one of `layouts`; else one line naming what the layer got."""
    if layout_of(shape) in layouts:
        return shape
    whats = [layout.what for layout in layouts]
    wanted = whats[0] if len(whats) == 1 else f"{', '.join(whats[:-1])} or {whats[-1]}"
    raise SpecError(f"{name} needs {wanted}, got {describe(shape)}{hint}")


def as_image(shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    """(C, H, W) of an image or a channels-last grid; None for a shape of any other layout."""
    found = layout_of(shape)
    if found == IMAGE:
        return shape  # type: ignore[return-value]
    if found == GRID:
        return shape[2], shape[0], shape[1]
    return None
