"""configure(): the real OTLP exporters, over gRPC and HTTP, to a receiver in the test; and a collector that is down."""

from __future__ import annotations

import gzip
import http.server
import threading
import tracemalloc
from concurrent import futures

import grpc
import modelwatch
import pytest
from modelwatch import pipeline
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult


class _Received:
    def __init__(self):
        self.traces: list = []
        self.metrics: list = []


def _spans(received: _Received):
    for req in received.traces:
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    yield rs.resource, span


def _metric_names(received: _Received) -> set[str]:
    return {m.name for req in received.metrics for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def _attr(span, key):
    for kv in span.attributes:
        if kv.key == key:
            v = kv.value
            return getattr(v, v.WhichOneof("value"))
    raise KeyError(key)


@pytest.fixture
def grpc_receiver():
    received = _Received()

    class Traces(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):
            received.traces.append(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
        def Export(self, request, context):
            received.metrics.append(request)
            return metrics_service_pb2.ExportMetricsServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield received, port
    server.stop(0)


@pytest.fixture
def http_receiver():
    received = _Received()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path == "/v1/traces":
                req = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
                received.traces.append(req)
                reply = trace_service_pb2.ExportTraceServiceResponse()
            else:
                req = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
                received.metrics.append(req)
                reply = metrics_service_pb2.ExportMetricsServiceResponse()
            payload = reply.SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield received, server.server_address[1]
    server.shutdown()


@pytest.fixture
def fresh_configure():
    """configure() is once per process; give each test its own and shut it down after."""
    assert pipeline.current() is None
    made = []

    def make(**kw):
        t = modelwatch.configure(set_global=False, **kw)
        made.append(t)
        return t

    yield make
    for t in made:
        t.shutdown()


def _predict_some():
    @modelwatch.monitor(model="wire", version="9", sampling_rate=0.0)
    def predict(x):
        return {"prediction": "no", "score": x["s"]}

    for s in (0.05, 0.95, 0.2, 0.97):
        predict({"s": s, "city": "Paris", "n": 3})
    modelwatch.record_label("wire", "p-1", "yes", version="9")


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_predictions_and_metrics_travel_over_otlp(protocol, grpc_receiver, http_receiver, fresh_configure, monkeypatch):
    """Over gRPC and over HTTP/protobuf, kept prediction spans, the label span and every metric reach an OTLP receiver intact."""
    received, port = grpc_receiver if protocol == "grpc" else http_receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "credit-api")
    telemetry = fresh_configure(metric_export_interval_millis=3_600_000)
    _predict_some()
    assert telemetry.force_flush(10_000)
    spans = list(_spans(received))
    predictions = [s for _, s in spans if s.name == "ml.predict"]
    labels = [s for _, s in spans if s.name == "ml.label"]
    assert len(predictions) == 2 and len(labels) == 1
    assert sorted(_attr(s, "ml.prediction.score") for s in predictions) == [0.95, 0.97]
    assert {_attr(s, "ml.sampling.reason") for s in predictions} == {"high_risk"}
    assert all(_attr(s, "ml.feature.city") == "Paris" and _attr(s, "ml.feature.n") == 3 for s in predictions)
    assert all(len(s.trace_id) == 16 and s.parent_span_id == b"" for s in predictions)
    resource = spans[0][0]
    assert any(kv.key == "service.name" and kv.value.string_value == "credit-api" for kv in resource.attributes)
    names = _metric_names(received)
    assert {"ml.predictions", "ml.sampling.decisions", "ml.feature.value", "ml.feature.category",
            "ml.prediction.score", "ml.prediction.latency"} <= names
    hist = [m for req in received.metrics for rm in req.resource_metrics for sm in rm.scope_metrics
            for m in sm.metrics if m.name == "ml.feature.value"][-1]
    point = next(p for p in hist.exponential_histogram.data_points
                 if any(kv.key == "ml.feature.name" and kv.value.string_value == "s" for kv in p.attributes))
    assert point.count == 4 and point.sum == pytest.approx(0.05 + 0.95 + 0.2 + 0.97)


def test_unreachable_collector_never_blocks_inference_and_memory_stays_bounded(fresh_configure):
    """With an exporter that hangs forever, 30,000 kept predictions complete, and memory stays bounded by the span queue."""
    release = threading.Event()

    class Hanging(SpanExporter):
        def export(self, spans):
            release.wait()
            return SpanExportResult.FAILURE

        def shutdown(self):
            release.set()

    processor = BatchSpanProcessor(Hanging(), max_queue_size=1000, max_export_batch_size=100)
    fresh_configure(span_processor=processor, metric_exporter=_NullMetrics())

    @modelwatch.monitor(model="down", sampling_rate=1.0)
    def predict(x):
        return {"prediction": 1, "score": 0.5}

    done = threading.Event()
    peak = {}

    def work():
        tracemalloc.start()
        for i in range(10_000):
            predict({"a": float(i), "b": "x" * 50})
        base = tracemalloc.get_traced_memory()[0]
        for i in range(20_000):
            predict({"a": float(i), "b": "x" * 50})
        peak["growth"] = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        done.set()

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(timeout=300)  # liveness bound only: if a call blocked on the exporter this would never finish
    release.set()
    assert done.is_set(), "inference blocked on a hanging exporter"
    # the queue is full after the first 10k; 20k more must not grow memory by more than a small constant
    assert peak["growth"] < 2_000_000, peak


def test_grpc_exporter_to_a_closed_port_does_not_raise_or_block(fresh_configure, monkeypatch):
    """The real gRPC exporter pointed at a port nobody listens on: predictions proceed; shutdown honours its deadline."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    telemetry = fresh_configure(protocol="grpc", metric_exporter=_NullMetrics())

    @modelwatch.monitor(model="closed", sampling_rate=1.0)
    def predict(x):
        return 1

    done = threading.Event()

    def work():
        for i in range(3000):
            assert predict({"a": i}) == 1
        done.set()

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert done.is_set()
    flushed: list[bool] = []
    flusher = threading.Thread(target=lambda: flushed.append(telemetry.force_flush(3000)), daemon=True)
    flusher.start()
    flusher.join(timeout=120)  # liveness bound only: force_flush must return despite the dead endpoint
    assert len(flushed) == 1


class _NullMetrics:
    _preferred_temporality = None
    _preferred_aggregation = None

    def export(self, metrics_data, timeout_millis=10_000, **kw):
        from opentelemetry.sdk.metrics.export import MetricExportResult

        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis=10_000):
        return True

    def shutdown(self, timeout_millis=30_000, **kw):
        pass
