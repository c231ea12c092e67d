"""OTLP requests to the exporter tables' rows (``otel_traces``; metrics and ``otel_logs`` below), exactly as the
collector's clickhouse exporter writes them.

One row per span: ids as lowercase hex (empty when unset), ``SpanKind`` as
``Internal``/``Server``/``Client``/``Producer``/``Consumer``/``Unspecified``,
``StatusCode`` as ``Unset``/``Ok``/``Error``, ``ServiceName`` from the
resource's ``service.name``, ``Duration`` in nanoseconds, every attribute
rendered by :mod:`modelwatch_analyzer.store.attribute_text`, events and links as the
``Events.*`` / ``Links.*`` nested arrays. Timestamps are integers of
nanoseconds (``DateTime64(9)`` ticks).

Each row's own timestamp (a span's start, a data point's time, a log
record's time), the tables' partition and TTL key, must lie between
2000-01-01 (or the table's retention before now, when the receiver passes
it as `earliest`) and 7 days after the receiver's clock (:func:`row_time`).
A span older than the raw spans' retention is still accepted when it is a
prediction or a label and its typed table keeps it (:class:`SpanBounds`):
``otel_traces`` drops it, its typed row stays. Any
other timestamp (a span's end, event and exemplar times, a data point's
optional start) only up to DateTime64(9)'s end in 2262 (:func:`ns`). A value
outside refuses the whole request (ValueError naming the field): it would
otherwise be acknowledged and then dropped by the TTL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

from modelwatch import contract as c

from modelwatch_analyzer.store.attribute_text import as_string, attributes_map

TRACE_COLUMNS = (
    "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind", "ServiceName",
    "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes", "Duration", "StatusCode", "StatusMessage",
    "Events.Timestamp", "Events.Name", "Events.Attributes",
    "Links.TraceId", "Links.SpanId", "Links.TraceState", "Links.Attributes",
)

# OTLP enum values (opentelemetry.proto.trace.v1.Span.SpanKind, Status.StatusCode) to the exporter's spellings
SPAN_KINDS = {0: "Unspecified", 1: "Internal", 2: "Server", 3: "Client", 4: "Producer", 5: "Consumer"}
STATUS_CODES = {0: "Unset", 1: "Ok", 2: "Error"}


MAX_TIME_NS = 2**63 - 1  # DateTime64(9) holds int64 nanoseconds (until 2262-04-11)

EARLIEST_NS = 946_684_800 * 10**9
"""2000-01-01T00:00:00Z: the earliest time a row's own timestamp may have (a store's retention may set a later one)."""
FUTURE_SLACK_NS = 7 * 86_400 * 10**9
"""How far after the receiver's clock a row's own timestamp may be (clock skew between hosts)."""


def ns(value: int) -> int:
    """A timestamp in nanoseconds, refused (ValueError) beyond what DateTime64(9) can hold."""
    if value > MAX_TIME_NS:
        raise ValueError(f"timestamp {value} ns is beyond 2262, out of DateTime64(9) range")
    return value


def latest_ns() -> int:
    """The latest row timestamp accepted now (see :func:`row_time`)."""
    return time.time_ns() + FUTURE_SLACK_NS


def _iso(value: int) -> str:
    return datetime.fromtimestamp(value // 10**9, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def row_time(value: int, field: str, earliest: int, latest: int) -> int:
    """A row's own timestamp (a span's start, a data point's time, a log's time), refused (ValueError naming
    `field`) outside `earliest` .. `latest`.

    That timestamp is the table's partition and TTL key: 0, 1 ns or 2^63-1
    (which ``toDateTime`` wraps to 1990), or a time older than the table's
    retention, would be acknowledged and then dropped by the TTL. `earliest`
    is 2000-01-01 (:data:`EARLIEST_NS`) or, when the table has a retention,
    that long before now; `latest` is :func:`latest_ns`.
    """
    if earliest <= value <= latest:
        return value
    raise ValueError(f"{field} {value} ({_iso(value)}) is outside the accepted range {_iso(earliest)} .. "
                     f"{_iso(latest)} (from 2000-01-01, or the store's retention of the table when later, "
                     f"to 7 days after the receiver's clock)")


@dataclass(frozen=True)
class SpanBounds:
    """The earliest start time accepted for a span, by what it is (the typed views' rules: docs/contract.md).

    ``raw``: ``otel_traces``' retention before now; ``prediction`` / ``label``: ``ml_predictions``' /
    ``ml_labels``' (2000-01-01 for a table kept forever). A prediction or label span is accepted back to the
    earlier of its typed table's bound and the raw one; any other span back to the raw one."""

    raw: int
    prediction: int
    label: int

    def of(self, span: Any) -> int:
        """The earliest start accepted for `span` (an OTLP ``Span``); read only for spans older than ``raw``."""
        attrs = {kv.key: kv.value for kv in span.attributes}
        if span.name == c.LABEL_SPAN or c.LABEL_VALUE in attrs:  # a label, typed when it has a prediction id
            pid = attrs.get(c.PREDICTION_ID)
            return min(self.raw, self.label) if pid is not None and as_string(pid) != "" else self.raw
        model = attrs.get(c.MODEL_NAME)
        return min(self.raw, self.prediction) if model is not None and as_string(model) != "" else self.raw


def span_start(span: Any, earliest: int | SpanBounds, latest: int) -> int:
    """`span`'s start time, refused (ValueError) outside what `earliest` accepts for it, or after `latest`."""
    start = span.start_time_unix_nano
    low = earliest.raw if isinstance(earliest, SpanBounds) else earliest
    if low <= start <= latest:
        return start
    if isinstance(earliest, SpanBounds) and start < low:
        low = earliest.of(span)
    return row_time(start, "span start_time_unix_nano", low, latest)


def hex_id(raw: bytes) -> str:
    """A trace or span id as the exporter stores it: lowercase hex, or '' for an empty or all-zero id."""
    if not raw or not any(raw):
        return ""
    return raw.hex()


def span_rows(request: Any, earliest: int | SpanBounds = EARLIEST_NS) -> list[tuple[Any, ...]]:
    """Rows (in :data:`TRACE_COLUMNS` order) of an ``ExportTraceServiceRequest``; start times from `earliest`
    (see :func:`row_time`, :class:`SpanBounds`)."""
    rows: list[tuple[Any, ...]] = []
    latest = latest_ns()
    for resource_spans in request.resource_spans:
        resource = attributes_map(resource_spans.resource.attributes)
        service = service_name(resource_spans.resource.attributes)  # the first one, as the map keeps the last
        for scope_spans in resource_spans.scope_spans:
            scope_name = scope_spans.scope.name
            scope_version = scope_spans.scope.version
            for span in scope_spans.spans:
                start = span_start(span, earliest, latest)
                end = ns(span.end_time_unix_nano)
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
                    [ns(e.time_unix_nano) for e in span.events],
                    [e.name for e in span.events],
                    [attributes_map(e.attributes) for e in span.events],
                    [hex_id(link.trace_id) for link in span.links],
                    [hex_id(link.span_id) for link in span.links],
                    [link.trace_state for link in span.links],
                    [attributes_map(link.attributes) for link in span.links],
                ))
    return rows



