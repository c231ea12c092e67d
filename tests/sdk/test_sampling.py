"""Random tail sampling: rate, weights, unbiasedness, and agreement with the collector's hash."""

from __future__ import annotations

import modelwatch
import numpy as np
import pytest
from modelwatch.sampling import TraceIdSampler
from modelwatch.testing import capture
from scipy import stats

N = 20_000


def _confident_model(rate: float):
    @modelwatch.monitor(model=f"rate{rate}", sampling_rate=rate)
    def predict(x):
        return {"prediction": 0, "score": 0.05}  # confidence 0.95, risk 0.05: no rule fires

    return predict


@pytest.mark.parametrize("rate", [0.1, 0.25])
def test_kept_fraction_lies_in_binomial_confidence_interval(rate):
    """With no rule firing, the kept fraction of N predictions lies within the 99.9 % binomial interval of the rate."""
    predict = _confident_model(rate)
    with capture() as rec:
        kept = 0
        for i in range(N):
            predict({"i": i})
            kept += modelwatch.last_prediction().kept
        spans = rec.predictions()
    ci = stats.binomtest(kept, N, rate).proportion_ci(confidence_level=0.999)
    assert ci.low <= rate <= ci.high, (kept, ci)
    assert len(spans) == kept
    assert all(s.attributes["ml.sampling.weight"] == pytest.approx(1 / rate, rel=1e-12) for s in spans)
    assert {s.attributes["ml.sampling.reason"] for s in spans} == {"random"}


def test_random_decision_is_the_collector_hash_of_the_exported_trace_id():
    """Every prediction is kept exactly when FNV-1a(salt || trace id) <= threshold: the exported span's trace id decides."""
    predict = _confident_model(0.3)
    oracle = TraceIdSampler(0.3, "default-hash-seed")
    with capture() as rec:
        decisions = []
        for i in range(3000):
            predict({"i": i})
            p = modelwatch.last_prediction()
            decisions.append((int(p.trace_id, 16), p.kept))
        exported = {s.context.trace_id for s in rec.predictions()}
    for trace_id, kept in decisions:
        assert oracle.keep(trace_id) is kept
        assert (trace_id in exported) is kept


def test_weighted_statistics_from_kept_spans_are_unbiased():
    """Horvitz-Thompson: weighted counts and means over kept spans estimate the full population, the unweighted ones are biased."""
    rng = np.random.default_rng(7)
    n = 40_000
    conf = rng.beta(5, 2, n)  # about 11 % below 0.5, always kept
    value = np.where(conf < 0.5, rng.normal(10, 1, n), rng.normal(0, 1, n))  # low-confidence rows differ

    @modelwatch.monitor(model="ht", sampling_rate=0.1, confidence=lambda r: r)
    def predict(x):
        return x["_conf"]

    with capture() as rec:
        for c, v in zip(conf.tolist(), value.tolist()):
            predict({"_conf": c, "v": v})
        spans = rec.predictions()
    w = np.array([s.attributes["ml.sampling.weight"] for s in spans])
    v = np.array([s.attributes["ml.feature.v"] for s in spans])
    # the weighted count estimates n with relative sd about sqrt((1-p)/(p*n_random)) ~ 1.6 %
    assert w.sum() == pytest.approx(n, rel=0.06)
    weighted_mean = float((w * v).sum() / w.sum())
    true_mean = float(value.mean())
    naive_mean = float(v.mean())
    assert abs(weighted_mean - true_mean) < 0.12, (weighted_mean, true_mean)
    assert abs(naive_mean - true_mean) > 1.5, (naive_mean, true_mean)  # the sample over-represents low confidence


def test_rate_one_keeps_all_and_rate_zero_keeps_none():
    """Rate 1 keeps every prediction with weight 1; rate 0 keeps none."""
    with capture() as rec:
        all_ = _confident_model(1.0)
        none = _confident_model(0.0)
        for i in range(300):
            all_({"i": i})
            none({"i": i})
        spans = rec.predictions()
    assert len(spans) == 300
    assert {s.attributes["ml.model.name"] for s in spans} == {"rate1.0"}
    assert {s.attributes["ml.sampling.weight"] for s in spans} == {1.0}


def test_sampling_salt_can_be_set_to_match_a_collector_policy(monkeypatch):
    """MODELWATCH_SAMPLING_HASH_SALT changes the hash exactly as the collector's hash_salt does."""
    monkeypatch.setenv("MODELWATCH_SAMPLING_HASH_SALT", "my-salt")
    predict = _confident_model(0.5)
    salted = TraceIdSampler(0.5, "my-salt")
    default = TraceIdSampler(0.5, "default-hash-seed")
    with capture():
        disagreements = 0
        for i in range(500):
            predict({"i": i})
            p = modelwatch.last_prediction()
            tid = int(p.trace_id, 16)
            assert salted.keep(tid) is p.kept
            disagreements += default.keep(tid) is not p.kept
    assert disagreements > 100  # a different salt really is a different decision


def test_trace_ids_are_distinct_and_random():
    """Trace ids (and default prediction ids) are 128-bit, distinct, and use the whole range."""
    predict = _confident_model(0.0)
    with capture():
        ids = set()
        for i in range(5000):
            predict({"i": i})
            ids.add(modelwatch.last_prediction().id)
    assert len(ids) == 5000
    top_bits = [int(i, 16) >> 127 for i in ids]
    assert 0.45 < sum(top_bits) / len(top_bits) < 0.55
    assert all(len(i) == 32 for i in ids)
