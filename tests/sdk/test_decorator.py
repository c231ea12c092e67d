"""The decorator on every kind of callable, and its no-op modes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import modelwatch
import numpy as np
import pandas as pd
import pytest
from modelwatch.decorator import monitor_of
from modelwatch.testing import capture


def test_async_function_is_monitored_and_returns_its_result():
    """An async inference function is awaited, its result returned, its prediction recorded."""

    @modelwatch.monitor(model="a", sampling_rate=1.0)
    async def predict(x):
        await asyncio.sleep(0)
        return {"prediction": "ok", "score": 0.4}

    with capture() as rec:
        assert asyncio.run(predict({"f": 2.0})) == {"prediction": "ok", "score": 0.4}
        (span,) = rec.predictions()
    assert span.attributes["ml.feature.f"] == 2.0
    assert span.attributes["ml.prediction.value"] == "ok"


def test_async_exception_propagates_and_is_recorded():
    """An exception from an async inference function propagates unchanged and marks the span Error."""

    @modelwatch.monitor(model="a", sampling_rate=0.0)
    async def predict(x):
        raise RuntimeError("boom")

    with capture() as rec:
        with pytest.raises(RuntimeError, match="boom"):
            asyncio.run(predict({"f": 2.0}))
        (span,) = rec.predictions()
    assert span.attributes["ml.sampling.reason"] == "error"


def test_method_skips_self_and_reads_features_from_first_argument():
    """On a method, features come from the first argument after self; the instance is not a feature."""

    class Model:
        @modelwatch.monitor(model="cls", sampling_rate=1.0)
        def predict(self, features):
            return {"prediction": features["x"] * 2}

    with capture() as rec:
        assert Model().predict({"x": 3}) == {"prediction": 6}
        (span,) = rec.predictions()
    assert span.attributes["ml.feature.x"] == 3
    assert span.attributes["ml.prediction.value"] == 6


def test_keyword_arguments_are_the_features_when_there_is_no_positional_input():
    """A function called with keyword arguments only records them as features."""

    @modelwatch.monitor(model="kw", sampling_rate=1.0)
    def predict(**features):
        return 1

    with capture() as rec:
        predict(age=40, country="FR")
        (span,) = rec.predictions()
    assert span.attributes["ml.feature.age"] == 40
    assert span.attributes["ml.feature.country"] == "FR"


def test_features_from_named_argument_and_from_callable():
    """features='name' reads that argument; features=callable builds the mapping itself."""

    @modelwatch.monitor(model="n", sampling_rate=1.0, features="row")
    def by_name(model_obj, row):
        return 0

    @modelwatch.monitor(model="c", sampling_rate=1.0, features=lambda req: req["payload"])
    def by_hook(req):
        return 0

    with capture() as rec:
        by_name(object(), {"z": 1.5})
        by_hook({"payload": {"y": "v"}, "headers": {}})
        a, b = rec.predictions()
    assert a.attributes["ml.feature.z"] == 1.5
    assert b.attributes["ml.feature.y"] == "v"
    with pytest.raises(modelwatch.ConfigurationError, match="no such argument"):
        modelwatch.monitor(model="bad", features="nope")(lambda x: x)


def test_numpy_row_and_pandas_series_inputs_become_plain_python_attributes():
    """A 1-D numpy array (with feature_names) and a pandas Series are one prediction with plain Python attribute values."""

    @modelwatch.monitor(model="np", sampling_rate=1.0, feature_names=["a", "b"])
    def predict_np(row):
        return np.float32(0.25)

    @modelwatch.monitor(model="pd", sampling_rate=1.0)
    def predict_pd(row):
        return np.int64(1)

    with capture() as rec:
        predict_np(np.array([1.5, 2.5], dtype=np.float32))
        predict_pd(pd.Series({"age": np.int64(30), "city": "Paris"}))
        s_np, s_pd = rec.predictions()
    assert s_np.attributes["ml.feature.a"] == 1.5 and type(s_np.attributes["ml.feature.a"]) is float
    assert type(s_np.attributes["ml.prediction.value"]) is float
    assert s_pd.attributes["ml.feature.age"] == 30 and type(s_pd.attributes["ml.feature.age"]) is int
    assert s_pd.attributes["ml.feature.city"] == "Paris"
    assert type(s_pd.attributes["ml.prediction.value"]) is int


def test_sklearn_style_predict_proba_bound_method():
    """A bound predict_proba of an estimator: class names from classes_, score P(class 1), confidence the rescaled top probability."""

    class Estimator:
        classes_ = np.array(["no", "yes"])
        feature_names_in_ = np.array(["x0", "x1"])

        def predict_proba(self, X):
            X = np.asarray(X, dtype=float)
            p = 1 / (1 + np.exp(-X[:, 0]))
            return np.c_[1 - p, p]

    est = Estimator()
    est.predict_proba = modelwatch.monitor(est.predict_proba, model="est", sampling_rate=1.0)
    with capture() as rec:
        out = est.predict_proba(np.array([[3.0, 0.0]]))
        (span,) = rec.predictions()
    p1 = float(out[0, 1])
    assert span.attributes["ml.prediction.value"] == "yes"
    assert span.attributes["ml.prediction.score"] == pytest.approx(p1)
    assert span.attributes["ml.prediction.confidence"] == pytest.approx(2 * p1 - 1)  # rescaled: chance 0, certain 1
    assert span.attributes["ml.feature.x0"] == 3.0
    assert span.attributes["ml.feature.x1"] == 0.0


def test_output_hooks_override_defaults():
    """prediction/score/confidence/risk callables replace the default reading of the result."""

    @modelwatch.monitor(
        model="h", sampling_rate=0.0,
        prediction=lambda r: r[0], score=lambda r: r[1], confidence=lambda r: 0.99, risk=lambda r: r[2],
    )
    def predict(x):
        return ("approve", 0.1, 0.97)

    with capture() as rec:
        predict({"a": 1})
        (span,) = rec.predictions()
    assert span.attributes["ml.prediction.value"] == "approve"
    assert span.attributes["ml.prediction.score"] == 0.1
    assert span.attributes["ml.prediction.confidence"] == 0.99
    assert span.attributes["ml.sampling.reason"] == "high_risk"


def test_decorating_twice_is_a_no_op():
    """Monitoring an already monitored function returns it unchanged: one prediction per call, not two."""

    def predict(x):
        return 1

    once = modelwatch.monitor(predict, model="twice", sampling_rate=1.0)
    twice = modelwatch.monitor(once, model="twice", sampling_rate=1.0)
    assert twice is once
    assert monitor_of(once) is not None
    with capture() as rec:
        twice({"a": 1})
        assert len(rec.predictions()) == 1
        assert rec.metric_value("ml.predictions") == 1


def test_bare_decorator_uses_qualified_name_as_model():
    """@monitor without arguments works and names the model after the function."""

    @modelwatch.monitor
    def scorer(x):
        return 1

    with capture() as rec:
        scorer({"a": 1})
        assert rec.metric_value("ml.predictions", **{"ml.model.name": scorer.__qualname__}) == 1
    assert scorer.__name__ == "scorer"


def test_without_any_telemetry_configured_the_call_passes_through():
    """With no tracer provider and no metric pipeline, the decorator records nothing and just calls the function."""

    @modelwatch.monitor(model="bare")
    def predict(x):
        return x["a"] + 1

    assert predict({"a": 1}) == 2
    assert modelwatch.last_prediction() is None or modelwatch.last_prediction().model != "bare"


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120)


def test_otel_sdk_disabled_turns_decorator_and_configure_into_no_ops():
    """OTEL_SDK_DISABLED=true: configure() sets nothing up and decorated calls record nothing."""
    code = """
