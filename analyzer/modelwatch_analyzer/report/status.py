"""``modelwatch status``: what the store holds, the last analyses, open alerts, and what monitoring costs.

Read-only: it never applies the schema or writes a row. Exit codes (for
scripts): 0 the store was read; 1 it could not be opened or refused a query
(an embedded store that a running ``modelwatch serve`` holds cannot be opened
by a second process); 2 bad usage; 3 with ``--fail-on-alerts``, when alerts
are waiting for delivery (or failed it).

The cost report (:func:`cost`) compares the predictions *made* — the SDK's
full-population counter ``ml.predictions`` in ``otel_metrics_sum``
(cumulative: the latest value of each series), or, without metrics, the sum
of the stored sampling weights — with the predictions *stored* as spans;
gives the sampling rate by reason (``ml.sampling.decisions``: kept by each
rule, kept at random, dropped); the bytes on disk per table (``system.parts``);
and what logging 100 % of predictions would have taken: bytes per stored
prediction (its ``ml_predictions`` row plus its share of ``otel_traces``)
times the predictions made. It covers everything the store retains.

Bytes per retained prediction at steady state (:attr:`Cost.steady_state`):
raw spans and typed rows have their own retentions (``otel_traces`` 7 days,
``ml_predictions`` 180 by default, read from the tables' TTLs), so once the
store has run longer than both, each retained prediction costs its typed row
plus ``traces_days / predictions_days`` of a raw span: the typed bytes per
row measured now, plus the raw bytes per span measured now times that ratio.
A store younger than the raw retention already shows it; an older one shows
the figure it settles at. Without a TTL on raw spans while predictions
expire there is no steady state (raw spans outgrow them); with no TTL on
predictions the raw share tends to zero.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from modelwatch import contract as c

from modelwatch_analyzer.store import typed_tables
from modelwatch_analyzer.store.client import Store
from modelwatch_analyzer.textsafe import escape, escape_all

ALERTS_EXIT = 3


@dataclass
class ModelCost:
    model: str
    seen: float  # predictions made (SDK counter), or estimated from weights
    seen_source: str  # "metrics" | "weights"
    stored: int
    weight_sum: float
    kept_by_reason: dict[str, float] = field(default_factory=dict)  # from the SDK's decisions counter, else stored rows
    dropped: float = 0.0

    @property
    def rate(self) -> float:
        return self.stored / self.seen if self.seen else 0.0


@dataclass
class SteadyState:
    """Bytes on disk per retained prediction once both retentions have run their course (module docstring)."""

    typed_bytes: float  # per ml_predictions row
    raw_bytes: float | None  # per otel_traces span; None: no raw prediction span retained to measure
    traces_days: float | None  # None: kept forever
    predictions_days: float | None

    @property
    def raw_share(self) -> float | None:
        """Raw spans retained per retained prediction: traces_days / predictions_days; None: no steady state."""
        if self.traces_days is None:
            return 1.0 if self.predictions_days is None else None
        if self.predictions_days is None:
            return 0.0
        return self.traces_days / self.predictions_days if self.predictions_days else None

    @property
    def bytes(self) -> float | None:
        share = self.raw_share
        if share is None:
            return None
        return self.typed_bytes + (self.raw_bytes or 0.0) * share

    def to_json(self) -> dict[str, Any]:
        return {"bytes_per_retained_prediction": self.bytes, "typed_bytes_per_prediction": self.typed_bytes,
                "raw_bytes_per_span": self.raw_bytes, "raw_spans_per_retained_prediction": self.raw_share,
                "traces_retention_days": self.traces_days, "predictions_retention_days": self.predictions_days}


@dataclass
class Cost:
    models: list[ModelCost]
    tables: dict[str, dict[str, float]]  # table -> rows, bytes (on disk), uncompressed
    prediction_spans: int
    all_spans: int
    steady: SteadyState | None = None  # None: no typed prediction stored

    @property
    def seen(self) -> float:
        return sum(m.seen for m in self.models)

    @property
    def stored(self) -> int:
        return sum(m.stored for m in self.models)

    @property
    def bytes_per_prediction(self) -> float:
        """On disk, per stored prediction: its typed row plus its share of the raw spans."""
        if not self.stored:
            return 0.0
        traces = self.tables.get("otel_traces", {}).get("bytes", 0.0)
        share = self.prediction_spans / self.all_spans if self.all_spans else 0.0
        return (self.tables.get("ml_predictions", {}).get("bytes", 0.0) + traces * share) / self.stored

    @property
    def stored_bytes(self) -> float:
        return sum(t["bytes"] for t in self.tables.values())

    @property
    def full_logging_bytes(self) -> float:
        return self.bytes_per_prediction * self.seen

    def to_json(self) -> dict[str, Any]:
        return {"models": [dict(asdict(m), rate=m.rate) for m in self.models], "tables": self.tables,
                "predictions_seen": self.seen, "predictions_stored": self.stored,
                "bytes_stored": self.stored_bytes, "bytes_per_stored_prediction": self.bytes_per_prediction,
                "bytes_if_every_prediction_were_stored": self.full_logging_bytes,
                "steady_state": self.steady.to_json() if self.steady else None}


def cost(store: Store, model: str | None = None) -> Cost:
    """The monitoring cost report (see the module docstring); `model` restricts the per-model part."""
    tables = store.tables()
    per_table: dict[str, dict[str, float]] = {}
    for name, rows, on_disk, raw in store.query(
            "SELECT table, sum(rows), sum(bytes_on_disk), sum(data_uncompressed_bytes) FROM system.parts "
            "WHERE database = {db:String} AND active GROUP BY table ORDER BY table", {"db": store.database}):
        per_table[name] = {"rows": float(rows), "bytes": float(on_disk), "uncompressed": float(raw)}
    models: list[ModelCost] = []
    if "ml_predictions" in tables:
        where = "WHERE ModelName = {model:String}" if model else ""
        stored = store.query(f"SELECT ModelName, count(), sum(Weight) FROM {store.table('ml_predictions')} {where} "
                             "GROUP BY ModelName ORDER BY ModelName", {"model": model} if model else {})
        by_reason: dict[str, dict[str, float]] = {}
        for m, reason, n in store.query(
                f"SELECT ModelName, Reason, count() FROM {store.table('ml_predictions')} {where} GROUP BY ModelName, Reason",
                {"model": model} if model else {}):
            by_reason.setdefault(m, {})[reason or "(none)"] = float(n)
        counters = _counters(store, tables, model)
        for m, n, w in stored:
            made = counters.get((m, c.METRIC_PREDICTIONS), {})
            decisions = counters.get((m, c.METRIC_DECISIONS), {})
            seen = sum(made.values())
            kept = {k: v for k, v in decisions.items() if k != "not_sampled"}
            models.append(ModelCost(m, seen if seen else float(w), "metrics" if seen else "weights", int(n), float(w),
                                    kept or by_reason.get(m, {}), decisions.get("not_sampled", 0.0)))
    spans = all_spans = 0
    if "otel_traces" in tables:  # prediction spans by their attributes' names (no value read), whatever their span name
        spans, all_spans = store.query(f"SELECT countIf({typed_tables.prediction_span_keys()}), count() "
                                       f"FROM {store.table('otel_traces')}")[0]
    return Cost(models, per_table, int(spans), int(all_spans), _steady(store, per_table, int(spans)))


def _steady(store: Store, per_table: dict[str, dict[str, float]], prediction_spans: int) -> SteadyState | None:
    """The steady-state figure of :class:`SteadyState`, from the whole store's tables (every model)."""
    from modelwatch_analyzer.store.schema import retention_seconds

    typed = per_table.get("ml_predictions", {})
    if not typed.get("rows"):
        return None
    raw = per_table.get("otel_traces", {})
    raw_per_span = raw["bytes"] / raw["rows"] if prediction_spans and raw.get("rows") else None

    def days(table: str) -> float | None:
        seconds = retention_seconds(store, table)
        return None if seconds is None else seconds / 86_400

    return SteadyState(typed["bytes"] / typed["rows"], raw_per_span, days("otel_traces"), days("ml_predictions"))


