"""Tests for modelwatch.exphist: OTel base-2 exponential histogram indexing and aggregation."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from modelwatch.exphist import (
    DEFAULT_MAX_SIZE,
    FLUSH_AT,
    MAX_SCALE,
    ExpHistogram,
    bucket_index,
    lower_boundary,
)

SCALES = [20, 8, 3, 1, 0, -1, -4, -10]

# --------------------------------------------------------------------------- helpers / oracles


def upper_boundary(index: int, scale: int) -> float:
    """Upper (inclusive) boundary of bucket `index`, i.e. lower_boundary(index + 1).

    The top bucket at very coarse scales has an upper boundary of 2**1024 or more,
    which is not a float: lower_boundary raises OverflowError there (as the OTel
    reference LowerBoundary returns ErrOverflow). Only in that case is the boundary
    taken as +inf, after checking that the exact boundary really exceeds the float range.
    """
    try:
        return lower_boundary(index + 1, scale)
    except OverflowError:
        exponent = (index + 1) / (1 << scale) if scale >= 0 else (index + 1) << -scale
        assert exponent >= 1024, (index, scale)
        return math.inf


def oracle_index(v: float, s: int) -> int:
    """OTel spec bucket index of |v| > 0 at scale s (logarithm method for s > 0, exponent method for s <= 0)."""
    v = abs(v)
    if s > 0:
        return math.ceil(math.log2(v) * 2**s) - 1
    m, e = math.frexp(v)  # v = m * 2**e, 0.5 <= m < 1
    # index at scale 0: ceil(log2 v) - 1, exact for powers of two (m == 0.5 means v == 2**(e-1))
    idx0 = e - 2 if m == 0.5 else e - 1
    return math.floor(idx0 / 2 ** (-s))  # floor division by 2**-s (idx0 is small, exact in float)


def oracle_counts(values: np.ndarray, s: int) -> tuple[Counter, Counter]:
    pos = Counter(oracle_index(v, s) for v in values[values > 0].tolist())
    neg = Counter(oracle_index(v, s) for v in (-values[values < 0]).tolist())
    return pos, neg


def span(buckets: dict[int, int]) -> int:
    return max(buckets) - min(buckets) + 1 if buckets else 0


def mixed_data(seed: int, n: int) -> np.ndarray:
    """Positive-dominated mixed data: several magnitudes, negatives, zeros (incl. -0.0)."""
    rng = np.random.default_rng(seed)
    parts = [
        rng.lognormal(0.0, 3.0, size=int(n * 0.55)),
        rng.uniform(1e3, 1e6, size=int(n * 0.05)),
        rng.uniform(1e-9, 1e-6, size=int(n * 0.05)),
        -rng.lognormal(1.0, 1.0, size=int(n * 0.2)),
        -rng.uniform(1e-4, 1e-3, size=int(n * 0.05)),
    ]
    body = np.concatenate(parts)
    zeros = np.zeros(n - body.size)
    zeros[::2] = -0.0
    data = np.concatenate([body, zeros, [2.0**-10, 1.0, 2.0**10, -(2.0**5)]])
    rng.shuffle(data)
    return data


# --------------------------------------------------------------------------- bucket_index


def _spanning_sample() -> list[float]:
    rng = np.random.default_rng(2024)
    vals = (10.0 ** rng.uniform(-300, 300, size=2500)).tolist()
    vals += rng.lognormal(0.0, 2.0, size=500).tolist()
    vals += [1e-300, 1e300, 1.0, 0.5, 3.0, 1.5, 1e-10, 1e10]
    for k in (-40, -7, -1, 0, 1, 3, 40, 500, -500):
        p = 2.0**k
        vals += [math.nextafter(p, 0.0), math.nextafter(p, math.inf)]
    return vals


SPANNING = _spanning_sample()


@pytest.mark.parametrize("scale", SCALES)
def test_bucket_index_brackets_value(scale: int) -> None:
    """bucket_index(v, s) is the bucket i with lower_boundary(i, s) < v <= lower_boundary(i+1, s) (1 ulp slack for s > 0)."""
    bad = []
    for v in SPANNING:
        i = bucket_index(v, scale)
        assert isinstance(i, int)
        lo, hi = lower_boundary(i, scale), upper_boundary(i, scale)
        if scale > 0:  # log2-based index and pow-based boundaries: allow one ulp either side
            ok = math.nextafter(lo, -math.inf) < v <= math.nextafter(hi, math.inf)
        else:  # frexp-based: exact
            ok = lo < v <= hi
        if not ok:
            bad.append((v, i, lo, hi))
    assert bad == []


@pytest.mark.parametrize("scale", SCALES)
def test_bucket_index_ignores_sign(scale: int) -> None:
    """bucket_index uses |v|, so v and -v share an index."""
    for v in SPANNING[:500]:
        assert bucket_index(-v, scale) == bucket_index(v, scale)


@pytest.mark.parametrize("scale", SCALES)
def test_bucket_index_matches_spec_oracle(scale: int) -> None:
    """bucket_index agrees with the OTel spec formulas (log2 for s > 0, frexp for s <= 0)."""
    assert [bucket_index(v, scale) for v in SPANNING] == [oracle_index(v, scale) for v in SPANNING]


@pytest.mark.parametrize("scale", SCALES)
def test_powers_of_two_use_inclusive_upper_boundary(scale: int) -> None:
    """An exact power of two 2**k lies in the bucket whose inclusive upper boundary is 2**k when that is a boundary."""
    for k in range(-20, 21):
        v = 2.0**k
        i = bucket_index(v, scale)
        if scale >= 0 or k % (1 << -scale) == 0:
            # 2**k is a bucket boundary at this scale: it must be the (inclusive) upper one
            assert lower_boundary(i + 1, scale) == v, (k, scale, i)
            assert lower_boundary(i, scale) < v
            assert i == k * (1 << scale) - 1 if scale >= 0 else i == (k >> -scale) - 1
        else:
            # at coarse scales 2**k falls strictly inside a bucket
            assert lower_boundary(i, scale) < v < upper_boundary(i, scale), (k, scale, i)


@pytest.mark.parametrize("fold", ["numpy", "python"])
def test_histogram_puts_powers_of_two_at_upper_boundary(fold: str) -> None:
    """Both fold paths place 2**k (k = -20..20) in bucket k*2**s - 1 at the histogram's final scale."""
    values = [2.0**k for k in range(-20, 21)]
    h = ExpHistogram()
    if fold == "numpy":
        h.add_array(np.array(values))
    else:
        h._fold_python(values)
    s = h.scale
    assert s == 1  # 40 octaves need 81 buckets at scale 1, 161 (> 160) at scale 2
    assert h.pos == {k * 2**s - 1: 1 for k in range(-20, 21)}


