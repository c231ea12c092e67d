"""One analysis: a model's window against its baseline → drift, data quality, prediction drift, summary.

:func:`analyze` reads the window with the scans of :mod:`.scan` (two passes
over the model's rows in the window, whatever the number of features),
finishes every method of :mod:`.methods` with :mod:`.stats`, corrects the
tests' p-values across the model's features (Benjamini-Hochberg), grades
severities, and returns :class:`~.results.Result` rows. :func:`run` also
adds performance against labels (:mod:`.performance`), performance estimated
without them (:mod:`.estimation`, when the baseline has an estimator), multivariate
drift (:mod:`.multivariate`, when the baseline has its model), and pipeline
completeness (:mod:`.completeness`: kept predictions the store lacks) and
stores the rows (a re-run of the same window replaces them).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import scipy.stats as sps
from modelwatch import contract as c

from modelwatch_analyzer.analysis import (
    anomalies,
    completeness,
    estimation,
    estimator,
    hourly,
    multivariate,
    performance,
    results,
    scan,
    segments,
    stats,
)
from modelwatch_analyzer.analysis import baseline as baselines
from modelwatch_analyzer.analysis.baseline import Baseline, FeatureBaseline
from modelwatch_analyzer.analysis.methods import (
    CATEGORICAL_METHODS,
    NUMERIC_METHODS,
    TESTS,
    DriftSettings,
)
from modelwatch_analyzer.analysis.results import INSUFFICIENT, Result
from modelwatch_analyzer.analysis.scan import CategoricalAgg, NumericAgg
from modelwatch_analyzer.analysis.window import Window
from modelwatch_analyzer.store.client import Store

OTHER = c.OTHER  # the bucket of the categories a baseline does not list
"""The bucket of categories outside the reference's list (unseen, or beyond its cap)."""

EVIDENCE_TRACES = 5
STUCK_ALPHA = 1e-3  # the other outputs' share fell further than chance gives (one-sided binomial)


@dataclass
class DataQualitySettings:
    """Ceilings on current-window rates; a rate above its ceiling is flagged (``drifted``, severity warning)."""

    missing_increase: float = 0.05  # missing rate above the reference's by more than this
    out_of_range: float = 0.05  # share of values outside the reference's [min, max]
    type_errors: float = 0.0  # share of a numeric feature's values that arrived as text
    unseen_categories: float = 0.05
    non_finite: float = 0.0
    pipeline_gap: float = 0.01  # share of the SDK's kept predictions missing from the store (see completeness.py)
    stuck_share: float = 0.9  # one output value this share of the window (and more than in the reference): stuck
    class_share: float = 0.05  # a class's share this far (absolute) from its reference share, beyond chance: flagged
    spread_collapse: float = 0.25  # the score's (or a regressor's output's) std below this ratio of the reference's


@dataclass
class Settings:
    drift: DriftSettings = field(default_factory=DriftSettings)
    quality: DataQualitySettings = field(default_factory=DataQualitySettings)
    performance: performance.PerformanceSettings = field(default_factory=performance.PerformanceSettings)
    estimation: estimator.EstimationSettings = field(default_factory=estimator.EstimationSettings)
    segments: segments.SegmentSettings = field(default_factory=segments.SegmentSettings)
    reuse_hours: bool = True  # read (and keep) the hourly aggregates of whole hours: see hourly.py
    numeric_sample_rows: int = 0  # more rows to scan than this: numeric features from a uniform sample of ~this many


def analyze(store: Store, window: Window, settings: Settings | None = None,
            baseline: Baseline | None = None) -> list[Result]:
    """Drift, data quality and prediction drift of `window` against `baseline` (default: the newest for the model version)."""
    settings = settings or Settings()
    ds = settings.drift
    if baseline is None:
        baseline = baselines.load(store, window.model, window.version)
    out, seen = _measure(store, window, settings, baseline)
    numeric = {k: f.kind == baselines.NUMERIC for k, f in baseline.features.items()}
    _correct_and_judge(out, ds, numeric)
    out = [r for r in out if r.kind != "drift" or ds.reported(r.method, r.feature or "", numeric.get(r.feature or "", True))]
    out.append(_summary(out, ds, seen.totals))
    out[-1].details.update(hours_reused=seen.hours_reused, hours_scanned=seen.hours_scanned)
    if seen.sample < 1.0:  # every numeric result of a sampled scan says so
        for r in out:
            if r.feature in baseline.numeric() or r.kind == "summary":
                r.details["sample_rate"] = seen.sample
    _evidence(store, window, baseline, out)
    return _stamp(out, window, baseline)


