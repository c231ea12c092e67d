"""The store's schema: the collector exporter's tables, modelwatch's tables and views, versioned.

``apply(store)`` runs, in order, the migrations not yet recorded in
``schema_migrations``; every statement is idempotent (``IF NOT EXISTS``), so
a migration interrupted half-way is simply run again.

Tables (names are the roles of DESIGN.md):

* ``otel_traces``, ``otel_metrics_{gauge,sum,histogram,exponential_histogram,summary}``,
  ``otel_logs`` (migration 7): the OpenTelemetry Collector clickhouse
  exporter's tables, with its column names and types. Whichever of the exporter or modelwatch creates them
  first, the other finds them compatible.
* ``ml_predictions``: one row per kept prediction, typed once at insert time
  by the materialized view ``ml_predictions_mv`` from ``otel_traces``
  (``SpanName = 'ml.predict'``). Features that parse as numbers go to
  ``Numeric`` (Float64; the exporter's ``+Inf``/``-Inf``/``NaN`` renderings
  included), the others to ``Categorical``. ``Weight`` is the span's
  ``ml.sampling.weight`` bounded to [1, 1e6] (absent, text or non-finite:
  1), ``WeightClamped`` set when the sent weight was not kept as is (migration
  11). Ordered by (model, version,
  time): a drift query reads one model's window, all features at once.
* ``ml_labels``: ground truth from ``ml.label`` spans, latest label per
  (model, prediction id) (ReplacingMergeTree).
* ``ml_baselines``, ``ml_results``, ``ml_alerts``: written by the analyzer;
  Replacing engines keyed so that re-running a window replaces its results.
* ``ml_hourly_aggregates`` (migration 8): the aggregates of analysed whole
  hours per baseline, read back by later analyses (see ``hourly.py``).

Retention is a TTL per table (:class:`Retention`). With ``cluster``, every
statement gets ``ON CLUSTER``, tables become ``Replicated*MergeTree`` named
``<table>_local`` with a ``Distributed`` table under the plain name, and the
views read and write the local tables (the exporter writes the Distributed
``otel_traces``, which forwards to the shards, whose views fire).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from modelwatch_analyzer.store.client import Store, ident

PREDICTION_SPAN = "ml.predict"
LABEL_SPAN = "ml.label"


@dataclass(frozen=True)
class Retention:
    """Days each kind of data is kept (0: forever)."""

    traces_days: int = 30
    logs_days: int = 30
    metrics_days: int = 90
    predictions_days: int = 180
    labels_days: int = 365
    results_days: int = 730
    alerts_days: int = 730


@dataclass(frozen=True)
class Context:
    """What DDL depends on: database, optional cluster, retention."""

    database: str
    cluster: str | None = None
    retention: Retention = field(default_factory=Retention)

    def name(self, table: str) -> str:
        """The physical table written to (``<table>_local`` on a cluster)."""
        return f"{self.database}.{ident(table + '_local' if self.cluster else table)}"

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER {ident(self.cluster)}" if self.cluster else ""

    def engine(self, kind: str = "MergeTree", args: str = "") -> str:
        if not self.cluster:
            return f"{kind}({args})"
        replicated = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'" + (f", {args}" if args else "")
        return f"Replicated{kind}({replicated})"

    def ttl(self, column: str, days: int) -> str:
        return f"TTL toDateTime({column}) + toIntervalDay({int(days)})" if days > 0 else ""


_BY_PREDICTION = ("cityHash64(SpanAttributes['ml.model.name'], if(SpanAttributes['ml.prediction.id'] != '', "
                  "SpanAttributes['ml.prediction.id'], TraceId))")
SHARD_KEYS = {
    # a prediction and its label on one shard (the label span carries the prediction's id), so the
    # performance join runs shard-locally; a model's results, alerts, baselines and detector state on
    # one shard, so Replacing engines replace and cooldowns see every alert
    "otel_traces": _BY_PREDICTION,
    "ml_predictions": "cityHash64(ModelName, PredictionId)",
    "ml_labels": "cityHash64(ModelName, PredictionId)",
    "ml_baselines": "cityHash64(ModelName)",
    "ml_results": "cityHash64(ModelName)",
    "ml_alerts": "cityHash64(ModelName)",
    "ml_detector_state": "cityHash64(ModelName)",
}


# tables created after migration 6 (which re-creates the Distributed tables of SHARD_KEYS): sharded from the start
LATER_SHARD_KEYS = {
    "ml_hourly_aggregates": "cityHash64(ModelName)",  # a model's hours on the shard that analyses it
}


def _distributed(ctx: Context, table: str, create: str = "CREATE TABLE IF NOT EXISTS") -> str:
    key = SHARD_KEYS.get(table) or LATER_SHARD_KEYS.get(table, "rand()")
    return (f"{create} {ctx.database}.{ident(table)}{ctx.on_cluster} AS {ctx.name(table)} "
            f"ENGINE = Distributed({ident(ctx.cluster)}, {ctx.database}, {ident(table + '_local')}, {key})")


def _table(ctx: Context, table: str, columns: str, engine: str, tail: str) -> list[str]:
    """CREATE TABLE (plus, on a cluster, the Distributed table over the local one)."""
    stmts = [f"CREATE TABLE IF NOT EXISTS {ctx.name(table)}{ctx.on_cluster} (\n{columns}\n) ENGINE = {engine}\n{tail}"]
    if ctx.cluster:
        stmts.append(_distributed(ctx, table))
    return stmts


def _shard_keys(ctx: Context) -> list[str]:
    """On a cluster, re-create the Distributed tables (they hold no data) with the shard keys of SHARD_KEYS."""
    if not ctx.cluster:
        return []
    return [_distributed(ctx, table, "CREATE OR REPLACE TABLE") for table in SHARD_KEYS]


# -- the collector exporter's tables --------------------------------------------------

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


def _otel_traces(ctx: Context) -> list[str]:
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
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1"""
    tail = (f"PARTITION BY toDate(Timestamp)\nORDER BY (ServiceName, SpanName, toDateTime(Timestamp))\n"
            f"{ctx.ttl('Timestamp', ctx.retention.traces_days)}\nSETTINGS index_granularity = 8192, ttl_only_drop_parts = 1")
    return _table(ctx, "otel_traces", columns, ctx.engine(), tail)


