"""modelwatch serve: real OTLP exporters in, exporter-shaped rows and typed predictions out; bad input refused whole."""

from __future__ import annotations

import gzip
import itertools
import json
import random
import threading
import time
import urllib.error
import urllib.request

import grpc
import modelwatch
import pytest
from modelwatch import pipeline
from modelwatch_analyzer.service.serve import ServeOptions, Server
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)

_db = itertools.count()


@pytest.fixture
def server(store_dir):
    """A running receiver on free ports, over this session's chDB directory, in a database of its own."""
    srv = Server(ServeOptions(url=f"chdb://{store_dir}", database=f"serve{next(_db)}", grpc_port=0, http_port=0))
    yield srv
    srv.store.command(f"DROP DATABASE IF EXISTS `{srv.store.database}`")
    srv.stop()


def _count(srv: Server, table: str, where: str = "1") -> int:
    return srv.store.query(f"SELECT count() FROM {srv.store.table(table)} WHERE {where}")[0][0]


def _post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_sdk_predictions_labels_and_metrics_arrive_over_real_otlp(server, protocol, monkeypatch):
    """The SDK, configured with the real OTLP exporters, fills otel_traces, typed predictions, labels and metric tables."""
    port = server.grpc_port if protocol == "grpc" else server.http_port
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "scoring-api")
    assert pipeline.current() is None
    telemetry = modelwatch.configure(set_global=False, metric_export_interval_millis=3_600_000)
    try:
        @modelwatch.monitor(model="fraud", version="2", sampling_rate=0.5)
        def predict(x):
            return {"prediction": "ok", "score": x["amount"] / 1000.0}

        ids = []
        for i in range(200):
            predict({"amount": float(i * 5), "country": "FR" if i % 3 else "DE", "n_items": i % 7})
            ids.append(modelwatch.last_prediction())
        for p in ids[:50]:
            modelwatch.record_label("fraud", p.id, "fraud" if p.weight > 1 else "legit", version="2")
        assert telemetry.force_flush(30_000)
    finally:
        telemetry.shutdown()
    kept = [p for p in ids if p.kept]
    assert _count(server, "otel_traces", "SpanName = 'ml.predict'") == len(kept)
    rows = server.store.query(
        f"SELECT PredictionId, Weight, Reason, Numeric['amount'], Categorical['country'], ServiceName "
        f"FROM {server.store.table('ml_predictions')}")
    by_id = {r[0]: r for r in rows}
    assert set(by_id) == {p.id for p in kept}
    for p in kept:
        _pid, weight, reason, amount, country, service = by_id[p.id]
        assert (weight, reason, service) == (p.weight, p.reason, "scoring-api")
        assert amount == float(ids.index(p) * 5)
        assert country == ("FR" if ids.index(p) % 3 else "DE")
    assert _count(server, "ml_labels") == 50
    spans = server.store.query(f"SELECT SpanKind, StatusCode, length(TraceId), length(SpanId), ParentSpanId, ScopeName "
                               f"FROM {server.store.table('otel_traces')} LIMIT 1")
    assert spans == [("Internal", "Unset", 32, 16, "", "modelwatch")]
    points = _count(server, "otel_metrics_exponential_histogram", "MetricName = 'ml.feature.value'")
    assert points >= 2  # amount and n_items
    assert _count(server, "otel_metrics_sum", "MetricName = 'ml.predictions'") >= 1


def _request(n_spans: int = 3, seed: int = 0) -> trace_service_pb2.ExportTraceServiceRequest:
    rng = random.Random(seed)
    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add(key="service.name")
    kv.value.string_value = "fuzz"
    ss = rs.scope_spans.add()
    now = time.time_ns()
    for i in range(n_spans):
        span = ss.spans.add(name="ml.predict", trace_id=rng.randbytes(16), span_id=rng.randbytes(8),
                            start_time_unix_nano=now, end_time_unix_nano=now + 1000)
        for key, value in (("ml.model.name", "fz"), ("ml.prediction.id", f"p{seed}-{i}")):
            a = span.attributes.add(key=key)
            a.value.string_value = value
        a = span.attributes.add(key="ml.feature.x")
        a.value.double_value = rng.random()
    return req


