"""What the store's DDL is built from: retention, the cluster context, shard keys, one table's statements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from modelwatch import contract as c

from modelwatch_analyzer.store.client import ident

if TYPE_CHECKING:
    from modelwatch_analyzer.store.client import Store


@dataclass(frozen=True)
class Retention:
    """Days each kind of data is kept (0: forever).

    Raw spans (``otel_traces``) serve trace viewing and drill-down for a week; the typed copy of each
    prediction (``ml_predictions``) is what the analyzer reads, kept for half a year. Logs keep the
    exporter's 30 days."""

    traces_days: int = 7
    logs_days: int = 30
    metrics_days: int = 90
    predictions_days: int = 180
    labels_days: int = 365
    results_days: int = 730
    alerts_days: int = 730


@dataclass(frozen=True)
class Context:
    """What DDL depends on: database, optional cluster, retention; whether the store is embedded (chDB: no
    trace-search consumer, so no span-attribute indexes); and, when the statements are to be run on a store
    rather than printed, that store (a migration may depend on what the store holds, read-only)."""

    database: str
    cluster: str | None = None
    retention: Retention = field(default_factory=Retention)
    embedded: bool = False
    store: Store | None = field(default=None, compare=False, repr=False)

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


_BY_PREDICTION = (f"cityHash64(SpanAttributes['{c.MODEL_NAME}'], if(SpanAttributes['{c.PREDICTION_ID}'] != '', "
                  f"SpanAttributes['{c.PREDICTION_ID}'], TraceId))")
SHARD_KEYS = {
    # a prediction and its label on one shard (the label span carries the prediction's id), so the
    # performance join runs shard-locally; a model's results, alerts, baselines and detector state on
    # one shard, so Replacing engines replace and cooldowns see every alert
    "otel_traces": _BY_PREDICTION,
    "ml_predictions": "cityHash64(ModelName, PredictionId)",  # migration 16 re-creates it with PredictionId's ALIAS
    "ml_labels": "cityHash64(ModelName, PredictionId)",
    "ml_baselines": "cityHash64(ModelName)",
    "ml_results": "cityHash64(ModelName)",
    "ml_alerts": "cityHash64(ModelName)",
    "ml_detector_state": "cityHash64(ModelName)",
}


# tables created after migration 6 (which re-creates the Distributed tables of SHARD_KEYS): sharded from the start
LATER_SHARD_KEYS = {
    "ml_hourly_aggregates": "cityHash64(ModelName)",  # a model's hours on the shard that analyses it
    "ml_estimators": "cityHash64(ModelName)",
}


def distributed(ctx: Context, table: str, create: str = "CREATE TABLE IF NOT EXISTS", key: str | None = None) -> str:
    key = key or SHARD_KEYS.get(table) or LATER_SHARD_KEYS.get(table, "rand()")
    return (f"{create} {ctx.database}.{ident(table)}{ctx.on_cluster} AS {ctx.name(table)} "
            f"ENGINE = Distributed({ident(ctx.cluster)}, {ctx.database}, {ident(table + '_local')}, {key})")


def create_table(ctx: Context, table: str, columns: str, engine: str, tail: str) -> list[str]:
    """CREATE TABLE (plus, on a cluster, the Distributed table over the local one)."""
    stmts = [f"CREATE TABLE IF NOT EXISTS {ctx.name(table)}{ctx.on_cluster} (\n{columns}\n) ENGINE = {engine}\n{tail}"]
    if ctx.cluster:
        stmts.append(distributed(ctx, table))
    return stmts


def physical_and_distributed(ctx: Context, table: str) -> list[str]:
    """`table`'s physical table and, on a cluster, its Distributed table: what an ``ALTER`` of its columns names."""
    return [ctx.name(table)] + ([f"{ctx.database}.{ident(table)}"] if ctx.cluster else [])
