"""Alerts and retrain triggers: rules, cooldown held in ml_alerts, real webhook delivery with retries, real commands."""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from modelwatch_analyzer.analysis.results import INSUFFICIENT, Result
from modelwatch_analyzer.errors import ConfigError
from modelwatch_analyzer.outputs.alerts.firing import Alerter
from modelwatch_analyzer.outputs.alerts.rules import RETRAIN, AlertConfig, Retrain, Route, Rule
from modelwatch_analyzer.store.client import Store

NOW = datetime.now(timezone.utc).replace(microsecond=0)


class Hook:
    """A real HTTP webhook receiver on a free port: records requests, answers with queued statuses (then 200)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        self.delay = 0.0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(hook.delay)
                status = hook.statuses.pop(0) if hook.statuses else 200
                hook.requests.append({"path": self.path, "headers": dict(self.headers), "status": status,
                                      "json": json.loads(body.decode("utf-8"))})
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    @property
    def bodies(self) -> list[dict]:
        return [r["json"] for r in self.requests if r["status"] == 200]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


def _drift(feature="amount", severity="critical", model="fraud", stat=0.35, method="psi", **details) -> Result:
    """A feature's verdict row (the analyzer marks the result of the feature's score method with details.score)."""
    details.setdefault("score", True)
    return Result(model, "2", feature, method, "drift", stat, None, 0.2, severity != "none", severity, 1000, 900,
                  details=details, window_start=NOW - timedelta(hours=1), window_end=NOW, run_id="run-1")


def test_supporting_methods_do_not_alert_by_default(store):
    """Only the feature's verdict (score method) and detectors alert unless a rule names methods."""
    supporting = _drift(method="wasserstein", severity="warning", score=False)
    assert Rule().match(supporting) is None
    assert Rule().match(_drift()) == "critical"
    assert Rule(methods=("wasserstein",)).match(supporting) == "warning"


def _config(hook: Hook, **kw) -> AlertConfig:
    return AlertConfig(routes=(Route("oncall", hook.url),), **kw)


def test_drift_alert_delivered_as_json_with_results_and_trace_ids(store, hook):
    """A drifted result at or above min severity fires one alert whose JSON body carries it, its results and trace ids."""
    alerter = Alerter(store, _config(hook))
    results = [_drift(trace_ids=["a" * 32, "b" * 32]), _drift(method="ks", stat=0.3, trace_ids=["b" * 32]),
               _drift(feature="country", severity="info", stat=0.12), _drift(feature="age", severity="none", stat=0.01)]
    fired = alerter.process(results, now=NOW)
    assert [(a.feature, a.severity, a.route, a.delivered, a.attempts) for a in fired] == \
        [("amount", "critical", "oncall", True, 1)]
    (body,) = hook.bodies
    assert body["alert"]["model"] == "fraud" and body["alert"]["feature"] == "amount"
    assert body["alert"]["severity"] == "critical" and body["alert"]["method"] == "ks,psi"
    assert [r["method"] for r in body["results"]] == ["psi", "ks"]
    assert body["trace_ids"] == ["a" * 32, "b" * 32]
    assert body["results"][0]["details"]["trace_ids"] == ["a" * 32, "b" * 32]
    (row,) = alerter.alerts("fraud")
    assert (row.delivered, row.attempts, row.last_error, row.rule) == (True, 1, "", "drift")
    assert NOW <= row.delivered_at <= NOW + timedelta(milliseconds=1) and row.payload == body


def test_cooldown_holds_across_calls_and_a_new_store_object(store, hook):
    """The same (model, feature, severity) does not re-fire within the cooldown, even from a new Store; after it, it does."""
    cfg = _config(hook, cooldown_seconds=600)
    assert len(Alerter(store, cfg).process([_drift()], now=NOW)) == 1
    assert Alerter(store, cfg).process([_drift()], now=NOW + timedelta(minutes=5)) == []
    other = Store(store.url, database=store.database)
    try:
        assert Alerter(other, cfg).process([_drift()], now=NOW + timedelta(minutes=9)) == []
        # a different severity (or feature) is a different alert
        assert [a.severity for a in Alerter(other, cfg).process([_drift(severity="warning", stat=0.25)],
                                                                 now=NOW + timedelta(minutes=9))] == ["warning"]
        assert len(Alerter(other, cfg).process([_drift()], now=NOW + timedelta(minutes=11))) == 1
    finally:
        other.close()
    assert len(hook.bodies) == 3


