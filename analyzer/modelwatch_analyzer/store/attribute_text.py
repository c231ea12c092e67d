"""Attribute values rendered to strings exactly as the collector's clickhouse exporter does.

The exporter stores every attribute in ``Map(LowCardinality(String), String)``
columns, converting each value with pdata's ``Value.AsString()``:

=========  ==============================================================
type       rendering
=========  ==============================================================
string     as is
bool       ``true`` / ``false``
int        decimal
double     ES6 number-to-string, as Go's ``encoding/json``: shortest
           round-trip digits, fixed notation unless ``|x| < 1e-6`` or
           ``|x| >= 1e21``, exponent without padding (``1e-7``, ``1e+21``);
           NaN and ±Inf become ``json: unsupported value: NaN`` / ``+Inf`` / ``-Inf``
bytes      base64 (standard alphabet, padded)
array/map  Go ``json.Marshal`` of the raw value: keys sorted, no spaces,
           ``<``, ``>``, ``&``, U+2028, U+2029 escaped as ``\\u00XX``; if any
           double inside is NaN or infinite, marshalling fails and the
           exporter stores the empty string
empty      empty string
=========  ==============================================================

This module works on OTLP protobuf ``AnyValue`` messages and on plain Python
values; it has no dependency beyond the standard library.
"""

from __future__ import annotations

import base64
import math
from decimal import Decimal
from typing import Any


class _Unsupported(ValueError):
    """A NaN or infinity inside an array or map: Go's json.Marshal fails on it."""


def format_double(value: float) -> str:
    """pdata's ``float64AsString``: Go's JSON (ES6) rendering of a float64."""
    if math.isnan(value):
        return "json: unsupported value: NaN"
    if math.isinf(value):
        return "json: unsupported value: " + ("+Inf" if value > 0 else "-Inf")
    return _es6(value)


def _es6(value: float) -> str:
    magnitude = abs(value)
    if 1e-4 <= magnitude < 1e16:
        # Python's repr is the shortest round-trip form, in fixed notation in this range; Go writes
        # the same digits, without the trailing ".0" of integral values
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    if value == 0.0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digits, exponent = Decimal(repr(value)).as_tuple()  # repr: shortest round-trip digits
    text = "".join(map(str, digits)).rstrip("0") or "0"
    # value = 0.<text> * 10**point
    point = len(digits) + int(exponent)
    prefix = "-" if sign else ""
    if magnitude < 1e-6 or magnitude >= 1e21:
        exp = point - 1
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        # Go writes at least two exponent digits (e-07, e+21); pdata strips the padding of e-0X
        suffix = f"-{-exp}" if exp < 0 else f"+{exp:02d}"
        return f"{prefix}{mantissa}e{suffix}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return f"{prefix}{text}{'0' * (point - len(text))}"
    return f"{prefix}{text[:point]}.{text[point:]}"


_JSON_ESCAPES = {
    '"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f",
    "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029",
}


def _json_string(text: str) -> str:
    out = []
    for ch in text:
        esc = _JSON_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch < " ":
            out.append(f"\\u{ord(ch):04x}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:  # a lone surrogate is invalid UTF-8: Go writes U+FFFD
            out.append("\ufffd")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def go_json(raw: Any) -> str:
    """Go's ``json.Marshal`` of a raw pdata value (dict, list, str, int, float, bool, bytes, None)."""
    if raw is None:
        return "null"
    if raw is True:
        return "true"
    if raw is False:
        return "false"
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, float):
        if math.isnan(raw) or math.isinf(raw):
            raise _Unsupported(raw)
        return _es6(raw)
    if isinstance(raw, str):
        return _json_string(raw)
    if isinstance(raw, (bytes, bytearray)):
        return _json_string(base64.b64encode(bytes(raw)).decode("ascii"))
    if isinstance(raw, dict):
        return "{" + ",".join(f"{_json_string(k)}:{go_json(raw[k])}" for k in sorted(raw)) + "}"
    if isinstance(raw, (list, tuple)):
        return "[" + ",".join(go_json(v) for v in raw) + "]"
    raise TypeError(f"not a raw OTLP value: {type(raw).__name__}")


def raw_value(any_value: Any) -> Any:
    """The plain Python value of an OTLP ``AnyValue`` protobuf message (pdata's ``AsRaw``)."""
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [raw_value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: raw_value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind)


def as_string(any_value: Any) -> str:
    """pdata's ``Value.AsString()`` of an OTLP ``AnyValue`` message: what the exporter stores."""
    kind = any_value.WhichOneof("value")
    if kind is None:
        return ""
    if kind == "string_value":
        return any_value.string_value
    if kind == "bool_value":
        return "true" if any_value.bool_value else "false"
    if kind == "int_value":
        return str(any_value.int_value)
    if kind == "double_value":
        return format_double(any_value.double_value)
    if kind == "bytes_value":
        return base64.b64encode(any_value.bytes_value).decode("ascii")
    try:
        return go_json(raw_value(any_value))
    except _Unsupported:
        return ""  # json.Marshal failed; the exporter ignores the error and stores ""


def attributes_map(key_values: Any) -> dict[str, str]:
    """A repeated ``KeyValue`` as the exporter's ``Map(String, String)`` (a later duplicate key wins).

    The hot path of ingestion: strings and ordinary doubles are rendered inline
    (same result as :func:`as_string`, fewer calls).
    """
    out: dict[str, str] = {}
    for kv in key_values:
        value = kv.value
        kind = value.WhichOneof("value")
        if kind == "string_value":
            out[kv.key] = value.string_value
        elif kind == "double_value":
            d = value.double_value
            if 1e-4 <= abs(d) < 1e16:
                text = repr(d)
                out[kv.key] = text[:-2] if text.endswith(".0") else text
            else:
                out[kv.key] = format_double(d)
        else:
            out[kv.key] = as_string(value)
    return out
