"""Recording one monitored call: the tail-sampling decision, the metrics, the span.

A call whose input is N rows goes to :mod:`modelwatch.batch`; one row is
recorded here, in the order that keeps a dropped prediction cheap:

1. read the output and evaluate the rules (confidence, risk, error, edge case);
2. if no rule fired, hash a fresh 128-bit trace id (the collector's
   ``probabilistic`` policy hash) against the rate;
3. the feature row is queued as a tuple (see :mod:`modelwatch.rows`) and
   folded into the metrics a block at a time;
4. only a kept prediction gets span attributes (the contract's, the outputs,
   the per-class probabilities, then the features) and becomes an OTel span,
   with the trace id that was hashed and start/end times taken around the call.

Nothing here raises into the caller: :mod:`modelwatch.decorator` calls
:func:`record` inside a guard.
"""

from __future__ import annotations

from typing import Any

from . import _safety, rows
from .batch import record_batch
from .contract import (
    OUTCOME_ERROR,
    OUTCOME_OK,
    PREDICTION_CONFIDENCE,
    PREDICTION_SCORE,
    PREDICTION_VALUE,
)
from .inputs import Batch
from .monitor import Monitor
from .outputs import Output
from .predictions import CallState, Prediction, last
from .sampling import DECISIONS, NOT_SAMPLED
from .values import BOOL, CATEGORY, INVALID, MISSING, NUMBER, coerce


def record(
    mon: Monitor,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    result: Any,
    error: BaseException | None,
    start_ns: int,
    duration_ns: int,
    state: CallState,
) -> None:
    """Record one call (which may be a batch); publish its record in :data:`~modelwatch.predictions.last`."""
    raw = mon.inputs.raw(args, kwargs)
    features = mon.inputs.interpret(raw)
    if isinstance(features, Batch):
        last.set(record_batch(mon, features, raw, result, error, start_ns, duration_ns, state))
    else:
        last.set(_record_row(mon, features, raw, args, kwargs, result, error, start_ns, duration_ns, state))


def _record_row(
    mon: Monitor, features: Any, raw: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any,
    error: BaseException | None, start_ns: int, duration_ns: int, state: CallState,
) -> Prediction:
    trace_id, random_keep = mon.sampling.ids.next_id()
    out = None if error is not None else mon.outputs.read(result)
    edge = state.edge_case
    if not edge and mon.edge_case_fn is not None and error is None:
        edge = mon.hook("edge_case", mon.edge_case_fn, raw, result) is True
    code, low, high = mon.sampling.decide(
        error is not None, out.confidence if out is not None else None, out.risk if out is not None else None, edge, random_keep)
    reason = DECISIONS[code]
    weight = mon.sampling.weight(code)

    pid = state.prediction_id
    if pid is None and mon.prediction_id_fn is not None:
        pid = mon.hook("prediction_id", mon.prediction_id_fn, *args, **kwargs)
    if pid is not None:
        pid = str(pid)

    attrs: dict[str, Any] | None = None
    if code != NOT_SAMPLED:
        attrs = mon.contract_attrs(pid if pid is not None else f"{trace_id:032x}", reason, weight, low, high)
    recorder = mon.features
    schema, values = rows.schema_for(recorder, features)
    # the queued row is a snapshot (a tuple, or a copy): the application may reuse its dict
    if schema is not None:
        row: tuple[Any, Any] = (schema, values)
        fold_at = schema.rows_per_fold
    else:
        row, fold_at = (recorder, dict(features)), rows.rows_per_fold(len(features))
    m = mon.metrics
    with m.lock:
        m.outcomes[OUTCOME_OK if error is None else OUTCOME_ERROR] += 1
        decisions = m.decisions
        decisions[reason] = decisions.get(reason, 0) + 1
        m.latency.pending.append(duration_ns / 1e9)
        if out is not None:
            _record_output(mon, out, attrs)
        queue = m.rows
        queue.append(row)
        if len(queue) >= fold_at:
            m.flush()
    if attrs is not None:
        if out is not None:
            _record_probabilities(mon, out, result, attrs)
        if schema is not None and schema.attrs_ok(values, recorder.max_len):
            attrs.update(zip(schema.attr_keys, values))
        else:
            recorder.span_attrs(features, attrs)
        mon.emit(trace_id, attrs, start_ns, duration_ns, error)
    return Prediction(pid, mon.model, mon.version, trace_id, code != NOT_SAMPLED, reason, weight)


def _record_output(mon: Monitor, out: Output, attrs: dict[str, Any] | None) -> None:
    """Prediction, score and confidence into the metrics (caller holds the lock) and, when kept, onto the span."""
    m = mon.metrics
    if out.prediction is not None:
        kind, value = coerce(out.prediction)
        if kind == NUMBER:
            m.output.pending.append(value)
        elif kind == CATEGORY:
            value = mon.features.truncate(value, PREDICTION_VALUE)
            m.count_category(m.classes, value)
        elif kind == BOOL:
            m.count_category(m.classes, "true" if value else "false")
        elif kind in (MISSING, INVALID):
            value = None
            if kind == INVALID:
                _safety.report("invalid_value", mon.model, "model %r: prediction of type %s is not recordable",
                               mon.model, type(out.prediction).__name__, key="prediction")
        if attrs is not None and value is not None:
            attrs[PREDICTION_VALUE] = value
    if out.score is not None:
        m.score.pending.append(out.score)
        if attrs is not None:
            attrs[PREDICTION_SCORE] = out.score
    if out.confidence is not None:
        m.confidence.pending.append(out.confidence)
        if attrs is not None:
            attrs[PREDICTION_CONFIDENCE] = out.confidence


def _record_probabilities(mon: Monitor, out: Output, result: Any, attrs: dict[str, Any]) -> None:
    """A kept multiclass prediction's ``ml.prediction.probability.<class>``, after the outputs, before the features."""
    fn = mon.outputs.probabilities_fn
    raw = mon.hook("probabilities", fn, result) if fn is not None else out.probabilities
    if raw is not None:
        pairs = mon.probabilities.row(raw)
        if pairs:
            attrs.update(pairs)