def _otel_metrics(ctx: Context) -> list[str]:
    stmts: list[str] = []
    for table, specific in METRIC_TABLES.items():
        columns = _METRIC_COMMON + "\n" + specific.replace("EXEMPLARS", _EXEMPLARS) + "\n" + _METRIC_INDEXES
        tail = (f"PARTITION BY toDate(TimeUnix)\nORDER BY (ServiceName, MetricName, Attributes, toUnixTimestamp64Nano(TimeUnix))\n"
                f"{ctx.ttl('TimeUnix', ctx.retention.metrics_days)}\nSETTINGS index_granularity = 8192, ttl_only_drop_parts = 1")
        stmts += _table(ctx, table, columns, ctx.engine(), tail)
    return stmts



def _otel_logs(ctx: Context) -> list[str]:
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
    return _table(ctx, "otel_logs", columns, ctx.engine(), tail)

# -- modelwatch's tables ----------------------------------------------------------------

_UNSUPPORTED = "json: unsupported value: "  # how the exporter renders a non-finite double
LEADING_ZERO = "^[-+]?0[0-9]"
"""A value matching this (RE2) is text even when it parses as a number: see :func:`_num`."""


def _num(expr: str) -> str:
    """SQL: a rendered attribute value as Nullable(Float64).

    Whatever ``toFloat64OrNull`` parses, plus the exporter's renderings of
    non-finite doubles, which are numbers out of range, not text. Text with
    a leading zero (``02139``, ``007``) is a code, not a number: the exporter
    never renders a number so, and parsing it would lose the zeros (a zip
    code would no longer match its training category).
    """
    return (f"if(startsWith({expr}, '{_UNSUPPORTED}'), multiIf({expr} = '{_UNSUPPORTED}+Inf', inf, "
            f"{expr} = '{_UNSUPPORTED}-Inf', -inf, nan), if(match({expr}, '{LEADING_ZERO}'), NULL, toFloat64OrNull({expr})))")


MAX_WEIGHT = 1e6
"""The largest sampling weight the typed view keeps (a sampling rate of one in a million); see :func:`_weight`."""
_BOUNDED_WEIGHTS = True  # False: ml_predictions and its view as migrations before 12 made them (for tests of 12)


