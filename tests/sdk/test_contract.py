"""The span contract (DESIGN.md, v1): every attribute, for every kind of prediction."""

from __future__ import annotations

import modelwatch
import pytest
from modelwatch.testing import capture
from opentelemetry.trace import SpanKind, StatusCode


def _pop_common(attrs: dict, model: str, version: str, reason: str, weight: float, low: bool, high: bool) -> str:
    assert attrs.pop("ml.model.name") == model
    if version:
        assert attrs.pop("ml.model.version") == version
    else:
        assert "ml.model.version" not in attrs  # optional: an unversioned model carries none
    assert attrs.pop("ml.sampling.reason") == reason
    assert attrs.pop("ml.sampling.weight") == pytest.approx(weight)
    assert attrs.pop("ml.low_confidence") is low
    assert attrs.pop("ml.high_risk") is high
    pid = attrs.pop("ml.prediction.id")
    assert isinstance(pid, str) and pid
    return pid


def test_kept_at_random_span_carries_every_contract_attribute_and_nothing_else():
    """A randomly kept prediction's span has exactly the contract's attributes, typed as the contract says."""

    @modelwatch.monitor(model="churn", version="3", sampling_rate=1.0)
    def predict(features):
        return {"prediction": "stay", "score": 0.2, "confidence": 0.8}

    with capture() as rec:
        predict({"tenure": 12, "monthly": 42.5, "plan": "basic", "promo": True})
        spans = rec.predictions()
    assert len(spans) == 1
    span = spans[0]
    attrs = dict(span.attributes)
    pid = _pop_common(attrs, "churn", "3", "random", 1.0, False, False)
    assert pid == modelwatch.last_prediction().id
    assert attrs.pop("ml.prediction.value") == "stay"
    assert attrs.pop("ml.prediction.score") == 0.2
    assert attrs.pop("ml.prediction.confidence") == 0.8
    assert attrs.pop("ml.feature.tenure") == 12
    assert attrs.pop("ml.feature.monthly") == 42.5
    assert attrs.pop("ml.feature.plan") == "basic"
    assert attrs.pop("ml.feature.promo") is True
    assert attrs == {}
    assert span.name == "ml.predict"
    assert span.kind == SpanKind.INTERNAL
    assert span.parent is None
    assert span.status.status_code == StatusCode.UNSET
    assert f"{span.context.trace_id:032x}" == modelwatch.last_prediction().trace_id


def test_low_confidence_prediction_is_kept_with_weight_one_and_flag():
    """Confidence below 0.5 keeps a prediction even at sampling rate 0, with weight 1 and ml.low_confidence=true."""

    @modelwatch.monitor(model="m", sampling_rate=0.0)
    def predict(x):
        return {"prediction": 1, "confidence": 0.3}

    with capture() as rec:
        predict({"a": 1.0})
        (span,) = rec.predictions()
    attrs = dict(span.attributes)
    _pop_common(attrs, "m", "", "low_confidence", 1.0, True, False)
    assert attrs.pop("ml.prediction.confidence") == 0.3
    assert attrs.pop("ml.prediction.value") == 1
    assert attrs.pop("ml.feature.a") == 1.0
    assert attrs == {}


def test_high_score_is_kept_as_high_risk_and_both_flags_are_reported():
    """A score above 0.9 keeps a prediction (reason high_risk); a prediction matching two rules reports the first and both flags."""

    @modelwatch.monitor(model="m", sampling_rate=0.0)
    def predict(x):
        return x  # the input dict is the result: prediction/score/confidence/risk keys

    with capture() as rec:
        predict({"prediction": 1, "score": 0.95})
        predict({"prediction": 1, "confidence": 0.2, "risk": 0.99})
        first, second = rec.predictions()
    assert first.attributes["ml.sampling.reason"] == "high_risk"
    assert first.attributes["ml.high_risk"] is True
    assert first.attributes["ml.low_confidence"] is False
    assert second.attributes["ml.sampling.reason"] == "low_confidence"
    assert second.attributes["ml.high_risk"] is True
    assert second.attributes["ml.low_confidence"] is True


def test_nothing_kept_when_no_rule_fires_at_rate_zero():
    """At rate 0 a confident, low-risk prediction becomes no span at all (but is counted as dropped)."""

    @modelwatch.monitor(model="m", sampling_rate=0.0)
    def predict(x):
        return {"prediction": 0, "score": 0.05}

    with capture() as rec:
        for _ in range(50):
            predict({"a": 1})
        assert rec.predictions() == []
        assert rec.metric_value("ml.sampling.decisions", decision="dropped", reason="not_sampled") == 50
        assert rec.metric_value("ml.predictions", outcome="ok") == 50
    assert modelwatch.last_prediction().kept is False


