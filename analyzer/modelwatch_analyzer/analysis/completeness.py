"""Pipeline completeness: did every prediction the SDK kept reach the store?

The SDK counts every tail-sampling decision (``ml.sampling.decisions``,
``decision="kept"``) and every kept span it failed to deliver
(``ml.spans.dropped``, ``span="ml.predict"``, by ``reason``: ``queue_full``,
``export_failed``, ``shutdown``, ``no_tracer``, ``head_sampled``), both as
full-population cumulative sums that land in ``otel_metrics_sum``. Over a
window, :func:`pipeline_gap` compares, per model:

* ``kept``: the increase of the kept-decision counters in the window;
* ``sdk_dropped``: the increase of the drop counters (lost inside the SDK);
* ``stored``: the prediction rows in ``ml_predictions`` in the window (a
  batch call that raised is one span carrying ``ml.batch.size`` = N for its
  N error decisions: its other N - 1 rows are added, read from
  ``otel_traces`` while it retains them; a prediction span is one the typed
  view takes, whatever its name: ``typed_tables.prediction_span``).

``kept - sdk_dropped - stored`` is what was lost after the SDK (collector,
network, receiver); ``kept - stored`` everything missing. The analysis
stores it as a data-quality result (feature ``__pipeline__``, method
``pipeline_gap``, statistic = the share of kept predictions missing from the
store), so a store short of spans is never read as low traffic, nor its
skewed sample as drift.

How a cumulative counter becomes a window's increase. A series is one
(service, resource, start time, attributes, metric): every process, and every
restart of one (a new ``StartTimeUnix``), is a series of its own, read
separately and summed, so restarts never subtract. Within a series the
increase is taken from the last point at or before the window's start (or
from 0 when the series started inside the window) to its last point inside
the window, step by step; a step down (a counter that restarted without a
new start time) counts the new value from zero, and is reported in
``resets``.

Limits, all documented in the result's details:

* counters are exported every ``OTEL_METRIC_EXPORT_INTERVAL`` (60 s by
  default), so a series covers its window from its last export before the
  start to its last export before the end. Predictions kept in the export
  interval straddling the start may predate the window: their number (the
  first step) is ``edge``, and a gap is flagged only beyond it. Predictions
  in the last interval before the end are not counted yet: that can only
  make ``stored`` exceed ``kept``, never invent a gap;
* spans still in flight (queued in the SDK or a collector) when the analysis
  runs look missing: run analyses after the window has settled (a few
  seconds past the schedule delay of each hop); ``MIN_MISSING`` absorbs a
  handful;
* a process that stopped without a final metric export loses its last
  interval's counts (spans it sent then look like more than it kept);
* predictions only: label spans are counted in ``ml.spans.dropped`` with
  ``span="ml.label"`` but there is no full-population count of labels to
  compare the store with;
* needs the SDK's metrics: a model whose processes export no metrics gets
  no completeness result;
* windows older than the metrics' retention (90 days by default) have no
  counters left; the failed-batch correction needs ``otel_traces`` (7 days by default).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelwatch import contract as c

from modelwatch_analyzer.analysis.results import Result
from modelwatch_analyzer.analysis.window import to_ns
from modelwatch_analyzer.store import typed_tables
from modelwatch_analyzer.store.client import Store

FEATURE = "__pipeline__"
METHOD = "pipeline_gap"
MIN_MISSING = 10.0
"""A gap of fewer missing predictions than this (beyond the edge) is never flagged: spans in flight."""

_FAR_FUTURE_NS = 2**62  # year 2116: the end of an open window


@dataclass
class PipelineGap:
    """One model's kept predictions against its stored ones, over one window (see the module docstring)."""

    model: str
    kept: float = 0.0
    dropped: dict[str, float] = field(default_factory=dict)  # SDK-reported drops of prediction spans, by reason
    stored: float = 0.0  # rows in ml_predictions, plus the extra rows of failed batch calls
    batch_rows: float = 0.0  # of which: rows of failed batch calls beyond their one span
    edge: float = 0.0  # kept decisions in export intervals straddling the window's start
    series: int = 0  # counter series read
    resets: int = 0  # steps down inside a series

    @property
    def sdk_dropped(self) -> float:
        return sum(self.dropped.values())

    @property
    def expected(self) -> float:
        """What the SDK delivered: kept minus its own drops."""
        return self.kept - self.sdk_dropped

    @property
    def gap(self) -> float:
        """Lost after the SDK: delivered but not stored (negative when the store holds more)."""
        return self.expected - self.stored

    @property
    def missing(self) -> float:
        """Kept but not stored, wherever it was lost (negative when the store holds more)."""
        return self.kept - self.stored

    @property
    def missing_share(self) -> float:
        return max(self.missing, 0.0) / self.kept if self.kept > 0 else 0.0

    def flagged(self, ceiling: float) -> bool:
        """Missing beyond the edge uncertainty, by more than `ceiling` of kept and more than MIN_MISSING."""
        beyond = self.missing - self.edge
        return beyond > MIN_MISSING and beyond > ceiling * self.kept