def test_malformed_and_mutated_payloads_are_refused_whole(server):
    """Thousands of truncated or bit-flipped payloads: each is refused (400) or stored whole, never partially."""
    good = _request(5).SerializeToString()
    rng = random.Random(7)
    refused = accepted = 0
    accepted_spans = 0
    for i in range(1500):
        body = bytearray(good)
        if i % 3 == 0:
            body = body[: rng.randrange(1, len(body))]
        else:
            for _ in range(rng.randint(1, 4)):
                body[rng.randrange(len(body))] = rng.randrange(256)
        status, _body, _h = _post(server.http_port, "/v1/traces", bytes(body), {"Content-Type": "application/x-protobuf"})
        assert status in (200, 400), status
        if status == 400:
            refused += 1
        else:
            accepted += 1
            parsed = trace_service_pb2.ExportTraceServiceRequest.FromString(bytes(body))
            accepted_spans += sum(len(ss.spans) for rs in parsed.resource_spans for ss in rs.scope_spans)
    assert refused > 500 and accepted > 0
    # whole or nothing: the rows committed are exactly the spans of the accepted payloads, none of the refused
    assert server.ingest.stats.rows == accepted_spans
    for status, body in ((400, b"\xff\xff\xff"), (400, b"{not json")):
        ctype = "application/json" if body.startswith(b"{") else "application/x-protobuf"
        got, _b, _h = _post(server.http_port, "/v1/traces", body, {"Content-Type": ctype})
        assert got == status