def _weight_clamped_column() -> str:
    return "\n    WeightClamped Bool DEFAULT false," if _BOUNDED_WEIGHTS else ""


def _weight(attr: str) -> str:
    """SQL: the ``Weight`` (and ``WeightClamped``) select items of a prediction span's ``ml.sampling.weight``.

    A weight is a count of predictions one kept span stands for, at least 1:
    absent, text, NaN, infinite or below 1 is 1; above :data:`MAX_WEIGHT` is
    :data:`MAX_WEIGHT`. ``WeightClamped`` says the span carried a weight that
    was not kept as sent (the raw value stays in ``otel_traces``), so that
    bounding one bad attribute neither refuses a batch nor passes unnoticed.
    """
    w = f"toFloat64OrNull({attr}['ml.sampling.weight'])"
    if not _BOUNDED_WEIGHTS:
        return f"if(isFinite(ifNull({w}, 1.)) AND {w} >= 1., {w}, 1.) AS Weight"
    return (f"if(isFinite(ifNull({w}, 1.)) AND {w} >= 1., least({w}, {MAX_WEIGHT!r}), 1.) AS Weight,\n"
            f"    mapContains({attr}, 'ml.sampling.weight') "
            f"AND NOT ifNull(isFinite({w}) AND {w} >= 1. AND {w} <= {MAX_WEIGHT!r}, false) AS WeightClamped")


def _predictions(ctx: Context) -> list[str]:
    columns = f"""    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    ModelName LowCardinality(String),
    ModelVersion LowCardinality(String),
    PredictionId String CODEC(ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String),
    Weight Float64 CODEC(ZSTD(1)),{_weight_clamped_column()}
    Reason LowCardinality(String),
    LowConfidence Bool,
    HighRisk Bool,
    IsError Bool,
    Prediction String CODEC(ZSTD(1)),
    PredictionNumber Nullable(Float64) CODEC(ZSTD(1)),
    Score Nullable(Float64) CODEC(ZSTD(1)),
    Confidence Nullable(Float64) CODEC(ZSTD(1)),
    Numeric Map(LowCardinality(String), Float64) CODEC(ZSTD(1)),
    Categorical Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    DurationNs UInt64 CODEC(ZSTD(1))"""
    tail = (f"PARTITION BY toDate(Timestamp)\nORDER BY (ModelName, ModelVersion, Timestamp)\n"
            f"{ctx.ttl('Timestamp', ctx.retention.predictions_days)}\nSETTINGS ttl_only_drop_parts = 1")
    return _table(ctx, "ml_predictions", columns, ctx.engine(), tail) + [
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {ctx.database}.{ident('ml_predictions_mv')}{ctx.on_cluster} "
        f"TO {ctx.name('ml_predictions')} AS\n{_predictions_select(ctx)}"
    ]


def _predictions_select(ctx: Context) -> str:
    """The view's query: a prediction span's attributes, typed (see :func:`_num` for what counts as a number)."""
    attr = "SpanAttributes"
    # each feature value is parsed once: keys, values and parsed numbers as parallel arrays
    numeric = ("mapFromArrays(arrayMap(k -> substring(k, 12), arrayFilter((k, n) -> isNotNull(n), _fk, _fn)), "
               "arrayMap(n -> assumeNotNull(n), arrayFilter(n -> isNotNull(n), _fn)))")
    categorical = ("mapFromArrays(arrayMap(k -> substring(k, 12), arrayFilter((k, n) -> isNull(n), _fk, _fn)), "
                   "arrayFilter((v, n) -> isNull(n), _fv, _fn))")
    return f"""WITH
    mapFilter((k, v) -> startsWith(k, 'ml.feature.'), {attr}) AS _f,
    mapKeys(_f) AS _fk,
    mapValues(_f) AS _fv,
    arrayMap(v -> {_num('v')}, _fv) AS _fn
SELECT
    Timestamp,
    {attr}['ml.model.name'] AS ModelName,
    {attr}['ml.model.version'] AS ModelVersion,
    if({attr}['ml.prediction.id'] != '', {attr}['ml.prediction.id'], TraceId) AS PredictionId,
    TraceId,
    SpanId,
    ServiceName,
    {_weight(attr)},
    {attr}['ml.sampling.reason'] AS Reason,
    {attr}['ml.low_confidence'] = 'true' AS LowConfidence,
    {attr}['ml.high_risk'] = 'true' AS HighRisk,
    StatusCode = 'Error' AS IsError,
    {attr}['ml.prediction.value'] AS Prediction,
    {_num(f"{attr}['ml.prediction.value']")} AS PredictionNumber,
    {_num(f"{attr}['ml.prediction.score']")} AS Score,
    {_num(f"{attr}['ml.prediction.confidence']")} AS Confidence,
    {numeric} AS Numeric,
    {categorical} AS Categorical,
    Duration AS DurationNs
FROM {ctx.name('otel_traces')}
WHERE SpanName = '{PREDICTION_SPAN}'"""


