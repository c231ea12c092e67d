"""The span contract (v1) and the SDK's metric names, written once.

Everything that leaves the process under a name is named here: span names,
``ml.*`` span attribute keys, the values of ``ml.sampling.reason`` in their
order of precedence, and the metrics the SDK exports with their attribute
keys. The SDK and the analyzer both import this module, so it imports
nothing (not even the standard library): keep it that way. The contract
itself, with types and meanings, is described in ``docs/contract.md``.
"""

from __future__ import annotations

# -- spans ---------------------------------------------------------------------

PREDICTION_SPAN = "ml.predict"
"""Name of the SDK's prediction spans. The store does not select by it: any span with a non-empty
``ml.model.name`` that is not a label is a prediction (docs/contract.md)."""

LABEL_SPAN = "ml.label"
"""Name of the SDK's ground-truth label spans; a span of this name, or any span with ``ml.label.value``, is a
label (never a prediction). Labels are never sampled away."""

# -- span attributes -------------------------------------------------------------

MODEL_NAME = "ml.model.name"
MODEL_VERSION = "ml.model.version"
PREDICTION_ID = "ml.prediction.id"
"""Unique per prediction; the key that labels join on."""
PREDICTION_VALUE = "ml.prediction.value"
PREDICTION_SCORE = "ml.prediction.score"
PREDICTION_CONFIDENCE = "ml.prediction.confidence"
PROBABILITY_PREFIX = "ml.prediction.probability."
"""``ml.prediction.probability.<class>``: a multiclass model's probability of each class (the class
rendered as ``ml.prediction.value`` renders it); read by label-free performance estimation."""
MAX_PROBABILITIES = 50
"""A model with more classes than this records no per-class probabilities (span attribute limits)."""
FEATURE_PREFIX = "ml.feature."
"""``ml.feature.<name>``: one attribute per input feature."""
SAMPLING_REASON = "ml.sampling.reason"
SAMPLING_WEIGHT = "ml.sampling.weight"
"""Inverse inclusion probability of a kept prediction: 1 for rule-kept, ``1 / rate`` for random."""
LOW_CONFIDENCE = "ml.low_confidence"
HIGH_RISK = "ml.high_risk"
LABEL_VALUE = "ml.label.value"
BATCH_SIZE = "ml.batch.size"
"""On the one error span of a failed batch call: how many rows it had."""


def feature_key(name: str) -> str:
    """The span attribute key of a feature."""
    return FEATURE_PREFIX + name


def probability_key(label: str) -> str:
    """The span attribute key of one class's probability."""
    return PROBABILITY_PREFIX + label


# -- sampling reasons ------------------------------------------------------------

REASON_ERROR = "error"
REASON_LOW_CONFIDENCE = "low_confidence"
REASON_HIGH_RISK = "high_risk"
REASON_EDGE_CASE = "edge_case"
REASON_RANDOM = "random"
REASON_NOT_SAMPLED = "not_sampled"
"""Metrics only (``ml.sampling.decisions``): the reason of a dropped prediction; never on a span."""

SAMPLING_REASONS = (REASON_ERROR, REASON_LOW_CONFIDENCE, REASON_HIGH_RISK, REASON_EDGE_CASE, REASON_RANDOM)
"""The values of ``ml.sampling.reason``, in order of precedence: a prediction that several rules keep
is reported under the first of them; ``random`` applies only when no rule fired."""

# -- metrics -------------------------------------------------------------------

METRIC_PREDICTIONS = "ml.predictions"
METRIC_LATENCY = "ml.prediction.latency"
METRIC_SCORE = "ml.prediction.score"
METRIC_CONFIDENCE = "ml.prediction.confidence"
METRIC_OUTPUT = "ml.prediction.output"
METRIC_CLASSES = "ml.prediction.class"
METRIC_DECISIONS = "ml.sampling.decisions"
METRIC_FEATURE_VALUE = "ml.feature.value"
METRIC_FEATURE_CATEGORY = "ml.feature.category"
METRIC_FEATURE_MISSING = "ml.feature.missing"
METRIC_SPANS_DROPPED = "ml.spans.dropped"
METRIC_SDK_ISSUES = "modelwatch.sdk.issues"
METRIC_SDK_MODELS = "modelwatch.sdk.models"
"""Gauge: model versions monitored in the process (it keeps the OTel reader exporting every interval)."""

# metric attribute keys (next to MODEL_NAME and MODEL_VERSION)
OUTCOME = "outcome"
"""``ml.predictions``: ``ok`` or ``error``."""
DECISION = "decision"
"""``ml.sampling.decisions``: ``kept`` or ``dropped`` (next to ``reason``)."""
REASON = "reason"
"""``ml.sampling.decisions``: a sampling reason; ``ml.spans.dropped``: a drop reason."""
SPAN = "span"
"""``ml.spans.dropped``: the span's name if it is :data:`PREDICTION_SPAN` or :data:`LABEL_SPAN`, else :data:`SPAN_OTHER`."""
SPAN_OTHER = "other"
FEATURE_NAME = "ml.feature.name"
CATEGORY_VALUE = "ml.feature.value"
"""``ml.feature.category``: the counted value (``ml.prediction.class`` uses :data:`PREDICTION_VALUE`)."""
ISSUE_KIND = "kind"
"""``modelwatch.sdk.issues``: what the SDK handled (``invalid_value``, ``truncated``, ...)."""

OUTCOME_OK = "ok"
OUTCOME_ERROR = "error"
KEPT = "kept"
DROPPED = "dropped"
OTHER = "__other__"
"""A capped counter's bucket for every value past its limit."""

# values of `reason` on ml.spans.dropped: spans the SDK was to deliver and did not
DROP_QUEUE_FULL = "queue_full"
DROP_EXPORT_FAILED = "export_failed"
DROP_SHUTDOWN = "shutdown"
DROP_NO_TRACER = "no_tracer"
DROP_HEAD_SAMPLED = "head_sampled"
