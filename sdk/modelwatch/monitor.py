"""One monitored model: the tail-sampling decision, the metrics, the span.

The order of work per prediction is what keeps a dropped prediction cheap:

1. read the output and evaluate the rules (confidence, risk, error, edge case);
2. if no rule fired, hash a fresh 128-bit trace id (the collector's
   ``probabilistic`` policy hash) against the rate;
3. the feature row is queued as a tuple (see :mod:`modelwatch.rows`) and
   folded into the metrics a block at a time;
4. only a kept prediction gets span attributes and becomes an OTel span,
   with the trace id that was hashed and start/end times taken around the call.

Nothing here raises into the caller: :mod:`modelwatch.decorator` calls
:meth:`Monitor.record` inside a guard.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import Any, Callable

from opentelemetry.trace import Status, StatusCode

from . import _safety, metrics, rows, spans
from .config import RecordingOptions, SamplingPolicy
from .inputs import Batch, InputReader
from .metrics import MAX_FEATURES, FeatureStats, ModelMetrics, registry
from .outputs import OutputReader
from .sampling import (
    REASON_EDGE_CASE,
    REASON_ERROR,
    REASON_HIGH_RISK,
    REASON_LOW_CONFIDENCE,
    REASON_NOT_SAMPLED,
    REASON_RANDOM,
    TraceIdSampler,
)
from .values import (
    BOOL,
    CATEGORY,
    INVALID,
    MISSING,
    NONFINITE,
    NUMBER,
    coerce,
    keyed_hash,
)

SPAN_NAME = "ml.predict"
# Single predictions queue their feature rows; a block of this many rows is folded into the
# aggregates at once (vectorised when numpy is loaded): the queue's memory stays bounded (~1 MB
# for 25 features) and so does the occasional fold (about a millisecond, once per block).
ROWS_PER_FOLD = 1024
VALUES_PER_FOLD = 32_768  # a wide model (many features) folds after fewer rows
MAX_FEATURE_NAME = 256
_UNKNOWN = object()
# ml.spans.dropped reasons of kept predictions that never reach a span processor
REASON_NO_TRACER = "no_tracer"
REASON_HEAD_SAMPLED = "head_sampled"


class Prediction:
    """What modelwatch recorded of one prediction; :func:`modelwatch.last_prediction` returns it.

    ``id`` is the value of ``ml.prediction.id``: pass it to
    :func:`modelwatch.record_label` when the ground truth arrives. ``kept``
    says whether it became a span, ``reason`` why (or ``not_sampled``),
    ``weight`` its sampling weight, ``trace_id`` the 32-hex-digit trace id.
    """

    __slots__ = ("_id", "model", "version", "_trace_id", "kept", "reason", "weight")

    def __init__(self, id: str | None, model: str, version: str, trace_id: int, kept: bool, reason: str, weight: float) -> None:
        self._id = id  # None: the trace id's hex, formatted only if asked for
        self.model = model
        self.version = version
        self._trace_id = trace_id
        self.kept = kept
        self.reason = reason
        self.weight = weight

    @property
    def id(self) -> str:
        return self._id if self._id is not None else f"{self._trace_id:032x}"

    @property
    def trace_id(self) -> str:
        return f"{self._trace_id:032x}"

    def __repr__(self) -> str:
        return (f"Prediction(id={self.id!r}, model={self.model!r}, version={self.version!r}, kept={self.kept}, "
                f"reason={self.reason!r}, weight={self.weight})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Prediction):
            return NotImplemented
        return (self.id, self.model, self.version, self._trace_id, self.kept, self.reason, self.weight) == (
            other.id, other.model, other.version, other._trace_id, other.kept, other.reason, other.weight)

    __hash__ = None  # type: ignore[assignment]


class _Blank(str):
    """The empty string, also callable (returning itself): a batch's ``trace_id(i)`` as well as a prediction's ``trace_id``."""

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        return self


_BLANK = _Blank("")


class NotRecorded:
    """What :func:`modelwatch.last_prediction` returns when nothing was recorded in this thread or task.

    Monitoring is off (``OTEL_SDK_DISABLED``, nothing configured), no
    monitored call was made here yet, the last one was not recorded (it was
    interrupted, or recording it failed), or a :func:`modelwatch.testing.capture`
    block ended. It has the attributes of both a :class:`Prediction` and a
    :class:`~modelwatch.batch.BatchPredictions`, all empty: ``id`` and
    ``trace_id`` are ``""`` (``trace_id(i)`` also returns ``""``), ``kept`` is
    False, ``reason`` ``"not_recorded"``, ``weight`` 0, ``ids`` and ``kept_ids``
    empty lists; it is an empty sequence, so it is falsy. Passing its ``id`` to
    :func:`modelwatch.record_label` records nothing.
    """

    __slots__ = ()

    id = _BLANK
    trace_id = _BLANK
    model = ""
    version = ""
    kept = False
    reason = "not_recorded"
    weight = 0.0

    @property
    def ids(self) -> list[str]:
        return []

    @property
    def kept_ids(self) -> list[str]:
        return []

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Any:
        return iter(())

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return []
        raise IndexError("no prediction was recorded")

    def __repr__(self) -> str:
        return "NotRecorded()"


NOT_RECORDED = NotRecorded()


class CallState:
    """Per-call scratch the inference code can reach (edge-case flag, custom id)."""

    __slots__ = ("edge_case", "prediction_id")

    def __init__(self) -> None:
        self.edge_case = False
        self.prediction_id: Any = None


last: contextvars.ContextVar[Any] = contextvars.ContextVar("modelwatch_last_prediction", default=NOT_RECORDED)


def forget_last() -> None:
    """The last monitored call here recorded nothing: :data:`last` must not keep an older call's record."""
    if last.get() is not NOT_RECORDED:
        last.set(NOT_RECORDED)
