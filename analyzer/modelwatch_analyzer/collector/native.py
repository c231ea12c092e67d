"""Native trace ingest: ClickHouse parses the OTLP protobuf itself and renders the exporter's rows.

The Python conversion (:func:`modelwatch_analyzer.collector.otlp_rows.span_rows`) costs
~1-2 µs per attribute. On the embedded store, a group-commit batch of trace
requests is instead written as length-delimited ``ExportTraceServiceRequest``
messages to a file and inserted with one ``INSERT INTO otel_traces SELECT …
FROM file(…, 'Protobuf', …)``: ClickHouse's Protobuf input format reads them
with the schema in ``otlp_trace.proto`` (OTLP's field numbers), ``ARRAY JOIN``
flattens resource spans / scope spans / spans to one row per span, and the SQL
below renders every value exactly as :mod:`modelwatch_analyzer.store.attribute_text` does
(pdata's ``AsString``): doubles in Go's ES6 form, NaN/Inf as
``json: unsupported value: …``, bytes in base64, a later duplicate key winning.

Array and kvlist attribute values (Go JSON) are not rendered here: a request
holding one anywhere is converted on the Python path (the check is a cheap
query of the value kinds alone, see :func:`complex_requests`).
``tests/analyzer/test_native_equivalence.py`` compares the two paths row for
row, byte for byte.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from google.protobuf.internal.encoder import _VarintBytes

PROTO_PATH = Path(__file__).with_name("otlp_trace.proto")
MESSAGE = "ExportTraceServiceRequest"

_KINDS = ("none", "string_value", "bool_value", "int_value", "double_value", "array_value", "kvlist_value", "bytes_value")
# the oneof presence indicator: 0 when no member is set, else the member's field number
_ENUM = "Enum8(" + ", ".join(f"\\'{name}\\' = {n}" for n, name in enumerate(_KINDS)) + ")"
_ANY = f"Tuple(string_value String, bool_value Bool, int_value Int64, double_value Float64, bytes_value String, value {_ENUM})"
_KV = f"Array(Tuple(key String, value {_ANY}))"
_EVENTS_AND_LINKS = (f"events Array(Tuple(time_unix_nano UInt64, name String, attributes {_KV})), "
                     f"links Array(Tuple(trace_id String, span_id String, trace_state String, attributes {_KV})), ")


def _structure(events_and_links: bool = True) -> str:
    """The batch file's columns; without `events_and_links` the reader skips those fields (a batch without any)."""
    return (f"resource_spans Array(Tuple(resource Tuple(attributes {_KV}), scope_spans Array(Tuple("
            f"scope Tuple(name String, version String), spans Array(Tuple("
            f"trace_id String, span_id String, trace_state String, parent_span_id String, name String, kind Int32, "
            f"start_time_unix_nano UInt64, end_time_unix_nano UInt64, attributes {_KV}, "
            f"{_EVENTS_AND_LINKS if events_and_links else ''}status Tuple(message String, code Int32)))))))")

_KIND_ONLY = f"Array(Tuple(key String, value Tuple(value {_ENUM})))"
# just the keys and value kinds, for finding the requests to convert in Python
KINDS_STRUCTURE = (
    f"resource_spans Array(Tuple(resource Tuple(attributes {_KIND_ONLY}), scope_spans Array(Tuple("
    f"spans Array(Tuple(attributes {_KIND_ONLY}, events Array(Tuple(attributes {_KIND_ONLY})), "
    f"links Array(Tuple(attributes {_KIND_ONLY}))))))))"
)

_UNSUPPORTED = "json: unsupported value: "


def settings() -> str:
    """The SETTINGS clause every read of a batch file needs."""
    return (f"format_schema = '{_quote(str(PROTO_PATH))}:{MESSAGE}', input_format_protobuf_oneof_presence = 1")


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _value(v: str) -> str:
    """SQL: an AnyValue tuple rendered as pdata's AsString (array / kvlist never reach here)."""
    d = f"{v}.double_value"
    double = (f"if(isFinite({d}), replaceRegexpOne(toString({d}), 'e(\\\\d)', 'e+\\\\1'), "
              f"if(isNaN({d}), '{_UNSUPPORTED}NaN', if({d} > 0, '{_UNSUPPORTED}+Inf', '{_UNSUPPORTED}-Inf')))")
    return (f"multiIf({v}.value = 'string_value', {v}.string_value, {v}.value = 'double_value', {double}, "
            f"{v}.value = 'int_value', toString({v}.int_value), {v}.value = 'bool_value', if({v}.bool_value, 'true', 'false'), "
            f"{v}.value = 'bytes_value', base64Encode({v}.bytes_value), '')")


def _attributes(attrs: str, var: str) -> str:
    """SQL: a repeated KeyValue as the exporter's map (lists with a duplicate key take the Python path)."""
    return f"mapFromArrays(arrayMap({var} -> {var}.key, {attrs}), arrayMap({var} -> {_value(f'{var}.value')}, {attrs}))"


def _hex(raw: str) -> str:
    """SQL: an id as lowercase hex, '' when empty or all zero bytes (as :func:`otlp_rows.hex_id`)."""
    return f"if(replaceAll({raw}, '\\0', '') = '', '', lower(hex({raw})))"


def _ns(expr: str) -> str:
    return f"fromUnixTimestamp64Nano(toInt64({expr}))"


_SPAN_KINDS = "['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer']"

