"""Base-2 exponential histograms, aggregated cheaply in process.

This is the OpenTelemetry ``ExponentialHistogram`` data model: at scale ``s``
bucket ``i`` holds values in ``(2**(i / 2**s), 2**((i + 1) / 2**s)]``, a
separate count holds zeros, negative values go to mirrored buckets. The
histogram starts at scale 20 and halves its resolution whenever the occupied
index range of either sign exceeds ``max_size`` buckets (160, the OTel
default), so its memory is bounded whatever the data and its relative error is
the best that 160 buckets allow for the range seen (a feature spanning 1 to
1000 lands at scale 4: 16 buckets per octave, 4.4 % wide).

Why our own: the OTel metrics API costs several microseconds per ``record``;
a prediction with 20 numeric features would spend more on metrics than the
whole span budget. Values are appended to a pending list (tens of nanoseconds)
and folded into buckets in blocks, vectorised with numpy when the process has
already imported it (an ML service has), in a pure-Python loop otherwise.
"""

from __future__ import annotations

import math
import sys

MAX_SCALE = 20
MIN_SCALE = -10
DEFAULT_MAX_SIZE = 160
FLUSH_AT = 2048  # pending values folded per block

_log2 = math.log2
_ceil = math.ceil
_frexp = math.frexp


def bucket_index(value: float, scale: int) -> int:
    """Index of the bucket holding ``abs(value)`` (non-zero, finite) at `scale`, per the OTel spec."""
    value = abs(value)
    if scale > 0:
        return _ceil(_log2(value) * (1 << scale)) - 1
    mantissa, exp = _frexp(value)  # value = mantissa * 2**exp, mantissa in [0.5, 1)
    if mantissa == 0.5:  # exact power of two: upper bucket boundaries are inclusive
        exp -= 1
    return (exp - 1) >> -scale


def lower_boundary(index: int, scale: int) -> float:
    """Lower (exclusive) boundary of bucket `index` at `scale`."""
    return 2.0 ** (index / (1 << scale)) if scale >= 0 else 2.0 ** (index << -scale)


class ExpHistogram:
    """One exponential histogram: counts, sum, min, max, zero count, and two bucket maps."""

    __slots__ = ("max_size", "scale", "pos", "neg", "zero_count", "count", "sum", "min", "max", "pending")

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.max_size = max_size
        self.scale = MAX_SCALE
        self.pos: dict[int, int] = {}
        self.neg: dict[int, int] = {}
        self.zero_count = 0
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.pending: list[float] = []

    def add(self, value: float) -> None:
        """Record one finite value (callers filter NaN and infinities; hold the owner's lock)."""
        pending = self.pending
        pending.append(value)
        if len(pending) >= FLUSH_AT:
            self.flush()

    def add_array(self, values) -> None:  # type: ignore[no-untyped-def]
        """Record a numpy array of finite values at once."""
        self.flush()
        if len(values):
            self._fold_numpy(values)

    def flush(self) -> None:
        """Fold pending values into the buckets."""
        pending = self.pending
        if not pending:
            return
        values = pending[:]
        pending.clear()  # in place: FeatureStats aliases this list
        np = sys.modules.get("numpy")
        if np is not None and len(values) >= 64:
            self._fold_numpy(np.asarray(values, dtype=np.float64))
        else:
            self._fold_python(values)

    # -- folding ---------------------------------------------------------------

    def _fold_python(self, values: list[float]) -> None:
        self.count += len(values)
        self.sum += math.fsum(values)
        self.min = min(self.min, min(values))
        self.max = max(self.max, max(values))
        positive = [v for v in values if v > 0.0]
        negative = [-v for v in values if v < 0.0]
        self.zero_count += len(values) - len(positive) - len(negative)
        for part, buckets in ((positive, self.pos), (negative, self.neg)):
            if not part:
                continue
            scale = self.scale
            if scale > 0:
                factor = float(1 << scale)
                idx = [_ceil(_log2(v) * factor) - 1 for v in part]
            else:
                idx = [bucket_index(v, scale) for v in part]
            shift = self._fit(min(idx), max(idx), buckets)
            for i in idx:
                i >>= shift
                buckets[i] = buckets.get(i, 0) + 1

    def _fold_numpy(self, arr) -> None:  # type: ignore[no-untyped-def]
        import numpy as np

        self.count += int(arr.size)
        self.sum += float(arr.sum())
        self.min = min(self.min, float(arr.min()))
        self.max = max(self.max, float(arr.max()))
        self.zero_count += int(np.count_nonzero(arr == 0.0))
        for part, buckets in ((arr[arr > 0], self.pos), (-arr[arr < 0], self.neg)):
            if part.size == 0:
                continue
            scale = self.scale
            if scale > 0:
                idx = (np.ceil(np.log2(part) * float(1 << scale)) - 1).astype(np.int64)
            else:
                mantissa, exp = np.frexp(part)
                idx = ((exp.astype(np.int64) - (mantissa == 0.5)) - 1) >> -scale
            shift = self._fit(int(idx.min()), int(idx.max()), buckets)
            if shift:
                idx = idx >> shift
            uniq, cnt = np.unique(idx, return_counts=True)
            for i, c in zip(uniq.tolist(), cnt.tolist()):
                buckets[i] = buckets.get(i, 0) + c

    def _fit(self, lo: int, hi: int, buckets: dict[int, int]) -> int:
        """Downscale until indices lo..hi (at the current scale) fit with `buckets`; return the shift applied."""
        if buckets:
            lo, hi = min(lo, min(buckets)), max(hi, max(buckets))
        shift = 0
        while (hi >> shift) - (lo >> shift) + 1 > self.max_size and self.scale - shift > MIN_SCALE:
            shift += 1
        if shift:
            for bucket_map in (self.pos, self.neg):  # in place: callers hold references
                merged: dict[int, int] = {}
                for i, c in bucket_map.items():
                    merged[i >> shift] = merged.get(i >> shift, 0) + c
                bucket_map.clear()
                bucket_map.update(merged)
            self.scale -= shift
        return shift

    # -- export ----------------------------------------------------------------

    @staticmethod
    def dense(buckets: dict[int, int]) -> tuple[int, list[int]]:
        """(offset, counts) of a bucket map, as OTLP carries it."""
        if not buckets:
            return 0, []
        lo, hi = min(buckets), max(buckets)
        return lo, [buckets.get(i, 0) for i in range(lo, hi + 1)]