def _measure(store: Store, window: Window, settings: Settings, baseline: Baseline) -> tuple[list[Result], Any]:
    """The drift, data-quality and output-pattern results of `window`, before any verdict; and what was read."""
    ds = settings.drift
    numeric_ref = baseline.numeric()
    categorical_ref = baseline.categorical()
    seen = hourly.aggregates(store, window, baseline.id, {k: f.grid for k, f in numeric_ref.items() if f.grid is not None},
                             {k: (f.min, f.max) for k, f in numeric_ref.items()}, keys=list(baseline.features),
                             numbers_as_text=list(categorical_ref), cap=baselines.CATEGORY_CAP,
                             reuse=settings.reuse_hours, numeric_sample_rows=settings.numeric_sample_rows)
    totals, cur_num, cur_cat = seen.totals, seen.numeric, seen.categorical

    out: list[Result] = []
    for name, ref in numeric_ref.items():
        cur = cur_num.get(name) or NumericAgg(grid_counts=np.zeros(ref.grid.cells + 2) if ref.grid else None)
        text = cur_cat.get(name)
        out += _numeric_drift(name, ref, cur, ds)
        out += _numeric_quality(name, ref, cur, text, totals.weight, baseline.rows, settings.quality)
    for name, ref in categorical_ref.items():
        cur_c = cur_cat.get(name) or CategoricalAgg()
        out += _categorical_drift(name, ref, cur_c, ds)
        out += _categorical_quality(name, ref, cur_c, totals.weight, baseline.rows, settings.quality)
    out += _output_patterns(baseline, cur_num, cur_cat, settings.quality, ds.min_samples)
    return out, seen


def _stamp(rows: list[Result], window: Window, baseline: Baseline) -> list[Result]:
    """Name the model, version, window and baseline on `rows` (the methods leave them blank)."""
    for r in rows:
        r.model, r.version, r.baseline_id = window.model, window.version or "", baseline.id
        r.window_start, r.window_end = window.start, window.end
    return rows


def run(store: Store, window: Window, settings: Settings | None = None, baseline: Baseline | None = None,
        save: bool = True) -> list[Result]:
    """:func:`analyze` plus performance against labels and pipeline completeness; stamped with one run id, stored when `save`."""
    settings = settings or Settings()
    if baseline is None:
        baseline = baselines.load(store, window.model, window.version)
    rows = analyze(store, window, settings, baseline)
    rows += _stamp(performance.evaluate(store, window, settings.performance), window, baseline)
    rows += _stamp(estimated(store, window, settings, baseline), window, baseline)
    mv = multivariate.load(store, baseline.model, baseline.id)
    if mv is not None:
        rows += _stamp(multivariate.results(store, window, mv, settings.drift.min_samples), window, baseline)
        exact = {k: list(baseline.features[k].categories) for k, is_numeric in mv.features.items()
                 if not is_numeric and k in baseline.features and baseline.features[k].other == 0}
        rows += _stamp(anomalies.results(store, window, mv, exact, settings.drift.min_samples), window, baseline)
    rows += _stamp(completeness.results(store, window, settings.quality.pipeline_gap), window, baseline)
    rows += by_segment(store, window, settings, baseline)
    run_id, run_at = uuid.uuid4().hex[:16], datetime.now(timezone.utc)
    for r in rows:
        r.run_id, r.run_at = run_id, run_at
    if save:
        results.save(store, rows)
    return rows


