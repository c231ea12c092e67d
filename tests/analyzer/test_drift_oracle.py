"""Every drift statistic against its numpy/scipy oracle on the same seeded data, unweighted and weighted.

The data go into ``ml_predictions``; the analyzer computes in ClickHouse +
scipy from aggregates; the oracles compute from the raw arrays. Tolerances:
PSI, Jensen-Shannon and chi-square use the same bins as the oracle, so they
must agree to 1e-9; KS and Wasserstein are computed on the baseline's grid
and must fall within their stated error bounds of the exact statistic (and
those bounds must be small).
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from analyzer_data import T0, insert
from modelwatch_analyzer.analysis import analyze, baseline, stats
from modelwatch_analyzer.analysis.methods import DriftSettings
from modelwatch_analyzer.analysis.window import Window
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

N = 6000


def _windows():
    return Window("m", T0, T0 + timedelta(hours=1)), Window("m", T0 + timedelta(hours=2), T0 + timedelta(hours=3))


def _setup(store, ref_num, cur_num, ref_cat=None, cur_cat=None, ref_w=None, cur_w=None):
    insert(store, "m", T0, ref_num, ref_cat, weights=ref_w)
    insert(store, "m", T0 + timedelta(hours=2), cur_num, cur_cat, weights=cur_w, id_prefix="c")
    ref, cur = _windows()
    b = baseline.from_window(store, ref, "1")
    baseline.save(store, b)
    res = analyze.analyze(store, cur, analyze.Settings(drift=DriftSettings(min_samples=10)))
    return b, {(r.feature, r.method): r for r in res}


def _bins(x, edges):
    """Bin index of each value for left-closed bins split at `edges` (as the grid cells are)."""
    return np.searchsorted(np.asarray(edges), x, side="right")


def _psi(p, q, eps=1e-4):
    p = np.maximum(p / p.sum(), eps)
    q = np.maximum(q / q.sum(), eps)
    return float(np.sum((q - p) * np.log(q / p)))


def _weighted_ks(a, wa, b, wb):
    """Exact weighted two-sample KS: the largest ECDF gap over all values."""
    xs = np.unique(np.concatenate([a, b]))
    fa = np.cumsum(np.bincount(np.searchsorted(xs, a), weights=wa, minlength=len(xs))) / wa.sum()
    fb = np.cumsum(np.bincount(np.searchsorted(xs, b), weights=wb, minlength=len(xs))) / wb.sum()
    return float(np.max(np.abs(fa - fb)))


def _weighted_std(x, w):
    m = np.average(x, weights=w)
    return float(np.sqrt(np.average((x - m) ** 2, weights=w)))


CASES = {
    "normal shift": (lambda r: r.normal(0, 1, N), lambda r: r.normal(0.3, 1.1, N)),
    "lognormal, no drift": (lambda r: r.lognormal(0, 1, N), lambda r: r.lognormal(0, 1, N)),
    "heavy tail beyond the grid": (lambda r: r.standard_t(2, N), lambda r: r.standard_t(2, N) * 3),
    "integers with ties": (lambda r: r.poisson(3, N).astype(float), lambda r: r.poisson(3.6, N).astype(float)),
}


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("case", list(CASES))
def test_numeric_methods_match_oracles(store, case, weighted):
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    a, b = CASES[case][0](rng), CASES[case][1](rng)
    wa = rng.choice([1.0, 10.0], N, p=[0.3, 0.7]) if weighted else np.ones(N)
    wb = rng.choice([1.0, 4.0, 10.0], N) if weighted else np.ones(N)
    base, got = _setup(store, {"x": a}, {"x": b}, ref_w=wa, cur_w=wb)
    fb = base.features["x"]

    # reference statistics are exact
    assert fb.n == pytest.approx(wa.sum(), rel=1e-12)
    assert fb.mean == pytest.approx(np.average(a, weights=wa), rel=1e-9, abs=1e-12)
    assert fb.std == pytest.approx(_weighted_std(a, wa), rel=1e-6)
    assert (fb.min, fb.max) == (a.min(), b.min() * 0 + a.max())

    # PSI and JS on the baseline's decile bins: the oracle bins the raw values at the same edges
    edges = got[("x", "psi")].details["bin_edges"]
    k = len(edges) + 1
    rc = np.bincount(_bins(a, edges), weights=wa, minlength=k)
    cc = np.bincount(_bins(b, edges), weights=wb, minlength=k)
    assert got[("x", "psi")].statistic == pytest.approx(_psi(rc, cc), abs=1e-9)
    assert got[("x", "jensen_shannon")].statistic == pytest.approx(jensenshannon(rc / rc.sum(), cc / cc.sum(), base=2), abs=1e-9)
    # the bins hold ~10% of the reference each (ties may merge bins)
    if case != "integers with ties":
        assert np.all(np.abs(rc / rc.sum() - 0.1) < 0.02), rc / rc.sum()

    # KS: exact statistic within [grid statistic, stated upper bound]; bound tight
    ks = got[("x", "ks")]
    exact = _weighted_ks(a, wa, b, wb)
    assert ks.statistic - 1e-12 <= exact <= ks.details["ks_upper"] + 1e-12
    if case == "integers with ties":  # atoms lie inside cells, between edges: the edges see every ECDF value
        assert ks.statistic == pytest.approx(exact, abs=1e-12)
    else:  # continuous: at most about one cell's mass between the bounds
        assert ks.details["ks_upper"] - ks.statistic <= 0.01
    if not weighted:
        assert exact == pytest.approx(sps.ks_2samp(a, b).statistic, abs=1e-12)
        # the p-value rule is scipy's asymptotic one
        assert stats.ks_pvalue(exact, N, N) == pytest.approx(sps.ks_2samp(a, b, method="asymp").pvalue, rel=1e-6, abs=1e-300)
    n_eff = stats.effective_n(wa.sum(), (wa ** 2).sum()), stats.effective_n(wb.sum(), (wb ** 2).sum())
    assert ks.pvalue == pytest.approx(stats.ks_pvalue(ks.statistic, *n_eff), rel=1e-9)

    # Wasserstein-1 / reference std: within the stated bound of scipy's exact value
    w = got[("x", "wasserstein")]
    exact_w = sps.wasserstein_distance(a, b, wa, wb) / _weighted_std(a, wa)
    bound = w.details["wasserstein_error_bound"]
    assert abs(w.statistic - exact_w) <= bound + 1e-9
    assert abs(w.statistic - exact_w) <= 0.02 + 0.02 * exact_w, (w.statistic, exact_w, bound)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_categorical_methods_match_oracles(store, weighted):
    rng = np.random.default_rng(7)
    cats = np.array(["a", "b", "c", "d", "e"])
    a = rng.choice(cats, N, p=[0.4, 0.3, 0.2, 0.1, 0.0])
    b = rng.choice(np.append(cats, "new"), N, p=[0.32, 0.3, 0.2, 0.1, 0.0, 0.08])
    wa = rng.choice([1.0, 10.0], N) if weighted else np.ones(N)
    wb = rng.choice([1.0, 2.0, 10.0], N) if weighted else np.ones(N)
    base, got = _setup(store, None, None, {"c": a}, {"c": b}, wa, wb)
    ref_cats = list(base.features["c"].categories)
    assert sorted(ref_cats) == ["a", "b", "c", "d"]
    # oracle: reference categories plus one bucket for the rest (here: the unseen "new")
    r = np.array([wa[a == c].sum() for c in ref_cats] + [0.0])
    c = np.array([wb[b == c].sum() for c in ref_cats] + [wb[~np.isin(b, ref_cats)].sum()])
    assert got[("c", "psi")].statistic == pytest.approx(_psi(r, c), abs=1e-9)
    assert got[("c", "jensen_shannon")].statistic == pytest.approx(jensenshannon(r / r.sum(), c / c.sum(), base=2), abs=1e-9)
    ne_r, ne_c = stats.effective_n(wa.sum(), (wa ** 2).sum()), stats.effective_n(wb.sum(), (wb ** 2).sum())
    table = np.vstack([r / r.sum() * ne_r, c / c.sum() * ne_c])
    chi, p, dof, _ = sps.chi2_contingency(table, correction=False)
    got_chi = got[("c", "chi_square")]
    assert got_chi.statistic == pytest.approx(chi, rel=1e-9)
    assert got_chi.pvalue == pytest.approx(p, rel=1e-6, abs=1e-300)
    if not weighted:  # unweighted: the plain contingency table of counts
        assert got_chi.statistic == pytest.approx(sps.chi2_contingency(np.vstack([r, c]), correction=False)[0], rel=1e-9)
    unseen = got[("c", "unseen_categories")]
    assert unseen.statistic == pytest.approx(wb[b == "new"].sum() / wb.sum(), rel=1e-9)
    assert unseen.details["examples"] == ["new"] and unseen.drifted


def test_benjamini_hochberg_matches_scipy():
    rng = np.random.default_rng(3)
    for m in (1, 2, 7, 50):
        p = np.concatenate([rng.uniform(size=m), rng.uniform(0, 1e-3, size=m // 2)])
        assert np.allclose(stats.benjamini_hochberg(p), sps.false_discovery_control(p), rtol=1e-12)
    with_nan = stats.benjamini_hochberg(np.array([0.01, np.nan, 0.04]))
    assert np.isnan(with_nan[1]) and np.allclose(with_nan[[0, 2]], sps.false_discovery_control([0.01, 0.04]))


@pytest.mark.parametrize("score,expected", [(0.0, "none"), (0.099, "none"), (0.1, "info"), (0.2, "warning"),
                                            (0.299, "warning"), (0.3, "critical"), (5.0, "critical"),
                                            (float("nan"), "none"), (None, "none")])
def test_severity_bands(score, expected):
    assert stats.severity(score, (0.1, 0.2, 0.3)) == expected


def test_custom_bands_and_thresholds(store):
    rng = np.random.default_rng(11)
    insert(store, "m", T0, {"x": rng.normal(0, 1, N)})
    insert(store, "m", T0 + timedelta(hours=2), {"x": rng.normal(0.5, 1, N)}, id_prefix="c")
    ref, cur = _windows()
    baseline.save(store, baseline.from_window(store, ref, "1"))
    default = {r.method: r for r in analyze.analyze(store, cur) if r.feature == "x"}
    psi = default["psi"].statistic
    assert 0.2 <= psi < 0.3 and default["psi"].severity == "warning"
    strict = DriftSettings(features={"x": {"bands": {"psi": (0.05, 0.1, 0.15)}}})
    assert {r.method: r for r in analyze.analyze(store, cur, analyze.Settings(drift=strict))
            if r.feature == "x"}["psi"].severity == "critical"
    lax = DriftSettings(thresholds={"psi": 0.5, "wasserstein": 0.1, "jensen_shannon": 0.1})
    got = {r.method: r for r in analyze.analyze(store, cur, analyze.Settings(drift=lax)) if r.feature == "x"}
    assert got["psi"].threshold == 0.5 and got["psi"].drifted is False and got["psi"].severity == "none"


def test_methods_are_chosen_by_name(store):
    rng = np.random.default_rng(12)
    insert(store, "m", T0, {"x": rng.normal(0, 1, 2000)}, {"c": rng.choice(["a", "b"], 2000)})
    insert(store, "m", T0 + timedelta(hours=2), {"x": rng.normal(1, 1, 2000)}, {"c": rng.choice(["a", "b"], 2000)},
           id_prefix="c")
    ref, cur = _windows()
    baseline.save(store, baseline.from_window(store, ref, "1"))
    only = DriftSettings(methods=("ks", "chi_square"), score="wasserstein")
    got = {(r.feature, r.method) for r in analyze.analyze(store, cur, analyze.Settings(drift=only)) if r.kind == "drift"}
    # the score method is always reported (wasserstein for numeric; categorical falls back to psi)
    assert got == {("x", "ks"), ("x", "wasserstein"), ("c", "chi_square"), ("c", "psi")}


def test_mean_and_std_of_a_feature_far_from_zero_match_numpy(store):
    """A feature of mean 1e9 and spread 1 (epoch seconds, large ids): the baseline's mean and weighted standard
    deviation match numpy, from stored predictions and from a training frame alike (no cancellation in s2/n - mean²),
    and so does Wasserstein normalised by that deviation."""
    rng = np.random.default_rng(17)
    x = 1e9 + rng.normal(0, 1, N)
    w = rng.choice([1.0, 10.0], N)
    cur = 1e9 + rng.normal(0.5, 1, N)
    b, got = _setup(store, {"x": x}, {"x": cur}, ref_w=w)
    mean = np.average(x, weights=w)
    std = np.sqrt(np.average((x - mean) ** 2, weights=w))
    framed = baseline.from_frame(__import__("pandas").DataFrame({"x": x, "w": w}), "m", "1", weight="w")
    for fb in (b.features["x"], framed.features["x"]):
        assert fb.mean == pytest.approx(mean, rel=1e-12)
        assert fb.std == pytest.approx(std, rel=1e-6)
    wd = got[("x", "wasserstein")]
    exact = sps.wasserstein_distance(x, cur, u_weights=w) / std
    assert abs(wd.statistic - exact) <= wd.details["wasserstein_error_bound"] + 1e-9
