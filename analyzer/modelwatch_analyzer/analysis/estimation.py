"""A window's performance estimated without labels, next to the performance its labels show.

For each metric the baseline's :class:`~.estimator.Estimator` knows, one
result of kind ``estimated_performance`` (method = the metric):

* ``statistic``: the estimate over the window's predictions, every one
  counted by its sampling weight (a tail-sampled window holds mostly the
  uncertain predictions: unweighted, an estimate sees mostly hard cases);
* ``details.lower`` / ``upper``: its confidence interval (``confidence``,
  95% by default) from the standard error, which grows as the effective
  sample size ``(Σw)² / Σw²`` falls (see :mod:`.cbpe`, :mod:`.loss_model`);
* ``threshold``: the edge of the reference band (the reference's chunk-to-chunk
  variation: :mod:`.estimator`): the lower edge for accuracy-like metrics,
  the upper for errors; ``drifted`` when the estimate is past it (a
  degradation the reference period never showed);
* ``details.realized``: the metric over the window's labelled predictions,
  with the same definition, once labels arrived; then ``error`` (estimate −
  realized), ``label_coverage`` (weighted share labelled) and
  ``in_interval``. Estimation sees covariate shift only: when the relation
  between inputs and labels changes (concept shift) the scores stay
  confident and the estimate does not move; the realized metric does.

A window with fewer than ``min_effective`` effective predictions gets one
``insufficient_data`` result.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
from scipy import stats as sps

from modelwatch_analyzer.analysis import calibration, cbpe, estimation_data, loss_model
from modelwatch_analyzer.analysis.estimator import (
    BINARY,
    LOSSES,
    REGRESSION,
    EstimationSettings,
    Estimator,
    Labelled,
    probability_matrix,
    realized,
    take,
)
from modelwatch_analyzer.analysis.performance import latest_labels
from modelwatch_analyzer.analysis.results import INSUFFICIENT, Result
from modelwatch_analyzer.analysis.stats import effective_n
from modelwatch_analyzer.analysis.window import Window, to_ns, utc
from modelwatch_analyzer.store.client import Store

KIND = "estimated_performance"


def units(data: Labelled, est: Estimator) -> tuple[cbpe.Units, int]:
    """A classifier's rows as CBPE units (calibrated probabilities, predicted class), and how many had no score."""
    index = {c: i for i, c in enumerate(est.classes)}
    k = len(est.classes)
    if est.task == BINARY:
        score = data.score if data.score is not None else np.full(len(data), np.nan)
        ok = np.isfinite(score)
        raw = np.clip(score[ok], 0.0, 1.0)
        p = est.calibrations[0].apply(raw)
        probs, scores = np.column_stack([1 - p, p]), np.column_stack([1 - raw, raw])
        predicted = np.where(data.prediction[ok].astype(str) == est.classes[1], 1, 0)
    else:
        matrix = probability_matrix(data, est.classes)
        ok = matrix.sum(axis=1) > 0
        scores = matrix[ok]
        probs = calibration.calibrate_rows(scores, est.calibrations)
        predicted = np.array([index.get(str(v), k) for v in data.prediction[ok]], int)
    w = data.weight[ok]
    return cbpe.Units(probs, predicted, scores, w, w ** 2), int((~ok).sum())


def estimates(data: Labelled, est: Estimator) -> tuple[list[cbpe.Estimate], dict[str, Any]]:
    """Every metric's estimate and standard error over `data` (weighted), and facts for the details."""
    if est.task == REGRESSION:
        assert est.loss is not None
        ok = np.isfinite(data.prediction_number)
        cols = {k: v[ok] for k, v in data.columns.items()}
        for enc in est.loss.inputs:  # a feature the window lacks entirely: every value missing
            numeric = enc.kind == "numeric"
            cols.setdefault(enc.name, np.full(int(ok.sum()), np.nan if numeric else "", dtype=float if numeric else object))
        cols[loss_model.PREDICTION] = data.prediction_number[ok]
        absolute, squared = est.loss.expected(cols)
        w = data.weight[ok]
        mae, mae_se = loss_model.loss_estimate(absolute, est.loss.kappa_absolute, w, w ** 2)
        mse, mse_se = loss_model.loss_estimate(squared, est.loss.kappa_squared, w, w ** 2)
        rmse = math.sqrt(max(mse, 0.0))
        out = [cbpe.Estimate("mae", mae, mae_se), cbpe.Estimate("mse", mse, mse_se),
               cbpe.Estimate("rmse", rmse, mse_se / (2 * rmse) if rmse > 0 else 0.0)]
        return out, {"without_prediction": int((~ok).sum()), "effective_n": effective_n(float(w.sum()), float((w * w).sum()))}
    u, missing = units(data, est)
    return cbpe.estimate(u, 1 if est.task == BINARY else None), {"without_score": missing, "effective_n": u.effective_n()}


def reference_edges(band: dict[str, float], threshold_std: float) -> tuple[float | None, float | None]:
    """The reference band's edges: the reference chunks' mean ± `threshold_std` standard deviations."""
    if "mean" not in band:
        return None, None
    spread = threshold_std * float(band.get("std", 0.0))
    return float(band["mean"]) - spread, float(band["mean"]) + spread


