"""Output patterns: a model stuck on one output, a score whose spread collapsed; a clean window flags neither."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
import scipy.stats as sps
from analyzer_data import T0, insert
from modelwatch_analyzer.analysis import analyze
from modelwatch_analyzer.analysis import baseline as baselines
from modelwatch_analyzer.analysis.window import Window
from modelwatch_analyzer.outputs.alerts.payload import describe
from modelwatch_analyzer.outputs.alerts.rules import Rule


def _window(store, rng, start, prefix, score, prediction):
    n = len(score)
    insert(store, "out", start, numeric={"x": rng.normal(size=n)}, score=score, prediction=prediction, id_prefix=prefix)
    return Window("out", start, start + timedelta(hours=1))


def test_stuck_model_and_collapsed_score_are_found_and_a_clean_window_is_not(store):
    rng = np.random.default_rng(0)
    ref = _window(store, rng, T0, "r", rng.beta(2, 2, 4000), list(rng.choice(["approve", "review"], 4000)))
    base = baselines.from_window(store, ref, "1")
    clean = _window(store, rng, T0 + timedelta(hours=2), "c", rng.beta(2, 2, 3000),
                    list(rng.choice(["approve", "review"], 3000)))
    stuck = _window(store, rng, T0 + timedelta(hours=4), "s", 0.62 + rng.normal(0, 0.005, 3000),
                    ["approve"] * 2900 + ["review"] * 100)

    def patterns(window):
        rows = analyze.run(store, window, baseline=base, save=False)
        return {r.method: r for r in rows if r.method in ("stuck_output", "spread_collapse")}

    ok = patterns(clean)
    assert set(ok) == {"stuck_output", "spread_collapse"} and not any(r.drifted for r in ok.values())
    bad = patterns(stuck)
    assert bad["stuck_output"].drifted and bad["stuck_output"].statistic == np.float64(2900 / 3000)
    assert bad["stuck_output"].details["value"] == "approve" and 0.4 < bad["stuck_output"].details["reference_share"] < 0.6
    collapse = bad["spread_collapse"]
    assert collapse.drifted and collapse.feature == "prediction.score" and collapse.statistic < 0.05
    rule = Rule.from_dict({"name": "outputs", "type": "data_quality", "metric": "spread_collapse", "max": 0.5})
    assert rule.match(collapse) == "warning" and "below the floor 0.25" in describe(rule, collapse)


def test_a_model_that_mostly_gives_one_answer_is_not_stuck_when_it_gives_it_a_little_more(store):
    """Reference 89% "approve": 92% is chance and a small shift, 99.5% on as many rows is stuck."""
    rng = np.random.default_rng(1)
    ref = _window(store, rng, T0, "r", rng.beta(2, 5, 4000), list(rng.choice(["approve", "review"], 4000, p=[0.89, 0.11])))
    base = baselines.from_window(store, ref, "1")

    def stuck(start, prefix, p_approve):
        window = _window(store, rng, start, prefix, rng.beta(2, 5, 600),
                         list(rng.choice(["approve", "review"], 600, p=[p_approve, 1 - p_approve])))
        rows = analyze.run(store, window, baseline=base, save=False)
        return next(r for r in rows if r.method == "stuck_output")

    mild = stuck(T0 + timedelta(hours=2), "m", 0.92)
    assert mild.statistic >= 0.9 and not mild.drifted, (mild.statistic, mild.pvalue)
    hard = stuck(T0 + timedelta(hours=4), "h", 0.995)
    assert hard.drifted and hard.pvalue < 1e-3 and hard.details["value"] == "approve"


def test_a_class_share_outside_its_band_is_flagged_and_chance_is_not(store):
    """Reference 50/50: 65% "approve" on 3,000 predictions is out of band; 52% is inside it; the band is binomial."""
    rng = np.random.default_rng(2)
    ref = _window(store, rng, T0, "r", rng.beta(2, 2, 4000), list(rng.choice(["approve", "review"], 4000)))
    base = baselines.from_window(store, ref, "1")

    def share(start, prefix, p_approve):
        window = _window(store, rng, start, prefix, rng.beta(2, 2, 3000),
                         list(rng.choice(["approve", "review"], 3000, p=[p_approve, 1 - p_approve])))
        return next(r for r in analyze.run(store, window, baseline=base, save=False) if r.method == "class_share")

    moved = share(T0 + timedelta(hours=2), "m", 0.65)
    assert moved.drifted and moved.details["value"] in ("approve", "review")
    assert moved.details["share"] == pytest.approx(0.65, abs=0.03) or moved.details["share"] == pytest.approx(0.35, abs=0.03)
    # the band: the reference share ± max(z(0.001 / 2 classes, two-sided) · binomial se, 0.05)
    half = max(sps.norm.isf(0.001 / 4) * np.sqrt(0.25 / 3000), 0.05)
    assert moved.threshold == pytest.approx(half, rel=0.02)
    assert not share(T0 + timedelta(hours=4), "s", 0.52).drifted
