"""The store's schema: the collector exporter's tables, modelwatch's tables and views, versioned.

``apply(store)`` runs, in order, the migrations not yet recorded in
``schema_migrations``; every statement is idempotent (``IF NOT EXISTS``), so
a migration interrupted half-way is simply run again.

Tables (their roles: docs/contract.md):

* ``otel_traces``, ``otel_metrics_{gauge,sum,histogram,exponential_histogram,summary}``,
  ``otel_logs`` (migration 7): the OpenTelemetry Collector clickhouse
  exporter's tables, with its column names and types. Whichever of the exporter or modelwatch creates them
  first, the other finds them compatible.
* ``ml_predictions``: one row per kept prediction, typed once at insert time
  by the materialized view ``ml_predictions_mv`` from ``otel_traces``: every
  span with a non-empty ``ml.model.name`` that is not a label, whatever its
  name (migration 14; :func:`typed_tables.prediction_span`). Features that parse as numbers go to
  ``Numeric`` (Float64; the exporter's ``+Inf``/``-Inf``/``NaN`` renderings
  included), the others to ``Categorical``. ``Weight`` is the span's
  ``ml.sampling.weight`` bounded to [1, 1e6] (absent, text or non-finite:
  1), ``WeightClamped`` set when the sent weight was not kept as is (migration
  12). The prediction id is stored once (migration 16): ``OwnPredictionId``
  is '' when the id is the trace id, ``PredictionId`` an ALIAS reading it
  back, else ``TraceId``. Ordered by (model, version,
  time): a drift query reads one model's window, all features at once.
* ``ml_labels``: ground truth from label spans (``ml.label.value``, or the
  name ``ml.label``) with a prediction id, latest label per (model,
  prediction id) (ReplacingMergeTree).
* ``ml_baselines``, ``ml_results``, ``ml_alerts``: written by the analyzer;
  Replacing engines keyed so that re-running a window replaces its results.
* ``ml_estimators`` (migration 13): models fitted with a baseline, one per task: the label-free performance
  estimator (baselines built with labels) and the multivariate drift model;
  ``ml_predictions.Probabilities`` (same migration): a multiclass prediction's ``ml.prediction.probability.*``.
* Segments (migration 17): ``ml_predictions.Resource``, the resource attributes segments read
  (``typed_tables.SEGMENT_RESOURCE_KEYS``), and ``ml_results.Segment`` ('' for the population), in its key.
* ``ml_hourly_aggregates`` (migration 8): the aggregates of analysed whole
  hours per baseline, read back by later analyses (see ``hourly.py``).

Retention is a TTL per table (:class:`Retention`): raw spans 7 days (migration
15), typed predictions 180. An embedded store's ``otel_traces`` has no
span-attribute bloom filters (migration 15; servers keep the exporter's).
With ``cluster``, every
statement gets ``ON CLUSTER``, tables become ``Replicated*MergeTree`` named
``<table>_local`` with a ``Distributed`` table under the plain name, and the
views read and write the local tables (the exporter writes the Distributed
``otel_traces``, which forwards to the shards, whose views fire).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from modelwatch_analyzer.store import analyzer_tables, exporter_tables, typed_tables
from modelwatch_analyzer.store.client import Store, ident
from modelwatch_analyzer.store.ddl import (
    SHARD_KEYS,
    Context,
    Retention,
    create_table,
    distributed,
    physical_and_distributed,
)
from modelwatch_analyzer.store.typed_tables import (
    LABEL_SPAN,
    LEADING_ZERO,
    PREDICTION_SPAN,
)

__all__ = ["LABEL_SPAN", "LEADING_ZERO", "MIGRATIONS", "PREDICTION_SPAN", "Context", "Migration", "Retention", "apply",
           "ensure", "retention_seconds", "statements", "version"]


def _shard_keys(ctx: Context) -> list[str]:
    """On a cluster, re-create the Distributed tables (they hold no data) with the shard keys of SHARD_KEYS."""
    if not ctx.cluster:
        return []
    return [distributed(ctx, table, "CREATE OR REPLACE TABLE") for table in SHARD_KEYS]


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


def _typed_views(ctx: Context) -> list[str]:
    """The views' queries as this version writes them (text with a leading zero stays text); ``MODIFY QUERY`` swaps
    a view's query in one step, so no span inserted meanwhile goes untyped. Rows already typed stay as they are."""
    return [_predictions_query(ctx, typed_tables.FULL_ID),
            f"ALTER TABLE {ctx.database}.{ident('ml_labels_mv')}{ctx.on_cluster} MODIFY QUERY\n{typed_tables.labels_select(ctx)}"]


def _predictions_query(ctx: Context, prediction_id: str) -> str:
    """``ml_predictions_mv``'s query as this version writes it, with the prediction id in the form `prediction_id`
    (the migrations before 16 write the physical ``PredictionId`` they knew: see :func:`_prediction_id_once`)."""
    return (f"ALTER TABLE {ctx.database}.{ident('ml_predictions_mv')}{ctx.on_cluster} MODIFY QUERY\n"
            f"{typed_tables.predictions_select(ctx, prediction_id)}")