def estimated(store: Store, window: Window, settings: Settings, baseline: Baseline) -> list[Result]:
    """Label-free performance estimates (:mod:`.estimation`) when the baseline has an estimator."""
    if not settings.estimation.enabled:
        return []
    est = estimator.load(store, baseline.model, baseline.id)
    if est is None:
        return []
    return estimation.evaluate(store, window, est, settings.estimation, min_labels=settings.performance.min_labels)


# -- numeric ---------------------------------------------------------------------------


def _insufficient(feature: str, methods: tuple[str, ...], n_ref: float, n_cur: float, why: str) -> list[Result]:
    return [Result("", "", feature, m, "drift", None, n_reference=n_ref, n_current=n_cur, status=INSUFFICIENT,
                   details={"reason": why}) for m in methods]


def _enough(ref_eff: float, cur_eff: float, ds: DriftSettings) -> str | None:
    if ref_eff < ds.min_samples:
        return f"reference has {ref_eff:.0f} effective observations (< {ds.min_samples:g})"
    if cur_eff < ds.min_samples:
        return f"current window has {cur_eff:.0f} effective observations (< {ds.min_samples:g})"
    return None


def _numeric_drift(name: str, ref: FeatureBaseline, cur: NumericAgg, ds: DriftSettings) -> list[Result]:
    cur_eff = stats.effective_n(cur.n, cur.n2)
    why = _enough(ref.n_eff, cur_eff, ds)
    if why or ref.grid is None or cur.grid_counts is None:
        return _insufficient(name, NUMERIC_METHODS, ref.n, cur.n, why or "no reference values")
    assert ref.grid_counts is not None and ref.cuts is not None
    rb, cb = stats.rebin(ref.grid_counts, ref.cuts), stats.rebin(cur.grid_counts, ref.cuts)
    ks = stats.ks_from_grid(ref.grid_counts, cur.grid_counts, ref.n_eff, cur_eff)
    w = stats.wasserstein_from_grid(ref.grid, ref.grid_counts, cur.grid_counts, ref.tails,
                                    (cur.tail_below, cur.tail_above))
    scale = ref.std if ref.std > 0 else ref.grid.width * ref.grid.cells
    common = {"n_reference": ref.n, "n_current": cur.n}
    eff = {"n_reference_effective": ref.n_eff, "n_current_effective": cur_eff}
    bins = {"bin_edges": ref.bin_edges.tolist(), "reference": (rb / rb.sum()).tolist(), "current": (cb / cb.sum()).tolist()}
    return [
        Result("", "", name, "psi", "drift", stats.psi(rb, cb), details={**bins, "epsilon": stats.EPSILON}, **common),
        Result("", "", name, "ks", "drift", ks.statistic, pvalue=ks.pvalue,
               details={**eff, "ks_upper": ks.upper, "grid_cells": ref.grid.cells}, **common),
        Result("", "", name, "wasserstein", "drift", w.distance / scale,
               details={"unnormalised": w.distance, "reference_std": ref.std,
                        "wasserstein_error_bound": w.error_bound / scale}, **common),
        Result("", "", name, "jensen_shannon", "drift", stats.js_distance(rb, cb), details=bins, **common),
    ]


def _rate(x: float, n: float) -> float:
    return x / n if n > 0 else 0.0


def _quality(feature: str, method: str, rate: float, ceiling: float, n_ref: float, n_cur: float,
             **details: Any) -> Result:
    flagged = rate > ceiling + 1e-12
    return Result("", "", feature, method, "data_quality", rate, threshold=ceiling, drifted=flagged,
                  severity="warning" if flagged else "none", n_reference=n_ref, n_current=n_cur, details=details)


