"""Tests for modelwatch.sampling: FNV-1a 64, the collector's threshold, and TraceIdSampler.

The oracles here are deliberately written differently from the module under test:
the threshold oracle uses plain integer arithmetic (float.as_integer_ratio plus an
explicit round-half-to-even on a 64-bit mantissa) and a `decimal` floor, not
`fractions.Fraction`; the hash oracle is a straightforward byte loop.
"""

from __future__ import annotations

import math
import random
from decimal import ROUND_FLOOR, Decimal, localcontext

import numpy as np
import pytest
from modelwatch.config import DEFAULT_HASH_SALT, SamplingPolicy
from modelwatch.sampling import TraceIdSampler, fnv1a64, threshold

MAX_U64 = 2**64 - 1
TWO64 = 2**64

# --------------------------------------------------------------------------- oracles


def oracle_fnv1a64(data: bytes) -> int:
    """FNV-1a 64 exactly as specified (offset basis, xor byte then multiply by the prime, mod 2**64)."""
    h = 14695981039346656037  # 0xcbf29ce484222325 written in decimal
    for b in data:
        h ^= b
        h = (h * 1099511628211) % TWO64  # 0x100000001b3
    return h


def oracle_trace_hash(salt: str, trace_id: int) -> int:
    """The collector's hash: FNV-1a 64 over salt bytes followed by the 16 big-endian trace id bytes."""
    return oracle_fnv1a64(salt.encode() + trace_id.to_bytes(16, "big"))


def oracle_go_threshold(percentage: float) -> int:
    """Go's big.Float(MaxUint64) * big.NewFloat(percentage/100) at 64-bit precision (half-even), then Uint64()."""
    ratio = percentage / 100  # float64 division, as the collector does
    num, den = ratio.as_integer_ratio()  # exact; den is a power of two
    if num <= 0:
        return 0  # big.Float.Uint64 of a value <= 0 is 0
    t = den.bit_length() - 1
    assert den == 1 << t
    n = MAX_U64 * num  # exact product is n / 2**t
    drop = max(n.bit_length() - 64, 0)  # bits that do not fit a 64-bit mantissa
    mant = n >> drop
    if drop:
        rem = n - (mant << drop)
        half = 1 << (drop - 1)
        if rem > half or (rem == half and mant % 2 == 1):
            mant += 1
    # rounded value = mant * 2**(drop - t); Uint64() truncates toward zero and saturates
    if drop >= t:
        value = mant << (drop - t)
    else:
        value = mant >> (t - drop)
    return min(value, MAX_U64)


def decimal_floor_threshold(percentage: float) -> int:
    """floor(MaxUint64 * ratio) computed exactly with `decimal` (valid for 0 <= ratio <= 1)."""
    ratio = percentage / 100
    with localcontext() as ctx:
        ctx.prec = 2500  # Decimal(float) has <= ~1100 significant digits; the product is exact
        ctx.Emin = -999_999
        ctx.Emax = 999_999
        product = Decimal(MAX_U64) * Decimal(ratio)
        return int(product.to_integral_value(rounding=ROUND_FLOOR))


# --------------------------------------------------------------------------- fnv1a64


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", 0xCBF29CE484222325),
        (b"a", 0xAF63DC4C8601EC8C),
        (b"foobar", 0x85944171F73967E8),
    ],
)
def test_fnv1a64_published_vectors(data: bytes, expected: int) -> None:
    """fnv1a64 reproduces the published FNV-1a 64-bit test vectors."""
    assert fnv1a64(data) == expected


def test_fnv1a64_matches_oracle_and_continues_from_state() -> None:
    """fnv1a64 agrees with a byte-loop oracle on random inputs and chaining via `state` equals hashing the concatenation."""
    rng = random.Random(1234)
    for _ in range(300):
        a = rng.randbytes(rng.randrange(0, 40))
        b = rng.randbytes(rng.randrange(0, 40))
        assert fnv1a64(a + b) == oracle_fnv1a64(a + b)
        assert fnv1a64(b, fnv1a64(a)) == oracle_fnv1a64(a + b)
        assert 0 <= fnv1a64(a) <= MAX_U64


# --------------------------------------------------------------------------- threshold


def test_threshold_edge_values() -> None:
    """threshold saturates at MaxUint64 for >= 100 % and is 0 for <= 0 %."""
    assert threshold(0) == 0
    assert threshold(0.0) == 0
    assert threshold(-0.0) == 0
    assert threshold(-5) == 0
    assert threshold(-1e300) == 0
    assert threshold(100) == MAX_U64
    assert threshold(150) == MAX_U64
    assert threshold(1e300) == MAX_U64
    assert threshold(100.00000000000001) == MAX_U64


