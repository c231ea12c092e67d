"""Multivariate drift: how the features move together, by PCA reconstruction error and a domain classifier.

Univariate methods compare one feature's distribution at a time, so they
miss a change in the relations between features (two features whose
correlation flips while each keeps its distribution). Two complementary
methods, fitted with the baseline (:func:`fit`) and stored next to it
(``ml_estimators``, task ``multivariate``):

* **PCA reconstruction error** (``pca_reconstruction``). The reference's
  numeric features are standardised (weighted mean and standard deviation;
  a missing value is the mean, 0 after standardising) and the principal
  components that explain 65% of their variance kept. A row's error is the
  squared distance between its standardised features and their projection
  on those components, ``‖z‖² − ‖Wᵀz‖²``. Per window the weighted mean
  error is computed in ClickHouse, in one pass over the window's rows (the
  components are query parameters). Its *reference band* is the mean ± 3
  standard deviations of the error over the reference cut in chunks (as the
  estimator's, :mod:`.estimator`); a window is drifted above the band when
  the difference is also beyond 3 standard errors of the two means (a
  small, heavily sampled window's mean error is noisy: the band of five
  reference chunks alone would page on noise).
* **Domain classifier** (``domain_classifier``). A gradient-boosted
  classifier learns to tell reference rows (a uniform sample of up to 5,000,
  stored with the model with their sampling weights) from the window's rows
  (up to 5,000, a hash sample), every row weighted by its sampling weight, all features, numeric and
  categorical; its 5-fold cross-validated ROC AUC is the statistic: 0.5 when
  the two cannot be told apart, 1 when they are disjoint. Drifted from
  ``0.55`` (warning; critical from ``0.7``) when the AUC is also 3 standard
  errors above chance, the Mann-Whitney standard error at the two sides'
  effective sample sizes: a day of a few hundred heavily weighted spans
  gives chance AUCs of 0.45-0.56, which must not page.

Both results are drift results of the pseudo-feature ``__multivariate__``
(``details.score`` true), so drift alert rules, metrics and the report take
them as they take a feature's verdict; they do not count in the drift share.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from modelwatch_analyzer.analysis import loss_model, stats
from modelwatch_analyzer.analysis.baseline import Baseline
from modelwatch_analyzer.analysis.estimation_data import feature_columns, frame_features, from_store
from modelwatch_analyzer.analysis.results import INSUFFICIENT, Result
from modelwatch_analyzer.analysis.window import Window, utc
from modelwatch_analyzer.store.client import Store

TASK = "multivariate"
FEATURE = "__multivariate__"
VARIANCE = 0.65
SAMPLE_ROWS = 5000
CHUNK_ROWS = 5000
THRESHOLD_STD = 3.0
AUC_BANDS = (0.55, 0.55, 0.7)  # info / warning / critical
FOLDS = 5
MIN_ROWS = 100


@dataclass
class MultivariateModel:
    model: str
    version: str
    baseline_id: str
    numeric: list[str] = field(default_factory=list)  # the PCA's features, in order
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    components: list[list[float]] = field(default_factory=list)  # k rows of d loadings
    explained: float = 0.0
    band: dict[str, float] = field(default_factory=dict)  # the reference chunks' mean error: mean, std, chunks
    features: dict[str, bool] = field(default_factory=dict)  # the domain classifier's (name -> numeric)
    sample: dict[str, list[Any]] = field(default_factory=dict)  # reference rows for the domain classifier
    sample_weight: list[float] = field(default_factory=list)  # their sampling weights
    eigenvalues: list[float] = field(default_factory=list)  # the kept components' variances (Hotelling's T²)
    limits: dict[str, float] = field(default_factory=dict)  # per-row anomaly limits: spe, t2, rate (anomalies.py)
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def to_json(self) -> dict[str, Any]:
        return {"numeric": self.numeric, "mean": self.mean, "std": self.std, "components": self.components,
                "explained": self.explained, "band": self.band, "features": self.features, "sample": self.sample,
                "sample_weight": self.sample_weight, "eigenvalues": self.eigenvalues, "limits": self.limits}

    @classmethod
    def from_json(cls, model: str, version: str, baseline_id: str, created: datetime, d: dict[str, Any]) -> MultivariateModel:
        return cls(model, version, baseline_id, list(d["numeric"]), list(d["mean"]), list(d["std"]),
                   [list(c) for c in d["components"]], float(d.get("explained", 0.0)), dict(d.get("band", {})),
                   {str(k): bool(v) for k, v in d.get("features", {}).items()}, dict(d.get("sample", {})),
                   [float(x) for x in d.get("sample_weight", [])], [float(x) for x in d.get("eigenvalues", [])],
                   {str(k): float(v) for k, v in d.get("limits", {}).items()}, created)


# -- fitting -----------------------------------------------------------------------------------


def _standardised(model: MultivariateModel, columns: dict[str, np.ndarray]) -> np.ndarray:
    z = np.column_stack([(np.asarray(columns[f], float) - m) / s for f, m, s in zip(model.numeric, model.mean, model.std)])
    return np.where(np.isfinite(z), z, 0.0)


def errors(model: MultivariateModel, columns: dict[str, np.ndarray]) -> np.ndarray:
    """Each row's reconstruction error (numpy; the window's are computed in SQL by :func:`_window_error`)."""
    z = _standardised(model, columns)
    w = np.asarray(model.components, float)
    return (z ** 2).sum(axis=1) - ((z @ w.T) ** 2).sum(axis=1)


def hotelling(model: MultivariateModel, columns: dict[str, np.ndarray]) -> np.ndarray:
    """Each row's Hotelling T² in the kept components' space: Σ (wⱼ·z)² / λⱼ."""
    z = _standardised(model, columns)
    w = np.asarray(model.components, float)
    return (((z @ w.T) ** 2) / np.maximum(np.asarray(model.eigenvalues, float), 1e-12)).sum(axis=1)


ANOMALY_QUANTILE = 0.999


def _weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    order = np.argsort(x)
    cum = np.cumsum(w[order])
    return float(x[order][min(int(np.searchsorted(cum, q * cum[-1])), x.size - 1)])


def _limits(model: MultivariateModel, columns: dict[str, np.ndarray], weight: np.ndarray) -> dict[str, float]:
    """The reference rows' 99.9% quantiles of the reconstruction error and of T², and the share beyond either."""
    spe, t2 = errors(model, columns), hotelling(model, columns)
    spe_limit = _weighted_quantile(spe, weight, ANOMALY_QUANTILE)
    t2_limit = _weighted_quantile(t2, weight, ANOMALY_QUANTILE)
    beyond = (spe > spe_limit) | (t2 > t2_limit)
    return {"spe": spe_limit, "t2": t2_limit, "rate": float(weight[beyond].sum() / weight.sum())}


