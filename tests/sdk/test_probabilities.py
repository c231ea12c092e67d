"""Per-class probabilities of multiclass models: ``ml.prediction.probability.<class>`` on kept spans."""

from __future__ import annotations

import math

import modelwatch
import numpy as np
import pandas as pd
import pytest
from modelwatch.contract import MAX_PROBABILITIES
from modelwatch.testing import capture
from modelwatch.values import attribute_text, format_double
from sdk_spans import assert_same_attributes, batch_and_single_spans

P = "ml.prediction.probability."


def _probs(span) -> dict:
    return {k[len(P):]: v for k, v in span.attributes.items() if k.startswith(P)}


class _Estimator:
    """A fitted sklearn-style classifier: classes_, predict_proba of one row (1-D) or of N rows (2-D)."""

    def __init__(self, classes, row):
        self.classes_ = np.asarray(classes)
        self.row = np.asarray(row, dtype=float)

    def predict_proba(self, X):
        X = np.asarray(X, dtype=float)
        return self.row.copy() if X.ndim == 1 else np.tile(self.row, (len(X), 1))


def _monitored(classes, row, **kw):
    est = _Estimator(classes, row)
    est.predict_proba = modelwatch.monitor(est.predict_proba, model="multi", sampling_rate=1.0, **kw)
    return est


# -- the predict_proba vector --------------------------------------------------------


def test_single_predict_proba_records_one_probability_per_string_class_between_outputs_and_features():
    """One row's predict_proba of a 3-class estimator: a float per class, keyed by classes_: after the outputs, before the features."""
    est = _monitored(["cat", "dog", "fox"], [0.2, 0.5, 0.3])
    with capture() as rec:
        est.predict_proba(np.array([1.0, 2.0]))
        (span,) = rec.predictions()
    assert _probs(span) == {"cat": 0.2, "dog": 0.5, "fox": 0.3}
    assert all(type(v) is float for v in _probs(span).values())
    assert span.attributes["ml.prediction.value"] == "dog"
    assert span.attributes["ml.prediction.score"] == 0.5  # multiclass: the top probability, unchanged
    keys = list(span.attributes)
    first_prob, last_prob = keys.index(P + "cat"), keys.index(P + "fox")
    assert keys[first_prob:last_prob + 1] == [P + "cat", P + "dog", P + "fox"]
    assert keys.index("ml.prediction.confidence") < first_prob
    assert last_prob < keys.index("ml.feature.f0")


def test_int_classes_are_keyed_in_decimal():
    """Integer classes_ (numpy int64) are keyed as the exporter renders the int ml.prediction.value."""
    est = _monitored([3, 7, 11], [0.1, 0.3, 0.6])
    with capture() as rec:
        est.predict_proba(np.array([1.0]))
        (span,) = rec.predictions()
    assert _probs(span) == {"3": 0.1, "7": 0.3, "11": 0.6}
    assert span.attributes["ml.prediction.value"] == 11 and type(span.attributes["ml.prediction.value"]) is int


def test_float_class_is_keyed_in_shortest_form():
    """A float class 2.0 is keyed `2`, as the exporter stores the double ml.prediction.value 2.0."""
    est = _monitored([0.0, 1.0, 2.0], [0.1, 0.2, 0.7])
    with capture() as rec:
        est.predict_proba(np.array([1.0]))
        est.predict_proba(pd.DataFrame({"x": [1.0, 2.0]}))
        spans = rec.predictions()
    assert len(spans) == 3
    for span in spans:
        assert _probs(span) == {"0": 0.1, "1": 0.2, "2": 0.7}
        assert span.attributes["ml.prediction.value"] == 2.0
        assert format_double(span.attributes["ml.prediction.value"]) == "2"


def test_plain_function_classes_are_indices():
    """Without an estimator's classes_, the classes are the indices (as ml.prediction.value is)."""

    @modelwatch.monitor(model="idx", sampling_rate=1.0)
    def predict(x):
        return [0.25, 0.25, 0.5]

    with capture() as rec:
        predict({"f": 1.0})
        (span,) = rec.predictions()
    assert _probs(span) == {"0": 0.25, "1": 0.25, "2": 0.5}
    assert span.attributes["ml.prediction.value"] == 2