def test_failing_webhook_is_retried_with_backoff_then_recovers(store, hook):
    """A 500 is recorded (attempt 1, error); no retry before the backoff; the retry after it delivers and is recorded."""
    hook.statuses = [500]
    alerter = Alerter(store, _config(hook, retry_backoff_seconds=60))
    (a,) = alerter.process([_drift()], now=NOW)
    assert (a.delivered, a.attempts) == (False, 1) and "HTTP 500" in a.last_error
    assert alerter.deliver_pending(now=NOW + timedelta(seconds=30)) == []
    assert len(hook.requests) == 1
    (b,) = Alerter(store, _config(hook, retry_backoff_seconds=60)).deliver_pending(now=NOW + timedelta(seconds=61))
    assert (b.alert_id, b.delivered, b.attempts) == (a.alert_id, True, 2)
    (row,) = alerter.alerts()
    assert (row.delivered, row.attempts, row.delivered_at) == (True, 2, NOW + timedelta(seconds=61))
    assert "HTTP 500" in row.last_error  # the last error stays as history
    assert alerter.pending() == []
    assert [r["status"] for r in hook.requests] == [500, 200]


def test_retries_stop_at_max_attempts(store, hook):
    """A webhook that always fails is tried max_attempts times, with doubling backoff, and then left alone."""
    hook.statuses = [503] * 10
    alerter = Alerter(store, _config(hook, max_attempts=3, retry_backoff_seconds=10))
    alerter.process([_drift()], now=NOW)
    for seconds in (5, 11, 25, 31, 1000):
        alerter.deliver_pending(now=NOW + timedelta(seconds=seconds))
    assert len(hook.requests) == 3  # at 0, 11 (10 s after the 1st) and 31 (20 s after the 2nd)
    (row,) = alerter.alerts()
    assert (row.delivered, row.attempts) == (False, 3) and "HTTP 503" in row.last_error


def test_dead_webhook_costs_one_timeout_per_call(store, hook):
    """A webhook that hangs times out; other alerts for the same route wait for a later call instead of each timing out."""
    hook.delay = 5.0
    alerter = Alerter(store, _config(hook, timeout_seconds=0.3))
    t = time.monotonic()
    fired = alerter.process([_drift(feature="a"), _drift(feature="b"), _drift(feature="c")], now=NOW)
    assert time.monotonic() - t < 3.0  # not 3 x 5 s: one timeout, then the route is skipped
    assert sorted(a.attempts for a in fired) == [0, 0, 1]
    assert any("timed out" in a.last_error for a in fired)


def test_slack_route_gets_text(store, hook):
    """A slack-format route receives {"text": ...} naming severity, model, feature and trace ids."""
    cfg = AlertConfig(routes=(Route("slack", hook.url, format="slack", min_severity="critical"),
                              Route("json", hook.url, headers=(("Authorization", "Bearer s3cret"),))))
    fired = Alerter(store, cfg).process([_drift(trace_ids=["c" * 32]), _drift(feature="x", severity="warning")],
                                        now=NOW)
    assert sorted((a.feature, a.route) for a in fired) == [("amount", "json"), ("amount", "slack"), ("x", "json")]
    slack = [r["json"] for r in hook.requests if set(r["json"]) == {"text"}]
    assert len(slack) == 1
    text = slack[0]["text"]
    assert text.startswith("[CRITICAL] modelwatch alert (drift): fraud v2 feature 'amount': critical drift, psi = 0.35")
    assert "c" * 32 in text
    assert {r["headers"].get("Authorization") for r in hook.requests if "alert" in r["json"]} == {"Bearer s3cret"}


