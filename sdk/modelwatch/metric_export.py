"""modelwatch's aggregates as OTel metric data, appended to the application's metric exports.

:func:`produce` builds OTel SDK metric data (cumulative sums and exponential
histograms, named by :mod:`modelwatch.contract`) from the aggregates of
:mod:`modelwatch.metrics`, and :class:`PredictionMetricsExporter` appends it
to every export of the application's metric pipeline
(``modelwatch.configure`` installs it).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Buckets,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from . import _safety, metrics
from .contract import (
    CATEGORY_VALUE,
    DECISION,
    DROPPED,
    FEATURE_NAME,
    ISSUE_KIND,
    KEPT,
    METRIC_CLASSES,
    METRIC_CONFIDENCE,
    METRIC_DECISIONS,
    METRIC_FEATURE_CATEGORY,
    METRIC_FEATURE_MISSING,
    METRIC_FEATURE_VALUE,
    METRIC_LATENCY,
    METRIC_OUTPUT,
    METRIC_PREDICTIONS,
    METRIC_SCORE,
    METRIC_SDK_ISSUES,
    METRIC_SPANS_DROPPED,
    MODEL_NAME,
    MODEL_VERSION,
    OUTCOME,
    PREDICTION_VALUE,
    REASON,
    REASON_NOT_SAMPLED,
    SPAN,
)
from .exphist import ExpHistogram
from .metrics import ModelMetrics, registry, span_drops
from .version import __version__

SCOPE = InstrumentationScope("modelwatch", __version__)
_CUMULATIVE = AggregationTemporality.CUMULATIVE


def _exp_point(h: ExpHistogram, attrs: dict[str, Any], start: int, now: int) -> ExponentialHistogramDataPoint:
    return ExponentialHistogramDataPoint(
        attributes=attrs,
        start_time_unix_nano=start,
        time_unix_nano=now,
        count=h.count,
        sum=h.sum,
        scale=h.scale,
        zero_count=h.zero_count,
        positive=Buckets(h.positive.offset, list(h.positive.counts)),
        negative=Buckets(h.negative.offset, list(h.negative.counts)),
        flags=0,
        min=h.min if h.count else 0.0,
        max=h.max if h.count else 0.0,
    )


def _num_point(value: int, attrs: dict[str, Any], start: int, now: int) -> NumberDataPoint:
    return NumberDataPoint(attributes=attrs, start_time_unix_nano=start, time_unix_nano=now, value=value)


_SUMS = (METRIC_PREDICTIONS, METRIC_CLASSES, METRIC_DECISIONS, METRIC_FEATURE_CATEGORY, METRIC_FEATURE_MISSING, METRIC_SPANS_DROPPED)
_HISTOGRAMS = (METRIC_LATENCY, METRIC_SCORE, METRIC_CONFIDENCE, METRIC_OUTPUT, METRIC_FEATURE_VALUE)


def produce(now_ns: int | None = None) -> list[Metric]:
    """OTel metric data for every model's aggregates, cumulative since each model's first prediction."""
    now = now_ns or time.time_ns()
    sums: dict[str, list[NumberDataPoint]] = {n: [] for n in _SUMS}
    hists: dict[str, list[ExponentialHistogramDataPoint]] = {n: [] for n in _HISTOGRAMS}
    for m in registry.models():
        with m.lock:
            m.flush()  # every queued row and pending value, once
            _model_points(m, sums, hists, now)
    drops_start = span_drops.start_ns
    for (model, version, reason, kind), n in sorted(span_drops.snapshot().items()):
        attrs = {MODEL_NAME: model, MODEL_VERSION: version, REASON: reason, SPAN: kind}
        sums[METRIC_SPANS_DROPPED].append(_num_point(n, attrs, drops_start, now))
    issues = [
        _num_point(n, {MODEL_NAME: model, ISSUE_KIND: kind}, 0, now) for (kind, model), n in sorted(_safety.counts().items())
    ]
    out: list[Metric] = []
    for name, points in sums.items():
        if points:
            out.append(Metric(name, _DESCRIPTIONS[name], "1", Sum(points, _CUMULATIVE, True)))
    for name, hpoints in hists.items():
        if hpoints:
            unit = "s" if name == METRIC_LATENCY else "1"
            out.append(Metric(name, _DESCRIPTIONS[name], unit, ExponentialHistogram(hpoints, _CUMULATIVE)))
    if issues:
        out.append(Metric(METRIC_SDK_ISSUES, _DESCRIPTIONS[METRIC_SDK_ISSUES], "1", Sum(issues, _CUMULATIVE, True)))
    return out


def _model_points(m: ModelMetrics, sums: dict[str, list[Any]], hists: dict[str, list[Any]], now: int) -> None:
    """One model version's data points, appended by metric name (caller holds ``m.lock``)."""
    base = {MODEL_NAME: m.model, MODEL_VERSION: m.version}
    start = m.start_ns
    for outcome, n in m.outcomes.items():
        sums[METRIC_PREDICTIONS].append(_num_point(n, {**base, OUTCOME: outcome}, start, now))
    for reason, n in m.decisions.items():
        decision = DROPPED if reason == REASON_NOT_SAMPLED else KEPT
        sums[METRIC_DECISIONS].append(_num_point(n, {**base, DECISION: decision, REASON: reason}, start, now))
    for value, n in m.classes.items():
        sums[METRIC_CLASSES].append(_num_point(n, {**base, PREDICTION_VALUE: value}, start, now))
    for name, h in ((METRIC_LATENCY, m.latency), (METRIC_SCORE, m.score), (METRIC_CONFIDENCE, m.confidence), (METRIC_OUTPUT, m.output)):
        if h.count:
            hists[name].append(_exp_point(h, base, start, now))
    for f in m.features.values():
        if not f.in_metrics:
            continue
        fattrs = {**base, FEATURE_NAME: f.name}
        if f.hist.count:
            hists[METRIC_FEATURE_VALUE].append(_exp_point(f.hist, fattrs, start, now))
        for value, n in f.categories.items():
            sums[METRIC_FEATURE_CATEGORY].append(_num_point(n, {**fattrs, CATEGORY_VALUE: value}, start, now))
        if f.missing:
            sums[METRIC_FEATURE_MISSING].append(_num_point(f.missing, fattrs, start, now))