def fit(columns: dict[str, np.ndarray], numeric: dict[str, bool], weight: np.ndarray, model: str, version: str,
        baseline_id: str, seed: int = 0) -> MultivariateModel | None:
    """The multivariate model of reference rows (in time order); None with fewer than two features or rows."""
    n = weight.size
    if n < MIN_ROWS or len(columns) < 2:
        return None
    out = MultivariateModel(model, version, baseline_id, features=dict(numeric))
    usable = [f for f in columns if numeric[f] and np.isfinite(np.asarray(columns[f], float)).sum() >= MIN_ROWS]
    if len(usable) >= 2:
        w = weight / weight.sum()
        for f in usable:
            x = np.asarray(columns[f], float)
            ok = np.isfinite(x)
            m = float(np.sum(w[ok] * x[ok]) / w[ok].sum())
            sd = float(np.sqrt(np.sum(w[ok] * (x[ok] - m) ** 2) / w[ok].sum()))
            if sd > 0:
                out.numeric.append(f)
                out.mean.append(m)
                out.std.append(sd)
    if len(out.numeric) >= 2:
        z = _standardised(out, columns)
        cov = (z * (weight / weight.sum())[:, None]).T @ z
        values, vectors = np.linalg.eigh(cov)
        order = np.argsort(values)[::-1]
        values, vectors = np.clip(values[order], 0.0, None), vectors[:, order]
        share = np.cumsum(values) / max(values.sum(), 1e-300)
        k = int(np.searchsorted(share, VARIANCE) + 1)
        out.components = vectors[:, :k].T.tolist()
        out.eigenvalues = values[:k].tolist()
        out.explained = float(share[k - 1])
        out.band = _band(errors(out, columns), weight)
        out.limits = _limits(out, columns, weight)
    rng = np.random.default_rng(seed)  # a uniform sample of the rows, each keeping its weight (scaled to the draw)
    pick = np.sort(rng.choice(n, min(SAMPLE_ROWS, n), replace=False))
    out.sample = {f: [None if (numeric[f] and not np.isfinite(v)) else (float(v) if numeric[f] else str(v))
                      for v in np.asarray(columns[f], float if numeric[f] else object)[pick]] for f in columns}
    out.sample_weight = (weight[pick] * (n / pick.size)).tolist()
    return out


def fit_frame(df: Any, baseline: Baseline, weight: str | None = None) -> MultivariateModel | None:
    """:func:`fit` on the training frame `baseline` was built from (its features, `weight` a column of weights)."""
    features = feature_columns(baseline)
    columns, w = frame_features(df, features, weight)
    return fit(columns, features, w, baseline.model, baseline.version, baseline.id)


