"""Direct loss estimation: a model of a regressor's error, fitted on labelled reference rows.

For a regressor there is no probability to read; instead a second model
learns, on the reference, the expected absolute error ``E[|y − ŷ| | x, ŷ]``
and squared error ``E[(y − ŷ)² | x, ŷ]`` from the features and the
prediction (scikit-learn's ``HistGradientBoostingRegressor``, squared
loss; a sampled reference is first resampled in proportion to the
sampling weights, which fits the same expectation far faster than weighted
fitting). Four such models are fitted, each on its own rows of the
reference (disjoint, up to 20,000 each): per window the estimated MAE and MSE
are the weighted means of their expectations over its predictions, and the
spread of the four members' window means stands for the loss model's own
error, which goes into the band next to the sampling error (a single fitted model
is off by about 1% on a fresh window, systematically across windows; the
sampling error of a 5,000-row window is of the same order). RMSE is √MSE.

A fitted model is stored as data, never pickled: its trees' node arrays
(children, split feature, threshold, leaf value) and the initial
prediction, plus how the
inputs were encoded (:class:`Encoding`: a numeric column as is, a missing
value as a number below the reference's minimum; a categorical column as
the rank of its category by reference frequency, unseen and missing as
-1). Prediction walks the trees in numpy, so loading a stored estimator runs
no code from the store.

The spread of a row's realized loss around the model's expectation is
taken from held-out reference rows (a fifth, not used to fit) as a ratio ``κ = mean((loss − f)²) /
mean(f²)``, so a window's band (see :mod:`.cbpe` for the two variance terms)
scales with the losses the model expects there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

TREES = 100
LEAVES = 15
LEARNING_RATE = 0.1
MAX_FIT_ROWS = 20_000
MEMBERS = 4
"""Loss models per estimator, each fitted on its own rows (their spread is the model's own error)."""
MIN_MEMBER_ROWS = 2_000
HOLDOUT = 0.2
PREDICTION = "prediction.value"
"""The input column of the model's own prediction (next to the features)."""


@dataclass
class Encoding:
    """How one input column becomes a number for the trees."""

    name: str
    kind: str  # numeric | categorical
    missing: float = -1.0  # numeric: the value standing for a missing one
    categories: dict[str, int] = field(default_factory=dict)

    def encode(self, values: Sequence[Any]) -> np.ndarray:
        if self.kind == "numeric":
            x = np.asarray(values, float)
            return np.where(np.isfinite(x), x, self.missing)
        return np.array([self.categories.get(v, -1) if v not in (None, "") else -1 for v in values], float)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "missing": self.missing, "categories": self.categories}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Encoding:
        return cls(d["name"], d["kind"], float(d.get("missing", -1.0)), {str(k): int(v) for k, v in d.get("categories", {}).items()})


def encoding(name: str, values: Sequence[Any], numeric: bool) -> Encoding:
    if numeric:
        x = np.asarray(values, float)
        fin = x[np.isfinite(x)]
        lo, hi = (float(fin.min()), float(fin.max())) if fin.size else (0.0, 0.0)
        return Encoding(name, "numeric", lo - 1.0 - (hi - lo))
    counts: dict[str, int] = {}
    for v in values:
        if v not in (None, ""):
            counts[str(v)] = counts.get(str(v), 0) + 1
    ranked = sorted(counts, key=lambda k: (-counts[k], k))
    return Encoding(name, "categorical", categories={k: i for i, k in enumerate(ranked)})


