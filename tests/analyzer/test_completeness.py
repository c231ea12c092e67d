"""Pipeline completeness on the embedded store: the SDK's kept and dropped counters against the stored prediction spans."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from analyzer_data import T0, insert
from modelwatch_analyzer.analysis import (
    analyze,
    baseline,
    completeness,
    results,
)
from modelwatch_analyzer.analysis.window import Window
from modelwatch_analyzer.cli import analysis_commands as commands
from modelwatch_analyzer.report import html as report

START, END = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
COLS = ("ServiceName", "MetricName", "Attributes", "StartTimeUnix", "TimeUnix", "Value", "AggregationTemporality",
        "IsMonotonic")


def _series(store, model, metric, attrs, began, points, version="1", service="svc"):
    """One cumulative series as the exporter stores it: (minutes after T0, value) points, started at `began`."""
    rows = [(service, metric, {"ml.model.name": model, "ml.model.version": version, **attrs}, began,
             T0 + timedelta(minutes=m), float(v), 2, True) for m, v in points]
    store.insert("otel_metrics_sum", rows, COLS)


def _kept(store, model, began, points, reason="random", **kw):
    _series(store, model, "ml.sampling.decisions", {"decision": "kept", "reason": reason}, began, points, **kw)


def _failed_batch(store, model, at, size):
    """A batch call that raised: one error span carrying ml.batch.size (the view also types it into ml_predictions)."""
    store.insert("otel_traces", [(at, "f" * 32, "e" * 16, "ml.predict", "svc", {
        "ml.model.name": model, "ml.model.version": "1", "ml.prediction.id": "batch-1", "ml.sampling.reason": "error",
        "ml.sampling.weight": "1", "ml.batch.size": str(size)}, "Error")],
        ("Timestamp", "TraceId", "SpanId", "SpanName", "ServiceName", "SpanAttributes", "StatusCode"))


def _gap_store(store):
    """Model 'leaky': 10 kept a minute from T0 in one process, a second process from T0+90min, 2 a minute dropped
    by the SDK's queue, and only 400 spans stored in the window [T0+1h, T0+2h)."""
    _kept(store, "leaky", T0, [(m, 10 * m) for m in range(1, 181)])
    _kept(store, "leaky", T0 + timedelta(minutes=90), [(m, 5 * (m - 90)) for m in range(91, 181)])  # a restart: a new series
    _series(store, "leaky", "ml.spans.dropped", {"reason": "queue_full", "span": "ml.predict"}, T0,
            [(m, 2 * m) for m in range(1, 181)])
    # the label drops and the dropped decisions are not prediction spans that should be stored
    _series(store, "leaky", "ml.spans.dropped", {"reason": "queue_full", "span": "ml.label"}, T0, [(m, 100 * m) for m in range(1, 181)])
    _series(store, "leaky", "ml.sampling.decisions", {"decision": "dropped", "reason": "not_sampled"}, T0,
            [(m, 1000 * m) for m in range(1, 181)])
    rng = np.random.default_rng(3)
    insert(store, "leaky", T0, {"x": rng.normal(0, 1, 600)}, id_prefix="r")
    insert(store, "leaky", START, {"x": rng.normal(0, 1, 400)}, id_prefix="c")


def test_a_window_with_fewer_stored_spans_than_kept_is_a_flagged_pipeline_gap(store):
    """Kept decisions (two processes, cumulative) minus SDK drops vs stored spans: the missing share, where it was lost, and the edge."""
    _gap_store(store)
    (g,) = completeness.pipeline_gap(store, "leaky", START, END).values()
    # process 1: from its point at the start (600) to its last inside the window (1190); process 2 from 0 to 145
    assert g.kept == 590 + 145 and g.series == 3 and g.resets == 0
    assert g.edge == 10  # the first interval of process 1 straddles the start
    assert g.dropped == {"queue_full": 238 - 120} and g.stored == 400
    assert g.missing == 335 and g.gap == 335 - 118
    assert g.flagged(0.01)

    whole = completeness.pipeline_gap(store)["leaky"]  # everything retained, as status reads it
    assert whole.kept == 1800 + 450 and whole.stored == 1000 and whole.edge == 0


def test_the_gap_is_stored_as_a_data_quality_result_and_shown_in_the_text_and_html_reports(store):
    """analyze.run stores a flagged __pipeline__/pipeline_gap data-quality result; the analyze summary and the HTML
    report say what is missing."""
    _gap_store(store)
    base = baseline.from_window(store, Window("leaky", T0, START), "1")
    baseline.save(store, base)
    window = Window("leaky", START, END)
    rows = analyze.run(store, window, baseline=base)
    (r,) = [r for r in rows if r.method == "pipeline_gap"]
    assert (r.feature, r.kind, r.drifted, r.severity) == ("__pipeline__", "data_quality", True, "warning")
    assert r.statistic == 335 / 735 and r.details["sdk_dropped"] == 118 and r.details["lost_after_sdk"] == 217
    (stored,) = [s for s in results.load(store, "leaky") if s.method == "pipeline_gap"]
    assert stored.statistic == r.statistic and stored.details["kept"] == 735

    text = commands.summary(rows, window, base)
    assert "PIPELINE GAP: 335 of 735 kept predictions (45.6%) are not in the store" in text
    assert "118 dropped in the SDK (queue_full 118)" in text and "217 lost after it" in text
    assert "__pipeline__" not in text.split("data quality")[-1]  # told once, not as a feature
    html = report.render(store, ["leaky"])
    assert "pipeline gap" in html and "335 of 735 kept predictions" in html