def test_edge_case_hook_and_mark_edge_case_keep_predictions():
    """Rows flagged by the edge_case hook, or by mark_edge_case() inside the call, are always kept as edge_case."""

    @modelwatch.monitor(model="m", sampling_rate=0.0, edge_case=lambda feats, result: feats["amount"] > 1000)
    def predict(x):
        if x.get("vip"):
            modelwatch.mark_edge_case()
        return {"prediction": 0, "score": 0.1}

    with capture() as rec:
        predict({"amount": 5})
        predict({"amount": 5000})
        predict({"amount": 5, "vip": True})
        spans = rec.predictions()
    assert [s.attributes["ml.sampling.reason"] for s in spans] == ["edge_case", "edge_case"]
    assert [s.attributes["ml.feature.amount"] for s in spans] == [5000, 5]


def test_thresholds_are_configurable_in_code_and_environment(monkeypatch):
    """Thresholds come from arguments first, then MODELWATCH_* variables; a bad variable falls back to the default."""
    monkeypatch.setenv("MODELWATCH_LOW_CONFIDENCE_THRESHOLD", "0.7")
    monkeypatch.setenv("MODELWATCH_HIGH_RISK_THRESHOLD", "not-a-number")
    monkeypatch.setenv("MODELWATCH_SAMPLING_RATE", "0")

    @modelwatch.monitor(model="env")
    def by_env(x):
        return {"prediction": 0, "confidence": 0.6, "score": 0.95}

    @modelwatch.monitor(model="arg", low_confidence_threshold=0.55, high_risk_threshold=0.99)
    def by_arg(x):
        return {"prediction": 0, "confidence": 0.6, "score": 0.95}

    with capture() as rec:
        by_env({"a": 1})
        by_arg({"a": 1})
        spans = rec.predictions()
    assert [(s.attributes["ml.model.name"], s.attributes["ml.sampling.reason"]) for s in spans] == [("env", "low_confidence")]
    with pytest.raises(modelwatch.ConfigurationError):
        modelwatch.monitor(model="x", sampling_rate=1.5)
    with pytest.raises(modelwatch.ConfigurationError):
        modelwatch.monitor(model="x", low_confidence_threshold="high")


def test_application_exception_propagates_unchanged_and_span_is_error():
    """The app's exception object and traceback reach the caller untouched; the span is Error with the exception recorded."""
    original = ValueError("bad input")

    @modelwatch.monitor(model="m", sampling_rate=0.0)
    def predict(x):
        raise original

    with capture() as rec:
        with pytest.raises(ValueError) as info:
            predict({"a": 1})
        (span,) = rec.predictions()
        assert rec.metric_value("ml.predictions", outcome="error") == 1
    assert info.value is original
    assert info.traceback[-1].name == "predict"
    assert span.status.status_code == StatusCode.ERROR
    assert "ValueError: bad input" in span.status.description
    assert span.attributes["ml.sampling.reason"] == "error"
    assert span.attributes["ml.feature.a"] == 1
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "bad input"


def test_label_span_carries_model_prediction_id_and_value():
    """record_label emits an ml.label span with model, version, prediction id and the label, regardless of sampling."""

    @modelwatch.monitor(model="fraud", version="1", sampling_rate=0.0)
    def predict(x):
        return {"prediction": 0, "score": 0.01}

    with capture() as rec:
        predict({"a": 1})
        pid = modelwatch.last_prediction().id
        assert modelwatch.record_label("fraud", pid, True, version="1") is True
        assert rec.predictions() == []
        (label,) = rec.labels()
    attrs = dict(label.attributes)
    assert attrs.pop("ml.model.name") == "fraud"
    assert attrs.pop("ml.model.version") == "1"
    assert attrs.pop("ml.prediction.id") == pid
    assert attrs.pop("ml.label.value") is True
    assert attrs == {}


def test_label_values_are_plain_types_and_bad_labels_do_not_raise():
    """Numpy labels are converted to Python values; an unrecordable label returns False and is counted, never raises."""
    import numpy as np

    with capture() as rec:
        assert modelwatch.record_label("m", "p1", np.float32(2.5)) is True
        assert modelwatch.record_label("m", "p2", object()) is False
        (label,) = rec.labels()
        assert type(label.attributes["ml.label.value"]) is float
        assert rec.issues()[("invalid_value", "m")] == 1


