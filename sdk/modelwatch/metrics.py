"""Full-population metrics: every prediction, sampled or not, aggregated in process.

The names are those of :mod:`modelwatch.contract`.

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
the API costs more than the whole per-prediction budget);
:mod:`modelwatch.metric_export` turns the aggregates into OTel metric data.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Sequence

from . import _safety
from .contract import (
    LABEL_SPAN,
    MODEL_NAME,
    MODEL_VERSION,
    OTHER,
    OUTCOME_ERROR,
    OUTCOME_OK,
    PREDICTION_SPAN,
    SPAN_OTHER,
)
from .exphist import ExpHistogram

MAX_FEATURES = 1000  # per model; beyond, features are recorded on spans but not in metrics
MAX_MODELS = 1000


class FeatureStats:
    """Aggregates of one feature of one model (what is recorded, and how, is up to :mod:`modelwatch.features`)."""

    __slots__ = ("name", "hist", "categories", "missing", "in_metrics")

    def __init__(self, name: str, in_metrics: bool) -> None:
        self.name = name
        self.hist = ExpHistogram()
        self.categories: dict[str, int] = {}
        self.missing = 0
        self.in_metrics = in_metrics


class ModelMetrics:
    """Everything counted for one (model, version). Callers hold :attr:`lock` while updating."""

    def __init__(self, model: str, version: str, max_categories: int, feature_metrics: bool) -> None:
        self.model = model
        self.version = version
        self.lock = threading.Lock()
        self.fold_rows: Any = None  # modelwatch.rows.fold, set by the first Monitor: callable(model_metrics, rows)
        self.max_categories = max_categories
        self.feature_metrics = feature_metrics
        self._zero()

    def reset(self) -> None:
        """Start counting from zero (monitors keep their reference to this object)."""
        with self.lock:
            self._zero()

    def _zero(self) -> None:
        self.start_ns = time.time_ns()
        self.outcomes: dict[str, int] = {OUTCOME_OK: 0, OUTCOME_ERROR: 0}
        self.decisions: dict[str, int] = {}  # by reason
        self.latency = ExpHistogram()
        self.score = ExpHistogram()
        self.confidence = ExpHistogram()
        self.output = ExpHistogram()
        self.classes: dict[str, int] = {}
        self.features: dict[str, FeatureStats] = {}
        # Single predictions queue a snapshot of their feature row here, with the recorder that
        # saw it; rows are folded into the feature aggregates a block at a time (see modelwatch.rows).
        self.rows: list[tuple[Any, Any]] = []

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
                if name not in present:
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
        """Count `n` sampling decisions under `reason`; every reason but ``not_sampled`` means kept."""
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
    return name if name in (PREDICTION_SPAN, LABEL_SPAN) else SPAN_OTHER


def _drop_key(span: Any) -> tuple[str, str]:
    attrs = getattr(span, "attributes", None) or {}
    try:
        return str(attrs.get(MODEL_NAME, ""))[:256], str(attrs.get(MODEL_VERSION, ""))[:256]
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


_delivery_installed = False


def delivery_started() -> None:
    """A metric pipeline now carries modelwatch's aggregates (a :class:`~modelwatch.metric_export.PredictionMetricsExporter` exists)."""
    global _delivery_installed
    _delivery_installed = True


def delivery_installed() -> bool:
    """Whether some metric pipeline carries modelwatch's aggregates."""
    return _delivery_installed