def test_performance_floor_and_data_quality_ceiling_rules(store, hook):
    """Below a performance floor, above a rate ceiling, or flagged by the analyzer's own ceiling: fires with the rule's severity."""
    cfg = AlertConfig.from_dict({
        "rules": [{"name": "acc", "type": "performance", "metric": "accuracy", "min": 0.9, "severity": "critical"},
                  {"name": "missing", "type": "data_quality", "metric": "missing_rate", "max": 0.05},
                  {"name": "range", "type": "data_quality", "metric": "out_of_range", "severity": "info"}],
        "routes": [{"name": "oncall", "url": hook.url}]})
    results = [
        Result("fraud", "2", None, "accuracy", "performance", 0.85, n_current=300),
        Result("fraud", "2", None, "f1", "performance", 0.10, n_current=300),
        Result("fraud", "2", "amount", "missing_rate", "data_quality", 0.08),
        Result("fraud", "2", "country", "missing_rate", "data_quality", 0.01),
        Result("fraud", "2", "age", "missing_rate", "data_quality", None, status=INSUFFICIENT),
        Result("fraud", "2", "age", "out_of_range", "data_quality", 0.2, threshold=0.1, drifted=True),
        Result("fraud", "2", "amount", "out_of_range", "data_quality", 0.3, threshold=0.5, drifted=False),
        _drift(),  # no drift rule configured
    ]
    fired = Alerter(store, cfg).process(results, now=NOW)
    assert sorted((a.rule, a.feature, a.severity) for a in fired) == [("acc", None, "critical"),
                                                                       ("missing", "amount", "warning"),
                                                                       ("range", "age", "info")]
    messages = sorted(b["alert"]["message"] for b in hook.bodies)
    assert messages == ["fraud v2 feature 'age': out_of_range = 0.2 above the ceiling 0.1",
                        "fraud v2 feature 'amount': missing_rate = 0.08 above the ceiling 0.05",
                        "fraud v2: accuracy = 0.85 below the floor 0.9"]


def test_alerts_without_a_route_are_recorded_not_delivered(store):
    """With no route matching, the alert is still recorded (and still deduplicated), with nothing pending."""
    alerter = Alerter(store, AlertConfig())
    (a,) = alerter.process([_drift()], now=NOW)
    assert (a.route, a.delivered, a.attempts) == ("", False, 0)
    assert alerter.pending() == [] and alerter.process([_drift()], now=NOW) == []


def test_hostile_names_stored_and_delivered_intact(store, hook):
    """Quotes, backslashes and unicode in model and feature names survive ml_alerts and the webhook body (bound values)."""
    model, feature = "fraud'); DROP TABLE ml_alerts; --\\", "prix \"€\"\\n 価格 '"
    alerter = Alerter(store, _config(hook))
    alerter.process([_drift(model=model, feature=feature)], now=NOW)
    (row,) = alerter.alerts(model)
    assert (row.model, row.feature, row.delivered) == (model, feature, True)
    assert (hook.bodies[0]["alert"]["model"], hook.bodies[0]["alert"]["feature"]) == (model, feature)
    assert alerter.process([_drift(model=model, feature=feature)], now=NOW) == []  # dedup finds it again


_WRITER = ("import json, os, sys; open(sys.argv[1], 'a', encoding='utf-8').write(json.dumps("
           "{k: v for k, v in os.environ.items() if k.startswith('MODELWATCH_')}) + '\\n')")


def test_retrain_command_runs_once_per_cooldown(store, tmp_path):
    """Critical drift runs the retrain command (argv, env describing the model), not again within the cooldown, again after."""
    out = tmp_path / "retrain.jsonl"
    model = "fraud 'q' \\ 価格"
    cfg = AlertConfig(retrain=Retrain(command=(sys.executable, "-c", _WRITER, str(out)), cooldown_seconds=3600,
                                      timeout_seconds=30))
    alerter = Alerter(store, cfg)
    fired = alerter.process([_drift(model=model), _drift(model=model, feature="country"),
                             _drift(model=model, feature="age", severity="warning", stat=0.25)], now=NOW)
    retrain = [a for a in fired if a.rule == RETRAIN]
    assert [(a.route, a.delivered, a.attempts) for a in retrain] == [(RETRAIN, True, 1)]
    (env,) = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert (env["MODELWATCH_MODEL"], env["MODELWATCH_VERSION"], env["MODELWATCH_SEVERITY"]) == (model, "2", "critical")
    assert json.loads(env["MODELWATCH_FEATURES"]) == ["amount", "country"]
    assert "critical drift in 2 feature(s)" in env["MODELWATCH_REASON"]
    assert json.loads(env["MODELWATCH_PAYLOAD"])["alert"]["model"] == model
    assert env["MODELWATCH_ALERT_ID"] == retrain[0].alert_id

    Alerter(Store(store.url, database=store.database), cfg).process([_drift(model=model, feature="zip")],
                                                                      now=NOW + timedelta(minutes=30))
    assert len(out.read_text().splitlines()) == 1
    Alerter(store, cfg).process([_drift(model=model)], now=NOW + timedelta(minutes=61))
    assert len(out.read_text().splitlines()) == 2
    rows = [a for a in alerter.alerts(model) if a.rule == RETRAIN]
    assert len(rows) == 2 and all(a.delivered for a in rows)


