"""Folding a block of values into many exponential histograms at once, vectorised with numpy.

:func:`fold_columns` is the fast path of :class:`~modelwatch.exphist.ExpHistogram`
(its ``flush`` and ``add_array``) and of the feature folds of
:mod:`modelwatch.rows` and :mod:`modelwatch.batch`: one set of numpy
operations serves every histogram of the block. It reads and updates the
histograms through their public state and their ``_fit`` / ``_fold_numpy``
methods, and imports nothing of :mod:`modelwatch.exphist` (which imports it).
:func:`indices` is the OTel bucket index of many magnitudes at once.
Called only when the process already has numpy: it is passed in, never imported.
"""

from __future__ import annotations

from typing import Any

_WINDOW_BINS = 1 << 20  # fold_columns' windowed count is used while k * 2 * index range fits this
_SIGN_OFFSET = 2**40  # lifts negative values' indices clear of positive ones (indices are within +-2**31)


def indices(np, magnitude, scale: int):  # type: ignore[no-untyped-def]
    """Bucket indices (int64 array) of positive finite float64 magnitudes at `scale`, per the OTel spec.

    ``magnitude`` is overwritten. (A variant reading the index off the float's
    bits through a mantissa lookup table was measured slower than ``log2``
    on these machines, and was dropped.)
    """
    if scale > 0:
        logs = np.log2(magnitude, out=magnitude)
        logs *= float(1 << scale)
        np.ceil(logs, out=logs)
        idx = logs.astype(np.int64)
        idx -= 1
        return idx
    mantissa, exp = np.frexp(magnitude)
    return ((exp.astype(np.int64) - (mantissa == 0.5)) - 1) >> -scale


def fold_columns(np, hists: list, arr) -> None:  # type: ignore[no-untyped-def]
    """Record row ``j`` of a (k, n) float64 array of finite values into ``hists[j]``, vectorised across rows.

    One set of numpy operations serves all k histograms (per-histogram numpy
    calls on a few thousand values are dominated by call overhead), with no
    masked reductions and no ``np.where`` (both several times slower than
    plain passes here):

    * indices are computed once, at each histogram's current scale;
    * each sign's index range comes from plain min/max of the indices shifted
      by +-2**40 for negative values; zeros are given the magnitude of the
      row's largest positive value, counted in that bucket, and subtracted
      from it afterwards;
    * each histogram is downscaled as its new range requires, its indices
      shifted to match, and one ``bincount`` over a combined key counts every
      histogram's positive and negative buckets.

    Rows the zero trick cannot serve (zeros without any positive value) and
    histograms at scale <= 0 take the per-histogram path.
    """
    for h in hists:
        h.flush()
    if arr.shape[1] == 0:
        return
    block = _Block(np, hists, arr).without_alone()
    if block is None:
        return
    idx = _bucket_indices(np, block)
    g_lo, g_hi = int(idx.min()), int(idx.max())
    if block.k * 2 * (g_hi - g_lo + 1) <= _WINDOW_BINS:
        per_row, fitted = _count_windowed(np, block, idx, g_lo, g_hi), False
    else:
        per_row, fitted = _count_fitted(np, block, idx), True
    _merge_rows(np, block, per_row, fitted)


class _Block:
    """A (k, n) block and the per-row figures that every step of :func:`fold_columns` reads."""

    def __init__(self, np, hists: list, arr) -> None:  # type: ignore[no-untyped-def]
        self.hists = hists
        self.arr = arr
        self.k, self.n = arr.shape
        self.positive = arr > 0.0
        self.negative = arr < 0.0
        self.n_pos = np.count_nonzero(self.positive, axis=1).tolist()
        self.n_neg = np.count_nonzero(self.negative, axis=1).tolist()
        self.maxs, self.mins, self.sums = arr.max(axis=1).tolist(), arr.min(axis=1).tolist(), arr.sum(axis=1).tolist()
        self.zeros = [self.n - p - q for p, q in zip(self.n_pos, self.n_neg)]

    def without_alone(self) -> _Block | None:
        """Fold the rows the shared path cannot serve one by one; the block of the others (None if none is left)."""
        n = self.n
        alone = [j for j, h in enumerate(self.hists) if h.scale <= 0 or (self.n_pos[j] + self.n_neg[j] < n and self.n_pos[j] == 0)]
        if not alone:
            return self
        for j in alone:
            self.hists[j]._fold_numpy(self.arr[j])
        skip = set(alone)
        rest = [j for j in range(self.k) if j not in skip]
        if not rest:
            return None
        self.hists = [self.hists[j] for j in rest]
        self.arr, self.positive, self.negative = self.arr[rest], self.positive[rest], self.negative[rest]
        for name in ("n_pos", "n_neg", "maxs", "mins", "sums", "zeros"):
            values = getattr(self, name)
            setattr(self, name, [values[j] for j in rest])
        self.k = len(rest)
        return self


def _bucket_indices(np, block: _Block):  # type: ignore[no-untyped-def]
    """(k, n) bucket indices at each histogram's scale; a zero takes its row's top positive bucket (removed in the merge)."""
    k, n = block.k, block.n
    magnitude = np.abs(block.arr)
    if any(block.zeros):
        zero = ~(block.positive | block.negative)
        np.copyto(magnitude, np.array(block.maxs)[:, None], where=zero)
    idx = np.empty((k, n), dtype=np.int64)
    scales = [h.scale for h in block.hists]
    for scale in set(scales):
        members = [j for j in range(k) if scales[j] == scale]
        sel = members if len(members) < k else slice(None)
        idx[sel] = indices(np, magnitude[sel], scale)
    return idx