def test_batch_probability_array_records_each_kept_row():
    """An (N, C) predict_proba of a batch: each kept row's span carries its own row of probabilities as Python floats."""

    class Est:
        classes_ = np.array(["a", "b", "c"])

        def predict_proba(self, X):
            x = np.asarray(X["x"], dtype=float)
            z = np.c_[x, 1 - x, np.full_like(x, 0.5)]
            return z / z.sum(axis=1, keepdims=True)

    est = Est()
    est.predict_proba = modelwatch.monitor(est.predict_proba, model="b", sampling_rate=1.0)
    df = pd.DataFrame({"x": np.linspace(0.0, 1.0, 20)})
    with capture() as rec:
        out = est.predict_proba(df)
        spans = rec.predictions()
    assert len(spans) == 20
    by_x = {s.attributes["ml.feature.x"]: s for s in spans}
    for x, row in zip(df["x"], out):
        probs = _probs(by_x[x])
        assert probs == dict(zip(["a", "b", "c"], row.tolist()))
        assert all(type(v) is float for v in probs.values())


def test_batch_row_probabilities_equal_the_single_prediction_ones():
    """A kept row of a 4-class batch carries exactly the attributes (probabilities included) of the same row predicted alone."""

    def proba(df):
        x = np.asarray(df["x"], dtype=float)
        z = np.exp(np.c_[x, 2 * x, -x, np.zeros_like(x)])
        return z / z.sum(axis=1, keepdims=True)

    df = pd.DataFrame({"x": np.linspace(-2.0, 2.0, 15), "k": ["u", "v", "w"] * 5})
    rows, singles = batch_and_single_spans(proba, df, "same")
    for a, b in zip(rows, singles):
        assert len(_probs(a)) == 4
        assert_same_attributes(a, b)


# -- explicit probabilities in a mapping, a frame, a hook ------------------------------------


def test_mapping_result_with_probabilities_dict_and_list():
    """A mapping's `probabilities`: a dict class -> probability, or a list in class order named by classes_."""

    @modelwatch.monitor(model="m", sampling_rate=1.0)
    def by_dict(x):
        return {"prediction": "b", "score": 0.5, "probabilities": {"a": 0.2, "b": 0.5, "c": np.float32(0.3), 4: 0.0}}

    class Est:
        classes_ = np.array(["x", "y", "z"])

        def predict(self, row):
            return {"prediction": "z", "probabilities": [0.1, 0.2, 0.7]}

    est = Est()
    est.predict = modelwatch.monitor(est.predict, model="m", sampling_rate=1.0)
    with capture() as rec:
        by_dict({"f": 1.0})
        est.predict({"f": 2.0})
        a, b = rec.predictions()
    assert _probs(a) == {"a": 0.2, "b": 0.5, "c": pytest.approx(0.3), "4": 0.0}
    assert type(_probs(a)["c"]) is float  # a numpy float32 becomes a Python float
    assert a.attributes["ml.prediction.score"] == 0.5  # the score is the result's own, unchanged
    assert _probs(b) == {"x": 0.1, "y": 0.2, "z": 0.7}


def test_dataframe_and_list_of_dicts_results_with_a_probabilities_column():
    """A batch result with a `probabilities` column (a mapping or a list per row) records each kept row's."""

    def frame_out(df):
        return pd.DataFrame({"prediction": ["a"] * len(df), "probabilities": [{"a": 0.6, "b": 0.3, "c": 0.1}] * len(df)})

    def dicts_out(df):
        return [{"prediction": 2, "probabilities": [0.1, 0.1, 0.8]} for _ in range(len(df))]

    df = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    with capture() as rec:
        modelwatch.monitor(frame_out, model="f", sampling_rate=1.0)(df)
        modelwatch.monitor(dicts_out, model="d", sampling_rate=1.0)(df)
        spans = rec.predictions()
    assert len(spans) == 6
    for s in spans:
        expected = {"a": 0.6, "b": 0.3, "c": 0.1} if s.attributes["ml.model.name"] == "f" else {"0": 0.1, "1": 0.1, "2": 0.8}
        assert _probs(s) == expected