def test_custom_prediction_id_from_hook_and_from_inside_the_call():
    """The prediction id can come from a hook over the call's arguments or from set_prediction_id() inside the call."""

    @modelwatch.monitor(model="m", sampling_rate=1.0, prediction_id=lambda x, request_id: request_id)
    def by_hook(x, request_id):
        return 1

    @modelwatch.monitor(model="m2", sampling_rate=1.0)
    def inside(x):
        modelwatch.set_prediction_id("req-42")
        return 1

    with capture() as rec:
        by_hook({"a": 1}, request_id="abc")
        assert modelwatch.last_prediction().id == "abc"
        inside({"a": 1})
        assert modelwatch.last_prediction().id == "req-42"
        assert [s.attributes["ml.prediction.id"] for s in rec.predictions()] == ["abc", "req-42"]


def test_caller_span_is_linked_not_parent():
    """A prediction is the root of its own trace, linked to the caller's active span."""
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("app")

    @modelwatch.monitor(model="m", sampling_rate=1.0)
    def predict(x):
        return 1

    with capture() as rec:
        with tracer.start_as_current_span("request") as request:
            predict({"a": 1})
        (span,) = rec.predictions()
    assert span.parent is None
    assert span.context.trace_id != request.get_span_context().trace_id
    assert [link.context.span_id for link in span.links] == [request.get_span_context().span_id]


def test_span_limits_from_the_environment_apply_to_prediction_spans(monkeypatch):
    """OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT and OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT bound prediction spans, keeping the ml.* attributes first."""
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "8")
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "3")

    @modelwatch.monitor(model="limits", version="1", sampling_rate=1.0)
    def predict(x):
        return "positive"

    with capture() as rec:
        predict({f"f{i}": "abcdef" for i in range(10)})
        (span,) = rec.predictions()
    attrs = dict(span.attributes)
    assert len(attrs) == 8
    assert span.dropped_attributes == 18 - 8  # 8 ml.* attributes + 10 features
    assert attrs["ml.model.name"] == "lim"  # every string value truncated to 3 characters
    assert {"ml.sampling.reason", "ml.sampling.weight", "ml.prediction.id"} <= attrs.keys()


def test_processor_added_to_the_configured_provider_later_receives_prediction_spans():
    """A span processor the application adds to modelwatch's provider after configure() sees every kept prediction at on_end."""
    from modelwatch import pipeline
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    main, extra = InMemorySpanExporter(), InMemorySpanExporter()
    telemetry = modelwatch.configure(span_processor=SimpleSpanProcessor(main), metric_reader=_null_reader(), set_global=False)
    try:
        telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(extra))

        @modelwatch.monitor(model="fanout", sampling_rate=1.0)
        def predict(x):
            return 1

        predict({"a": 1})
        assert [s.attributes["ml.model.name"] for s in extra.get_finished_spans()] == ["fanout"]
        assert len(main.get_finished_spans()) == 1
    finally:
        telemetry.shutdown()
        assert pipeline.current() is None


def _null_reader():
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    return InMemoryMetricReader()


def test_default_confidence_is_rescaled_so_the_low_confidence_rule_fires_for_binary_models():
    """A binary score of 0.6 is confidence 0.2 (kept as low_confidence); 0.9 is 0.8; three-class top probability 0.5 is 0.25."""
    import numpy as np

    @modelwatch.monitor(model="bin", sampling_rate=0.0)
    def binary(x):
        return {"prediction": 1, "score": x["p"]}

    @modelwatch.monitor(model="multi", sampling_rate=0.0)
    def multi(x):
        return np.array([0.5, 0.3, 0.2])

    with capture() as rec:
        binary({"p": 0.6})
        binary({"p": 0.9})
        multi({"a": 1.0})
        spans = rec.predictions()
    assert [(s.attributes["ml.model.name"], s.attributes["ml.sampling.reason"]) for s in spans] == [
        ("bin", "low_confidence"), ("multi", "low_confidence")]
    assert spans[0].attributes["ml.prediction.confidence"] == pytest.approx(0.2)
    assert spans[1].attributes["ml.prediction.confidence"] == pytest.approx(0.25)
    assert spans[1].attributes["ml.prediction.value"] == 0
