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
from decimal import Decimal
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


def format_double(value: float) -> str:
    """A finite float as the collector's clickhouse exporter stores it (pdata ``AsString``: Go's JSON form).

    Shortest round-trip digits, without the ``.0`` of an integral value (``2.0`` is ``2``), in
    fixed notation unless ``|x| < 1e-6`` or ``|x| >= 1e21`` (``1e-7``, ``1e+21``). The analyzer's
    ``store.attribute_text`` renders finite doubles with this function (its tests hold it to Go's output).
    """
    magnitude = abs(value)
    if 1e-4 <= magnitude < 1e16:
        text = repr(value)  # the shortest round-trip form, in fixed notation in this range
        return text[:-2] if text.endswith(".0") else text
    if value == 0.0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    point = len(digits) + int(exponent)  # value = 0.<text> * 10**point
    prefix = "-" if sign else ""
    if magnitude < 1e-6 or magnitude >= 1e21:
        exp = point - 1
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{f'-{-exp}' if exp < 0 else f'+{exp:02d}'}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return f"{prefix}{text}{'0' * (point - len(text))}"
    return f"{prefix}{text[:point]}.{text[point:]}"


def attribute_text(value: Any, max_len: int) -> str | None:
    """The text the exporter stores for `value` once recorded as an attribute, or None if it records none.

    `value` is coerced as a prediction is (:func:`coerce`): strings as is (cut to `max_len`,
    as ``ml.prediction.value`` is), bools ``true`` / ``false``, ints in decimal, floats by
    :func:`format_double` (a class ``2.0`` is ``2``); missing, non-finite and other values have none.
    """
    kind, plain = coerce(value)
    if kind == CATEGORY:
        return plain[:max_len]
    if kind == BOOL:
        return "true" if plain else "false"
    if kind == NUMBER:
        return str(plain) if type(plain) is int else format_double(plain)
    return None


def keyed_hash(value: Any, key: bytes) -> str:
    """A 16-hex-digit keyed hash (HMAC-SHA256) of a value's text: joinable, not reversible without the key."""
    text = value if isinstance(value, str) else repr(value)
    return hmac.new(key, text.encode("utf-8", errors="replace"), hashlib.sha256).hexdigest()[:16]