def test_retrain_below_min_severity_does_nothing_and_failures_are_recorded(store, tmp_path):
    """Warning drift does not retrain; a failing command is recorded with its exit code and stderr."""
    cfg = AlertConfig(retrain=Retrain(command=(sys.executable, "-c", "import sys; sys.exit('no GPU today')")))
    alerter = Alerter(store, cfg)
    assert [a for a in alerter.process([_drift(severity="warning", stat=0.25)], now=NOW) if a.rule == RETRAIN] == []
    (a,) = [a for a in alerter.process([_drift()], now=NOW) if a.rule == RETRAIN]
    assert (a.delivered, a.attempts) == (False, 1) and a.last_error == "command exited 1: no GPU today"


def test_retrain_webhook(store, hook):
    """A retrain webhook receives the JSON body with the model, severity and the drifted features."""
    cfg = AlertConfig(rules=(), retrain=Retrain(url=hook.url))
    Alerter(store, cfg).process([_drift(), _drift(feature="country")], now=NOW)
    (body,) = hook.bodies
    assert (body["alert"]["rule"], body["alert"]["model"], body["features"]) == (RETRAIN, "fraud", ["amount", "country"])


def test_config_from_dict_builds_rules_routes_and_retrain():
    """A full [alerts] table becomes typed rules, routes and retrain settings."""
    url = "https://hooks.example/x"
    cfg = AlertConfig.from_dict({
        "cooldown_seconds": 60, "max_attempts": 2, "timeout_seconds": 1.5,
        "rules": [{"type": "drift", "min_severity": "critical", "methods": ["psi"], "models": "fraud"}],
        "routes": [{"name": "s", "url": url, "format": "slack", "headers": {"X-A": "b"}}],
        "retrain": {"command": ["echo", "hi"], "cooldown_seconds": 10}})
    assert cfg.rules == (Rule(name="drift", min_severity="critical", methods=("psi",), models=("fraud",)),)
    assert cfg.routes == (Route("s", url, "slack", headers=(("X-A", "b"),)),)
    assert cfg.retrain == Retrain(command=("echo", "hi"), cooldown_seconds=10.0)
    assert (cfg.cooldown_seconds, cfg.max_attempts, cfg.timeout_seconds) == (60.0, 2, 1.5)
    assert AlertConfig.from_dict({}).rules == (Rule(),)


@pytest.mark.parametrize("bad,match", [
    ({"rules": [{"type": "latency"}]}, r"alerts\.rules\[0\]\.type: 'latency' is not allowed; use one of drift"),
    ({"rules": [{"type": "performance", "metric": "accuracy"}]}, r"alerts\.rules\[0\]: a performance rule needs a floor"),
    ({"rules": [{"type": "data_quality", "max": 0.1}]}, r"alerts\.rules\[0\]\.metric: a data_quality rule needs"),
    ({"rules": [{"min_severity": "severe"}]}, r"alerts\.rules\[0\]\.min_severity: 'severe' is not allowed"),
    ({"rules": [{}, {}]}, r"alerts\.rules: duplicate name\(s\) drift"),
    ({"routes": [{"name": "x", "url": "ftp://x"}]}, r"alerts\.routes\[0\]\.url: expected an http"),
    ({"routes": [{"name": "a b", "url": "http://x"}]}, r"alerts\.routes\[0\]\.name: 'a b' must be"),
    ({"routes": [{"name": "x", "url": "http://x", "format": "teams"}]}, r"alerts\.routes\[0\]\.format"),
    ({"retrain": {"command": "retrain.sh --now"}}, r"alerts\.retrain\.command: expected a non-empty list"),
    ({"retrain": {}}, r"alerts\.retrain: set exactly one of `url`"),
    ({"max_attempts": 0}, r"alerts\.max_attempts: expected an integer >= 1"),
    ({"cooldown": 5}, r"alerts: unknown key\(s\) cooldown"),
])
def test_config_errors_name_the_path_and_the_fix(bad, match):
    """Invalid alert settings raise ConfigError naming the config path and what to change."""
    with pytest.raises(ConfigError, match=match):
        AlertConfig.from_dict(bad)


