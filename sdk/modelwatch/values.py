"""Turning whatever inference code passes around into OTel attribute values.

OTel attributes accept ``str``, ``bool``, ``int``, ``float`` and homogeneous
sequences of those; the SDK silently drops anything else, numpy scalars
included. :func:`coerce` maps a value to one of a few kinds and a plain Python
value, with a per-type dispatch table so the common types cost one dict lookup.

=========  ===========================================  =========================
kind       from                                         recorded as
=========  ===========================================  =========================
NUMBER     int, float, numpy numbers, Decimal, ...       float/int attribute; histogram
CATEGORY   str (truncated), bytes (utf-8, replaced)      string attribute; category counts
BOOL       bool, numpy.bool_                             bool attribute; category counts
MISSING    None, NaN, pandas NA/NaT                      no attribute; missing count
NONFINITE  +inf, -inf                                    float attribute; not in histograms
SEQUENCE   list/tuple of numbers or strings              sequence attribute only
INVALID    anything else                                 dropped, counted
=========  ===========================================  =========================
"""

from __future__ import annotations

import decimal
import fractions
import hashlib
import hmac
import json
import math
from typing import Any, Callable

NUMBER, CATEGORY, BOOL, MISSING, NONFINITE, SEQUENCE, INVALID = range(7)

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _float(v: Any) -> tuple[int, Any]:
    f = float(v)
    if f != f:
        return MISSING, None
    if f in (math.inf, -math.inf):
        return NONFINITE, f
    return NUMBER, f


def _int(v: Any) -> tuple[int, Any]:
    i = int(v)
    if _INT64_MIN <= i <= _INT64_MAX:
        return NUMBER, i
    return NUMBER, float(i)  # OTLP ints are int64


def _bool(v: Any) -> tuple[int, Any]:
    return BOOL, bool(v)


def _str(v: Any) -> tuple[int, Any]:
    return CATEGORY, str(v)


def _bytes(v: Any) -> tuple[int, Any]:
    return CATEGORY, bytes(v).decode("utf-8", errors="replace")


def _missing(_v: Any) -> tuple[int, Any]:
    return MISSING, None


_DISPATCH: dict[type, Callable[[Any], tuple[int, Any]]] = {
    float: _float,
    int: _int,
    bool: _bool,
    str: _str,
    bytes: _bytes,
    bytearray: _bytes,
    type(None): _missing,
    decimal.Decimal: _float,
    fractions.Fraction: _float,
}


def _classify_type(tp: type) -> Callable[[Any], tuple[int, Any]] | None:
    """Find (and cache) a converter for a type not seen before, without importing numpy or pandas."""
    module = getattr(tp, "__module__", "") or ""
    name = tp.__name__
    conv: Callable[[Any], tuple[int, Any]] | None = None
    if module == "numpy" or module.startswith("numpy."):
        if name in ("bool_", "bool"):
            conv = _bool
        elif "float" in name or name in ("half", "single", "double", "longdouble"):
            conv = _float
        elif "int" in name or name in ("byte", "short", "intc", "longlong"):
            conv = _int
        elif name in ("str_", "bytes_"):
            conv = _str if name == "str_" else _bytes
        elif name == "datetime64":
            conv = lambda v: (MISSING, None) if str(v) == "NaT" else (CATEGORY, str(v))  # noqa: E731
    elif module.startswith("pandas"):
        if name in ("NAType", "NaTType"):
            conv = _missing
        elif name == "Timestamp":
            conv = lambda v: (CATEGORY, v.isoformat())  # noqa: E731
    elif issubclass(tp, bool):
        conv = _bool
    elif issubclass(tp, int):
        conv = _int
    elif issubclass(tp, float):
        conv = _float
    elif issubclass(tp, str):
        conv = _str
    if conv is not None:
        _DISPATCH[tp] = conv
    return conv


def coerce(value: Any) -> tuple[int, Any]:
    """(kind, plain value) for one feature or output value; never raises."""
    conv = _DISPATCH.get(type(value))
    if conv is None:
        conv = _classify_type(type(value))
        if conv is None:
            if isinstance(value, (list, tuple)):
                return _sequence(value)
            return INVALID, None
    try:
        return conv(value)
    except Exception:  # a user type whose __float__/__int__/__str__ raises anything at all
        return INVALID, None


def _sequence(value: list[Any] | tuple[Any, ...]) -> tuple[int, Any]:
    items = []
    for item in value:
        kind, plain = coerce(item)
        if kind in (NUMBER, NONFINITE):
            items.append(float(plain))
        elif kind in (CATEGORY, BOOL):
            items.append(plain)
        elif kind == MISSING:
            items.append(math.nan)
        else:
            return INVALID, None
    types = {type(i) for i in items}
    if len(types) > 1:  # OTel sequences are homogeneous: fall back to JSON text
        try:
            return CATEGORY, json.dumps(items, default=str)
        except (TypeError, ValueError):
            return INVALID, None
    return SEQUENCE, tuple(items)


def number_or_none(value: Any) -> float | None:
    """A finite float from a score/confidence-like value, or None."""
    if type(value) is float:
        return value if value - value == 0.0 else None
    if value is None:
        return None
    kind, plain = coerce(value)
    if kind == NUMBER:
        return float(plain)
    if kind == BOOL:
        return float(plain)
    return None


def keyed_hash(value: Any, key: bytes) -> str:
    """A 16-hex-digit keyed hash (HMAC-SHA256) of a value's text: joinable, not reversible without the key."""
    text = value if isinstance(value, str) else repr(value)
    return hmac.new(key, text.encode("utf-8", errors="replace"), hashlib.sha256).hexdigest()[:16]