def _labels(ctx: Context) -> list[str]:
    columns = """    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    ModelName LowCardinality(String),
    ModelVersion LowCardinality(String),
    PredictionId String CODEC(ZSTD(1)),
    Label String CODEC(ZSTD(1)),
    LabelNumber Nullable(Float64) CODEC(ZSTD(1)),
    TraceId String CODEC(ZSTD(1))"""
    tail = (f"PARTITION BY toYYYYMM(Timestamp)\nORDER BY (ModelName, PredictionId)\n"
            f"{ctx.ttl('Timestamp', ctx.retention.labels_days)}")
    return _table(ctx, "ml_labels", columns, ctx.engine("ReplacingMergeTree", "Timestamp"), tail) + [
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {ctx.database}.{ident('ml_labels_mv')}{ctx.on_cluster} "
        f"TO {ctx.name('ml_labels')} AS\n{_labels_select(ctx)}"
    ]


def _labels_select(ctx: Context) -> str:
    attr = "SpanAttributes"
    return f"""SELECT
    Timestamp,
    {attr}['ml.model.name'] AS ModelName,
    {attr}['ml.model.version'] AS ModelVersion,
    {attr}['ml.prediction.id'] AS PredictionId,
    {attr}['ml.label.value'] AS Label,
    {_num(f"{attr}['ml.label.value']")} AS LabelNumber,
    TraceId
FROM {ctx.name('otel_traces')}
WHERE SpanName = '{LABEL_SPAN}' AND {attr}['ml.prediction.id'] != ''"""


def _analyzer_tables(ctx: Context) -> list[str]:
    r = ctx.retention
    baselines = """    ModelName LowCardinality(String),
    ModelVersion LowCardinality(String),
    BaselineId String,
    CreatedAt DateTime64(3),
    Source String,
    Feature String,
    Kind LowCardinality(String),
    N Float64,
    Missing Float64,
    Min Nullable(Float64),
    Max Nullable(Float64),
    Mean Nullable(Float64),
    Std Nullable(Float64),
    BinEdges Array(Float64),
    BinCounts Array(Float64),
    Quantiles Array(Float64),
    Categories Array(String),
    CategoryCounts Array(Float64)"""
    results = """    RunId String,
    RunAt DateTime64(3),
    ModelName LowCardinality(String),
    ModelVersion LowCardinality(String),
    WindowStart DateTime64(3),
    WindowEnd DateTime64(3),
    BaselineId String,
    Feature String,
    Method LowCardinality(String),
    Statistic Nullable(Float64),
    PValue Nullable(Float64),
    Threshold Nullable(Float64),
    Drifted Nullable(Bool),
    Severity LowCardinality(String),
    NReference Float64,
    NCurrent Float64,
    Details String CODEC(ZSTD(1))"""
    alerts = """    AlertId String,
    UpdatedAt DateTime64(3),
    FiredAt DateTime64(3),
    ModelName LowCardinality(String),
    ModelVersion LowCardinality(String),
    Feature String,
    Method LowCardinality(String),
    Severity LowCardinality(String),
    Rule String,
    Message String,
    RunId String,
    Route String,
    Delivered Bool,
    Attempts UInt32,
    DeliveredAt Nullable(DateTime64(3)),
    LastError String"""
    return (
        _table(ctx, "ml_baselines", baselines, ctx.engine("ReplacingMergeTree", "CreatedAt"),
               "ORDER BY (ModelName, ModelVersion, BaselineId, Feature)")
        # one row per (model, version, window, feature, method): re-running a window replaces it
        + _table(ctx, "ml_results", results, ctx.engine("ReplacingMergeTree", "RunAt"),
                 f"PARTITION BY toYYYYMM(WindowStart)\nORDER BY (ModelName, ModelVersion, WindowStart, WindowEnd, Feature, Method)\n"
                 f"{ctx.ttl('WindowEnd', r.results_days)}")
        + _table(ctx, "ml_alerts", alerts, ctx.engine("ReplacingMergeTree", "UpdatedAt"),
                 f"PARTITION BY toYYYYMM(FiredAt)\nORDER BY (ModelName, AlertId)\n{ctx.ttl('FiredAt', r.alerts_days)}")
    )