_DESCRIPTIONS = {
    METRIC_PREDICTIONS: "Predictions made, by outcome",
    METRIC_CLASSES: "Predictions by predicted class (categorical outputs)",
    METRIC_DECISIONS: "Tail-sampling decisions, by decision and reason",
    METRIC_FEATURE_CATEGORY: "Values of categorical features",
    METRIC_FEATURE_MISSING: "Feature values missing (absent, None or NaN)",
    METRIC_LATENCY: "Duration of the inference call",
    METRIC_SCORE: "Model score / probability",
    METRIC_CONFIDENCE: "Model confidence",
    METRIC_OUTPUT: "Numeric predictions",
    METRIC_FEATURE_VALUE: "Values of numeric features",
    METRIC_SPANS_DROPPED: "Spans the SDK was to export and did not deliver, by reason",
    METRIC_SDK_ISSUES: "Problems the SDK handled (invalid values, truncations, hook errors, ...)",
}


def merge_into(metrics_data: MetricsData, extra: Sequence[Metric], resource: Resource | None = None) -> MetricsData:
    """`metrics_data` with a modelwatch scope holding `extra` added to its first resource."""
    if not extra:
        return metrics_data
    scope = ScopeMetrics(scope=SCOPE, metrics=list(extra), schema_url="")
    rms = list(metrics_data.resource_metrics) if metrics_data is not None else []
    if rms:
        first = rms[0]
        rms[0] = ResourceMetrics(resource=first.resource, scope_metrics=[*first.scope_metrics, scope], schema_url=first.schema_url)
    else:
        rms = [ResourceMetrics(resource=resource or Resource.create(), scope_metrics=[scope], schema_url="")]
    return MetricsData(resource_metrics=rms)


class PredictionMetricsExporter(MetricExporter):
    """Wraps a metric exporter and adds modelwatch's aggregates to every export.

    Use it where the application builds its own metric pipeline::

        reader = PeriodicExportingMetricReader(PredictionMetricsExporter(OTLPMetricExporter()))

    :func:`modelwatch.configure` does this for you. The OTel reader calls the
    exporter only when at least one OTel instrument of its MeterProvider has
    data; configure() registers the ``modelwatch.sdk.models`` gauge for that,
    an application's own pipeline normally has instruments of its own.
    """

    def __init__(self, inner: MetricExporter, resource: Resource | None = None) -> None:
        super().__init__(
            preferred_temporality=getattr(inner, "_preferred_temporality", None),
            preferred_aggregation=getattr(inner, "_preferred_aggregation", None),
        )
        self._inner = inner
        self._resource = resource
        metrics.delivery_started()

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        try:
            merged = merge_into(metrics_data, produce(), self._resource)
        except Exception:  # never lose the application's own metrics over ours
            _safety.report("internal_error", "", "building prediction metrics failed", exc_info=True)
            merged = metrics_data
        return self._inner.export(merged, timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)
