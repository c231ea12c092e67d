"""A multiclass prediction's per-class probabilities: ``ml.prediction.probability.<class>``.

Label-free performance estimation needs one probability per class. They go on
kept spans only (never in the metrics), so they are read, checked and
rendered only for a kept prediction: a dropped one costs nothing here.

Where they come from (:mod:`modelwatch.outputs` finds them, the
``probabilities=`` hook replaces them):

* one row: a list, tuple or 1-D array in class order (``predict_proba`` of one
  row), or a mapping (or pandas Series) class -> probability;
* N rows: an (N, C) numeric array in class order, a DataFrame whose columns
  are the classes, or N of the one-row forms (a ``probabilities`` column).

A class in class order is named as ``ml.prediction.value`` names the
predicted class: the estimator's ``classes_`` entry when the decorated
callable is a bound method of an estimator that has them, else the index.
``<class>`` is that class rendered as the collector's exporter renders an
attribute value (:func:`modelwatch.values.attribute_text`), so that the
analyzer can match ``Probabilities[Prediction]``.

Only models of 3 to :data:`~modelwatch.contract.MAX_PROBABILITIES` classes
record them: a binary model's ``ml.prediction.score`` already is P(class 1),
and more classes would crowd the span's attribute limit (none are recorded,
and the prediction is counted under ``too_many_classes``). A probability that is
not a finite number in [0, 1], or whose class has no text (None, NaN), is left
out and counted under ``invalid_value``; classes whose texts collide
(``1`` and ``"1"``) record none. Nothing here raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import _safety
from .contract import MAX_PROBABILITIES, probability_key
from .inputs import is_dataframe, is_ndarray, is_series
from .values import attribute_text, number_or_none

MIN_CLASSES = 3
"""Fewer classes record no per-class probabilities (a binary model has ``ml.prediction.score``)."""

Pairs = list[tuple[str, float]]


class ProbabilityRecorder:
    """Per decorated function: the attribute keys of its classes (cached) and the checks."""

    def __init__(self, model: str, owner: Any, class_name: Any, max_len: int) -> None:
        self.model = model
        self.owner = owner  # the estimator of a bound method, for its classes_
        self.class_name = class_name  # OutputReader._class_name: the single path's naming of an index
        self.max_len = max_len
        self._keys: dict[tuple[int, bool], tuple[Any, list[str | None] | None]] = {}

    # -- keys ----------------------------------------------------------------------

    def index_keys(self, c: int, batch: bool) -> list[str | None] | None:
        """The attribute keys of classes 0..c-1 as the single (or batch) path names them; None if they collide."""
        classes = getattr(self.owner, "classes_", None)
        hit = self._keys.get((c, batch))
        if hit is not None and hit[0] is classes:
            keys = hit[1]
        else:
            if batch:  # as read_batch names the argmax: classes_ only when it has one name per column
                import numpy as np

                names: Any = np.asarray(classes).tolist() if classes is not None and len(classes) == c else range(c)
            else:
                names = [self.class_name(i) for i in range(c)]
            keys = self._keys_of(names)
            self._keys[(c, batch)] = (classes, keys)
        if keys is None:
            self._collision(1)
        return keys

    def _keys_of(self, names: Any) -> list[str | None] | None:
        texts = [attribute_text(name, self.max_len) for name in names]
        named = [t for t in texts if t is not None]
        if len(set(named)) != len(named):
            return None
        return [probability_key(t) if t is not None else None for t in texts]

    # -- one row -------------------------------------------------------------------

    def row(self, raw: Any, batch: bool = False) -> Pairs | None:
        """``(key, probability)`` pairs of one row's probabilities, in class order; None when it records none."""
        if raw is None:
            return None
        try:
            return self._row(raw, batch)
        except Exception:  # a caller's mapping or sequence whose iteration raises, an odd classes_
            self._unreadable(raw)
            return None

    def _row(self, raw: Any, batch: bool) -> Pairs | None:
        if isinstance(raw, Mapping) or is_series(raw):
            items = list(raw.items())
            if not self._count_ok(len(items)):
                return None
            keys = self._keys_of([k for k, _v in items])
            if keys is None:
                self._collision(1)
                return None
            values = [v for _k, v in items]
        else:
            if is_ndarray(raw) and (raw.ndim == 1 or (raw.ndim == 2 and raw.shape[0] == 1)):
                values = raw.reshape(-1).tolist()
            elif isinstance(raw, (list, tuple)):
                values = list(raw)
            else:
                self._unreadable(raw)
                return None
            if not self._count_ok(len(values)):
                return None
            keys = self.index_keys(len(values), batch)
            if keys is None:
                return None
        pairs: Pairs = []
        for key, v in zip(keys, values):
            p = number_or_none(v)
            if key is not None and p is not None and 0.0 <= p <= 1.0:
                pairs.append((key, p))
        if len(pairs) < len(keys):
            self._invalid(len(keys) - len(pairs))
        return pairs

    # -- N rows --------------------------------------------------------------------

    def rows(self, np: Any, raw: Any, kept: list[int], n: int, what: str) -> list[Pairs | None] | None:
        """The pairs of each kept row (indices `kept` of `n`) of a batch's probabilities; None when none are recorded."""
        if raw is None:
            return None
        try:
            return self._rows(np, raw, kept, n, what)
        except Exception:  # not a table nor a sequence, a frame with a column that is not numeric, an odd classes_
            self._unreadable(raw)
            return None

    def _rows(self, np: Any, raw: Any, kept: list[int], n: int, what: str) -> list[Pairs | None] | None:
        keys = None
        items: Any = None
        if is_dataframe(raw):  # columns are the classes
            arr = raw.to_numpy(dtype=np.float64)
            keys = self._keys_of(list(raw.columns))
            if keys is None:
                self._collision(len(kept))
                return None
        elif is_ndarray(raw) and raw.ndim == 2 and raw.dtype.kind in "fiu":
            arr = raw
        else:
            arr = None
            items = raw if isinstance(raw, list) else list(raw)
        length = arr.shape[0] if arr is not None else len(items)
        if length != n:
            _safety.report("hook_error" if what == "hook" else "invalid_value", self.model,
                           "model %r: per-class probabilities of a batch of %d rows must have %d rows (got %d)",
                           self.model, n, n, length, key="probability_rows")
            return None
        if arr is None:
            return [self.row(items[i], batch=True) for i in kept]
        return self._array_rows(np, arr, keys, kept)

    def _array_rows(self, np: Any, arr: Any, keys: list[str | None] | None, kept: list[int]) -> list[Pairs | None] | None:
        c = arr.shape[1]
        if not self._count_ok(c, len(kept)):
            return None
        if keys is None:
            keys = self.index_keys(c, batch=True)
            if keys is None:
                return None
        p = arr[np.asarray(kept)].astype(np.float64, copy=False)
        ok = np.isfinite(p) & (p >= 0.0) & (p <= 1.0)
        if None in keys:
            ok &= np.array([k is not None for k in keys])
        bad = ok.size - int(np.count_nonzero(ok))
        values = p.tolist()
        if not bad:
            return [list(zip(keys, row)) for row in values]  # type: ignore[arg-type]
        self._invalid(bad)
        return [[(k, v) for k, v, good in zip(keys, row, flags) if good] for row, flags in zip(values, ok.tolist())]  # type: ignore[misc]

    # -- checks ----------------------------------------------------------------------

    def _count_ok(self, c: int, rows: int = 1) -> bool:
        if c < MIN_CLASSES:
            return False
        if c > MAX_PROBABILITIES:
            _safety.report("too_many_classes", self.model,
                           "model %r: %d classes, more than %d: no per-class probabilities are recorded",
                           self.model, c, MAX_PROBABILITIES, key="probabilities", n=rows)
            return False
        return True

    def _invalid(self, n: int) -> None:
        _safety.report("invalid_value", self.model,
                       "model %r: class probabilities that are not finite numbers in [0, 1] (or of a class with no name) left out",
                       self.model, key="probability", n=n)

    def _collision(self, n: int) -> None:
        _safety.report("invalid_value", self.model,
                       "model %r: classes whose texts are the same (e.g. 1 and '1'): no per-class probabilities are recorded",
                       self.model, key="probability_classes", n=n)

    def _unreadable(self, raw: Any) -> None:
        _safety.report("invalid_value", self.model, "model %r: class probabilities of type %s are not readable",
                       self.model, type(raw).__name__, key="probability_type")
