"""Batch calls: N rows predicted in one call become N predictions.

Everything that touches all N rows is vectorised with numpy (only reached when
the input already is a numpy array or a DataFrame, so numpy is imported by the
application): reading outputs, the rules, 128-bit trace ids and their
FNV-1a hashes, and the metrics (histograms fold whole columns, categories are
counted with one hash count per column). Python-level work
is spent on kept rows only, which become spans exactly like single predictions.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from . import _safety
from .contract import (
    BATCH_SIZE,
    OUTCOME_ERROR,
    OUTCOME_OK,
    PREDICTION_CONFIDENCE,
    PREDICTION_SCORE,
    PREDICTION_VALUE,
    REASON_ERROR,
)
from .exphist_fold import fold_columns
from .features import FeatureRecorder
from .inputs import Batch
from .metrics import ModelMetrics
from .monitor import Monitor
from .predictions import BatchPredictions, CallState
from .rows import fold_number_column
from .sampling import DECISIONS, ERROR, NOT_SAMPLED, random_ids
from .values import BOOL, CATEGORY, MISSING, NUMBER, coerce, keyed_hash


def record_batch(
    mon: Monitor, batch: Batch, raw: Any, result: Any, error: BaseException | None,
    start_ns: int, duration_ns: int, state: CallState,
) -> BatchPredictions:
    """Record a call of N rows: N decisions, the metrics of all rows, a span per kept row."""
    import numpy as np

    n = batch.n
    hi, lo = random_ids(np, n)
    ids = _user_ids(mon, state, batch, n)
    if error is not None:
        return _record_failed(np, mon, n, hi, lo, ids, error, start_ns, duration_ns)

    out = mon.outputs.read_batch(result, n)
    edge = _edge_flags(np, mon, state, batch, result, n)
    rand = mon.sampling.ids.keep_many(hi, lo)
    codes, weights, low, high = mon.sampling.decide_many(np, out.confidence, out.risk, edge, rand)

    m = mon.metrics
    with m.lock:
        m.outcomes[OUTCOME_OK] += n
        for code, c in enumerate(np.bincount(codes, minlength=len(DECISIONS)).tolist()):
            if c:
                m.decision(DECISIONS[code], c)
        m.latency.add(duration_ns / 1e9)
        _fold(np, m.score, out.score)
        _fold(np, m.confidence, out.confidence)
        _count_predictions(np, mon.features, m, out.prediction)
        feature_metrics(np, mon.features, m, batch)

    kept_idx = np.flatnonzero(codes != NOT_SAMPLED).tolist()
    if kept_idx:
        _emit_rows(np, mon, batch, result, out, kept_idx, hi, lo, codes, weights, low, high, ids, start_ns, duration_ns)
    return BatchPredictions(mon.model, mon.version, hi, lo, codes, weights, ids)


def _record_failed(
    np: Any, mon: Monitor, n: int, hi: Any, lo: Any, ids: list[str] | None, error: BaseException, start_ns: int, duration_ns: int,
) -> BatchPredictions:
    """A batch call that raised: N errors, one error span for the call (it carries ``ml.batch.size``)."""
    m = mon.metrics
    with m.lock:
        m.outcomes[OUTCOME_ERROR] += n
        m.decision(REASON_ERROR, n)
        m.latency.add(duration_ns / 1e9)
    trace_id = (int(hi[0]) << 64) | int(lo[0])
    attrs = mon.contract_attrs(ids[0] if ids else f"{trace_id:032x}", REASON_ERROR, 1.0, False, False)
    attrs[BATCH_SIZE] = n
    mon.emit(trace_id, attrs, start_ns, duration_ns, error)
    return BatchPredictions(mon.model, mon.version, hi, lo, np.full(n, ERROR, dtype=np.int8), np.ones(n), ids)


def _edge_flags(np: Any, mon: Monitor, state: CallState, batch: Batch, result: Any, n: int) -> Any:
    """N booleans: the rows the application flagged as edge cases (all of them after :func:`modelwatch.mark_edge_case`)."""
    if state.edge_case:
        return np.ones(n, dtype=bool)
    edge = np.zeros(n, dtype=bool)
    if mon.edge_case_fn is not None:
        flags = mon.hook("edge_case", mon.edge_case_fn, batch.frame, result)
        if flags is not None:
            try:
                edge = np.asarray(flags, dtype=bool).reshape(n)
            except (TypeError, ValueError):
                _safety.report("hook_error", mon.model, "model %r: edge_case must return %d booleans for a batch", mon.model, n,
                               key="edge_shape")
    return edge


def _user_ids(mon: Monitor, state: CallState, batch: Batch, n: int) -> list[str] | None:
    given = state.prediction_id
    if given is None and mon.prediction_id_fn is not None:
        given = mon.hook("prediction_id", mon.prediction_id_fn, batch.frame)
    if given is None:
        return None
    try:
        ids = [str(v) for v in given]
    except TypeError:
        ids = []
    if len(ids) != n:
        _safety.report("hook_error", mon.model, "model %r: prediction ids for a batch of %d rows must be %d values", mon.model, n, n,
                       key="ids_shape")
        return None
    return ids


def _fold(np: Any, hist: Any, values: Any) -> None:
    if values is None:
        return
    finite = values[np.isfinite(values)]
    if finite.size:
        hist.add_array(finite)


def _numeric(np: Any, col: Any) -> Any:
    """A float64 view of a column, or None when it is not numeric."""
    arr = np.asarray(col)
    if arr.dtype.kind in "fiu":
        return arr.astype(np.float64, copy=False)
    return None


def _count_predictions(np: Any, rec: FeatureRecorder, m: ModelMetrics, pred: Any) -> None:
    if pred is None:
        return
    num = _numeric(np, pred)
    if num is not None:
        _fold(np, m.output, num)
        return
    _count_categories(np, rec, m, m.classes, np.asarray(pred), PREDICTION_VALUE)


def _count_categories(
    np: Any, rec: FeatureRecorder, m: ModelMetrics, counts: dict[str, int], arr: Any, name: str, hashed: bool = False,
) -> int:
    """Count a categorical column into a capped counter; return how many values were missing."""
    if arr.dtype.kind == "b":
        t = int(np.count_nonzero(arr))
        if t:
            m.count_category(counts, "true", t)
        if arr.size - t:
            m.count_category(counts, "false", arr.size - t)
        return 0
    # a hash count over the values (None and NaN become MISSING below); faster than sorting
    # (np.unique) or pandas' value_counts, which re-infers a string dtype first
    missing = 0
    limit = rec.max_len
    for v, c in Counter(arr.tolist()).items():
        kind, plain = coerce(v)
        if kind == MISSING:
            missing += c
            continue
        if kind == BOOL:
            plain = "true" if plain else "false"
        text = plain if isinstance(plain, str) else str(plain)
        if hashed:
            text = keyed_hash(text, rec.options.hash_key)
        elif len(text) > limit:
            text = rec.truncate(text, name, n=c)
        m.count_category(counts, text, c)
    return missing


CHUNK_ROWS = 8192  # rows per 2-D fold: the block's temporaries stay in the CPU cache


def feature_metrics(np: Any, rec: FeatureRecorder, m: ModelMetrics, batch: Batch) -> None:
    """Every column of a batch into the feature aggregates (caller holds ``m.lock``)."""
    n = batch.n
    together: list[tuple[Any, Any]] = []  # all-finite numeric columns, folded as one 2-D array
    for name, col in batch.columns.items():
        f = rec.stats(m, name)
        if f is None:
            continue
        hashed = name in rec.hashed
        arr = np.asarray(col)
        num = None if hashed else _numeric(np, arr)
        if num is not None:
            if f.in_metrics and np.isfinite(num).all():
                together.append((f.hist, num))
            else:
                fold_number_column(rec, np, f, name, num)
            continue
        if not f.in_metrics:
            continue
        f.missing += _count_categories(np, rec, m, f.categories, arr, name, hashed=hashed)
    if together:
        hists = [h for h, _col in together]
        for start in range(0, n, CHUNK_ROWS):
            block = np.stack([col[start:start + CHUNK_ROWS] for _h, col in together])
            fold_columns(np, hists, block)
    m.count_absent(batch.columns, n)


def _clean(values: list[Any], limit: int) -> bool:
    """Whether a kept column's Python values can become span attributes exactly as they are."""
    types = set(map(type, values))
    if types <= {float, int}:
        total = sum(values)
        if total - total != 0.0:  # a NaN or an infinity (or an overflow): value by value
            return False
        ints = [v for v in values if type(v) is int] if int in types else None
        return not ints or (min(ints) >= -(2**63) and max(ints) < 2**63)
    if types == {str}:
        return max(map(len, values)) <= limit
    return types == {bool}