def _analyzer_v2(ctx: Context) -> list[str]:
    """Result kind and status; baselines' grids (see baseline.py); the streaming detectors' state (resumable)."""
    stmts = []
    tables = [ctx.name("ml_results")] + ([f"{ctx.database}.{ident('ml_results')}"] if ctx.cluster else [])
    for table in tables:
        stmts.append(f"ALTER TABLE {table}{ctx.on_cluster} ADD COLUMN IF NOT EXISTS Kind LowCardinality(String) "
                     "DEFAULT 'drift' AFTER Method")
        stmts.append(f"ALTER TABLE {table}{ctx.on_cluster} ADD COLUMN IF NOT EXISTS Status LowCardinality(String) "
                     "DEFAULT 'ok' AFTER Kind")
    baseline_columns = ("NEffective Float64", "Rows Float64", "GridLow Nullable(Float64)", "GridWidth Nullable(Float64)",
                        "GridCells UInt32", "GridCounts Array(Float64) CODEC(ZSTD(1))", "TailBelow Float64",
                        "TailAbove Float64", "BinCuts Array(UInt32)", "Other Float64", "GridLog Bool")
    tables = [ctx.name("ml_baselines")] + ([f"{ctx.database}.{ident('ml_baselines')}"] if ctx.cluster else [])
    for table in tables:
        for column in baseline_columns:
            stmts.append(f"ALTER TABLE {table}{ctx.on_cluster} ADD COLUMN IF NOT EXISTS {column}")
    state = """    ModelName LowCardinality(String),
    ModelVersion LowCardinality(String),
    Feature String,
    Method LowCardinality(String),
    Detector LowCardinality(String),
    UpdatedAt DateTime64(3),
    LastWindowEnd DateTime64(3),
    State String"""
    return stmts + _table(ctx, "ml_detector_state", state, ctx.engine("ReplacingMergeTree", "UpdatedAt"),
                          "ORDER BY (ModelName, ModelVersion, Feature, Method, Detector)")


# Migration 4: stronger compression of the bulky columns (codecs change no column's name or type, so the
# exporter's tables stay the exporter's). New parts and merges use them; measured on prediction spans,
# ZSTD(3) stores ~3% less than ZSTD(1) in otel_traces' SpanAttributes and ~6% less in ml_predictions.
COMPRESSION: dict[str, dict[str, str]] = {
    "otel_traces": {"SpanAttributes": "ZSTD(3)"},
    "ml_predictions": {c: "ZSTD(3)" for c in ("PredictionId", "TraceId", "SpanId", "Weight", "Prediction",
                                              "PredictionNumber", "Score", "Confidence", "Numeric", "Categorical",
                                              "DurationNs")},
}


def _compression(ctx: Context) -> list[str]:
    """ALTER … MODIFY COLUMN … CODEC of the physical tables (``_local`` on a cluster; Distributed ones have no codecs)."""
    return [f"ALTER TABLE {ctx.name(table)}{ctx.on_cluster} MODIFY COLUMN {ident(column)} CODEC({codec})"
            for table, columns in COMPRESSION.items() for column, codec in columns.items()]