def _count_windowed(np, block: _Block, idx, g_lo: int, g_hi: int) -> list[tuple[Any, Any]]:  # type: ignore[no-untyped-def]
    """Per row (positive, negative) as (lo, counts) at the current scale, from one bincount over a window per row and sign.

    Every row gets a window [positive | negative] spanning all indices seen: no pass over
    the data is needed to find each sign's range, it is read off the non-empty bins.
    """
    k = block.k
    width = g_hi - g_lo + 1
    idx -= g_lo
    idx += np.arange(0, k * 2 * width, 2 * width, dtype=np.int64)[:, None]
    idx += block.negative * width
    counts = np.bincount(idx.ravel(), minlength=k * 2 * width).reshape(k, 2, width)
    per_row: list[tuple[Any, Any]] = []
    for j in range(k):
        sides = []
        for side, present in ((0, block.n_pos[j]), (1, block.n_neg[j])):
            if not present:
                sides.append(None)
                continue
            occupied = np.flatnonzero(counts[j, side])
            first, last = int(occupied[0]), int(occupied[-1])
            sides.append((first + g_lo, counts[j, side, first:last + 1]))
        per_row.append((sides[0], sides[1]))
    return per_row


def _count_fitted(np, block: _Block, idx) -> list[tuple[Any, Any]]:  # type: ignore[no-untyped-def]
    """Per row (positive, negative) as (lo, counts), each histogram downscaled first to fit its new range.

    For first blocks at fine scales: each sign's range is found exactly, then counted in
    blocks sized to it (a fine scale over a wide range would need billions of bins).
    """
    negative = block.negative
    lifted = negative * _SIGN_OFFSET  # int64: 2**40 where negative
    up = idx + lifted
    lo_pos, hi_neg = up.min(axis=1).tolist(), up.max(axis=1).tolist()
    up = idx - lifted
    lo_neg, hi_pos = up.min(axis=1).tolist(), up.max(axis=1).tolist()
    shifts = []
    ranges = []
    for j, h in enumerate(block.hists):
        p = (lo_pos[j], hi_pos[j]) if block.n_pos[j] else None
        q = (lo_neg[j] + _SIGN_OFFSET, hi_neg[j] - _SIGN_OFFSET) if block.n_neg[j] else None
        shift = 0
        if p is not None:
            shift += h._fit(*h.positive.bounds(*p))
        if q is not None:
            shift += h._fit(*h.negative.bounds(q[0] >> shift, q[1] >> shift))
        shifts.append(shift)
        ranges.append(((p[0] >> shift, p[1] >> shift) if p is not None else (0, -1),
                       (q[0] >> shift, q[1] >> shift) if q is not None else (0, -1)))
    if any(shifts):
        idx >>= np.array(shifts, dtype=np.int64)[:, None]
    bases, to_neg, spans, total = [], [], [], 0
    for p, q in ranges:
        width_p, width_n = p[1] - p[0] + 1, q[1] - q[0] + 1
        bases.append(total - p[0])
        to_neg.append(width_p + p[0] - q[0])  # negative value: idx - q_lo + width_p
        spans.append((p, q, total))
        total += width_p + width_n
    idx += np.array(bases, dtype=np.int64)[:, None]
    idx += negative * np.array(to_neg, dtype=np.int64)[:, None]
    counts = np.bincount(idx.ravel(), minlength=total)
    per_row = []
    for (p, q, base) in spans:
        width_p, width_n = p[1] - p[0] + 1, q[1] - q[0] + 1
        per_row.append((
            (p[0], counts[base:base + width_p]) if width_p > 0 else None,
            (q[0], counts[base + width_p:base + width_p + width_n]) if width_n > 0 else None,
        ))
    return per_row


def _merge_rows(np, block: _Block, per_row: list[tuple[Any, Any]], fitted: bool) -> None:  # type: ignore[no-untyped-def]
    """Each row's counts into its histogram (downscaled first unless `fitted`), with count, sum, min, max and zeros."""
    zeros = block.zeros
    for j, h in enumerate(block.hists):
        pos, neg = per_row[j]
        if zeros[j] and pos is not None:  # the zeros were counted in the top positive bucket
            counts = pos[1].copy()
            counts[-1] -= zeros[j]
            pos = (pos[0], counts)
        shift = 0
        if not fitted:
            if pos is not None:
                shift += h._fit(*h.positive.bounds(pos[0], pos[0] + len(pos[1]) - 1))
            if neg is not None:
                shift += h._fit(*h.negative.bounds(neg[0] >> shift, (neg[0] + len(neg[1]) - 1) >> shift))
        for buckets, side in ((h.positive, pos), (h.negative, neg)):
            if side is None:
                continue
            lo, counts = side
            if shift:
                lo, counts = _downsample(np, lo, counts, shift)
            buckets.merge(np, lo, lo + len(counts) - 1, counts)
        h.count += block.n
        h.sum += block.sums[j]
        h.min = min(h.min, block.mins[j])
        h.max = max(h.max, block.maxs[j])
        h.zero_count += zeros[j]


def _downsample(np, lo: int, counts, shift: int):  # type: ignore[no-untyped-def]
    """Counts of buckets lo.. at one scale, merged into the buckets `shift` scales coarser."""
    targets = (np.arange(lo, lo + len(counts), dtype=np.int64) >> shift) - (lo >> shift)
    return lo >> shift, np.bincount(targets, weights=counts).astype(np.int64)