def test_threshold_ten_percent_close_to_float_product() -> None:
    """threshold(10) is within 1 of floor((2**64-1)*0.1) and within 1 of the exact product with the float 0.1."""
    assert abs(threshold(10) - math.floor((2**64 - 1) * 0.1)) <= 1
    assert abs(threshold(10) - decimal_floor_threshold(10)) <= 1
    # the float 0.1 is slightly above 1/10, so the threshold is ~102 above MaxUint64 // 10
    assert 0 < threshold(10) - MAX_U64 // 10 < 128


FIXED_PERCENTAGES = [
    0,
    100,
    150,
    -5,
    10,
    33,
    12.5,
    0.001,
    1,
    25,
    50,
    75,
    99,
    1 / 3,
    66.6,
    99.99999999999999,
    math.nextafter(100.0, 0.0),
    math.nextafter(0.0, 1.0),  # smallest subnormal
    1e-320,
    1e-15,
    0.1,
    5,
]


def _random_percentages() -> list[float]:
    rng = random.Random(20240601)
    out = [rng.uniform(0.0, 100.0) for _ in range(300)]
    out += [10 ** rng.uniform(-12, 2) for _ in range(200)]
    out += [rng.uniform(100.0, 1000.0) for _ in range(20)]
    out += [-rng.uniform(0.0, 100.0) for _ in range(20)]
    return out


@pytest.mark.parametrize("percentage", FIXED_PERCENTAGES)
def test_threshold_matches_go_big_float_oracle_fixed(percentage: float) -> None:
    """threshold equals the Go big.Float 64-bit-mantissa computation for hand-picked percentages."""
    assert threshold(percentage) == oracle_go_threshold(percentage)


def test_threshold_matches_go_big_float_oracle_random() -> None:
    """threshold equals the Go big.Float oracle for several hundred seeded random percentages."""
    mismatches = [(p, threshold(p), oracle_go_threshold(p)) for p in _random_percentages()
                  if threshold(p) != oracle_go_threshold(p)]
    assert mismatches == []


def test_threshold_matches_exact_decimal_floor_in_unit_range() -> None:
    """For 0 <= ratio <= 1 the threshold equals floor(MaxUint64 * ratio) computed exactly with decimal."""
    for p in FIXED_PERCENTAGES + _random_percentages():
        if 0 <= p <= 100:
            assert threshold(p) == decimal_floor_threshold(p), p


def test_threshold_is_monotonic() -> None:
    """threshold never decreases as the percentage grows."""
    ps = sorted(p for p in FIXED_PERCENTAGES + _random_percentages())
    values = [threshold(p) for p in ps]
    assert all(a <= b for a, b in zip(values, values[1:]))


# --------------------------------------------------------------------------- TraceIdSampler


def _random_ids(seed: int, n: int) -> list[int]:
    rng = random.Random(seed)
    return [0, 1, 2**64 - 1, 2**64, 2**128 - 1] + [rng.getrandbits(128) for _ in range(n)]


def test_default_salt_is_collector_default() -> None:
    """The SDK's default hash salt is the tail_sampling processor's default, "default-hash-seed"."""
    assert DEFAULT_HASH_SALT == "default-hash-seed"
    assert SamplingPolicy().hash_salt == "default-hash-seed"


@pytest.mark.parametrize("salt", ["default-hash-seed", "", "my-salt", "sälty-ünïcode-☃"])
@pytest.mark.parametrize("rate", [0.01, 0.1, 0.25, 0.333, 0.5, 0.9])
def test_sampler_keep_matches_oracle(rate: float, salt: str) -> None:
    """TraceIdSampler.keep(tid) is exactly oracle_hash(salt, tid) <= Go threshold(rate*100)."""
    sampler = TraceIdSampler(rate, salt)
    expected_threshold = oracle_go_threshold(rate * 100.0)
    assert sampler.threshold == expected_threshold
    kept = 0
    for tid in _random_ids(int(rate * 1000) * 31 + len(salt), 1500):
        h = oracle_trace_hash(salt, tid)
        assert sampler.hash(tid) == h
        expected = h <= expected_threshold
        assert sampler.keep(tid) is expected, tid
        kept += expected
    # sanity: the oracle is not trivially all-True/all-False for these rates
    assert 0 < kept < 1505


