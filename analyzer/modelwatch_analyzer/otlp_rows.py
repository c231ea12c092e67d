"""OTLP trace requests to ``otel_traces`` rows, exactly as the collector's clickhouse exporter writes them.

One row per span: ids as lowercase hex (empty when unset), ``SpanKind`` as
``Internal``/``Server``/``Client``/``Producer``/``Consumer``/``Unspecified``,
``StatusCode`` as ``Unset``/``Ok``/``Error``, ``ServiceName`` from the
resource's ``service.name``, ``Duration`` in nanoseconds, every attribute
rendered by :mod:`modelwatch_analyzer.render`, events and links as the
``Events.*`` / ``Links.*`` nested arrays. Timestamps are integers of
nanoseconds (``DateTime64(9)`` ticks).
"""

from __future__ import annotations

from typing import Any

from .render import attributes_map

TRACE_COLUMNS = (
    "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind", "ServiceName",
    "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes", "Duration", "StatusCode", "StatusMessage",
    "Events.Timestamp", "Events.Name", "Events.Attributes",
    "Links.TraceId", "Links.SpanId", "Links.TraceState", "Links.Attributes",
)

# OTLP enum values (opentelemetry.proto.trace.v1.Span.SpanKind, Status.StatusCode) to the exporter's spellings
SPAN_KINDS = {0: "Unspecified", 1: "Internal", 2: "Server", 3: "Client", 4: "Producer", 5: "Consumer"}
STATUS_CODES = {0: "Unset", 1: "Ok", 2: "Error"}


def hex_id(raw: bytes) -> str:
    """A trace or span id as the exporter stores it: lowercase hex, or '' for an empty or all-zero id."""
    if not raw or not any(raw):
        return ""
    return raw.hex()


def span_rows(request: Any) -> list[tuple[Any, ...]]:
    """Rows (in :data:`TRACE_COLUMNS` order) of an ``ExportTraceServiceRequest``."""
    rows: list[tuple[Any, ...]] = []
    for resource_spans in request.resource_spans:
        resource = attributes_map(resource_spans.resource.attributes)
        service = resource.get("service.name", "")
        for scope_spans in resource_spans.scope_spans:
            scope_name = scope_spans.scope.name
            scope_version = scope_spans.scope.version
            for span in scope_spans.spans:
                start, end = span.start_time_unix_nano, span.end_time_unix_nano
                rows.append((
                    start,
                    hex_id(span.trace_id),
                    hex_id(span.span_id),
                    hex_id(span.parent_span_id),
                    span.trace_state,
                    span.name,
                    SPAN_KINDS.get(span.kind, "Unspecified"),
                    service,
                    resource,
                    scope_name,
                    scope_version,
                    attributes_map(span.attributes),
                    max(0, end - start),
                    STATUS_CODES.get(span.status.code, "Unset"),
                    span.status.message,
                    [e.time_unix_nano for e in span.events],
                    [e.name for e in span.events],
                    [attributes_map(e.attributes) for e in span.events],
                    [hex_id(link.trace_id) for link in span.links],
                    [hex_id(link.span_id) for link in span.links],
                    [link.trace_state for link in span.links],
                    [attributes_map(link.attributes) for link in span.links],
                ))
    return rows

