"""A numeric sample (``numeric_sample_rows``): numeric features read from a uniform sample of the window, tagged as such.

The sample is the rows whose span id hashes into the first k of 1,024 buckets,
weighted by 1024/k: the weights estimate the window's, the effective sample
sizes (and so the p-values) are those of the rows read, and the same rows are
read on every run. Checked against the exact scan of the same window; kept
hours record their sample rate.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from analyzer_data import T0, insert
from modelwatch_analyzer.analysis import analyze, baseline, scan
from modelwatch_analyzer.analysis.window import Window

REF = Window("m", T0, T0 + timedelta(hours=1))
CUR = Window("m", T0 + timedelta(hours=4), T0 + timedelta(hours=6))
N = 40_000
BUDGET = 8_000


def _fill(store):
    rng = np.random.default_rng(21)
    cats = np.array(["a", "b", "c"])
    insert(store, "m", T0, {"x": rng.normal(0, 1, N), "y": rng.lognormal(0, 1, N)}, {"c": cats[rng.integers(0, 3, N)]},
           score=rng.beta(2, 3, N))
    base = baseline.from_window(store, REF, "1")
    y = rng.lognormal(0, 1, N)
    y[rng.uniform(size=N) < 0.1] = np.nan  # a tenth missing
    insert(store, "m", CUR.start, {"x": rng.normal(0.5, 1, N), "y": y}, {"c": cats[rng.integers(0, 3, N)]},
           score=rng.beta(2, 3, N), seconds=2 * 3600, id_prefix="c")
    return base


def _by(rows):
    return {(r.feature, r.method): r for r in rows if r.kind in ("drift", "data_quality")}


def test_a_sampled_numeric_scan_estimates_the_exact_one_and_is_tagged(store):
    base = _fill(store)
    exact = analyze.analyze(store, CUR, analyze.Settings(reuse_hours=False), baseline=base)
    sampled = analyze.analyze(store, CUR, analyze.Settings(reuse_hours=False, numeric_sample_rows=BUDGET), baseline=base)
    again = analyze.analyze(store, CUR, analyze.Settings(reuse_hours=False, numeric_sample_rows=BUDGET), baseline=base)
    rate = scan.sample_rate(N, BUDGET)
    assert rate == 205 / 1024
    summary = {r.kind: r for r in sampled}["summary"]
    assert summary.details["sample_rate"] == rate and "sample_rate" not in {r.kind: r for r in exact}["summary"].details
    e, s = _by(exact), _by(sampled)
    assert e.keys() == s.keys()
    for key, r in s.items():
        numeric = key[0] in ("x", "y", "prediction.score")
        assert ("sample_rate" in r.details) == numeric, key  # categories are always read whole
        if not numeric:
            assert r.statistic == e[key].statistic, key
    # the rows read: those whose span id hashes below 205 of 1,024 buckets, each weighing 1024/205
    (kept,), = store.query(f"SELECT count() FROM {store.table('ml_predictions')} WHERE ModelName = 'm' AND "
                           "Timestamp >= {t:DateTime64(9)} AND cityHash64(SpanId) % 1024 < 205", {"t": CUR.start})
    assert 0.18 * N < kept < 0.22 * N
    assert s["x", "psi"].n_current == pytest.approx(kept / rate)
    assert s["x", "ks"].details["n_current_effective"] == pytest.approx(kept)  # p-values from the rows read
    # estimates close to the exact scan's; the same verdicts on a clear shift and on no shift
    assert s["x", "psi"].statistic == pytest.approx(e["x", "psi"].statistic, rel=0.15)
    assert abs(s["x", "ks"].statistic - e["x", "ks"].statistic) < 0.03
    assert abs(s["y", "ks"].statistic - e["y", "ks"].statistic) < 0.03
    assert abs(s["y", "missing_rate"].statistic - e["y", "missing_rate"].statistic) < 0.015
    for feature in ("x", "y"):
        assert s[feature, "psi"].drifted == e[feature, "psi"].drifted
    assert e["x", "psi"].drifted and not e["y", "psi"].drifted
    # the same rows again (sums may add up in another order: equal to rounding)
    assert {k: v.statistic for k, v in _by(again).items()} == pytest.approx({k: v.statistic for k, v in s.items()},
                                                                             rel=1e-9, abs=1e-12)


def test_sampled_hours_are_kept_with_their_rate_and_read_back_only_by_budgeted_analyses(store):
    """Within the budget a window is read whole. A sampled hour is kept with its rate: a later budgeted analysis reads
    it back (and says the results come from a sample), an exact one scans the hour whole, which replaces it."""
    base = _fill(store)

    def kept() -> dict:
        return dict(store.query(f"SELECT toUInt32(HourStart), SampleRate FROM {store.table('ml_hourly_aggregates')} FINAL "
                                "WHERE BaselineId = {b:String} AND Kind = 'totals'", {"b": base.id}))

    def summary(rows) -> dict:
        return {r.kind: r for r in rows}["summary"].details

    whole = analyze.analyze(store, CUR, analyze.Settings(reuse_hours=False, numeric_sample_rows=N), baseline=base)
    assert "sample_rate" not in summary(whole)
    rate = scan.sample_rate(N, BUDGET)
    first = analyze.analyze(store, CUR, analyze.Settings(numeric_sample_rows=BUDGET), baseline=base)
    assert set(kept().values()) == {rate} and len(kept()) == 2
    again = analyze.analyze(store, CUR, analyze.Settings(numeric_sample_rows=BUDGET), baseline=base)
    assert summary(again)["hours_reused"] == 2 and summary(again)["sample_rate"] == rate
    assert {k: v.statistic for k, v in _by(again).items()} == pytest.approx({k: v.statistic for k, v in _by(first).items()})
    exact = analyze.analyze(store, CUR, analyze.Settings(), baseline=base)  # does not take the sampled hours
    assert summary(exact)["hours_reused"] == 0 and "sample_rate" not in summary(exact)
    assert set(kept().values()) == {1.0}  # replaced by the whole hours
    budgeted = analyze.analyze(store, CUR, analyze.Settings(numeric_sample_rows=BUDGET), baseline=base)
    assert summary(budgeted)["hours_reused"] == 2 and "sample_rate" not in summary(budgeted)  # whole hours: exact
    assert {k: v.statistic for k, v in _by(budgeted).items()} == pytest.approx({k: v.statistic for k, v in _by(exact).items()})
    assert {k: v.statistic for k, v in _by(whole).items()} == pytest.approx({k: v.statistic for k, v in _by(exact).items()})
