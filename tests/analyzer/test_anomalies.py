"""Anomalous predictions: per-row scores in SQL equal numpy's; planted outliers are found with their trace ids."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from analyzer_data import T0, insert
from modelwatch_analyzer.analysis import analyze, anomalies, multivariate
from modelwatch_analyzer.analysis import baseline as baselines
from modelwatch_analyzer.analysis.estimation_data import feature_columns, frame_features
from modelwatch_analyzer.analysis.window import Window


def _rows(rng, n):
    x0 = rng.normal(size=n)
    x1 = 0.8 * x0 + 0.6 * rng.normal(size=n)
    return {"x0": x0, "x1": x1, "x2": rng.exponential(2.0, n)}, {"plan": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]).astype(object)}


@pytest.fixture
def fitted(store):
    rng = np.random.default_rng(0)
    num, cat = _rows(rng, 20_000)
    frame = pd.DataFrame({**num, **cat})
    base = baselines.from_frame(frame, "an", "1")
    baselines.save(store, base)
    model = multivariate.fit_frame(frame, base)
    multivariate.save(store, model)
    return rng, base, model


def test_the_reference_limits_leave_its_own_rarest_rows_beyond(fitted):
    _rng, _base, model = fitted
    assert model.limits["spe"] > 0 and model.limits["t2"] > 0
    assert 0.001 <= model.limits["rate"] <= 0.003  # each limit is the 99.9% quantile: the union a little above 0.1%


def test_scores_computed_in_sql_equal_numpy(store, fitted):
    rng, base, model = fitted
    num, cat = _rows(rng, 600)
    num["x0"][:5] = np.nan  # missing: the reference mean
    cat["plan"][5:9] = "zzz"  # unseen
    insert(store, "an", T0, numeric=num, categorical=cat)
    categories = {"plan": list(base.features["plan"].categories)}
    sql, params = anomalies.scored_sql(store, Window("an", T0, T0 + timedelta(hours=1)), model, categories)
    got = store.query(f"SELECT TraceId, spe, t2, unseen, score FROM ({sql}) ORDER BY TraceId", params)
    columns, _w = frame_features(pd.DataFrame({**num, **cat}), feature_columns(base))
    spe = multivariate.errors(model, columns) / model.limits["spe"]
    t2 = multivariate.hotelling(model, columns) / model.limits["t2"]
    unseen = np.isin(cat["plan"], ["zzz"]).astype(int)
    order = np.argsort([f"{i:032x}" for i in range(600)])
    assert np.array([g[1] for g in got]) == pytest.approx(spe[order], rel=1e-9, abs=1e-12)
    assert np.array([g[2] for g in got]) == pytest.approx(t2[order], rel=1e-9, abs=1e-12)
    assert [g[3] for g in got] == list(unseen[order])
    assert np.array([g[4] for g in got]) == pytest.approx(np.maximum(spe, t2)[order] + unseen[order], rel=1e-9)


def test_planted_outliers_are_flagged_with_their_trace_ids_and_a_clean_window_is_not(store, fitted):
    rng, _base, _model = fitted
    num, cat = _rows(rng, 5000)
    clean = Window("an", T0, T0 + timedelta(hours=1))
    insert(store, "an", T0, numeric=num, categorical=cat, id_prefix="c")
    ok = next(r for r in analyze.run(store, clean, save=False) if r.method == anomalies.METHOD)
    assert not ok.drifted and ok.statistic < 0.005, (ok.statistic, ok.pvalue)

    num, cat = _rows(rng, 5000)
    num["x0"][:40] = 9.0  # extreme, along the reference's own direction (T²)
    num["x0"][40:80], num["x1"][40:80] = 2.5, -2.5  # each plausible, together unlike the reference (SPE)
    cat["plan"][80:100] = "zzz"  # a category never seen
    start = T0 + timedelta(hours=2)
    insert(store, "an", start, numeric=num, categorical=cat, id_prefix="b")
    bad = next(r for r in analyze.run(store, Window("an", start, start + timedelta(hours=1)), save=False)
               if r.method == anomalies.METHOD)
    assert bad.drifted and bad.severity == "warning" and bad.pvalue < 1e-6
    assert 0.019 <= bad.statistic <= 0.024 and bad.details["anomalous_rows"] >= 100
    planted = {f"{i:032x}" for i in range(100)}
    top = bad.details["top"]
    assert len(top) == anomalies.TOP and {t["trace_id"] for t in top} <= planted
    assert top[0]["features"][0]["feature"] == "x0" and top[0]["features"][0]["value"] == 9.0
    assert top == sorted(top, key=lambda t: -t["score"])


def test_the_cli_names_the_worst_predictions_and_a_rule_alerts_with_their_traces(store, fitted):
    from modelwatch_analyzer.cli.analysis_commands import summary
    from modelwatch_analyzer.outputs.alerts.rules import Rule

    rng, base, _model = fitted
    num, cat = _rows(rng, 3000)
    num["x0"][:60] = 9.0
    insert(store, "an", T0, numeric=num, categorical=cat)
    window = Window("an", T0, T0 + timedelta(hours=1))
    rows = analyze.run(store, window, save=False)
    text = summary(rows, window, base)
    assert "ANOMALOUS PREDICTIONS: 2." in text and f"trace {0:030x}" in text and "x0 = 9 (z +" in text
    r = next(r for r in rows if r.method == anomalies.METHOD)
    rule = Rule.from_dict({"name": "ood", "type": "data_quality", "metric": anomalies.METHOD})
    assert rule.match(r) == "warning" and len(r.details["trace_ids"]) == anomalies.TOP
