"""The receiver's answers mean what they say: what it refuses (and with which status), what it bounds, and TLS."""

from __future__ import annotations

import base64
import gzip
import http.client
import itertools
import json
import math
import os
import ssl
import subprocess
import threading
import time
import zlib

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import status_pb2
from modelwatch_analyzer.collector.ingest import Ingest
from modelwatch_analyzer.collector.receiver import SIGNALS, Receiver, Rejected
from modelwatch_analyzer.service.serve import ServeOptions, Server
from modelwatch_analyzer.store import schema, typed_tables
from modelwatch_analyzer.store.client import Store
from opentelemetry.proto.collector.logs.v1 import (
    logs_service_pb2,
    logs_service_pb2_grpc,
)
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)

_db = itertools.count()
_ids = itertools.count(1)
DAY_NS = 86_400 * 10**9


@pytest.fixture
def server(store_dir):
    """A running receiver on free ports (no scheduled analyzer), in a database of its own."""
    srv = Server(ServeOptions(url=f"chdb://{store_dir}", database=f"hard{next(_db)}", grpc_port=0, http_port=0,
                              analyzer=False))
    yield srv
    srv.store.command(f"DROP DATABASE IF EXISTS `{srv.store.database}`")
    srv.stop()


def _count(st: Store, table: str = "otel_traces", where: str = "1") -> int:
    return st.query(f"SELECT count() FROM {st.table(table)} WHERE {where}")[0][0]


def _post(port: int, path: str, body: bytes, headers: dict[str, str], context: ssl.SSLContext | None = None,
          ) -> tuple[int, bytes, dict[str, str]]:
    """POST with exactly these headers (http.client adds no Content-Type of its own)."""
    conn = (http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=context) if context
            else http.client.HTTPConnection("127.0.0.1", port, timeout=30))
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


PROTO = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def _spans(n: int = 3, start: int | None = None, resources: int = 1) -> trace_service_pb2.ExportTraceServiceRequest:
    req = trace_service_pb2.ExportTraceServiceRequest()
    now = time.time_ns() if start is None else start
    for _ in range(resources):
        rs = req.resource_spans.add()
        rs.resource.attributes.add(key="service.name").value.string_value = "hard"
        spans = rs.scope_spans.add().spans
        for _ in range(n):
            k = next(_ids)
            span = spans.add(name="ml.predict", trace_id=k.to_bytes(16, "big"), span_id=k.to_bytes(8, "big"),
                             start_time_unix_nano=now, end_time_unix_nano=now + 1000)
            span.attributes.add(key="ml.model.name").value.string_value = "m"
            span.attributes.add(key="ml.prediction.id").value.string_value = f"p{k}"
    return req


def _json_spans(start: int) -> bytes:
    k = next(_ids)
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": f"{k:032x}", "spanId": f"{k:016x}", "name": "ml.predict",
        "startTimeUnixNano": str(start), "endTimeUnixNano": str(start)}]}]}]}).encode()


def _status(body: bytes, as_json: bool) -> tuple[int, str]:
    if as_json:
        parsed = json.loads(body)
        return parsed["code"], parsed["message"]
    status = status_pb2.Status.FromString(body)
    return status.code, status.message


# -- an answer after the ack timeout --------------------------------------------------------------------------


def _stalled_ingest(store: Store, native: bool) -> tuple[Ingest, threading.Event, threading.Event]:
    """One writer whose first commit waits for `release`; `stalled` is set once it does."""
    ingest = Ingest(store, linger_seconds=0, native_traces=native, writers=1)
    stalled, release = threading.Event(), threading.Event()
    (own,) = ingest._stores
    name = "command" if native else "insert"
    original = getattr(own, name)

    def stalling(*args, **kwargs):  # type: ignore[no-untyped-def]
        if native and "INSERT INTO" not in args[0]:
            return original(*args, **kwargs)
        if not stalled.is_set():
            stalled.set()
            assert release.wait(60)
        return original(*args, **kwargs)

    setattr(own, name, stalling)
    return ingest, stalled, release