def _numeric_quality(name: str, ref: FeatureBaseline, cur: NumericAgg, text: CategoricalAgg | None, total: float,
                     ref_rows: float, q: DataQualitySettings) -> list[Result]:
    if total <= 0:
        return []
    text_w = text.n if text else 0.0
    missing = max(total - cur.n - cur.nonfinite - text_w, 0.0)
    ref_missing = _rate(ref.missing, ref_rows)
    out = [
        _quality(name, "missing_rate", missing / total, min(ref_missing + q.missing_increase, 1.0), ref.n, total,
                 reference_rate=ref_missing),
        _quality(name, "type_errors", text_w / total, q.type_errors, ref.n, total,
                 examples=list(text.counts)[:5] if text else []),
        _quality(name, "non_finite", cur.nonfinite / total, q.non_finite, ref.n, total),
    ]
    if cur.n > 0 and math.isfinite(ref.min):
        out.append(_quality(name, "out_of_range", cur.out_of_range / cur.n, q.out_of_range, ref.n, cur.n,
                            reference_min=ref.min, reference_max=ref.max, current_min=cur.min, current_max=cur.max))
    return out


def _output_patterns(baseline: Baseline, cur_num: dict[str, NumericAgg], cur_cat: dict[str, CategoricalAgg],
                     q: DataQualitySettings, min_samples: float) -> list[Result]:
    """A model stuck on one output, and a score (or a regressor's output) whose spread collapsed."""
    out: list[Result] = []
    pred = baseline.features.get(scan.PREDICTION)
    cur_p = cur_cat.get(scan.PREDICTION)
    if pred is not None and pred.kind == baselines.CATEGORICAL and cur_p is not None and cur_p.counts \
            and stats.effective_n(cur_p.n, cur_p.n2) >= min_samples:
        value, weight = max(cur_p.counts.items(), key=lambda kv: kv[1])
        share = weight / cur_p.n
        ref_total = sum(pred.categories.values()) + pred.other
        ref_share = pred.categories.get(value, 0.0) / ref_total if ref_total > 0 else 0.0
        # stuck: the other outputs fell to at most half their reference share, beyond what chance gives a
        # window of this effective size (one-sided binomial p < 0.001); a model that always gave this value
        # ~90% of the time is not stuck at 92%
        rest, ref_rest = 1.0 - share, 1.0 - ref_share
        n_eff = stats.effective_n(cur_p.n, cur_p.n2)
        pvalue = float(sps.binom.cdf(np.floor(rest * n_eff), max(int(round(n_eff)), 1), min(max(ref_rest, 1e-12), 1.0)))
        flagged = bool(share >= q.stuck_share and rest <= ref_rest / 2 and pvalue < STUCK_ALPHA)
        out.append(Result("", "", scan.PREDICTION, "stuck_output", "data_quality", share, threshold=q.stuck_share,
                          drifted=flagged, severity="warning" if flagged else "none", n_reference=pred.n,
                          n_current=cur_p.n, pvalue=pvalue,
                          details={"value": value, "reference_share": ref_share, "n_current_effective": n_eff}))
        out.append(_class_share(pred, cur_p, n_eff, q.class_share))
    for name in (scan.SCORE, scan.PREDICTION):
        ref = baseline.features.get(name)
        cur = cur_num.get(name)
        if ref is None or ref.kind != baselines.NUMERIC or cur is None or not ref.std > 0 \
                or stats.effective_n(cur.n, cur.n2) < min_samples:
            continue
        spread = cur.std if np.isfinite(cur.std) else _grid_std(ref, cur)
        if not np.isfinite(spread):
            continue
        ratio = spread / ref.std
        flagged = bool(ratio < q.spread_collapse)
        out.append(Result("", "", name, "spread_collapse", "data_quality", ratio, threshold=q.spread_collapse,
                          drifted=flagged, severity="warning" if flagged else "none", n_reference=ref.n,
                          n_current=cur.n, details={"reference_std": ref.std, "current_std": spread,
                                                    "floor": True}))
    return out


