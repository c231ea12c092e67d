"""Fill an embedded store the way production fills ClickHouse, then run every Grafana panel's SQL.

Run as a separate process by ``conftest.py`` (chDB opens one directory per process, and the
analyzer tests own this process's): ``python panel_runner.py <chdb dir> <dashboard.json>``
prints one JSON object: ``{"calls": N, "queries": [{"panel", "ref", "sql", "rows", "sample", "data", "error"}, ...]}``
(``calls``: predictions made, errors included; ``data``: up to 200 rows).

The data is real: the modelwatch SDK, configured with its OTLP exporters, sends spans and metrics
to ``modelwatch serve`` (the embedded receiver that writes exactly the collector exporter's
tables); a baseline is built from the first window and the analyzer analyses the second (drifted)
one, storing results and alerts. Grafana macros are replaced by :func:`substitute`.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import time
from datetime import datetime, timedelta, timezone

MODEL = "credit"
CALLS = 700 + 700 + 200  # predictions fill() makes, errors included
DATABASE = "modelwatch"  # the Grafana datasource's defaultDatabase: panels name tables unqualified


def substitute(sql: str, model: str, start: datetime, end: datetime, interval_s: int = 60) -> str:
    """The ClickHouse datasource plugin's macros, expanded the way the plugin does, with concrete values.

    ``$__timeFilter(c)`` → ``c >= toDateTime(from) AND c <= toDateTime(to)``; ``$__fromTime`` /
    ``$__toTime`` → ``toDateTime(...)``; ``$__timeInterval(c)`` → ``toStartOfInterval(toDateTime(c),
    INTERVAL n second)``; ``${model}`` → the model name. A ``$`` left over is an unknown macro: an error.
    """
    f, t = int(start.timestamp()), int(end.timestamp())
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", lambda m: f"{m[1]} >= toDateTime({f}) AND {m[1]} <= toDateTime({t})", sql)
    sql = re.sub(r"\$__timeInterval\(([^)]+)\)",
                 lambda m: f"toStartOfInterval(toDateTime({m[1]}), INTERVAL {interval_s} second)", sql)
    sql = sql.replace("$__fromTime", f"toDateTime({f})").replace("$__toTime", f"toDateTime({t})")
    sql = sql.replace("${model}", model).replace("$model", model)
    if "$" in sql:
        raise ValueError(f"unknown Grafana macro left in: {sql}")
    return sql


def fill(store_url: str):  # -> (Server, start, end)
    import modelwatch
    import numpy as np
    from modelwatch_analyzer.analysis import baseline
    from modelwatch_analyzer.analysis.window import Window
    from modelwatch_analyzer.outputs.alerts.firing import Alerter
    from modelwatch_analyzer.service import config
    from modelwatch_analyzer.service.scheduler import analyse_model
    from modelwatch_analyzer.service.serve import ServeOptions, Server

    srv = Server(ServeOptions(url=store_url, database=DATABASE, grpc_port=0, http_port=0, analyzer=False))
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{srv.http_port}"
    os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
    os.environ["OTEL_SERVICE_NAME"] = "scoring-api"
    telemetry = modelwatch.configure(set_global=False, metric_export_interval_millis=3_600_000)
    rng = random.Random(5)
    begin = datetime.now(timezone.utc) - timedelta(seconds=1)

    @modelwatch.monitor(model=MODEL, version="1", sampling_rate=0.25)
    def predict(x):
        if x["income"] is not None and x["income"] > 100:
            raise ValueError("income out of the model's range")
        p = 1 / (1 + np.exp(-((x["income"] or 50) - 50) / 10))
        return {"prediction": "approve" if p > 0.5 else "review", "score": float(p)}

    labelled = []

    def stream(n: int, mean: float, missing: float) -> None:
        for _ in range(n):
            income = None if rng.random() < missing else rng.gauss(mean, 12)
            try:
                out = predict({"income": income, "region": rng.choice("nsew"), "tenure": rng.randint(0, 40)})
            except ValueError:
                continue
            last = modelwatch.last_prediction()
            if last.kept and rng.random() < 0.5:
                labelled.append((last.id, out["prediction"] if rng.random() < 0.8 else "review"))

    try:
        stream(700, 50, 0.0)
        assert telemetry.force_flush(30_000)
        t1 = datetime.now(timezone.utc)
        time.sleep(0.01)
        stream(700, 66, 0.2)  # drifted, and a fifth of the incomes missing
        assert telemetry.force_flush(30_000)
        for pid, label in labelled:
            modelwatch.record_label(MODEL, pid, label, version="1")
        stream(200, 66, 0.2)  # a later export of the same cumulative metric series
        assert telemetry.force_flush(30_000)
    finally:
        telemetry.shutdown()
    t2 = datetime.now(timezone.utc) + timedelta(seconds=1)
    store = srv.store
    baseline.save(store, baseline.from_window(store, Window(MODEL, begin, t1), "1"))
    cfg = config.Config.from_dict({
        "models": [{"name": MODEL, "min_labels": 10}],
        "alerts": {"rules": [{"name": "drift", "type": "drift"},
                             {"name": "missing", "type": "data_quality", "metric": "missing_rate", "max": 0.05}]},
    })
    analyse_model(store, cfg.model(MODEL), Window(MODEL, t1, t2), cfg, Alerter(store, cfg.alerts))
    return srv, begin - timedelta(hours=1), t2 + timedelta(hours=1)


def main(directory: str, dashboard_path: str) -> None:
    srv, start, end = fill(f"chdb://{directory}")
    with open(dashboard_path, encoding="utf-8") as fh:
        dashboard = json.load(fh)
    queries = [("variable " + v["name"], "var", v["query"]) for v in dashboard["templating"]["list"] if v["type"] == "query"]
    queries += [(p["title"], t["refId"], t["rawSql"]) for p in dashboard["panels"] for t in p.get("targets", [])]
    out = []
    try:
        srv.store.command(f"USE {DATABASE}")  # as the datasource's defaultDatabase does
        for title, ref, sql in queries:
            entry = {"panel": title, "ref": ref, "sql": sql, "rows": 0, "sample": None, "error": None}
            try:
                rows = srv.store.query(substitute(sql, MODEL, start, end))
                entry["rows"] = len(rows)
                entry["sample"] = [str(v) for v in rows[0]] if rows else None
                entry["data"] = [[v if isinstance(v, (int, float, bool)) or v is None else str(v) for v in r]
                                 for r in rows[:200]]
            except Exception as exc:  # reported to the test, which fails on it
                entry["error"] = f"{type(exc).__name__}: {exc}"
            out.append(entry)
        latency = latency_intervals(srv.store, next(sql for title, ref, sql in queries
                                                  if (title, ref) == ("Latency p95", "A")))
    finally:
        srv.stop()
    json.dump({"calls": CALLS, "queries": out, "latency_intervals": latency}, sys.stdout)


def latency_intervals(store, panel_sql: str) -> list:  # type: ignore[no-untyped-def]
    """The latency panel's p95 per minute on two exports of one cumulative series, in a database of their own:
    10,000 fast predictions (~10 ms) by 12:00:30, then 100 slow ones (~1 s) by 12:01:30, the histogram
    downscaled from scale 6 to 3 meanwhile (as the SDK's does when its range grows). Per interval, the
    second minute's p95 is the slow ones' (a cumulative p95 would stay ~10 ms: 100 of 10,100)."""
    import collections
    import math

    from modelwatch_analyzer.store import schema
    from modelwatch_analyzer.store.client import Store

    def histogram(values, scale):  # type: ignore[no-untyped-def]
        index = collections.Counter(math.ceil(math.log2(v) * 2 ** scale) - 1 for v in values)
        lo, hi = min(index), max(index)
        return lo, [index.get(i, 0) for i in range(lo, hi + 1)]

    db = Store(store.url, database="latency_check")
    schema.apply(db)
    t0 = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
    fast = [0.01 * (1 + i / 20_000) for i in range(10_000)]
    slow = [1.0 * (1 + i / 200) for i in range(100)]
    rows = []
    for when, values, scale in ((t0 + timedelta(seconds=30), fast, 6), (t0 + timedelta(seconds=90), fast + slow, 3)):
        offset, counts = histogram(values, scale)
        rows.append((t0 + timedelta(seconds=5), when, "svc", {"ml.model.name": MODEL}, "ml.prediction.latency", scale, 0,
                     offset, counts, len(values)))
    db.insert("otel_metrics_exponential_histogram", rows, ("StartTimeUnix", "TimeUnix", "ServiceName", "Attributes",
                                                           "MetricName", "Scale", "ZeroCount", "PositiveOffset",
                                                           "PositiveBucketCounts", "Count"))
    db.command("USE latency_check")
    try:
        result = db.query(substitute(panel_sql, MODEL, t0 - timedelta(minutes=5), t0 + timedelta(minutes=5)))
    finally:
        db.command(f"USE {DATABASE}")
    return [[str(t), p95] for t, p95 in result]


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