def _emit_rows(
    np: Any, mon: Monitor, batch: Batch, result: Any, out: Any, kept_idx: list[int], hi: Any, lo: Any, codes: Any,
    weights: Any, low: Any, high: Any, ids: list[str] | None, start_ns: int, duration_ns: int,
) -> None:
    """The kept rows' spans, built column-wise: the columns that need no coercion are zipped as they are."""
    k = np.asarray(kept_idx)
    rec = mon.features
    limit = rec.max_len
    clean_keys: list[str] = []
    clean_cols: list[list[Any]] = []
    other: list[tuple[str, list[Any]]] = []
    for name, col in batch.columns.items():
        key = rec.attr_key(name)
        if key is None:
            continue
        values = np.asarray(col)[k].tolist() if not isinstance(col, list) else [col[i] for i in kept_idx]
        if key not in rec.hashed_keys and _clean(values, limit):
            clean_keys.append(key)
            clean_cols.append(values)
        else:
            other.append((key, values))
    clean_rows = list(zip(*clean_cols)) if clean_cols else None
    pred = out.prediction[k].tolist() if out.prediction is not None else None
    score = out.score[k].tolist() if out.score is not None else None
    conf = out.confidence[k].tolist() if out.confidence is not None else None
    probs = _kept_probabilities(np, mon, result, out, kept_idx, batch.n)
    his, los = hi[k].tolist(), lo[k].tolist()
    rs, ws, lows, highs = codes[k].tolist(), weights[k].tolist(), low[k].tolist(), high[k].tolist()
    for j, i in enumerate(kept_idx):
        trace_id = (his[j] << 64) | los[j]
        attrs = mon.contract_attrs(ids[i] if ids is not None else f"{trace_id:032x}", DECISIONS[rs[j]], ws[j], lows[j], highs[j])
        if pred is not None:
            kind, v = coerce(pred[j])
            if kind in (NUMBER, CATEGORY, BOOL):
                attrs[PREDICTION_VALUE] = v[:limit] if kind == CATEGORY else v
        if score is not None and score[j] == score[j]:
            attrs[PREDICTION_SCORE] = score[j]
        if conf is not None and conf[j] == conf[j]:
            attrs[PREDICTION_CONFIDENCE] = conf[j]
        if probs is not None and probs[j]:
            attrs.update(probs[j])
        if clean_rows is not None:
            attrs.update(zip(clean_keys, clean_rows[j]))
        for key, values in other:
            rec.set_attr(attrs, key, values[j])
        mon.emit(trace_id, attrs, start_ns, duration_ns, None)


def _kept_probabilities(np: Any, mon: Monitor, result: Any, out: Any, kept_idx: list[int], n: int) -> list[Any] | None:
    """Each kept row's ``(ml.prediction.probability.<class>, p)`` pairs (the ``probabilities=`` hook's, else the result's)."""
    fn = mon.outputs.probabilities_fn
    if fn is not None:
        raw = mon.hook("probabilities", fn, result)
        return mon.probabilities.rows(np, raw, kept_idx, n, "hook") if raw is not None else None
    return mon.probabilities.rows(np, out.probabilities, kept_idx, n, "result")
