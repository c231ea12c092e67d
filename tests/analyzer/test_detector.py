"""Sequential detectors: the recursions against a vectorised numpy oracle, and state that survives a restart."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from modelwatch_analyzer.analysis.detector import DetectorConfig, SequentialDetector
from modelwatch_analyzer.analysis.results import Result
from modelwatch_analyzer.errors import ConfigError
from modelwatch_analyzer.store.client import Store

T0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=30)


def ph_oracle(x: np.ndarray, delta: float, threshold: float, min_instances: int) -> tuple[np.ndarray, list[int]]:
    """Page-Hinkley (alpha = 1) in closed form per segment: statistic per step and the steps at which it fires."""
    stats = np.empty(len(x))
    fires = []
    start = 0
    while start < len(x):
        seg = x[start:]
        t = np.arange(1, len(seg) + 1)
        mean = np.cumsum(seg) / t
        cum = np.cumsum(seg - mean - delta)
        low = np.minimum(np.minimum.accumulate(cum), 0.0)
        stat = cum - low
        hit = np.flatnonzero((t >= min_instances) & (stat > threshold))
        end = hit[0] + 1 if len(hit) else len(seg)
        stats[start:start + end] = stat[:end]
        if len(hit):
            fires.append(int(start + hit[0]))
        start += end
    return stats, fires


def cusum_oracle(x: np.ndarray, delta: float, threshold: float, warmup: int) -> tuple[np.ndarray, list[int]]:
    """One-sided CUSUM with the level estimated from a warm-up, restarted after each alarm."""
    stats = np.zeros(len(x))
    fires = []
    start = 0
    while start < len(x):
        seg = x[start:]
        mu = seg[:warmup].mean() if len(seg) >= warmup else None
        s, end = 0.0, len(seg)
        for i in range(warmup, len(seg)):
            s = max(0.0, s + seg[i] - mu - delta)
            stats[start + i] = s
            if s > threshold:
                fires.append(start + i)
                end = i + 1
                break
        start += end
    return stats, fires


def _series(seed: int, n: int, change_at: int | None, level: float = 0.02, jump: float = 0.15) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = level + rng.normal(0, 0.005, n)
    if change_at is not None:
        x[change_at:] += jump
    return np.abs(x)


def _results(x, model="fraud", feature="amount", method="psi", offset=0):
    return [Result(model, "2", feature, method, "drift", float(v), None, 0.2, False, "none", 1000.0, 900.0,
                   window_start=T0 + timedelta(hours=offset + i), window_end=T0 + timedelta(hours=offset + i + 1),
                   run_id=f"r{offset + i}") for i, v in enumerate(x)]


@pytest.mark.parametrize("detector,oracle", [("page_hinkley", ph_oracle), ("cusum", cusum_oracle)])
def test_detector_matches_numpy_oracle_and_fires_after_the_change(store, detector, oracle):
    """Statistics equal the oracle's to 1e-12, the first alarm comes within a few windows of the change, none before."""
    cfg = DetectorConfig(detector=detector, delta=0.01, threshold=0.3, min_instances=5)
    x = _series(seed=7, n=80, change_at=40)
    out = SequentialDetector(store, cfg).update(_results(x))
    stats, fires = oracle(x, 0.01, 0.3, 5)
    np.testing.assert_allclose([r.statistic for r in out], stats, rtol=0, atol=1e-12)
    assert [i for i, r in enumerate(out) if r.drifted] == fires
    assert fires and 40 <= fires[0] <= 44
    fired = out[fires[0]]
    assert (fired.method, fired.kind, fired.severity, fired.feature, fired.threshold) == \
        (detector, "drift", "warning", "amount", 0.3)
    assert fired.details["source_method"] == "psi" and fired.window_end == T0 + timedelta(hours=fires[0] + 1)
    assert all(r.severity == "none" for r in out if not r.drifted)


@pytest.mark.parametrize("detector", ["page_hinkley", "cusum"])
def test_no_false_alarm_on_a_stationary_series(store, detector):
    """500 windows of a stationary score (fixed seed) raise no alarm."""
    x = _series(seed=11, n=500, change_at=None)
    out = SequentialDetector(store, DetectorConfig(detector=detector)).update(_results(x))
    assert len(out) == 500 and not any(r.drifted for r in out)