def test_grpc_malformed_payload_is_invalid_argument(server):
    """A payload that is not a trace request gets INVALID_ARGUMENT over gRPC, and nothing is stored."""
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    raw = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                              request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as info:
        raw(b"\x0a\xff\xff\xff\xff\x0f", timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    stub.Export(_request(4), timeout=10)
    assert _count(server, "otel_traces") == 4
    channel.close()


def test_json_gzip_and_hex_ids(server):
    """OTLP/JSON with hex ids, gzip-compressed, is stored with the same lowercase hex ids."""
    body = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "j"}}]},
            "scopeSpans": [{"scope": {"name": "s"}, "spans": [{
                "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "eee19b7ec3c1b174", "name": "ml.predict",
                "kind": 2, "startTimeUnixNano": str(time.time_ns()), "endTimeUnixNano": str(time.time_ns() + 5),
                "status": {"code": 2, "message": "boom"},
                "attributes": [{"key": "ml.model.name", "value": {"stringValue": "json-model"}},
                               {"key": "ml.feature.x", "value": {"doubleValue": 1e-7}},
                               {"key": "ml.feature.n", "value": {"intValue": "42"}}]}]}]}]}
    status, reply, _h = _post(server.http_port, "/v1/traces", gzip.compress(json.dumps(body).encode()),
                              {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert (status, reply) == (200, b"{}")
    rows = server.store.query(f"SELECT TraceId, SpanId, SpanKind, StatusCode, StatusMessage, SpanAttributes['ml.feature.x'], "
                              f"SpanAttributes['ml.feature.n'] FROM {server.store.table('otel_traces')}")
    assert rows == [("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "Server", "Error", "boom", "1e-7", "42")]
    typed = server.store.query(f"SELECT IsError, Numeric FROM {server.store.table('ml_predictions')}")
    assert typed == [(True, {"x": 1e-7, "n": 42.0})]


def test_bearer_token_and_size_limit(store_dir):
    """With a token, requests without it get 401 / UNAUTHENTICATED; oversized bodies get 413, gzip bombs included."""
    srv = Server(ServeOptions(url=f"chdb://{store_dir}", database=f"serve{next(_db)}", grpc_port=0, http_port=0,
                              token="s3cret", max_request_bytes=64 * 1024))
    try:
        body = _request(2).SerializeToString()
        ctype = {"Content-Type": "application/x-protobuf"}
        assert _post(srv.http_port, "/v1/traces", body, ctype)[0] == 401
        assert _post(srv.http_port, "/v1/traces", body, {**ctype, "Authorization": "Bearer wrong"})[0] == 401
        assert _post(srv.http_port, "/v1/traces", body, {**ctype, "Authorization": "Bearer s3cret"})[0] == 200
        assert _post(srv.http_port, "/v1/traces", b"\x00" * 100_000, {**ctype, "Authorization": "Bearer s3cret"})[0] == 413
        bomb = gzip.compress(b"\x00" * 10_000_000)  # 10 MB of zeros in ~10 kB
        assert _post(srv.http_port, "/v1/traces", bomb,
                     {**ctype, "Content-Encoding": "gzip", "Authorization": "Bearer s3cret"})[0] == 413
        stub = trace_service_pb2_grpc.TraceServiceStub(grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}"))
        with pytest.raises(grpc.RpcError) as info:
            stub.Export(_request(1), timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        stub.Export(_request(1, seed=3), timeout=10, metadata=[("authorization", "Bearer s3cret")])
        assert _count(srv, "otel_traces") == 3
    finally:
        srv.store.command(f"DROP DATABASE IF EXISTS `{srv.store.database}`")
        srv.stop()


def test_backpressure_answers_retryable_status_instead_of_growing(server):
    """When more rows are pending than allowed, requests get 503 with Retry-After; accepted ones are all stored."""
    server.ingest.max_pending_rows = 50
    gate = threading.Event()
    originals = {name: getattr(server.store, name) for name in ("insert", "command")}  # rows / native path

    def slowed(name):
        def slow(*args, **kwargs):
            gate.wait(10)
            return originals[name](*args, **kwargs)
        return slow

    for name in originals:
        setattr(server.store, name, slowed(name))
    results: list[int] = []

    def send(seed: int) -> None:
        results.append(_post(server.http_port, "/v1/traces", _request(20, seed).SerializeToString(),
                             {"Content-Type": "application/x-protobuf"})[0])

    threads = [threading.Thread(target=send, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    gate.set()
    for t in threads:
        t.join(30)
    assert 503 in results and 200 in results
    assert _count(server, "otel_traces") == 20 * results.count(200)


def test_concurrent_clients_lose_nothing(server):
    """Eight clients sending at once over HTTP and gRPC: every acknowledged span is stored exactly once."""
    stub = trace_service_pb2_grpc.TraceServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
    errors: list[Exception] = []

    def client(k: int) -> None:
        try:
            for j in range(10):
                req = _request(25, seed=k * 100 + j)
                if k % 2:
                    stub.Export(req, timeout=30)
                else:
                    assert _post(server.http_port, "/v1/traces", req.SerializeToString(),
                                 {"Content-Type": "application/x-protobuf"})[0] == 200
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert _count(server, "otel_traces") == 8 * 10 * 25
    assert server.store.query(f"SELECT uniqExact(SpanId) FROM {server.store.table('otel_traces')}")[0][0] == 2000


def test_health_endpoint(server):
    """GET /health answers 200 with the pending row count, for container health checks."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/health", timeout=10) as resp:
        assert resp.status == 200
        assert json.loads(resp.read()) == {"status": "ok", "pending_rows": 0}


# -- logs ---------------------------------------------------------------------------


@pytest.fixture
def log_server(store_dir):
    """A receiver without the scheduled analyzer, for the logs tests."""
    srv = Server(ServeOptions(url=f"chdb://{store_dir}", database=f"serve{next(_db)}", grpc_port=0, http_port=0,
                              analyzer=False))
    yield srv
    srv.store.command(f"DROP DATABASE IF EXISTS `{srv.store.database}`")
    srv.stop()


def _log_request(n: int = 3, time_ns: int | None = None):
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

    req = logs_service_pb2.ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.add(key="service.name").value.string_value = "raw"
    sl = rl.scope_logs.add()
    for i in range(n):
        rec = sl.log_records.add(time_unix_nano=time.time_ns() if time_ns is None else time_ns, severity_number=9)
        rec.body.string_value = f"line {i}"
    return req


@pytest.mark.filterwarnings("ignore:`LoggingHandler` in `opentelemetry-sdk` is deprecated")
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_sdk_logs_arrive_over_real_otlp(log_server, protocol):
    """The OpenTelemetry SDK's logs pipeline (BatchLogRecordProcessor + the real OTLP log exporters) fills otel_logs."""
    import logging

    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        exporter = OTLPLogExporter(endpoint=f"127.0.0.1:{log_server.grpc_port}", insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        exporter = OTLPLogExporter(endpoint=f"http://127.0.0.1:{log_server.http_port}/v1/logs")
    provider = LoggerProvider(resource=Resource.create({"service.name": "scoring-api", "deployment.environment": "test"}),
                              shutdown_on_exit=False)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    logger = logging.getLogger(f"modelwatch.test.logs.{protocol}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
    logger.addHandler(handler)
    tracer = TracerProvider().get_tracer("test")
    try:
        with tracer.start_as_current_span("ml.predict") as span:
            ctx = span.get_span_context()
            logger.error("low confidence for %s", "p-1", extra={"ml.model.name": "fraud", "ml.prediction.confidence": 0.42,
                                                                "n_items": 3, "flagged": True})
        logger.info("outside any span")
        for i in range(50):
            logger.debug("bulk %d", i)
        assert provider.force_flush(30_000)
    finally:
        logger.removeHandler(handler)
        provider.shutdown()
    table = log_server.store.table("otel_logs")
    (row,) = log_server.store.query(
        f"SELECT Body, SeverityText, SeverityNumber, ServiceName, TraceId, SpanId, TraceFlags, "
        f"LogAttributes['ml.model.name'], LogAttributes['ml.prediction.confidence'], LogAttributes['n_items'], "
        f"LogAttributes['flagged'], ResourceAttributes['deployment.environment'], ScopeName, "
        f"Timestamp > now() - INTERVAL 10 MINUTE, TimestampTime = toDateTime(Timestamp) "
        f"FROM {table} WHERE SeverityText = 'ERROR'")
    assert row == ("low confidence for p-1", "ERROR", 17, "scoring-api", format(ctx.trace_id, "032x"),
                   format(ctx.span_id, "016x"), int(ctx.trace_flags), "fraud", "0.42", "3", "true", "test", logger.name, True, True)
    outside = log_server.store.query(f"SELECT SeverityText, SeverityNumber, TraceId, SpanId FROM {table} "
                                     "WHERE Body = 'outside any span'")
    assert outside == [("INFO", 9, "", "")]
    assert int(ctx.trace_flags) & 1  # sampled, and stored as the record's flags
    assert _count(log_server, "otel_logs", "SeverityText = 'DEBUG' AND startsWith(Body, 'bulk ')") == 50
    assert log_server.ingest.stats.native_rows == 0  # logs never take the native (traces-only) path


def test_malformed_logs_payloads_are_refused_whole(log_server):
    """Garbage, bad JSON, bad gzip, and a request with one out-of-range record: 400 / INVALID_ARGUMENT, nothing stored."""
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc

    port = log_server.http_port
    proto = {"Content-Type": "application/x-protobuf"}
    assert _post(port, "/v1/logs", b"\x0a\xff\xff\xff\xff\x0f", proto)[0] == 400
    assert _post(port, "/v1/logs", b"{not json", {"Content-Type": "application/json"})[0] == 400
    assert _post(port, "/v1/logs", b"not gzip", {**proto, "Content-Encoding": "gzip"})[0] == 400
    bad = _log_request(5)
    bad.resource_logs[0].scope_logs[0].log_records[3].time_unix_nano = 2**63  # beyond DateTime64(9)
    status, body, _h = _post(port, "/v1/logs", bad.SerializeToString(), proto)
    assert status == 400 and b"2262" in body
    channel = grpc.insecure_channel(f"127.0.0.1:{log_server.grpc_port}")
    raw = channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                              request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as info:
        raw(b"\x0a\xff\xff\xff\xff\x0f", timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    stub = logs_service_pb2_grpc.LogsServiceStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.Export(bad, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _count(log_server, "otel_logs") == 0 and log_server.ingest.stats.rows == 0
    stub.Export(_log_request(4), timeout=10)  # the same service takes a good request
    channel.close()
    assert _count(log_server, "otel_logs") == 4


def test_logs_json_gzip_hex_ids_token_and_size_limit(store_dir):
    """OTLP/JSON logs, gzip, hex ids; with a token, 401 without it; 413 beyond the size limit."""
    srv = Server(ServeOptions(url=f"chdb://{store_dir}", database=f"serve{next(_db)}", grpc_port=0, http_port=0,
                              analyzer=False, token="s3cret", max_request_bytes=64 * 1024))
    try:
        body = {"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "j"}}]},
                "scopeLogs": [{"scope": {"name": "s"}, "logRecords": [{
                    "timeUnixNano": "0", "observedTimeUnixNano": str(time.time_ns()), "severityNumber": 21,
                    "severityText": "FATAL", "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
                    "body": {"kvlistValue": {"values": [{"key": "msg", "value": {"stringValue": "x"}},
                                                        {"key": "n", "value": {"intValue": "2"}}]}},
                    "attributes": [{"key": "ml.feature.x", "value": {"doubleValue": 1e-7}}]}]}]}]}
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        payload = gzip.compress(json.dumps(body).encode())
        assert _post(srv.http_port, "/v1/logs", payload, headers)[0] == 401
        assert _post(srv.http_port, "/v1/logs", payload, {**headers, "Authorization": "Bearer s3cret"})[:2] == (200, b"{}")
        assert _post(srv.http_port, "/v1/logs", b"\x00" * 100_000,
                     {"Content-Type": "application/x-protobuf", "Authorization": "Bearer s3cret"})[0] == 413
        rows = srv.store.query(f"SELECT TraceId, SpanId, SeverityText, SeverityNumber, Body, LogAttributes, ServiceName, "
                               f"Timestamp > now() - INTERVAL 10 MINUTE FROM {srv.store.table('otel_logs')}")
        assert rows == [("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "FATAL", 21, '{"msg":"x","n":2}',
                         {"ml.feature.x": "1e-7"}, "j", True)]
    finally:
        srv.store.command(f"DROP DATABASE IF EXISTS `{srv.store.database}`")
        srv.stop()


def test_the_lock_file_url_of_an_ipv6_or_wildcard_bind_is_one_a_client_can_open():
    """serve --host ::1 names http://[::1]:PORT (not http://::1:PORT); a wildcard bind is reached on 127.0.0.1."""
    from modelwatch_analyzer.service.serve import local_url

    assert local_url("http", "::1", 4318) == "http://[::1]:4318"
    assert local_url("https", "127.0.0.1", 1) == "https://127.0.0.1:1"
    assert local_url("http", "0.0.0.0", 4318) == local_url("http", "::", 4318) == "http://127.0.0.1:4318"
    assert local_url("http", "localhost", 4318) == "http://localhost:4318"


def test_a_grpc_address_not_on_this_machine_is_a_one_line_oserror(store):
    """grpcio raises a RuntimeError for a failed bind; serve reports it as OSError naming the address (the CLI prints
    one line and exits 1), not a traceback."""
    from modelwatch_analyzer.collector import grpc_receiver
    from modelwatch_analyzer.collector.ingest import Ingest
    from modelwatch_analyzer.collector.receiver import Receiver

    ingest = Ingest(store)
    try:
        with pytest.raises(OSError, match=r"cannot listen on 203\.0\.113\.9:0 \(gRPC\)"):
            grpc_receiver.start(Receiver(ingest), "203.0.113.9", 0)
    finally:
        ingest.close()
