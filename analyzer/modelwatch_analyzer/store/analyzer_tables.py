"""The analyzer's tables: baselines, results, alerts, the streaming detectors' state, hourly aggregates."""

from __future__ import annotations

from modelwatch_analyzer.store.ddl import (
    Context,
    create_table,
    physical_and_distributed,
)

_BASELINE_COLUMNS = """    ModelName LowCardinality(String),
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
_RESULT_COLUMNS = """    RunId String,
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
_ALERT_COLUMNS = """    AlertId String,
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


def results_and_alerts(ctx: Context) -> list[str]:
    """Migration 3: baselines, results and alerts."""
    r = ctx.retention
    return (
        create_table(ctx, "ml_baselines", _BASELINE_COLUMNS, ctx.engine("ReplacingMergeTree", "CreatedAt"),
               "ORDER BY (ModelName, ModelVersion, BaselineId, Feature)")
        # one row per (model, version, window, feature, method): re-running a window replaces it
        + create_table(ctx, "ml_results", _RESULT_COLUMNS, ctx.engine("ReplacingMergeTree", "RunAt"),
                 f"PARTITION BY toYYYYMM(WindowStart)\nORDER BY (ModelName, ModelVersion, WindowStart, WindowEnd, Feature, Method)\n"
                 f"{ctx.ttl('WindowEnd', r.results_days)}")
        + create_table(ctx, "ml_alerts", _ALERT_COLUMNS, ctx.engine("ReplacingMergeTree", "UpdatedAt"),
                 f"PARTITION BY toYYYYMM(FiredAt)\nORDER BY (ModelName, AlertId)\n{ctx.ttl('FiredAt', r.alerts_days)}")
    )


def kinds_grids_and_detectors(ctx: Context) -> list[str]:
    """Result kind and status; baselines' grids (see baseline.py); the streaming detectors' state (resumable)."""
    stmts = []
    tables = physical_and_distributed(ctx, "ml_results")
    for table in tables:
        stmts.append(f"ALTER TABLE {table}{ctx.on_cluster} ADD COLUMN IF NOT EXISTS Kind LowCardinality(String) "
                     "DEFAULT 'drift' AFTER Method")
        stmts.append(f"ALTER TABLE {table}{ctx.on_cluster} ADD COLUMN IF NOT EXISTS Status LowCardinality(String) "
                     "DEFAULT 'ok' AFTER Kind")
    baseline_columns = ("NEffective Float64", "Rows Float64", "GridLow Nullable(Float64)", "GridWidth Nullable(Float64)",
                        "GridCells UInt32", "GridCounts Array(Float64) CODEC(ZSTD(1))", "TailBelow Float64",
                        "TailAbove Float64", "BinCuts Array(UInt32)", "Other Float64", "GridLog Bool")
    tables = physical_and_distributed(ctx, "ml_baselines")
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
    return stmts + create_table(ctx, "ml_detector_state", state, ctx.engine("ReplacingMergeTree", "UpdatedAt"),
                          "ORDER BY (ModelName, ModelVersion, Feature, Method, Detector)")


def hourly_aggregates(ctx: Context) -> list[str]:
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
    return create_table(ctx, "ml_hourly_aggregates", columns, ctx.engine("ReplacingMergeTree", "ComputedAt"), tail)


def estimators(ctx: Context) -> list[str]:
    """Models fitted with a baseline, as JSON, one per (baseline, task): label-free performance estimators (see
    analysis/estimator.py: calibration, loss models, reference bands) and the multivariate drift model (task
    ``multivariate``: analysis/multivariate.py); ``Probabilities`` of multiclass predictions."""
    columns = """    ModelName LowCardinality(String),
    ModelVersion LowCardinality(String),
    BaselineId String,
    CreatedAt DateTime64(3),
    Task LowCardinality(String),
    Spec String CODEC(ZSTD(3))"""
    tables = physical_and_distributed(ctx, "ml_predictions")
    return [f"ALTER TABLE {table}{ctx.on_cluster} ADD COLUMN IF NOT EXISTS Probabilities "
            "Map(LowCardinality(String), Float64) CODEC(ZSTD(1))" for table in tables] + create_table(
        ctx, "ml_estimators", columns, ctx.engine("ReplacingMergeTree", "CreatedAt"),
        "ORDER BY (ModelName, ModelVersion, BaselineId, Task)")