# --------------------------------------------------------------------------- aggregation paths


def test_add_add_array_and_fold_python_agree() -> None:
    """Folding via add()+flush(), add_array() and _fold_python() gives identical buckets, counts, min and max."""
    data = mixed_data(11, 5 * FLUSH_AT + 37)  # the last 37 pending values take the pure-python path
    values = data.tolist()

    h_add = ExpHistogram()
    for v in values:
        h_add.add(v)
    assert len(h_add.pending) == (len(values) % FLUSH_AT)  # the tail is still pending
    h_add.flush()
    assert h_add.pending == []

    h_arr = ExpHistogram()
    h_arr.add_array(data)

    h_py = ExpHistogram()
    h_py._fold_python(values)

    expected_sum = math.fsum(values)
    assert expected_sum > 1e3  # positive-dominated, so a relative tolerance is meaningful
    n_pos, n_neg = int((data > 0).sum()), int((data < 0).sum())
    for h in (h_add, h_arr, h_py):
        assert h.count == len(values)
        assert h.zero_count == len(values) - n_pos - n_neg
        assert sum(h.pos.values()) == n_pos
        assert sum(h.neg.values()) == n_neg
        assert h.sum == pytest.approx(expected_sum, rel=1e-9, abs=0)
        assert h.min == float(data.min())
        assert h.max == float(data.max())
        assert span(h.pos) <= DEFAULT_MAX_SIZE and span(h.neg) <= DEFAULT_MAX_SIZE
    assert h_py.scale < MAX_SCALE
    assert h_add.scale == h_arr.scale == h_py.scale
    assert h_add.pos == h_arr.pos == h_py.pos
    assert h_add.neg == h_arr.neg == h_py.neg


def test_chunked_add_array_equals_single_add_array() -> None:
    """Adding an array in chunks (forcing repeated downscaling) gives the same histogram as one add_array call."""
    data = mixed_data(12, 30_000)
    whole = ExpHistogram()
    whole.add_array(data)
    chunked = ExpHistogram()
    for chunk in np.array_split(data, 17):
        chunked.add_array(chunk)
    assert (chunked.scale, chunked.pos, chunked.neg, chunked.zero_count, chunked.count) == (
        whole.scale, whole.pos, whole.neg, whole.zero_count, whole.count
    )


