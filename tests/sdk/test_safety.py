"""The SDK never raises into, or corrupts, the inference call: bad values, bad hooks, its own bugs."""

from __future__ import annotations

import logging
import math

import modelwatch
import numpy as np
from modelwatch.testing import capture


def test_bad_feature_values_are_handled_counted_and_logged_once(caplog):
    """NaN and None are missing, inf is kept on the span only, huge strings truncated, unserialisable objects dropped; each logged once."""

    @modelwatch.monitor(model="bad", sampling_rate=1.0, max_string_length=100)
    def predict(x):
        return 1

    class Opaque:
        pass

    with capture() as rec, caplog.at_level(logging.WARNING, logger="modelwatch"):
        for _ in range(50):
            predict({"nan": math.nan, "none": None, "inf": math.inf, "long": "x" * 10_000, "obj": Opaque(),
                     "np": np.float32(0.5), "ok": 1.0})
        span = rec.predictions()[0]
        issues = rec.issues()
        missing = {p.attributes["ml.feature.name"]: p.value for p in rec.metric_points("ml.feature.missing")}
        (hist_np,) = [p for p in rec.metric_points("ml.feature.value") if p.attributes["ml.feature.name"] == "np"]
    attrs = dict(span.attributes)
    assert "ml.feature.nan" not in attrs and "ml.feature.none" not in attrs and "ml.feature.obj" not in attrs
    assert attrs["ml.feature.inf"] == math.inf
    assert attrs["ml.feature.long"] == "x" * 100
    assert attrs["ml.feature.np"] == 0.5 and type(attrs["ml.feature.np"]) is float
    assert missing == {"nan": 50, "none": 50}
    assert hist_np.count == 50
    assert issues[("invalid_value", "bad")] == 50
    assert issues[("truncated", "bad")] == 50
    assert issues[("nonfinite_value", "bad")] == 50
    messages = [r.getMessage() for r in caplog.records if r.name == "modelwatch"]
    assert len(messages) == 3, messages


def test_raising_hooks_never_reach_the_caller():
    """A user hook that raises is counted and logged; the prediction is still returned and recorded."""

    def broken(*_a, **_k):
        raise ZeroDivisionError("hook bug")

    @modelwatch.monitor(model="hooks", sampling_rate=1.0, edge_case=broken, prediction_id=broken)
    def predict(x):
        return 7

    with capture() as rec:
        assert predict({"a": 1}) == 7
        (span,) = rec.predictions()
        assert rec.issues()[("hook_error", "hooks")] == 2
    assert span.attributes["ml.prediction.value"] == 7


def test_failure_inside_modelwatch_is_swallowed_and_counted():
    """If reading the call fails inside modelwatch (here: a mapping whose iteration raises), the caller still gets its result."""

    from collections.abc import Mapping

    class Hostile(Mapping):
        def __getitem__(self, key):
            raise RuntimeError("cannot read")

        def __iter__(self):
            raise RuntimeError("cannot iterate")

        def __len__(self):
            return 1

    @modelwatch.monitor(model="internal", sampling_rate=1.0)
    def predict(x):
        return "fine"

    with capture() as rec:
        assert predict(Hostile()) == "fine"
        assert rec.issues()[("internal_error", "internal")] == 1


def test_output_of_unexpected_shape_does_not_break_the_call():
    """A result modelwatch cannot interpret as a batch (wrong length) is reported, not raised."""
    import pandas as pd

    @modelwatch.monitor(model="shape", sampling_rate=1.0)
    def predict(df):
        return np.zeros(len(df) + 1)

    with capture() as rec:
        result = predict(pd.DataFrame({"a": [1.0, 2.0]}))
        assert result.shape == (3,)
        assert rec.issues()[("internal_error", "shape")] == 1


def test_hostile_feature_names_and_values_are_recorded_verbatim():
    """Quotes, backslashes, newlines and unicode in names and values pass through as data."""
    name = "we'ird\"\\\nname ☃"

    @modelwatch.monitor(model="host'ile", sampling_rate=1.0)
    def predict(x):
        return "ok"

    with capture() as rec:
        predict({name: "va'l\nue\\ ☃"})
        (span,) = rec.predictions()
    assert span.attributes[f"ml.feature.{name}"] == "va'l\nue\\ ☃"
    assert span.attributes["ml.model.name"] == "host'ile"