# -- metrics ------------------------------------------------------------------------

_METRIC_COMMON = (
    "ResourceAttributes", "ResourceSchemaUrl", "ScopeName", "ScopeVersion", "ScopeAttributes",
    "ScopeDroppedAttrCount", "ScopeSchemaUrl", "ServiceName", "MetricName", "MetricDescription", "MetricUnit",
    "Attributes", "StartTimeUnix", "TimeUnix",
)
_EXEMPLARS = ("Exemplars.FilteredAttributes", "Exemplars.TimeUnix", "Exemplars.Value", "Exemplars.SpanId", "Exemplars.TraceId")

METRIC_COLUMNS: dict[str, tuple[str, ...]] = {
    "otel_metrics_gauge": _METRIC_COMMON + ("Value", "Flags") + _EXEMPLARS,
    "otel_metrics_sum": _METRIC_COMMON + ("Value", "Flags") + _EXEMPLARS + ("AggregationTemporality", "IsMonotonic"),
    "otel_metrics_histogram": _METRIC_COMMON + ("Count", "Sum", "BucketCounts", "ExplicitBounds") + _EXEMPLARS
    + ("Flags", "Min", "Max", "AggregationTemporality"),
    "otel_metrics_exponential_histogram": _METRIC_COMMON + (
        "Count", "Sum", "Scale", "ZeroCount", "PositiveOffset", "PositiveBucketCounts", "NegativeOffset",
        "NegativeBucketCounts") + _EXEMPLARS + ("Flags", "Min", "Max", "AggregationTemporality"),
    "otel_metrics_summary": _METRIC_COMMON + ("Count", "Sum", "ValueAtQuantiles.Quantile", "ValueAtQuantiles.Value", "Flags"),
}