def _class_share(pred: FeatureBaseline, cur: CategoricalAgg, n_eff: float, floor: float) -> Result:
    """The class whose share moved most from the reference's, flagged outside its band: the reference share ±
    the binomial 99.9% interval at the window's effective size (Bonferroni over the classes), and at least
    `floor` away (a shift too small to act on does not page at production volumes)."""
    ref_total = sum(pred.categories.values()) + pred.other
    classes = [k for k in pred.categories if k != OTHER]
    z = float(sps.norm.isf(STUCK_ALPHA / (2 * max(len(classes), 1))))
    worst: tuple[float, str, float, float, float] | None = None
    for k in classes:
        p0 = pred.categories[k] / ref_total if ref_total > 0 else 0.0
        p = cur.counts.get(k, 0.0) / cur.n
        half = max(z * math.sqrt(max(p0 * (1 - p0), 1e-12) / max(n_eff, 1.0)), floor)
        excess = abs(p - p0) / half
        if worst is None or excess > worst[0]:
            worst = (excess, k, p0, p, half)
    if worst is None:
        return Result("", "", scan.PREDICTION, "class_share", "data_quality", None, status=INSUFFICIENT,
                      details={"reason": "the reference lists no classes"})
    excess, k, p0, p, half = worst
    flagged = excess > 1
    return Result("", "", scan.PREDICTION, "class_share", "data_quality", abs(p - p0), threshold=half, drifted=flagged,
                  severity="warning" if flagged else "none", n_reference=pred.n, n_current=cur.n,
                  details={"value": k, "reference_share": p0, "share": p, "band": [max(p0 - half, 0.0), min(p0 + half, 1.0)],
                           "n_current_effective": n_eff})


def _grid_std(ref: FeatureBaseline, cur: NumericAgg) -> float:
    """A window's standard deviation from its counts on the reference's grid (hourly aggregates keep no moments):
    each cell at its centre, the open cells at the reference's extremes."""
    if ref.grid is None or cur.grid_counts is None or cur.grid_counts.sum() <= 0:
        return float("nan")
    edges = ref.grid.edges()
    centres = np.r_[min(ref.min, edges[0]), (edges[:-1] + edges[1:]) / 2, max(ref.max, edges[-1])]
    w = np.asarray(cur.grid_counts, float)[:centres.size]
    mean = float(np.average(centres, weights=w))
    return float(np.sqrt(np.average((centres - mean) ** 2, weights=w)))


# -- categorical -------------------------------------------------------------------------


def _aligned(ref: FeatureBaseline, cur: CategoricalAgg) -> tuple[list[str], np.ndarray, np.ndarray, dict[str, float]]:
    """Reference categories + one bucket for the rest: weighted counts of both sides over the same bins."""
    cats = list(ref.categories)
    r = np.array([ref.categories[c] for c in cats] + [ref.other], float)
    c = np.array([cur.counts.get(k, 0.0) for k in cats] + [0.0], float)
    unseen = {k: v for k, v in cur.counts.items() if k not in ref.categories}
    c[-1] = max(cur.n - c[:-1].sum(), 0.0)  # unseen, plus anything beyond the current side's cap
    return cats + [OTHER], r, c, unseen


def _categorical_drift(name: str, ref: FeatureBaseline, cur: CategoricalAgg, ds: DriftSettings) -> list[Result]:
    cur_eff = stats.effective_n(cur.n, cur.n2)
    why = _enough(ref.n_eff, cur_eff, ds)
    if why:
        return _insufficient(name, CATEGORICAL_METHODS, ref.n, cur.n, why)
    cats, r, c, unseen = _aligned(ref, cur)
    if r[-1] == 0 and c[-1] == 0:  # no "other" bucket on either side: drop it
        cats, r, c = cats[:-1], r[:-1], c[:-1]
    chi = stats.chi_square(r, c, ref.n_eff, cur_eff)
    common = {"n_reference": ref.n, "n_current": cur.n}
    top = np.argsort(-(np.abs(c / max(c.sum(), 1e-300) - r / max(r.sum(), 1e-300))))[:10]
    shift = {cats[i]: {"reference": float(r[i] / r.sum()), "current": float(c[i] / c.sum())} for i in top}
    return [
        Result("", "", name, "psi", "drift", stats.psi(r, c), details={"largest_shifts": shift, "epsilon": stats.EPSILON,
                                                                      "unseen": sorted(unseen, key=unseen.get,
                                                                                       reverse=True)[:10]}, **common),
        Result("", "", name, "chi_square", "drift", chi.statistic, pvalue=chi.pvalue,
               details={"dof": chi.dof, "n_reference_effective": ref.n_eff, "n_current_effective": cur_eff}, **common),
        Result("", "", name, "jensen_shannon", "drift", stats.js_distance(r, c), details={"largest_shifts": shift},
               **common),
    ]


