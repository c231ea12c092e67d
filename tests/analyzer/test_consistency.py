"""Raw spans and typed rows agree after an interrupted commit: found by gaps(), typed at serve start."""

from __future__ import annotations

import os
import time

from modelwatch_analyzer.collector.ingest import Ingest
from modelwatch_analyzer.collector.otlp_rows import TRACE_COLUMNS, span_rows
from modelwatch_analyzer.service.serve import ServeOptions, Server
from modelwatch_analyzer.store import consistency
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2


def _request(n: int, labels: int = 0) -> trace_service_pb2.ExportTraceServiceRequest:
    req = trace_service_pb2.ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    now = time.time_ns()
    for i in range(n + labels):
        label = i >= n
        span = ss.spans.add(name="ml.label" if label else "ml.predict", trace_id=os.urandom(16),
                            span_id=os.urandom(8), start_time_unix_nano=now, end_time_unix_nano=now + 10)
        attrs = {"ml.model.name": "credit", "ml.model.version": "1", "ml.prediction.id": f"p{i}"}
        attrs.update({"ml.label.value": "1"} if label else {"ml.feature.x": str(i), "ml.prediction.value": "0"})
        for k, v in attrs.items():
            span.attributes.add(key=k).value.string_value = v
    return req


def _raw_only(store, request) -> None:
    """Insert spans into otel_traces with the views detached: what a kill -9 between the two part commits leaves."""
    for view in ("ml_predictions_mv", "ml_labels_mv"):
        store.command(f"DETACH TABLE {store.database}.{view}")
    try:
        store.insert("otel_traces", span_rows(request), TRACE_COLUMNS)
    finally:
        for view in ("ml_predictions_mv", "ml_labels_mv"):
            store.command(f"ATTACH TABLE {store.database}.{view}")


def _counts(store) -> tuple[int, int, int, int]:
    q = store.query
    return (q(f"SELECT uniqExact(SpanId) FROM {store.table('otel_traces')} WHERE SpanName = 'ml.predict'")[0][0],
            q(f"SELECT count() FROM {store.table('ml_predictions')}")[0][0],
            q(f"SELECT count() FROM {store.table('otel_traces')} WHERE SpanName = 'ml.label'")[0][0],
            q(f"SELECT count() FROM {store.table('ml_labels')} FINAL")[0][0])


def test_gaps_finds_spans_an_interrupted_commit_left_untyped(store):
    """Spans in otel_traces without typed rows are reported per day and table; a clean store reports none."""
    ingest = Ingest(store, native_traces=False)
    ingest.submit({"otel_traces": (TRACE_COLUMNS, span_rows(_request(50, labels=5)))}).result(30)
    ingest.close()
    assert consistency.gaps(store) == []
    _raw_only(store, _request(1000, labels=20))
    found = {g.table: g.missing for g in consistency.gaps(store)}
    assert found == {"ml_predictions": 1000, "ml_labels": 20}


def test_a_retried_batch_is_not_a_gap_and_is_typed_once(store):
    """Raw duplicates of spans that were typed (a client's retry) are no gap; repair types each span once."""
    req = _request(300)
    _raw_only(store, req)
    store.insert("otel_traces", span_rows(req), TRACE_COLUMNS)  # the retry: raw again, typed this time
    assert consistency.gaps(store) == []
    _raw_only(store, req)  # a third raw copy, still typed once
    assert consistency.repair(store) == []
    only_raw = _request(200)
    _raw_only(store, only_raw)
    _raw_only(store, only_raw)  # interrupted twice: two raw copies, no typed row
    assert [g.missing for g in consistency.repair(store)] == [200]
    assert _counts(store)[:2] == (500, 500)
    assert consistency.gaps(store) == []


def test_serve_types_what_an_interrupted_commit_left_at_start(store_dir, store):
    """After a restart, modelwatch serve has typed every raw prediction and label span before it receives."""
    _raw_only(store, _request(1000, labels=20))
    spans, typed, labels, typed_labels = _counts(store)
    assert (spans, typed) == (1000, 0)
    server = Server(ServeOptions(url=f"chdb://{store_dir}", database=store.database, grpc_port=0, http_port=0,
                                 analyzer=False))
    try:
        assert sorted((g.table, g.missing) for g in server.repaired) == [("ml_labels", 20), ("ml_predictions", 1000)]
    finally:
        server.stop()
    assert _counts(store) == (1000, 1000, 20, 20)


def test_status_reports_spans_left_untyped(store):
    """modelwatch status names the day and the number of raw spans that have no typed row."""
    from modelwatch_analyzer.report import status

    _raw_only(store, _request(40))
    info = status.gather(store)
    assert [(g["table"], g["missing"]) for g in info["untyped"]] == [("ml_predictions", 40)]
    assert "40 spans of" in status.text(info) and "not in ml_predictions" in status.text(info)