# one expression per column of otlp_rows.TRACE_COLUMNS, over the ARRAY JOIN aliases rs / ss / s
_COLUMNS = {
    "Timestamp": _ns("s.start_time_unix_nano"),
    "TraceId": _hex("s.trace_id"),
    "SpanId": _hex("s.span_id"),
    "ParentSpanId": _hex("s.parent_span_id"),
    "TraceState": "s.trace_state",
    "SpanName": "s.name",
    "SpanKind": f"transform(s.kind, [0, 1, 2, 3, 4, 5], {_SPAN_KINDS}, 'Unspecified')",
    "ServiceName": "_resource['service.name']",
    "ResourceAttributes": "_resource",
    "ScopeName": "ss.scope.name",
    "ScopeVersion": "ss.scope.version",
    "SpanAttributes": _attributes("s.attributes", "a"),
    "Duration": "if(s.end_time_unix_nano > s.start_time_unix_nano, s.end_time_unix_nano - s.start_time_unix_nano, 0)",
    "StatusCode": "transform(s.status.code, [0, 1, 2], ['Unset', 'Ok', 'Error'], 'Unset')",
    "StatusMessage": "s.status.message",
    "Events.Timestamp": f"arrayMap(e -> {_ns('e.time_unix_nano')}, s.events)",
    "Events.Name": "arrayMap(e -> e.name, s.events)",
    "Events.Attributes": f"arrayMap(e -> {_attributes('e.attributes', 'ea')}, s.events)",
    "Links.TraceId": f"arrayMap(l -> {_hex('l.trace_id')}, s.links)",
    "Links.SpanId": f"arrayMap(l -> {_hex('l.span_id')}, s.links)",
    "Links.TraceState": "arrayMap(l -> l.trace_state, s.links)",
    "Links.Attributes": f"arrayMap(l -> {_attributes('l.attributes', 'la')}, s.links)",
}


COMPLEX_MARKER = "modelwatch: array or kvlist value, or duplicate key"


def _has_complex(events_and_links: bool = True) -> str:
    """SQL: whether a request row (over `resource_spans`) holds, in any attribute list, an array or kvlist
    value (Go JSON, rendered in Python) or a duplicate key (the later one wins: rare, left to Python too)."""
    hit = ("(arrayExists(a -> a.value.value IN ('array_value', 'kvlist_value'), {0}) "
           "OR arrayUniq(arrayMap(a -> a.key, {0})) != length({0}))")
    nested = (f" OR arrayExists(e -> {hit.format('e.attributes')}, s.events) "
              f"OR arrayExists(l -> {hit.format('l.attributes')}, s.links)") if events_and_links else ""
    span = f"arrayExists(s -> {hit.format('s.attributes')}{nested}, ss.spans)"
    return (f"arrayExists(rs -> {hit.format('rs.resource.attributes')} OR arrayExists(ss -> {span}, rs.scope_spans), "
            f"resource_spans)")


def insert_sql(table: str, path: str, rows: int, events_and_links: bool = True) -> str:
    """``INSERT INTO table SELECT …`` of every span of the batch file at `path` (`table` already quoted).

    If any request of the file holds an array or kvlist value, the statement
    fails with :data:`COMPLEX_MARKER` before anything is written: the source
    is checked before ``ARRAY JOIN``, and the insert squashes the whole batch
    (`rows` spans at most) into one block, written only at the end.
    Without `events_and_links` (for a batch whose spans have none: the
    receiver knows) the events and links are neither read nor rendered, their
    columns left to their defaults (empty), which is what they would hold:
    a shorter statement, analysed in about half the time.
    """
    from modelwatch_analyzer.collector.otlp_rows import TRACE_COLUMNS

    assert tuple(_COLUMNS) == TRACE_COLUMNS
    chosen = {c: e for c, e in _COLUMNS.items() if events_and_links or not c.startswith(("Events.", "Links."))}
    columns = ", ".join(f"`{c}`" for c in chosen)
    exprs = ",\n    ".join(chosen.values())
    block = max(int(rows), 1) * 2 + 65536
    return (f"INSERT INTO {table} ({columns})\nSELECT\n    {exprs}\n"
            # the resource's map is rendered once per resource, before the spans are joined
            f"FROM (SELECT rs.scope_spans AS scope_spans, {_attributes('rs.resource.attributes', 'r')} AS _resource\n"
            f"      FROM (SELECT resource_spans FROM file('{_quote(path)}', 'Protobuf', '{_structure(events_and_links)}')\n"
            f"            WHERE NOT throwIf({_has_complex(events_and_links)}, '{COMPLEX_MARKER}'))\n"
            f"      ARRAY JOIN resource_spans AS rs)\n"
            f"ARRAY JOIN scope_spans AS ss ARRAY JOIN ss.spans AS s\n"
            f"SETTINGS {settings()}, min_insert_block_size_rows = {block}, min_insert_block_size_bytes = 0, "
            f"max_insert_block_size = {block}")


def complex_sql(path: str) -> str:
    """The 0-based positions of the requests of a batch file holding an array or kvlist value anywhere."""
    return (f"SELECT n FROM (SELECT rowNumberInAllBlocks() AS n, {_has_complex()} AS hit "
            f"FROM file('{_quote(path)}', 'Protobuf', '{KINDS_STRUCTURE}')) WHERE hit ORDER BY n "
            f"SETTINGS {settings()}, max_threads = 1")


def write_batch(path: str, bodies: Iterable[bytes]) -> int:
    """Write serialized requests as length-delimited messages; returns the bytes written."""
    parts = []
    for body in bodies:
        parts.append(_VarintBytes(len(body)))
        parts.append(body)
    data = b"".join(parts)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)