def _hourly(ctx: Context) -> list[str]:
    """Hourly aggregates of analysed windows (see hourly.py): one row per (model, version, baseline, hour, kind,
    feature), replaced when the hour is computed again; kept as long as the predictions they summarise."""
    columns = """    ModelName LowCardinality(String),
    ModelVersion LowCardinality(String),
    BaselineId String,
    HourStart DateTime,
    Kind LowCardinality(String),
    Feature String,
    ComputedAt DateTime64(3),
    Rows UInt64,
    N Float64,
    N2 Float64,
    NonFinite Float64,
    Min Nullable(Float64),
    Max Nullable(Float64),
    GridCounts Array(Float64) CODEC(ZSTD(3)),
    TailBelow Float64,
    TailAbove Float64,
    OutOfRange Float64,
    Categories Array(String) CODEC(ZSTD(3)),
    CategoryCounts Array(Float64) CODEC(ZSTD(3)),
    Distinct UInt64"""
    tail = (f"PARTITION BY toYYYYMM(HourStart)\nORDER BY (ModelName, ModelVersion, BaselineId, HourStart, Kind, Feature)\n"
            f"{ctx.ttl('HourStart', ctx.retention.predictions_days)}")
    return _table(ctx, "ml_hourly_aggregates", columns, ctx.engine("ReplacingMergeTree", "ComputedAt"), tail)


def _typed_views(ctx: Context) -> list[str]:
    """The views' queries as this version writes them (text with a leading zero stays text); ``MODIFY QUERY`` swaps
    a view's query in one step, so no span inserted meanwhile goes untyped. Rows already typed stay as they are."""
    return [f"ALTER TABLE {ctx.database}.{ident(view)}{ctx.on_cluster} MODIFY QUERY\n{select(ctx)}"
            for view, select in (("ml_predictions_mv", _predictions_select), ("ml_labels_mv", _labels_select))]


def _bounded_weights(ctx: Context) -> list[str]:
    """``ml_predictions`` gains ``WeightClamped`` (after ``Weight``, as a new table has it), then the view bounds
    weights (see :func:`_weight`); rows typed before keep their weights."""
    tables = [ctx.name("ml_predictions")] + ([f"{ctx.database}.{ident('ml_predictions')}"] if ctx.cluster else [])
    return [f"ALTER TABLE {table}{ctx.on_cluster} ADD COLUMN IF NOT EXISTS WeightClamped Bool DEFAULT false AFTER Weight"
            for table in tables] + [
        f"ALTER TABLE {ctx.database}.{ident('ml_predictions_mv')}{ctx.on_cluster} MODIFY QUERY\n{_predictions_select(ctx)}"]


def _hourly_sample_rate(ctx: Context) -> list[str]:
    """Hourly aggregates say the share of the hour's rows their numeric aggregates were read from (numeric_sample_rows)."""
    tables = [ctx.name("ml_hourly_aggregates")] + ([f"{ctx.database}.{ident('ml_hourly_aggregates')}"] if ctx.cluster else [])
    return [f"ALTER TABLE {table}{ctx.on_cluster} ADD COLUMN IF NOT EXISTS SampleRate Float64 DEFAULT 1" for table in tables]


def _alert_superseded(ctx: Context) -> list[str]:
    """An alert fired by two analyzers at once is kept once: rows record the store's clock at their first write
    (RecordedAt), and the later one names the one it gave way to (SupersededBy)."""
    tables = [ctx.name("ml_alerts")] + ([f"{ctx.database}.{ident('ml_alerts')}"] if ctx.cluster else [])
    stmts = [f"ALTER TABLE {table}{ctx.on_cluster} ADD COLUMN IF NOT EXISTS {column}" for table in tables
             for column in ("SupersededBy String DEFAULT ''", "RecordedAt DateTime64(9) DEFAULT now64(9)")]
    # rows written before: their RecordedAt is fixed once (a DEFAULT of an old part is computed at each read)
    return stmts + [f"ALTER TABLE {ctx.name('ml_alerts')}{ctx.on_cluster} MATERIALIZE COLUMN RecordedAt"]


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: Callable[[Context], list[str]]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "collector exporter tables", lambda ctx: _otel_traces(ctx) + _otel_metrics(ctx)),
    Migration(2, "typed predictions and labels", lambda ctx: _predictions(ctx) + _labels(ctx)),
    Migration(3, "analyzer tables", _analyzer_tables),
    Migration(4, "stronger compression of span attributes and typed predictions", _compression),
    Migration(5, "analyzer result kinds and detector state", _analyzer_v2),
    Migration(6, "cluster shard keys: a prediction with its label, a model's results on one shard", _shard_keys),
    Migration(7, "collector exporter logs table", _otel_logs),
    Migration(8, "hourly aggregates of analysed windows", _hourly),
    Migration(9, "typed views: text with a leading zero is a category, not a number", _typed_views),
    Migration(10, "hourly aggregates record their sample rate", _hourly_sample_rate),
    Migration(11, "alerts record which alert a concurrent duplicate gave way to", _alert_superseded),
    Migration(12, "typed predictions: sampling weights bounded to [1, 1e6], out-of-range ones flagged", _bounded_weights),
)


