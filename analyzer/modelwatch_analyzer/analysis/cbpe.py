"""Confidence-based performance estimation: a classifier's expected metrics from its calibrated probabilities.

The input is a set of *units*: a stored prediction, or a bin of predictions
that share a score and a predicted class, each with the sum ``W`` and the
sum of squares ``W2`` of its sampling weights, its calibrated class
probabilities ``P`` (``(n, C)``), its predicted class and its raw scores
(for ranking). With calibrated probabilities the expected confusion matrix
is ``E[k, j] = Σ_{units predicted j} W · P[:, k]``; accuracy, precision,
recall, F1 and specificity are the functions of ``E`` that the realized
metrics are of the real confusion matrix (binary: of the positive class;
multiclass: macro averages of one-vs-rest). ROC AUC ranks the units by raw
score and counts each unit as ``W·P`` positives and ``W·(1-P)`` negatives
(ties half a pair), as the realized AUC does with labels.

Every estimate comes with a standard error for the metric *realized* on the
window's whole population (what the labels will show), by linearisation:
with ``u`` a unit's expected influence on the metric and ``s`` its expected
squared influence (over its unknown label),

    Var = Σ (W2 − W) · u²      the sampling error: a kept prediction of weight w
                               stands for w − 1 unseen ones (Horvitz–Thompson)
        + Σ W · (s − u²)       the labels' own randomness given the probabilities

so the band widens as the effective sample size ``(ΣW)² / ΣW2`` falls and,
for an unsampled window, reduces to the binomial variance
``Σ c(1−c) / n²`` of accuracy. Influences come from the metric's gradient in
``E`` (numerically), for AUC from the placements of DeLong's method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

BINARY_METRICS = ("accuracy", "precision", "recall", "f1", "specificity", "roc_auc")
MULTICLASS_METRICS = ("accuracy", "precision", "recall", "f1", "specificity", "roc_auc")


@dataclass
class Units:
    probabilities: np.ndarray  # (n, C) calibrated P(class k)
    predicted: np.ndarray  # (n,) index of the predicted class; C = a class outside the estimator's
    scores: np.ndarray  # (n, C) raw probabilities (the ranking of ROC AUC)
    w: np.ndarray  # (n,) sum of the sampling weights
    w2: np.ndarray  # (n,) sum of their squares

    @property
    def classes(self) -> int:
        return self.probabilities.shape[1]

    def effective_n(self) -> float:
        s2 = float(self.w2.sum())
        return float(self.w.sum()) ** 2 / s2 if s2 > 0 else 0.0


@dataclass
class Estimate:
    metric: str
    value: float
    se: float


def confusion(u: Units) -> np.ndarray:
    """Expected weighted confusion matrix, true class × predicted class (an extra column: classes outside)."""
    c = u.classes
    e = np.zeros((c, c + 1))
    for j in range(c + 1):
        pick = u.predicted == j
        if pick.any():
            e[:, j] = (u.w[pick, None] * u.probabilities[pick]).sum(axis=0)
    return e


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else 0.0


def _class_metrics(e: np.ndarray, k: int) -> tuple[float, float, float, float]:
    """Precision, recall, F1 and specificity of class `k` one-vs-rest from confusion matrix `e`."""
    tp = e[k, k]
    fp = e[:, k].sum() - tp
    fn = e[k, :].sum() - tp
    tn = e.sum() - tp - fp - fn
    return _ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn), _ratio(tn, tn + fp)


def metric_function(metric: str, positive: int | None) -> Callable[[np.ndarray], float]:
    """`metric` as a function of the confusion matrix: of class `positive` (binary), else macro-averaged."""
    if metric == "accuracy":
        return lambda e: _ratio(float(np.trace(e[:, :e.shape[0]])), float(e.sum()))
    index = ("precision", "recall", "f1", "specificity").index(metric)
    if positive is not None:
        return lambda e: _class_metrics(e, positive)[index]
    return lambda e: float(np.mean([_class_metrics(e, k)[index] for k in range(e.shape[0])]))


def _gradient(f: Callable[[np.ndarray], float], e: np.ndarray) -> np.ndarray:
    g = np.zeros_like(e)
    scale = max(float(e.sum()), 1e-300)
    for idx in np.ndindex(e.shape):
        h = 1e-6 * scale
        up, down = e.copy(), e.copy()
        up[idx] += h
        down[idx] = max(down[idx] - h, 0.0)
        g[idx] = (f(up) - f(down)) / (up[idx] - down[idx])
    return g


def _variance(u_inf: np.ndarray, s_inf: np.ndarray, units: Units) -> float:
    sampling = float(((units.w2 - units.w) * u_inf ** 2).sum())
    outcome = float((units.w * np.maximum(s_inf - u_inf ** 2, 0.0)).sum())
    return max(sampling + outcome, 0.0)


def confusion_estimate(units: Units, metric: str, positive: int | None) -> Estimate:
    """A confusion-matrix metric and its standard error (see the module docstring)."""
    f = metric_function(metric, positive)
    e = confusion(units)
    value = f(e)
    g = _gradient(f, e)  # (C, C + 1)
    gj = g[:, units.predicted].T  # (n, C): the gradient of each unit's predicted column
    u_inf = (units.probabilities * gj).sum(axis=1)
    s_inf = (units.probabilities * gj ** 2).sum(axis=1)
    return Estimate(metric, value, float(np.sqrt(_variance(u_inf, s_inf, units))))


def auc_estimate(scores: np.ndarray, positive_p: np.ndarray, units: Units) -> Estimate | None:
    """ROC AUC of one class: units ranked by `scores`, each ``W·p`` positives and ``W·(1−p)`` negatives."""
    pos = units.w * positive_p
    neg = units.w * (1.0 - positive_p)
    a, b = float(pos.sum()), float(neg.sum())
    if a <= 0 or b <= 0:
        return None
    levels, inverse = np.unique(scores, return_inverse=True)
    pos_l = np.bincount(inverse, weights=pos, minlength=levels.size)
    neg_l = np.bincount(inverse, weights=neg, minlength=levels.size)
    neg_below = np.cumsum(neg_l) - neg_l
    pos_above = a - np.cumsum(pos_l)
    auc = float(np.sum(pos_l * (neg_below + 0.5 * neg_l)) / (a * b))
    v10 = (neg_below + 0.5 * neg_l)[inverse] / b  # a positive's share of negatives ranked below it
    v01 = (pos_above + 0.5 * pos_l)[inverse] / a  # a negative's share of positives ranked above it
    as_pos, as_neg = (v10 - auc) / a, (v01 - auc) / b
    u_inf = positive_p * as_pos + (1 - positive_p) * as_neg
    s_inf = positive_p * as_pos ** 2 + (1 - positive_p) * as_neg ** 2
    return Estimate("roc_auc", auc, float(np.sqrt(_variance(u_inf, s_inf, units))))


def estimate(units: Units, positive: int | None) -> list[Estimate]:
    """Every metric this module estimates: binary (`positive` the positive class's index) or macro multiclass."""
    if units.w.sum() <= 0:
        return []
    out = [confusion_estimate(units, m, positive) for m in ("accuracy", "precision", "recall", "f1", "specificity")]
    if positive is not None:
        auc = auc_estimate(units.scores[:, positive], units.probabilities[:, positive], units)
        if auc is not None:
            out.append(auc)
        return out
    per_class = [auc_estimate(units.scores[:, k], units.probabilities[:, k], units) for k in range(units.classes)]
    if all(x is not None for x in per_class):
        aucs = [x for x in per_class if x is not None]
        out.append(Estimate("roc_auc", float(np.mean([x.value for x in aucs])),
                            float(np.sqrt(sum(x.se ** 2 for x in aucs))) / len(aucs)))
    return out