def _bounded_weights(ctx: Context) -> list[str]:
    """``ml_predictions`` gains ``WeightClamped`` (after ``Weight``, as a new table has it), then the view bounds
    weights (see :func:`_weight`); rows typed before keep their weights."""
    tables = physical_and_distributed(ctx, "ml_predictions")
    return [f"ALTER TABLE {table}{ctx.on_cluster} ADD COLUMN IF NOT EXISTS WeightClamped Bool DEFAULT false AFTER Weight"
            for table in tables] + [_predictions_query(ctx, typed_tables.FULL_ID)]


def _hourly_sample_rate(ctx: Context) -> list[str]:
    """Hourly aggregates say the share of the hour's rows their numeric aggregates were read from (numeric_sample_rows)."""
    tables = physical_and_distributed(ctx, "ml_hourly_aggregates")
    return [f"ALTER TABLE {table}{ctx.on_cluster} ADD COLUMN IF NOT EXISTS SampleRate Float64 DEFAULT 1" for table in tables]


def _alert_superseded(ctx: Context) -> list[str]:
    """An alert fired by two analyzers at once is kept once: rows record the store's clock at their first write
    (RecordedAt), and the later one names the one it gave way to (SupersededBy)."""
    tables = physical_and_distributed(ctx, "ml_alerts")
    stmts = [f"ALTER TABLE {table}{ctx.on_cluster} ADD COLUMN IF NOT EXISTS {column}" for table in tables
             for column in ("SupersededBy String DEFAULT ''", "RecordedAt DateTime64(9) DEFAULT now64(9)")]
    # rows written before: their RecordedAt is fixed once (a DEFAULT of an old part is computed at each read)
    return stmts + [f"ALTER TABLE {ctx.name('ml_alerts')}{ctx.on_cluster} MATERIALIZE COLUMN RecordedAt"]


def _estimators(ctx: Context) -> list[str]:
    """``ml_predictions`` gains ``Probabilities`` and its view fills it; ``ml_estimators`` holds the estimators."""
    return analyzer_tables.estimators(ctx) + [_predictions_query(ctx, typed_tables.FULL_ID)]


def _views_by_attributes(ctx: Context) -> list[str]:
    """Both views select spans by their attributes, not their names (:mod:`typed_tables`): a prediction span of
    any name is typed; label spans of any name are labels, never predictions. Spans stored before stay untyped."""
    return _typed_views(ctx)


FORMER_TRACES_DAYS = 30
"""``otel_traces``' retention before migration 15: a store that still has it gets the new default."""


def _raw_retention(ctx: Context) -> list[str]:
    """Raw spans keep their own, shorter retention (``Retention.traces_days``, 7 days) and, on an embedded store,
    lose the span-attribute bloom filters (no trace search there). A store whose ``otel_traces`` TTL is not the
    former default (30 days) keeps the retention its operator chose. Printed (no store), the TTL statement is
    written out as a fresh store gets it."""
    table = ctx.name("otel_traces")
    stmts = [f"ALTER TABLE {table}{ctx.on_cluster} DROP INDEX IF EXISTS {ident(name)}"
             for name in exporter_tables.SPAN_ATTRIBUTE_INDEXES] if ctx.embedded else []
    days = ctx.retention.traces_days
    if ctx.store is not None and retention_seconds(ctx.store, "otel_traces") != FORMER_TRACES_DAYS * 86_400:
        return stmts  # chosen by the operator (or already this version's): left as it is
    if days > 0:
        stmts.append(f"ALTER TABLE {table}{ctx.on_cluster} MODIFY {ctx.ttl('Timestamp', days)}")
    elif ctx.store is not None:
        stmts.append(f"ALTER TABLE {table}{ctx.on_cluster} REMOVE TTL")
    return stmts


def _prediction_id_once(ctx: Context) -> list[str]:
    """The prediction id is stored once: ``PredictionId`` becomes ``OwnPredictionId`` ('' when the id is the trace
    id, as the SDK's default ids are) and ``PredictionId`` an ALIAS reading it back, else ``TraceId``; readers of
    ``PredictionId`` (the join with labels among them) are unchanged. In steps that keep every span typed right:
    the view writes both forms (the table takes the one it has), the column is renamed (its rows keep their
    ids), the ALIAS added, then the view writes the new form only. A cluster's Distributed table is re-created
    over the new columns, sharding by the same expression. An embedded store then clears the ids its rows hold
    twice (a mutation, in the background); a server's rows keep them until they expire."""
    table = ctx.name("ml_predictions")
    stmts = [_predictions_query(ctx, typed_tables.BOTH_IDS)]
    if ctx.store is None or _column_kind(ctx.store, "ml_predictions_local" if ctx.cluster else "ml_predictions",
                                         "PredictionId") == "":
        stmts.append(f"ALTER TABLE {table}{ctx.on_cluster} RENAME COLUMN IF EXISTS PredictionId TO OwnPredictionId")
    stmts.append(f"ALTER TABLE {table}{ctx.on_cluster} ADD COLUMN IF NOT EXISTS PredictionId String "
                 f"ALIAS {typed_tables.PREDICTION_ID_ALIAS} AFTER OwnPredictionId")
    if ctx.cluster:
        stmts.append(distributed(ctx, "ml_predictions", "CREATE OR REPLACE TABLE",
                                 key=f"cityHash64(ModelName, {typed_tables.PREDICTION_ID_ALIAS})"))
    stmts.append(_predictions_query(ctx, typed_tables.OWN_ID))
    if ctx.embedded:
        stmts.append(f"ALTER TABLE {table} UPDATE OwnPredictionId = '' WHERE OwnPredictionId = TraceId")
    return stmts


