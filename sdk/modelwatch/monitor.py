"""One decorated function's recording setup, shared by its one-row and batch paths.

A :class:`Monitor` is built once per decorated function, and holds what both
:mod:`modelwatch.record` (one row) and :mod:`modelwatch.batch` (N rows) use:
the model version and its shared :class:`~modelwatch.metrics.ModelMetrics`,
the readers of inputs and outputs, the tail sampler, the feature recorder
with this decorator's options, the recorder of per-class probabilities, the
user hooks, and the making of a kept prediction's span.
"""

from __future__ import annotations

from typing import Any, Callable

from opentelemetry.trace import Status, StatusCode

from . import _safety, rows, spans
from .config import RecordingOptions, SamplingPolicy
from .contract import (
    DROP_HEAD_SAMPLED,
    DROP_NO_TRACER,
    HIGH_RISK,
    LOW_CONFIDENCE,
    MODEL_NAME,
    MODEL_VERSION,
    PREDICTION_ID,
    PREDICTION_SPAN,
    SAMPLING_REASON,
    SAMPLING_WEIGHT,
)
from .features import FeatureRecorder
from .inputs import InputReader
from .metrics import ModelMetrics, registry, span_drops
from .outputs import OutputReader
from .probabilities import ProbabilityRecorder
from .sampling import TailSampler


class Monitor:
    """Recording for one decorated function; its model version's aggregates are shared with every other one of that version."""

    def __init__(
        self,
        model: str,
        version: str,
        policy: SamplingPolicy,
        options: RecordingOptions,
        inputs: InputReader,
        outputs: OutputReader,
        edge_case: Callable[..., Any] | None = None,
        prediction_id: Callable[..., Any] | None = None,
    ) -> None:
        self.model = model
        self.version = version
        self.policy = policy
        self.options = options
        self.inputs = inputs
        self.outputs = outputs
        self.edge_case_fn = edge_case
        self.prediction_id_fn = prediction_id
        self.sampling = TailSampler(policy)
        self.features = FeatureRecorder(model, options)
        self.probabilities = ProbabilityRecorder(model, outputs.owner, outputs._class_name, self.features.max_len)
        self.metrics: ModelMetrics = registry.get(model, version, options.max_categories, options.feature_metrics)
        self.metrics.fold_rows = rows.fold  # every queued row carries its own recorder: any monitor may fold
        # ml.model.version is optional in the contract: an unversioned model's spans do not carry an empty one
        self.base_attrs = {MODEL_NAME: model, MODEL_VERSION: version} if version else {MODEL_NAME: model}

    def contract_attrs(self, prediction_id: str, reason: str, weight: float, low: bool, high: bool) -> dict[str, Any]:
        """The span contract's model, id and sampling attributes of a kept prediction."""
        attrs = dict(self.base_attrs)
        attrs[PREDICTION_ID] = prediction_id
        attrs[SAMPLING_REASON] = reason
        attrs[SAMPLING_WEIGHT] = weight
        attrs[LOW_CONFIDENCE] = low
        attrs[HIGH_RISK] = high
        return attrs

    def hook(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A user hook's answer; None (logged once, counted) when it raises."""
        try:
            return fn(*args, **kwargs)
        except Exception:
            _safety.report("hook_error", self.model, "model %r: the %s hook raised", self.model, what, key=what, exc_info=True)
            return None

    def emit(self, trace_id: int, attrs: dict[str, Any], start_ns: int, duration_ns: int, error: BaseException | None) -> None:
        """One kept prediction becomes a span with the trace id sampling hashed (or is counted in ``ml.spans.dropped``)."""
        handle = spans.current()
        if handle is None:  # metrics are delivered, spans have nowhere to go
            span_drops.add(self.model, self.version, DROP_NO_TRACER, PREDICTION_SPAN)
            return
        links = spans.caller_links()
        if error is None and handle.direct is not None:
            handle.direct.emit(trace_id, PREDICTION_SPAN, attrs, start_ns, start_ns + duration_ns, links)
            return
        span = handle.start(trace_id, PREDICTION_SPAN, attrs, start_ns, links)
        if not span.is_recording():
            span_drops.add(self.model, self.version, DROP_HEAD_SAMPLED, PREDICTION_SPAN)
            _safety.report("head_sampled_out", self.model,
                           "a kept prediction was dropped by the tracer's head sampler; "
                           "use ParentBased(ALWAYS_ON) (modelwatch.configure does)")
            return
        end_ns = start_ns + duration_ns
        if error is not None:
            span.record_exception(error, timestamp=end_ns, escaped=True)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:1024]))
        span.end(end_time=end_ns)