import modelwatch
from opentelemetry import trace
t = modelwatch.configure()
assert t.disabled, t
@modelwatch.monitor(model="d", sampling_rate=1.0)
def f(x): return 3
assert f({"a": 1}) == 3
assert modelwatch.last_prediction().id == "" and not modelwatch.last_prediction()
assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
print("OK")
"""
    proc = _run(code, OTEL_SDK_DISABLED="true")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "OK"


def test_importing_modelwatch_imports_no_heavy_dependency():
    """In a fresh interpreter, `import modelwatch` (and configure) loads none of numpy, scipy, pandas, clickhouse_connect."""
    code = """
import sys
import modelwatch, modelwatch.testing
exporter = __import__("opentelemetry.sdk.trace.export.in_memory_span_exporter", fromlist=["x"])
modelwatch.configure(span_exporter=exporter.InMemorySpanExporter(), set_global=False)
@modelwatch.monitor(model="m", sampling_rate=1.0)
def f(x): return {"prediction": 1, "score": 0.3}
for _ in range(3000): f({"a": 1.0, "b": "x"})
heavy = sorted(m for m in ("numpy", "scipy", "pandas", "clickhouse_connect", "chdb") if m in sys.modules)
print(heavy)
"""
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_application_tracer_provider_is_used_with_the_sampled_trace_ids():
    """Without configure(), kept predictions go to the app's global TracerProvider, each with the trace id sampling
    hashed; a head sampler that drops them is reported."""
    code = """
import modelwatch
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from modelwatch import _safety

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

@modelwatch.monitor(model="app", sampling_rate=1.0)
def predict(x):
    return {"prediction": 1, "score": 0.2}

ids = []
for i in range(20):
    predict({"i": i})
    ids.append(modelwatch.last_prediction().trace_id)
spans = exporter.get_finished_spans()
assert [f"{s.context.trace_id:032x}" for s in spans] == ids, "trace ids differ"
assert all(s.attributes["ml.sampling.reason"] == "random" for s in spans)

# the application's head sampler drops everything: counted, not silent
provider2 = TracerProvider(sampler=ALWAYS_OFF)
from modelwatch import spans as sp
sp.set_configured_provider(provider2)
predict({"i": 0})
assert _safety.counts()[("head_sampled_out", "app")] == 1
print("OK")
"""
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("OK")