def _categorical_quality(name: str, ref: FeatureBaseline, cur: CategoricalAgg, total: float, ref_rows: float,
                         q: DataQualitySettings) -> list[Result]:
    if total <= 0:
        return []
    ref_missing = _rate(ref.missing, ref_rows)
    out = [_quality(name, "missing_rate", max(total - cur.n, 0.0) / total, min(ref_missing + q.missing_increase, 1.0),
                    ref.n, total, reference_rate=ref_missing)]
    if cur.n > 0:
        unseen = {k: v for k, v in cur.counts.items() if k not in ref.categories}
        exact = ref.other == 0
        out.append(_quality(name, "unseen_categories", sum(unseen.values()) / cur.n, q.unseen_categories, ref.n, cur.n,
                            examples=sorted(unseen, key=unseen.get, reverse=True)[:10],
                            exact=exact))
    return out


# -- verdicts -------------------------------------------------------------------------------


def _correct_and_judge(rows: list[Result], ds: DriftSettings, numeric: dict[str, bool]) -> None:
    """BH across the model's tests, then each method's verdict and severity (see :mod:`.methods`)."""
    tests = [r for r in rows if r.kind == "drift" and r.method in TESTS and r.status == results.OK]
    adjusted = stats.benjamini_hochberg(np.array([r.pvalue for r in tests], float))
    significant: dict[tuple[str, str], bool] = {}
    for r, adj in zip(tests, adjusted):
        rule = ds.rule(r.feature or "", r.method)
        r.threshold = rule.threshold
        r.details["adjusted_pvalue"] = float(adj)
        r.drifted = bool(adj < rule.threshold)
        significant[r.segment, r.feature or ""] = r.drifted
    for r in rows:
        if r.kind != "drift" or r.method in TESTS or r.status != results.OK:
            continue
        rule = ds.rule(r.feature or "", r.method)
        r.threshold = rule.threshold
        material = r.statistic is not None and math.isfinite(r.statistic) and r.statistic >= rule.threshold
        gate = significant.get((r.segment, r.feature or ""), True) if ds.gate else True
        r.drifted = bool(material and gate)
        r.severity = stats.severity(r.statistic, rule.bands) if r.drifted else "none"
        if material and not gate:
            r.details["gated"] = "distance above threshold, but the test is not significant"
    for r in rows:
        if r.kind == "drift" and r.status == results.OK:
            r.details["score"] = r.method == ds.score_method(r.feature or "", numeric.get(r.feature or "", True))


# -- segments ---------------------------------------------------------------------------------


def by_segment(store: Store, window: Window, settings: Settings, baseline: Baseline) -> list[Result]:
    """Drift, data quality and performance of each configured segment's predictions against the same segment's
    reference (:mod:`.segments`), Benjamini-Hochberg across every segment's features, and where it concentrates."""
    cfg = settings.segments
    if not cfg.keys:
        return []
    ds = settings.drift
    numeric = {k: f.kind == baselines.NUMERIC for k, f in baseline.features.items()}
    plan = segments.plan(store, window, baseline, cfg)
    measured: list[tuple[Window, Baseline, list[Result]]] = []
    out: list[Result] = list(plan.unanalysed)
    for seg, ref in plan.analysed:
        seg_window = window.of_segment(seg)
        rows, _seen = _measure(store, seg_window, settings, ref)
        rows += performance.evaluate(store, seg_window, settings.performance)
        for r in rows:
            r.segment = str(seg)
        measured.append((seg_window, ref, rows))
    every = [r for _w, _b, rows in measured for r in rows]
    _correct_and_judge(every, ds, numeric)  # one family: features x segments
    for seg_window, ref, rows in measured:
        kept = [r for r in rows if r.kind != "drift" or ds.reported(r.method, r.feature or "", numeric.get(r.feature or "", True))]
        _evidence(store, seg_window, ref, kept)
        out += _stamp(kept, window, ref)
    summary = segments.summary(plan, every)
    _stamp(plan.unanalysed + [summary], window, baseline)
    return out + [summary]


