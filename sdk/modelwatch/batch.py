"""Batch calls: N rows predicted in one call become N predictions.

Everything that touches all N rows is vectorised with numpy (only reached when
the input already is a numpy array or a DataFrame, so numpy is imported by the
application): reading outputs, the rules, 128-bit trace ids and their
FNV-1a hashes, and the metrics (histograms fold whole columns, categories are
counted with one ``value_counts``/``unique`` per column). Python-level work
is spent on kept rows only, which become spans exactly like single predictions.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

from . import _safety
from .exphist import fold_columns
from .inputs import Batch
from .monitor import CallState, Monitor, Prediction
from .rows import fold_number_column
from .sampling import (
    random_ids,
    REASON_EDGE_CASE,
    REASON_ERROR,
    REASON_HIGH_RISK,
    REASON_LOW_CONFIDENCE,
    REASON_NOT_SAMPLED,
    REASON_RANDOM,
)
from .values import BOOL, CATEGORY, MISSING, NUMBER, coerce, keyed_hash

_REASONS = (REASON_NOT_SAMPLED, REASON_ERROR, REASON_LOW_CONFIDENCE, REASON_HIGH_RISK, REASON_EDGE_CASE, REASON_RANDOM)
class BatchPredictions(Sequence[Prediction]):
    """What was recorded of a batch call: a sequence of :class:`Prediction`, built lazily.

    ``ids`` lists every row's prediction id (in input order), ``kept`` is a
    boolean numpy array, ``kept_ids`` the ids of the rows that became spans.
    """

    def __init__(self, model: str, version: str, hi: Any, lo: Any, reasons: Any, weights: Any, ids: list[str] | None) -> None:
        self.model = model
        self.version = version
        self._hi = hi
        self._lo = lo
        self._reasons = reasons
        self._weights = weights
        self._ids = ids
        self.kept = reasons != 0

    def trace_id(self, i: int) -> str:
        return f"{int(self._hi[i]):016x}{int(self._lo[i]):016x}"

    @property
    def ids(self) -> list[str]:
        if self._ids is None:
            self._ids = [f"{h:016x}{l:016x}" for h, l in zip(self._hi.tolist(), self._lo.tolist())]
        return self._ids

    @property
    def kept_ids(self) -> list[str]:
        ids = self.ids
        return [ids[i] for i in self.kept.nonzero()[0].tolist()]

    def __len__(self) -> int:
        return len(self._reasons)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        r = int(self._reasons[i])
        trace_id = (int(self._hi[i]) << 64) | int(self._lo[i])
        return Prediction(self.ids[i], self.model, self.version, trace_id, r != 0, _REASONS[r], float(self._weights[i]))


def record_batch(
    mon: Monitor, batch: Batch, raw: Any, result: Any, error: BaseException | None,
    start_ns: int, duration_ns: int, state: CallState,
) -> BatchPredictions:
    import numpy as np

    n = batch.n
    m = mon.metrics
    hi, lo = random_ids(np, n)
    ids = _user_ids(mon, state, batch, n)

    if error is not None:
        reasons = np.full(n, 1, dtype=np.int8)
        weights = np.ones(n)
        with m.lock:
            m.outcomes["error"] += n
            m.decision(REASON_ERROR, n)
            m.latency.add(duration_ns / 1e9)
        trace_id = (int(hi[0]) << 64) | int(lo[0])
        attrs = mon.contract_attrs(ids[0] if ids else f"{trace_id:032x}", REASON_ERROR, 1.0, False, False)
        attrs["ml.batch.size"] = n
        mon._emit(trace_id, attrs, start_ns, duration_ns, error)
        return BatchPredictions(mon.model, mon.version, hi, lo, reasons, weights, ids)

    out = mon.outputs.read_batch(result, n)
    with np.errstate(invalid="ignore"):
        low = (out.confidence < mon.low) if out.confidence is not None else np.zeros(n, dtype=bool)
        high = (out.risk > mon.high) if out.risk is not None else np.zeros(n, dtype=bool)
    if state.edge_case:
        edge = np.ones(n, dtype=bool)
    elif mon.edge_case_fn is not None:
        flags = mon._hook("edge_case", mon.edge_case_fn, batch.frame, result)
        edge = np.zeros(n, dtype=bool)
        if flags is not None:
            try:
                edge = np.asarray(flags, dtype=bool).reshape(n)
            except (TypeError, ValueError):
                _safety.report("hook_error", mon.model, "model %r: edge_case must return %d booleans for a batch", mon.model, n, key="edge_shape")
    else:
        edge = np.zeros(n, dtype=bool)
    rand = mon.sampler.keep_many(hi, lo)
    # reason codes by precedence: low confidence, high risk, edge case, random
    reasons = np.where(low, 2, np.where(high, 3, np.where(edge, 4, np.where(rand, 5, 0)))).astype(np.int8)
    weights = np.where(reasons == 5, mon.sampler.weight, 1.0)

    with m.lock:
        m.outcomes["ok"] += n
        counts = np.bincount(reasons, minlength=6).tolist()
        for code, c in enumerate(counts):
            if c:
                m.decision(_REASONS[code], c)
        m.latency.add(duration_ns / 1e9)
        _fold(np, m.score, out.score)
        _fold(np, m.confidence, out.confidence)
        _count_predictions(np, mon, m, out.prediction)
        feature_metrics(np, mon, m, batch)

    kept_idx = np.flatnonzero(reasons).tolist()
    if kept_idx:
        _emit_rows(np, mon, batch, out, kept_idx, hi, lo, reasons, weights, low, high, ids, start_ns, duration_ns)
    return BatchPredictions(mon.model, mon.version, hi, lo, reasons, weights, ids)


def _user_ids(mon: Monitor, state: CallState, batch: Batch, n: int) -> list[str] | None:
    given = state.prediction_id
    if given is None and mon.prediction_id_fn is not None:
        given = mon._hook("prediction_id", mon.prediction_id_fn, batch.frame)
    if given is None:
        return None
    try:
        ids = [str(v) for v in given]
    except TypeError:
        ids = []
    if len(ids) != n:
        _safety.report("hook_error", mon.model, "model %r: prediction ids for a batch of %d rows must be %d values", mon.model, n, n, key="ids_shape")
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


def _count_predictions(np: Any, mon: Monitor, m: Any, pred: Any) -> None:
    if pred is None:
        return
    num = _numeric(np, pred)
    if num is not None:
        _fold(np, m.output, num)
        return
    _count_categories(np, mon, m, m.classes, np.asarray(pred), "ml.prediction.value")


def _count_categories(np: Any, mon: Monitor, m: Any, counts: dict[str, int], arr: Any, name: str, hashed: bool = False) -> int:
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
    limit = mon.options.max_string_length
    for v, c in Counter(arr.tolist()).items():
        kind, plain = coerce(v)
        if kind == MISSING:
            missing += c
            continue
        if kind == BOOL:
            plain = "true" if plain else "false"
        text = plain if isinstance(plain, str) else str(plain)
        if hashed:
            text = keyed_hash(text, mon.options.hash_key)
        elif len(text) > limit:
            text = mon.truncate(text, name, n=c)
        m.count_category(counts, text, c)
    return missing


CHUNK_ROWS = 8192  # rows per 2-D fold: the block's temporaries stay in the CPU cache


def feature_metrics(np: Any, mon: Monitor, m: Any, batch: Batch) -> None:
    """Every column of a batch into the feature aggregates (caller holds ``m.lock``)."""
    stats = m.features
    n = batch.n
    together: list[tuple[Any, Any]] = []  # all-finite numeric columns, folded as one 2-D array
    for name, col in batch.columns.items():
        f = stats.get(name)
        if f is None:
            f = mon.new_feature(m, name)
            if f is None:
                continue
        if f.dropped:
            continue
        arr = np.asarray(col)
        num = None if f.hashed else _numeric(np, arr)
        if num is not None:
            if f.in_metrics and np.isfinite(num).all():
                together.append((f.hist, num))
            else:
                fold_number_column(mon, np, f, name, num)
            continue
        if not f.in_metrics:
            continue
        f.missing += _count_categories(np, mon, m, f.categories, arr, name, hashed=f.hashed)
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
    np: Any, mon: Monitor, batch: Batch, out: Any, kept_idx: list[int], hi: Any, lo: Any, reasons: Any,
    weights: Any, low: Any, high: Any, ids: list[str] | None, start_ns: int, duration_ns: int,
) -> None:
    k = np.asarray(kept_idx)
    stats = mon.metrics.features
    limit = mon.options.max_string_length
    clean_keys: list[str] = []
    clean_cols: list[list[Any]] = []
    other: list[tuple[Any, list[Any]]] = []
    for name, col in batch.columns.items():
        f = stats.get(name)
        if f is None or f.dropped:
            continue
        values = np.asarray(col)[k].tolist() if not isinstance(col, list) else [col[i] for i in kept_idx]
        if not f.hashed and _clean(values, limit):
            clean_keys.append(f.key)
            clean_cols.append(values)
        else:
            other.append((f, values))
    clean_rows = list(zip(*clean_cols)) if clean_cols else None
    pred = out.prediction[k].tolist() if out.prediction is not None else None
    score = out.score[k].tolist() if out.score is not None else None
    conf = out.confidence[k].tolist() if out.confidence is not None else None
    his, los = hi[k].tolist(), lo[k].tolist()
    rs, ws, lows, highs = reasons[k].tolist(), weights[k].tolist(), low[k].tolist(), high[k].tolist()
    for j, i in enumerate(kept_idx):
        trace_id = (his[j] << 64) | los[j]
        attrs = mon.contract_attrs(ids[i] if ids is not None else f"{trace_id:032x}", _REASONS[rs[j]], ws[j], lows[j], highs[j])
        if pred is not None:
            kind, v = coerce(pred[j])
            if kind in (NUMBER, CATEGORY, BOOL):
                attrs["ml.prediction.value"] = v[:limit] if kind == CATEGORY else v
        if score is not None and score[j] == score[j]:
            attrs["ml.prediction.score"] = score[j]
        if conf is not None and conf[j] == conf[j]:
            attrs["ml.prediction.confidence"] = conf[j]
        if clean_rows is not None:
            attrs.update(zip(clean_keys, clean_rows[j]))
        for f, values in other:
            mon.set_attr(attrs, f.key, values[j])
        mon._emit(trace_id, attrs, start_ns, duration_ns, None)