def _number(point: Any) -> float:
    """A NumberDataPoint's or Exemplar's value as Float64, whichever of int / double it holds."""
    kind = point.WhichOneof("value")
    if kind == "as_int":
        return float(point.as_int)
    if kind == "as_double":
        return point.as_double
    return 0.0


def _exemplars(point: Any) -> tuple[list[Any], ...]:
    ex = point.exemplars
    return (
        [attributes_map(e.filtered_attributes) for e in ex],
        [ns(e.time_unix_nano) for e in ex],
        [_number(e) for e in ex],
        [hex_id(e.span_id) for e in ex],
        [hex_id(e.trace_id) for e in ex],
    )


def metric_rows(request: Any, earliest: int = EARLIEST_NS) -> dict[str, list[tuple[Any, ...]]]:
    """Rows per exporter metric table (columns in :data:`METRIC_COLUMNS` order) of an ``ExportMetricsServiceRequest``.

    One row per data point, as the exporter writes them; absent optional
    fields (histogram sum, min, max) are 0. A point's time must be from
    `earliest` (:func:`row_time`); its start time, optional, may be 0.
    """
    out: dict[str, list[tuple[Any, ...]]] = {t: [] for t in METRIC_COLUMNS}
    latest = latest_ns()

    def when(point: Any) -> int:  # TimeUnix, the tables' partition and TTL key
        return row_time(point.time_unix_nano, "data point time_unix_nano", earliest, latest)

    for rm in request.resource_metrics:
        resource = attributes_map(rm.resource.attributes)
        service = service_name(rm.resource.attributes)
        for sm in rm.scope_metrics:
            scope = sm.scope
            head = (resource, rm.schema_url, scope.name, scope.version, attributes_map(scope.attributes),
                    scope.dropped_attributes_count, sm.schema_url, service)
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                desc = (metric.name, metric.description, metric.unit)
                if kind == "gauge":
                    for p in metric.gauge.data_points:
                        out["otel_metrics_gauge"].append(head + desc + (
                            attributes_map(p.attributes), ns(p.start_time_unix_nano), when(p),
                            _number(p), p.flags) + _exemplars(p))
                elif kind == "sum":
                    s = metric.sum
                    for p in s.data_points:
                        out["otel_metrics_sum"].append(head + desc + (
                            attributes_map(p.attributes), ns(p.start_time_unix_nano), when(p),
                            _number(p), p.flags) + _exemplars(p) + (int(s.aggregation_temporality), bool(s.is_monotonic)))
                elif kind == "histogram":
                    h = metric.histogram
                    for p in h.data_points:
                        out["otel_metrics_histogram"].append(head + desc + (
                            attributes_map(p.attributes), ns(p.start_time_unix_nano), when(p),
                            p.count, p.sum, list(p.bucket_counts), list(p.explicit_bounds)) + _exemplars(p) + (
                            p.flags, p.min, p.max, int(h.aggregation_temporality)))
                elif kind == "exponential_histogram":
                    e = metric.exponential_histogram
                    for p in e.data_points:
                        out["otel_metrics_exponential_histogram"].append(head + desc + (
                            attributes_map(p.attributes), ns(p.start_time_unix_nano), when(p),
                            p.count, p.sum, p.scale, p.zero_count, p.positive.offset, list(p.positive.bucket_counts),
                            p.negative.offset, list(p.negative.bucket_counts)) + _exemplars(p) + (
                            p.flags, p.min, p.max, int(e.aggregation_temporality)))
                elif kind == "summary":
                    for p in metric.summary.data_points:
                        out["otel_metrics_summary"].append(head + desc + (
                            attributes_map(p.attributes), ns(p.start_time_unix_nano), when(p),
                            p.count, p.sum, [q.quantile for q in p.quantile_values], [q.value for q in p.quantile_values],
                            p.flags))
    return out


