"""Results out as OTel gauges: the mapping, and the real SDK + OTLP exporters into a real `modelwatch serve`."""

from __future__ import annotations

import itertools
import logging
import socket
import time
from datetime import datetime, timedelta, timezone

import pytest
from modelwatch_analyzer.analysis.results import INSUFFICIENT, Result
from modelwatch_analyzer.outputs.metrics import (
    Emitter,
    MetricPoint,
    metric_points,
    rounds,
)
from modelwatch_analyzer.service.serve import ServeOptions, Server

_db = itertools.count()
T0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)


def _results() -> list[Result]:
    w = {"window_start": T0, "window_end": T0 + timedelta(hours=1), "run_id": "run1"}
    return [
        Result("fraud", "2", "amount", "psi", "drift", 0.31, None, 0.2, True, "critical", 1000, 900, **w),
        Result("fraud", "2", "amount", "ks", "drift", 0.12, 1e-7, 0.05, True, "info", 1000, 900, **w),
        Result("fraud", "2", "country", "chi2", "drift", 3.5, 0.42, 0.05, False, "none", 1000, 900, **w),
        Result("fraud", "2", None, "drift_share", "summary", 2 / 3, None, 0.5, True, "critical", 1000, 900, **w),
        Result("fraud", "2", "amount", "missing_rate", "data_quality", 0.015, n_reference=1000, n_current=900, **w),
        Result("fraud", "2", None, "accuracy", "performance", 0.91, n_reference=0, n_current=300, **w),
        Result("fraud", "2", "tiny", "ks", "drift", None, status=INSUFFICIENT, n_reference=1000, n_current=3, **w),
    ]


def _by_key(points):
    return {(p.name, p.attributes.get("ml.feature.name"), p.attributes["ml.drift.method"]): p for p in points}


def test_metric_points_map_every_kind_and_skip_missing_values():
    """Each result kind maps to its documented metrics and attributes; None values and insufficient verdicts emit nothing else."""
    points = metric_points(_results())
    got = _by_key(points)
    assert len(got) == len(points), "no duplicate series within one window"
    expected = {
        ("ml.drift.score", "amount", "psi"): 0.31, ("ml.drift.threshold", "amount", "psi"): 0.2,
        ("ml.drift.detected", "amount", "psi"): 1.0, ("ml.drift.severity", "amount", "psi"): 3.0,
        ("ml.drift.score", "amount", "ks"): 0.12, ("ml.drift.pvalue", "amount", "ks"): 1e-7,
        ("ml.drift.threshold", "amount", "ks"): 0.05, ("ml.drift.detected", "amount", "ks"): 1.0,
        ("ml.drift.severity", "amount", "ks"): 1.0,
        ("ml.drift.score", "country", "chi2"): 3.5, ("ml.drift.pvalue", "country", "chi2"): 0.42,
        ("ml.drift.threshold", "country", "chi2"): 0.05, ("ml.drift.detected", "country", "chi2"): 0.0,
        ("ml.drift.severity", "country", "chi2"): 0.0,
        ("ml.drift.share", None, "drift_share"): 2 / 3, ("ml.drift.detected", None, "drift_share"): 1.0,
        ("ml.drift.severity", None, "drift_share"): 3.0,
        ("ml.data_quality.missing_rate", "amount", "missing_rate"): 0.015,
        ("ml.performance.accuracy", None, "accuracy"): 0.91,
        ("ml.analysis.insufficient_data", "tiny", "ks"): 1.0,
    }
    for key, value in expected.items():
        p = got.pop(key)
        assert p.value == value, key
        attrs = dict(p.attributes)
        assert attrs.pop("ml.model.name") == "fraud" and attrs.pop("ml.model.version") == "2"
        assert attrs.pop("ml.drift.method") == key[2]
        if key[1] is not None:
            assert attrs.pop("ml.feature.name") == key[1]
        if key[0] == "ml.drift.severity":
            assert attrs.pop("ml.severity") in ("none", "info", "warning", "critical")
        if key[0] == "ml.analysis.insufficient_data":
            assert attrs.pop("ml.result.kind") == "drift"
        assert attrs == {}, key
    assert got == {}


def test_rounds_put_each_series_once_per_round_and_keep_every_point():
    """Points sharing a series go to successive rounds; rounds respect the per-name cap; nothing is lost."""
    a = {"ml.model.name": "m"}
    pts = [MetricPoint("x", 1.0, a), MetricPoint("y", 2.0, a), MetricPoint("x", 3.0, a), MetricPoint("x", 4.0, a),
           MetricPoint("x", 5.0, {"ml.model.name": "n"})]
    got = rounds(pts)
    assert [[p.value for p in r] for r in got] == [[1.0, 2.0, 5.0], [3.0], [4.0]]
    many = [MetricPoint("x", float(i), {"i": str(i)}) for i in range(5)]
    assert [len(r) for r in rounds(many, max_per_name=2)] == [2, 2, 1]