def test_single_values_take_python_path() -> None:
    """Fewer than 64 pending values are folded exactly (python path) with correct zero, min, max and sum."""
    h = ExpHistogram()
    for v in (3.0, -2.0, 0.0, 0.25, 3.0):
        h.add(v)
    assert h.count == 0  # nothing folded before flush
    h.flush()
    assert h.count == 5
    assert h.zero_count == 1
    assert h.min == -2.0 and h.max == 3.0
    assert h.sum == pytest.approx(4.25, abs=1e-12)
    # 0.25 .. 3.0 is log2(12) = 3.58 octaves: 115 buckets at scale 5, 230 (> 160) at scale 6
    assert h.scale == 5
    assert h.pos == {bucket_index(0.25, 5): 1, bucket_index(3.0, 5): 2}
    assert h.neg == {bucket_index(2.0, 5): 1}


def test_lognormal_size_bound_and_scale_is_maximal() -> None:
    """After 100k lognormal(0, 5) values each sign spans <= 160 buckets, the scale dropped from 20, and it is the finest that fits."""
    rng = np.random.default_rng(5)
    mags = rng.lognormal(0.0, 5.0, size=100_000)
    signs = np.where(rng.random(100_000) < 0.6, 1.0, -1.0)
    data = mags * signs
    h = ExpHistogram()
    for chunk in np.array_split(data, 10):
        h.add_array(chunk)
    assert h.scale < MAX_SCALE
    assert span(h.pos) <= 160
    assert span(h.neg) <= 160
    assert h.count == 100_000
    # the scale is not lower than needed: one step finer, some sign would exceed 160 buckets
    pos_f, neg_f = oracle_counts(data, h.scale + 1)
    assert max(max(pos_f) - min(pos_f) + 1, max(neg_f) - min(neg_f) + 1) > 160


@pytest.mark.parametrize(
    "kind",
    ["lognormal_sigma5", "decades_1e-300_1e300"],
)
def test_bucket_counts_match_oracle(kind: str) -> None:
    """pos/neg counts at the final scale equal a per-value OTel-spec oracle tallied with Counter."""
    rng = np.random.default_rng(77)
    if kind == "lognormal_sigma5":
        mags = rng.lognormal(0.0, 5.0, size=100_000)
    else:
        mags = 10.0 ** rng.uniform(-300, 300, size=20_000)
    data = mags * np.where(rng.random(mags.size) < 0.5, 1.0, -1.0)
    h = ExpHistogram()
    h.add_array(data)
    if kind == "lognormal_sigma5":
        assert h.scale > 0
    else:
        assert h.scale <= 0
    pos, neg = oracle_counts(data, h.scale)
    assert h.pos == dict(pos)
    assert h.neg == dict(neg)


# --------------------------------------------------------------------------- quantiles


@pytest.mark.parametrize("sigma", [1.0, 5.0])
def test_median_from_buckets_within_bucket_width(sigma: float) -> None:
    """The median estimated from cumulative bucket counts (geometric bucket midpoint) is within one bucket width of numpy.median."""
    rng = np.random.default_rng(int(sigma * 10))
    n = 20_001  # odd: numpy.median is an actual sample
    data = rng.lognormal(0.0, sigma, size=n)
    h = ExpHistogram()
    h.add_array(data)
    s = h.scale
    rank = (n + 1) // 2  # 1-based rank of the median
    cum = 0
    for i in sorted(h.pos):
        cum += h.pos[i]
        if cum >= rank:
            break
    estimate = 2.0 ** ((i + 0.5) / 2.0**s)
    width = 2.0 ** (1.0 / 2.0**s) - 1.0  # relative width of a bucket at scale s
    true_median = float(np.median(data))
    assert lower_boundary(i, s) < true_median <= upper_boundary(i, s)
    assert abs(estimate - true_median) / true_median <= width
    assert width < 0.5  # the check is not vacuous


# --------------------------------------------------------------------------- dense


def test_dense_storage_of_real_histogram() -> None:
    """The dense bucket storage exported to OTLP (offset, counts) starts and ends on occupied buckets and holds every count."""
    h = ExpHistogram()
    h.add_array(mixed_data(3, 5000))
    for dense, buckets in ((h.positive, h.pos), (h.negative, h.neg)):
        assert dense.offset == min(buckets)
        assert len(dense.counts) == max(buckets) - min(buckets) + 1
        assert dense.counts[0] > 0 and dense.counts[-1] > 0
        assert {dense.offset + j: c for j, c in enumerate(dense.counts) if c} == buckets
