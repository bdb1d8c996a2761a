"""Receptive fields, exact: the input interval each output position depends on, per axis.

Along one axis a field is a table over one period of output positions: the first and the
last input index each position depends on. Positions a period apart see intervals shifted
by a whole number of input pixels, `shift`; the jump (input pixels per output position) is
shift / period, an exact fraction (a transposed convolution makes it 1/S). A window layer
maps output position o to the taps o*S - P + j*D; a transposed convolution to the i with
i*S - P + j*D = o, which depend on o mod S; adaptive pooling to its own windows. The field
of an output is the hull of its taps' fields, so the table stays exact through every layer
and the widest field over all positions is read off it at the end. Fields are not clipped
to the input (padding counts as if the input went on).
"""
import math
from typing import TYPE_CHECKING, Callable, Iterable, NamedTuple, Optional

from ..errors import SpecError

if TYPE_CHECKING:
    from fractions import Fraction  # exact arithmetic, loaded only when a working is explained

MAX_PERIOD = 1 << 8  # output positions one field table may hold (each row keeps its table)

Interval = Optional[tuple[int, int]]  # (first, last) input index; None: depends on no input pixel


class Axis(NamedTuple):
    """The field along one axis: intervals for one period of output positions.

    Fields, like rows, are named tuples (see archcalc.core.spec): every layer makes one."""

    period: int = 1
    shift: int = 1
    spans: tuple[Interval, ...] = ((0, 0),)

    @property
    def widest(self) -> int:
        """The largest field over the positions."""
        if len(self.spans) == 1:  # most fields: one interval
            span = self.spans[0]
            return 0 if span is None else span[1] - span[0] + 1
        return max((last - first + 1 for first, last in filter(None, self.spans)), default=0)

    @property
    def jump(self) -> "Fraction":
        from fractions import Fraction  # exact arithmetic, loaded only when a field or a working asks
        return Fraction(self.shift, self.period)

    def at(self, position: int) -> Interval:
        turns, phase = divmod(position, self.period)
        span = self.spans[phase]
        return None if span is None else (span[0] + turns * self.shift, span[1] + turns * self.shift)

    def through(self, taps: Callable[[int], Iterable[int]], every: int, moves: int) -> "Axis":
        """The field after a layer whose output o reads the input positions `taps(o)`,
        with taps(o + every) = taps(o) + moves."""
        turns = self.period // math.gcd(moves, self.period)  # repeats of `every` until the table repeats
        period = _tabulable(every * turns, "an output size with few common factors with the input")
        spans = tuple(_hull(self.at(x) for x in self._extremes(taps(o))) for o in range(period))
        return Axis(period, moves * turns * self.shift // self.period, spans)

    def window(self, kernel: int, stride: int, dilation: int, pad_before: int) -> "Axis":
        """Through a window layer: output o reads o*S - P + j*D, j < K."""
        if self.period == 1:  # one interval moving `shift` a position: the hull of the first and last tap
            (span,), shift = self.spans, self.shift
            first_tap, last_tap = -pad_before, -pad_before + (kernel - 1) * dilation
            return Axis(1, stride * shift, (None if span is None else
                                            (span[0] + first_tap * shift, span[1] + last_tap * shift),))
        return self.through(_window_taps(stride, dilation, pad_before, kernel), 1, stride)

    def _extremes(self, xs: Iterable[int]) -> Iterable[int]:
        """The positions of `xs` that can bound the hull: for a long progression (a large kernel), per phase
        only its first and last position, since a phase's interval moves on with the position."""
        if not isinstance(xs, range) or len(xs) <= 2 * self.period:
            return xs
        cycle = self.period // math.gcd(xs.step, self.period)
        ends = []
        for j in range(min(len(xs), cycle)):
            ends += [xs[j], xs[j + (len(xs) - 1 - j) // cycle * cycle]]
        return ends


def _tabulable(period: int, why: str) -> int:
    if period > MAX_PERIOD:
        raise SpecError(f"the receptive field repeats only every {period:,} output positions; archcalc "
                        f"tabulates at most {MAX_PERIOD:,} ({why})")
    return period


def _hull(intervals: Iterable[Interval]) -> Interval:
    present = [i for i in intervals if i is not None]
    if not present:
        return None
    return min(i[0] for i in present), max(i[1] for i in present)


def _union(axes: list[Axis]) -> Axis:
    """The hull of several fields over the same output grid."""
    first = axes[0]
    if all(a.period == 1 and a.shift == first.shift for a in axes):  # one interval each: their hull
        return Axis(1, first.shift, (_hull(a.spans[0] for a in axes),))
    if any(a.shift * first.period != first.shift * a.period for a in axes):  # grids that drift apart
        return max(axes, key=lambda a: (a.widest, a.jump))  # (adaptive pooling): keep the widest
    period = 1
    for a in axes:  # checked as it grows: many branches can have periods whose product is astronomical
        period = _tabulable(math.lcm(period, a.period), "branches whose fields repeat with different periods")
    spans = tuple(_hull(a.at(o) for a in axes) for o in range(period))
    return Axis(period, first.shift * period // first.period, spans)


Field2 = Optional[tuple[Axis, Axis]]  # None: every output depends on the whole input


def _window_taps(stride: int, dilation: int, pad_before: int, kernel: int):
    return lambda o: range(o * stride - pad_before, o * stride - pad_before + kernel * dilation, dilation)


def _transposed_taps(stride: int, dilation: int, padding: int, kernel: int):
    """The inputs i with i*S - P + j*D = o for a tap j < K, solved rather than searched (K may be huge):
    the taps j that land on a multiple of S form one residue class mod S/g (g = gcd(S, D)), so the
    inputs they reach form a progression with step D/g."""
    g = math.gcd(stride, dilation)
    cycle = stride // g  # taps j a cycle apart reach inputs D/g apart

    def taps(o: int) -> range:
        scattered = o + padding
        if scattered % g:
            return range(0)
        first_j = (scattered // g) * pow(dilation // g, -1, cycle) % cycle if cycle > 1 else 0
        if first_j >= kernel:
            return range(0)
        last_j = first_j + (kernel - 1 - first_j) // cycle * cycle
        return range((scattered - last_j * dilation) // stride, (scattered - first_j * dilation) // stride + 1, dilation // g)
    return taps


def _cell_taps(size: int, offset: int):
    """Output o reads the whole window holding it; windows start at offset + k*size."""
    def taps(o: int) -> range:
        start = offset + (o - offset) // size * size
        return range(start, start + size)
    return taps


def _adaptive_taps(size: int, out: int):
    return lambda o: range(o * size // out, -(-(o + 1) * size // out))


def _resampled_taps(size: int, out: int, bilinear: bool, align_corners: bool):
    """Input positions output o of torch's nearest or bilinear resampling reads with a non-zero weight."""
    if not bilinear:
        return lambda o: (min(o * size // out, size - 1),)
    if align_corners:  # src = o (N - 1) / (O - 1)
        def corners(o: int):
            num, den = o * (size - 1), max(out - 1, 1)
            return (num // den, num // den + 1) if num % den else (num // den,)
        return corners

    def half_pixel(o: int):  # src = (o + 1/2) N / O - 1/2, clamped at 0
        num, den = (2 * o + 1) * size - out, 2 * out
        if num <= 0:
            return (0,)
        first = num // den
        return (first, first + 1) if num % den and first + 1 < size else (first,)
    return half_pixel


class RF(NamedTuple):
    """Receptive field of each output unit, in input pixels.

    `strict` is the field; `spatial` the field of the path that carries the pixels, where a
    broadcast gate (squeeze-and-excitation) is held constant; `gate` names the first gate
    that makes them differ. None for a field means global: every output sees the whole input.
    """

    strict: Field2 = (Axis(), Axis())
    spatial: Field2 = (Axis(), Axis())
    gate: str | None = None

    @property
    def size(self) -> tuple[int, int] | None:
        """The widest field over all output positions, (h, w); None when global."""
        return _widest(self.strict)

    @property
    def spatial_size(self) -> tuple[int, int] | None:
        return _widest(self.spatial)

    @property
    def jump(self) -> "tuple[Fraction, Fraction]":
        from fractions import Fraction  # exact arithmetic, loaded only when a field or a working asks
        field = self.strict or self.spatial
        return (Fraction(0), Fraction(0)) if field is None else (field[0].jump, field[1].jump)

    @property
    def gated(self) -> bool:
        return self.gate is not None and self.strict != self.spatial

    def label(self) -> str:
        return _label(self.size)

    def spatial_label(self) -> str:
        return _label(self.spatial_size)

    def _map(self, step: Callable[..., Axis], *per_axis: tuple) -> "RF":
        """Each axis through `step(axis, *its parameters)`; `per_axis` holds (H value, W value) per parameter.
        A square field through a square layer is computed once and shared by both axes."""
        h_args, w_args = zip(*per_axis)
        square = h_args == w_args

        def apply(field: Field2) -> Field2:
            if field is None:
                return None
            h = step(field[0], *h_args)
            return (h, h) if square and field[1] == field[0] else (h, step(field[1], *w_args))
        strict = apply(self.strict)
        same = self.spatial is self.strict or self.spatial == self.strict
        return RF(strict, strict if same else apply(self.spatial), self.gate)

    def swapped(self) -> "RF":
        """The field with H and W exchanged (a permute that transposes the image)."""
        def swap(field: Field2) -> Field2:
            return None if field is None else (field[1], field[0])
        return RF(swap(self.strict), swap(self.spatial), self.gate)

    def window(self, kernel, stride, dilation=(1, 1), pad_before=(0, 0)) -> "RF":
        """After a convolution or pooling window: output o reads o*S - P + j*D, j < K."""
        return self._map(Axis.window, kernel, stride, dilation, pad_before)

    def grow(self, kernel, stride) -> "RF":
        """A dense window of `kernel` taps every `stride` pixels."""
        return self.window(kernel, stride)

    def transposed(self, kernel, stride, dilation, padding) -> "RF":
        """After a transposed convolution: output o gathers the inputs i with i*S - P + j*D = o."""
        return self._map(lambda a, k, s, d, p: a.through(_transposed_taps(s, d, p, k), s, 1), kernel, stride, dilation, padding)

    def resampled(self, sizes, outs, bilinear: bool, align_corners: bool = False) -> "RF":
        """After nearest or bilinear upsampling of `sizes` to `outs` (torch's source-index rules)."""
        def step(a: Axis, n: int, o: int) -> Axis:
            if bilinear and align_corners:  # not periodic: every output position in one table
                return a.through(_resampled_taps(n, o, True, True), o, n)
            g = math.gcd(n, o)
            return a.through(_resampled_taps(n, o, bilinear, False), o // g, n // g)
        return self._map(step, tuple(sizes), tuple(outs))

    def partitioned(self, sizes, offsets) -> "RF":
        """After attention within windows of `sizes` starting at `offsets` + k*size (Swin's shifted windows):
        each output reads its window. The windows cut by the shift or the map's edge are read as if the map
        went on, as padding is."""
        return self._map(lambda a, n, s: a.through(_cell_taps(n, s), n, n), tuple(sizes), tuple(offsets))

    def adaptive(self, sizes, outs) -> "RF":
        """After adaptive pooling of `sizes` to `outs`: output o pools floor(oN/O) .. ceil((o+1)N/O) - 1."""
        def step(a: Axis, n: int, o: int) -> Axis:
            g = math.gcd(n, o)
            return a.through(_adaptive_taps(n, o), o // g, n // g)
        return self._map(step, tuple(sizes), tuple(outs))


GLOBAL_RF = RF(None, None)


def merge_rf(fields: list[RF], gates: list[bool] | None = None, path: str = "") -> RF:
    """The field after branches meet: each output sees what any branch's output sees.

    `gates` marks branches broadcast over the output (a squeeze-and-excitation gate): they
    count for the strict field only; the spatial field holds them constant.
    """
    gates = gates or [False] * len(fields)
    if all(gates):
        gates = [False] * len(fields)
    strict = _union_fields([f.strict for f in fields])
    spatial = _union_fields([f.spatial for f, g in zip(fields, gates) if not g])
    inherited = next((f.gate for f in fields if f.gate), None)
    gate = inherited or (path if strict != spatial else None)
    return RF(strict, spatial, gate if strict != spatial else None)


def _union_fields(fields: list[Field2]) -> Field2:
    if any(f is None for f in fields):
        return None
    return _union([f[0] for f in fields]), _union([f[1] for f in fields])  # type: ignore[index]


def _widest(field: Field2) -> tuple[int, int] | None:
    return None if field is None else (field[0].widest, field[1].widest)


def _label(size: tuple[int, int] | None) -> str:
    if size is None:
        return "global"
    h, w = size
    return f"{h}" if h == w else f"{h}x{w}"