@pytest.fixture
def server(store_dir):
    """`modelwatch serve` on free ports over this session's chDB directory, in a database of its own."""
    srv = Server(ServeOptions(url=f"chdb://{store_dir}", database=f"emit{next(_db)}", grpc_port=0, http_port=0))
    yield srv
    srv.store.command(f"DROP DATABASE IF EXISTS `{srv.store.database}`")
    srv.stop()


def _gauge_rows(srv: Server):
    return srv.store.query(
        f"SELECT MetricName, Value, Attributes, ServiceName FROM {srv.store.table('otel_metrics_gauge')} "
        "ORDER BY TimeUnix, MetricName")


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_emitted_results_arrive_as_gauge_rows_over_real_otlp(server, protocol, monkeypatch):
    """Every metric point of a run lands in otel_metrics_gauge right after emit(), with its attributes, over either protocol."""
    port = server.grpc_port if protocol == "grpc" else server.http_port
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    emitter = Emitter()
    try:
        results = _results()
        assert emitter.emit(results) == len(metric_points(results))
        assert emitter.last_ok is True
        rows = _gauge_rows(server)  # no sleep: emit() has flushed and the receiver commits before answering
        got = sorted((name, value, tuple(sorted(attrs.items()))) for name, value, attrs, _ in rows)
        want = sorted((p.name, p.value, tuple(sorted(p.attributes.items()))) for p in metric_points(results))
        assert got == want
        assert {r[3] for r in rows} == {"modelwatch-analyzer"}
        # a second analysis exports its own points only (old series are not re-sent)
        later = [Result("fraud", "2", "amount", "psi", "drift", 0.05, None, 0.2, False, "none", 1000, 950)]
        emitter.emit(later)
        rows2 = _gauge_rows(server)
        assert len(rows2) == len(rows) + len(metric_points(later))
        assert ("ml.drift.score", 0.05) in {(r[0], r[1]) for r in rows2}
    finally:
        emitter.shutdown()


def test_results_sharing_a_series_all_arrive(server, monkeypatch):
    """Two windows of the same feature and method in one call: both values are exported, not just the last."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.http_port}")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL", raising=False)
    emitter = Emitter(service_name="analyzer-x")
    try:
        results = [Result("m", "1", "f", "psi", "drift", v, None, 0.2, False, "none", 100, 100,
                          window_start=T0 + timedelta(hours=i)) for i, v in enumerate([0.01, 0.02, 0.03])]
        emitter.emit(results)
        scores = [(r[1], r[3]) for r in _gauge_rows(server) if r[0] == "ml.drift.score"]
        assert sorted(scores) == [(0.01, "analyzer-x"), (0.02, "analyzer-x"), (0.03, "analyzer-x")]
    finally:
        emitter.shutdown()


def test_hostile_names_arrive_intact(server, monkeypatch):
    """Model, version and feature names with quotes, backslashes and unicode reach the gauge table unchanged."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.http_port}")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL", raising=False)
    model, feature = "m'); DROP TABLE x; --\\", "prix \"€\" \\n 価格"
    emitter = Emitter()
    try:
        emitter.emit([Result(model, "v'1", feature, "psi", "drift", 0.5, None, 0.2, True, "critical", 10, 10)])
        attrs = {r[0]: r[2] for r in _gauge_rows(server)}["ml.drift.score"]
        assert (attrs["ml.model.name"], attrs["ml.model.version"], attrs["ml.feature.name"]) == (model, "v'1", feature)
    finally:
        emitter.shutdown()


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_dead_endpoint_never_raises_and_logs_once(protocol, monkeypatch, caplog):
    """With nothing listening, emit() returns within the exporter timeout, raises nothing and warns once for repeated failures."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{_dead_port()}")
    emitter = Emitter(protocol=protocol, timeout=0.5)
    try:
        caplog.set_level(logging.WARNING, logger="modelwatch.analyzer.emit")
        t = time.monotonic()
        for _ in range(3):
            assert emitter.emit(_results()[:1]) == 4  # score, threshold, detected, severity
        assert time.monotonic() - t < 15
        assert emitter.last_ok is False and emitter.failures == 3
        ours = [r for r in caplog.records if r.name == "modelwatch.analyzer.emit"]
        assert len(ours) == 1 and "failed" in ours[0].getMessage()
    finally:
        emitter.shutdown()


def test_bad_protocol_argument_raises_but_bad_environment_falls_back(monkeypatch):
    """An invalid protocol in code raises; in the environment it warns and uses HTTP."""
    with pytest.raises(ValueError, match="protocol"):
        Emitter(protocol="thrift")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift")
    Emitter().shutdown()