call_state: contextvars.ContextVar[CallState | None] = contextvars.ContextVar("modelwatch_call_state", default=None)


class Monitor:
    """Recording for one model version; shared by every function decorated with it."""

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
        self.sampler = TraceIdSampler(policy.rate, policy.hash_salt)
        self.metrics: ModelMetrics = registry.get(model, version, options.max_categories, options.feature_metrics)
        # ml.model.version is optional in the contract: an unversioned model's spans do not carry an empty one
        self.base_attrs = {"ml.model.name": model, "ml.model.version": version} if version else {"ml.model.name": model}
        self.low = policy.low_confidence_threshold
        self.high = policy.high_risk_threshold
        # span attribute key per feature name; None for a feature that must never be recorded
        self._keys: dict[str, str | None] = {}
        self.hashed_keys = {"ml.feature." + n for n in options.hash_features}  # complete up front: privacy
        self.schemas: dict[tuple[Any, Any], rows.Schema] = {}
        self.last_schema: rows.Schema | None = None
        self.metrics.fold_rows = lambda m, queued: rows.fold(self, m, queued)
        self._fold_width = -1
        self._fold_rows = ROWS_PER_FOLD

    # -- one row -----------------------------------------------------------------

    def record(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        result: Any,
        error: BaseException | None,
        start_ns: int,
        duration_ns: int,
        state: CallState,
    ) -> None:
        """Record one call (which may be a batch); publish its record in :data:`last`."""
        raw = self.inputs.raw(args, kwargs)
        features = self.inputs.interpret(raw)
        if isinstance(features, Batch):
            from .batch import record_batch

            last.set(record_batch(self, features, raw, result, error, start_ns, duration_ns, state))
            return
        trace_id, random_keep = self.sampler.next_id()
        out = None if error is not None else self.outputs.read(result)
        edge = state.edge_case
        if not edge and self.edge_case_fn is not None and error is None:
            edge = self._hook("edge_case", self.edge_case_fn, raw, result) is True
        if out is not None:
            confidence, risk = out.confidence, out.risk
            low = confidence is not None and confidence < self.low
            high = risk is not None and risk > self.high
        else:
            low = high = False
        # rule precedence: error, low confidence, high risk, edge case, then the random draw
        if error is not None:
            reason = REASON_ERROR
        elif low:
            reason = REASON_LOW_CONFIDENCE
        elif high:
            reason = REASON_HIGH_RISK
        elif edge:
            reason = REASON_EDGE_CASE
        elif random_keep:
            reason = REASON_RANDOM
        else:
            reason = REASON_NOT_SAMPLED
        kept = reason is not REASON_NOT_SAMPLED
        weight = self.sampler.weight if reason is REASON_RANDOM else 1.0

        pid = state.prediction_id
        if pid is None and self.prediction_id_fn is not None:
            pid = self._hook("prediction_id", self.prediction_id_fn, *args, **kwargs)
        if pid is not None:
            pid = str(pid)

        attrs: dict[str, Any] | None = None
        if kept:
            attrs = self.contract_attrs(pid if pid is not None else f"{trace_id:032x}", reason, weight, low, high)
        m = self.metrics
        schema, values = rows.schema_for(self, features)
        if len(features) != self._fold_width:  # a wide model folds smaller blocks: bounded memory and pauses
            self._fold_width = len(features)
            self._fold_rows = max(16, min(ROWS_PER_FOLD, VALUES_PER_FOLD // max(1, len(features))))
        # the queued row is a snapshot (a tuple, or a copy): the application may reuse its dict
        row = (schema, values) if schema is not None else (None, dict(features))
        with m.lock:
            m.outcomes["ok" if error is None else "error"] += 1
            decisions = m.decisions
            decisions[reason] = decisions.get(reason, 0) + 1
            m.latency.pending.append(duration_ns / 1e9)
            if out is not None:
                self._record_output(m, out, attrs)
            queue = m.rows
            queue.append(row)
            if len(queue) >= self._fold_rows:
                m.flush()
        if attrs is not None:
            if schema is not None and schema.attrs_ok(values, self.options.max_string_length):
                attrs.update(zip(schema.attr_keys, values))
            else:
                self._feature_attrs(features, attrs)
            self._emit(trace_id, attrs, start_ns, duration_ns, error)
        last.set(Prediction(pid, self.model, self.version, trace_id, kept, reason, weight))

    def _record_output(self, m: ModelMetrics, out: Any, attrs: dict[str, Any] | None) -> None:
        if out.prediction is not None:
            kind, value = coerce(out.prediction)
            if kind == NUMBER:
                m.output.pending.append(value)
            elif kind == CATEGORY:
                value = self.truncate(value, "ml.prediction.value")
                m.count_category(m.classes, value)
            elif kind == BOOL:
                m.count_category(m.classes, "true" if value else "false")
            elif kind in (MISSING, INVALID):
                value = None
                if kind == INVALID:
                    _safety.report("invalid_value", self.model, "model %r: prediction of type %s is not recordable",
                                   self.model, type(out.prediction).__name__, key="prediction")
            if attrs is not None and value is not None:
                attrs["ml.prediction.value"] = value
        if out.score is not None:
            m.score.pending.append(out.score)
            if attrs is not None:
                attrs["ml.prediction.score"] = out.score
        if out.confidence is not None:
            m.confidence.pending.append(out.confidence)
            if attrs is not None:
                attrs["ml.prediction.confidence"] = out.confidence

    def record_row(self, m: ModelMetrics, features: Mapping[str, Any]) -> None:
        """The general path of one queued row into the aggregates, value by value (caller holds ``m.lock``)."""
        stats = m.features
        for name, value in features.items():
            f = stats.get(name) or self.new_feature(m, name)
            if f is not None and not f.dropped:
                self.record_value(m, f, name, value)
        m.count_absent(features, 1)

    def _feature_attrs(self, features: Mapping[str, Any], attrs: dict[str, Any]) -> None:
        """Add a kept prediction's features to its span attributes (problems are counted by the fold)."""
        keys = self._keys
        max_len = self.options.max_string_length
        for name, value in features.items():
            key = keys.get(name, _UNKNOWN)
            if key is _UNKNOWN:
                key = self.attr_key(name)
            if key is None:
                continue
            if key in self.hashed_keys:
                self.set_attr(attrs, key, value)
                continue
            tp = type(value)
            if tp is float:
                if value == value:  # NaN is missing: no attribute
                    attrs[key] = value
                continue
            if tp is str and len(value) <= max_len:
                attrs[key] = value
                continue
            if tp is int and -9223372036854775808 <= value <= 9223372036854775807:
                attrs[key] = value
                continue
            self.set_attr(attrs, key, value)

    def set_attr(self, attrs: dict[str, Any], key: str, value: Any) -> None:
        """The general path of one feature value into span attributes: coerced, hashed or truncated; missing and invalid values are left out."""
        kind, v = coerce(value)
        if kind in (MISSING, INVALID):
            return
        if key in self.hashed_keys:
            v = keyed_hash(v, self.options.hash_key)
        elif kind == CATEGORY and len(v) > self.options.max_string_length:
            v = v[: self.options.max_string_length]
        attrs[key] = v

    def contract_attrs(self, prediction_id: str, reason: str, weight: float, low: bool, high: bool) -> dict[str, Any]:
        """The span contract's model, id and sampling attributes of a kept prediction."""
        attrs = dict(self.base_attrs)
        attrs["ml.prediction.id"] = prediction_id
        attrs["ml.sampling.reason"] = reason
        attrs["ml.sampling.weight"] = weight
        attrs["ml.low_confidence"] = low
        attrs["ml.high_risk"] = high
        return attrs

    def attr_key(self, name: Any) -> str | None:
        """The span attribute key of a feature (cached), None for a dropped one."""
        name = str(name)
        key: str | None = None
        if name not in self.options.drop_features and len(name) <= MAX_FEATURE_NAME:
            key = "ml.feature." + name
        if len(self._keys) < MAX_FEATURES:
            self._keys[name] = key
        return key

    def record_value(self, m: ModelMetrics, f: FeatureStats, name: str, value: Any) -> None:
        """The general (pure-Python) path of one feature value into the aggregates."""
        kind, v = coerce(value)
        if f.hashed and kind != MISSING:
            kind, v = CATEGORY, keyed_hash(v, self.options.hash_key)
        if kind == NUMBER:
            if f.in_metrics:
                f.hist.add(v)
        elif kind == CATEGORY:
            if len(v) > self.options.max_string_length:
                v = self.truncate(v, name)
            if f.in_metrics:
                m.count_category(f.categories, v)
        elif kind == BOOL:
            if f.in_metrics:
                m.count_category(f.categories, "true" if v else "false")
        elif kind == MISSING:
            f.missing += 1
        elif kind == NONFINITE:
            _safety.report("nonfinite_value", self.model, "model %r feature %r: non-finite value %r (kept on spans, not in histograms)",
                           self.model, name, v, key=name)
        elif kind == INVALID:
            _safety.report("invalid_value", self.model, "model %r feature %r: value of type %s is not recordable; dropped",
                           self.model, name, type(value).__name__, key=name)

    def new_feature(self, m: ModelMetrics, name: Any) -> FeatureStats | None:
        name = str(name)
        if len(name) > MAX_FEATURE_NAME:
            _safety.report("invalid_feature_name", self.model, "model %r: feature name longer than 256 characters ignored", self.model, key="long")
            return None
        in_metrics = m.feature_metrics and len(m.features) < MAX_FEATURES
        if not in_metrics and m.feature_metrics:
            _safety.report("too_many_features", self.model, "model %r: more than %d features; extra ones are on spans only", self.model, MAX_FEATURES)
        f = FeatureStats(name, name in self.options.hash_features, name in self.options.drop_features, in_metrics)
        m.features[name] = f
        return f

    def truncate(self, value: str, name: str, n: int = 1) -> str:
        limit = self.options.max_string_length
        if len(value) <= limit:
            return value
        _safety.report("truncated", self.model, "model %r %r: string of %d characters truncated to %d", self.model, name, len(value), limit,
                       key=name, n=n)
        return value[:limit]

    def _hook(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception:
            _safety.report("hook_error", self.model, "model %r: the %s hook raised", self.model, what, key=what, exc_info=True)
            return None

    def _emit(self, trace_id: int, attrs: dict[str, Any], start_ns: int, duration_ns: int, error: BaseException | None) -> None:
        handle = spans.current()
        if handle is None:  # metrics are delivered, spans have nowhere to go
            metrics.span_drops.add(self.model, self.version, REASON_NO_TRACER, SPAN_NAME)
            return
        links = spans.caller_links()
        if error is None and handle.direct is not None:
            handle.direct.emit(trace_id, SPAN_NAME, attrs, start_ns, start_ns + duration_ns, links)
            return
        span = handle.start(trace_id, SPAN_NAME, attrs, start_ns, links)
        if not span.is_recording():
            metrics.span_drops.add(self.model, self.version, REASON_HEAD_SAMPLED, SPAN_NAME)
            _safety.report("head_sampled_out", self.model,
                           "a kept prediction was dropped by the tracer's head sampler; use ParentBased(ALWAYS_ON) (modelwatch.configure does)")
            return
        end_ns = start_ns + duration_ns
        if error is not None:
            span.record_exception(error, timestamp=end_ns, escaped=True)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:1024]))
        span.end(end_time=end_ns)
