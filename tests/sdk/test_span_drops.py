"""The span queue: sized for bursts, honouring OTEL_BSP_*, and counting every kept span it loses in ml.spans.dropped."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import modelwatch
import pytest
from modelwatch import pipeline
from modelwatch.errors import ConfigurationError
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class _Metrics(MetricExporter):
    """Keeps the last metric export (cumulative, so the last one has every total)."""

    def __init__(self):
        super().__init__()
        self.last = None

    def export(self, metrics_data, timeout_millis=10_000, **kwargs):
        self.last = metrics_data
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis=10_000):
        return True

    def shutdown(self, timeout_millis=30_000, **kwargs):
        pass

    def total(self, name, **attributes):
        """Sum of a counter's points whose attributes include `attributes`; also checks they are monotonic cumulative sums."""
        n = 0
        for rm in self.last.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name != name:
                        continue
                    assert m.data.is_monotonic and m.data.aggregation_temporality.name == "CUMULATIVE"
                    for p in m.data.data_points:
                        attrs = dict(p.attributes)
                        if all(attrs.get(k) == v for k, v in attributes.items()):
                            assert p.start_time_unix_nano > 0
                            n += p.value
        return n


class _SlowExporter(InMemorySpanExporter):
    """An in-memory exporter that takes `delay` seconds per batch, like a collector under load."""

    def __init__(self, delay):
        super().__init__()
        self.delay = delay

    def export(self, spans):
        time.sleep(self.delay)
        return super().export(spans)