def test_probabilities_hook_single_and_batch():
    """probabilities= reads them from the result: a mapping for one row, an (N, C) array or N mappings for a batch."""
    single = modelwatch.monitor(
        lambda x: {"prediction": "b", "score": 0.6, "p": [0.3, 0.6, 0.1]}, model="h", sampling_rate=1.0,
        probabilities=lambda r: dict(zip(["a", "b", "c"], r["p"])),
    )
    as_array = modelwatch.monitor(
        lambda df: {"labels": ["b"] * len(df), "p": np.tile([0.3, 0.6, 0.1], (len(df), 1))},
        model="h", sampling_rate=1.0, prediction=lambda r: r["labels"], probabilities=lambda r: r["p"],
    )
    as_mappings = modelwatch.monitor(
        lambda df: ["b"] * len(df), model="h", sampling_rate=1.0,
        probabilities=lambda r: [{"a": 0.3, "b": 0.6, "c": 0.1} for _ in r],
    )
    df = pd.DataFrame({"x": [1.0, 2.0]})
    with capture() as rec:
        single({"x": 1.0})
        as_array(df)
        as_mappings(df)
        spans = rec.predictions()
    assert len(spans) == 5
    assert _probs(spans[0]) == {"a": 0.3, "b": 0.6, "c": 0.1}
    assert spans[0].attributes["ml.prediction.score"] == 0.6  # the result's score, as without the hook
    assert [_probs(s) for s in spans[1:3]] == [{"0": 0.3, "1": 0.6, "2": 0.1}] * 2
    assert [_probs(s) for s in spans[3:]] == [{"a": 0.3, "b": 0.6, "c": 0.1}] * 2