def _counters(store: Store, tables: set[str], model: str | None) -> dict[tuple[str, str], dict[str, float]]:
    """(model, metric) -> {outcome or reason: total} from the SDK's cumulative sums (latest value per series)."""
    if "otel_metrics_sum" not in tables:
        return {}
    where = f" AND Attributes['{c.MODEL_NAME}'] = {{model:String}}" if model else ""
    rows = store.query(
        f"SELECT m, name, key, sum(v) FROM (SELECT Attributes['{c.MODEL_NAME}'] AS m, MetricName AS name, "
        f"if(MetricName = '{c.METRIC_PREDICTIONS}', Attributes['outcome'], Attributes['reason']) AS key, max(Value) AS v "
        f"FROM {store.table('otel_metrics_sum')} WHERE MetricName IN ('{c.METRIC_PREDICTIONS}', '{c.METRIC_DECISIONS}'){where} "
        "GROUP BY ServiceName, ResourceAttributes, StartTimeUnix, Attributes, MetricName) GROUP BY m, name, key",
        {"model": model} if model else {})
    out: dict[tuple[str, str], dict[str, float]] = {}
    for m, name, key, v in rows:
        out.setdefault((m, name), {})[key] = float(v)
    return out


# -- status ---------------------------------------------------------------------------------


