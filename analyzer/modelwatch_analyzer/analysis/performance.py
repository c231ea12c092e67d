"""Performance against late-arriving labels, joined by prediction id and computed in SQL, weighted.

Labels (``ml_labels``, latest per prediction id) are joined to the window's
predictions on (model, prediction id). ClickHouse returns the weighted
confusion matrix (classifiers), the weighted score histogram per class at
``1e-4`` resolution (ROC AUC; predictions whose scores fall in the same bin
count as ties, half a pair each — the only approximation, exact for scores
with at most four decimals), or the weighted absolute and squared errors
(regressors). Label coverage is the weighted share of the window's
predictions that have a label. Weights are the SDK's sampling weights, so a
sample's metrics estimate the population's.

Classifier or regressor: ``task`` says so, or ``auto``: a regressor when
both predictions and labels are numbers and the labels take more than 20
values. For a binary classifier the positive class is ``positive_label``,
or ``1`` / ``true`` / ``yes`` when the labels are such a pair; the other
classifiers get macro-averaged precision, recall and F1 and no AUC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from modelwatch_analyzer.analysis.results import INSUFFICIENT, Result
from modelwatch_analyzer.analysis.stats import effective_n
from modelwatch_analyzer.analysis.window import Window
from modelwatch_analyzer.store.client import Store

AUC_RESOLUTION = 4  # decimals of the score histogram
_LOCAL = " SETTINGS distributed_product_mode = 'local'"
"""On a cluster each shard joins its own predictions and labels (they share a shard: see schema.SHARD_KEYS)."""
POSITIVE_PAIRS = ({"0", "1"}, "1"), ({"false", "true"}, "true"), ({"no", "yes"}, "yes")
"""Label pairs whose positive class goes without saying (``positive_label`` names any other)."""


@dataclass
class PerformanceSettings:
    task: str = "auto"  # auto | classification | regression
    positive_label: str | None = None
    min_labels: float = 30.0  # effective labelled predictions below which: insufficient data


def latest_labels(store: Store) -> str:
    """The latest label of each of the model's prediction ids (``{model:String}``), with ``HasLabel = 1``."""
    return (f"SELECT PredictionId, argMax(Label, Timestamp) AS Label, argMax(LabelNumber, Timestamp) AS LabelNumber, "
            f"1 AS HasLabel FROM {store.table('ml_labels')} WHERE ModelName = {{model:String}} GROUP BY PredictionId")


def _joined(store: Store, window: Window) -> tuple[str, dict[str, Any]]:
    where, params = window.where()
    labels = latest_labels(store)
    sql = (f"(SELECT Weight, Prediction, PredictionNumber, Score, PredictionId FROM {store.table('ml_predictions')} "
           f"WHERE {where}) AS p LEFT JOIN ({labels}) AS l ON p.PredictionId = l.PredictionId")
    return sql, params


def evaluate(store: Store, window: Window, settings: PerformanceSettings | None = None) -> list[Result]:
    settings = settings or PerformanceSettings()
    joined, params = _joined(store, window)
    (total, labelled, labelled2, rows, classes, numeric_pairs), = store.query(
        f"SELECT sum(p.Weight), sumIf(p.Weight, l.HasLabel = 1), sumIf(p.Weight * p.Weight, l.HasLabel = 1), "
        f"countIf(l.HasLabel = 1), uniqUpToIf(21)(l.Label, l.HasLabel = 1), "
        f"countIf(l.HasLabel = 1 AND isNotNull(l.LabelNumber) AND isNotNull(p.PredictionNumber)) FROM {joined}{_LOCAL}", params)
    total, labelled = float(total or 0), float(labelled or 0)
    n_eff = effective_n(labelled, float(labelled2 or 0))
    coverage = Result("", "", None, "label_coverage", "performance", labelled / total if total else None,
                      n_current=total, status="ok" if total else INSUFFICIENT,
                      details={"labelled_rows": int(rows or 0), "labelled_weight": labelled})
    if n_eff < settings.min_labels:
        reason = f"{n_eff:.0f} effective labelled predictions (< {settings.min_labels:g})"
        return [coverage, Result("", "", None, "performance", "performance", None, n_current=labelled,
                                 status=INSUFFICIENT, details={"reason": reason})]
    task = settings.task
    if task == "auto":
        task = "regression" if numeric_pairs == rows and int(classes) > 20 else "classification"
    out = [coverage]
    if task == "regression":
        out += _regression(store, joined, params, labelled)
    else:
        out += _classification(store, joined, params, labelled, settings)
    return out


