"""The analyzer as a service: SDK → serve → analysis → alert with trace links; scheduled rounds; retry after store errors."""

from __future__ import annotations

import http.server
import itertools
import json
import random
import threading
import time
from datetime import datetime, timedelta, timezone

import modelwatch
import numpy as np
import pytest
from analyzer_data import T0, insert
from modelwatch import pipeline
from modelwatch_analyzer.analysis import baseline, results
from modelwatch_analyzer.analysis.window import Window
from modelwatch_analyzer.outputs.alerts.firing import Alerter
from modelwatch_analyzer.service import config
from modelwatch_analyzer.service.scheduler import AnalyzerService, aligned_end, analyse_model
from modelwatch_analyzer.service.serve import ServeOptions, Server
from modelwatch_analyzer.store import schema

_db = itertools.count()


class _Webhook:
    """A real HTTP endpoint that records the JSON bodies it receives."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                outer.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


@pytest.fixture
def webhook():
    hook = _Webhook()
    yield hook
    hook.close()


def _config(url: str, **model) -> config.Config:
    return config.Config.from_dict({
        "schedule": {"every_minutes": 60, "window_hours": 1},
        "models": [{"name": "credit", **model}],
        "alerts": {"routes": [{"name": "oncall", "url": url}], "cooldown_seconds": 3600},
        "detectors": [{"detector": "cusum", "method": "psi", "threshold": 0.2, "min_instances": 1}],
    })


def test_sdk_predictions_through_serve_to_an_alert_that_links_to_the_traces(store_dir, webhook, monkeypatch):
    """The whole product on the embedded store: decorated model → OTLP → serve → baseline → analysis → webhook."""
    srv = Server(ServeOptions(url=f"chdb://{store_dir}", database=f"svc{next(_db)}", grpc_port=0, http_port=0,
                              analyzer=False))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{srv.http_port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    assert pipeline.current() is None
    telemetry = modelwatch.configure(set_global=False, metric_export_interval_millis=3_600_000)
    rng = random.Random(3)
    try:
        @modelwatch.monitor(model="credit", version="1", sampling_rate=0.25)
        def predict(x):
            p = 1 / (1 + np.exp(-(x["income"] - 50) / 10))
            return {"prediction": "approve" if p > 0.5 else "review", "score": float(p)}

        def stream(n, income_mean):
            for _ in range(n):
                predict({"income": rng.gauss(income_mean, 10), "region": rng.choice(["n", "s", "e", "w"])})

        t0 = datetime.now(timezone.utc)
        stream(1500, 50)
        assert telemetry.force_flush(30_000)
        time.sleep(0.01)
        t1 = datetime.now(timezone.utc)
        stream(1500, 65)
        assert telemetry.force_flush(30_000)
        t2 = datetime.now(timezone.utc) + timedelta(seconds=1)
    finally:
        telemetry.shutdown()
    try:
        store = srv.store
        b = baseline.from_window(store, Window("credit", t0, t1), "1")
        baseline.save(store, b)
        assert 1300 < b.rows < 1700  # weights restore the population from a ~25% sample (+ rule-kept rows)
        cfg = _config(webhook.url)
        report = analyse_model(store, cfg.model("credit"), Window("credit", t1, t2), cfg, Alerter(store, cfg.alerts))
        by = {(r.feature, r.method): r for r in report.results}
        assert by[("income", "psi")].drifted and by[("income", "psi")].severity == "critical"
        assert not by[("region", "psi")].drifted
        assert by[("prediction.score", "psi")].drifted  # prediction drift follows
        assert 1300 < by[("income", "psi")].n_current < 1700
        # the alert was delivered, and its trace ids are stored spans of the drifted feature's predictions
        assert webhook.bodies, "no alert delivered"
        body = next(b for b in webhook.bodies if b["alert"]["feature"] == "income")
        text = json.dumps(body)
        assert body["alert"]["severity"] == "critical"
        trace_ids = by[("income", "psi")].details["trace_ids"]
        assert trace_ids and all(t in text for t in trace_ids)
        found = store.query(f"SELECT count() FROM {store.table('otel_traces')} WHERE TraceId IN {{ids:Array(String)}} "
                            "AND SpanName = 'ml.predict'", {"ids": trace_ids})
        assert found[0][0] == len(trace_ids)
        assert {r.method for r in results.load(store, "credit")} >= {"psi", "ks", "label_coverage", "cusum"}
    finally:
        srv.stop()


def test_scheduled_rounds_replace_their_window_and_do_not_refire(store, webhook):
    rng = np.random.default_rng(0)
    insert(store, "credit", T0, {"income": rng.normal(50, 10, 2000)})
    insert(store, "credit", T0 + timedelta(hours=1), {"income": rng.normal(70, 10, 2000)}, id_prefix="c")
    baseline.save(store, baseline.from_window(store, Window("credit", T0, T0 + timedelta(hours=1)), "1"))
    end = T0 + timedelta(hours=2)
    service = AnalyzerService(store, _config(webhook.url), clock=lambda: end + timedelta(minutes=5))
    assert aligned_end(end + timedelta(minutes=5), 60) == end
    first = service.run_once()
    second = service.run_once()  # the same window again: replaces, does not duplicate, does not re-alert
    assert first[0].error is None and second[0].error is None
    stored = results.load(store, "credit")
    assert sorted((r.feature or "", r.method) for r in stored) == sorted((r.feature or "", r.method)
                                                                        for r in first[0].results)
    # the second run replaced the first; the detector counted the window once (its row stays the first run's)
    assert {r.run_id for r in stored if r.method != "cusum"} == {second[0].results[0].run_id}
    assert [r.method for r in first[0].results if r.method == "cusum"] == ["cusum"]
    assert not [r for r in second[0].results if r.method == "cusum"]
    assert len(webhook.bodies) == 1
    assert [a.delivered for a in first[0].alerts] == [True] and second[0].alerts == []


def test_the_service_loop_survives_store_errors_and_resumes(store, webhook, caplog):
    rng = np.random.default_rng(1)
    insert(store, "credit", T0, {"income": rng.normal(50, 10, 500)})
    baseline.save(store, baseline.from_window(store, Window("credit", T0, T0 + timedelta(hours=1)), "1"))
    now = [T0 + timedelta(hours=1, minutes=1)]
    service = AnalyzerService(store, _config(webhook.url), clock=lambda: now[0])
    store.command(f"DROP TABLE {store.table('ml_predictions')}")  # the store fails every analysis
    service.start(poll_seconds=0.05)
    try:
        deadline = time.monotonic() + 20
        while not any("failed" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "the failure was not noticed"
            time.sleep(0.05)
        assert service._thread.is_alive()
        # the operator repairs the store (re-applies the migration); the next round works
        store.command(f"DELETE FROM {store.table('schema_migrations')} WHERE Version = 2")
        schema.apply(store)
        now[0] = T0 + timedelta(hours=2, minutes=1)
        deadline = time.monotonic() + 30
        while not results.load(store, "credit"):
            assert time.monotonic() < deadline, "the service did not resume"
            time.sleep(0.1)
    finally:
        service.stop()



def test_a_round_comes_early_once_enough_new_predictions_arrived(store, webhook):
    rng = np.random.default_rng(2)
    now = [T0 + timedelta(minutes=10)]
    cfg = _config(webhook.url)
    cfg.schedule.every_predictions = 100
    service = AnalyzerService(store, cfg, clock=lambda: now[0])
    assert service._due() == T0  # first round: the last complete period
    service.last_end = T0
    insert(store, "credit", T0 + timedelta(minutes=1), {"income": rng.normal(size=60)}, seconds=60)
    assert service._due() is None  # 60 new predictions: not yet
    insert(store, "credit", T0 + timedelta(minutes=3), {"income": rng.normal(size=60)}, seconds=60, id_prefix="b")
    assert service._due() == now[0]  # 120: run now, over the window ending now