def gather(store: Store, model: str | None = None, runs: int = 5) -> dict[str, Any]:
    """Everything ``modelwatch status`` shows, as plain data."""
    from modelwatch_analyzer.store import schema

    tables = store.tables()
    out: dict[str, Any] = {"store": store.location, "database": store.database, "model": model,
                           "schema_version": schema.version(store), "models": [], "spans": {}, "baselines": [],
                           "runs": [], "alerts": {"recent": [], "undelivered": 0, "failed": 0}}
    where = _Where(model)
    if "ml_predictions" in tables:
        out["models"] = _models(store, where, "ml_labels" in tables, out["schema_version"] >= 12)
    if "otel_traces" in tables:
        out["spans"] = {name: int(n) for name, n in store.query(
            f"SELECT SpanName, count() FROM {store.table('otel_traces')} GROUP BY SpanName ORDER BY count() DESC")}
    out["untyped"] = _untyped(store)
    out["unreadable"] = _unreadable(store)
    out["pipeline"] = _pipeline(store, model)
    out["metric_points"] = sum(int(store.query(f"SELECT count() FROM {store.table(t)}")[0][0]) for t in (
        "otel_metrics_sum", "otel_metrics_gauge", "otel_metrics_exponential_histogram", "otel_metrics_histogram")
        if t in tables)
    if "ml_baselines" in tables:
        from modelwatch_analyzer.analysis import baseline

        out["baselines"] = [{"model": m, "version": v, "id": bid, "created": _iso(c), "source": s, "columns": int(n)}
                            for m, v, bid, c, s, n in baseline.list_baselines(store, model)]
    if "ml_results" in tables:
        out["runs"] = _runs(store, where, runs)
    if "ml_alerts" in tables:
        out["alerts"] = _alerts(store, where)
    return out


@dataclass(frozen=True)
class _Where:
    """The ``WHERE`` clause and parameters that restrict a query to one model (or to none)."""

    model: str | None

    @property
    def sql(self) -> str:
        return "WHERE ModelName = {model:String}" if self.model else ""

    @property
    def params(self) -> dict[str, Any]:
        return {"model": self.model} if self.model else {}


def _models(store: Store, where: _Where, labels: bool, clamped: bool) -> list[dict[str, Any]]:
    """Per model and version: predictions stored, made (sum of weights), their time range, how many carried a
    sampling weight the typed view had to bound (`clamped`: the store has the column, migration 12) and, with
    labels, how many."""
    flagged = "countIf(WeightClamped)" if clamped else "0"
    out = [{"model": m, "version": v, "stored": int(n), "estimated": float(w), "first": _iso(first), "last": _iso(last),
            "weights_clamped": int(k)}
           for m, v, n, w, first, last, k in store.query(
               f"SELECT ModelName, ModelVersion, count(), sum(Weight), min(Timestamp), max(Timestamp), {flagged} "
               f"FROM {store.table('ml_predictions')} {where.sql} GROUP BY ModelName, ModelVersion "
               "ORDER BY ModelName, ModelVersion", where.params)]
    if labels:
        counts = dict(store.query(f"SELECT ModelName, uniqExact(PredictionId) FROM {store.table('ml_labels')} "
                                  f"{where.sql} GROUP BY ModelName", where.params))
        for row in out:
            row["labels"] = int(counts.get(row["model"], 0))
    return out


