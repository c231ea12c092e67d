"""modelwatch: monitoring for ML models in production, on OpenTelemetry.

::

    import modelwatch

    modelwatch.configure()                      # OTLP, from the OTEL_* environment

    @modelwatch.monitor(model="churn", version="3")
    def predict(features: dict) -> dict:
        ...

    predict({"tenure": 3, "plan": "basic"})
    pid = modelwatch.last_prediction().id       # keep it to attach the label later
    modelwatch.record_label("churn", pid, True)

Every prediction is counted in metrics; the interesting ones (low confidence,
high risk, errors, edge cases, and a random share of the rest) become spans
carrying their sampling weight. Importing this package imports neither numpy,
pandas, scipy nor any server-side dependency.
"""

from __future__ import annotations

from typing import Any

from .config import RecordingOptions, SamplingPolicy
from .decorator import monitor
from .errors import ConfigurationError, ModelwatchError
from .labels import record_label, record_labels
from .metric_export import PredictionMetricsExporter
from .pipeline import Telemetry, configure
from .predictions import Prediction, call_state, last
from .version import __version__

__all__ = [
    "ConfigurationError",
    "ModelwatchError",
    "Prediction",
    "PredictionMetricsExporter",
    "RecordingOptions",
    "SamplingPolicy",
    "Telemetry",
    "__version__",
    "configure",
    "last_prediction",
    "mark_edge_case",
    "monitor",
    "record_label",
    "record_labels",
    "set_prediction_id",
]


def last_prediction() -> Any:
    """What was recorded of the last monitored call in this thread or task.

    A :class:`Prediction` (``.id``, ``.kept``, ``.reason``, ``.weight``,
    ``.trace_id``) for a single prediction, a
    :class:`~modelwatch.predictions.BatchPredictions` (a sequence of them, with
    ``.ids``) for a batch call. Never None: when the last monitored call here
    was not recorded (no telemetry configured, ``OTEL_SDK_DISABLED``, the
    call was interrupted) or none was made, a
    :class:`~modelwatch.predictions.NotRecorded` with the same attributes, empty
    (``.id == ""``, ``.ids == []``, ``.kept`` False), so code written for
    monitoring runs unchanged without it.
    """
    return last.get()


def mark_edge_case() -> None:
    """Inside a monitored call: always keep this prediction (``ml.sampling.reason=edge_case``)."""
    state = call_state.get()
    if state is not None:
        state.edge_case = True


def set_prediction_id(prediction_id: Any) -> None:
    """Inside a monitored call: use this id (e.g. the request id) as ``ml.prediction.id``; N ids for a batch."""
    state = call_state.get()
    if state is not None:
        state.prediction_id = prediction_id