def test_hook_is_called_for_kept_predictions_only_and_never_in_metrics():
    """Dropped predictions make no span and do not call the hook; no metric carries probabilities."""
    calls = []

    def hook(r):
        calls.append(r)
        return {"a": 0.98, "b": 0.01, "c": 0.01}

    predict = modelwatch.monitor(lambda x: {"prediction": "a", "score": 0.5, "confidence": 0.99},
                                 model="k", sampling_rate=0.0, high_risk_threshold=1.0, probabilities=hook)
    with capture() as rec:
        for _ in range(5):
            predict({"x": 1.0})
        assert rec.predictions() == []
        names = {m.name for rm in rec.metrics_data().resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert calls == []
    assert not any(n.startswith(P) or "probabilit" in n for n in names)


def test_failing_or_odd_hook_is_counted_and_the_prediction_still_recorded():
    """A hook that raises, returns an unreadable value or the wrong number of rows records no probabilities, and nothing raises."""

    def boom(r):
        raise RuntimeError("no probabilities today")

    raising = modelwatch.monitor(lambda x: "a", model="o", sampling_rate=1.0, probabilities=boom)
    odd = modelwatch.monitor(lambda x: "a", model="o", sampling_rate=1.0, probabilities=lambda r: 42)
    short = modelwatch.monitor(lambda df: ["a"] * len(df), model="o", sampling_rate=1.0,
                               probabilities=lambda r: np.full((1, 3), 1 / 3))
    with capture() as rec:
        assert raising({"x": 1.0}) == "a"
        assert odd({"x": 1.0}) == "a"
        assert short(pd.DataFrame({"x": [1.0, 2.0]})) == ["a", "a"]
        spans = rec.predictions()
        issues = rec.issues()
    assert len(spans) == 4
    assert all(_probs(s) == {} and s.attributes["ml.prediction.value"] == "a" for s in spans)
    assert issues[("hook_error", "o")] == 2  # the raise, the wrong row count
    assert issues[("invalid_value", "o")] == 1


# -- what records none, or fewer ------------------------------------------------------------


def test_binary_models_keep_only_the_score():
    """Two classes: ml.prediction.score = P(class 1) as before, no per-class probabilities (vector, batch, mapping)."""
    est = _monitored(["no", "yes"], [0.3, 0.7])
    mapping = modelwatch.monitor(lambda x: {"prediction": "yes", "probabilities": {"no": 0.3, "yes": 0.7}},
                                 model="bin", sampling_rate=1.0)
    with capture() as rec:
        est.predict_proba(np.array([1.0]))
        est.predict_proba(pd.DataFrame({"x": [1.0, 2.0]}))
        mapping({"x": 1.0})
        spans = rec.predictions()
        issues = rec.issues()
    assert len(spans) == 4
    assert all(_probs(s) == {} for s in spans)
    assert [s.attributes.get("ml.prediction.score") for s in spans[:3]] == [0.7] * 3
    assert issues == {}


def test_nan_inf_and_out_of_range_probabilities_are_skipped_and_counted():
    """NaN, ±inf, values outside [0, 1] and non-numbers are left out (the rest recorded), counted under invalid_value; nothing raises."""

    @modelwatch.monitor(model="nan", sampling_rate=1.0)
    def single(x):
        return {"prediction": "b", "probabilities": {"a": math.nan, "b": 0.5, "c": 0.5, "d": math.inf, "e": 1.5, "f": -0.1, "g": "x"}}

    @modelwatch.monitor(model="nan", sampling_rate=1.0)
    def batch(df):
        return np.array([[0.2, np.nan, 0.8], [0.1, 0.1, 0.8]])

    with capture() as rec:
        assert single({"x": 1.0})["prediction"] == "b"
        batch(pd.DataFrame({"x": [1.0, 2.0]}))
        s, b0, b1 = rec.predictions()
        issues = rec.issues()
    assert _probs(s) == {"b": 0.5, "c": 0.5}
    assert _probs(b0) == {"0": 0.2, "2": 0.8}
    assert _probs(b1) == {"0": 0.1, "1": 0.1, "2": 0.8}
    assert issues[("invalid_value", "nan")] == 5 + 1


def test_more_than_max_classes_records_none():
    """51 classes record no per-class probabilities (counted as too_many_classes); 50 record all."""
    many = np.full(MAX_PROBABILITIES + 1, 1 / (MAX_PROBABILITIES + 1))
    most = np.full(MAX_PROBABILITIES, 1 / MAX_PROBABILITIES)
    with capture() as rec:
        modelwatch.monitor(lambda x: many, model="many", sampling_rate=1.0)(np.array([1.0]))
        modelwatch.monitor(lambda df: np.tile(many, (len(df), 1)), model="many", sampling_rate=1.0)(pd.DataFrame({"x": [1.0, 2.0]}))
        modelwatch.monitor(lambda x: most, model="most", sampling_rate=1.0)(np.array([1.0]))
        s1, b0, b1, ok = rec.predictions()
        issues = rec.issues()
    assert _probs(s1) == _probs(b0) == _probs(b1) == {}
    assert s1.attributes["ml.prediction.score"] == pytest.approx(many[0])  # the outputs are unchanged
    assert len(_probs(ok)) == MAX_PROBABILITIES
    assert issues[("too_many_classes", "many")] == 3


def test_classes_with_the_same_text_record_none():
    """Classes 1 and '1' would share one key: none are recorded (counted), the prediction is."""
    predict = modelwatch.monitor(lambda x: {"prediction": 1, "probabilities": {1: 0.2, "1": 0.3, 2: 0.5}},
                                 model="dup", sampling_rate=1.0)
    with capture() as rec:
        predict({"x": 1.0})
        (span,) = rec.predictions()
        issues = rec.issues()
    assert _probs(span) == {}
    assert issues[("invalid_value", "dup")] == 1


def test_probabilities_come_before_features_within_the_attribute_limit():
    """With 50 classes and 100 features, modelwatch's provider keeps the first 128: every probability, features cut."""
    most = np.full(MAX_PROBABILITIES, 1 / MAX_PROBABILITIES)
    predict = modelwatch.monitor(lambda x: most, model="wide", sampling_rate=1.0)
    with capture() as rec:
        predict({f"f{i:03d}": float(i) for i in range(100)})
        (span,) = rec.predictions()
    assert len(span.attributes) == 128
    assert len(_probs(span)) == MAX_PROBABILITIES
    assert "ml.feature.f000" in span.attributes and "ml.feature.f099" not in span.attributes


# -- rendering -----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "text"), [
    ("setosa", "setosa"), (np.str_("b"), "b"), (True, "true"), (np.bool_(False), "false"), (7, "7"),
    (np.int64(-3), "-3"), (2.0, "2"), (np.float64(2.5), "2.5"), (0.1, "0.1"), (1e-7, "1e-7"),
    (1e21, "1e+21"), (1.5e16, "15000000000000000"), (-0.0, "-0"), (None, None), (math.nan, None), (math.inf, None),
])
def test_class_text_is_the_exporters_rendering(value, text):
    """Classes are rendered as the clickhouse exporter stores an attribute value: decimal, true/false, shortest doubles."""
    assert attribute_text(value, 256) == text