def fit_window(store: Store, window: Window, baseline: Baseline, max_rows: int = 200_000) -> MultivariateModel | None:
    """:func:`fit` on the stored predictions of the reference window `baseline` was built from (weighted)."""
    features = feature_columns(baseline)
    rows, _has, _rate = from_store(store, window, labelled_only=False, max_rows=max_rows, features=features)
    return fit(rows.columns, features, rows.weight, baseline.model, baseline.version, baseline.id)


def _band(err: np.ndarray, weight: np.ndarray) -> dict[str, float]:
    n = err.size
    size = max(min(CHUNK_ROWS, n // 5), 1)
    means = [float(np.average(err[i:i + size], weights=weight[i:i + size])) for i in range(0, n - size + 1, size)]
    arr = np.asarray(means)
    overall = float(np.average(err, weights=weight))
    se = float(np.sqrt(np.sum(weight ** 2 * (err - overall) ** 2)) / weight.sum())
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
            "chunks": int(arr.size), "chunk_size": size, "overall": overall, "standard_error": se}


# -- a window ----------------------------------------------------------------------------------------


Z_SQL = ("arrayMap((f, m, s) -> if(mapContains(Numeric, f) AND isFinite(Numeric[f]), (Numeric[f] - m) / s, 0.), "
         "{mv_names:Array(String)}, {mv_means:Array(Float64)}, {mv_stds:Array(Float64)})")
"""SQL: a row's standardised PCA features (a missing value is the mean: 0), over :func:`sql_params`."""
ERROR_SQL = ("arraySum(x -> x * x, z) - arraySum(c -> pow(arraySum(arrayMap((a, b) -> a * b, z, c)), 2), "
             "{mv_w:Array(Array(Float64))})")
"""SQL: a row's reconstruction error, from ``z`` (:data:`Z_SQL`)."""


def sql_params(model: MultivariateModel) -> dict[str, Any]:
    return {"mv_names": model.numeric, "mv_means": model.mean, "mv_stds": model.std, "mv_w": model.components}


def _window_error(store: Store, window: Window, model: MultivariateModel) -> tuple[float, float, float, float]:
    """(Σw·e, Σw, Σw², Σw²(e − ē)²-ready sums) of the window's rows' reconstruction errors, computed in SQL."""
    where, params = window.where()
    params.update(sql_params(model))
    z, err = Z_SQL, ERROR_SQL
    (we, w, w2, w2e, w2ee), = store.query(
        f"SELECT sum(Weight * e), sum(Weight), sum(Weight * Weight), sum(Weight * Weight * e), "
        f"sum(Weight * Weight * e * e) FROM (SELECT Weight, {z} AS z, {err} AS e "
        f"FROM {store.table('ml_predictions')} WHERE {where})", params)
    w = float(w or 0.0)
    if w <= 0:
        return float("nan"), 0.0, 0.0, float("nan")
    mean = float(we) / w
    # Var of a ratio estimator: Σ w² (e − ē)² / (Σw)²
    var = (float(w2ee) - 2 * mean * float(w2e) + mean * mean * float(w2)) / (w * w)
    return mean, w, float(w2), float(np.sqrt(max(var, 0.0)))


def _pca(store: Store, window: Window, model: MultivariateModel, min_samples: float) -> Result | None:
    if not model.components:
        return None
    mean, w, w2, se = _window_error(store, window, model)
    n_eff = stats.effective_n(w, w2)
    common = {"n_reference": float(model.band.get("chunks", 0) * model.band.get("chunk_size", 0)), "n_current": w}
    if n_eff < min_samples:
        return Result("", "", FEATURE, "pca_reconstruction", "drift", None, status=INSUFFICIENT,
                      details={"reason": f"current window has {n_eff:.0f} effective observations (< {min_samples:g})"},
                      **common)
    upper = model.band["mean"] + THRESHOLD_STD * model.band["std"]
    ref_mean = model.band.get("overall", model.band["mean"])
    z = (mean - ref_mean) / max(float(np.hypot(se, model.band.get("standard_error", 0.0))), 1e-300)
    drifted = bool(mean > upper and z > THRESHOLD_STD)
    return Result("", "", FEATURE, "pca_reconstruction", "drift", mean, threshold=upper, drifted=drifted,
                  severity="warning" if drifted else "none",
                  details={"score": True, "standard_error": se, "z": z, "reference_mean": ref_mean,
                           "reference_std": model.band["std"], "components": len(model.components),
                           "features": model.numeric, "explained_variance": model.explained,
                           "n_current_effective": n_eff}, **common)


def _matrix(columns: dict[str, Any], features: dict[str, bool], encodings: list[loss_model.Encoding]) -> np.ndarray:
    return np.column_stack([e.encode(np.asarray(columns[e.name], float if features[e.name] else object))
                            for e in encodings])


def _domain(store: Store, window: Window, model: MultivariateModel, min_samples: float, seed: int = 0) -> Result:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    cur, _has, rate = from_store(store, window, labelled_only=False, max_rows=SAMPLE_ROWS, features=model.features)
    ref = {f: np.asarray([np.nan if v is None else v for v in vals], float) if model.features[f]
           else np.asarray(["" if v is None else v for v in vals], object) for f, vals in model.sample.items()}
    n_ref, n_cur = len(next(iter(ref.values()))) if ref else 0, len(cur)
    n_eff = stats.effective_n(float(cur.weight.sum()), float((cur.weight ** 2).sum()))
    common = {"n_reference": float(n_ref), "n_current": float(cur.weight.sum())}
    if n_eff < min_samples or n_ref < MIN_ROWS or n_cur < MIN_ROWS:
        return Result("", "", FEATURE, "domain_classifier", "drift", None, status=INSUFFICIENT,
                      details={"reason": f"{n_cur} current and {n_ref} reference rows (at least {MIN_ROWS} each, "
                                         f"{min_samples:g} effective)"}, **common)
    names = list(model.features)
    encodings = [loss_model.encoding(f, ref[f], model.features[f]) for f in names]
    x = np.vstack([_matrix(ref, model.features, encodings), _matrix(cur.columns, model.features, encodings)])
    y = np.r_[np.zeros(n_ref), np.ones(n_cur)]
    # each side weighs the same in total; within each, rows by their sampling weights (a tail-sampled
    # side holds its uncertain predictions far more often than the population does)
    ref_w = np.asarray(model.sample_weight, float) if len(model.sample_weight) == n_ref else np.ones(n_ref)
    w = np.r_[ref_w / ref_w.sum(), cur.weight / cur.weight.sum()]
    scores = np.zeros(y.size)
    for train, test in StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(x, y):
        clf = HistGradientBoostingClassifier(max_iter=50, max_leaf_nodes=15, early_stopping=False, random_state=seed)
        clf.fit(x[train], y[train], sample_weight=w[train] * y.size)
        scores[test] = clf.predict_proba(x[test])[:, 1]
    auc = float(roc_auc_score(y, scores, sample_weight=w))
    ref_eff = stats.effective_n(float(ref_w.sum()), float((ref_w ** 2).sum()))
    se0 = null_auc_se(ref_eff, n_eff)
    z = (auc - 0.5) / se0
    material = auc >= AUC_BANDS[1]
    drifted = bool(material and z >= THRESHOLD_STD)
    details: dict[str, Any] = {"score": True, "reference_rows": n_ref, "current_rows": n_cur, "sample_rate": rate,
                               "folds": FOLDS, "features": names, "n_current_effective": n_eff,
                               "n_reference_effective": ref_eff, "null_standard_error": se0, "z": z}
    if material and not drifted:
        details["gated"] = (f"AUC above {AUC_BANDS[1]:g}, but within {THRESHOLD_STD:g} standard errors of chance "
                            f"({se0:.3f} at these effective sample sizes)")
    return Result("", "", FEATURE, "domain_classifier", "drift", auc, threshold=AUC_BANDS[1], drifted=drifted,
                  severity=stats.severity(auc, AUC_BANDS) if drifted else "none", details=details, **common)


def null_auc_se(n_reference: float, n_current: float) -> float:
    """The standard error of a ROC AUC between two samples of one distribution (Mann-Whitney's, at effective sizes)."""
    n1, n2 = max(n_reference, 1.0), max(n_current, 1.0)
    return float(np.sqrt((n1 + n2 + 1) / (12 * n1 * n2)))


def results(store: Store, window: Window, model: MultivariateModel, min_samples: float = 30.0) -> list[Result]:
    """The window's multivariate drift results (see the module docstring)."""
    out = [r for r in (_pca(store, window, model, min_samples),) if r is not None]
    out.append(_domain(store, window, model, min_samples))
    return out


# -- storage ---------------------------------------------------------------------------------------------

_COLUMNS = ("ModelName", "ModelVersion", "BaselineId", "CreatedAt", "Task", "Spec")


def save(store: Store, model: MultivariateModel) -> None:
    store.insert("ml_estimators", [(model.model, model.version, model.baseline_id, model.created_at, TASK,
                                    json.dumps(model.to_json(), allow_nan=False))], _COLUMNS)


def load(store: Store, model: str, baseline_id: str) -> MultivariateModel | None:
    rows = store.query(f"SELECT ModelVersion, CreatedAt, Spec FROM {store.table('ml_estimators')} FINAL "
                       "WHERE ModelName = {model:String} AND BaselineId = {id:String} AND Task = {task:String} LIMIT 1",
                       {"model": model, "id": baseline_id, "task": TASK})
    if not rows:
        return None
    version, created, spec = rows[0]
    return MultivariateModel.from_json(model, version, baseline_id, utc(created) or datetime.now(timezone.utc),
                                       json.loads(spec))
