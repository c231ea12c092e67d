"""``@monitor``: the one decorator for inference code.

Recording lives in :mod:`modelwatch.record` (with the decorated function's
:class:`~modelwatch.monitor.Monitor`); the two thin wrappers here (sync and
async, chosen once at decoration time) time the call, run it, and hand the
outcome over inside a guard. The application's own
exception propagates untouched (same object, same traceback); a failure of
modelwatch's own code is logged once, counted, and swallowed.
"""

from __future__ import annotations

import functools
import inspect
import time
from typing import Any, Callable, Sequence, TypeVar, overload

from . import _safety, spans
from .config import RecordingOptions, SamplingPolicy, sdk_disabled
from .errors import ConfigurationError
from .inputs import InputReader
from .metrics import delivery_installed
from .monitor import Monitor
from .outputs import OutputReader
from .predictions import CallState, call_state, forget_last
from .record import record

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__modelwatch_monitor__"
_perf = time.perf_counter_ns
_wall = time.time_ns


_DISABLED = sdk_disabled()


def _active() -> bool:
    return not _DISABLED and (spans.current() is not None or delivery_installed())


@overload
def monitor(func: F, /) -> F: ...
@overload
def monitor(func: None = None, /, **options: Any) -> Callable[[F], F]: ...


# The longest function here only by its public signature and the docstring that documents it; its body is short.
def monitor(
    func: Callable[..., Any] | None = None,
    /,
    *,
    model: str | None = None,
    version: str = "",
    features: str | Callable[..., Any] | None = None,
    feature_names: Sequence[str] | None = None,
    prediction: Callable[[Any], Any] | None = None,
    score: Callable[[Any], Any] | None = None,
    confidence: Callable[[Any], Any] | None = None,
    risk: Callable[[Any], Any] | None = None,
    probabilities: Callable[[Any], Any] | None = None,
    edge_case: Callable[..., Any] | None = None,
    prediction_id: Callable[..., Any] | None = None,
    sampling_rate: float | None = None,
    low_confidence_threshold: float | None = None,
    high_risk_threshold: float | None = None,
    drop_features: Sequence[str] | None = None,
    hash_features: Sequence[str] | None = None,
    max_string_length: int | None = None,
    max_categories: int | None = None,
    feature_metrics: bool | None = None,
) -> Any:
    """Monitor an inference function: count every prediction, keep the interesting ones as spans.

    Works on functions, ``async`` functions, methods, and bound methods such as
    an sklearn estimator's ``predict`` or ``predict_proba``
    (``clf.predict_proba = monitor(clf.predict_proba, model="churn")``)::

        @modelwatch.monitor(model="churn", version="3")
        def predict(features: dict) -> dict:
            ...

    Args:
        model: ``ml.model.name`` (default: the function's qualified name).
        version: ``ml.model.version``.
        features: where the features are: None (the first argument, or the
            keyword arguments), an argument name, or ``callable(*args, **kwargs)``.
            See :mod:`modelwatch.inputs` for the input types understood.
        feature_names: column names for numpy arrays and lists.
        prediction, score, confidence, risk: ``callable(result)`` overriding the
            defaults of :mod:`modelwatch.outputs` (for a batch, returning N values).
        probabilities: ``callable(result)`` returning a multiclass model's
            per-class probabilities, ``ml.prediction.probability.<class>``: a
            mapping class -> probability or a list in class order (for a batch,
            an (N, C) array or N of those); called for kept predictions only.
        edge_case: ``callable(features_input, result)`` returning True (or N
            booleans for a batch) for rows the application wants always kept.
            Inside the call, :func:`modelwatch.mark_edge_case` does the same.
        prediction_id: ``callable(*args, **kwargs)`` returning the id to use
            (N ids for a batch); by default a random 128-bit hex id.
        sampling_rate, low_confidence_threshold, high_risk_threshold: tail
            sampling (see :class:`~modelwatch.config.SamplingPolicy`).
        drop_features, hash_features: privacy: never record, or record a keyed hash.
        max_string_length, max_categories, feature_metrics: recording limits.
    """
    policy = SamplingPolicy.resolve(sampling_rate, low_confidence_threshold, high_risk_threshold)
    options = RecordingOptions.resolve(drop_features, hash_features, max_string_length, max_categories, feature_metrics)
    _check(model, version, prediction=prediction, score=score, confidence=confidence, risk=risk,
           probabilities=probabilities, edge_case=edge_case, prediction_id=prediction_id)

    def decorate(fn: F) -> F:
        if not callable(fn):
            raise ConfigurationError(f"monitor() needs a callable, got {type(fn).__name__}")
        if getattr(fn, _MARK, None) is not None:
            _safety.logger.debug("modelwatch: %r is already monitored; not wrapping twice", fn)
            return fn
        name = model or getattr(fn, "__qualname__", None) or type(fn).__name__
        mon = Monitor(
            name, version, policy, options,
            InputReader(fn, features, feature_names),
            OutputReader(fn, prediction, score, confidence, risk, probabilities),
            edge_case, prediction_id,
        )
        wrapper = _async_wrapper(fn, mon) if inspect.iscoroutinefunction(fn) else _sync_wrapper(fn, mon)
        setattr(wrapper, _MARK, mon)
        return wrapper  # type: ignore[return-value]

    if func is not None:
        return decorate(func)
    return decorate


def _check(model: str | None, version: str, **hooks: Any) -> None:
    """Raise :class:`~modelwatch.errors.ConfigurationError` for an argument of :func:`monitor` that cannot work."""
    if model is not None and (not isinstance(model, str) or not model):
        raise ConfigurationError("model must be a non-empty string")
    if not isinstance(version, str):
        raise ConfigurationError("version must be a string")
    for name, hook in hooks.items():
        if hook is not None and not callable(hook):
            raise ConfigurationError(f"{name} must be callable")


def _begin() -> tuple[CallState, Any, int, int]:
    state = CallState()
    return state, call_state.set(state), _wall(), _perf()


def _end(mon: Monitor, begun: tuple[CallState, Any, int, int], args: Any, kwargs: Any,
         result: Any, error: BaseException | None) -> None:
    duration = _perf() - begun[3]
    state, token, wall0, _t0 = begun
    if error is not None and not isinstance(error, Exception):
        call_state.reset(token)
        forget_last()
        return  # KeyboardInterrupt, SystemExit, GeneratorExit, CancelledError: not a prediction
    try:
        call_state.reset(token)
        record(mon, args, kwargs, result, error, wall0, duration, state)
    except Exception:
        _safety.report("internal_error", mon.model, "recording a prediction of model %r failed", mon.model,
                       key="record", exc_info=True)
        forget_last()


def _sync_wrapper(fn: Callable[..., Any], mon: Monitor) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _active():
            forget_last()  # last_prediction() must not return an older, recorded call's prediction
            return fn(*args, **kwargs)
        begun = _begin()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            _end(mon, begun, args, kwargs, None, exc)
            raise
        _end(mon, begun, args, kwargs, result, None)
        return result

    return wrapper


def _async_wrapper(fn: Callable[..., Any], mon: Monitor) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _active():
            forget_last()
            return await fn(*args, **kwargs)
        begun = _begin()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            _end(mon, begun, args, kwargs, None, exc)
            raise
        _end(mon, begun, args, kwargs, result, None)
        return result

    return wrapper


def monitor_of(fn: Callable[..., Any]) -> Monitor | None:
    """The :class:`Monitor` behind a decorated function, if it is one."""
    return getattr(fn, _MARK, None)
