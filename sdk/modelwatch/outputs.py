"""Reading prediction, score, confidence, risk and class probabilities out of an inference result.

Defaults, for one row:

* a mapping: ``prediction`` (or ``label``, ``class``, ``value``, ``output``),
  ``score`` (or ``probability``, ``proba``), ``confidence``, ``risk``,
  ``probabilities`` (a mapping class -> probability, or a list in class order);
* a vector of class probabilities (``predict_proba`` of one row: two or more
  numbers in [0, 1] summing to 1): the prediction is the most probable class
  (named by the estimator's ``classes_`` when the decorated callable is a
  bound method of one), the score is P(class 1) for two classes, the top
  probability otherwise; with three classes or more, the vector also is the
  per-class probabilities;
* a pair ``(prediction, score)`` with the score a number in [0, 1];
* anything else: the prediction itself, with no score.

Confidence, when the model does not give one, is the top class probability
rescaled from chance to certainty: ``(p_top - 1/C) / (1 - 1/C)`` for C
classes, ``|2 p - 1|`` for a binary score p. It is 0 for a coin flip and 1
for a certain prediction whatever the number of classes, so the default rule
"keep confidence below 0.5" means "closer to a coin flip than to certain"
(for a binary model: a score between 0.25 and 0.75). The raw top
probability of a binary model is never below 0.5, so the rule would never
fire on it. Risk, when not given, is the score.

Batch results (N rows) are read the same way, vectorised: a 1-D array or list
of N predictions, an (N, C) array of probabilities, a DataFrame or list of
dicts with the keys above, or a pair ``(predictions, scores)``.

Every default can be replaced by a callable of the result
(``prediction=``, ``score=``, ``confidence=``, ``risk=``); for batch calls it
returns N values. ``probabilities=`` replaces the per-class probabilities (one
row's mapping or list; for a batch an (N, C) array or N of them); it is called,
and they are checked and rendered, only for kept predictions: see
:mod:`modelwatch.probabilities`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

from .inputs import is_dataframe, is_ndarray, is_series
from .values import number_or_none

_PREDICTION_KEYS = ("prediction", "label", "class", "value", "output")
_SCORE_KEYS = ("score", "probability", "proba")


class Output:
    """What was read from one result."""

    __slots__ = ("prediction", "score", "confidence", "risk", "probabilities")

    def __init__(self) -> None:
        self.prediction: Any = None
        self.score: float | None = None
        self.confidence: float | None = None
        self.risk: float | None = None
        self.probabilities: Any = None  # as the result gives them: read by modelwatch.probabilities if kept


@dataclass
class BatchOutput:
    """What was read from a batch result: numpy arrays of N rows (None where absent)."""

    prediction: Any = None
    score: Any = None
    confidence: Any = None
    risk: Any = None
    probabilities: Any = None
    """An (N, C) array, or N rows' probabilities as the result gives them (read only for kept rows)."""


