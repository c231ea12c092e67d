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
of raw prediction spans in ``otel_traces`` against the rows of
``ml_predictions``. A span is a prediction by its attributes, not its name
(:mod:`typed_tables`); the per-day count reads attribute *names* only
(``mapContains`` reads the map's ``keys`` subcolumn, not the values, which are
the bulk of a span): spans that carry ``ml.model.name`` and are not labels.
(It replaces a count by ``SpanName``, a sort-key column, which cannot find
prediction spans of other names; on 200,000 benchmark spans it takes 12 ms,
against 8 ms by ``SpanName`` and 126 ms reading the model name's value.) Only a day where the raw side has more is
looked at closer: distinct span ids of the spans the view types
(:func:`typed_tables.prediction_span`, which reads the values) on both sides
(so that retried duplicates are not a gap), and the missing spans are typed by
the view's own query (:func:`repair`). Labels are compared the same way, by
(model, prediction id), since ``ml_labels`` keeps one row per label. Days past
the raw spans' retention hold typed rows only, and are not a gap. Spans of a
store that predates migration 14, which carried the contract under another
span name and so were never typed, are found the same way.

What cannot be typed (:func:`unreadable`). A span with ``ml.*`` attributes
that neither view types is counted by why: no ``ml.model.name`` (not a label),
an empty ``ml.model.name`` (looked for on the days the per-day count flags
only), a label without ``ml.prediction.id``.

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


# per typed table, the cheap condition (attribute names, no values) that counts its raw spans per day
_RAW_KEYS = {
    "ml_predictions": typed_tables.prediction_span_keys(),
    "ml_labels": f"({typed_tables.label_span()} AND mapContains(SpanAttributes, '{c.PREDICTION_ID}'))",
}


def _candidate_days(store: Store, table: str) -> list[date]:
    """Days on which the raw side holds more spans than the typed table has rows (cheap: attribute names only)."""
    raw = dict(store.query(
        f"SELECT toDate(Timestamp) AS d, count() FROM {store.table('otel_traces')} WHERE {_RAW_KEYS[table]} GROUP BY d"))
    if not raw:
        return []
    typed = dict(store.query(f"SELECT toDate(Timestamp) AS d, count() FROM {store.table(table)} GROUP BY d"))
    return sorted(d for d, n in raw.items() if n > typed.get(d, 0))


def _untyped(store: Store, table: str) -> tuple[str, str]:
    """The raw side's key expression, and the condition that a raw span of the day {day:Date} has no typed row.

    A prediction is one span; a label is one (model, prediction id), kept once whatever the day it arrived
    (``ml_labels`` replaces), so it is looked for on every day."""
    if table == "ml_predictions":
        return "SpanId", (f"{typed_tables.prediction_span()} AND toDate(Timestamp) = {{day:Date}} AND SpanId "
                          f"NOT IN (SELECT SpanId FROM {store.table(table)} WHERE toDate(Timestamp) = {{day:Date}})")
    key = f"(SpanAttributes['{c.MODEL_NAME}'], SpanAttributes['{c.PREDICTION_ID}'])"
    return key, (f"{typed_tables.typed_label()} AND "
                 f"toDate(Timestamp) = {{day:Date}} AND {key} NOT IN "
                 f"(SELECT ModelName, PredictionId FROM {store.table(table)})")


_KINDS = ("ml_predictions", "ml_labels")


def gaps(store: Store) -> list[Gap]:
    """Every day on which raw prediction or label spans lack their typed rows (read-only)."""
    have = store.tables()
    if "otel_traces" not in have:
        return []
    out = []
    for table in _KINDS:
        if table not in have:
            continue
        key, untyped = _untyped(store, table)
        for day in _candidate_days(store, table):
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
        columns = ", ".join(ident(c) for (c,) in store.query(  # the stored columns (not ALIAS or MATERIALIZED ones)
            "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String} "
            "AND default_kind NOT IN ('ALIAS', 'MATERIALIZED', 'EPHEMERAL') ORDER BY position",
            {"db": store.database, "t": gap.table}))
        _, untyped = _untyped(store, gap.table)
        # the view's query over the day's untyped spans only: a span retried after the kill is typed once
        store.command(
            f"INSERT INTO {store.table(gap.table)} ({columns}) SELECT {columns} FROM ({select[gap.table]} "
            f"AND {untyped}) LIMIT 1 BY SpanId" if gap.table == "ml_predictions" else
            f"INSERT INTO {store.table(gap.table)} ({columns}) SELECT {columns} FROM ({select[gap.table]} "
            f"AND {untyped})", {"day": gap.day})
    return found


@dataclass(frozen=True)
class Unreadable:
    """`spans` raw spans that carry ``ml.*`` attributes but that neither view types, for one reason."""

    reason: str  # no_model_name | empty_model_name | label_without_prediction_id
    spans: int
    span_names: tuple[str, ...]  # some of their span names (at most 5)

    @property
    def why(self) -> str:
        return WHY[self.reason]


WHY = {
    "no_model_name": "carry ml.* attributes but no ml.model.name, so they are not predictions",
    "empty_model_name": "carry an empty ml.model.name, so they are not predictions",
    "label_without_prediction_id": "are labels (ml.label.value, or named ml.label) without an ml.prediction.id, so "
                                   "they label no prediction",
}

_ML = "arrayExists(k -> startsWith(k, 'ml.'), SpanAttributes.keys)"  # attribute names only


def unreadable(store: Store) -> list[Unreadable]:
    """The raw spans the store retains that carry ``ml.*`` attributes but are neither typed predictions nor typed
    labels, counted by reason (read-only; see the module docstring for what each reads)."""
    if "otel_traces" not in store.tables():
        return []
    traces = store.table("otel_traces")
    label = typed_tables.label_span()
    found: list[Unreadable] = []
    # attribute names only: every retained span
    for n, names in store.query(f"SELECT count(), groupUniqArray(5)(SpanName) FROM {traces} WHERE {_ML} "
                                f"AND NOT mapContains(SpanAttributes, '{c.MODEL_NAME}') AND NOT {label}"):
        if n:
            found.append(Unreadable("no_model_name", int(n), tuple(sorted(names))))
    # label spans only (the sort key groups spans of one name): their prediction ids' values are read
    for n, names in store.query(f"SELECT count(), groupUniqArray(5)(SpanName) FROM {traces} WHERE {label} "
                                f"AND SpanAttributes['{c.PREDICTION_ID}'] = ''"):
        if n:
            found.append(Unreadable("label_without_prediction_id", int(n), tuple(sorted(names))))
    # an empty model name: only on the days whose raw count exceeds the typed rows (values read on those days only)
    if "ml_predictions" in store.tables():
        days = _candidate_days(store, "ml_predictions")
        if days:
            n, names = store.query(
                f"SELECT count(), groupUniqArray(5)(SpanName) FROM {traces} WHERE has({{days:Array(Date)}}, toDate(Timestamp)) "
                f"AND {typed_tables.prediction_span_keys()} AND SpanAttributes['{c.MODEL_NAME}'] = ''", {"days": days})[0]
            if n:
                found.append(Unreadable("empty_model_name", int(n), tuple(sorted(names))))
    return found
