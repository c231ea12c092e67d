"""Tests for modelwatch.values: coerce() into OTel-attribute-friendly kinds, and keyed_hash()."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from modelwatch.values import (
    BOOL,
    CATEGORY,
    INVALID,
    MISSING,
    NONFINITE,
    NUMBER,
    SEQUENCE,
    coerce,
    keyed_hash,
)

PLAIN_TYPES = (int, float, bool, str)


def test_kind_constants_are_distinct() -> None:
    """The seven kinds are distinct small integers."""
    kinds = [NUMBER, CATEGORY, BOOL, MISSING, NONFINITE, SEQUENCE, INVALID]
    assert sorted(kinds) == list(range(7))


# --------------------------------------------------------------------------- plain Python values


@pytest.mark.parametrize(
    ("value", "kind", "plain", "plain_type"),
    [
        (1.5, NUMBER, 1.5, float),
        (-0.0, NUMBER, 0.0, float),
        (0, NUMBER, 0, int),
        (-42, NUMBER, -42, int),
        (2**63 - 1, NUMBER, 2**63 - 1, int),
        (-(2**63), NUMBER, -(2**63), int),
        (True, BOOL, True, bool),
        (False, BOOL, False, bool),
        ("abc", CATEGORY, "abc", str),
        ("", CATEGORY, "", str),
    ],
)
def test_coerce_plain_python_scalars(value, kind, plain, plain_type) -> None:  # type: ignore[no-untyped-def]
    """Plain float/int/bool/str values keep their value and exact Python type."""
    got_kind, got = coerce(value)
    assert got_kind == kind
    assert type(got) is plain_type
    assert got == plain


def test_coerce_none_and_nan_are_missing() -> None:
    """None and NaN are MISSING with no value."""
    assert coerce(None) == (MISSING, None)
    assert coerce(math.nan) == (MISSING, None)
    assert coerce(float("-nan")) == (MISSING, None)


@pytest.mark.parametrize("value", [math.inf, -math.inf])
def test_coerce_infinities_are_nonfinite(value: float) -> None:
    """+inf and -inf are NONFINITE and carry the float itself."""
    kind, plain = coerce(value)
    assert kind == NONFINITE
    assert type(plain) is float
    assert plain == value


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 2**64 - 1, 2**100, -(2**200)])
def test_coerce_ints_beyond_int64_become_float(value: int) -> None:
    """Integers outside the int64 range become the nearest float (OTLP ints are int64)."""
    kind, plain = coerce(value)
    assert kind == NUMBER
    assert type(plain) is float
    assert plain == float(value)
    assert abs(plain - value) <= abs(value) * 2**-52


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("1.1"), 1.1),
        (Decimal("-3"), -3.0),
        (Fraction(1, 3), 1 / 3),
        (Fraction(-7, 2), -3.5),
    ],
)
def test_coerce_decimal_and_fraction_become_float(value, expected: float) -> None:  # type: ignore[no-untyped-def]
    """Decimal and Fraction become NUMBER with a plain float."""
    kind, plain = coerce(value)
    assert kind == NUMBER
    assert type(plain) is float
    assert plain == pytest.approx(expected, rel=1e-15, abs=0)


def test_coerce_decimal_nan_and_infinity() -> None:
    """Decimal NaN is MISSING and Decimal Infinity is NONFINITE, like floats."""
    assert coerce(Decimal("NaN")) == (MISSING, None)
    assert coerce(Decimal("Infinity")) == (NONFINITE, math.inf)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"hello", "hello"),
        (bytearray(b"abc"), "abc"),
        ("ü".encode(), "ü"),
        (b"\xffok", "\ufffdok"),  # invalid utf-8 is replaced, not raised
    ],
)
def test_coerce_bytes_become_str(value, expected: str) -> None:  # type: ignore[no-untyped-def]
    """bytes/bytearray become CATEGORY str decoded as UTF-8 with replacement."""
    kind, plain = coerce(value)
    assert kind == CATEGORY
    assert type(plain) is str
    assert plain == expected


# --------------------------------------------------------------------------- numpy / pandas scalars


@pytest.mark.parametrize(
    ("value", "kind", "plain"),
    [
        (np.float32(1.5), NUMBER, 1.5),
        (np.float64(-2.25), NUMBER, -2.25),
        (np.float16(0.5), NUMBER, 0.5),
        (np.int8(-3), NUMBER, -3),
        (np.int16(300), NUMBER, 300),
        (np.int32(-70000), NUMBER, -70000),
        (np.int64(2**62), NUMBER, 2**62),
        (np.uint8(255), NUMBER, 255),
        (np.uint64(12345), NUMBER, 12345),
        (np.bool_(True), BOOL, True),
        (np.bool_(False), BOOL, False),
        (np.str_("cat"), CATEGORY, "cat"),
        (np.bytes_(b"dog"), CATEGORY, "dog"),
    ],
)
def test_coerce_numpy_scalars_become_plain_python(value, kind: int, plain) -> None:  # type: ignore[no-untyped-def]
    """numpy scalars map to the matching plain Python type (never a numpy type) with the same value."""
    got_kind, got = coerce(value)
    assert got_kind == kind
    assert type(got) in PLAIN_TYPES
    assert not isinstance(got, np.generic)
    assert type(got) is type(plain)
    assert got == plain


def test_coerce_numpy_uint64_beyond_int64_becomes_float() -> None:
    """numpy uint64 above the int64 range becomes a plain float."""
    kind, plain = coerce(np.uint64(2**64 - 1))
    assert kind == NUMBER
    assert type(plain) is float
    assert plain == pytest.approx(1.8446744073709552e19, rel=1e-15)


def test_coerce_numpy_nan_inf() -> None:
    """numpy NaN is MISSING and numpy infinities are NONFINITE plain floats."""
    assert coerce(np.float32("nan")) == (MISSING, None)
    assert coerce(np.float64("nan")) == (MISSING, None)
    kind, plain = coerce(np.float64("-inf"))
    assert kind == NONFINITE and type(plain) is float and plain == -math.inf
    kind, plain = coerce(np.float32("inf"))
    assert kind == NONFINITE and type(plain) is float and plain == math.inf


def test_coerce_numpy_datetime64() -> None:
    """numpy datetime64 NaT is MISSING; a real datetime64 is its ISO text."""
    assert coerce(np.datetime64("NaT")) == (MISSING, None)
    assert coerce(np.datetime64("2020-01-02")) == (CATEGORY, "2020-01-02")


@pytest.mark.parametrize("value", [pd.NA, pd.NaT])
def test_coerce_pandas_missing(value) -> None:  # type: ignore[no-untyped-def]
    """pandas NA and NaT are MISSING."""
    assert coerce(value) == (MISSING, None)


def test_coerce_pandas_timestamp_is_iso_text() -> None:
    """A pandas Timestamp becomes its ISO-8601 text."""
    assert coerce(pd.Timestamp("2021-03-04 05:06:07")) == (CATEGORY, "2021-03-04T05:06:07")


# --------------------------------------------------------------------------- sequences


def test_coerce_list_of_floats_is_sequence_tuple() -> None:
    """A list of floats becomes a SEQUENCE tuple of plain floats."""
    kind, plain = coerce([1.0, 2.5, -3.0])
    assert kind == SEQUENCE
    assert plain == (1.0, 2.5, -3.0)
    assert type(plain) is tuple


def test_coerce_numeric_sequences_are_homogeneous_floats() -> None:
    """ints and numpy numbers inside a list become plain floats so the sequence stays homogeneous."""
    kind, plain = coerce([1, np.int64(2), np.float32(0.5), 3.0])
    assert kind == SEQUENCE
    assert plain == (1.0, 2.0, 0.5, 3.0)
    assert all(type(x) is float for x in plain)


def test_coerce_string_and_bool_sequences() -> None:
    """Tuples of strings and lists of bools are SEQUENCE tuples of plain str / bool."""
    kind, plain = coerce(("a", np.str_("b")))
    assert (kind, plain) == (SEQUENCE, ("a", "b"))
    assert all(type(x) is str for x in plain)
    kind, plain = coerce([True, np.bool_(False)])
    assert (kind, plain) == (SEQUENCE, (True, False))
    assert all(type(x) is bool for x in plain)


def test_coerce_sequence_with_missing_and_infinite_numbers() -> None:
    """Missing items become NaN and infinities stay inf inside a numeric SEQUENCE."""
    kind, plain = coerce([1.0, None, math.inf])
    assert kind == SEQUENCE
    assert plain[0] == 1.0 and math.isnan(plain[1]) and plain[2] == math.inf


def test_coerce_mixed_list_is_category_json() -> None:
    """A list mixing numbers and strings becomes CATEGORY JSON text of the plain items."""
    kind, plain = coerce([1.0, "a", 2])
    assert kind == CATEGORY
    assert type(plain) is str
    assert json.loads(plain) == [1.0, "a", 2.0]


def test_coerce_empty_and_nested_sequences() -> None:
    """An empty list is an empty SEQUENCE; a nested list is INVALID."""
    assert coerce([]) == (SEQUENCE, ())
    assert coerce([[1.0]]) == (INVALID, None)
    assert coerce([1.0, object()]) == (INVALID, None)


# --------------------------------------------------------------------------- invalid / robustness


@pytest.mark.parametrize("value", [object(), {"a": 1}, {1, 2}, 1 + 2j, np.array([1.0, 2.0])])
def test_coerce_unsupported_is_invalid(value) -> None:  # type: ignore[no-untyped-def]
    """Objects that are no supported scalar or sequence are INVALID with no value."""
    assert coerce(value) == (INVALID, None)


def test_coerce_float_subclass() -> None:
    """A float subclass is coerced through float() to a plain float."""

    class Meters(float):
        pass

    kind, plain = coerce(Meters(2.5))
    assert kind == NUMBER
    assert type(plain) is float
    assert plain == 2.5


def test_coerce_float_subclass_with_failing_float_value_error() -> None:
    """A float subclass whose __float__ raises ValueError is INVALID, not an exception."""

    class Broken(float):
        def __float__(self) -> float:
            raise ValueError("no float for you")

    assert coerce(Broken(1.0)) == (INVALID, None)


def test_coerce_float_subclass_with_failing_float_any_exception() -> None:
    """coerce never raises, even when a float subclass's __float__ raises an arbitrary exception."""
    # SDK BUG (sdk/modelwatch/values.py, coerce): the converter call is guarded by
    # `except (TypeError, ValueError, OverflowError, ArithmeticError)` only, so a
    # RuntimeError (or any other Exception) raised by __float__/__int__/__str__ of a
    # user type escapes, contradicting the "never raises" docstring.

    class Broken(float):
        def __float__(self) -> float:
            raise RuntimeError("boom")

    assert coerce(Broken(1.0)) == (INVALID, None)


