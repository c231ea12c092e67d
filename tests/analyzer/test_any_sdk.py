"""The span contract from any OpenTelemetry SDK: spans of the application's own names, carrying the ``ml.*``
attributes, sent by the OTel SDK's own OTLP exporter (no modelwatch SDK) to ``modelwatch serve``, are typed
into ml_predictions and ml_labels, analysed, and what cannot be read is reported by ``modelwatch status``."""

from __future__ import annotations

import itertools
import random
import time
from datetime import datetime, timedelta, timezone

import pytest
from modelwatch_analyzer.analysis import analyze, baseline
from modelwatch_analyzer.analysis.window import Window
from modelwatch_analyzer.report import status
from modelwatch_analyzer.service.serve import ServeOptions, Server
from modelwatch_analyzer.store import consistency
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

_db = itertools.count()
NOW = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
REFERENCE = (NOW - timedelta(hours=3), NOW - timedelta(hours=2))
CURRENT = (NOW - timedelta(hours=2), NOW - timedelta(hours=1))


@pytest.fixture
def server(store_dir):
    srv = Server(ServeOptions(url=f"chdb://{store_dir}", database=f"anysdk{next(_db)}", grpc_port=0, http_port=0,
                              analyzer=False))
    yield srv
    srv.store.command(f"DROP DATABASE IF EXISTS `{srv.store.database}`")
    srv.stop()


def _exporter(server, protocol: str):  # type: ignore[no-untyped-def]
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=f"127.0.0.1:{server.grpc_port}", insecure=True)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=f"http://127.0.0.1:{server.http_port}/v1/traces")


def _ns(t: datetime) -> int:
    return int(t.timestamp() * 1e9)