def _metric(method: str, value: float | None, n: float, **details: Any) -> Result:
    return Result("", "", None, method, "performance", value, n_current=n, details=details)


def _regression(store: Store, joined: str, params: dict[str, Any], n: float) -> list[Result]:
    (w, abs_err, sq_err), = store.query(
        "SELECT sum(p.Weight), sum(p.Weight * abs(p.PredictionNumber - l.LabelNumber)), "
        f"sum(p.Weight * pow(p.PredictionNumber - l.LabelNumber, 2)) FROM {joined} "
        "WHERE l.HasLabel = 1 AND isNotNull(l.LabelNumber) AND isNotNull(p.PredictionNumber)" + _LOCAL, params)
    w = float(w or 0)
    if w <= 0:
        return []
    return [_metric("mae", float(abs_err) / w, w), _metric("mse", float(sq_err) / w, w),
            _metric("rmse", float(np.sqrt(float(sq_err) / w)), w)]


def _classification(store: Store, joined: str, params: dict[str, Any], n: float,
                    settings: PerformanceSettings) -> list[Result]:
    cells = store.query(f"SELECT l.Label, p.Prediction, sum(p.Weight) FROM {joined} WHERE l.HasLabel = 1 "
                        "GROUP BY l.Label, p.Prediction" + _LOCAL, params)
    confusion: dict[tuple[str, str], float] = {(str(a), str(b)): float(w) for a, b, w in cells}
    labels = sorted({a for a, _ in confusion})
    total = sum(confusion.values())
    correct = sum(w for (a, b), w in confusion.items() if a == b)
    out = [_metric("accuracy", correct / total, total)]
    positive = settings.positive_label or next((pos for pair, pos in POSITIVE_PAIRS if set(labels) <= pair and len(labels) == 2), None)
    matrix = {f"{a}->{b}": w for (a, b), w in sorted(confusion.items())}
    if positive is not None:
        p, r, f, sp = _prf(confusion, positive)
        out += [_metric("precision", p, total, positive=positive), _metric("recall", r, total, positive=positive),
                _metric("f1", f, total, positive=positive, confusion=matrix),
                _metric("specificity", sp, total, positive=positive)]
        auc = _auc(store, joined, dict(params, positive=positive))
        if auc is not None:
            out.append(_metric("roc_auc", auc, total, positive=positive, resolution=10.0 ** -AUC_RESOLUTION))
    else:
        per = [_prf(confusion, c) for c in labels]
        out += [_metric("precision", float(np.mean([x[0] for x in per])), total, average="macro"),
                _metric("recall", float(np.mean([x[1] for x in per])), total, average="macro"),
                _metric("f1", float(np.mean([x[2] for x in per])), total, average="macro", confusion=matrix),
                _metric("specificity", float(np.mean([x[3] for x in per])), total, average="macro")]
    return out


def _prf(confusion: dict[tuple[str, str], float], positive: str) -> tuple[float, float, float, float]:
    """Precision, recall, F1 and specificity of class `positive` against the rest."""
    tp = confusion.get((positive, positive), 0.0)
    predicted = sum(w for (_, b), w in confusion.items() if b == positive)
    actual = sum(w for (a, _), w in confusion.items() if a == positive)
    negatives = sum(confusion.values()) - actual
    precision = tp / predicted if predicted else 0.0
    recall = tp / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    specificity = (negatives - (predicted - tp)) / negatives if negatives else 0.0
    return precision, recall, f1, specificity


def _auc(store: Store, joined: str, params: dict[str, Any]) -> float | None:
    rows = store.query(
        f"SELECT round(p.Score, {AUC_RESOLUTION}) AS s, sumIf(p.Weight, l.Label = {{positive:String}}), "
        f"sumIf(p.Weight, l.Label != {{positive:String}}) FROM {joined} "
        "WHERE l.HasLabel = 1 AND isNotNull(p.Score) AND isFinite(assumeNotNull(p.Score)) GROUP BY s ORDER BY s" + _LOCAL, params)
    if not rows:
        return None
    pos = np.array([r[1] for r in rows], float)
    neg = np.array([r[2] for r in rows], float)
    if pos.sum() <= 0 or neg.sum() <= 0:
        return None
    below = np.cumsum(neg) - neg  # negatives with a strictly lower score bin
    return float(np.sum(pos * (below + 0.5 * neg)) / (pos.sum() * neg.sum()))