def _ns(t: datetime | None, default: int) -> int:
    return default if t is None else to_ns(t)


def pipeline_gap(store: Store, model: str | None = None, start: datetime | None = None, end: datetime | None = None,
                 version: str | None = None) -> dict[str, PipelineGap]:
    """Per model (one, or every model with SDK counters), kept vs SDK-dropped vs stored predictions in [start, end).

    ``start``/``end`` None: from the beginning / up to now, i.e. everything
    the store retains. ``version``: one model version ('' or None: all).
    Models without kept-decision counter points in the window are absent.
    """
    tables = store.tables()
    if "otel_metrics_sum" not in tables:
        return {}
    params: dict[str, Any] = {"start": _ns(start, 0), "end": _ns(end, _FAR_FUTURE_NS)}
    where = ""
    if model is not None:
        where += f" AND Attributes['{c.MODEL_NAME}'] = {{model:String}}"
        params["model"] = model
    if version:
        where += f" AND Attributes['{c.MODEL_VERSION}'] = {{version:String}}"
        params["version"] = version
    t0, t1 = "fromUnixTimestamp64Nano({start:Int64})", "fromUnixTimestamp64Nano({end:Int64})"
    out = _kept_and_dropped(store, where, params, t0, t1)
    if out:
        _add_stored(store, tables, out, model, version, params, f"Timestamp >= {t0} AND Timestamp < {t1}")
    return out


def _kept_and_dropped(store: Store, where: str, params: dict[str, Any], t0: str, t1: str) -> dict[str, PipelineGap]:
    """Per model, the increase inside [t0, t1) of the SDK's kept-decision and dropped-span counters (cumulative
    sums: a value below the previous one is a reset, and counts from zero)."""
    rows = store.query(
        f"SELECT Attributes['{c.MODEL_NAME}'], MetricName, Attributes['reason'], StartTimeUnix < {t0}, "
        f"countIf(TimeUnix <= {t0}), argMaxIf(Value, TimeUnix, TimeUnix <= {t0}), "
        f"arrayMap(p -> p.2, arraySort(p -> p.1, groupArrayIf((TimeUnix, Value), TimeUnix > {t0} AND TimeUnix < {t1}))) "
        f"FROM {store.table('otel_metrics_sum')} "
        f"WHERE ((MetricName = '{c.METRIC_DECISIONS}' AND Attributes['decision'] = 'kept') "
        f"OR (MetricName = '{c.METRIC_SPANS_DROPPED}' AND Attributes['span'] = '{c.PREDICTION_SPAN}')) "
        f"AND TimeUnix < {t1}{where} "
        "GROUP BY ServiceName, ResourceAttributes, StartTimeUnix, Attributes, MetricName", params)
    out: dict[str, PipelineGap] = {}
    for m, metric, reason, began_before, n_before, base, values in rows:
        values = [float(v) for v in values]
        if not values:
            continue  # nothing exported inside the window
        g = out.setdefault(m, PipelineGap(m))
        prev = float(base) if n_before else 0.0
        increase, first = 0.0, None
        for v in values:
            step = v - prev if v >= prev else v
            if v < prev:
                g.resets += 1
            increase += step
            first = step if first is None else first
            prev = v
        g.series += 1
        if metric == c.METRIC_DECISIONS:
            g.kept += increase
            if n_before or began_before:  # the first step may include predictions from before the window
                g.edge += first or 0.0
        else:
            g.dropped[reason or "(none)"] = g.dropped.get(reason or "(none)", 0.0) + increase
    return {m: g for m, g in out.items() if g.kept > 0 or g.dropped}


