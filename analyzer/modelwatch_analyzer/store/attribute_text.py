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
values; finite doubles are rendered by the SDK's :func:`modelwatch.values.format_double`
(the SDK keys per-class probabilities by the same text).
"""

from __future__ import annotations

import base64
import math
from typing import Any

from modelwatch.values import format_double as _es6  # finite doubles: the SDK renders class names the same way


class _Unsupported(ValueError):
    """A NaN or infinity inside an array or map: Go's json.Marshal fails on it."""


def format_double(value: float) -> str:
    """pdata's ``float64AsString``: Go's JSON (ES6) rendering of a float64."""
    if math.isnan(value):
        return "json: unsupported value: NaN"
    if math.isinf(value):
        return "json: unsupported value: " + ("+Inf" if value > 0 else "-Inf")
    return _es6(value)


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