def _runs(store: Store, where: _Where, runs: int) -> list[dict[str, Any]]:
    """The last `runs` analysis runs: their window, drifted features, worst severity and status."""
    rows = store.query(
        "SELECT RunId, max(RunAt), any(ModelName), any(ModelVersion), min(WindowStart), max(WindowEnd), "
        "countIf(Kind = 'drift' AND Drifted AND JSONExtractBool(Details, 'score') AND Segment = '' "
        "AND Feature NOT LIKE 'prediction.%'), "
        "arrayElement(['none', 'info', 'warning', 'critical'], toUInt8(max(indexOf(['none', 'info', 'warning', "
        "'critical'], if(Drifted AND Kind = 'drift', toString(Severity), 'none'))))), count(), "
        "anyIf(Status, Method = 'drift_share') "
        f"FROM {store.table('ml_results')} FINAL {where.sql} GROUP BY RunId ORDER BY max(RunAt) DESC, "
        "max(WindowEnd) DESC LIMIT {runs:UInt32}", {**where.params, "runs": runs})
    return [{"run_id": run, "run_at": _iso(run_at), "model": m, "version": v, "window_start": _iso(ws),
             "window_end": _iso(we), "drifted_features": int(drifted), "worst_severity": worst, "results": int(n),
             "status": status or "ok"} for run, run_at, m, v, ws, we, drifted, worst, n, status in rows]


def _alerts(store: Store, where: _Where) -> dict[str, Any]:
    """How many standing alerts, how many wait for delivery or fail it, and the ten latest."""
    from modelwatch_analyzer.outputs.alerts.rows import ALERT_COLUMNS, LIVE, Alert

    live = f"{where.sql} AND {LIVE}" if where.sql else f"WHERE {LIVE}"
    rows = store.query(f"SELECT {', '.join(ALERT_COLUMNS)} FROM {store.table('ml_alerts')} FINAL {live} "
                       "ORDER BY FiredAt DESC, AlertId LIMIT 200", where.params)
    alerts = [Alert.from_row(r) for r in rows]
    pending = [a for a in alerts if a.route and not a.delivered]
    return {
        "total": len(alerts),
        "undelivered": sum(1 for a in pending if not a.last_error),
        "failed": sum(1 for a in pending if a.last_error),
        "recent": [{"fired_at": _iso(a.fired_at), "model": a.model, "severity": a.severity, "rule": a.rule,
                    "feature": a.feature, "route": a.route or "-", "delivered": a.delivered,
                    "attempts": a.attempts, "last_error": a.last_error, "message": a.message,
                    "trace_ids": list(a.payload.get("trace_ids", []))[:5]} for a in alerts[:10]],
    }


def _untyped(store: Store) -> list[dict[str, Any]]:
    """Raw spans without their typed rows (an interrupted commit; ``modelwatch serve`` types them at start)."""
    from modelwatch_analyzer.store.consistency import gaps

    return [{"table": g.table, "day": g.day.isoformat(), "missing": g.missing} for g in gaps(store)]


def _unreadable(store: Store) -> list[dict[str, Any]]:
    """Raw spans with ``ml.*`` attributes that the typed views cannot read, by reason."""
    from modelwatch_analyzer.store.consistency import unreadable

    return [{"reason": u.reason, "why": u.why, "spans": u.spans, "span_names": list(u.span_names)}
            for u in unreadable(store)]


def _pipeline(store: Store, model: str | None) -> list[dict[str, Any]]:
    """Per model, the predictions its SDK kept against those stored, over everything the store retains."""
    from modelwatch_analyzer.analysis.completeness import pipeline_gap

    if "otel_metrics_sum" not in store.tables():
        return []
    return [{"model": g.model, "kept": g.kept, "stored": g.stored, "sdk_dropped": g.sdk_dropped,
             "lost_after_sdk": max(g.gap, 0.0), "missing": max(g.missing, 0.0), "missing_share": g.missing_share,
             "flagged": g.flagged(0.0)} for g in pipeline_gap(store, model).values()]


def _iso(t: Any) -> str | None:
    if t is None:
        return None
    if isinstance(t, datetime):
        t = t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t
        return t.isoformat(timespec="seconds")
    return str(t)


def _t(iso: str | None) -> str:
    return (iso or "-").replace("T", " ").replace("+00:00", "")[:19]


