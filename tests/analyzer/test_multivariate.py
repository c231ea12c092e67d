"""Multivariate drift: PCA reconstruction error (SQL in a real store vs numpy) and the domain classifier."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from analyzer_data import T0, insert
from modelwatch_analyzer.analysis import analyze, multivariate
from modelwatch_analyzer.analysis import baseline as baselines
from modelwatch_analyzer.analysis.estimation_data import feature_columns, frame_features
from modelwatch_analyzer.analysis.window import Window


def _rows(rng, n, corr):
    x0 = rng.normal(size=n)
    x1 = corr * x0 + np.sqrt(1 - corr ** 2) * rng.normal(size=n)
    return {"x0": x0, "x1": x1, "x2": rng.exponential(2.0, n)}, rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])


def _baseline(store, rng):
    num, cat = _rows(rng, 20_000, 0.8)
    frame = pd.DataFrame({**num, "plan": cat})
    base = baselines.from_frame(frame, "mv", "1")
    baselines.save(store, base)
    model = multivariate.fit_frame(frame, base)
    multivariate.save(store, model)
    return base, model, frame_features(frame, feature_columns(base))[0]


def test_window_error_in_sql_matches_numpy(store):
    rng = np.random.default_rng(1)
    base, model, _ = _baseline(store, rng)
    assert model.numeric == ["x0", "x1", "x2"] and len(model.components) == 2 and model.explained >= 0.65
    num, cat = _rows(rng, 3000, 0.2)
    num["x1"][::10] = np.nan  # missing values count as the mean
    w = rng.choice([1.0, 10.0], 3000)
    insert(store, "mv", T0, numeric=num, categorical={"plan": cat}, weights=w)
    mean, total, _w2, se = multivariate._window_error(store, Window("mv", T0, T0 + timedelta(hours=1)), model)
    expected = np.average(multivariate.errors(model, num), weights=w)
    assert total == pytest.approx(w.sum()) and mean == pytest.approx(expected, rel=1e-9)
    assert 0 < se < 0.1 * mean
    back = multivariate.load(store, "mv", base.id)
    assert back is not None and back.to_json() == model.to_json()


def test_a_correlation_flip_is_found_by_both_multivariate_methods_and_no_univariate_one(store):
    rng = np.random.default_rng(2)
    base, _model, _ = _baseline(store, rng)
    flipped, cat = _rows(rng, 5000, -0.8)
    insert(store, "mv", T0, numeric=flipped, categorical={"plan": cat})
    same, cat2 = _rows(rng, 5000, 0.8)
    insert(store, "mv", T0 + timedelta(hours=2), numeric=same, categorical={"plan": cat2}, id_prefix="c")

    drifted = analyze.run(store, Window("mv", T0, T0 + timedelta(hours=1)), baseline=base, save=False)
    univariate = [r for r in drifted if r.kind == "drift" and r.feature != multivariate.FEATURE and r.drifted]
    assert univariate == []
    mv = {r.method: r for r in drifted if r.feature == multivariate.FEATURE}
    assert mv["pca_reconstruction"].drifted and mv["pca_reconstruction"].statistic > mv["pca_reconstruction"].threshold
    assert mv["domain_classifier"].drifted and mv["domain_classifier"].statistic > 0.7
    assert mv["domain_classifier"].severity == "critical"

    clean = analyze.run(store, Window("mv", T0 + timedelta(hours=2), T0 + timedelta(hours=3)), baseline=base,
                        save=False)
    mv = {r.method: r for r in clean if r.feature == multivariate.FEATURE}
    assert not mv["pca_reconstruction"].drifted and not mv["domain_classifier"].drifted
    assert abs(mv["domain_classifier"].statistic - 0.5) < 0.04
    summary = next(r for r in clean if r.method == "drift_share")
    assert multivariate.FEATURE not in summary.details["drifted_features"]


def test_a_shifted_category_mix_moves_the_domain_classifier(store):
    rng = np.random.default_rng(3)
    base, model, _ = _baseline(store, rng)
    num, _ = _rows(rng, 4000, 0.8)
    insert(store, "mv", T0, numeric=num, categorical={"plan": rng.choice(["a", "b", "c"], 4000, p=[0.1, 0.2, 0.7])})
    rows = multivariate.results(store, Window("mv", T0, T0 + timedelta(hours=1)), model)
    dc = next(r for r in rows if r.method == "domain_classifier")
    assert dc.drifted and dc.details["features"] == ["x0", "x1", "x2", "plan"]


def test_too_few_rows_are_insufficient(store):
    rng = np.random.default_rng(4)
    _base, model, _ = _baseline(store, rng)
    num, cat = _rows(rng, 20, 0.8)
    insert(store, "mv", T0, numeric=num, categorical={"plan": cat})
    rows = multivariate.results(store, Window("mv", T0, T0 + timedelta(hours=1)), model)
    assert [r.status for r in rows] == ["insufficient_data", "insufficient_data"]


def test_cli_fits_the_model_with_the_baseline_and_analyze_reports_it(store_dir, tmp_path, capsys):
    from modelwatch_analyzer.cli import command as cli
    from modelwatch_analyzer.store import schema
    from modelwatch_analyzer.store.client import Store

    st = Store(f"chdb://{store_dir}")
    schema.apply(st)
    rng = np.random.default_rng(5)
    num, cat = _rows(rng, 10_000, 0.8)
    path = tmp_path / "train.csv"
    pd.DataFrame({**num, "plan": cat}).to_csv(path, index=False)
    url = f"chdb://{store_dir}"
    assert cli.main(["baseline", "create", "--url", url, "--model", "mv-cli", "--version", "1", "--file", str(path)]) == 0
    assert "multivariate drift: PCA of 3 numeric features (2 components" in capsys.readouterr().out
    flipped, cat = _rows(rng, 4000, -0.8)
    insert(st, "mv-cli", T0, numeric=flipped, categorical={"plan": cat})
    window = ["--since", T0.strftime("%Y-%m-%dT%H:%M:%S"), "--until", (T0 + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")]
    assert cli.main(["analyze", "--url", url, "--model", "mv-cli", *window, "--fail-on-drift"]) == 3
    text = capsys.readouterr().out
    assert "no drift: 0 of 4 features drifted" in text
    assert "MULTIVARIATE DRIFT (how the features move together): PCA reconstruction error" in text
    assert "domain classifier AUC" in text and "CRITICAL" in text


def test_the_null_auc_standard_error_is_the_spread_of_chance_aucs():
    """Oracle: the AUCs of 400 seeded pairs of same-distribution samples (scikit-learn) spread as the formula says."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(11)
    n1, n2 = 400, 150
    aucs = [roc_auc_score(np.r_[np.zeros(n1), np.ones(n2)], rng.normal(size=n1 + n2)) for _ in range(400)]
    assert np.std(aucs) == pytest.approx(multivariate.null_auc_se(n1, n2), rel=0.12)
    assert multivariate.null_auc_se(5000, 5000) < 0.006


def test_small_clean_windows_do_not_page_on_chance_aucs(store):
    """Windows of 300 rows (chance AUCs ~0.5 ± 0.017): no drift verdict; above 0.55 by chance is reported gated."""
    rng = np.random.default_rng(12)
    _base, model, _ = _baseline(store, rng)
    for k in range(6):
        start = T0 + timedelta(hours=2 * k)
        num, cat = _rows(rng, 300, 0.8)
        insert(store, "mv", start, numeric=num, categorical={"plan": cat}, id_prefix=f"s{k}")
        for r in multivariate.results(store, Window("mv", start, start + timedelta(hours=1)), model):
            assert not r.drifted, (k, r.method, r.statistic, r.details)
            if r.method == "domain_classifier":
                assert r.details["null_standard_error"] > 0.015  # 5,000 reference rows, 300 current
                assert ("gated" in r.details) == (r.statistic >= 0.55)