def _rows(server, sql: str) -> list[tuple]:
    return server.store.query(sql.replace("{t}", server.store.database))


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_spans_of_any_name_with_the_contracts_attributes_are_typed_and_analysed(server, protocol):
    """A service with its own span names ("score_request", "risk.ground_truth"), plain OTel SDK, real OTLP exporter:
    its predictions are typed (numbers, categories, weights, score, an error), its labels join them by the default
    prediction id (the trace id) and by its own ids; drift and performance are computed; spans that cannot be read
    (no model name, an empty one, a label without a prediction id) are typed nowhere and reported by status."""
    provider = TracerProvider(resource=Resource.create({"service.name": "risk-service-java", "service.instance.id": "pod-7",
                                                        "deployment.environment": "eu", "ml.segment.tier": "gold",
                                                        "process.pid": 4242}))
    provider.add_span_processor(BatchSpanProcessor(_exporter(server, protocol), max_export_batch_size=256))
    tracer = provider.get_tracer("com.example.risk", "1.4.2")
    rng = random.Random(7)
    own_ids: dict[str, int] = {}
    trace_ids: dict[str, int] = {}
    sent = 0
    for window, shift in ((REFERENCE, 0.0), (CURRENT, 40.0)):
        for i in range(300):
            at = _ns(window[0]) + int(i * 3600e9 / 300)
            amount = rng.gauss(100 + shift, 10)
            outcome = int(amount > 110)
            attrs = {"ml.model.name": "risk", "ml.model.version": "3", "ml.prediction.value": outcome,
                     "ml.prediction.score": round(min(max(amount / 200, 0.0), 1.0), 4), "ml.feature.amount": amount,
                     "ml.feature.country": rng.choice(["FR", "DE"]), "ml.feature.items": i % 5,
                     "ml.sampling.weight": 2.0, "ml.sampling.reason": "random", "http.route": "/score"}
            if i % 3 == 0:
                attrs["ml.prediction.id"] = f"order-{shift:.0f}-{i}"
            span = tracer.start_span("score_request", attributes=attrs, start_time=at)
            if i == 0:
                span.set_status(Status(StatusCode.ERROR, "timeout"))
            span.end(end_time=at + 2_000_000)
            if i % 3 == 0:
                own_ids[attrs["ml.prediction.id"]] = outcome
            else:
                trace_ids[format(span.get_span_context().trace_id, "032x")] = outcome
            sent += 1
    # labels: their own span name, joined by the prediction's id (its trace id when it set none)
    label_at = _ns(NOW - timedelta(minutes=30))
    for pid, outcome in itertools.chain(own_ids.items(), trace_ids.items()):
        tracer.start_span("risk.ground_truth", attributes={"ml.model.name": "risk", "ml.prediction.id": pid,
                                                           "ml.label.value": outcome},
                          start_time=label_at).end(end_time=label_at)
    # what cannot be read: a value without a model name (twice), an empty model name, a label without an id, and an
    # ordinary span (not reported: it has no ml.* attribute)
    for name, attrs in (("predict", {"ml.prediction.value": 1.5}), ("predict", {"ml.prediction.value": 2.5}),
                        ("score_request", {"ml.model.name": "", "ml.feature.amount": 1.0}),
                        ("risk.ground_truth", {"ml.model.name": "risk", "ml.label.value": 1}),
                        ("GET /health", {"http.route": "/health"})):
        tracer.start_span(name, attributes=attrs, start_time=label_at).end(end_time=label_at)
    assert provider.force_flush(30_000)
    provider.shutdown()

    assert _rows(server, "SELECT count() FROM `{t}`.otel_traces") == [(sent + len(own_ids) + len(trace_ids) + 5,)]
    (n, weights, names, services, errors, versions), = _rows(
        server, "SELECT count(), sum(Weight), uniqExact(ModelName), any(ServiceName), countIf(IsError), "
                "groupUniqArray(ModelVersion) FROM `{t}`.ml_predictions")
    assert (n, weights, names, services, errors, versions) == (sent, 2.0 * sent, 1, "risk-service-java", 2, ["3"])
    # where the predictions were made, for segments: the listed resource attributes (and ml.segment.*), nothing else
    assert _rows(server, "SELECT DISTINCT Resource FROM `{t}`.ml_predictions") == [(
        {"deployment.environment": "eu", "ml.segment.tier": "gold", "service.instance.id": "pod-7",
         "service.name": "risk-service-java"},)]
    typed = dict((pid, (pred, num, cat)) for pid, pred, num, cat in _rows(
        server, "SELECT PredictionId, Prediction, Numeric, Categorical FROM `{t}`.ml_predictions"))
    assert set(typed) == set(own_ids) | set(trace_ids)
    pid = next(iter(own_ids))
    assert typed[pid][0] == str(own_ids[pid]) and set(typed[pid][1]) == {"amount", "items"}
    assert set(typed[pid][2]) == {"country"}
    assert _rows(server, "SELECT count() FROM `{t}`.ml_labels FINAL") == [(len(own_ids) + len(trace_ids),)]
    assert consistency.gaps(server.store) == []

    base = baseline.from_window(server.store, Window("risk", *REFERENCE), "3")
    baseline.save(server.store, base)
    rows = analyze.run(server.store, Window("risk", *CURRENT), baseline=base)
    amount = [r for r in rows if r.feature == "amount" and r.kind == "drift"]
    assert amount and any(r.drifted for r in amount)  # the amounts moved by four standard deviations
    assert not any(r.drifted for r in rows if r.feature == "country" and r.kind == "drift")
    perf = {r.method: r.statistic for r in rows if r.kind == "performance"}
    assert perf["label_coverage"] == pytest.approx(1.0) and perf["accuracy"] == pytest.approx(1.0)

    info = status.gather(server.store)
    found = {u["reason"]: (u["spans"], u["span_names"]) for u in info["unreadable"]}
    assert found == {"no_model_name": (2, ["predict"]), "empty_model_name": (1, ["score_request"]),
                     "label_without_prediction_id": (1, ["risk.ground_truth"])}
    text = status.text(info)
    assert "2 spans in otel_traces carry ml.* attributes but no ml.model.name" in text
    assert "1 spans in otel_traces are labels (ml.label.value, or named ml.label) without an ml.prediction.id" in text