def human_bytes(n: float) -> str:
    """`n` bytes for a reader: B, KiB, MiB, GiB or TiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:.1f}"


def text(info: dict[str, Any], c: Cost | None = None) -> str:
    """The readable status (every string from the store escaped for the terminal)."""
    info = escape_all(info)
    out = [f"store {info['store']} (database {info['database']}, schema version {info['schema_version']})"]
    if not info["schema_version"]:
        out.append("  empty: no modelwatch tables yet. Start receiving with `modelwatch serve`, or try `modelwatch demo`.")
        return "\n".join(out)
    if info["models"]:
        out.append(f"\nmodels ({len({m['model'] for m in info['models']})}):")
        out.append(f"  {'model':<24} {'version':<12} {'stored':>9} {'≈ made':>10} {'labels':>8}  time range (UTC)")
        for m in info["models"]:
            out.append(f"  {m['model']:<24} {m['version'] or '-':<12} {m['stored']:>9,} {m['estimated']:>10,.0f} "
                       f"{m.get('labels', 0):>8,}  {_t(m['first'])} → {_t(m['last'])}")
        for m in info["models"]:
            if m.get("weights_clamped"):
                out.append(f"  WARNING: {m['model']} {m['version'] or '-'}: {m['weights_clamped']:,} predictions carried an "
                           "ml.sampling.weight outside [1, 1e6] or not a number; counted at the bounded weight (otel_traces "
                           "keeps the sent value while it keeps the span): check the sender's sampling")
    else:
        out.append("\nmodels: none yet (no prediction spans stored). Point the SDK at `modelwatch serve`.")
    spans = info["spans"]
    scope = " in the whole store (every model)" if info.get("model") else ""
    out.append(f"spans stored{scope}: {sum(spans.values()):,}" + (" (" + ", ".join(f"{k or '-'} {v:,}" for k, v in spans.items())
                                                          + ")" if spans else "")
               + f"; metric points: {info['metric_points']:,}")
    for g in info.get("pipeline", []):
        if g["flagged"]:
            out.append(f"  PIPELINE GAP: {g['model']}: {g['missing']:,.0f} of {g['kept']:,.0f} kept predictions "
                       f"({g['missing_share']:.1%}) are not stored ({g['sdk_dropped']:,.0f} dropped in the SDK, "
                       f"{g['lost_after_sdk']:,.0f} lost after it): not low traffic")
    for g in info.get("untyped", []):
        out.append(f"  WARNING: {g['missing']:,} spans of {g['day']} are in otel_traces but not in {g['table']} "
                   "(an interrupted commit, or spans stored before the views typed spans of any name): "
                   "`modelwatch serve` types them when it starts")
    for u in info.get("unreadable", []):
        names = ", ".join(n or "-" for n in u["span_names"])
        out.append(f"  WARNING: {u['spans']:,} spans in otel_traces {u['why']} (span names: {names}): see "
                   "docs/contract.md")
    if info["baselines"]:
        out.append(f"\nbaselines ({len(info['baselines'])}):")
        for b in info["baselines"][:10]:
            out.append(f"  {b['model']:<24} {b['version'] or '-':<12} {b['id']:<18} {_t(b['created'])}  "
                       f"{b['columns']} columns, from {b['source']}")
    else:
        out.append("\nbaselines: none. Create one: modelwatch baseline create --model M --version V --file train.parquet")
    if info["runs"]:
        out.append("\nlast analysis runs:")
        for r in info["runs"]:
            verdict = (f"{r['drifted_features']} feature(s) drifted, worst {r['worst_severity']}"
                       if r["status"] == "ok" else r["status"].replace("_", " "))
            out.append(f"  {_t(r['run_at'])}  {r['model']} {r['version'] or ''} window {_t(r['window_start'])} → "
                       f"{_t(r['window_end'])}: {verdict}")
    else:
        out.append("\nanalysis runs: none yet. Run: modelwatch analyze --model M --last 24h")
    a = info["alerts"]
    if a.get("recent"):
        out.append(f"\nalerts: {a['total']} stored, {a['undelivered']} waiting for delivery, {a['failed']} failing")
        for x in a["recent"]:
            state = "delivered" if x["delivered"] else ("no route" if x["route"] == "-" else
                                                        f"NOT delivered ({x['attempts']} attempts: {x['last_error'][:80]})"
                                                        if x["last_error"] else "pending")
            out.append(f"  {_t(x['fired_at'])} [{x['severity']}] {x['rule']}: {x['message']} → {x['route']}, {state}")
            if x["trace_ids"]:
                out.append(f"      traces: {', '.join(x['trace_ids'][:3])}")
    else:
        out.append("\nalerts: none")
    if c is not None:
        out.append("\n" + cost_text(c))
    return "\n".join(out)


def cost_text(c: Cost) -> str:
    out = ["monitoring cost (everything the store retains):"]
    if not c.models:
        out.append("  no predictions stored yet")
    for m in c.models:
        src = "SDK counter ml.predictions" if m.seen_source == "metrics" else "estimated from sampling weights"
        out.append(f"  {escape(m.model)}: {m.seen:,.0f} predictions made ({src}), {m.stored:,} stored as spans ({m.rate:.1%})")
        total = m.seen or 1.0
        reasons = sorted(m.kept_by_reason.items(), key=lambda kv: -kv[1])
        if reasons:
            out.append("    kept by reason: " + ", ".join(f"{escape(k)} {v:,.0f} ({v / total:.1%} of all)" for k, v in reasons))
        rnd = m.kept_by_reason.get("random", 0.0)
        if m.dropped or rnd:
            out.append(f"    dropped by sampling: {m.dropped:,.0f}; random-sampling rate among the rest: "
                       f"{rnd / (rnd + m.dropped) if rnd + m.dropped else 0:.1%}")
    if c.tables:
        out.append("  on disk: " + ", ".join(f"{t} {human_bytes(v['bytes'])}" for t, v in sorted(c.tables.items(),
                                                                                          key=lambda kv: -kv[1]["bytes"])
                                             if v["bytes"]))
        out.append(f"  total {human_bytes(c.stored_bytes)}; {c.bytes_per_prediction:,.0f} bytes per stored prediction "
                   f"(its typed row + its share of otel_traces)")
    if c.steady is not None:
        out.append("  " + steady_text(c.steady))
    if c.stored and c.seen:
        ratio = c.full_logging_bytes / max(c.bytes_per_prediction * c.stored, 1.0)
        out.append(f"  logging 100% of the {c.seen:,.0f} predictions would take ≈ {human_bytes(c.full_logging_bytes)} "
                   f"instead of {human_bytes(c.bytes_per_prediction * c.stored)} ({ratio:.1f}× the prediction storage)")
    return "\n".join(out)


def steady_text(st: SteadyState) -> str:
    """One line: bytes per retained prediction at steady state, and what it is made of."""
    def kept(d: float | None) -> str:
        return "forever" if d is None else f"{d:g} days"

    retention = f"raw spans kept {kept(st.traces_days)}, typed predictions {kept(st.predictions_days)}"
    if st.bytes is None:
        return (f"steady state: none ({retention}: raw spans outgrow the predictions they belong to); "
                f"{st.typed_bytes:,.0f} bytes per typed prediction")
    if st.raw_bytes is None:
        raw = "no raw prediction span retained to measure"
    elif st.traces_days is None or st.predictions_days is None:
        raw = f"raw span {st.raw_bytes:,.0f} × {st.raw_share:g}"
    else:
        raw = f"raw span {st.raw_bytes:,.0f} × {st.traces_days:g}/{st.predictions_days:g} days"
    return (f"steady state: {st.bytes:,.0f} bytes per retained prediction (typed row {st.typed_bytes:,.0f} + "
            f"{raw}; {retention})")


def main(args: Any) -> int:
    """``modelwatch status`` (arguments parsed in cli.py)."""
    store = Store(args.url, database=getattr(args, "database", None), create=False)
    try:
        info = gather(store, args.model)
        if args.model and info["schema_version"]:
            from modelwatch_analyzer.report.data import models_in

            known = models_in(store)
            if args.model not in known:
                print(f"modelwatch: no model {escape(repr(args.model))} in the store {escape(store.location)}; "
                      f"models: {escape(', '.join(known)) or 'none'}", file=sys.stderr)
                return 1
        c = cost(store, args.model) if args.cost and info["schema_version"] else None
    finally:
        store.close()
    if args.format == "json":
        if c is not None:
            info["cost"] = c.to_json()
        json.dump(info, sys.stdout, indent=1, default=str)
        print()
    else:
        print(text(info, c))
    a = info["alerts"]
    return ALERTS_EXIT if args.fail_on_alerts and (a.get("undelivered") or a.get("failed")) else 0
