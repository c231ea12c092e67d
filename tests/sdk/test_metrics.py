"""Full-population metrics: read back and checked against numpy on the same data."""

from __future__ import annotations

import math
from collections import Counter

import modelwatch
import numpy as np
import pytest
from modelwatch.exphist import bucket_index
from modelwatch.testing import capture


def _oracle_buckets(values: np.ndarray, scale: int) -> Counter:
    """Bucket counts of positive values at `scale`, per the OTel spec, one value at a time."""
    out: Counter = Counter()
    for v in values[values > 0].tolist():
        if scale > 0:
            out[math.ceil(math.log2(v) * 2**scale) - 1] += 1
        else:
            m, e = math.frexp(v)
            out[((e - 1) - (m == 0.5)) >> -scale] += 1
    return out


def _dense_to_counter(buckets) -> Counter:
    return Counter({buckets.offset + i: c for i, c in enumerate(buckets.bucket_counts) if c})


def test_every_prediction_is_counted_whatever_sampling_decides():
    """ml.predictions and ml.sampling.decisions count all predictions, kept and dropped, by reason."""

    @modelwatch.monitor(model="m", version="2", sampling_rate=0.0)
    def predict(x):
        return {"prediction": 1, "confidence": x["c"]}

    with capture() as rec:
        for c in [0.9] * 70 + [0.2] * 30:
            predict({"c": c})
        assert rec.metric_value("ml.predictions", outcome="ok", **{"ml.model.version": "2"}) == 100
        assert rec.metric_value("ml.sampling.decisions", decision="kept", reason="low_confidence") == 30
        assert rec.metric_value("ml.sampling.decisions", decision="dropped", reason="not_sampled") == 70
        assert len(rec.predictions()) == 30


def test_numeric_feature_histogram_matches_numpy():
    """ml.feature.value's count, sum, min, max and every bucket equal numpy's computation on the same values."""
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.lognormal(2, 1.5, 5000), -rng.exponential(2, 500), np.zeros(25)])
    rng.shuffle(values)

    @modelwatch.monitor(model="h", sampling_rate=0.0)
    def predict(x):
        return 0

    with capture() as rec:
        for v in values.tolist():
            predict({"income": v})
        (point,) = rec.metric_points("ml.feature.value")
    assert point.attributes["ml.feature.name"] == "income"
    assert point.count == values.size
    assert point.sum == pytest.approx(float(values.sum()), rel=1e-12)
    assert point.min == values.min() and point.max == values.max()
    assert point.zero_count == 25
    assert _dense_to_counter(point.positive) == _oracle_buckets(values, point.scale)
    assert _dense_to_counter(point.negative) == _oracle_buckets(-values, point.scale)
    assert len(point.positive.bucket_counts) <= 160
    # and the histogram is usable: its median estimate is within one bucket of numpy's
    pos = np.sort(values[values > 0])
    target = (pos.size + 1) / 2
    cum = 0
    for i, c in enumerate(point.positive.bucket_counts):
        cum += c
        if cum >= target:
            idx = point.positive.offset + i
            break
    assert bucket_index(float(np.median(pos)), point.scale) in (idx - 1, idx, idx + 1)


def test_categorical_counts_are_capped_and_missing_values_counted():
    """Categories beyond max_categories count as __other__; None, NaN and absent features count as missing."""

    @modelwatch.monitor(model="c", sampling_rate=0.0, max_categories=3)
    def predict(x):
        return 0

    with capture() as rec:
        for city in ["a", "b", "c", "d", "e", "a", "a"]:
            predict({"city": city, "x": 1.0})
        predict({"city": None, "x": float("nan")})
        predict({"x": 2.0})  # city absent
        cats = {p.attributes["ml.feature.value"]: p.value for p in rec.metric_points("ml.feature.category")}
        missing = {p.attributes["ml.feature.name"]: p.value for p in rec.metric_points("ml.feature.missing")}
    assert cats == {"a": 3, "b": 1, "c": 1, "__other__": 2}
    assert missing == {"city": 2, "x": 1}


def test_score_confidence_latency_and_class_metrics():
    """Score and confidence distributions, per-call latency and predicted-class counts are recorded for every call."""

    @modelwatch.monitor(model="s", sampling_rate=0.0)
    def predict(x):
        return {"prediction": "yes" if x["p"] > 0.5 else "no", "score": x["p"]}

    ps = np.linspace(0.01, 0.99, 99)
    with capture() as rec:
        for p in ps.tolist():
            predict({"p": p})
        (score,) = rec.metric_points("ml.prediction.score")
        (conf,) = rec.metric_points("ml.prediction.confidence")
        (lat,) = rec.metric_points("ml.prediction.latency")
        classes = {p.attributes["ml.prediction.value"]: p.value for p in rec.metric_points("ml.prediction.class")}
    assert score.count == 99 and score.sum == pytest.approx(ps.sum())
    assert conf.count == 99 and conf.min == pytest.approx(0.0, abs=1e-12) and conf.max == pytest.approx(0.98)
    assert lat.count == 99 and 0 < lat.min <= lat.max < 1.0
    assert classes == {"yes": 49, "no": 50}