def test_privacy_drops_and_hashes_named_features_everywhere(monkeypatch):
    """Dropped features appear in no span or metric; hashed features appear only as keyed hashes, in spans and category counts."""
    monkeypatch.setenv("MODELWATCH_HASH_KEY", "secret")
    monkeypatch.setenv("MODELWATCH_DROP_FEATURES", "ssn")

    @modelwatch.monitor(model="pii", sampling_rate=1.0, hash_features=["email"])
    def predict(x):
        return 0

    with capture() as rec:
        predict({"ssn": "123-45-6789", "email": "a@b.c", "x": 1.0})
        (span,) = rec.predictions()
        cats = [p.attributes for p in rec.metric_points("ml.feature.category")]
        names = {p.attributes["ml.feature.name"] for p in rec.metric_points("ml.feature.value")} | {c["ml.feature.name"] for c in cats}
    from modelwatch.values import keyed_hash

    assert "ml.feature.ssn" not in span.attributes
    assert span.attributes["ml.feature.email"] == keyed_hash("a@b.c", b"secret")
    assert "a@b.c" not in repr(cats) and "123-45-6789" not in repr(cats)
    assert "ssn" not in names
    assert [c["ml.feature.value"] for c in cats] == [keyed_hash("a@b.c", b"secret")]


def test_privacy_applies_to_batch_calls_too(monkeypatch):
    """In a batch, dropped features appear nowhere and hashed ones only as keyed hashes, on spans and in metrics."""
    import pandas as pd

    monkeypatch.setenv("MODELWATCH_HASH_KEY", "k2")
    from modelwatch.values import keyed_hash

    @modelwatch.monitor(model="pii-batch", sampling_rate=1.0, drop_features=["ssn"], hash_features=["email", "zip"])
    def predict(df):
        return np.zeros(len(df))

    frame = pd.DataFrame({"ssn": ["1", "2"], "email": ["a@x", "b@y"], "zip": [75001, 10115], "x": [1.0, 2.0]})
    with capture() as rec:
        predict(frame)
        spans = rec.predictions()
        cats = {(p.attributes["ml.feature.name"], p.attributes["ml.feature.value"]) for p in rec.metric_points("ml.feature.category")}
        hist_names = {p.attributes["ml.feature.name"] for p in rec.metric_points("ml.feature.value")}
    assert [s.attributes["ml.feature.email"] for s in spans] == [keyed_hash("a@x", b"k2"), keyed_hash("b@y", b"k2")]
    assert [s.attributes["ml.feature.zip"] for s in spans] == [keyed_hash(75001, b"k2"), keyed_hash(10115, b"k2")]
    assert all("ml.feature.ssn" not in s.attributes for s in spans)
    assert ("email", "a@x") not in cats and ("email", keyed_hash("a@x", b"k2")) in cats
    assert hist_names == {"x"}  # the hashed number is a category now, the dropped feature nowhere
    assert not any(name == "ssn" for name, _ in cats)


def test_hashed_numeric_features_are_hashed_on_spans_whatever_their_type(monkeypatch):
    """A hashed feature given as a float or an int never reaches a span in clear, alone or next to missing values."""
    monkeypatch.setenv("MODELWATCH_HASH_KEY", "k3")
    from modelwatch.values import keyed_hash

    @modelwatch.monitor(model="pii-num", sampling_rate=1.0, hash_features=["salary", "account"])
    def predict(x):
        return 0

    with capture() as rec:
        predict({"salary": 52000.5, "account": 1234567, "x": 1.0})
        predict({"salary": 61000.25, "account": 7654321, "x": None})  # a None sends the row down the general path
        spans = rec.predictions()
    assert [s.attributes["ml.feature.salary"] for s in spans] == [keyed_hash(52000.5, b"k3"), keyed_hash(61000.25, b"k3")]
    assert [s.attributes["ml.feature.account"] for s in spans] == [keyed_hash(1234567, b"k3"), keyed_hash(7654321, b"k3")]


def test_record_label_never_raises_for_a_model_name_that_cannot_be_printed():
    """A model argument whose __str__ raises: record_label returns False and counts an internal error, in capture
    mode and with the SDK unconfigured alike (the error used to escape from the handler that reported it)."""

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

        def __repr__(self) -> str:
            raise RuntimeError("no repr for you")

    assert modelwatch.record_label(Unprintable(), "p1", 1) is False
    with capture() as rec:
        assert modelwatch.record_label(Unprintable(), "p2", 1) is False
        assert rec.issues()[("internal_error", "<unprintable Unprintable>")] == 1
        assert rec.labels() == []