def test_an_alert_from_a_sampled_analysis_says_so(store, hook):
    """With numeric_sample_rows, the on-call reads that the numbers behind the alert come from a sample."""
    Alerter(store, _config(hook)).process([_drift(sample_rate=0.1005859375)], now=NOW)
    (body,) = hook.bodies
    assert body["alert"]["message"].endswith("(threshold 0.2; from a 10.1% sample of the rows)")


def _racing_recent(monkeypatch):
    """Make every caller of the cooldown check wait (up to 2 s) until a second caller has checked too."""
    barrier = threading.Barrier(2)
    original = Alerter._recent

    def recent(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        try:
            barrier.wait(timeout=2)
        except threading.BrokenBarrierError:
            pass
        return out

    monkeypatch.setattr(Alerter, "_recent", recent)


def _route(hook) -> AlertConfig:
    return AlertConfig(routes=(Route(name="ops", url=hook.url),), cooldown_seconds=3600)


def test_two_callers_in_one_process_fire_an_alert_once(store, hook, monkeypatch):
    """The scheduled analyzer and a forwarded analyze --alert racing in one process store and POST an alert once."""
    _racing_recent(monkeypatch)
    results = [_drift()]
    threads = [threading.Thread(target=Alerter(store, _route(hook)).process, args=(results,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(hook.bodies) == 1
    assert len(Alerter(store, _route(hook)).alerts("fraud")) == 1


def test_two_processes_firing_at_once_keep_one_alert(store, hook, monkeypatch):
    """Two analyzers that cannot share a lock (two processes on one server) keep and deliver the earliest alert only."""
    import contextlib

    from modelwatch_analyzer.outputs.alerts import firing as alerts_module

    monkeypatch.setattr(alerts_module, "_FIRING", contextlib.nullcontext())
    _racing_recent(monkeypatch)
    results = [_drift()]
    fired: list = []

    def analyzer(now):
        alerter = Alerter(store, _route(hook))
        alerter.settle_seconds = 0.3  # as on a server store, where other processes write
        fired.append(alerter.process(results, now=now))

    # two clocks a few ms apart (at the very same ms both would write the same row, which the table keeps once)
    threads = [threading.Thread(target=analyzer, args=(NOW + timedelta(milliseconds=5 * i),)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = store.query(f"SELECT AlertId, SupersededBy FROM {store.table('ml_alerts')} FINAL ORDER BY AlertId")
    assert len(rows) == 2, rows  # both recorded ...
    assert sorted(bool(r[1]) for r in rows) == [False, True]  # ... one gave way to the other
    winner = next(r[0] for r in rows if not r[1])
    assert next(r[1] for r in rows if r[1]) == winner.rsplit(":", 1)[0]
    assert len(hook.bodies) == 1 and hook.bodies[0]["alert"]["id"] == winner.rsplit(":", 1)[0]
    assert [a.alert_id for a in Alerter(store, _route(hook)).alerts("fraud")] == [winner]
    assert sorted(len(f) for f in fired) == [0, 1]


def test_a_row_that_lost_after_being_recorded_is_not_delivered(store, hook):
    """A pending row that an earlier live row of the same key outranks is superseded at delivery, not sent; a row
    another process fired is left to it for a grace period."""
    alerter = Alerter(store, _route(hook))
    early = Alerter(store, _route(hook))._fire_alerts([_drift()], NOW)
    late = Alerter(store, _route(hook))._fire_alerts([_drift()], NOW + timedelta(seconds=1))
    alerter._record(early)
    alerter._record(late)
    alerter.deliver_pending(NOW + timedelta(seconds=2))
    assert hook.bodies == []  # fired elsewhere moments ago: that analyzer delivers it
    alerter.deliver_pending(NOW + timedelta(minutes=3))  # ... or, had it died, this one takes over
    assert [b["alert"]["id"] for b in hook.bodies] == [early[0].group]