def test_feature_metrics_can_be_turned_off():
    """feature_metrics=False records no per-feature distributions, while counts stay."""

    @modelwatch.monitor(model="off", sampling_rate=0.0, feature_metrics=False)
    def predict(x):
        return 0

    with capture() as rec:
        predict({"a": 1.0, "b": "x"})
        assert rec.metric_points("ml.feature.value") == []
        assert rec.metric_points("ml.feature.category") == []
        assert rec.metric_value("ml.predictions") == 1


def test_metrics_reach_an_otel_in_memory_reader_pipeline():
    """PredictionMetricsExporter adds modelwatch's metrics to an app's own OTel metric pipeline next to its instruments."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        PeriodicExportingMetricReader,
    )

    class Sink(MetricExporter):
        def __init__(self):
            super().__init__()
            self.data = []

        def export(self, metrics_data, timeout_millis=10_000, **kw):
            self.data.append(metrics_data)
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis=10_000):
            return True

        def shutdown(self, timeout_millis=30_000, **kw):
            pass

    sink = Sink()
    reader = PeriodicExportingMetricReader(modelwatch.PredictionMetricsExporter(sink), export_interval_millis=math.inf)
    provider = MeterProvider(metric_readers=[reader])
    provider.get_meter("app").create_counter("app.requests").add(5)

    @modelwatch.monitor(model="pipe", sampling_rate=0.0)
    def predict(x):
        return 0

    with capture():
        predict({"a": 1.0})
        reader.force_flush()
    names = {m.name for rm in sink.data[-1].resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert {"app.requests", "ml.predictions", "ml.feature.value"} <= names
    provider.shutdown()


_PARITY_SCRIPT = r"""
import json, random, sys
if sys.argv[1] == "no-numpy":
    sys.modules["numpy"] = None  # import numpy now fails: the SDK must take its pure-Python paths
else:
    import numpy  # noqa: F401  (the application has it loaded: the SDK vectorises)
import modelwatch
from modelwatch.testing import capture
rng = random.Random(11)
@modelwatch.monitor(model="parity", sampling_rate=0.0)
def predict(x):
    return {"prediction": "a", "score": x["s"]}
with capture() as rec:
    for i in range(5000):
        v = rng.lognormvariate(0, 3) * rng.choice([-1, 1, 1]) if i % 7 else 0.0
        predict({"v": v, "n": rng.randint(-5, 500), "c": rng.choice("xyz"), "s": rng.random()})
    out = {}
    for name in ("ml.feature.value", "ml.prediction.score"):
        for p in rec.metric_points(name):
            key = name + ":" + p.attributes.get("ml.feature.name", "")
            out[key] = [p.count, p.zero_count, p.scale, p.positive.offset, list(p.positive.bucket_counts),
                        p.negative.offset, list(p.negative.bucket_counts), p.min, p.max, round(p.sum, 6)]
    out["cats"] = sorted((p.attributes["ml.feature.value"], p.value) for p in rec.metric_points("ml.feature.category"))
    assert ("numpy" in sys.modules and sys.modules["numpy"] is not None) == (sys.argv[1] == "numpy")
print(json.dumps(out, sort_keys=True))
"""


def test_pure_python_aggregation_equals_the_numpy_path():
    """Without numpy (an SDK-only inference service) the metrics are bucket-for-bucket those computed with numpy."""
    import json
    import subprocess
    import sys

    outputs = {}
    for mode in ("numpy", "no-numpy"):
        proc = subprocess.run([sys.executable, "-c", _PARITY_SCRIPT, mode], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        outputs[mode] = json.loads(proc.stdout)
    assert outputs["numpy"] == outputs["no-numpy"]
    assert outputs["numpy"]["ml.feature.value:v"][0] == 5000


def test_a_forked_child_counts_its_own_predictions_from_zero():
    """After fork, the child's aggregates start empty, so parent and child never report the same predictions twice."""
    import os

    @modelwatch.monitor(model="forky", sampling_rate=0.0)
    def predict(x):
        return 0

    with capture() as rec:
        for _ in range(5):
            predict({"a": 1.0})
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            try:
                predict({"a": 2.0})
                os.write(write, str(rec.metric_value("ml.predictions")).encode())
            finally:
                os._exit(0)
        os.close(write)
        child_count = int(os.read(read, 100).decode())
        os.waitpid(pid, 0)
        assert child_count == 1
        assert rec.metric_value("ml.predictions") == 5
