"""The OpenTelemetry Collector clickhouse exporter's tables (``otel_traces``, ``otel_metrics_*``, ``otel_logs``),
with its column names and types: whichever of the exporter or modelwatch creates them first, the other finds
them compatible.

One difference on the embedded store: ``otel_traces`` has no bloom-filter indexes on the span attributes'
keys and values (:data:`SPAN_ATTRIBUTE_INDEXES`). They serve attribute searches in trace viewers (Jaeger,
Grafana) on a ClickHouse server; nothing searches an embedded store's spans by attribute, and they cost
~10-15 % of an insert's CPU and ~6 bytes per 25-feature span on disk (docs/benchmarks.md)."""

from __future__ import annotations

from modelwatch_analyzer.store.ddl import Context, create_table

_ATTRS = "Map(LowCardinality(String), String) CODEC(ZSTD(1))"

_METRIC_COMMON = f"""    ResourceAttributes {_ATTRS},
    ResourceSchemaUrl String CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    ScopeAttributes {_ATTRS},
    ScopeDroppedAttrCount UInt32 CODEC(ZSTD(1)),
    ScopeSchemaUrl String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    MetricName String CODEC(ZSTD(1)),
    MetricDescription String CODEC(ZSTD(1)),
    MetricUnit String CODEC(ZSTD(1)),
    Attributes {_ATTRS},
    StartTimeUnix DateTime64(9) CODEC(Delta, ZSTD(1)),
    TimeUnix DateTime64(9) CODEC(Delta, ZSTD(1)),"""

_EXEMPLARS = """    Exemplars Nested (
        FilteredAttributes Map(LowCardinality(String), String),
        TimeUnix DateTime64(9),
        Value Float64,
        SpanId String,
        TraceId String
    ) CODEC(ZSTD(1)),"""

_METRIC_INDEXES = """    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_key mapKeys(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_value mapValues(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_key mapKeys(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_value mapValues(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1"""

METRIC_TABLES: dict[str, str] = {
    "otel_metrics_gauge": """    Value Float64 CODEC(ZSTD(1)),
    Flags UInt32 CODEC(ZSTD(1)),
EXEMPLARS""",
    "otel_metrics_sum": """    Value Float64 CODEC(ZSTD(1)),
    Flags UInt32 CODEC(ZSTD(1)),
EXEMPLARS
    AggregationTemporality Int32 CODEC(ZSTD(1)),
    IsMonotonic Boolean CODEC(Delta, ZSTD(1)),""",
    "otel_metrics_histogram": """    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    BucketCounts Array(UInt64) CODEC(ZSTD(1)),
    ExplicitBounds Array(Float64) CODEC(ZSTD(1)),
EXEMPLARS
    Flags UInt32 CODEC(ZSTD(1)),
    Min Float64 CODEC(ZSTD(1)),
    Max Float64 CODEC(ZSTD(1)),
    AggregationTemporality Int32 CODEC(ZSTD(1)),""",
    "otel_metrics_exponential_histogram": """    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    Scale Int32 CODEC(ZSTD(1)),
    ZeroCount UInt64 CODEC(ZSTD(1)),
    PositiveOffset Int32 CODEC(ZSTD(1)),
    PositiveBucketCounts Array(UInt64) CODEC(ZSTD(1)),
    NegativeOffset Int32 CODEC(ZSTD(1)),
    NegativeBucketCounts Array(UInt64) CODEC(ZSTD(1)),
EXEMPLARS
    Flags UInt32 CODEC(ZSTD(1)),
    Min Float64 CODEC(ZSTD(1)),
    Max Float64 CODEC(ZSTD(1)),
    AggregationTemporality Int32 CODEC(ZSTD(1)),""",
    "otel_metrics_summary": """    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    ValueAtQuantiles Nested(
        Quantile Float64,
        Value Float64
    ) CODEC(ZSTD(1)),
    Flags UInt32 CODEC(ZSTD(1)),""",
}


SPAN_ATTRIBUTE_INDEXES = {
    "idx_span_attr_key": "mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1",
    "idx_span_attr_value": "mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1",
}
"""The exporter's span-attribute indexes of ``otel_traces``: on a server's store, not on an embedded one."""


def otel_traces(ctx: Context) -> list[str]:
    span_indexes = "" if ctx.embedded else "".join(
        f"\n    INDEX {name} {spec}," for name, spec in SPAN_ATTRIBUTE_INDEXES.items())
    columns = f"""    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes {_ATTRS},
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes {_ATTRS},
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,{span_indexes}
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1"""
    tail = (f"PARTITION BY toDate(Timestamp)\nORDER BY (ServiceName, SpanName, toDateTime(Timestamp))\n"
            f"{ctx.ttl('Timestamp', ctx.retention.traces_days)}\nSETTINGS index_granularity = 8192, ttl_only_drop_parts = 1")
    return create_table(ctx, "otel_traces", columns, ctx.engine(), tail)


def otel_metrics(ctx: Context) -> list[str]:
    stmts: list[str] = []
    for table, specific in METRIC_TABLES.items():
        columns = _METRIC_COMMON + "\n" + specific.replace("EXEMPLARS", _EXEMPLARS) + "\n" + _METRIC_INDEXES
        tail = (f"PARTITION BY toDate(TimeUnix)\nORDER BY (ServiceName, MetricName, Attributes, toUnixTimestamp64Nano(TimeUnix))\n"
                f"{ctx.ttl('TimeUnix', ctx.retention.metrics_days)}\nSETTINGS index_granularity = 8192, ttl_only_drop_parts = 1")
        stmts += create_table(ctx, table, columns, ctx.engine(), tail)
    return stmts



def otel_logs(ctx: Context) -> list[str]:
    """The exporter's ``otel_logs`` (contrib ``exporter/clickhouseexporter``, ``internal/sqltemplates/logs_table.sql``
    with the ``EventName`` column): names, types, indexes and keys as the exporter creates them; TTL on
    ``TimestampTime`` as the exporter sets it."""
    columns = f"""    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TimestampTime DateTime DEFAULT toDateTime(Timestamp),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    TraceFlags UInt8,
    SeverityText LowCardinality(String) CODEC(ZSTD(1)),
    SeverityNumber UInt8,
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    Body String CODEC(ZSTD(1)),
    ResourceSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes {_ATTRS},
    ScopeSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion LowCardinality(String) CODEC(ZSTD(1)),
    ScopeAttributes {_ATTRS},
    LogAttributes {_ATTRS},
    EventName String CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_key mapKeys(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_value mapValues(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_key mapKeys(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_value mapValues(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_body Body TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8"""
    tail = (f"PARTITION BY toDate(TimestampTime)\nPRIMARY KEY (ServiceName, TimestampTime)\n"
            f"ORDER BY (ServiceName, TimestampTime, Timestamp)\n{ctx.ttl('TimestampTime', ctx.retention.logs_days)}\n"
            "SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1")
    return create_table(ctx, "otel_logs", columns, ctx.engine(), tail)
