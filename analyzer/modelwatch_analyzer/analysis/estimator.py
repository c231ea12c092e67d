"""The performance estimator of one baseline: fitted on labelled reference rows, stored next to the baseline.

What it holds depends on the model (``task``):

* ``binary``: the positive class, the calibration of its score
  (``ml.prediction.score`` = P(positive class); :mod:`.calibration`);
* ``multiclass``: the classes and one calibration per class, for the
  ``ml.prediction.probability.<class>`` of each prediction;
* ``regression``: the loss model of :mod:`.loss_model`.

and for every metric the *reference band*: the reference rows are cut into
chunks of ``chunk_size`` (in time order), the realized metric computed on
each; the band is their mean ± ``threshold_std`` standard deviations
(3 by default, as NannyML's), its edges drawn at each analysis
(:func:`.estimation.reference_edges`), so the setting applies to stored
estimators too. A window's estimate outside the band (below it for
accuracy-like metrics, above it for errors) is a degradation: the
model is worse than its own reference ever was in a chunk of that size.
Reference chunks are read as they are, so the band says how much the
metric moves from chunk to chunk *when nothing is wrong*.

Stored in ``ml_estimators`` as JSON under the baseline's id; a baseline
built without labels has none, and estimation says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from modelwatch_analyzer.analysis import calibration, cbpe, loss_model
from modelwatch_analyzer.analysis.calibration import Calibration
from modelwatch_analyzer.analysis.loss_model import LossModel
from modelwatch_analyzer.analysis.performance import POSITIVE_PAIRS
from modelwatch_analyzer.analysis.window import utc
from modelwatch_analyzer.errors import BaselineError
from modelwatch_analyzer.store.client import Store

BINARY, MULTICLASS, REGRESSION = "binary", "multiclass", "regression"
LOSSES = ("mae", "mse", "rmse")
"""Metrics where lower is better; every other is better higher."""
MAX_CLASSES = 50
REGRESSION_MIN_VALUES = 20


@dataclass
class EstimationSettings:
    enabled: bool = True
    confidence: float = 0.95  # of the band around each estimate
    chunk_size: int = 5000  # reference rows per chunk of the reference band
    threshold_std: float = 3.0  # the reference band: mean ± this many standard deviations of the chunks' metric
    max_rows: int = 200_000  # rows a multiclass or regression estimate reads; beyond, a uniform hash sample
    min_effective: float = 30.0  # effective predictions below which: insufficient data


@dataclass
class Labelled:
    """Labelled reference rows (arrays of one length): what an estimator is fitted on."""

    weight: np.ndarray
    prediction: np.ndarray  # class text (object)
    label: np.ndarray  # label text (object)
    prediction_number: np.ndarray
    label_number: np.ndarray
    score: np.ndarray | None = None
    probabilities: dict[str, np.ndarray] = field(default_factory=dict)  # class -> P(class)
    columns: dict[str, np.ndarray] = field(default_factory=dict)  # features, for the loss model
    numeric: dict[str, bool] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.weight.size)


@dataclass
class Estimator:
    model: str
    version: str
    baseline_id: str
    task: str
    classes: list[str] = field(default_factory=list)  # binary: [negative, positive]
    calibrations: list[Calibration] = field(default_factory=list)
    loss: LossModel | None = None
    reference: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> band of the reference chunks
    chunk_size: int = 5000
    rows: int = 0
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "classes": self.classes, "calibrations": [c.to_json() for c in self.calibrations],
                "loss": self.loss.to_json() if self.loss else None, "reference": self.reference,
                "chunk_size": self.chunk_size, "rows": self.rows}

    @classmethod
    def from_json(cls, model: str, version: str, baseline_id: str, created: datetime, d: dict[str, Any]) -> Estimator:
        return cls(model, version, baseline_id, d["task"], [str(c) for c in d.get("classes", [])],
                   [Calibration.from_json(c) for c in d.get("calibrations", [])],
                   LossModel.from_json(d["loss"]) if d.get("loss") else None, d.get("reference", {}),
                   int(d.get("chunk_size", 5000)), int(d.get("rows", 0)), created)


# -- fitting ------------------------------------------------------------------------------


def infer_task(data: Labelled, task: str = "auto", positive_label: str | None = None) -> tuple[str, list[str]]:
    """(task, classes) of the reference: a regressor when predictions and labels are numbers and the labels take
    more than 20 values, else a classifier (binary with a score, multiclass with per-class probabilities)."""
    numeric = np.isfinite(data.label_number).all() and np.isfinite(data.prediction_number).all()
    if task == "regression" or (task == "auto" and numeric and np.unique(data.label_number).size > REGRESSION_MIN_VALUES):
        if not numeric:
            raise BaselineError("a regressor's estimator needs numeric predictions and labels")
        return REGRESSION, []
    classes = sorted(set(map(str, data.label)) | set(map(str, data.prediction)))
    if len(classes) > MAX_CLASSES:
        raise BaselineError(f"{len(classes)} classes in the reference: performance estimation takes at most {MAX_CLASSES}")
    if data.probabilities:
        return MULTICLASS, sorted(set(classes) | set(data.probabilities))
    if data.score is None:
        raise BaselineError("a classifier's estimator needs its scores (ml.prediction.score = P(positive class)) or, "
                            "multiclass, one probability per class (ml.prediction.probability.<class>)")
    if len(classes) > 2:
        raise BaselineError(f"{len(classes)} classes but one score per prediction: a multiclass model must record one "
                            "probability per class (ml.prediction.probability.<class>, see docs/contract.md)")
    positive = positive_label or next((pos for pair, pos in POSITIVE_PAIRS if set(classes) <= pair), None)
    if positive is None:
        raise BaselineError(f"which class is the positive one (the class ml.prediction.score is the probability of)? "
                            f"classes {classes}: set positive_label")
    negative = next((c for c in classes if c != positive), next(
        (other for pair, pos in POSITIVE_PAIRS if pos == positive for other in sorted(pair - {pos})), "not " + positive))
    return BINARY, [negative, positive]


def fit(data: Labelled, model: str, version: str, baseline_id: str, settings: EstimationSettings | None = None,
        task: str = "auto", positive_label: str | None = None) -> Estimator:
    """Calibrate (classifiers) or fit the loss model (regressors) on `data`, then the reference band per metric."""
    settings = settings or EstimationSettings()
    if len(data) == 0:
        raise BaselineError("no labelled reference rows to fit a performance estimator on")
    task, classes = infer_task(data, task, positive_label)
    est = Estimator(model, version, baseline_id, task, classes, chunk_size=settings.chunk_size, rows=len(data))
    if task == BINARY:
        assert data.score is not None
        est.calibrations = [calibration.fit(data.score, data.label.astype(str) == classes[1], data.weight)]
    elif task == MULTICLASS:
        probs = probability_matrix(data, classes)
        est.calibrations = [calibration.fit(probs[:, k], data.label.astype(str) == c, data.weight)
                            for k, c in enumerate(classes)]
    else:
        columns = {**data.columns, loss_model.PREDICTION: data.prediction_number}
        numeric = {**data.numeric, loss_model.PREDICTION: True}
        est.loss = loss_model.fit(columns, numeric, data.prediction_number, data.label_number, data.weight)
    est.reference = _reference_band(data, est, settings)
    return est


def probability_matrix(data: Labelled, classes: list[str]) -> np.ndarray:
    n = len(data)
    return np.column_stack([np.nan_to_num(data.probabilities.get(c, np.zeros(n)), nan=0.0) for c in classes])


def realized(data: Labelled, est: Estimator) -> dict[str, float]:
    """The realized metrics of labelled rows, with the definitions the estimates use (:mod:`.cbpe`)."""
    if est.task == REGRESSION:
        w = data.weight
        err = data.prediction_number - data.label_number
        total = float(w.sum())
        mse = float((w * err ** 2).sum() / total)
        return {"mae": float((w * np.abs(err)).sum() / total), "mse": mse, "rmse": float(np.sqrt(mse))}
    k = len(est.classes)
    index = {c: i for i, c in enumerate(est.classes)}
    truth = np.array([index.get(str(v), -1) for v in data.label])
    onehot = np.zeros((len(data), k))
    onehot[truth >= 0, truth[truth >= 0]] = 1.0
    if est.task == BINARY:
        assert data.score is not None
        scores = np.column_stack([1 - data.score, data.score])
    else:
        scores = probability_matrix(data, est.classes)
    units = cbpe.Units(onehot, np.array([index.get(str(v), k) for v in data.prediction]), scores, data.weight,
                       data.weight ** 2)
    return {e.metric: e.value for e in cbpe.estimate(units, 1 if est.task == BINARY else None)}


def _reference_band(data: Labelled, est: Estimator, settings: EstimationSettings) -> dict[str, dict[str, float]]:
    n = len(data)
    size = max(min(settings.chunk_size, n // 5), 1)
    chunks = [np.arange(i, min(i + size, n)) for i in range(0, n - size + 1, size)]
    values: dict[str, list[float]] = {}
    for idx in chunks:
        for metric, value in realized(take(data, idx), est).items():
            values.setdefault(metric, []).append(value)
    out = {}
    for metric, vs in values.items():
        arr = np.asarray(vs, float)
        mean = float(arr.mean())
        std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
        out[metric] = {"mean": mean, "std": std, "chunks": int(arr.size), "chunk_size": size}
    return out


def take(data: Labelled, idx: np.ndarray) -> Labelled:
    return Labelled(data.weight[idx], data.prediction[idx], data.label[idx], data.prediction_number[idx],
                    data.label_number[idx], None if data.score is None else data.score[idx],
                    {k: v[idx] for k, v in data.probabilities.items()}, {k: v[idx] for k, v in data.columns.items()},
                    data.numeric)


def describe(est: Estimator) -> str:
    """One line on a fitted estimator: what it estimates, its calibration, the reference band of its headline metric."""
    if est.task == BINARY:
        cal = est.calibrations[0]
        what = (f"binary (positive class {est.classes[1]!r}), scores "
                + (f"recalibrated (ECE {cal.ece_raw:.3f} -> {cal.ece_calibrated:.3f})" if not cal.identity
                   else f"calibrated as they are (ECE {cal.ece_raw:.3f})"))
    elif est.task == MULTICLASS:
        fixed = sum(not c.identity for c in est.calibrations)
        what = f"multiclass ({len(est.classes)} classes, {fixed} recalibrated)"
    else:
        what = "regression (loss model of the absolute and squared error)"
    metric = "mae" if est.task == REGRESSION else "accuracy"
    band = est.reference.get(metric, {})
    ref = (f"; reference {metric} {band['mean']:.4g} ± {band['std']:.2g} over {band['chunks']} chunks of "
           f"{band['chunk_size']}" if band else "")
    return f"performance estimator: {what}, {est.rows:,} labelled rows{ref}"


# -- storage -----------------------------------------------------------------------------------

_COLUMNS = ("ModelName", "ModelVersion", "BaselineId", "CreatedAt", "Task", "Spec")


def save(store: Store, est: Estimator) -> None:
    store.insert("ml_estimators", [(est.model, est.version, est.baseline_id, est.created_at, est.task,
                                    json.dumps(est.to_json(), allow_nan=False))], _COLUMNS)


def load(store: Store, model: str, baseline_id: str) -> Estimator | None:
    """The estimator of baseline `baseline_id`, or None when the baseline was built without labels."""
    rows = store.query(f"SELECT {', '.join(_COLUMNS)} FROM {store.table('ml_estimators')} FINAL "
                       "WHERE ModelName = {model:String} AND BaselineId = {id:String} "
                       f"AND Task IN ('{BINARY}', '{MULTICLASS}', '{REGRESSION}') LIMIT 1",
                       {"model": model, "id": baseline_id})
    if not rows:
        return None
    m, v, bid, created, _task, spec = rows[0]
    return Estimator.from_json(m, v, bid, utc(created) or datetime.now(timezone.utc), json.loads(spec))
