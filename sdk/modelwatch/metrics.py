"""Full-population metrics: every prediction, sampled or not, aggregated in process.

Instruments (all cumulative; attributes in brackets, every one bounded):

=============================  =====================  ==================================================
name                           type                   attributes
=============================  =====================  ==================================================
``ml.predictions``             Sum (monotonic)        model, version, ``outcome`` (ok / error)
``ml.prediction.latency``      ExponentialHistogram   model, version (seconds, per call)
``ml.prediction.score``        ExponentialHistogram   model, version
``ml.prediction.confidence``   ExponentialHistogram   model, version
``ml.prediction.output``       ExponentialHistogram   model, version (numeric predictions)
``ml.prediction.class``        Sum (monotonic)        model, version, ``ml.prediction.value`` (capped)
``ml.sampling.decisions``      Sum (monotonic)        model, version, ``decision`` (kept / dropped), reason
``ml.feature.value``           ExponentialHistogram   model, version, ``ml.feature.name``
``ml.feature.category``        Sum (monotonic)        model, version, feature, ``ml.feature.value`` (capped)
``ml.feature.missing``         Sum (monotonic)        model, version, feature
``ml.spans.dropped``           Sum (monotonic)        model, version, ``reason``, ``span`` (see below)
``modelwatch.sdk.issues``      Sum (monotonic)        model, ``kind`` (invalid_value, truncated, ...)
=============================  =====================  ==================================================

Why base-2 exponential histograms: a feature's range is unknown in advance
and differs per feature, so fixed explicit buckets would be wrong for most of
them. An exponential histogram adapts its scale to the data with bounded size
(160 buckets per sign), keeps a bounded *relative* error, merges across
processes and time, and maps to ClickHouse's
``otel_metrics_exponential_histogram`` table; drift over 100 % of traffic
(PSI, Jensen-Shannon, approximate KS) is computed from two such histograms
once they are brought to a common scale.

``ml.spans.dropped`` counts spans the SDK decided to send and did not
deliver (see :mod:`modelwatch.export`), by ``reason``: ``queue_full``,
``export_failed``, ``shutdown`` (from the span queue), ``no_tracer`` (a
kept prediction with no tracer to become a span on), ``head_sampled`` (a
tracer's head sampler refused the span); ``span`` is ``ml.predict``,
``ml.label`` or ``other``. Kept decisions minus these drops is what the
store should hold.

Categorical features count their values, the first ``max_categories``
distinct values per feature by name and the rest as ``__other__``, so a
free-text feature cannot explode the metric's cardinality.

Delivery: these are not OTel API instruments (recording 25 values through
the API costs more than the whole per-prediction budget). :func:`produce`
builds OTel SDK metric data from the aggregates, and
:class:`PredictionMetricsExporter` appends it to every export of the
application's metric pipeline (``modelwatch.configure`` installs it).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Sequence

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.metrics.export import (
    Buckets,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    NumberDataPoint,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from . import _safety
from .exphist import ExpHistogram
from .sampling import REASON_NOT_SAMPLED
from .version import __version__

OTHER = "__other__"
MAX_FEATURES = 1000  # per model; beyond, features are recorded on spans but not in metrics
MAX_MODELS = 1000

SCOPE = InstrumentationScope("modelwatch", __version__)
_CUMULATIVE = AggregationTemporality.CUMULATIVE


class FeatureStats:
    """Aggregates of one feature of one model."""

    __slots__ = ("name", "key", "hist", "categories", "missing", "hashed", "dropped", "in_metrics")

    def __init__(self, name: str, hashed: bool, dropped: bool, in_metrics: bool) -> None:
        self.name = name
        self.key = "ml.feature." + name  # span attribute key, built once
        self.hist = ExpHistogram()
        self.categories: dict[str, int] = {}
        self.missing = 0
        self.hashed = hashed
        self.dropped = dropped
        self.in_metrics = in_metrics


class ModelMetrics:
    """Everything counted for one (model, version). Callers hold :attr:`lock` while updating."""

    def __init__(self, model: str, version: str, max_categories: int, feature_metrics: bool) -> None:
        self.model = model
        self.version = version
        self.lock = threading.Lock()
        self.fold_rows: Any = None  # set by the Monitor: callable(model_metrics, rows)
        self.max_categories = max_categories
        self.feature_metrics = feature_metrics
        self._zero()

    def reset(self) -> None:
        """Start counting from zero (monitors keep their reference to this object)."""
        with self.lock:
            self._zero()

    def _zero(self) -> None:
        self.start_ns = time.time_ns()
        self.outcomes: dict[str, int] = {"ok": 0, "error": 0}
        self.decisions: dict[str, int] = {}  # by reason
        self.latency = ExpHistogram()
        self.score = ExpHistogram()
        self.confidence = ExpHistogram()
        self.output = ExpHistogram()
        self.classes: dict[str, int] = {}
        self.features: dict[str, FeatureStats] = {}
        # Single predictions queue a copy of their feature row here; rows are folded into the
        # feature aggregates a block at a time, column-wise (see modelwatch.rows).
        self.rows: list[dict[str, Any]] = []

    def flush(self) -> None:
        """Fold queued rows and pending values into the aggregates (caller holds the lock)."""
        if self.rows and self.fold_rows is not None:
            rows, self.rows = self.rows, []
            self.fold_rows(self, rows)
        for h in (self.latency, self.score, self.confidence, self.output):
            h.flush()
        for f in self.features.values():
            f.hist.flush()

    def count_absent(self, present: Any, n: int) -> None:
        """Features seen before but not in `present` (names) count `n` missing values each."""
        if len(self.features) > len(present):
            for name, f in self.features.items():
                if name not in present and not f.dropped:
                    f.missing += n

    def count_category(self, counts: dict[str, int], value: str, n: int = 1) -> None:
        """Add `n` to a capped category counter."""
        if value in counts:
            counts[value] += n
        elif len(counts) < self.max_categories:
            counts[value] = n
        else:
            counts[OTHER] = counts.get(OTHER, 0) + n

    def decision(self, reason: str, n: int = 1) -> None:
        """Count `n` sampling decisions; every reason but ``not_sampled`` means kept."""
        self.decisions[reason] = self.decisions.get(reason, 0) + n


class Registry:
    """All models' aggregates in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[tuple[str, str], ModelMetrics] = {}

    def get(self, model: str, version: str, max_categories: int, feature_metrics: bool) -> ModelMetrics:
        key = (model, version)
        with self._lock:
            found = self._models.get(key)
            if found is None:
                if len(self._models) >= MAX_MODELS:
                    _safety.report("too_many_models", model, "more than %d model versions; metrics shared under __other__", MAX_MODELS)
                    key = (OTHER, OTHER)
                    found = self._models.get(key)
                if found is None:
                    found = ModelMetrics(key[0], key[1], max_categories, feature_metrics)
                    self._models[key] = found
            elif (found.max_categories, found.feature_metrics) != (max_categories, feature_metrics):
                # several functions monitor one model version: they share its aggregates, the latest settings apply
                _safety.logger.info("modelwatch: model %r version %r monitored again with different metric settings; "
                                    "using max_categories=%d feature_metrics=%s", model, version, max_categories, feature_metrics)
                with found.lock:
                    found.max_categories = max_categories
                    found.feature_metrics = feature_metrics
            return found

    def models(self) -> list[ModelMetrics]:
        with self._lock:
            return list(self._models.values())

    def flush(self) -> None:
        """Fold every model's queued rows and values into its aggregates."""
        for m in self.models():
            with m.lock:
                m.flush()

    def reset(self) -> None:
        """Zero every model's aggregates in place."""
        for m in self.models():
            m.reset()