def test_a_label_span_is_never_a_prediction_whatever_its_name(server):
    """A span that carries ml.label.value (any name), or is named ml.label, is a label only, even with the model
    name and features on it; a span named ml.predict without ml.model.name is no prediction."""
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_exporter(server, "http/protobuf")))
    tracer = provider.get_tracer("t")
    now = time.time_ns()
    for name, attrs in (("feedback", {"ml.model.name": "m", "ml.prediction.id": "a", "ml.label.value": "yes",
                                      "ml.feature.x": 1.0}),
                        ("ml.label", {"ml.model.name": "m", "ml.prediction.id": "b", "ml.feature.x": 2.0}),
                        ("ml.predict", {"ml.feature.x": 3.0}),
                        ("inference", {"ml.model.name": "m", "ml.prediction.value": "no"})):
        tracer.start_span(name, attributes=attrs, start_time=now).end(end_time=now)
    assert provider.force_flush(30_000)
    provider.shutdown()
    assert _rows(server, "SELECT ModelName, Prediction FROM `{t}`.ml_predictions") == [("m", "no")]
    assert sorted(_rows(server, "SELECT PredictionId, Label FROM `{t}`.ml_labels")) == [("a", "yes"), ("b", "")]
    assert [(u.reason, u.spans) for u in consistency.unreadable(server.store)] == [("no_model_name", 1)]


def _spans(names_and_attrs, at: int):  # type: ignore[no-untyped-def]
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    req = trace_service_pb2.ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    for n, (name, attrs) in enumerate(names_and_attrs):
        span = spans.add(name=name, trace_id=random.randbytes(16), span_id=(n + 1).to_bytes(8, "big"),
                         start_time_unix_nano=at, end_time_unix_nano=at + 1000)
        for k, v in attrs.items():
            span.attributes.add(key=k).value.string_value = v
    return req


def test_migration_14_types_spans_of_any_name_in_a_store_with_data(store_dir, monkeypatch):
    """A store at migration 13 typed spans named ml.predict only. Applying 14 keeps every typed row, types new spans
    of any name, and modelwatch serve types, at start, the raw ones of other names it already held."""
    from modelwatch_analyzer.collector.otlp_rows import TRACE_COLUMNS, span_rows
    from modelwatch_analyzer.store import schema, typed_tables
    from modelwatch_analyzer.store.client import Store

    database = f"before_m14_{next(_db)}"
    old = Store(f"chdb://{store_dir}", database=database)
    try:
        monkeypatch.setattr(schema, "MIGRATIONS", tuple(m for m in schema.MIGRATIONS if m.version <= 13))
        monkeypatch.setattr(typed_tables, "prediction_span", lambda attr="SpanAttributes": "(SpanName = 'ml.predict')")
        monkeypatch.setattr(typed_tables, "typed_label", lambda attr="SpanAttributes":
                            f"(SpanName = 'ml.label' AND {attr}['ml.prediction.id'] != '')")
        schema.apply(old)
        monkeypatch.undo()
        now = time.time_ns()
        model = {"ml.model.name": "m", "ml.feature.x": "1"}
        old.insert("otel_traces", span_rows(_spans([("ml.predict", {**model, "ml.prediction.id": "sdk"}),
                                                    ("Predict", {**model, "ml.prediction.id": "java"}),
                                                    ("feedback", {"ml.model.name": "m", "ml.prediction.id": "java",
                                                                  "ml.label.value": "1"})], now)), TRACE_COLUMNS)
        assert old.query(f"SELECT PredictionId FROM {old.table('ml_predictions')}") == [("sdk",)]
        assert old.query(f"SELECT count() FROM {old.table('ml_labels')}") == [(0,)]
        assert [m.version for m in schema.apply(old)][0] == 14 and schema.version(old) == len(schema.MIGRATIONS)
        old.insert("otel_traces", span_rows(_spans([("handler", {**model, "ml.prediction.id": "go"})], now)), TRACE_COLUMNS)
        assert sorted(old.query(f"SELECT PredictionId FROM {old.table('ml_predictions')}")) == [("go",), ("sdk",)]
        assert {(g.table, g.missing) for g in consistency.gaps(old)} == {("ml_predictions", 1), ("ml_labels", 1)}
        srv = Server(ServeOptions(url=f"chdb://{store_dir}", database=database, grpc_port=0, http_port=0, analyzer=False))
        srv.stop()
        assert sorted(old.query(f"SELECT PredictionId FROM {old.table('ml_predictions')}")) == [("go",), ("java",), ("sdk",)]
        assert old.query(f"SELECT PredictionId, Label FROM {old.table('ml_labels')}") == [("java", "1")]
    finally:
        old.command(f"DROP DATABASE IF EXISTS `{database}`")