def test_a_complete_pipeline_is_a_zero_unflagged_result(store):
    """Control: a failed batch of 51 rows (stored as one span) and 299 other stored predictions against 350 kept decisions is no gap."""
    _kept(store, "whole", START, [(m, 350 * (m - 60) // 59) for m in range(61, 120)])
    _kept(store, "whole", T0, [(m, 0) for m in range(1, 181)], reason="error")  # a series that never moves
    rng = np.random.default_rng(4)
    insert(store, "whole", T0, {"x": rng.normal(0, 1, 300)}, id_prefix="r")
    insert(store, "whole", START, {"x": rng.normal(0, 1, 299)}, id_prefix="c")
    _failed_batch(store, "whole", START + timedelta(minutes=30), 51)
    base = baseline.from_window(store, Window("whole", T0, START), "1")
    rows = analyze.run(store, Window("whole", START, END), baseline=base, save=False)
    (r,) = [r for r in rows if r.method == "pipeline_gap"]
    assert r.details["kept"] == 350 and r.details["stored"] == 350 and r.details["batch_error_rows"] == 50
    assert (r.statistic, r.drifted, r.severity) == (0.0, False, "none")
    assert "PIPELINE GAP" not in commands.summary(rows, Window("whole", START, END), base)


def test_a_counter_that_steps_down_counts_from_zero_and_no_counters_give_no_result(store):
    """A series whose value falls (restarted with the same start time) adds its new value; a model without SDK counters gets no result."""
    _kept(store, "bumpy", T0, [(70, 100), (80, 40), (90, 90)])
    insert(store, "bumpy", START, {"x": np.zeros(190)})
    (g,) = completeness.pipeline_gap(store, "bumpy", START, END).values()
    assert (g.kept, g.resets, g.edge, g.stored) == (100 + 40 + 50, 1, 100, 190)
    assert not g.flagged(0.01)
    insert(store, "silent", START, {"x": np.zeros(50)})
    assert completeness.pipeline_gap(store, "silent", START, END) == {}
    assert completeness.results(store, Window("silent", START, END), 0.01) == []


def test_sdk_drops_travel_over_otlp_and_account_for_every_missing_span(store_dir, monkeypatch):
    """End to end: the SDK with a tiny span queue sends a burst to `modelwatch serve`; kept - ml.spans.dropped = stored, exactly."""
    from datetime import datetime, timezone

    import modelwatch
    from modelwatch import pipeline
    from modelwatch_analyzer.service.serve import ServeOptions, Server

    server = Server(ServeOptions(url=f"chdb://{store_dir}", database="completeness_e2e", grpc_port=0, http_port=0))
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.http_port}")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "20")
        start = datetime.now(timezone.utc)
        assert pipeline.current() is None
        telemetry = modelwatch.configure(set_global=False, metric_export_interval_millis=3_600_000, max_queue_size=40)
        try:
            @modelwatch.monitor(model="e2e-drops", version="1", sampling_rate=1.0)
            def predict(x):
                return {"prediction": 1, "score": 0.5}

            for i in range(1500):
                predict({"a": float(i)})
            assert telemetry.force_flush(30_000)
        finally:
            telemetry.shutdown()  # the final metric export carries the totals
        end = datetime.now(timezone.utc) + timedelta(seconds=1)
        g = completeness.pipeline_gap(server.store, "e2e-drops", start, end)["e2e-drops"]
        assert g.kept == 1500
        assert set(g.dropped) == {"queue_full"} and g.sdk_dropped > 0
        assert g.stored == 1500 - g.sdk_dropped and g.gap == 0
        r = completeness.finding(g, 0.01)
        assert r.drifted and r.details["lost_after_sdk"] == 0
    finally:
        server.store.command(f"DROP DATABASE IF EXISTS `{server.store.database}`")
        server.stop()


def test_status_shows_a_pipeline_gap_per_model(store):
    """modelwatch status says how many kept predictions are not stored, where they were lost, and that it is not low traffic."""
    from modelwatch_analyzer.report import status

    _gap_store(store)
    info = status.gather(store)
    (g,) = info["pipeline"]
    assert (g["model"], g["kept"], g["stored"], g["flagged"]) == ("leaky", 2250, 1000, True)
    text = status.text(info)
    assert "PIPELINE GAP: leaky: 1,250 of 2,250 kept predictions" in text and "not low traffic" in text
