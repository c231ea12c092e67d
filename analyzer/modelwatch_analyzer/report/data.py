"""What the report shows, read from the store: one model's results, baseline, volume, alerts and evidence.

Everything comes from the store's own tables — ``ml_results`` (whose rows
carry bins, shares and trace ids in ``Details``), ``ml_baselines``,
``ml_predictions``, ``ml_alerts`` — nothing is recomputed here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from modelwatch_analyzer.analysis import baseline as baselines
from modelwatch_analyzer.analysis import results as results_mod
from modelwatch_analyzer.analysis.results import Result
from modelwatch_analyzer.analysis.window import utc
from modelwatch_analyzer.outputs.alerts.rows import ALERT_COLUMNS, LIVE, Alert
from modelwatch_analyzer.store.client import Store

TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
"""A trace id as the report links it (anything else from the data is shown as text)."""
EVIDENCE_LIMIT = 60


@dataclass
class ModelData:
    model: str
    versions: list[str]
    results: list[Result]
    baseline: baselines.Baseline | None
    volume: list[tuple[datetime, str, int, float]]  # bucket, reason, stored, weight
    bucket: timedelta
    alerts: list[Any]
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)  # trace id -> stored prediction
    segments: list[Result] = field(default_factory=list)  # the segment summaries (kind "segment"), oldest first

    def windows(self) -> list[tuple[datetime, datetime]]:
        return sorted({(r.window_start, r.window_end) for r in self.results if r.window_start and r.window_end})

    def latest(self) -> list[Result]:
        w = self.windows()
        if not w:
            return []
        return [r for r in self.results if (r.window_start, r.window_end) == w[-1]]


def _bucket(span: timedelta) -> timedelta:
    for b in (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1),
              timedelta(hours=6), timedelta(days=1)):
        if span / b <= 60:
            return b
    return timedelta(days=7)


def models_in(store: Store) -> list[str]:
    tables = store.tables()
    names: set[str] = set()
    for table in ("ml_predictions", "ml_results", "ml_baselines"):
        if table in tables:
            names |= {r[0] for r in store.query(f"SELECT DISTINCT ModelName FROM {store.table(table)}")}
    return sorted(n for n in names if n)


def gather(store: Store, model: str, since: datetime | None = None, until: datetime | None = None) -> ModelData:
    """One model's part of the report, for windows inside [since, until] (default: everything)."""
    rows = results_mod.load(store, model, since, until)
    try:
        base = baselines.load(store, model)
    except Exception:
        base = None
    where = ["ModelName = {model:String}"]
    params: dict[str, Any] = {"model": model}
    if since is not None:
        where.append("Timestamp >= {since:DateTime64(3)}")
        params["since"] = since
    if until is not None:
        where.append("Timestamp < {until:DateTime64(3)}")
        params["until"] = until
    cond = " AND ".join(where)
    table = store.table("ml_predictions")
    versions = [r[0] for r in store.query(f"SELECT DISTINCT ModelVersion FROM {table} WHERE {cond} ORDER BY 1", params)]
    first, last = store.query(f"SELECT min(Timestamp), max(Timestamp) FROM {table} WHERE {cond}", params)[0]
    bucket = _bucket((utc(last) - utc(first)) if first and last and last > first else timedelta(hours=1))
    volume = [(utc(t), reason, int(n), float(w)) for t, reason, n, w in store.query(
        f"SELECT toStartOfInterval(Timestamp, toIntervalSecond({{b:UInt32}})) AS t, Reason, count(), sum(Weight) "
        f"FROM {table} WHERE {cond} GROUP BY t, Reason ORDER BY t, Reason",
        dict(params, b=int(bucket.total_seconds())))] if first else []
    data = ModelData(model, versions, rows, base, volume, bucket, _alerts(store, where, params))
    data.segments = [r for r in results_mod.load(store, model, since, until, segments=True)
                     if r.method == "segment_drift"]
    data.evidence = _evidence(store, model, data)
    return data


def _alerts(store: Store, where: list[str], params: dict[str, Any]) -> list[Alert]:
    """The standing ``ml_alerts`` rows fired in the range (`where` on ``Timestamp``, as for the predictions)."""
    if "ml_alerts" not in store.tables():
        return []
    aw = [LIVE, "ModelName = {model:String}"] + [w.replace("Timestamp", "FiredAt") for w in where[1:]]
    return [Alert.from_row(r) for r in store.query(
        f"SELECT {', '.join(ALERT_COLUMNS)} FROM {store.table('ml_alerts')} FINAL WHERE {' AND '.join(aw)} "
        "ORDER BY FiredAt, AlertId", params)]


def _evidence(store: Store, model: str, data: ModelData) -> dict[str, dict[str, Any]]:
    """The stored predictions behind the latest window, drifted results and alerts (trace id -> prediction)."""
    ids: list[str] = []
    for r in data.latest() + [r for r in data.results if r.drifted]:
        for t in r.details.get("trace_ids", []) or []:
            if isinstance(t, str) and TRACE_ID.match(t) and t not in ids:
                ids.append(t)
    for a in data.alerts:
        for t in a.payload.get("trace_ids", []) if isinstance(a.payload, dict) else []:
            if isinstance(t, str) and TRACE_ID.match(t) and t not in ids:
                ids.append(t)
    return predictions(store, model, ids[:EVIDENCE_LIMIT])


def predictions(store: Store, model: str, trace_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The stored predictions of `model` with these trace ids (trace id -> time, reason, weight, output, features)."""
    out: dict[str, dict[str, Any]] = {}
    if not trace_ids:
        return out
    for ts, tid, reason, weight, pred, score, num, cat in store.query(
            f"SELECT Timestamp, TraceId, Reason, Weight, Prediction, Score, Numeric, Categorical "
            f"FROM {store.table('ml_predictions')} "
            "WHERE ModelName = {model:String} AND TraceId IN {ids:Array(String)}", {"model": model, "ids": trace_ids}):
        out[tid] = {"time": utc(ts), "reason": reason, "weight": weight, "prediction": pred,
                    "score": score, "features": {**{k: v for k, v in num.items()}, **cat}}
    return out