def _is_feature(name: str | None) -> bool:
    return name not in (scan.SCORE, scan.PREDICTION)


def _summary(rows: list[Result], ds: DriftSettings, totals: scan.Totals) -> Result:
    scores = [r for r in rows if r.kind == "drift" and r.details.get("score") and _is_feature(r.feature)]
    insufficient = sorted({r.feature for r in rows if r.kind == "drift" and r.status == INSUFFICIENT and r.feature})
    if not scores:
        return Result("", "", None, "drift_share", "summary", None, n_current=totals.weight, status=INSUFFICIENT,
                      details={"reason": "no feature had enough data on both sides" if totals.rows else
                               "no predictions in the window", "insufficient_features": insufficient})
    drifted = sorted(r.feature or "" for r in scores if r.drifted)
    share = len(drifted) / len(scores)
    prediction = [r for r in rows if r.kind == "drift" and r.details.get("score") and not _is_feature(r.feature)]
    return Result("", "", None, "drift_share", "summary", share, threshold=ds.drift_share,
                  drifted=share >= ds.drift_share, severity=results.worst(scores), n_current=totals.weight,
                  details={"drifted_features": drifted, "features": len(scores),
                           "prediction_drifted": [r.feature for r in prediction if r.drifted],
                           "insufficient_features": insufficient, "rows": totals.rows,
                           "effective_rows": stats.effective_n(totals.weight, totals.weight2)})


# -- evidence: which stored predictions show the drift ------------------------------------------


def _evidence(store: Store, window: Window, baseline: Baseline, rows: list[Result]) -> None:
    """For each drifted feature, trace ids of current predictions in its most over-represented bin or category."""
    where, params = window.where()
    for r in rows:
        if not (r.kind == "drift" and r.drifted and r.details.get("score")) or r.feature is None:
            continue
        ref = baseline.features.get(r.feature)
        if ref is None:
            continue
        p = dict(params, feature=r.feature, limit=EVIDENCE_TRACES)
        if ref.kind == baselines.NUMERIC and "reference" in r.details:
            gap = np.array(r.details["current"]) - np.array(r.details["reference"])
            b = int(np.argmax(gap))
            edges = [-math.inf] + list(r.details["bin_edges"]) + [math.inf]
            p.update(lo=edges[b], hi=edges[b + 1])
            value = _value_sql(r.feature)
            cond = f"{value} > {{lo:Float64}} AND {value} <= {{hi:Float64}}"
            r.details["evidence_bin"] = [edges[b], edges[b + 1]]
        elif ref.kind == baselines.CATEGORICAL and "largest_shifts" in r.details:
            shifts = r.details["largest_shifts"]
            unseen = r.details.get("unseen") or []
            # the first over-represented bucket; the catch-all bucket stands for its heaviest unseen category
            over = [k if k != OTHER else unseen[0] for k, v in shifts.items()
                    if v["current"] > v["reference"] and (k != OTHER or unseen)]
            if not over:
                continue
            p["category"] = over[0]
            cond = f"{_category_sql(r.feature)} = {{category:String}}"
            r.details["evidence_category"] = over[0]
        else:
            continue
        found = store.query(f"SELECT TraceId FROM {store.table('ml_predictions')} WHERE {where} AND {cond} "
                            "ORDER BY Timestamp DESC LIMIT {limit:UInt32}", p)
        r.details["trace_ids"] = [t[0] for t in found]


def _value_sql(feature: str) -> str:
    if feature == scan.SCORE:
        return "Score"
    if feature == scan.PREDICTION:
        return "PredictionNumber"
    return "if(mapContains(Numeric, {feature:String}), Numeric[{feature:String}], nan)"


def _category_sql(feature: str) -> str:
    if feature == scan.PREDICTION:
        return "Prediction"
    return ("if(mapContains(Categorical, {feature:String}), Categorical[{feature:String}], "
            "replaceRegexpOne(toString(Numeric[{feature:String}]), 'e(\\\\d)', 'e+\\\\1'))")
