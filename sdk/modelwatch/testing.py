"""Assert on what modelwatch recorded, in your own tests.

::

    from modelwatch.testing import capture

    def test_churn_model_is_monitored():
        with capture() as rec:
            predict({"tenure": 3, "plan": "basic"})
        span = rec.predictions()[0]
        assert span.attributes["ml.feature.plan"] == "basic"
        assert rec.metric_value("ml.predictions", outcome="ok") == 1

:func:`capture` routes modelwatch's spans to an in-memory exporter and its
metrics to an in-memory reader for the duration of the block, without
touching the application's global providers, and restores everything after.
Sampling is left as configured: decorate with ``sampling_rate=1.0`` (or set
``MODELWATCH_SAMPLING_RATE=1``) to keep every prediction in a test.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator

from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from . import _safety, metric_export, metrics, spans
from .contract import LABEL_SPAN, PREDICTION_SPAN
from .predictions import NOT_RECORDED, last

__all__ = ["Recorded", "capture"]


class _InMemoryMetricExporter(MetricExporter):
    def __init__(self) -> None:
        super().__init__()
        self.last: MetricsData | None = None

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        self.last = metrics_data
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


@dataclass
class Recorded:
    """Spans and metrics recorded inside a :func:`capture` block."""

    exporter: InMemorySpanExporter
    provider: TracerProvider
    _metrics: metric_export.PredictionMetricsExporter = field(repr=False)
    _sink: _InMemoryMetricExporter = field(repr=False)

    def spans(self) -> list[ReadableSpan]:
        """Every finished span (predictions and labels), in end order."""
        self.provider.force_flush()
        return list(self.exporter.get_finished_spans())

    def predictions(self) -> list[ReadableSpan]:
        """The kept prediction spans."""
        return [s for s in self.spans() if s.name == PREDICTION_SPAN]

    def labels(self) -> list[ReadableSpan]:
        """The label spans."""
        return [s for s in self.spans() if s.name == LABEL_SPAN]

    def metrics_data(self) -> MetricsData:
        """The metric data an exporter would receive now (modelwatch's scope included)."""
        self._metrics.export(MetricsData(resource_metrics=[]))
        assert self._sink.last is not None
        return self._sink.last

    def metric_points(self, name: str) -> list[Any]:
        """Data points of one metric, across resources and scopes."""
        points: list[Any] = []
        for rm in self.metrics_data().resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == name:
                        points.extend(m.data.data_points)
        return points

    def metric_value(self, name: str, **attributes: Any) -> Any:
        """Sum of a counter's points (or count of a histogram's) whose attributes include `attributes`."""
        total = 0
        for p in self.metric_points(name):
            attrs = dict(p.attributes or {})
            if all(attrs.get(k) == v for k, v in attributes.items()):
                total += p.value if hasattr(p, "value") else p.count
        return total

    def issues(self) -> dict[tuple[str, str], int]:
        """Problems the SDK handled, keyed by (kind, model) (queued rows are folded first)."""
        metrics.registry.flush()
        return _safety.counts()


@contextlib.contextmanager
def capture(*, reset: bool = True) -> Iterator[Recorded]:
    """Record modelwatch's spans and metrics in memory for the duration of the block.

    With ``reset`` (the default) the process-wide aggregates and problem
    counts start from zero, so metric values are those of the block alone.
    """
    if reset:
        metrics.registry.reset()
        metrics.span_drops.reset()
        _safety.reset()
    exporter = InMemorySpanExporter()
    provider, direct = spans.owned_provider()  # built like configure()'s, so tests see production behaviour
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sink = _InMemoryMetricExporter()
    was_installed = metrics._delivery_installed
    bridge = metric_export.PredictionMetricsExporter(sink)
    previous = spans._configured_provider
    previous_direct = spans._configured_direct
    spans.set_configured_provider(provider, direct)
    # inside the block, last_prediction() is about the block's calls only (after it, still its last call's,
    # until the next monitored call, recorded or not)
    last.set(NOT_RECORDED)
    try:
        yield Recorded(exporter, provider, bridge, sink)
    finally:
        spans.set_configured_provider(previous, previous_direct)
        metrics._delivery_installed = was_installed
        provider.shutdown()
