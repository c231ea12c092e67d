"""Score calibration for label-free performance estimation: isotonic, fitted on labelled reference data.

Confidence-based estimation reads a model's score as the probability that
a prediction is right, which holds only for calibrated scores. A
:class:`Calibration` maps a raw score (the probability of one class) to the
observed frequency of that class at that score on the reference, by
weighted isotonic regression (scikit-learn's ``IsotonicRegression``, a
monotone step fit). It is applied only when it helps: a 5-fold
cross-fitted isotonic map must lower the reference's Brier score (a proper
scoring rule: the raw scores of a calibrated model are optimal under it, so
an isotonic fit that only adds its own noise loses) compared with the raw
scores; otherwise the scores are used as they are. The expected calibration
error (ECE, 10 equal-width bins) before and after is kept for the record. The fitted map is stored as its knots
(``np.interp`` between them, clipped at both ends), as
``IsotonicRegression.predict`` evaluates it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

FOLDS = 5
ECE_BINS = 10


@dataclass(frozen=True)
class Calibration:
    x: tuple[float, ...] = ()  # knots: raw scores, increasing
    y: tuple[float, ...] = ()  # calibrated probabilities at the knots, non-decreasing
    ece_raw: float = float("nan")
    ece_calibrated: float = float("nan")

    @property
    def identity(self) -> bool:
        return not self.x

    def apply(self, scores: np.ndarray) -> np.ndarray:
        s = np.clip(np.asarray(scores, float), 0.0, 1.0)
        if self.identity:
            return s
        return np.interp(s, np.asarray(self.x), np.asarray(self.y))

    def to_json(self) -> dict[str, Any]:
        return {"x": list(self.x), "y": list(self.y), "ece_raw": _finite(self.ece_raw),
                "ece_calibrated": _finite(self.ece_calibrated)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Calibration:
        return cls(tuple(float(v) for v in d.get("x", ())), tuple(float(v) for v in d.get("y", ())),
                   _nan(d.get("ece_raw")), _nan(d.get("ece_calibrated")))


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _nan(x: Any) -> float:
    return float("nan") if x is None else float(x)


def ece(p: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Weighted expected calibration error of probabilities `p` for outcomes `y` (0/1), 10 equal-width bins."""
    bins = np.minimum((np.clip(p, 0, 1) * ECE_BINS).astype(int), ECE_BINS - 1)
    total = w.sum()
    if total <= 0:
        return float("nan")
    wp = np.bincount(bins, weights=w * p, minlength=ECE_BINS)
    wy = np.bincount(bins, weights=w * y, minlength=ECE_BINS)
    return float(np.abs(wp - wy).sum() / total)


def _brier(p: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    return float(np.sum(w * (p - y) ** 2) / np.sum(w))


def _isotonic(p: np.ndarray, y: np.ndarray, w: np.ndarray) -> Any:
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y, sample_weight=w)


def fit(scores: np.ndarray, outcome: np.ndarray, weights: np.ndarray | None = None, seed: int = 0) -> Calibration:
    """The calibration of `scores` (probabilities of one class) against `outcome` (1: that class), weighted.

    Identity when the scores are calibrated already (cross-fitted isotonic
    ECE not below the raw ECE) or there are too few rows of either outcome.
    """
    p = np.clip(np.asarray(scores, float), 0.0, 1.0)
    y = np.asarray(outcome, float)
    w = np.ones_like(p) if weights is None else np.asarray(weights, float)
    keep = np.isfinite(p) & np.isfinite(y) & (w > 0)
    p, y, w = p[keep], y[keep], w[keep]
    raw = ece(p, y, w)
    if p.size < 10 * FOLDS or y.min(initial=1) == y.max(initial=0):
        return Calibration(ece_raw=raw, ece_calibrated=raw)
    folds = np.random.default_rng(seed).integers(0, FOLDS, p.size)
    crossed = np.empty_like(p)
    for k in range(FOLDS):
        test = folds == k
        crossed[test] = _isotonic(p[~test], y[~test], w[~test]).predict(p[test])
    cross = ece(crossed, y, w)
    if not _brier(crossed, y, w) < _brier(p, y, w):
        return Calibration(ece_raw=raw, ece_calibrated=raw)
    model = _isotonic(p, y, w)
    return Calibration(tuple(map(float, model.X_thresholds_)), tuple(map(float, model.y_thresholds_)), raw, cross)


def calibrate_rows(probabilities: np.ndarray, calibrations: list[Calibration]) -> np.ndarray:
    """(n, C) class probabilities, each class through its own calibration, rows renormalised to sum to 1
    (a row whose calibrated probabilities are all 0 becomes uniform)."""
    out = np.column_stack([cal.apply(probabilities[:, k]) for k, cal in enumerate(calibrations)])
    total = out.sum(axis=1, keepdims=True)
    uniform = np.full_like(out, 1.0 / out.shape[1])
    return np.divide(out, total, out=uniform, where=total > 0)