# -- logs ---------------------------------------------------------------------------

LOG_COLUMNS = (
    "Timestamp", "TraceId", "SpanId", "TraceFlags", "SeverityText", "SeverityNumber", "ServiceName", "Body",
    "ResourceSchemaUrl", "ResourceAttributes", "ScopeSchemaUrl", "ScopeName", "ScopeVersion", "ScopeAttributes",
    "LogAttributes", "EventName",
)  # TimestampTime is the table's DEFAULT toDateTime(Timestamp), as the exporter leaves it


def service_name(key_values: Any) -> str:
    """The exporter's ``GetServiceName``: the first ``service.name`` resource attribute, by ``AsString``; '' when absent."""
    for kv in key_values:
        if kv.key == "service.name":
            return as_string(kv.value)
    return ""


def log_rows(request: Any, earliest: int = EARLIEST_NS) -> list[tuple[Any, ...]]:
    """Rows (in :data:`LOG_COLUMNS` order) of an ``ExportLogsServiceRequest``, as the exporter's logs insert.

    One row per log record: ``Timestamp`` is ``time_unix_nano``, or
    ``observed_time_unix_nano`` when that is 0 (OTLP's "unknown"), or, when
    both are 0, the time the request is converted: this receiver is the
    collection system observing the record (the exporter would store the
    epoch, which the TTL drops at once). A set time out of :func:`row_time`'s
    range refuses the request; ids lowercase hex ('' when
    empty or all zero); ``TraceFlags`` and ``SeverityNumber`` as the
    exporter's ``uint8`` conversions (low 8 bits); ``Body`` by ``AsString``
    ('' when unset); resource, scope and record attributes as maps.
    """
    rows: list[tuple[Any, ...]] = []
    received = time.time_ns()
    latest = received + FUTURE_SLACK_NS
    for resource_logs in request.resource_logs:
        resource_attributes = resource_logs.resource.attributes
        resource = attributes_map(resource_attributes)
        service = service_name(resource_attributes)
        resource_url = resource_logs.schema_url
        for scope_logs in resource_logs.scope_logs:
            scope = scope_logs.scope
            head = (scope_logs.schema_url, scope.name, scope.version, attributes_map(scope.attributes))
            for record in scope_logs.log_records:
                if record.time_unix_nano:
                    timestamp = row_time(record.time_unix_nano, "log record time_unix_nano", earliest, latest)
                elif record.observed_time_unix_nano:
                    timestamp = row_time(record.observed_time_unix_nano, "log record observed_time_unix_nano",
                                         earliest, latest)
                else:  # both unset ("unknown"): this receiver observes the record now
                    timestamp = received
                rows.append((
                    timestamp,
                    hex_id(record.trace_id),
                    hex_id(record.span_id),
                    record.flags & 0xFF,
                    record.severity_text,
                    record.severity_number & 0xFF,
                    service,
                    as_string(record.body),
                    resource_url,
                    resource,
                ) + head + (attributes_map(record.attributes), record.event_name))
    return rows


Tables = dict[str, tuple[Sequence[str], list[tuple[Any, ...]]]]
"""Rows to insert: table name -> (its columns, its rows)."""


def trace_tables(request: Any, earliest: int | SpanBounds = EARLIEST_NS) -> Tables:
    """A trace export request as ``otel_traces`` rows."""
    return {"otel_traces": (TRACE_COLUMNS, span_rows(request, earliest))}


def metric_tables(request: Any, earliest: int = EARLIEST_NS) -> Tables:
    """A metrics export request as rows of the ``otel_metrics_*`` tables it has points for."""
    return {table: (METRIC_COLUMNS[table], rows) for table, rows in metric_rows(request, earliest).items() if rows}


def log_tables(request: Any, earliest: int = EARLIEST_NS) -> Tables:
    """A logs export request as ``otel_logs`` rows."""
    return {"otel_logs": (LOG_COLUMNS, log_rows(request, earliest))}
