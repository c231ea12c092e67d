"""The analyzer end to end on the embedded store: weighting, verdicts, performance, data quality, edge cases."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from analyzer_data import T0, insert, insert_labels
from modelwatch_analyzer.analysis import (
    analyze,
    baseline,
    performance,
    results,
)
from modelwatch_analyzer.analysis.window import Window
from modelwatch_analyzer.errors import BaselineError, StoreUnavailable
from modelwatch_analyzer.store.client import Store
from scipy import stats as sps

REF = Window("m", T0, T0 + timedelta(hours=1))
CUR = Window("m", T0 + timedelta(hours=2), T0 + timedelta(hours=3))


def _by(rows, kind=None):
    return {(r.feature, r.method): r for r in rows if kind is None or r.kind == kind}


def test_weighted_statistics_on_the_kept_sample_match_the_full_stream(store):
    """Issue #4, item 4: keep every low-confidence prediction and 10% of the rest (weight 10).

    Low confidence concentrates where x is large, so the kept sample
    over-represents large x. Weighted statistics on the kept rows must match
    the statistics of the full stream; unweighted ones must be visibly off.
    """
    rng = np.random.default_rng(42)
    n = 40_000
    ref_x = rng.normal(0, 1, 20_000)
    x = rng.normal(0.2, 1, n)
    low_confidence = rng.uniform(size=n) < 1 / (1 + np.exp(-3 * (x - 1)))  # mostly x > 1
    kept = low_confidence | (rng.uniform(size=n) < 0.1)
    weight = np.where(low_confidence, 1.0, 10.0)[kept]
    insert(store, "m", T0, {"x": ref_x})
    baseline.save(store, baseline.from_window(store, REF, "1"))
    insert(store, "full", T0, {"x": x})
    insert(store, "kept", T0, {"x": x[kept]}, weights=weight, id_prefix="k")
    insert(store, "naive", T0, {"x": x[kept]}, id_prefix="n")
    b = baseline.load(store, "m", "1")
    got = {}
    for model in ("full", "kept", "naive"):
        w = Window(model, T0, T0 + timedelta(hours=1))
        got[model] = _by(analyze.analyze(store, w, baseline=b), "drift")
    assert kept.mean() < 0.35  # the sample is a small share of the stream
    for method, tol in (("psi", 0.02), ("ks", 0.02), ("wasserstein", 0.03), ("jensen_shannon", 0.02)):
        full = got["full"][("x", method)].statistic
        weighted = got["kept"][("x", method)].statistic
        naive = got["naive"][("x", method)].statistic
        assert abs(weighted - full) < tol, (method, full, weighted)
        assert abs(naive - full) > 5 * tol, (method, full, naive)
    # and the weighted sample's p-value uses its effective size, smaller than its weighted count
    ks = got["kept"][("x", "ks")]
    assert ks.details["n_current_effective"] < kept.sum() < ks.n_current


def test_verdicts_summary_and_significance_gate(store):
    rng = np.random.default_rng(5)
    ref = {f"f{i}": rng.normal(0, 1, 5000) for i in range(6)}
    cur = {f"f{i}": rng.normal(0.6 if i < 2 else 0.0, 1, 5000) for i in range(6)}
    insert(store, "m", T0, ref, {"c": rng.choice(["a", "b"], 5000)})
    insert(store, "m", T0 + timedelta(hours=2), cur, {"c": rng.choice(["a", "b"], 5000, p=[0.9, 0.1])}, id_prefix="c")
    baseline.save(store, baseline.from_window(store, REF, "1"))
    rows = analyze.analyze(store, CUR)
    by = _by(rows)
    summary = by[(None, "drift_share")]
    assert summary.details["drifted_features"] == ["c", "f0", "f1"]
    assert summary.statistic == pytest.approx(3 / 7)
    assert summary.drifted is False and summary.severity == "critical"
    for f in ("f2", "f3", "f4", "f5"):
        assert by[(f, "psi")].drifted is False and by[(f, "psi")].severity == "none"
    # drifted features carry the trace ids of current predictions in their most over-represented bin
    assert len(by[("f0", "psi")].details["trace_ids"]) == 5
    assert by[("c", "psi")].details["evidence_category"] == "a"
    # tests report raw and BH-adjusted p-values; the threshold used is stored
    ks = by[("f0", "ks")]
    assert ks.threshold == 0.05 and ks.details["adjusted_pvalue"] >= ks.pvalue

    # a tiny window: PSI's noise can exceed 0.1, but the test is not significant, so no verdict
    small = Window("m", T0 + timedelta(hours=2), T0 + timedelta(hours=2, seconds=40))
    rows = _by(analyze.analyze(store, small, analyze.Settings(drift=analyze.DriftSettings(min_samples=20))))
    gated = [r for r in rows.values() if r.method == "psi" and "gated" in r.details]
    assert all(r.drifted is False for r in gated)


def test_empty_and_small_windows_say_insufficient_data(store):
    rng = np.random.default_rng(1)
    insert(store, "m", T0, {"x": rng.normal(size=500)}, {"c": rng.choice(["a", "b"], 500)})
    baseline.save(store, baseline.from_window(store, REF, "1"))
    empty = Window("m", T0 + timedelta(days=1), T0 + timedelta(days=1, hours=1))
    rows = analyze.run(store, empty)
    drift = [r for r in rows if r.kind == "drift"]
    assert drift and all(r.status == results.INSUFFICIENT and r.drifted is None and r.statistic is None for r in drift)
    summary = _by(rows)[(None, "drift_share")]
    assert summary.status == results.INSUFFICIENT and "no predictions" in summary.details["reason"]
    tiny = Window("m", T0, T0 + timedelta(seconds=60))  # ~8 rows
    rows = analyze.analyze(store, tiny)
    assert all(r.status == results.INSUFFICIENT for r in rows if r.kind == "drift")
    assert "effective observations" in _by(rows)[("x", "ks")].details["reason"]


def test_rerunning_a_window_replaces_its_results(store):
    rng = np.random.default_rng(2)
    insert(store, "m", T0, {"x": rng.normal(size=2000)})
    insert(store, "m", T0 + timedelta(hours=2), {"x": rng.normal(0.5, 1, 2000)}, id_prefix="c")
    baseline.save(store, baseline.from_window(store, REF, "1"))
    first = analyze.run(store, CUR)
    second = analyze.run(store, CUR)
    stored = results.load(store, "m")
    assert len(stored) == len(second) == len(first)
    assert {r.run_id for r in stored} == {second[0].run_id}
    # a new baseline does not rewrite the results made with the old one
    old_id = second[0].baseline_id
    baseline.save(store, baseline.from_window(store, CUR, "1"))
    assert {r.baseline_id for r in results.load(store, "m")} == {old_id}


def test_performance_matches_numpy(store):
    rng = np.random.default_rng(9)
    n = 3000
    y = rng.integers(0, 2, n)
    score = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1).round(4)
    pred = (score > 0.5).astype(int)
    w = rng.choice([1.0, 10.0], n)
    ids = insert(store, "m", T0, {"x": rng.normal(size=n)}, weights=w, score=score, prediction=[str(p) for p in pred])
    labelled = rng.uniform(size=n) < 0.7
    insert_labels(store, "m", [i for i, k in zip(ids, labelled) if k], [str(v) for v in y[labelled]], T0 + timedelta(hours=5))
    # a later, corrected label replaces the first one
    insert_labels(store, "m", [ids[0]], [str(1 - y[0])], T0 + timedelta(hours=6))
    y_eff = y.copy()
    if labelled[0]:
        y_eff[0] = 1 - y[0]
    got = {r.method: r for r in performance.evaluate(store, REF)}
    m = labelled | (np.arange(n) == 0)
    yy, pp, ww, ss = y_eff[m], pred[m], w[m], score[m]
    tp = ww[(yy == 1) & (pp == 1)].sum()
    assert got["label_coverage"].statistic == pytest.approx(ww.sum() / w.sum(), rel=1e-9)
    assert got["accuracy"].statistic == pytest.approx(ww[yy == pp].sum() / ww.sum(), rel=1e-9)
    assert got["precision"].statistic == pytest.approx(tp / ww[pp == 1].sum(), rel=1e-9)
    assert got["recall"].statistic == pytest.approx(tp / ww[yy == 1].sum(), rel=1e-9)
    p, r = tp / ww[pp == 1].sum(), tp / ww[yy == 1].sum()
    assert got["f1"].statistic == pytest.approx(2 * p * r / (p + r), rel=1e-9)
    # weighted ROC AUC: every (positive, negative) pair, ties half (scores have 4 decimals: exact)
    pos, neg = ss[yy == 1], ss[yy == 0]
    wp, wn = ww[yy == 1], ww[yy == 0]
    gt = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    auc = float((wp[:, None] * wn[None, :] * gt).sum() / (wp.sum() * wn.sum()))
    assert got["roc_auc"].statistic == pytest.approx(auc, rel=1e-9)
    u = sps.mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg))  # unweighted sanity: same neighbourhood
    assert abs(auc - u) < 0.03


def test_regression_metrics(store):
    rng = np.random.default_rng(4)
    n = 1000
    y = rng.normal(100, 20, n)
    pred = y + rng.normal(0, 5, n)
    w = rng.choice([1.0, 3.0], n)
    ids = insert(store, "m", T0, {"x": rng.normal(size=n)}, weights=w, prediction=[repr(float(p)) for p in pred])
    insert_labels(store, "m", ids, [repr(float(v)) for v in y], T0 + timedelta(hours=5))
    got = {r.method: r for r in performance.evaluate(store, REF)}
    assert got["mae"].statistic == pytest.approx(np.average(np.abs(pred - y), weights=w), rel=1e-9)
    assert got["rmse"].statistic == pytest.approx(np.sqrt(np.average((pred - y) ** 2, weights=w)), rel=1e-9)
    assert "accuracy" not in got


def test_data_quality(store):
    rng = np.random.default_rng(6)
    n = 2000
    insert(store, "m", T0, {"x": rng.normal(size=n), "y": rng.normal(size=n)})
    x = rng.normal(size=n)
    x[:300] = np.nan  # 15% missing
    y = rng.normal(size=n) * 3  # out of the reference range
    insert(store, "m", T0 + timedelta(hours=2), {"x": x, "y": y}, id_prefix="c")
    # text arriving for the numeric feature y
    from analyzer_data import COLUMNS
    store.insert("ml_predictions", [(T0 + timedelta(hours=2, minutes=1), "m", "1", "t", "", "", "", 1.0, "", "", None,
                                     None, {"x": 0.0}, {"y": "N/A"})], COLUMNS)
    baseline.save(store, baseline.from_window(store, REF, "1"))
    dq = _by(analyze.analyze(store, CUR), "data_quality")
    assert dq[("x", "missing_rate")].statistic == pytest.approx(300 / (n + 1))
    assert dq[("x", "missing_rate")].drifted and dq[("x", "missing_rate")].severity == "warning"
    assert dq[("y", "out_of_range")].statistic > 0.2 and dq[("y", "out_of_range")].drifted
    assert dq[("y", "type_errors")].statistic == pytest.approx(1 / (n + 1))
    assert dq[("y", "type_errors")].details["examples"] == ["N/A"]
    assert not dq[("x", "type_errors")].drifted


def test_baseline_from_a_training_file_agrees_with_one_from_stored_predictions(store, tmp_path):
    rng = np.random.default_rng(8)
    n = 5000
    df = pd.DataFrame({"age": rng.normal(40, 10, n), "income": rng.lognormal(10, 1, n),
                       "plan": rng.choice(["basic", "pro", "team"], n), "flag": rng.choice([True, False], n),
                       "score": rng.uniform(size=n), "label": rng.choice(["approve", "review"], n)})
    df.loc[:99, "age"] = np.nan
    path = tmp_path / "train.parquet"
    df.to_parquet(path)
    from_file = baseline.from_file(path, "m", "1", score="score", prediction="label")
    insert(store, "m", T0, {"age": df["age"].to_numpy(), "income": df["income"].to_numpy()},
           {"plan": df["plan"].to_numpy(), "flag": np.where(df["flag"], "true", "false")},
           score=df["score"].to_numpy(), prediction=list(df["label"]))
    from_window = baseline.from_window(store, REF, "1")
    assert set(from_file.features) == set(from_window.features) == {"age", "income", "plan", "flag", "prediction.score",
                                                                   "prediction.value"}
    for name, f in from_file.features.items():
        g = from_window.features[name]
        assert f.kind == g.kind
        assert f.n == pytest.approx(g.n) and f.missing == pytest.approx(g.missing)
        if f.kind == "numeric":
            assert f.mean == pytest.approx(g.mean, rel=1e-9) and f.std == pytest.approx(g.std, rel=1e-9)
            assert (f.min, f.max) == (g.min, g.max)
            assert f.grid.log == g.grid.log
        else:
            assert f.categories == pytest.approx(g.categories)
    assert from_file.features["income"].grid.log and not from_file.features["age"].grid.log
    assert from_file.features["age"].missing == 100
    # both baselines judge the same current window alike
    cur = {"age": rng.normal(45, 10, n), "income": rng.lognormal(10, 1, n)}
    insert(store, "m", T0 + timedelta(hours=2), cur, {"plan": rng.choice(["basic", "pro"], n)}, id_prefix="c")
    a = _by(analyze.analyze(store, CUR, baseline=from_file), "drift")
    b = _by(analyze.analyze(store, CUR, baseline=from_window), "drift")
    for key in (("age", "psi"), ("age", "ks"), ("income", "psi"), ("plan", "psi")):
        assert a[key].statistic == pytest.approx(b[key].statistic, abs=0.01), key
    with pytest.raises(BaselineError, match="not found"):
        baseline.from_file(tmp_path / "missing.csv", "m", "1")


def test_hostile_names_are_data_not_sql(store):
    rng = np.random.default_rng(3)
    model = "m'); DROP TABLE ml_results; --"
    feature = "f\"'\\`\n☃ OR 1=1"
    insert(store, model, T0, {feature: rng.normal(size=500)}, {"c'\\": rng.choice(["a'", "b\\"], 500)})
    insert(store, model, T0 + timedelta(hours=2), {feature: rng.normal(1, 1, 500)}, {"c'\\": rng.choice(["a'"], 500)},
           id_prefix="c")
    baseline.save(store, baseline.from_window(store, Window(model, REF.start, REF.end), "v'1"))
    rows = analyze.run(store, Window(model, CUR.start, CUR.end))
    by = _by(rows)
    assert by[(feature, "psi")].drifted and by[("c'\\", "psi")].drifted
    assert {"ml_results", "ml_predictions"} <= store.tables()
    assert {r.feature for r in results.load(store, model)} >= {feature, "c'\\"}


def test_a_missing_baseline_or_store_is_a_clear_error(store):
    with pytest.raises(BaselineError, match="modelwatch baseline create"):
        analyze.analyze(store, Window("nobody", T0, T0 + timedelta(hours=1)))
    with pytest.raises(StoreUnavailable, match="cannot reach ClickHouse at http://127.0.0.1:9/modelwatch: connection refused"):
        Store("http://127.0.0.1:9/modelwatch")