def _column_kind(store: Store, table: str, column: str) -> str | None:
    """`column`'s ``default_kind`` in `table` ('' for a stored column, 'ALIAS', …); None: no such column."""
    rows = store.query("SELECT default_kind FROM system.columns WHERE database = {db:String} AND table = {t:String} "
                       "AND name = {c:String}", {"db": store.database, "t": table, "c": column})
    return rows[0][0] if rows else None


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: Callable[[Context], list[str]]


def _segments(ctx: Context) -> list[str]:
    """Segments: ``ml_predictions.Resource`` keeps the resource attributes predictions are segmented by
    (:data:`typed_tables.SEGMENT_RESOURCE_KEYS`) and the view fills it; ``ml_results`` gains ``Segment`` ('' for
    the whole population, ``key=value`` for one segment), part of its key so that a segment's results do not
    replace the population's."""
    stmts = [f"ALTER TABLE {table}{ctx.on_cluster} ADD COLUMN IF NOT EXISTS Resource "
             "Map(LowCardinality(String), String) CODEC(ZSTD(1))" for table in physical_and_distributed(ctx, "ml_predictions")]
    stmts.append(_predictions_query(ctx, typed_tables.OWN_ID))
    results = physical_and_distributed(ctx, "ml_results")
    stmts.append(f"ALTER TABLE {results[0]}{ctx.on_cluster} ADD COLUMN IF NOT EXISTS Segment String AFTER Feature, "
                 "MODIFY ORDER BY (ModelName, ModelVersion, WindowStart, WindowEnd, Feature, Method, Segment)")
    stmts += [f"ALTER TABLE {table}{ctx.on_cluster} ADD COLUMN IF NOT EXISTS Segment String AFTER Feature"
              for table in results[1:]]
    return stmts


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "collector exporter tables", lambda ctx: exporter_tables.otel_traces(ctx) + exporter_tables.otel_metrics(ctx)),
    Migration(2, "typed predictions and labels", lambda ctx: typed_tables.predictions(ctx) + typed_tables.labels(ctx)),
    Migration(3, "analyzer tables", analyzer_tables.results_and_alerts),
    Migration(4, "stronger compression of span attributes and typed predictions", _compression),
    Migration(5, "analyzer result kinds and detector state", analyzer_tables.kinds_grids_and_detectors),
    Migration(6, "cluster shard keys: a prediction with its label, a model's results on one shard", _shard_keys),
    Migration(7, "collector exporter logs table", exporter_tables.otel_logs),
    Migration(8, "hourly aggregates of analysed windows", analyzer_tables.hourly_aggregates),
    Migration(9, "typed views: text with a leading zero is a category, not a number", _typed_views),
    Migration(10, "hourly aggregates record their sample rate", _hourly_sample_rate),
    Migration(11, "alerts record which alert a concurrent duplicate gave way to", _alert_superseded),
    Migration(12, "typed predictions: sampling weights bounded to [1, 1e6], out-of-range ones flagged", _bounded_weights),
    Migration(13, "performance estimators; typed predictions keep multiclass probabilities", _estimators),
    Migration(14, "typed views select spans by their ml.* attributes, not their span name", _views_by_attributes),
    Migration(15, "raw spans keep their own retention (7 days); no span-attribute indexes on an embedded store",
              _raw_retention),
    Migration(16, "typed predictions store the prediction id once: '' when it is the trace id, PredictionId an ALIAS",
              _prediction_id_once),
    Migration(17, "segments: typed predictions keep where they were made (resource attributes); results per segment",
              _segments),
)


def _migrations_table(ctx: Context) -> list[str]:
    return create_table(ctx, "schema_migrations", """    Version UInt32,
    Name String,
    AppliedAt DateTime64(3)""", ctx.engine("ReplacingMergeTree", "AppliedAt"), "ORDER BY Version")


def statements(database: str, cluster: str | None = None, retention: Retention | None = None,
               embedded: bool = False) -> list[str]:
    """Every statement of every migration, in order, for a new store (for review, or ``modelwatch schema print``);
    a ClickHouse server's unless `embedded`."""
    ctx = Context(ident(database), cluster, retention or Retention(), embedded=embedded)
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
    ctx = Context(ident(store.database), cluster, retention or Retention(), embedded=store.embedded, store=store)
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