def evaluate(store: Store, window: Window, est: Estimator, settings: EstimationSettings | None = None,
             features: dict[str, bool] | None = None, min_labels: float = 30.0) -> list[Result]:
    """The window's estimated performance, with the realized metric where labels arrived (see the module docstring)."""
    settings = settings or EstimationSettings()
    if est.task == REGRESSION and features is None:
        features = {e.name: e.kind == "numeric" for e in est.loss.inputs if e.name != loss_model.PREDICTION} if est.loss else {}
    data, has_label, rate = estimation_data.from_store(
        store, window, labelled_only=False, max_rows=settings.max_rows,
        classes=est.classes if est.task not in (BINARY, REGRESSION) else [], features=features)
    total = float(data.weight.sum())
    n_eff = effective_n(total, float((data.weight ** 2).sum()))
    base = {"task": est.task, "sample_rate": rate, "rows": len(data)}
    if n_eff < settings.min_effective:
        return [Result("", "", None, "estimated_performance", KIND, None, n_current=total, status=INSUFFICIENT,
                       details={**base, "reason": f"{n_eff:.0f} effective predictions (< {settings.min_effective:g})"})]
    found, facts = estimates(data, est)
    labelled = take(data, np.flatnonzero(has_label))
    lab_w = float(labelled.weight.sum())
    lab_eff = effective_n(lab_w, float((labelled.weight ** 2).sum()))
    real = realized(labelled, est) if lab_eff >= min_labels else {}
    z = float(sps.norm.ppf(0.5 + settings.confidence / 2))
    out = []
    for e in found:
        band = est.reference.get(e.metric, {})
        lower_is_better = e.metric in LOSSES
        ref_lower, ref_upper = reference_edges(band, settings.threshold_std)
        edge = ref_upper if lower_is_better else ref_lower
        worse = edge is not None and (e.value > edge if lower_is_better else e.value < edge)
        details: dict[str, Any] = {
            **base, **facts, "standard_error": e.se, "confidence": settings.confidence,
            "lower": e.value - z * e.se, "upper": e.value + z * e.se,
            "reference_mean": band.get("mean"), "reference_std": band.get("std"),
            "reference_lower": ref_lower, "reference_upper": ref_upper, "threshold_std": settings.threshold_std,
            "calibrated": any(not c.identity for c in est.calibrations), "label_coverage": lab_w / total,
            "labelled_effective_n": lab_eff}
        if e.metric in real:
            r = real[e.metric]
            details.update(realized=r, error=e.value - r, in_interval=bool(details["lower"] <= r <= details["upper"]))
        out.append(Result("", "", None, e.metric, KIND, e.value, threshold=edge, drifted=bool(worse),
                          severity="warning" if worse else "none", n_current=total, details=details))
    return out


def stored(store: Store, model: str, since: datetime, until: datetime) -> list[tuple[Window, str, float]]:
    """The windows ending in [since, until) that have stored estimates: (window, baseline id, labelled weight then)."""
    rows = store.query(
        f"SELECT WindowStart, WindowEnd, ModelVersion, BaselineId, "
        f"max(NCurrent * JSONExtractFloat(Details, 'label_coverage')) FROM {store.table('ml_results')} FINAL "
        "WHERE ModelName = {model:String} AND Kind = {kind:String} AND Status = 'ok' AND Segment = '' "
        "AND WindowEnd >= {since:DateTime64(3)} AND WindowEnd < {until:DateTime64(3)} "
        "GROUP BY WindowStart, WindowEnd, ModelVersion, BaselineId ORDER BY WindowEnd",
        {"model": model, "kind": KIND, "since": since, "until": until})
    return [(Window(model, utc(ws), utc(we), v or None), bid, float(lw or 0.0)) for ws, we, v, bid, lw in rows]


def labelled_weights(store: Store, windows: list[Window]) -> list[float]:
    """For each window (one model and version), the weight of its predictions that have a label now: one scan."""
    if not windows:
        return []
    first = windows[0]
    span = Window(first.model, min(w.start for w in windows), max(w.end for w in windows), first.version)
    where, params = span.where()
    params = dict(params, starts=[to_ns(w.start) for w in windows], ends=[to_ns(w.end) for w in windows])
    rows = store.query(
        f"SELECT i, sum(w) FROM (SELECT p.Weight AS w, arrayJoin(arrayFilter(i -> p.t >= {{starts:Array(Int64)}}[i] "
        f"AND p.t < {{ends:Array(Int64)}}[i], range(1, length({{starts:Array(Int64)}}) + 1))) AS i "
        f"FROM (SELECT Weight, PredictionId, toUnixTimestamp64Nano(Timestamp) AS t FROM {store.table('ml_predictions')} "
        f"WHERE {where}) AS p INNER JOIN ({latest_labels(store)}) AS l ON p.PredictionId = l.PredictionId) GROUP BY i"
        " SETTINGS distributed_product_mode = 'local'", params)
    out = [0.0] * len(windows)
    for i, w in rows:
        out[int(i) - 1] = float(w)
    return out