def _export(receiver: Receiver, request: trace_service_pb2.ExportTraceServiceRequest, native: bool) -> None:
    receiver.export(SIGNALS["traces"], request, request.SerializeToString() if native else None)


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
def test_queued_request_answered_unavailable_at_its_ack_timeout_is_never_stored(store, native):
    """A request still queued when its ack timeout expires is withdrawn: answered UNAVAILABLE and never committed."""
    ingest, stalled, release = _stalled_ingest(store, native)
    receiver = Receiver(ingest, ack_timeout=0.3)
    first = threading.Thread(target=lambda: _export(Receiver(ingest, ack_timeout=60), _spans(4), native))
    try:
        first.start()
        assert stalled.wait(30)  # the only writer is inside the first commit
        late = _spans(6)
        with pytest.raises(Rejected) as info:
            _export(receiver, late, native)
        assert info.value.code == "unavailable"
        assert ingest.pending_rows == 4  # the withdrawn request holds no room
    finally:
        release.set()
        first.join(60)
        ingest.close()
    assert _count(store) == 4 == ingest.stats.rows
    assert ingest.pending_rows == 0


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
def test_request_being_committed_at_its_ack_timeout_is_answered_by_the_commit_outcome(store, native):
    """A request a writer is already committing when its ack timeout expires waits for that commit and succeeds."""
    ingest, stalled, release = _stalled_ingest(store, native)
    receiver = Receiver(ingest, ack_timeout=0.2)
    outcome: list[object] = []

    def send() -> None:
        try:
            _export(receiver, _spans(5), native)
            outcome.append("stored")
        except Rejected as exc:
            outcome.append(exc)

    sender = threading.Thread(target=send)
    try:
        sender.start()
        assert stalled.wait(30)
        time.sleep(0.6)  # well past the ack timeout, the commit still running
        assert outcome == []
        release.set()
        sender.join(60)
    finally:
        release.set()
        ingest.close()
    assert outcome == ["stored"] and _count(store) == 5


# -- gzip -----------------------------------------------------------------------------------------------------


def test_truncated_or_trailing_garbage_gzip_bodies_are_refused_and_nothing_is_stored(server):
    """A gzip body cut after a full flush, a bare header, an empty body, or one with bytes after the stream: 400."""
    deflater = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    request = _spans(1, resources=6)
    raw = request.SerializeToString()
    cut_at = len(_prefix(request, 3))
    flushed = deflater.compress(raw[:cut_at]) + deflater.flush(zlib.Z_FULL_FLUSH)
    assert zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(flushed) == raw[:cut_at]  # three whole resource spans
    bodies = {
        "cut after a full flush": flushed,
        "bare 10-byte header": gzip.compress(b"")[:10],
        "empty": b"",
        "trailing garbage": gzip.compress(raw) + b"garbage",
        "truncated trailer": gzip.compress(raw)[:-4],
    }
    for what, body in bodies.items():
        for ctype, payload in ((PROTO, body), (JSON, body)):
            status, reply, _h = _post(server.http_port, "/v1/traces", payload, {**ctype, "Content-Encoding": "gzip"})
            assert status == 400, (what, ctype, status)
            code, message = _status(reply, ctype is JSON)
            assert code == 3 and "gzip" in message, (what, message)
    assert _count(server.store) == 0 and server.ingest.stats.rows == 0


def _prefix(request: trace_service_pb2.ExportTraceServiceRequest, n: int) -> bytes:
    head = trace_service_pb2.ExportTraceServiceRequest()
    head.resource_spans.extend(request.resource_spans[:n])
    return head.SerializeToString()


def test_concatenated_gzip_members_are_decompressed_whole(server):
    """A body of several gzip members (as `gzip -d` reads them) is stored whole, not just its first member."""
    request = _spans(1, resources=6)
    raw = request.SerializeToString()
    cut = len(_prefix(request, 2))
    body = gzip.compress(raw[:cut]) + gzip.compress(raw[cut:])
    status, _reply, _h = _post(server.http_port, "/v1/traces", body, {**PROTO, "Content-Encoding": "gzip"})
    assert status == 200
    assert _count(server.store) == 6


# -- timestamps -----------------------------------------------------------------------------------------------


BAD_TIMES = [2**63 - 1, 0, 1, 946_684_799 * 10**9]  # the last: one second before 2000-01-01