@pytest.mark.parametrize("percentage", [1, 5, 10, 20, 25, 29, 33, 50, 57, 70, 99])
def test_sampler_threshold_equals_collector_percentage(percentage: int) -> None:
    """A sampler with rate P/100 uses the same threshold the collector computes for `sampling_percentage: P`."""
    sampler = TraceIdSampler(percentage / 100, DEFAULT_HASH_SALT)
    assert sampler.threshold == oracle_go_threshold(float(percentage))


def test_sampler_known_default_salt_hash() -> None:
    """The hash of trace id 0 with the default salt is the FNV-1a of the salt followed by 16 zero bytes."""
    sampler = TraceIdSampler(0.1, DEFAULT_HASH_SALT)
    assert sampler.hash(0) == oracle_fnv1a64(b"default-hash-seed" + bytes(16))
    assert sampler.hash(0) != oracle_fnv1a64(bytes(16))  # the salt matters


@pytest.mark.parametrize("rate", [0.001, 0.1, 0.5, 0.75, 1.0, 2.0])
def test_sampler_weight_is_inverse_rate(rate: float) -> None:
    """TraceIdSampler.weight is 1/rate."""
    sampler = TraceIdSampler(rate, DEFAULT_HASH_SALT)
    assert sampler.weight == pytest.approx(1 / rate, rel=1e-15, abs=0)
    assert sampler.rate == rate


def test_sampler_rate_one_keeps_everything_rate_zero_keeps_nothing() -> None:
    """Rate 1.0 keeps every trace id and rate 0.0 keeps none."""
    always = TraceIdSampler(1.0, DEFAULT_HASH_SALT)
    never = TraceIdSampler(0.0, DEFAULT_HASH_SALT)
    assert always.threshold == MAX_U64
    assert never.threshold == 0
    ids = _random_ids(7, 5000)
    assert all(always.keep(t) for t in ids)
    assert not any(never.keep(t) for t in ids)


def test_sampler_kept_fraction_within_binomial_ci() -> None:
    """At rate 0.1 the kept fraction over 200k seeded random ids lies in a 99.9 % binomial interval (z=3.29)."""
    # scipy is not installed in the test venv, so use the normal approximation.
    sampler = TraceIdSampler(0.1, DEFAULT_HASH_SALT)
    rng = random.Random(99)
    n = 200_000
    kept = sum(sampler.keep(rng.getrandbits(128)) for _ in range(n))
    p = (sampler.threshold + 1) / 2**64  # hashes 0..threshold are kept
    assert p == pytest.approx(0.1, rel=1e-12)
    half_width = 3.29 * math.sqrt(n * p * (1 - p))  # ~ 442 traces
    assert abs(kept - n * p) <= half_width, (kept, n * p, half_width)


# --------------------------------------------------------------------------- keep_many


def _split(ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    hi = np.array([t >> 64 for t in ids], dtype=np.uint64)
    lo = np.array([t & MAX_U64 for t in ids], dtype=np.uint64)
    return hi, lo


@pytest.mark.parametrize(
    ("rate", "salt"),
    [
        (0.1, DEFAULT_HASH_SALT),
        (0.5, DEFAULT_HASH_SALT),
        (1.0, DEFAULT_HASH_SALT),
        (0.0, DEFAULT_HASH_SALT),
        (0.3, "custom-salt-✓"),
    ],
)
def test_keep_many_matches_keep(rate: float, salt: str) -> None:
    """keep_many(hi, lo) returns exactly keep((hi << 64) | lo) for 20k seeded ids."""
    sampler = TraceIdSampler(rate, salt)
    ids = _random_ids(4242, 20_000)
    hi, lo = _split(ids)
    assert [(int(h) << 64) | int(low) for h, low in zip(hi[:50], lo[:50])] == ids[:50]  # the split is right
    got = sampler.keep_many(hi, lo)
    assert isinstance(got, np.ndarray)
    assert got.dtype == np.bool_
    assert got.shape == (len(ids),)
    expected = np.array([sampler.keep(t) for t in ids], dtype=bool)
    mismatch = np.flatnonzero(got != expected)
    assert mismatch.size == 0, [ids[i] for i in mismatch[:5]]
    if 0.0 < rate < 1.0:
        assert 0 < int(got.sum()) < len(ids)


def test_keep_many_empty_input() -> None:
    """keep_many on empty arrays returns an empty boolean array."""
    sampler = TraceIdSampler(0.5, DEFAULT_HASH_SALT)
    empty = np.array([], dtype=np.uint64)
    out = sampler.keep_many(empty, empty)
    assert out.shape == (0,)
    assert out.dtype == np.bool_