registry = Registry()

PREDICTION_SPAN = "ml.predict"
LABEL_SPAN = "ml.label"
MAX_DROP_SERIES = 1000


class SpanDrops:
    """``ml.spans.dropped``: spans that were to be exported and were not, by model, version, reason and span name."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._zero()

    def _zero(self) -> None:
        self.start_ns = time.time_ns()
        self.counts: dict[tuple[str, str, str, str], int] = {}

    def reset(self) -> None:
        with self.lock:
            self._zero()

    def add(self, model: str, version: str, reason: str, span: str, n: int = 1) -> None:
        key = (model, version, reason, span)
        with self.lock:
            counts = self.counts
            if key in counts:
                counts[key] += n
            elif len(counts) < MAX_DROP_SERIES:
                counts[key] = n
            else:
                other = (OTHER, OTHER, reason, span)
                counts[other] = counts.get(other, 0) + n

    def add_span(self, span: Any, reason: str) -> None:
        """Count one finished span (its model and version from its attributes)."""
        self.add(*_drop_key(span), reason, _span_kind(span))

    def add_spans(self, spans: Sequence[Any], reason: str) -> None:
        """Count a batch of spans at once."""
        grouped: dict[tuple[str, str, str], int] = {}
        for span in spans:
            key = (*_drop_key(span), _span_kind(span))
            grouped[key] = grouped.get(key, 0) + 1
        for (model, version, kind), n in grouped.items():
            self.add(model, version, reason, kind, n)

    def snapshot(self) -> dict[tuple[str, str, str, str], int]:
        with self.lock:
            return dict(self.counts)


def _span_kind(span: Any) -> str:
    name = getattr(span, "name", "")
    return name if name in (PREDICTION_SPAN, LABEL_SPAN) else "other"


def _drop_key(span: Any) -> tuple[str, str]:
    attrs = getattr(span, "attributes", None) or {}
    try:
        return str(attrs.get("ml.model.name", ""))[:256], str(attrs.get("ml.model.version", ""))[:256]
    except Exception:
        return "", ""


span_drops = SpanDrops()


def _reset_after_fork() -> None:
    """A forked child (a pre-fork server's worker) counts its own predictions from zero.

    Otherwise it would report its parent's cumulative counts, and queued rows,
    as its own: double counting across processes.
    """
    registry._lock = threading.Lock()  # locks the parent held at fork time would never be released
    span_drops.lock = threading.Lock()
    span_drops._zero()
    for m in registry._models.values():
        m.lock = threading.Lock()
        m._zero()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


# -- OTel data -----------------------------------------------------------------


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


def produce(now_ns: int | None = None) -> list[Metric]:
    """OTel metric data for every model's aggregates, cumulative since each model's first prediction."""
    now = now_ns or time.time_ns()
    sums: dict[str, list[NumberDataPoint]] = {n: [] for n in ("ml.predictions", "ml.prediction.class", "ml.sampling.decisions", "ml.feature.category", "ml.feature.missing", "ml.spans.dropped")}
    hists: dict[str, list[ExponentialHistogramDataPoint]] = {n: [] for n in ("ml.prediction.latency", "ml.prediction.score", "ml.prediction.confidence", "ml.prediction.output", "ml.feature.value")}
    for m in registry.models():
        base = {"ml.model.name": m.model, "ml.model.version": m.version}
        start = m.start_ns
        with m.lock:
            m.flush()  # every queued row and pending value, once
            for outcome, n in m.outcomes.items():
                sums["ml.predictions"].append(_num_point(n, {**base, "outcome": outcome}, start, now))
            for reason, n in m.decisions.items():
                decision = "dropped" if reason == REASON_NOT_SAMPLED else "kept"
                sums["ml.sampling.decisions"].append(_num_point(n, {**base, "decision": decision, "reason": reason}, start, now))
            for value, n in m.classes.items():
                sums["ml.prediction.class"].append(_num_point(n, {**base, "ml.prediction.value": value}, start, now))
            for name, h in (("ml.prediction.latency", m.latency), ("ml.prediction.score", m.score),
                            ("ml.prediction.confidence", m.confidence), ("ml.prediction.output", m.output)):
                if h.count:
                    hists[name].append(_exp_point(h, base, start, now))
            for f in m.features.values():
                if not f.in_metrics:
                    continue
                fattrs = {**base, "ml.feature.name": f.name}
                if f.hist.count:
                    hists["ml.feature.value"].append(_exp_point(f.hist, fattrs, start, now))
                for value, n in f.categories.items():
                    sums["ml.feature.category"].append(_num_point(n, {**fattrs, "ml.feature.value": value}, start, now))
                if f.missing:
                    sums["ml.feature.missing"].append(_num_point(f.missing, fattrs, start, now))
    drops_start = span_drops.start_ns
    for (model, version, reason, kind), n in sorted(span_drops.snapshot().items()):
        sums["ml.spans.dropped"].append(_num_point(n, {"ml.model.name": model, "ml.model.version": version,
                                                       "reason": reason, "span": kind}, drops_start, now))
    issues = [
        _num_point(n, {"ml.model.name": model, "kind": kind}, 0, now) for (kind, model), n in sorted(_safety.counts().items())
    ]
    out: list[Metric] = []
    for name, points in sums.items():
        if points:
            out.append(Metric(name, _DESCRIPTIONS[name], "1", Sum(points, _CUMULATIVE, True)))
    for name, hpoints in hists.items():
        if hpoints:
            unit = "s" if name == "ml.prediction.latency" else "1"
            out.append(Metric(name, _DESCRIPTIONS[name], unit, ExponentialHistogram(hpoints, _CUMULATIVE)))
    if issues:
        out.append(Metric("modelwatch.sdk.issues", _DESCRIPTIONS["modelwatch.sdk.issues"], "1", Sum(issues, _CUMULATIVE, True)))
    return out


_DESCRIPTIONS = {
    "ml.predictions": "Predictions made, by outcome",
    "ml.prediction.class": "Predictions by predicted class (categorical outputs)",
    "ml.sampling.decisions": "Tail-sampling decisions, by decision and reason",
    "ml.feature.category": "Values of categorical features",
    "ml.feature.missing": "Feature values missing (absent, None or NaN)",
    "ml.prediction.latency": "Duration of the inference call",
    "ml.prediction.score": "Model score / probability",
    "ml.prediction.confidence": "Model confidence",
    "ml.prediction.output": "Numeric predictions",
    "ml.feature.value": "Values of numeric features",
    "ml.spans.dropped": "Spans the SDK was to export and did not deliver, by reason",
    "modelwatch.sdk.issues": "Problems the SDK handled (invalid values, truncations, hook errors, ...)",
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
        global _delivery_installed
        _delivery_installed = True

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


_delivery_installed = False


def delivery_installed() -> bool:
    """Whether some metric pipeline carries modelwatch's aggregates."""
    return _delivery_installed