@dataclass
class Trees:
    """A fitted gradient-boosted regression model as arrays (see the module docstring)."""

    init: float
    rate: float
    left: list[np.ndarray]
    right: list[np.ndarray]
    feature: list[np.ndarray]
    threshold: list[np.ndarray]
    value: list[np.ndarray]

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = np.full(x.shape[0], self.init)
        rows = np.arange(x.shape[0])
        for left, right, feat, thr, val in zip(self.left, self.right, self.feature, self.threshold, self.value):
            node = np.zeros(x.shape[0], dtype=np.int64)
            while True:
                inner = left[node] >= 0
                if not inner.any():
                    break
                go_left = x[rows, np.maximum(feat[node], 0)] <= thr[node]
                node = np.where(inner, np.where(go_left, left[node], right[node]), node)
            out += self.rate * val[node]
        return out

    def to_json(self) -> dict[str, Any]:
        return {"init": self.init, "rate": self.rate,
                "trees": [{"left": a.tolist(), "right": b.tolist(), "feature": c.tolist(), "threshold": d.tolist(),
                           "value": e.tolist()} for a, b, c, d, e in
                          zip(self.left, self.right, self.feature, self.threshold, self.value)]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Trees:
        trees = d["trees"]
        return cls(float(d["init"]), float(d["rate"]), [np.asarray(t["left"], np.int64) for t in trees],
                   [np.asarray(t["right"], np.int64) for t in trees], [np.asarray(t["feature"], np.int64) for t in trees],
                   [np.asarray(t["threshold"], float) for t in trees], [np.asarray(t["value"], float) for t in trees])


def fit_trees(x: np.ndarray, target: np.ndarray, w: np.ndarray, seed: int = 0) -> Trees:
    """A ``HistGradientBoostingRegressor`` (squared loss, no early stopping) fitted and copied into :class:`Trees`.

    The copy reads the fitted predictors' node arrays (``_predictors``,
    ``_baseline_prediction``: scikit-learn's internals, stable since 0.21);
    tests/analyzer/test_estimation.py checks that :meth:`Trees.predict` gives
    the model's own predictions, so a scikit-learn that changes them fails
    there, not silently.
    """
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(max_iter=TREES, max_leaf_nodes=LEAVES, learning_rate=LEARNING_RATE,
                                          early_stopping=False, random_state=seed)
    # equal weights are passed as none: scikit-learn's weighted binning is an order of magnitude slower
    model.fit(x, target, sample_weight=w if w.size and w.max() > w.min() else None)
    return copy_trees(model)


def copy_trees(model: Any) -> Trees:
    """A fitted ``HistGradientBoostingRegressor``'s trees as :class:`Trees` (see :func:`fit_trees`)."""
    nodes = [p[0].nodes for p in model._predictors]
    leaf = [n["is_leaf"].astype(bool) for n in nodes]
    return Trees(float(np.asarray(model._baseline_prediction).reshape(-1)[0]), 1.0,
                 [np.where(lf, -1, n["left"].astype(np.int64)) for n, lf in zip(nodes, leaf)],
                 [np.where(lf, -1, n["right"].astype(np.int64)) for n, lf in zip(nodes, leaf)],
                 [n["feature_idx"].astype(np.int64) for n in nodes], [n["num_threshold"].astype(float) for n in nodes],
                 [n["value"].astype(float) for n in nodes])


@dataclass
class LossModel:
    """Expected absolute and squared error of a regressor's predictions, from its inputs: an ensemble of models."""

    inputs: list[Encoding]
    absolute: list[Trees]
    squared: list[Trees]
    kappa_absolute: float
    kappa_squared: float

    def matrix(self, columns: dict[str, Sequence[Any]]) -> np.ndarray:
        return np.column_stack([enc.encode(columns[enc.name]) for enc in self.inputs])

    def expected(self, columns: dict[str, Sequence[Any]]) -> tuple[np.ndarray, np.ndarray]:
        """Per member and row (``(members, n)``): expected absolute error, expected squared error (both at least 0)."""
        x = self.matrix(columns)
        return (np.array([np.maximum(t.predict(x), 0.0) for t in self.absolute]),
                np.array([np.maximum(t.predict(x), 0.0) for t in self.squared]))

    def to_json(self) -> dict[str, Any]:
        return {"inputs": [e.to_json() for e in self.inputs], "absolute": [t.to_json() for t in self.absolute],
                "squared": [t.to_json() for t in self.squared], "kappa_absolute": self.kappa_absolute,
                "kappa_squared": self.kappa_squared}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LossModel:
        return cls([Encoding.from_json(e) for e in d["inputs"]], [Trees.from_json(t) for t in d["absolute"]],
                   [Trees.from_json(t) for t in d["squared"]], float(d["kappa_absolute"]), float(d["kappa_squared"]))


def fit(columns: dict[str, Sequence[Any]], numeric: dict[str, bool], prediction: np.ndarray, label: np.ndarray,
        w: np.ndarray, seed: int = 0) -> LossModel:
    """The loss model of a regressor from reference `columns` (features and ``prediction.value``), labels, weights.

    :data:`MEMBERS` models, each on its own share of the reference rows (disjoint, up to
    :data:`MAX_FIT_ROWS` each), so that their disagreement measures the loss model's own error.
    """
    rng = np.random.default_rng(seed)
    keep = np.isfinite(prediction) & np.isfinite(label)
    idx = np.flatnonzero(keep)
    wk = w[idx]
    total = min(MEMBERS * MAX_FIT_ROWS, idx.size if wk.size == 0 or wk.max() == wk.min() else 4 * idx.size)
    if wk.size and wk.max() > wk.min():  # sampled reference: rows drawn in proportion to their weights, then unweighted
        idx = rng.choice(idx, total, p=wk / wk.sum(), replace=True)
    else:
        idx = rng.permutation(idx)[:total]
    picked = {k: np.asarray(v, dtype=float if numeric[k] else object)[idx] for k, v in columns.items()}
    model = LossModel([encoding(name, picked[name], numeric[name]) for name in columns], [], [], 0.0, 0.0)
    x = model.matrix(picked)
    err = prediction[idx] - label[idx]
    members = MEMBERS if idx.size >= MEMBERS * MIN_MEMBER_ROWS else 1
    kappas: dict[str, list[float]] = {"absolute": [], "squared": []}
    for part in np.array_split(np.arange(idx.size), members):
        holdout = rng.random(part.size) < HOLDOUT
        fit_rows, check = part[~holdout], part[holdout]
        if check.size < 50 or fit_rows.size < 50:
            fit_rows = check = part
        for target, attr in ((np.abs(err), "absolute"), (err ** 2, "squared")):
            trees = fit_trees(x[fit_rows], target[fit_rows], np.ones(fit_rows.size), seed)
            expected = np.maximum(trees.predict(x[check]), 0.0)
            kappas[attr].append(float(np.sum((target[check] - expected) ** 2) / max(np.sum(expected ** 2), 1e-300)))
            getattr(model, attr).append(trees)
    model.kappa_absolute = float(np.mean(kappas["absolute"]))
    model.kappa_squared = float(np.mean(kappas["squared"]))
    return model


def loss_estimate(expected: np.ndarray, kappa: float, w: np.ndarray, w2: np.ndarray) -> tuple[float, float]:
    """A window's mean loss and its standard error, from every member's expected losses (``(members, n)``).

    The variance has three terms: sampling (``Σ(w²−w)(f−m)²``, as in :mod:`.cbpe`), the losses' own
    spread around their expectation (``Σw·κf²``), and the loss model's own error: the variance of the
    members' window means. Not divided by the number of members, although the estimate is their mean:
    what the members share (the same reference, trees that cannot extrapolate beyond it) their spread
    does not show, and one member's error is the stand-in for the ensemble's, on the safe side.
    """
    total = float(w.sum())
    if total <= 0:
        return float("nan"), float("nan")
    expected = np.atleast_2d(expected)
    per_member = (expected * w).sum(axis=1) / total
    f = expected.mean(axis=0)
    m = float(per_member.mean())
    infl = (f - m) / total
    var = float(((w2 - w) * infl ** 2).sum() + (w * kappa * (f / total) ** 2).sum())
    if per_member.size > 1:
        var += float(per_member.var(ddof=1))
    return m, float(np.sqrt(max(var, 0.0)))