def _first_key(d: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        if k in d:
            return d[k]
    return None


def _probabilities(values: Any) -> list[float] | None:
    """The list of floats if `values` looks like one row's class probabilities."""
    if is_ndarray(values):
        if values.ndim != 1 or values.dtype.kind != "f":
            return None
        values = values.tolist()
    elif not isinstance(values, (list, tuple)) or not all(type(v) is float for v in values):
        return None
    if len(values) < 2 or not all(0.0 <= v <= 1.0 for v in values):
        return None
    return values if abs(sum(values) - 1.0) < 1e-6 else None


class OutputReader:
    """Built once per decorated function; reads single and batch results."""

    def __init__(
        self,
        fn: Callable[..., Any],
        prediction: Callable[[Any], Any] | None = None,
        score: Callable[[Any], Any] | None = None,
        confidence: Callable[[Any], Any] | None = None,
        risk: Callable[[Any], Any] | None = None,
        probabilities: Callable[[Any], Any] | None = None,
    ) -> None:
        self.owner = getattr(fn, "__self__", None)
        self._keys = (_PREDICTION_KEYS[0], _SCORE_KEYS[0])
        self.prediction_fn = prediction
        self.score_fn = score
        self.confidence_fn = confidence
        self.risk_fn = risk
        self.probabilities_fn = probabilities  # called by the recording, for kept predictions only

    def _class_name(self, index: int) -> Any:
        classes = getattr(self.owner, "classes_", None)
        if classes is not None and 0 <= index < len(classes):
            return classes[index]
        return index

    # -- one row ---------------------------------------------------------------

    def read(self, result: Any) -> Output:
        out = Output()
        if type(result) is dict or isinstance(result, Mapping):
            # the keys a model's results use are learned from the first one, then tried first
            pkey, skey = self._keys
            out.prediction = result[pkey] if pkey in result else _first_key(result, _PREDICTION_KEYS)
            out.score = number_or_none(result[skey] if skey in result else _first_key(result, _SCORE_KEYS))
            if pkey not in result or skey not in result:
                self._keys = (next((k for k in _PREDICTION_KEYS if k in result), pkey),
                              next((k for k in _SCORE_KEYS if k in result), skey))
            out.confidence = number_or_none(result.get("confidence"))
            out.risk = number_or_none(result.get("risk"))
            out.probabilities = result.get("probabilities")
        else:
            probs = _probabilities(result)
            if probs is None and is_ndarray(result) and result.ndim == 2 and result.shape[0] == 1:
                probs = _probabilities(result[0])
            if probs is not None:
                top = max(range(len(probs)), key=probs.__getitem__)
                out.prediction = self._class_name(top)
                out.score = probs[1] if len(probs) == 2 else probs[top]
                chance = 1.0 / len(probs)
                out.confidence = (probs[top] - chance) / (1.0 - chance)
                if len(probs) > 2:
                    out.probabilities = probs
            elif isinstance(result, tuple) and len(result) == 2 and number_or_none(result[1]) is not None:
                out.prediction = result[0]
                out.score = number_or_none(result[1])
            elif is_ndarray(result) and result.size == 1:
                out.prediction = result.reshape(-1)[0]
            elif isinstance(result, list) and len(result) == 1:
                out.prediction = result[0]
            else:
                out.prediction = result
        if self.prediction_fn is not None:
            out.prediction = self.prediction_fn(result)
        if self.score_fn is not None:
            out.score = number_or_none(self.score_fn(result))
        if self.confidence_fn is not None:
            out.confidence = number_or_none(self.confidence_fn(result))
        if self.risk_fn is not None:
            out.risk = number_or_none(self.risk_fn(result))
        if out.confidence is None and out.score is not None and 0.0 <= out.score <= 1.0:
            out.confidence = abs(2.0 * out.score - 1.0)
        if out.risk is None:
            out.risk = out.score
        return out

    # -- N rows ----------------------------------------------------------------

    def read_batch(self, result: Any, n: int) -> BatchOutput:
        import numpy as np  # batch inputs are numpy/pandas, so numpy is already imported

        out = BatchOutput()
        if is_dataframe(result) or (isinstance(result, list) and result and isinstance(result[0], Mapping)):
            cols = (
                {str(c): result[c].to_numpy() for c in result.columns}
                if is_dataframe(result)
                else {k: [row.get(k) for row in result] for k in result[0]}
            )
            out.prediction = _column(np, n, _first_key(cols, _PREDICTION_KEYS))
            out.score = _numeric(np, n, _first_key(cols, _SCORE_KEYS))
            out.confidence = _numeric(np, n, cols.get("confidence"))
            out.risk = _numeric(np, n, cols.get("risk"))
            out.probabilities = cols.get("probabilities")
        elif isinstance(result, tuple) and len(result) == 2:
            out.prediction = _column(np, n, result[0])
            out.score = _numeric(np, n, result[1])
        else:
            arr = result.to_numpy() if is_series(result) else np.asarray(result)
            if arr.ndim == 2 and arr.shape[0] == n and arr.shape[1] >= 2 and arr.dtype.kind == "f":
                top = arr.argmax(axis=1)
                classes = getattr(self.owner, "classes_", None)
                out.prediction = np.asarray(classes)[top] if classes is not None and len(classes) == arr.shape[1] else top
                top_p = arr[np.arange(n), top]
                chance = 1.0 / arr.shape[1]
                out.confidence = (top_p - chance) / (1.0 - chance)
                out.score = arr[:, 1] if arr.shape[1] == 2 else top_p
                if arr.shape[1] > 2:
                    out.probabilities = arr
            else:
                out.prediction = _column(np, n, arr)
        if self.prediction_fn is not None:
            out.prediction = _column(np, n, self.prediction_fn(result))
        if self.score_fn is not None:
            out.score = _numeric(np, n, self.score_fn(result))
        if self.confidence_fn is not None:
            out.confidence = _numeric(np, n, self.confidence_fn(result))
        if self.risk_fn is not None:
            out.risk = _numeric(np, n, self.risk_fn(result))
        if out.confidence is None and out.score is not None:
            in_unit = (out.score >= 0.0) & (out.score <= 1.0)
            out.confidence = np.where(in_unit, np.abs(2.0 * out.score - 1.0), np.nan)
        if out.risk is None:
            out.risk = out.score
        return out


def _column(np: Any, n: int, values: Any) -> Any:
    """N values of a batch result as a 1-D array (a scalar is repeated), None if absent."""
    if values is None:
        return None
    arr = np.asarray(values)
    if arr.ndim == 0:
        arr = np.full(n, arr.item())
    arr = arr.reshape(-1) if arr.ndim > 1 and arr.shape[1:] == (1,) * (arr.ndim - 1) else arr
    if arr.shape[0] != n:
        raise ValueError(f"result has {arr.shape[0]} rows for {n} inputs")
    return arr


def _numeric(np: Any, n: int, values: Any) -> Any:
    """Like :func:`_column`, as float64; None when absent or not numeric."""
    arr = _column(np, n, values)
    if arr is None:
        return None
    try:
        return arr.astype(np.float64)
    except (TypeError, ValueError):
        return None