class _StalledExporter(InMemorySpanExporter):
    """An in-memory exporter that does not return until released (a collector stalled for the burst), then is fast."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()

    def export(self, spans):
        self.release.wait(60)
        return super().export(spans)

    def shutdown(self):
        self.release.set()
        super().shutdown()


class _FailingExporter(InMemorySpanExporter):
    def export(self, spans):
        return SpanExportResult.FAILURE


@pytest.fixture
def fresh_configure(monkeypatch):
    """configure() is once per process; give each test its own (no OTEL_BSP_* from outside) and shut it down after."""
    for k in list(os.environ):
        if k.startswith("OTEL_BSP_"):
            monkeypatch.delenv(k)
    assert pipeline.current() is None
    made = []

    def make(**kw):
        t = modelwatch.configure(set_global=False, metric_export_interval_millis=3_600_000, **kw)
        made.append(t)
        return t

    yield make
    for t in made:
        t.shutdown()


def _burst(model, n):
    @modelwatch.monitor(model=model, version="1", sampling_rate=1.0)
    def predict(x):
        return {"prediction": 1, "score": 0.5}

    for i in range(n):
        predict({"a": float(i)})


def _exported(exporter, model):
    return sum(1 for s in exporter.get_finished_spans() if s.name == "ml.predict" and s.attributes["ml.model.name"] == model)


def test_burst_against_a_slow_exporter_counts_every_dropped_span(fresh_configure, monkeypatch):
    """With a small queue (OTEL_BSP_MAX_QUEUE_SIZE) and a slow exporter, kept predictions = exported spans +
    ml.spans.dropped{reason=queue_full}."""
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "200")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "50")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "10")
    spans, sink = _SlowExporter(0.02), _Metrics()
    telemetry = fresh_configure(span_exporter=spans, metric_exporter=sink)
    _burst("burst-slow", 3000)
    assert telemetry.force_flush(30_000)
    exported = _exported(spans, "burst-slow")
    kept = sink.total("ml.sampling.decisions", **{"ml.model.name": "burst-slow", "decision": "kept"})
    dropped = sink.total("ml.spans.dropped", **{"ml.model.name": "burst-slow", "ml.model.version": "1",
                                                "reason": "queue_full", "span": "ml.predict"})
    assert kept == 3000
    assert dropped > 0, "the queue of 200 overflowed, yet no drop was counted"
    assert exported + dropped == kept, (exported, dropped, kept)


def test_spans_the_exporter_fails_to_send_are_counted(fresh_configure):
    """Every span of a batch the exporter reports as failed is counted as ml.spans.dropped{reason=export_failed}."""
    sink = _Metrics()
    telemetry = fresh_configure(span_exporter=_FailingExporter(), metric_exporter=sink)
    _burst("burst-fail", 700)
    modelwatch.record_label("burst-fail", "p-1", 1, version="1")
    assert telemetry.force_flush(30_000)
    assert sink.total("ml.spans.dropped", **{"ml.model.name": "burst-fail", "reason": "export_failed",
                                             "span": "ml.predict"}) == 700
    assert sink.total("ml.spans.dropped", **{"ml.model.name": "burst-fail", "reason": "export_failed",
                                             "span": "ml.label"}) == 1


def test_a_60k_burst_of_kept_spans_fits_the_default_queue(fresh_configure):
    """60,000 kept predictions made while the exporter is stalled all wait in the default queue and are exported once
    it resumes: none dropped."""
    spans, sink = _StalledExporter(), _Metrics()
    telemetry = fresh_configure(span_exporter=spans, metric_exporter=sink)
    _burst("burst-60k", 60_000)
    spans.release.set()
    assert telemetry.force_flush(60_000)
    assert _exported(spans, "burst-60k") == 60_000
    assert sink.total("ml.spans.dropped", **{"ml.model.name": "burst-60k"}) == 0
    assert telemetry.span_processor.max_queue_size == 65_536


def test_a_hanging_exporter_never_blocks_inference_memory_stays_bounded_and_refusals_are_counted(fresh_configure, monkeypatch):
    """Against an exporter that never returns, predictions complete, memory stops growing once the queue is full, and
    every refused span is counted."""
    import tracemalloc

    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")
    monkeypatch.setenv("OTEL_BSP_EXPORT_TIMEOUT", "1000")  # shutdown gives up on the hanging export after a second
    spans, sink = _StalledExporter(), _Metrics()
    telemetry = fresh_configure(span_exporter=spans, metric_exporter=sink, max_queue_size=500)

    @modelwatch.monitor(model="hang", version="1", sampling_rate=1.0)
    def predict(x):
        return {"prediction": 1, "score": 0.5}

    for i in range(2000):
        predict({"a": float(i), "b": "x" * 50})
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for i in range(5000):
        predict({"a": float(i), "b": "x" * 50})
    growth = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert growth < 1_000_000, growth
    telemetry.meter_provider.force_flush()
    # one batch of 500 is stuck in the exporter, 500 more wait in the queue: everything else was refused and counted
    assert sink.total("ml.spans.dropped", **{"ml.model.name": "hang", "reason": "queue_full"}) == 7000 - 1000
    assert telemetry.span_processor.queued() == 500


def test_queue_settings_argument_then_environment_then_default(monkeypatch, caplog):
    """max_queue_size and the batch settings come from the argument, else OTEL_BSP_*, else the defaults; a bad variable
    warns and falls back."""
    from modelwatch.export import CountingBatchSpanProcessor

    for k in ("OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT"):
        monkeypatch.delenv(k, raising=False)
    made = []

    def proc(**kw):
        made.append(CountingBatchSpanProcessor(InMemorySpanExporter(), **kw))
        return made[-1]

    try:
        p = proc()
        assert (p.max_queue_size, p.max_export_batch_size, p.schedule_delay_millis, p.export_timeout_millis) == (
            65_536, 512, 5_000, 30_000)
        monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "1000")
        monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "100")
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "250")
        p = proc()
        assert (p.max_queue_size, p.max_export_batch_size, p.schedule_delay_millis) == (1000, 100, 250)
        assert proc(max_queue_size=500).max_queue_size == 500
        assert proc(max_queue_size=50).max_export_batch_size == 50  # a batch is never larger than the queue
        monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "lots")
        assert proc().max_queue_size == 65_536
        assert "OTEL_BSP_MAX_QUEUE_SIZE" in caplog.text
        with pytest.raises(ConfigurationError):
            proc(max_queue_size=0)
    finally:
        for p in made:
            p.shutdown()


def test_configure_passes_max_queue_size_over_the_environment(fresh_configure, monkeypatch):
    """configure(max_queue_size=...) wins over OTEL_BSP_MAX_QUEUE_SIZE, which wins over the default."""
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "3000")
    telemetry = fresh_configure(span_exporter=InMemorySpanExporter(), metric_exporter=_Metrics(), max_queue_size=4000)
    assert telemetry.span_processor.max_queue_size == 4000


def test_spans_ended_after_shutdown_are_counted():
    """A span that reaches the processor after its shutdown is counted as ml.spans.dropped{reason=shutdown}."""
    from modelwatch import metrics, spans
    from modelwatch.export import CountingBatchSpanProcessor

    metrics.span_drops.reset()
    exporter = InMemorySpanExporter()
    provider, direct = spans.owned_provider()
    processor = CountingBatchSpanProcessor(exporter)
    provider.add_span_processor(processor)
    direct.emit(1234, "ml.predict", {"ml.model.name": "late", "ml.model.version": "2"}, 1, 2)
    processor.shutdown()
    direct.emit(5678, "ml.predict", {"ml.model.name": "late", "ml.model.version": "2"}, 1, 2)
    assert len(exporter.get_finished_spans()) == 1  # the queued one was exported at shutdown
    assert metrics.span_drops.snapshot() == {("late", "2", "shutdown", "ml.predict"): 1}


def test_kept_predictions_without_a_tracer_are_counted_as_dropped():
    """With a metric pipeline but no tracer, each kept prediction is counted as ml.spans.dropped{reason=no_tracer}."""
    code = """
import modelwatch
from modelwatch import metrics
modelwatch.PredictionMetricsExporter(None)  # a metric pipeline carries modelwatch's aggregates, no tracer is set up
@modelwatch.monitor(model="untraced", sampling_rate=1.0)
def f(x): return 1
for i in range(10): f({"a": i})
print(metrics.span_drops.snapshot())
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MODELWATCH_"))}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "{('untraced', '', 'no_tracer', 'ml.predict'): 10}"