def _add_stored(store: Store, tables: set[str], out: dict[str, PipelineGap], model: str | None, version: str | None,
                params: dict[str, Any], span_where: str) -> None:
    """Add to `out` the predictions stored in the window: typed rows, plus the rows of failed batch calls
    (one error span stands for ``ml.batch.size`` predictions)."""
    pw = span_where + (" AND ModelName = {model:String}" if model is not None else "") + (
        " AND ModelVersion = {version:String}" if version else "")
    if "ml_predictions" in tables:
        for m, n in store.query(f"SELECT ModelName, count() FROM {store.table('ml_predictions')} WHERE {pw} "
                                "GROUP BY ModelName", params):
            if m in out:
                out[m].stored += float(n)
    if "otel_traces" in tables:
        tw = span_where + (f" AND SpanAttributes['{c.MODEL_NAME}'] = {{model:String}}" if model is not None else "") + (
            f" AND SpanAttributes['{c.MODEL_VERSION}'] = {{version:String}}" if version else "")
        for m, extra in store.query(
                f"SELECT SpanAttributes['{c.MODEL_NAME}'], sum(greatest(toInt64OrZero(SpanAttributes['{c.BATCH_SIZE}']), 1) - 1) "
                f"FROM {store.table('otel_traces')} WHERE {typed_tables.prediction_span()} AND StatusCode = 'Error' "
                f"AND mapContains(SpanAttributes, '{c.BATCH_SIZE}') AND {tw} GROUP BY 1", params):
            if m in out and extra:
                out[m].batch_rows += float(extra)
                out[m].stored += float(extra)


def finding(gap: PipelineGap, ceiling: float) -> Result:
    """`gap` as a data-quality result (model, version and window are stamped by the caller)."""
    flagged = gap.flagged(ceiling)
    details: dict[str, Any] = {
        "kept": gap.kept, "stored": gap.stored, "sdk_dropped": gap.sdk_dropped, "sdk_dropped_by_reason": dict(gap.dropped),
        "lost_after_sdk": max(gap.gap, 0.0), "missing": max(gap.missing, 0.0), "edge_uncertainty": gap.edge,
        "batch_error_rows": gap.batch_rows, "series": gap.series, "resets": gap.resets, "min_missing": MIN_MISSING,
    }
    if gap.missing < 0:
        details["stored_exceeds_kept"] = -gap.missing
    return Result("", "", FEATURE, METHOD, "data_quality", gap.missing_share, threshold=ceiling, drifted=flagged,
                  severity="warning" if flagged else "none", n_reference=gap.kept, n_current=gap.stored, details=details)


def results(store: Store, window: Any, ceiling: float) -> list[Result]:
    """The completeness result of one analysis window (none when the model's SDK exports no counters)."""
    gaps = pipeline_gap(store, window.model, window.start, window.end, window.version or None)
    g = gaps.get(window.model)
    return [finding(g, ceiling)] if g is not None else []


def describe(r: Result) -> str:
    """One line for people: how many kept predictions are missing, and where they were lost."""
    d = r.details
    kept, missing = d.get("kept", 0.0), d.get("missing", 0.0)
    reasons = ", ".join(f"{k} {v:,.0f}" for k, v in sorted((d.get("sdk_dropped_by_reason") or {}).items()) if v)
    text = (f"{missing:,.0f} of {kept:,.0f} kept predictions ({r.statistic or 0:.1%}) are not in the store: "
            f"{d.get('sdk_dropped', 0):,.0f} dropped in the SDK" + (f" ({reasons})" if reasons else "")
            + f", {d.get('lost_after_sdk', 0):,.0f} lost after it (collector, network, receiver)")
    if d.get("edge_uncertainty"):
        text += f"; up to {d['edge_uncertainty']:,.0f} may predate the window"
    return text
