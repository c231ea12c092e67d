"""Anomalous predictions: single predictions whose inputs lie outside anything the reference had.

A drift test compares distributions; one prediction made on inputs far outside
the training data (an income of 10 million, a debt ratio of 40, a product code
never seen) moves no distribution, yet is the prediction least worth trusting.
Each prediction of a window gets a score, computed in ClickHouse over the
window's rows with the baseline's multivariate model (:mod:`.multivariate`):

* ``spe``: its PCA reconstruction error (distance to the reference's principal
  subspace: a broken relation between features) over the reference rows'
  99.9% quantile of it;
* ``t2``: its Hotelling T² in that subspace (how far along the reference's own
  directions of variation: an extreme value of correlated features) over its
  99.9% quantile;
* ``unseen``: how many of its categorical features hold a category the
  reference never had (when the baseline lists every reference category).

A prediction is **anomalous** when ``spe`` or ``t2`` exceeds 1, or it has an
unseen category; its score is ``max(spe, t2) + unseen``. The result
(``data_quality``, feature ``__multivariate__``, method ``anomalous_share``)
is the window's weighted share of anomalous predictions, flagged when it is
at least three times the reference's own share beyond the limits (about 0.2%)
and at least 1%, with a one-sided binomial p < 0.001 at the window's effective
size. ``details.top`` lists the ``TOP`` highest-scoring predictions with their
trace ids, time, score and the features that made them so (the largest
standardised deviations, the unseen categories), for drill-down.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.stats as sps

from modelwatch_analyzer.analysis import stats
from modelwatch_analyzer.analysis.multivariate import ERROR_SQL, FEATURE, Z_SQL, MultivariateModel, sql_params
from modelwatch_analyzer.analysis.results import INSUFFICIENT, Result
from modelwatch_analyzer.analysis.window import Window, utc
from modelwatch_analyzer.store.client import Store

METHOD = "anomalous_share"
TOP = 10
FLOOR = 0.01  # a share below this never pages, whatever the reference's
RATIO = 3.0  # ... nor one below this multiple of the reference's share
ALPHA = 1e-3

_T2_SQL = ("arraySum(arrayMap((c, l) -> pow(arraySum(arrayMap((a, b) -> a * b, z, c)), 2) / l, "
           "{mv_w:Array(Array(Float64))}, {mv_l:Array(Float64)}))")
_UNSEEN_SQL = ("arrayCount((f, cats) -> mapContains(Categorical, f) AND NOT has(cats, Categorical[f]), "
               "{an_cat_names:Array(String)}, {an_cats:Array(Array(String))})")


def results(store: Store, window: Window, model: MultivariateModel, categories: dict[str, list[str]],
            min_samples: float = 30.0) -> list[Result]:
    """The window's anomalous-prediction result (none when the model has no per-row limits: fitted before them).

    `categories`: the reference's categories of each categorical feature whose baseline lists them all."""
    if not model.components or not model.limits or not model.eigenvalues:
        return []
    limits = model.limits
    scored, params = scored_sql(store, window, model, categories)
    params["top"] = TOP
    (w, w2, wa, rows, hits), = store.query(
        f"SELECT sum(Weight), sum(Weight * Weight), sumIf(Weight, anomalous), count(), countIf(anomalous) "
        f"FROM ({scored})", params)
    w, w2 = float(w or 0.0), float(w2 or 0.0)
    n_eff = stats.effective_n(w, w2)
    expected = float(limits.get("rate", 0.002))
    threshold = max(FLOOR, RATIO * expected)
    common = {"n_reference": 0.0, "n_current": w}
    if n_eff < min_samples:
        return [Result("", "", FEATURE, METHOD, "data_quality", None, status=INSUFFICIENT, threshold=threshold,
                       details={"reason": f"current window has {n_eff:.0f} effective observations (< {min_samples:g})"},
                       **common)]
    share = float(wa or 0.0) / w
    pvalue = float(sps.binom.sf(math.ceil(share * n_eff) - 1, max(int(round(n_eff)), 1), min(max(expected, 1e-6), 1.0)))
    flagged = bool(share >= threshold and pvalue < ALPHA)
    top = store.query(f"SELECT TraceId, Timestamp, score, spe, t2, unseen, Numeric, Categorical FROM ({scored}) "
                      "WHERE anomalous ORDER BY score DESC, Timestamp DESC LIMIT {top:UInt32}", params)
    return [Result("", "", FEATURE, METHOD, "data_quality", share, threshold=threshold, pvalue=pvalue, drifted=flagged,
                   severity="warning" if flagged else "none",
                   details={"expected_share": expected, "anomalous_rows": int(hits or 0), "rows": int(rows or 0),
                            "n_current_effective": n_eff, "limits": {"spe": limits["spe"], "t2": limits["t2"]},
                            "top": [_explain(model, categories, *t) for t in top],
                            # an alert's drill-down (and the report's evidence) takes the worst predictions
                            **({"trace_ids": [t[0] for t in top]} if flagged else {})}, **common)]


def scored_sql(store: Store, window: Window, model: MultivariateModel,
               categories: dict[str, list[str]]) -> tuple[str, dict[str, Any]]:
    """SQL of the window's rows with their scores: Weight, TraceId, Timestamp, Numeric, Categorical, spe, t2,
    unseen, score, anomalous; and its parameters."""
    where, params = window.where()
    params.update(sql_params(model), mv_l=[max(x, 1e-12) for x in model.eigenvalues], spe_limit=model.limits["spe"],
                  t2_limit=model.limits["t2"], an_cat_names=list(categories), an_cats=[list(v) for v in categories.values()])
    sql = (f"SELECT Weight, TraceId, Timestamp, Numeric, Categorical, {Z_SQL} AS z, ({ERROR_SQL}) / {{spe_limit:Float64}} "
           f"AS spe, ({_T2_SQL}) / {{t2_limit:Float64}} AS t2, {_UNSEEN_SQL} AS unseen, "
           "greatest(spe, t2) + unseen AS score, spe > 1 OR t2 > 1 OR unseen > 0 AS anomalous "
           f"FROM {store.table('ml_predictions')} WHERE {where}")
    return sql, params


def _explain(model: MultivariateModel, categories: dict[str, list[str]], trace_id: str, ts: Any, score: float,
             spe: float, t2: float, unseen: int, numeric: dict[str, float], categorical: dict[str, str]) -> dict[str, Any]:
    """One anomalous prediction for drill-down: its trace id, score and what made it so."""
    # each feature's standardised deviation and its share of the reconstruction error (the residual off the
    # reference's subspace): the first says "extreme", the second "unlike the others' relation to it"
    x = np.array([numeric.get(f, np.nan) for f in model.numeric], float)
    z = np.where(np.isfinite(x), (x - np.asarray(model.mean)) / np.asarray(model.std), 0.0)
    w = np.asarray(model.components, float)
    residual = z - w.T @ (w @ z)
    order = np.argsort(-np.maximum(np.abs(z), np.abs(residual)))
    dev = [{"feature": model.numeric[i], "value": float(x[i]), "z": round(float(z[i]), 2),
            "residual": round(float(residual[i]), 2)} for i in order[:3] if np.isfinite(x[i])]
    when = utc(ts)
    return {"trace_id": trace_id, "timestamp": when.isoformat() if when else None, "score": float(score),
            "spe": float(spe), "t2": float(t2), "unseen": int(unseen), "features": dev,
            "unseen_categories": {f: categorical[f] for f in categories
                                  if f in categorical and categorical[f] not in categories[f]}}
