"""Raw spans and their typed rows agree: find, and repair, spans that never reached ``ml_predictions`` / ``ml_labels``.

Why they can differ. An INSERT into ``otel_traces`` writes the table's part,
then each materialized view's part (``ml_predictions_mv``,
``ml_labels_mv``): ClickHouse commits them one after the other, not as one
transaction. A process killed between the two (``kill -9`` mid-commit), or
a view that fails after the raw part is written, leaves raw spans with no
typed row. The client was not acknowledged, so it retries; the retry types
the spans but also stores a second raw copy of them, which nothing reads as
a prediction.

What is compared. Per day (both tables are partitioned by day), the number
of prediction spans in ``otel_traces`` (``SpanName``, a sort-key column: no
attribute is read) against the rows of ``ml_predictions``. Only a day where
the raw side has more is looked at closer: distinct span ids on both sides
(so that retried duplicates are not a gap), and the missing spans are typed
by the view's own query (:func:`repair`). Labels are compared the same way,
by (model, prediction id), since ``ml_labels`` keeps one row per label.
Days past the raw spans' retention hold typed rows only, and are not a gap.

``modelwatch serve`` repairs at start, before it receives anything;
``modelwatch status`` reports what is missing (read-only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from modelwatch import contract as c

from modelwatch_analyzer.store import schema, typed_tables
from modelwatch_analyzer.store.client import Store, ident


@dataclass(frozen=True)
class Gap:
    """One day on which `missing` raw spans have no row in `table`."""

    table: str  # ml_predictions | ml_labels
    day: date
    missing: int  # distinct raw spans (labels: distinct model and prediction ids) with no typed row


def _candidate_days(store: Store, span_name: str, table: str) -> list[date]:
    """Days on which the raw side holds more spans than the typed table has rows (cheap: no attribute read)."""
    raw = dict(store.query(
        f"SELECT toDate(Timestamp) AS d, count() FROM {store.table('otel_traces')} "
        "WHERE SpanName = {name:String} GROUP BY d", {"name": span_name}))
    if not raw:
        return []
    typed = dict(store.query(f"SELECT toDate(Timestamp) AS d, count() FROM {store.table(table)} GROUP BY d"))
    return sorted(d for d, n in raw.items() if n > typed.get(d, 0))


def _untyped(store: Store, table: str) -> tuple[str, str]:
    """The raw side's key expression, and the condition that a raw span of the day {day:Date} has no typed row.

    A prediction is one span; a label is one (model, prediction id), kept once whatever the day it arrived
    (``ml_labels`` replaces), so it is looked for on every day."""
    if table == "ml_predictions":
        return "SpanId", (f"SpanName = '{schema.PREDICTION_SPAN}' AND toDate(Timestamp) = {{day:Date}} AND SpanId "
                          f"NOT IN (SELECT SpanId FROM {store.table(table)} WHERE toDate(Timestamp) = {{day:Date}})")
    key = f"(SpanAttributes['{c.MODEL_NAME}'], SpanAttributes['{c.PREDICTION_ID}'])"
    return key, (f"SpanName = '{schema.LABEL_SPAN}' AND SpanAttributes['{c.PREDICTION_ID}'] != '' AND "
                 f"toDate(Timestamp) = {{day:Date}} AND {key} NOT IN "
                 f"(SELECT ModelName, PredictionId FROM {store.table(table)})")


_KINDS = (("ml_predictions", schema.PREDICTION_SPAN), ("ml_labels", schema.LABEL_SPAN))


def gaps(store: Store) -> list[Gap]:
    """Every day on which raw prediction or label spans lack their typed rows (read-only)."""
    have = store.tables()
    if "otel_traces" not in have:
        return []
    out = []
    for table, span_name in _KINDS:
        if table not in have:
            continue
        key, untyped = _untyped(store, table)
        for day in _candidate_days(store, span_name, table):
            missing = store.query(f"SELECT uniqExact({key}) FROM {store.table('otel_traces')} WHERE {untyped}",
                                  {"day": day})[0][0]
            if missing:
                out.append(Gap(table, day, int(missing)))
    return out


def repair(store: Store) -> list[Gap]:
    """Type the raw spans of every :func:`gaps` day that have no typed row, by the views' own queries;
    returns the gaps found (after it, none remain)."""
    found = gaps(store)
    ctx = schema.Context(ident(store.database))
    select = {"ml_predictions": typed_tables.predictions_select(ctx), "ml_labels": typed_tables.labels_select(ctx)}
    for gap in found:
        columns = ", ".join(ident(c) for (c,) in store.query(
            "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String} ORDER BY position",
            {"db": store.database, "t": gap.table}))
        _, untyped = _untyped(store, gap.table)
        # the view's query over the day's untyped spans only: a span retried after the kill is typed once
        store.command(
            f"INSERT INTO {store.table(gap.table)} ({columns}) SELECT {columns} FROM ({select[gap.table]} "
            f"AND {untyped}) LIMIT 1 BY SpanId" if gap.table == "ml_predictions" else
            f"INSERT INTO {store.table(gap.table)} ({columns}) SELECT {columns} FROM ({select[gap.table]} "
            f"AND {untyped})", {"day": gap.day})
    return found