def _migrations_table(ctx: Context) -> list[str]:
    return _table(ctx, "schema_migrations", """    Version UInt32,
    Name String,
    AppliedAt DateTime64(3)""", ctx.engine("ReplacingMergeTree", "AppliedAt"), "ORDER BY Version")


def statements(database: str, cluster: str | None = None, retention: Retention | None = None) -> list[str]:
    """Every statement of every migration, in order (for review, or ``modelwatch schema apply --print``)."""
    ctx = Context(ident(database), cluster, retention or Retention())
    if cluster:
        ident(cluster)
    out = _migrations_table(ctx)
    for m in MIGRATIONS:
        out += m.statements(ctx)
    return out


def apply(store: Store, cluster: str | None = None, retention: Retention | None = None) -> list[Migration]:
    """Run the migrations `store` has not recorded yet; return those applied (none when up to date)."""
    if cluster:
        ident(cluster)
    ctx = Context(ident(store.database), cluster, retention or Retention())
    for sql in _migrations_table(ctx):
        store.command(sql)
    done = {int(r[0]) for r in store.query(f"SELECT Version FROM {store.table('schema_migrations')}")}
    applied = []
    for m in MIGRATIONS:
        if m.version in done:
            continue
        for sql in m.statements(ctx):
            store.command(sql)
        store.command(
            f"INSERT INTO {store.table('schema_migrations')} (Version, Name, AppliedAt) "
            "VALUES ({version:UInt32}, {name:String}, now64(3))",
            {"version": m.version, "name": m.name},
        )
        applied.append(m)
    return applied


def version(store: Store) -> int:
    """The highest migration applied to `store` (0 for an empty store)."""
    if "schema_migrations" not in store.tables():
        return 0
    rows = store.query(f"SELECT max(Version) FROM {store.table('schema_migrations')}")
    return int(rows[0][0] or 0)


_TTL = re.compile(r"\bTTL\s+toDateTime\(\s*`?\w+`?\s*\)\s*\+\s*toInterval(Second|Minute|Hour|Day|Week|Month|Year)"
                  r"\(\s*(\d+)\s*\)")
_UNIT_SECONDS = {"Second": 1, "Minute": 60, "Hour": 3600, "Day": 86_400, "Week": 7 * 86_400, "Month": 28 * 86_400,
                 "Year": 365 * 86_400}


def retention_seconds(store: Store, table: str) -> float | None:
    """How long `table` keeps a row after its timestamp, by its TTL (``TTL toDateTime(col) + toInterval…(n)``, as
    :class:`Retention` and the exporter write it; on a cluster, the local table's); None: no such TTL (kept
    forever, or a TTL of another form), or no such table. A month counts as 28 days (the shortest)."""
    rows = store.query("SELECT name, engine_full FROM system.tables WHERE database = {db:String} "
                       "AND name IN ({t:String}, {local:String})",
                       {"db": store.database, "t": table, "local": f"{table}_local"})
    engines = dict(rows)
    found = _TTL.search(engines.get(f"{table}_local") or engines.get(table) or "")
    return None if found is None else int(found.group(2)) * _UNIT_SECONDS[found.group(1)]


def ensure(store: Store) -> None:
    """Make `store` ready for the analyzer: apply the migrations on an embedded store; on a server, check only.

    A ClickHouse server's schema belongs to its operator (``modelwatch schema
    apply [--cluster NAME]``): applying it from the analyzer could create a
    cluster's tables without ``ON CLUSTER``. A server behind the code is a
    clear error instead.
    """
    if store.embedded:
        apply(store)
        return
    have, need = version(store), max(m.version for m in MIGRATIONS)
    if have < need:
        from modelwatch_analyzer.errors import StoreError

        raise StoreError(f"the store's schema is at version {have}, this modelwatch needs {need}: run "
                         f"`modelwatch schema apply --url ... [--cluster NAME]` first")

