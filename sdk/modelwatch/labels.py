"""Ground truth that arrives later: the label span of the contract.

A label is a span of its own (``ml.label``) carrying ``ml.model.name``,
``ml.prediction.id`` and ``ml.label.value``; the analyzer joins it to the
prediction by model and id. Labels are never sampled away: they bypass the
tail sampler entirely (a label for a prediction that sampling dropped is
still recorded, and counts towards label coverage).
"""

from __future__ import annotations

import random
import time
from typing import Any, Iterable

from . import _safety, spans
from .contract import (
    DROP_HEAD_SAMPLED,
    DROP_NO_TRACER,
    LABEL_SPAN,
    LABEL_VALUE,
    MODEL_NAME,
    MODEL_VERSION,
    PREDICTION_ID,
)
from .metrics import delivery_installed, span_drops
from .values import BOOL, CATEGORY, NONFINITE, NUMBER, coerce


def record_label(
    model: str,
    prediction_id: str,
    label: Any,
    *,
    version: str | None = None,
    attributes: dict[str, Any] | None = None,
    timestamp_ns: int | None = None,
) -> bool:
    """Record the ground truth of one prediction; True if a span was emitted.

    Never raises: an invalid label or a missing tracer is logged once and counted.
    An empty ``prediction_id`` (None or ``""``, e.g. the ``id`` of
    :func:`modelwatch.last_prediction` when nothing was recorded) records nothing.
    """
    try:
        kind, value = coerce(label)
        if kind not in (NUMBER, CATEGORY, BOOL, NONFINITE):
            _safety.report("invalid_value", str(model), "label of type %s for model %r is not recordable",
                           type(label).__name__, model, key="label")
            return False
        handle = spans.current()
        if handle is None:
            if delivery_installed():  # metrics are delivered, spans have nowhere to go
                span_drops.add(str(model), "" if version is None else str(version), DROP_NO_TRACER, LABEL_SPAN)
            return False
        if prediction_id is None or prediction_id == "":
            _safety.report("invalid_value", str(model), "label for model %r without a prediction id; not recorded",
                           model, key="label_id")
            return False
        attrs: dict[str, Any] = {}
        if attributes:
            for k, v in attributes.items():
                k_kind, k_val = coerce(v)
                if k_kind in (NUMBER, CATEGORY, BOOL):
                    attrs[str(k)] = k_val
        attrs[MODEL_NAME] = str(model)
        if version is not None:
            attrs[MODEL_VERSION] = str(version)
        attrs[PREDICTION_ID] = str(prediction_id)
        attrs[LABEL_VALUE] = value
        now = timestamp_ns or time.time_ns()
        if handle.direct is not None:
            handle.direct.emit(random.getrandbits(128) or 1, LABEL_SPAN, attrs, now, now)
            return True
        span = handle.start(random.getrandbits(128) or 1, LABEL_SPAN, attrs, now)
        recording = span.is_recording()
        span.end(end_time=now)
        if not recording:
            span_drops.add(str(model), "" if version is None else str(version), DROP_HEAD_SAMPLED, LABEL_SPAN)
            _safety.report("head_sampled_out", str(model), "a label span was dropped by the tracer's head sampler")
        return recording
    except Exception:
        _safety.report("internal_error", _safety.text(model), "recording a label failed", key="label", exc_info=True)
        return False


def record_labels(model: str, labels: Iterable[tuple[str, Any]], *, version: str | None = None) -> int:
    """Record many (prediction_id, label) pairs; returns how many spans were emitted."""
    return sum(record_label(model, pid, value, version=version) for pid, value in labels)
