"""Batch calls: N rows in, N predictions recorded, only kept rows become spans."""

from __future__ import annotations

import modelwatch
import numpy as np
import pandas as pd
import pytest
from modelwatch.sampling import TraceIdSampler
from modelwatch.testing import capture
from sdk_spans import assert_same_attributes, batch_and_single_spans


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "amount": rng.lognormal(3, 1, n),
        "age": rng.integers(18, 90, n),
        "country": rng.choice(["FR", "DE", "US"], n),
        "vip": rng.random(n) < 0.1,
    })


def _proba(df: pd.DataFrame) -> np.ndarray:
    p = 1 / (1 + np.exp(-(np.log(df["amount"].to_numpy()) - 3)))
    return np.c_[1 - p, p]


def test_dataframe_batch_records_n_predictions_and_spans_only_kept_rows():
    """A DataFrame of N rows gives N predictions; rule-matching rows and a random share become spans, the rest are counted only."""
    df = _frame(4000)
    predict = modelwatch.monitor(_proba, model="batch", sampling_rate=0.1)
    with capture() as rec:
        out = predict(df)
        batch = modelwatch.last_prediction()
        spans = rec.predictions()
        assert rec.metric_value("ml.predictions", outcome="ok") == 4000
        decisions = {(p.attributes["decision"], p.attributes["reason"]): p.value for p in rec.metric_points("ml.sampling.decisions")}
    p1 = out[:, 1]
    conf = np.abs(2 * p1 - 1)  # binary confidence: chance (0) to certain (1)
    expected_rules = (conf < 0.5) | (p1 > 0.9)
    assert len(batch) == 4000 and len(set(batch.ids)) == 4000
    assert batch.kept[expected_rules].all()
    assert decisions[("kept", "high_risk")] == int((p1 > 0.9).sum())
    assert sum(v for (d, _), v in decisions.items() if d == "kept") == len(spans) == int(batch.kept.sum())
    sampler = TraceIdSampler(0.1, "default-hash-seed")
    for i in np.flatnonzero(~expected_rules)[:500]:
        assert batch[int(i)].kept is sampler.keep(int(batch.trace_id(int(i)), 16))
    assert {s.attributes["ml.prediction.id"] for s in spans} == set(batch.kept_ids)


def test_batch_row_span_equals_single_prediction_span():
    """A kept row of a batch carries exactly the attributes the same row gets when predicted alone."""
    rows, singles = batch_and_single_spans(_proba, _frame(50, seed=1), "same")
    for a, b in zip(rows, singles):
        assert_same_attributes(a, b)


def test_batch_metrics_equal_the_sum_of_single_predictions():
    """Feature histograms and category counts of a batch call are identical to those of the same rows predicted one by one."""
    df = _frame(3000, seed=2)
    batch_predict = modelwatch.monitor(_proba, model="parity", sampling_rate=0.0)
    single_predict = modelwatch.monitor(lambda row: _proba(pd.DataFrame([row]))[0], model="parity", sampling_rate=0.0)

    def snapshot(rec):
        hist = {p.attributes["ml.feature.name"]: (p.count, p.scale, p.zero_count, p.positive, p.min, p.max)
                for p in rec.metric_points("ml.feature.value")}
        cats = {(p.attributes["ml.feature.name"], p.attributes["ml.feature.value"]): p.value
                for p in rec.metric_points("ml.feature.category")}
        return hist, cats

    with capture() as rec:
        batch_predict(df)
        batch = snapshot(rec)
    with capture() as rec:
        for row in df.to_dict("records"):
            single_predict(row)
        single = snapshot(rec)
    assert batch == single
    assert batch[1][("vip", "true")] == int(df["vip"].sum())


def test_numpy_2d_batch_with_feature_names_and_custom_ids():
    """A 2-D numpy input uses feature_names; ids can come from set_prediction_id() with one id per row."""

    @modelwatch.monitor(model="np2", sampling_rate=1.0, feature_names=["a", "b"])
    def predict(X):
        modelwatch.set_prediction_id([f"row-{i}" for i in range(len(X))])
        return X.sum(axis=1)

    X = np.arange(10, dtype=np.float64).reshape(5, 2)
    with capture() as rec:
        predict(X)
        spans = rec.predictions()
    assert [s.attributes["ml.prediction.id"] for s in spans] == [f"row-{i}" for i in range(5)]
    assert [s.attributes["ml.feature.b"] for s in spans] == [1.0, 3.0, 5.0, 7.0, 9.0]
    assert [s.attributes["ml.prediction.value"] for s in spans] == [1.0, 5.0, 9.0, 13.0, 17.0]


def test_batch_edge_case_hook_gets_the_frame_and_returns_row_flags():
    """The edge_case hook of a batch receives the whole input and its boolean array keeps exactly those rows."""
    df = _frame(500, seed=3)
    predict = modelwatch.monitor(
        lambda d: np.zeros(len(d)), model="edge", sampling_rate=0.0, edge_case=lambda frame, result: frame["vip"].to_numpy()
    )
    with capture() as rec:
        predict(df)
        spans = rec.predictions()
    assert len(spans) == int(df["vip"].sum())
    assert {s.attributes["ml.sampling.reason"] for s in spans} == {"edge_case"}


def test_failing_batch_call_records_one_error_span_and_counts_every_row():
    """A batch call that raises re-raises, records one Error span with the batch size, and counts N error predictions."""

    @modelwatch.monitor(model="bfail", sampling_rate=0.0)
    def predict(df):
        raise ValueError("bad batch")

    with capture() as rec:
        with pytest.raises(ValueError):
            predict(_frame(100))
        (span,) = rec.predictions()
        assert rec.metric_value("ml.predictions", outcome="error") == 100
    assert span.attributes["ml.batch.size"] == 100
    assert span.attributes["ml.sampling.reason"] == "error"


def test_list_of_dicts_is_a_batch():
    """A list of feature dicts is a batch of that many predictions."""

    @modelwatch.monitor(model="lod", sampling_rate=1.0)
    def predict(rows):
        return [r["x"] * 2 for r in rows]

    with capture() as rec:
        predict([{"x": 1, "c": "a"}, {"x": 2, "c": "b"}, {"x": 3}])
        spans = rec.predictions()
        assert rec.metric_value("ml.predictions") == 3
        assert rec.metric_value("ml.feature.missing", **{"ml.feature.name": "c"}) == 1
    assert [s.attributes["ml.prediction.value"] for s in spans] == [2, 4, 6]
    assert "ml.feature.c" not in spans[2].attributes