def test_coerce_never_raises_on_overflowing_values() -> None:
    """Values too large for a float (huge int/Fraction, Decimal sNaN) are INVALID instead of raising."""
    for value in (10**400, Fraction(10**400, 3), Decimal("sNaN")):
        kind, plain = coerce(value)
        assert kind == INVALID and plain is None


# --------------------------------------------------------------------------- keyed_hash


def test_keyed_hash_format_and_determinism() -> None:
    """keyed_hash is deterministic and returns 16 lowercase hex characters."""
    a = keyed_hash("alice@example.com", b"secret")
    assert a == keyed_hash("alice@example.com", b"secret")
    assert re.fullmatch(r"[0-9a-f]{16}", a)


def test_keyed_hash_is_hmac_sha256_prefix() -> None:
    """keyed_hash is the first 16 hex digits of HMAC-SHA256(key, text) (repr text for non-strings)."""
    assert keyed_hash("x", b"k") == hmac.new(b"k", b"x", hashlib.sha256).hexdigest()[:16]
    assert keyed_hash(123, b"k") == hmac.new(b"k", b"123", hashlib.sha256).hexdigest()[:16]


def test_keyed_hash_depends_on_key_and_value() -> None:
    """A different key or a different value gives a different hash."""
    base = keyed_hash("value", b"key-1")
    assert keyed_hash("value", b"key-2") != base
    assert keyed_hash("value2", b"key-1") != base
    assert keyed_hash("value", b"") != base
    # distinct values across many inputs do not collide in 64 bits
    hashes = {keyed_hash(f"user-{i}", b"key-1") for i in range(2000)}
    assert len(hashes) == 2000