@pytest.mark.parametrize("detector", ["page_hinkley", "cusum"])
def test_resume_after_restart_equals_an_uninterrupted_run(store, detector):
    """State saved half way, a new Store object resumes, and the continued series equals one uninterrupted run exactly."""
    cfg = DetectorConfig(detector=detector, threshold=0.3)
    x = _series(seed=3, n=60, change_at=35)
    rs = _results(x)
    whole = SequentialDetector(store, DetectorConfig(detector=detector, threshold=0.3, name="whole")).update(rs)

    first = SequentialDetector(store, cfg).update(rs[:30])
    reopened = Store(store.url, database=store.database)
    try:
        second = SequentialDetector(reopened, cfg).update(rs[30:])
        state, last = SequentialDetector(reopened, cfg).state("fraud", "2", "amount")
    finally:
        reopened.close()
    assert [(r.statistic, r.drifted) for r in first + second] == [(r.statistic, r.drifted) for r in whole]
    assert last == rs[-1].window_end and state["n"] >= 1


def test_windows_already_counted_are_not_counted_again(store):
    """Replaying windows (a re-run, or overlapping batches) yields nothing for them and leaves the state unchanged."""
    det = SequentialDetector(store, DetectorConfig())
    x = _series(seed=5, n=12, change_at=None)
    rs = _results(x)
    det.update(rs[:8])
    before = det.state("fraud", "2", "amount")
    assert det.update(rs[:8]) == []
    assert det.state("fraud", "2", "amount") == before
    again = det.update(rs[4:])  # overlap: only windows 8..11 count
    assert [r.window_end for r in again] == [r.window_end for r in rs[8:]]
    assert det.state("fraud", "2", "amount")[0]["n"] == 12


def test_series_are_separate_per_feature_model_and_source_method(store):
    """Each (model, version, feature, method) has its own state; results of other methods or kinds are ignored."""
    det = SequentialDetector(store, DetectorConfig(method="psi"))
    rs = (_results([0.1, 0.2], feature="a") + _results([0.3], feature="b") + _results([0.5], model="other")
          + _results([0.9], method="ks") + [Result("fraud", "2", "a", "missing_rate", "data_quality", 0.4,
                                                   window_end=T0 + timedelta(hours=50))])
    out = det.update(rs)
    assert sorted((r.model, r.feature) for r in out) == [("fraud", "a"), ("fraud", "a"), ("fraud", "b"),
                                                         ("other", "amount")]
    assert det.state("fraud", "2", "a")[0]["n"] == 2 and det.state("fraud", "2", "b")[0]["n"] == 1
    assert SequentialDetector(store, DetectorConfig(method="ks")).state("fraud", "2", "amount") == ({}, None)


def test_hostile_names_round_trip_through_the_state_table(store):
    """Quotes, backslashes and unicode in model and feature names are stored and found again (values are bound)."""
    model, feature = "m'); DROP TABLE t; --", "f\\\"€ 価格"
    det = SequentialDetector(store, DetectorConfig())
    det.update(_results([0.1, 0.2, 0.3], model=model, feature=feature))
    state, last = det.state(model, "2", feature)
    assert state["n"] == 3 and last == T0 + timedelta(hours=3)


@pytest.mark.parametrize("bad,match", [
    ({"detector": "adwin"}, r"detectors\[2\]\.detector: 'adwin' is not a detector; use one of page_hinkley, cusum"),
    ({"threshold": 0}, r"detectors\[2\]\.threshold: must be > 0"),
    ({"threshold": "high"}, r"detectors\[2\]\.threshold: expected a number"),
    ({"alpha": 1.5}, r"detectors\[2\]\.alpha: must be in \(0, 1\]"),
    ({"min_instances": 0}, r"detectors\[2\]\.min_instances"),
    ({"severity": "none"}, r"detectors\[2\]\.severity: 'none' is not a severity"),
    ({"treshold": 1}, r"detectors\[2\]: unknown key\(s\) treshold"),
])
def test_config_errors_name_the_key_and_the_fix(bad, match):
    """Invalid detector settings raise ConfigError naming the config path and the allowed values."""
    with pytest.raises(ConfigError, match=match):
        DetectorConfig.from_dict(bad, "detectors[2]")


def test_config_from_dict_defaults_and_name():
    """Omitted keys take the defaults; the name defaults to the detector kind."""
    cfg = DetectorConfig.from_dict({"detector": "cusum", "method": "ks", "threshold": 1})
    assert (cfg.name, cfg.threshold, cfg.delta, cfg.method) == ("cusum", 1.0, 0.01, "ks")