def test_span_start_times_outside_the_accepted_range_are_refused_on_every_path(server):
    """Span start times of 2^63-1, 0, 1 ns, before 2000, older than the retention that keeps them (a prediction
    span: ml_predictions' 180 days; a span that is neither prediction nor label: otel_traces' 7 days), or over a
    week ahead: 400 / INVALID_ARGUMENT naming the field, on the native, Python and gRPC paths."""
    stub = trace_service_pb2_grpc.TraceServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
    for t in BAD_TIMES + [time.time_ns() - 181 * DAY_NS, time.time_ns() + 8 * DAY_NS]:
        bad = _spans(3)
        bad.resource_spans[0].scope_spans[0].spans[1].start_time_unix_nano = t
        status, reply, _h = _post(server.http_port, "/v1/traces", bad.SerializeToString(), PROTO)  # native path
        assert status == 400 and "start_time_unix_nano" in _status(reply, False)[1], (t, status, reply)
        status, reply, _h = _post(server.http_port, "/v1/traces", _json_spans(t), JSON)  # Python path
        assert status == 400 and "start_time_unix_nano" in _status(reply, True)[1], (t, status, reply)
        with pytest.raises(grpc.RpcError) as info:
            stub.Export(bad, timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "start_time_unix_nano" in info.value.details()
    assert _count(server.store) == 0 and server.ingest.stats.rows == 0
    status, reply, _h = _post(server.http_port, "/v1/traces", _json_spans(time.time_ns() - 8 * DAY_NS), JSON)
    assert status == 400 and "start_time_unix_nano" in _status(reply, True)[1]  # no ml.* attribute: raw only
    for t in (time.time_ns() - 6 * DAY_NS, time.time_ns() + 6 * DAY_NS):  # inside the range
        assert _post(server.http_port, "/v1/traces", _spans(1, start=t).SerializeToString(), PROTO)[0] == 200
        assert _post(server.http_port, "/v1/traces", _json_spans(t), JSON)[0] == 200
    assert _count(server.store) == 4


def test_without_retention_times_from_2000_are_accepted_and_stay_stored(store_dir):
    """On a store whose tables keep rows forever, the accepted range starts at 2000-01-01, and such rows stay."""
    database = f"hard{next(_db)}"
    forever = Store(f"chdb://{store_dir}", database=database)
    schema.apply(forever, retention=schema.Retention(traces_days=0, logs_days=0, metrics_days=0, predictions_days=0,
                                                     labels_days=0))
    srv = Server(ServeOptions(url=f"chdb://{store_dir}", database=database, grpc_port=0, http_port=0, analyzer=False))
    try:
        assert srv.receiver.retention_seconds == {}
        y2000 = 946_684_800 * 10**9
        assert _post(srv.http_port, "/v1/traces", _spans(2, start=y2000).SerializeToString(), PROTO)[0] == 200
        assert _post(srv.http_port, "/v1/traces", _spans(1, start=y2000 - 1).SerializeToString(), PROTO)[0] == 400
        srv.store.command(f"OPTIMIZE TABLE {srv.store.table('otel_traces')} FINAL")  # a merge would apply a TTL
        assert _count(srv.store, where="toYear(Timestamp) = 2000") == 2
    finally:
        srv.store.command(f"DROP DATABASE IF EXISTS `{database}`")
        srv.stop()


def test_the_receiver_reads_each_signals_shortest_retention_from_the_store(server):
    """The retention that bounds row timestamps is each signal's tables' TTL, as the store holds it (and the typed
    tables', which bound prediction and label spans)."""
    assert server.receiver.retention_seconds == {"traces": 7 * 86_400, "metrics": 90 * 86_400, "logs": 30 * 86_400,
                                                 "ml_predictions": 180 * 86_400, "ml_labels": 365 * 86_400}
    status, reply, _h = _post(server.http_port, "/v1/logs", _log(time.time_ns() - 31 * DAY_NS, 0).SerializeToString(),
                              PROTO)
    assert status == 400 and "retention" in _status(reply, False)[1]


def _kinds(start: int) -> trace_service_pb2.ExportTraceServiceRequest:
    """A prediction span, a label span (its own name), a label without a prediction id, and a plain span."""
    req = trace_service_pb2.ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    for name, attrs in (("score", {"ml.model.name": "old", "ml.prediction.id": f"x{start}"}),
                        ("truth", {"ml.model.name": "old", "ml.prediction.id": f"x{start}", "ml.label.value": "1"}),
                        ("truth", {"ml.model.name": "old", "ml.label.value": "1"}),
                        ("GET /", {"http.route": "/"})):
        k = next(_ids)
        span = spans.add(name=name, trace_id=k.to_bytes(16, "big"), span_id=k.to_bytes(8, "big"),
                         start_time_unix_nano=start, end_time_unix_nano=start)
        for key, value in attrs.items():
            span.attributes.add(key=key).value.string_value = value
    return req


@pytest.mark.parametrize("path", ["native", "python"])
def test_prediction_and_label_spans_older_than_the_raw_retention_are_accepted_and_typed(server, path):
    """A 30-day-old prediction span and a 200-day-old label are kept by their typed tables (180 and 365 days): the
    receiver accepts them though otel_traces keeps 7 days, and their typed rows stay. A span of that age that is
    neither (no ml.* attribute, or a label without a prediction id) is refused whole, on both paths."""
    receiver = Receiver(server.ingest, retention_seconds=server.receiver.retention_seconds)
    signal = SIGNALS["traces"]

    def export(req: trace_service_pb2.ExportTraceServiceRequest) -> None:
        receiver.export(signal, req, req.SerializeToString() if path == "native" else None)

    month, year = time.time_ns() - 30 * DAY_NS, time.time_ns() - 200 * DAY_NS
    for start in (month, year):
        with pytest.raises(Rejected) as info:
            export(_kinds(start))
        assert info.value.code == "invalid" and "start_time_unix_nano" in info.value.message
    for start, keep in ((month, 2), (year, 1)):
        req = _kinds(start)
        del req.resource_spans[0].scope_spans[0].spans[2:]
        if keep == 1:  # at 200 days only the label is within its table's retention
            with pytest.raises(Rejected):
                export(req)
            del req.resource_spans[0].scope_spans[0].spans[0]
        export(req)
    assert _count(server.store, "ml_predictions") == 1 and _count(server.store, "ml_labels") == 2
    assert _count(server.store) == 0  # otel_traces dropped them at once (older than its TTL)


def _gauge(time_ns: int, start_ns: int = 0) -> metrics_service_pb2.ExportMetricsServiceRequest:
    req = metrics_service_pb2.ExportMetricsServiceRequest()
    metric = req.resource_metrics.add().scope_metrics.add().metrics.add(name="g")
    metric.gauge.data_points.add(time_unix_nano=time_ns, start_time_unix_nano=start_ns, as_double=1.5)
    return req


def test_metric_point_times_outside_the_accepted_range_are_refused(server):
    """A data point's time outside the accepted range is refused naming the field; an unset start time is fine."""
    stub = metrics_service_pb2_grpc.MetricsServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
    for t in BAD_TIMES:
        status, reply, _h = _post(server.http_port, "/v1/metrics", _gauge(t).SerializeToString(), PROTO)
        assert status == 400 and "time_unix_nano" in _status(reply, False)[1], (t, status)
        with pytest.raises(grpc.RpcError) as info:
            stub.Export(_gauge(t), timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _count(server.store, "otel_metrics_gauge") == 0
    assert _post(server.http_port, "/v1/metrics", _gauge(time.time_ns()).SerializeToString(), PROTO)[0] == 200
    assert _count(server.store, "otel_metrics_gauge") == 1


def _log(time_ns: int, observed_ns: int) -> logs_service_pb2.ExportLogsServiceRequest:
    req = logs_service_pb2.ExportLogsServiceRequest()
    record = req.resource_logs.add().scope_logs.add().log_records.add(time_unix_nano=time_ns,
                                                                      observed_time_unix_nano=observed_ns)
    record.body.string_value = f"line {next(_ids)}"
    return req


def test_log_times_unset_take_the_receive_time_and_out_of_range_ones_are_refused(server):
    """A log with neither time set is stored at its receive time; a set time out of range is refused naming it."""
    before = time.time_ns()
    assert _post(server.http_port, "/v1/logs", _log(0, 0).SerializeToString(), PROTO)[0] == 200
    (stored,) = server.store.query(f"SELECT toUnixTimestamp64Nano(Timestamp) FROM {server.store.table('otel_logs')}")[0]
    assert before <= stored <= time.time_ns()
    stub = logs_service_pb2_grpc.LogsServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
    for t in BAD_TIMES:
        for request, field in ((_log(t, time.time_ns()), "time_unix_nano"), (_log(0, t), "observed_time_unix_nano")):
            if t == 0:
                continue  # unset: the other time (or the receive time) is used
            status, reply, _h = _post(server.http_port, "/v1/logs", request.SerializeToString(), PROTO)
            assert status == 400 and f"log record {field}" in _status(reply, False)[1], (t, field, reply)
            with pytest.raises(grpc.RpcError) as info:
                stub.Export(request, timeout=10)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _count(server.store, "otel_logs") == 1
    assert _post(server.http_port, "/v1/logs", _log(0, time.time_ns()).SerializeToString(), PROTO)[0] == 200
    assert _count(server.store, "otel_logs") == 2


# -- content types, encodings, JSON shapes --------------------------------------------------------------------


def test_only_otlp_media_types_are_accepted_matched_case_insensitively(server):
    """text/plain, XML, form data or no Content-Type at all: 415 with a JSON Status; OTLP's two types in any case work."""
    body = _spans(2).SerializeToString()
    for headers in ({"Content-Type": "text/plain"}, {"Content-Type": "application/xml"},
                    {"Content-Type": "application/x-www-form-urlencoded"}, {}):
        status, reply, resp_headers = _post(server.http_port, "/v1/traces", body, headers)
        assert status == 415, headers
        assert resp_headers["content-type"] == "application/json"
        assert "application/x-protobuf" in _status(reply, True)[1]
    assert _count(server.store) == 0
    assert _post(server.http_port, "/v1/traces", body, {"Content-Type": "Application/X-Protobuf"})[0] == 200
    status, reply, resp_headers = _post(server.http_port, "/v1/traces", _json_spans(time.time_ns()),
                                        {"Content-Type": "APPLICATION/JSON; charset=utf-8"})
    assert (status, reply, resp_headers["content-type"]) == (200, b"{}", "application/json")
    assert _count(server.store) == 3


def test_unknown_content_encodings_are_refused(server):
    """Content-Encoding br, deflate, zstd or a chain: 415 and nothing stored; gzip (any case) and identity are read."""
    raw = _spans(2).SerializeToString()
    for encoding in ("br", "deflate", "zstd", "gzip, gzip", "compress"):
        status, reply, _h = _post(server.http_port, "/v1/traces", gzip.compress(raw), {**PROTO, "Content-Encoding": encoding})
        assert status == 415 and "Content-Encoding" in _status(reply, False)[1], encoding
    assert _count(server.store) == 0
    assert _post(server.http_port, "/v1/traces", gzip.compress(raw), {**PROTO, "Content-Encoding": "GZIP"})[0] == 200
    assert _post(server.http_port, "/v1/traces", _spans(1).SerializeToString(),
                 {**PROTO, "Content-Encoding": "identity"})[0] == 200
    assert _count(server.store) == 3


def test_json_bodies_that_are_not_objects_are_refused(server):
    """`[]`, `"str"`, `null` and `42` are not OTLP/JSON requests: 400 on every signal."""
    for path in ("/v1/traces", "/v1/metrics", "/v1/logs"):
        for body in (b"[]", b'"str"', b"null", b"42", b"[{}]"):
            status, reply, _h = _post(server.http_port, path, body, JSON)
            assert status == 400, (path, body, status)
            assert "object" in _status(reply, True)[1]
        assert _post(server.http_port, path, b"{}", JSON)[:2] == (200, b"{}")


# -- sampling weights -----------------------------------------------------------------------------------------


def _weighted(weights: dict[str, object]) -> trace_service_pb2.ExportTraceServiceRequest:
    req = _spans(len(weights))
    for span, (pid, weight) in zip(req.resource_spans[0].scope_spans[0].spans, weights.items()):
        for kv in span.attributes:
            if kv.key == "ml.prediction.id":
                kv.value.string_value = pid
        if weight is None:
            continue
        value = span.attributes.add(key="ml.sampling.weight").value
        if isinstance(weight, str):
            value.string_value = weight
        else:
            value.double_value = weight
    return req


WEIGHTS = {"huge": (9.2e18, 1e6, True), "nan": (math.nan, 1.0, True), "inf": (math.inf, 1.0, True),
           "half": (0.5, 1.0, True), "zero": (0.0, 1.0, True), "text": ("abc", 1.0, True), "top": (1e6, 1e6, False),
           "ten": (10.0, 10.0, False), "one": (1.0, 1.0, False), "absent": (None, 1.0, False)}


def test_sampling_weights_outside_bounds_are_clamped_and_flagged_on_both_paths(server):
    """ml.sampling.weight beyond [1, 1e6], non-finite or not a number: the span is stored, its typed Weight clamped
    and WeightClamped set."""
    sent = {pid: w for pid, (w, _stored, _flag) in WEIGHTS.items()}
    request = _weighted(sent)
    assert _post(server.http_port, "/v1/traces", request.SerializeToString(), PROTO)[0] == 200  # native path
    stub = trace_service_pb2_grpc.TraceServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
    json_request = _weighted({f"j-{pid}": w for pid, w in sent.items()})
    as_json = json_format.MessageToDict(json_request)
    for rs in as_json["resourceSpans"]:  # OTLP/JSON ids are hex
        for span in rs["scopeSpans"][0]["spans"]:
            span["traceId"] = base64.b64decode(span["traceId"]).hex()
            span["spanId"] = base64.b64decode(span["spanId"]).hex()
    assert _post(server.http_port, "/v1/traces", json.dumps(as_json).encode(), JSON)[0] == 200  # Python path
    stub.Export(_weighted({f"g-{pid}": w for pid, w in sent.items()}), timeout=10)
    table = server.store.table("ml_predictions")
    weights = dict(server.store.query(f"SELECT PredictionId, Weight FROM {table}"))
    assert len(weights) == 3 * len(WEIGHTS)
    for prefix in ("", "j-", "g-"):
        assert {pid: weights[prefix + pid] for pid in WEIGHTS} == {pid: w for pid, (_s, w, _f) in WEIGHTS.items()}, prefix
    flags = dict(server.store.query(f"SELECT PredictionId, WeightClamped FROM {table}"))
    for prefix in ("", "j-", "g-"):
        assert {pid: flags[prefix + pid] for pid in WEIGHTS} == {pid: f for pid, (_s, _w, f) in WEIGHTS.items()}, prefix


def test_migration_12_bounds_weights_in_a_store_created_before_it(store_dir, monkeypatch):
    """A store at migration 10 gains the WeightClamped column and the bounded view; rows typed before stay as they were."""
    from modelwatch_analyzer.collector.otlp_rows import TRACE_COLUMNS, span_rows

    old = Store(f"chdb://{store_dir}", database="before_m11")
    try:
        monkeypatch.setattr(schema, "MIGRATIONS", tuple(m for m in schema.MIGRATIONS if m.version <= 10))
        monkeypatch.setattr(typed_tables, "_BOUNDED_WEIGHTS", False)  # the table and view as versions before 12 made them
        schema.apply(old)
        monkeypatch.undo()
        assert "WeightClamped" not in dict(old.query(
            "SELECT name, type FROM system.columns WHERE database = 'before_m11' AND table = 'ml_predictions'"))
        old.insert("otel_traces", span_rows(_weighted({"before": 9.2e18})), TRACE_COLUMNS)
        assert [m.version for m in schema.apply(old)] == list(range(11, len(schema.MIGRATIONS) + 1))
        assert schema.version(old) == len(schema.MIGRATIONS)
        old.insert("otel_traces", span_rows(_weighted({"after": 9.2e18, "fine": 3.0})), TRACE_COLUMNS)
        rows = dict((pid, (w, flag)) for pid, w, flag in old.query(
            f"SELECT PredictionId, Weight, WeightClamped FROM {old.table('ml_predictions')}"))
        assert rows == {"before": (9.2e18, False), "after": (1e6, True), "fine": (3.0, False)}
    finally:
        old.command("DROP DATABASE IF EXISTS `before_m11`")


# -- overload -------------------------------------------------------------------------------------------------


def test_requests_beyond_the_concurrency_limit_get_503_with_retry_after_and_a_status_body(store):
    """Past the in-flight request limit, OTLP requests are answered 503 + Retry-After + google.rpc.Status at once;
    /health still answers, and the requests in flight are stored."""
    from modelwatch_analyzer.collector.http_receiver import HttpServer

    ingest, stalled, release = _stalled_ingest(store, native=True)
    receiver_http = HttpServer(Receiver(ingest), "127.0.0.1", 0, max_concurrent_requests=2)
    port = receiver_http.start()
    answers: list[int] = []
    try:
        senders = [threading.Thread(target=lambda: answers.append(
            _post(port, "/v1/traces", _spans(3).SerializeToString(), PROTO)[0])) for _ in range(2)]
        for t in senders:
            t.start()
        deadline = time.monotonic() + 30
        while ingest.pending_rows < 6 and time.monotonic() < deadline:  # both requests in flight
            time.sleep(0.01)
        assert stalled.is_set() and ingest.pending_rows == 6
        for ctype, as_json, body in ((PROTO, False, _spans(1).SerializeToString()),
                                     (JSON, True, _json_spans(time.time_ns()))):
            status, reply, headers = _post(port, "/v1/traces", body, ctype)
            assert status == 503 and headers["retry-after"].isdigit()
            code, message = _status(reply, as_json)
            assert code == 14 and "concurrent" in message
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/health")
        assert conn.getresponse().status == 200
        conn.close()
        release.set()
        for t in senders:
            t.join(60)
        assert answers == [200, 200]
    finally:
        release.set()
        receiver_http.stop()
        ingest.close()
    assert _count(store) == 6


def test_grpc_calls_beyond_the_concurrency_limit_get_unavailable_with_retry_info(store):
    """Past the in-flight limit, gRPC exports are answered UNAVAILABLE (retried by every OTLP exporter) with a
    google.rpc.RetryInfo delay, not grpcio's RESOURCE_EXHAUSTED; the calls in flight are stored."""
    from google.rpc import error_details_pb2, status_pb2
    from modelwatch_analyzer.collector import grpc_receiver

    ingest, stalled, release = _stalled_ingest(store, native=True)
    server, port = grpc_receiver.start(Receiver(ingest), "127.0.0.1", 0, max_concurrent_requests=2)
    stub = trace_service_pb2_grpc.TraceServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    answers: list[str] = []
    try:
        senders = [threading.Thread(target=lambda: (stub.Export(_spans(3), timeout=60), answers.append("ok")))
                   for _ in range(2)]
        for t in senders:
            t.start()
        deadline = time.monotonic() + 30
        while ingest.pending_rows < 6 and time.monotonic() < deadline:  # both calls in flight
            time.sleep(0.01)
        assert stalled.is_set() and ingest.pending_rows == 6
        with pytest.raises(grpc.RpcError) as info:
            stub.Export(_spans(1), timeout=30)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE and "concurrent" in info.value.details()
        details = dict(info.value.trailing_metadata())["grpc-status-details-bin"]
        retry = error_details_pb2.RetryInfo()
        assert status_pb2.Status.FromString(details).details[0].Unpack(retry) and retry.retry_delay.seconds >= 1
        release.set()
        for t in senders:
            t.join(60)
        assert answers == ["ok", "ok"]
    finally:
        release.set()
        server.stop(5).wait(10)
        ingest.close()
    assert _count(store) == 6


# -- TLS ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and localhost, and its key (openssl)."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
    return str(cert), str(key)


def test_tls_serves_real_otlp_exports_over_https_and_secure_grpc(store_dir, certificate, monkeypatch):
    """With a certificate and key, the OTLP exporters deliver over https and a secure gRPC channel; plain text is refused."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # requests would prefer these to the exporter's certificate
        monkeypatch.delenv(name, raising=False)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcExporter,
    )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    cert, key = certificate
    srv = Server(ServeOptions(url=f"chdb://{store_dir}", database=f"hard{next(_db)}", grpc_port=0, http_port=0,
                              analyzer=False, tls_cert=cert, tls_key=key))
    try:
        with open(cert, "rb") as f:
            pem = f.read()
        exporters = [HttpExporter(endpoint=f"https://127.0.0.1:{srv.http_port}/v1/traces", certificate_file=cert),
                     GrpcExporter(endpoint=f"127.0.0.1:{srv.grpc_port}", insecure=False,
                                  credentials=grpc.ssl_channel_credentials(pem))]
        for n, exporter in enumerate(exporters):
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            with provider.get_tracer("t").start_as_current_span("ml.predict") as span:
                span.set_attribute("ml.model.name", f"tls{n}")
            provider.shutdown()
        assert _count(srv.store, "otel_traces", "SpanName = 'ml.predict'") == 2
        assert _count(srv.store, "ml_predictions") == 2
        context = ssl.create_default_context(cafile=cert)
        assert _post(srv.http_port, "/v1/traces", _spans(2).SerializeToString(), PROTO, context=context)[0] == 200
        with pytest.raises((http.client.HTTPException, OSError)):
            _post(srv.http_port, "/v1/traces", _spans(2).SerializeToString(), PROTO)  # plain http to the TLS port
        with pytest.raises(grpc.RpcError) as info:
            trace_service_pb2_grpc.TraceServiceStub(grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}")).Export(
                _spans(1), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert _count(srv.store) == 4
    finally:
        srv.store.command(f"DROP DATABASE IF EXISTS `{srv.store.database}`")
        srv.stop()


def test_tls_needs_both_certificate_and_key(store_dir, certificate, capsys):
    """--tls-cert without --tls-key (or the reverse), or an unreadable file: exit 2 before the store is opened."""
    from modelwatch_analyzer.cli.command import main

    cert, key = certificate
    url = f"chdb://{store_dir}/never-opened"
    for flags in (["--tls-cert", cert], ["--tls-key", key], ["--tls-cert", cert, "--tls-key", cert + ".missing"],
                  ["--tls-cert", key, "--tls-key", cert]):
        assert main(["serve", "--url", url, "--grpc-port", "0", "--http-port", "0", "--ui-port", "0", "--no-analyzer", *flags]) == 2, flags
        assert "tls" in capsys.readouterr().err.lower()
    assert not os.path.exists(f"{store_dir}/never-opened")


def test_serve_with_tls_flags_prints_an_https_start_line(tmp_path, certificate):
    """`modelwatch serve --tls-cert F --tls-key F` starts with a line naming https:// and TLS, forwards the CLI's
    commands over TLS (trusting exactly its certificate), and exits 0 on SIGTERM."""
    import signal
    import socket
    import sys

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    cert, key = certificate
    http_port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from modelwatch_analyzer.cli.command import main; sys.exit(main())",
                             "serve", "--url", f"chdb://{tmp_path / 'store'}", "--grpc-port", str(free_port()),
                             "--http-port", str(http_port), "--ui-port", "0", "--no-analyzer", "--tls-cert", cert, "--tls-key", key],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert f"OTLP HTTP on https://127.0.0.1:{http_port}" in line and "(TLS)" in line, line
        status = _post(http_port, "/v1/traces", _spans(1).SerializeToString(), PROTO,
                       context=ssl.create_default_context(cafile=cert))[0]
        assert status == 200
        forwarded = subprocess.run([sys.executable, "-c", "import sys; from modelwatch_analyzer.cli.command import main; "
                                    "sys.exit(main())", "status", "--url", f"chdb://{tmp_path / 'store'}"],
                                   capture_output=True, text=True, timeout=120)
        assert forwarded.returncode == 0 and "spans stored" in forwarded.stdout, forwarded.stderr  # CLI over TLS
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out


def test_status_counts_and_warns_of_clamped_weights(server):
    """`modelwatch status` says how many stored predictions of a model carried a weight the view had to bound."""
    from modelwatch_analyzer.report import status

    sent = {pid: w for pid, (w, _stored, _flag) in WEIGHTS.items()}
    assert _post(server.http_port, "/v1/traces", _weighted(sent).SerializeToString(), PROTO)[0] == 200
    info = status.gather(server.store)
    clamped = sum(flag for _w, _s, flag in WEIGHTS.values())
    assert [m["weights_clamped"] for m in info["models"]] == [clamped]
    warning = [line for line in status.text(info).splitlines() if "outside [1, 1e6]" in line]
    assert len(warning) == 1 and f"{clamped:,} predictions" in warning[0]
