"""``modelwatch status``: the store's contents, last runs, open alerts, the cost report, and exit codes."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
from analyzer_data import T0, insert, insert_labels
from modelwatch_analyzer.analysis import analyze, baseline
from modelwatch_analyzer.analysis.window import Window
from modelwatch_analyzer.cli import command as cli
from modelwatch_analyzer.outputs.alerts.firing import Alerter
from modelwatch_analyzer.outputs.alerts.rules import AlertConfig, Route
from modelwatch_analyzer.report import status


def _url(store) -> list[str]:
    return ["--url", f"chdb://{store.location}", "--database", store.database]


def _metric_rows(store, model: str, made: int, decisions: dict[str, int], exports: int = 3) -> None:
    """Cumulative SDK counters as the exporter stores them: several exports of one series, the last is the total."""
    cols = ("ServiceName", "MetricName", "Attributes", "StartTimeUnix", "TimeUnix", "Value", "AggregationTemporality",
            "IsMonotonic")
    rows = []
    for k in range(1, exports + 1):
        at = T0 + timedelta(minutes=k)
        rows.append(("svc", "ml.predictions", {"ml.model.name": model, "ml.model.version": "1", "outcome": "ok"}, T0, at,
                     float(made * k // exports), 2, True))
        for reason, n in decisions.items():
            rows.append(("svc", "ml.sampling.decisions", {"ml.model.name": model, "ml.model.version": "1",
                                                          "decision": "dropped" if reason == "not_sampled" else "kept",
                                                          "reason": reason}, T0, at, float(n * k // exports), 2, True))
    store.insert("otel_metrics_sum", rows, cols)


def test_status_shows_models_baselines_runs_and_undelivered_alerts_with_exit_codes(store, capsys):
    """Text and JSON status agree with what is stored; --fail-on-alerts exits 3 while an alert waits for delivery."""
    rng = np.random.default_rng(1)
    ids = insert(store, "credit", T0, {"income": rng.normal(50, 10, 800)}, {"region": rng.choice(["n", "s"], 800)},
                 weights=np.full(800, 4.0))
    insert_labels(store, "credit", ids[:100], ["1"] * 100, T0 + timedelta(hours=2))
    insert(store, "credit", T0 + timedelta(hours=1), {"income": rng.normal(70, 10, 800)},
           {"region": rng.choice(["n", "s"], 800)}, id_prefix="c")
    base = baseline.from_window(store, Window("credit", T0, T0 + timedelta(hours=1)), "1")
    baseline.save(store, base)
    rows = analyze.run(store, Window("credit", T0 + timedelta(hours=1), T0 + timedelta(hours=2)), baseline=base)
    # a route nobody listens on: the alert is recorded, its delivery fails
    alerter = Alerter(store, AlertConfig(routes=(Route("oncall", "http://127.0.0.1:9/hook"),), timeout_seconds=0.5))
    fired = alerter.process(rows)
    assert fired and not fired[0].delivered

    assert cli.main(["status", *_url(store)]) == 0
    out = capsys.readouterr().out
    assert "schema version" in out
    model_line = next(line for line in out.splitlines() if line.strip().startswith("credit "))
    assert "1,600" in model_line and "4,000" in model_line and "100" in model_line  # stored, ≈ made (weights), labels
    assert base.id in out
    assert "1 feature(s) drifted, worst critical" in out
    assert "failing" in out and "NOT delivered" in out and "oncall" in out

    assert cli.main(["status", *_url(store), "--fail-on-alerts"]) == status.ALERTS_EXIT
    capsys.readouterr()
    assert cli.main(["status", *_url(store), "--format", "json", "--model", "credit"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [(m["model"], m["stored"], m["labels"]) for m in info["models"]] == [("credit", 1600, 100)]
    assert info["spans"] == {} and info["runs"][0]["drifted_features"] == 1
    assert info["alerts"]["failed"] >= 1 and info["alerts"]["recent"][0]["route"] == "oncall"


def test_cost_report_counts_made_vs_stored_by_reason_and_bytes(store, capsys):
    """Predictions made come from the SDK counter (latest cumulative value), stored from the table, bytes from system.parts."""
    rng = np.random.default_rng(2)
    insert(store, "fraud", T0, {"amount": rng.lognormal(3, 1, 500)})
    _metric_rows(store, "fraud", 5000, {"random": 500, "not_sampled": 4500})
    c = status.cost(store)
    (m,) = c.models
    assert (m.seen, m.seen_source, m.stored) == (5000, "metrics", 500)
    assert m.rate == 0.1 and m.kept_by_reason == {"random": 500} and m.dropped == 4500
    assert c.tables["ml_predictions"]["rows"] == 500 and c.tables["ml_predictions"]["bytes"] > 0
    assert c.bytes_per_prediction > 0
    assert abs(c.full_logging_bytes - c.bytes_per_prediction * 5000) < 1e-6
    assert cli.main(["status", "--url", f"chdb://{store.location}", "--database", store.database, "--cost"]) == 0
    out = capsys.readouterr().out
    assert "5,000 predictions made (SDK counter ml.predictions), 500 stored as spans (10.0%)" in out
    assert "random-sampling rate among the rest: 10.0%" in out and "logging 100% of the 5,000 predictions" in out
    # without metrics, the weights stand in, and say so
    insert(store, "churn", T0, {"x": rng.normal(size=50)}, weights=np.full(50, 10.0))
    churn = next(x for x in status.cost(store, "churn").models)
    assert (churn.seen, churn.seen_source) == (500.0, "weights")


def test_status_of_an_empty_store_and_an_unreachable_one(store_dir, capsys):
    """An empty store says what to do next (exit 0); a server that is not there exits 1 with the reason."""
    assert cli.main(["status", "--url", f"chdb://{store_dir}", "--database", "empty_status"]) == 0
    assert "modelwatch demo" in capsys.readouterr().out
    assert cli.main(["status", "--url", "http://127.0.0.1:9/modelwatch"]) == 1
    assert "cannot reach ClickHouse at http://127.0.0.1:9/modelwatch: connection refused" in capsys.readouterr().err


def test_cost_reports_bytes_per_retained_prediction_at_steady_state(store, capsys):
    """The typed row plus traces_days / predictions_days of a raw span, both measured on the store, the retentions
    read from the tables' TTLs; printed by status --cost and in its JSON."""
    import modelwatch
    from modelwatch.testing import capture
    from modelwatch_analyzer.collector.otlp_rows import TRACE_COLUMNS, span_rows
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    @modelwatch.monitor(model="steady", sampling_rate=1.0)
    def predict(x):
        return {"prediction": "a", "score": x["v"] / 100}

    with capture() as rec:
        for i in range(300):
            predict({"v": float(i % 100), "c": "x" if i % 2 else "y"})
        modelwatch.record_label("steady", modelwatch.last_prediction().id, "a")
        store.insert("otel_traces", span_rows(encode_spans(rec.spans())), TRACE_COLUMNS)
    c = status.cost(store)
    st = c.steady
    assert (st.traces_days, st.predictions_days) == (7, 180)
    assert st.typed_bytes == c.tables["ml_predictions"]["bytes"] / 300
    assert st.raw_bytes == c.tables["otel_traces"]["bytes"] / 301  # per span; the label is a span too
    assert st.bytes == pytest.approx(st.typed_bytes + st.raw_bytes * 7 / 180)
    assert st.bytes < c.bytes_per_prediction  # today every raw span is still there
    assert cli.main(["status", *_url(store), "--cost"]) == 0
    out = capsys.readouterr().out
    assert f"steady state: {st.bytes:,.0f} bytes per retained prediction (typed row {st.typed_bytes:,.0f} + raw span " \
           f"{st.raw_bytes:,.0f} × 7/180 days; raw spans kept 7 days, typed predictions 180 days)" in out
    assert cli.main(["status", *_url(store), "--cost", "--format", "json"]) == 0
    steady = json.loads(capsys.readouterr().out)["cost"]["steady_state"]
    assert steady["bytes_per_retained_prediction"] == pytest.approx(st.bytes)
    assert steady["raw_spans_per_retained_prediction"] == pytest.approx(7 / 180)


def test_steady_state_with_retentions_kept_forever():
    """No TTL on raw spans while predictions expire: no steady state; none on predictions: the raw share tends to 0;
    neither: every raw span stays with its prediction."""
    assert status.SteadyState(60.0, 130.0, None, 180.0).bytes is None
    assert "steady state: none" in status.steady_text(status.SteadyState(60.0, 130.0, None, 180.0))
    assert status.SteadyState(60.0, 130.0, 7.0, None).bytes == 60.0
    assert status.SteadyState(60.0, 130.0, None, None).bytes == 190.0
    assert status.SteadyState(60.0, None, 7.0, 180.0).bytes == 60.0
