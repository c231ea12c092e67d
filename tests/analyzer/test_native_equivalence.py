"""The native trace path (ClickHouse parses the OTLP protobuf) stores byte for byte the rows of the Python path.

Both paths get the same varied requests — every AnyValue kind, hostile unicode,
non-finite and extreme numbers, duplicate keys, events, links, odd ids, kinds
and status codes, several resources and scopes — into two databases of the
same embedded store; ``SELECT *`` of ``otel_traces`` (each row rendered as TSV
text) must be identical, and so must the typed ``ml_predictions`` rows.
"""

from __future__ import annotations

import itertools
import math
import random
import struct
import time

import pytest
from modelwatch_analyzer.collector import native
from modelwatch_analyzer.collector.ingest import Ingest
from modelwatch_analyzer.collector.otlp_rows import TRACE_COLUMNS, span_rows
from modelwatch_analyzer.collector.receiver import checked_spans
from modelwatch_analyzer.store import schema
from modelwatch_analyzer.store.attribute_text import format_double
from modelwatch_analyzer.store.client import Store
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

_db = itertools.count()

HOSTILE = ["", " ", "plain", "tab\tnew\nline\rcr", "quote' \"double\" back\\slash", "nul\x00byte", "é ü 中文 日本語",
           "emoji 🧪🚀", "rtl \u202e\u05d0\u05d1", "line sep \u2028 para \u2029", "<&>", "{'k':'v'}", "\\N", "NULL",
           "combining e\u0301", "\ufeffbom", "x" * 300, "ml.feature.", "service.name"]
DOUBLES = [0.0, -0.0, 1.0, -1.0, 0.42, 1e-7, 1e-6, 9.999999e-7, 1e-5, 1e-4, 0.1 + 0.2, 1e15, 1e16, 123456789012345680.0,
           1e20, 1e21, 1.5e21, -1e21, 1e100, 1e308, 1.7976931348623157e308, 5e-324, 2.2250738585072014e-308, 1e-320,
           math.pi, -math.e, 100.0, 2.0**53, 2.0**63, float("nan"), float("inf"), float("-inf"), 33.33, 1 / 3]
INTS = [0, 1, -1, 42, 2**31, -(2**31), 2**63 - 1, -(2**63), 10**15]


def _random_double(rng: random.Random) -> float:
    kind = rng.random()
    if kind < 0.3:
        return rng.choice(DOUBLES)
    if kind < 0.6:
        return round(rng.gauss(50, 15), rng.randint(0, 6))
    if kind < 0.8:
        return rng.uniform(-1, 1) * 10.0 ** rng.randint(-320, 308)
    return struct.unpack("<d", rng.randbytes(8))[0]  # any bit pattern: subnormals, NaN payloads, huge


def _set_value(value, rng: random.Random, complex_ok: bool) -> None:  # type: ignore[no-untyped-def]
    kind = rng.choice(["string", "string", "double", "double", "int", "bool", "bytes", "none"]
                      + (["array", "kvlist"] if complex_ok else []))
    if kind == "string":
        value.string_value = rng.choice(HOSTILE)
    elif kind == "double":
        value.double_value = _random_double(rng)
    elif kind == "int":
        value.int_value = rng.choice(INTS) if rng.random() < 0.5 else rng.randint(-(2**63), 2**63 - 1)
    elif kind == "bool":
        value.bool_value = rng.random() < 0.5
    elif kind == "bytes":
        value.bytes_value = rng.randbytes(rng.randint(0, 20))
    elif kind == "array":
        for _ in range(rng.randint(0, 3)):
            _set_value(value.array_value.values.add(), rng, False)
        value.array_value.SetInParent()
    elif kind == "kvlist":
        for _ in range(rng.randint(0, 3)):
            kv = value.kvlist_value.values.add(key=rng.choice(HOSTILE))
            _set_value(kv.value, rng, False)
        value.kvlist_value.SetInParent()
    # "none": an AnyValue with no member set


def _attributes(attrs, rng: random.Random, n: int, complex_ok: bool = False) -> None:  # type: ignore[no-untyped-def]
    keys = [f"ml.feature.f{i}" for i in range(5)] + HOSTILE + ["service.name", "ml.model.name", "ml.prediction.value"]
    for _ in range(n):
        kv = attrs.add(key=rng.choice(keys))  # duplicates happen: the later one wins
        _set_value(kv.value, rng, complex_ok)


def _id(rng: random.Random, size: int) -> bytes:
    return rng.choice([rng.randbytes(size)] * 6 + [b"", b"\x00" * size, rng.randbytes(3), b"\x00\x01"])


def varied_request(seed: int, complex_ok: bool = False, duplicates: bool = False) -> trace_service_pb2.ExportTraceServiceRequest:
    rng = random.Random(seed)
    now = time.time_ns()
    req = trace_service_pb2.ExportTraceServiceRequest()
    for _ in range(rng.randint(1, 3)):
        rs = req.resource_spans.add()
        if rng.random() < 0.8:
            rs.resource.attributes.add(key="service.name").value.string_value = rng.choice(["svc", "", "é🧪"])
        _attributes(rs.resource.attributes, rng, rng.randint(0, 4), complex_ok)
        for _ in range(rng.randint(1, 2)):
            ss = rs.scope_spans.add()
            ss.scope.name = rng.choice(["modelwatch", "", "scope\ttab"])
            ss.scope.version = rng.choice(["1.0", ""])
            for _ in range(rng.randint(0, 4)):
                # recent: parts beyond the TTL (older, or past 2106 where toDateTime wraps) are dropped in the
                # background, whenever it runs; extreme times are in events
                start = now + rng.randint(-10**14, 10**14)
                end = rng.choice([start, min(start + rng.randint(0, 10**9), 2**63 - 1), max(0, start - 5), 2**63 - 1])
                span = ss.spans.add(
                    trace_id=_id(rng, 16), span_id=_id(rng, 8), parent_span_id=_id(rng, 8),
                    trace_state=rng.choice(["", "k=v,a=b"]), name=rng.choice(["ml.predict", "ml.label", "other", ""]),
                    kind=rng.choice([0, 1, 2, 3, 4, 5, 9]), start_time_unix_nano=start, end_time_unix_nano=end)
                span.status.code = rng.choice([0, 1, 2, 7])
                span.status.message = rng.choice(["", "boom", "ünïcode\n"])
                _attributes(span.attributes, rng, rng.randint(0, 30), complex_ok)
                for _ in range(rng.choice([0, 0, 1, 3])):
                    event = span.events.add(time_unix_nano=rng.choice([0, now, rng.randint(0, 2**63 - 1)]),
                                            name=rng.choice(["exception", ""]))
                    _attributes(event.attributes, rng, rng.randint(0, 3), complex_ok)
                for _ in range(rng.choice([0, 0, 1, 2])):
                    link = span.links.add(trace_id=_id(rng, 16), span_id=_id(rng, 8), trace_state=rng.choice(["", "x=1"]))
                    _attributes(link.attributes, rng, rng.randint(0, 3), complex_ok)
    if not duplicates:
        for kvs in _attribute_lists(req):  # keep each key's last value only
            last = {kv.key: i for i, kv in enumerate(kvs)}
            keep = [kv for i, kv in enumerate(kvs) if last[kv.key] == i]
            del kvs[:]
            kvs.extend(keep)
    return req


def _attribute_lists(req):  # type: ignore[no-untyped-def]
    for rs in req.resource_spans:
        yield rs.resource.attributes
        for ss in rs.scope_spans:
            for span in ss.spans:
                yield span.attributes
                for x in list(span.events) + list(span.links):
                    yield x.attributes


def needs_python(req) -> bool:  # type: ignore[no-untyped-def]
    """An array / kvlist value or a duplicate key anywhere: the native path hands the request to Python."""
    return any(len({kv.key for kv in kvs}) != len(kvs)
               or any(kv.value.WhichOneof("value") in ("array_value", "kvlist_value") for kv in kvs)
               for kvs in _attribute_lists(req))


@pytest.fixture
def twin(store, store_dir):
    """A second database next to `store`'s, with the schema applied."""
    other = Store(f"chdb://{store_dir}", database=f"native{next(_db)}")
    schema.apply(other)
    yield other
    other.command(f"DROP DATABASE IF EXISTS `{other.database}`")


def _rows(st: Store, table: str = "otel_traces") -> list[str]:
    return sorted(r[0] for r in st.query(f"SELECT formatRowNoNewline('TSV', *) FROM {st.table(table)}"))


def _python_path(st: Store, requests: list) -> None:  # type: ignore[type-arg]
    rows = [row for req in requests for row in span_rows(req)]
    st.insert("otel_traces", rows, TRACE_COLUMNS)


def _native_path(st: Store, requests: list, per_request: bool = False) -> Ingest:  # type: ignore[type-arg]
    ingest = Ingest(st, linger_seconds=0.2 if not per_request else 0, native_traces=True)
    futures = []
    for req in requests:
        spans, nested = checked_spans(req)  # as the receiver does: a batch with no events or links reads none
        futures.append(ingest.submit_native(req.SerializeToString(), spans, nested))
        if per_request:
            futures[-1].result(60)
    for f in futures:
        f.result(60)
    ingest.close()
    return ingest


def test_native_rows_are_the_python_rows_byte_for_byte(store, twin):
    """Hundreds of varied spans, scalar values only: every row identical, all stored natively but those with duplicate keys."""
    requests = [varied_request(seed, duplicates=seed % 4 == 0) for seed in range(60)]
    _python_path(store, requests)
    ingest = _native_path(twin, requests)
    expected = _rows(store)
    assert len(expected) > 200
    assert _rows(twin) == expected
    spans = sum(len(ss.spans) for r in requests for rs in r.resource_spans for ss in rs.scope_spans)
    converted = [r for r in requests if needs_python(r) and any(ss.spans for rs in r.resource_spans for ss in rs.scope_spans)]
    assert 0 < len(converted) < len(requests) // 2
    assert ingest.stats.python_fallbacks == len(converted)
    assert ingest.stats.native_rows == spans - sum(len(ss.spans) for r in converted for rs in r.resource_spans
                                                  for ss in rs.scope_spans)
    assert _rows(twin, "ml_predictions") == _rows(store, "ml_predictions")
    assert _rows(twin, "ml_labels") == _rows(store, "ml_labels")


def test_batches_without_events_or_links_take_the_shorter_statement_and_store_the_same_rows(store, twin, monkeypatch):
    """Requests whose spans have no events or links (most prediction traffic) are inserted by the statement that
    neither reads nor renders them; a batch with one such span anywhere takes the full statement. Both store the
    Python path's rows byte for byte."""
    plain = [varied_request(seed) for seed in range(300, 340)]
    for req in plain:
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    span.ClearField("events")
                    span.ClearField("links")
    mixed = [varied_request(seed) for seed in range(340, 350)]
    assert not any(checked_spans(r)[1] for r in plain) and any(checked_spans(r)[1] for r in mixed)
    statements = []
    original = native.insert_sql
    monkeypatch.setattr(native, "insert_sql", lambda *a, **k: statements.append(k) or original(*a, **k))
    _python_path(store, plain + mixed)
    _native_path(twin, plain, per_request=True)
    assert statements and all(k == {"events_and_links": False} for k in statements)
    short = len(original("t", "/f", 1, events_and_links=False))
    assert short < 0.75 * len(original("t", "/f", 1))
    statements.clear()
    _native_path(twin, mixed)
    assert True in {k["events_and_links"] for k in statements}
    assert _rows(twin) == _rows(store)
    assert _rows(twin, "ml_predictions") == _rows(store, "ml_predictions")


def test_array_and_kvlist_values_take_the_python_path_exactly_once(store, twin):
    """A batch mixing plain requests and requests with array / kvlist values: each request stored once, identically."""
    requests = [varied_request(seed, complex_ok=seed % 3 == 0) for seed in range(100, 130)]
    converted = [needs_python(r) and any(ss.spans for rs in r.resource_spans for ss in rs.scope_spans) for r in requests]
    assert any(converted) and not all(converted)
    _python_path(store, requests)
    ingest = _native_path(twin, requests)
    assert _rows(twin) == _rows(store)
    assert ingest.stats.python_fallbacks == sum(converted)


def test_doubles_render_as_pdata(store):
    """Thousands of doubles (every magnitude, subnormals, any bit pattern) through the native path: pdata's strings."""
    rng = random.Random(5)
    values = DOUBLES + [_random_double(rng) for _ in range(5000)]
    req = trace_service_pb2.ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    for i in range(0, len(values), 100):
        span = spans.add(name="d", span_id=struct.pack(">Q", i + 1), start_time_unix_nano=time.time_ns())
        for j, v in enumerate(values[i:i + 100]):
            span.attributes.add(key=f"v{j:03d}").value.double_value = v
    ingest = _native_path(store, [req])
    assert ingest.stats.python_fallbacks == 0
    got = store.query(f"SELECT SpanId, mapValues(SpanAttributes) FROM {store.table('otel_traces')}")
    rendered = {int(span_id, 16) - 1: texts for span_id, texts in got}
    mismatches = [(v, rendered[i - i % 100][i % 100], format_double(v)) for i, v in enumerate(values)
                  if rendered[i - i % 100][i % 100] != format_double(v)]
    assert not mismatches[:20]


def test_native_path_refused_request_falls_back_whole(store):
    """A batch whose insert fails for one request: the others are committed natively, each request exactly once."""
    good = [varied_request(seed) for seed in range(200, 205)]
    ingest = Ingest(store, linger_seconds=0.2, native_traces=True)
    futures = [ingest.submit_native(r.SerializeToString(), sum(len(ss.spans) for rs in r.resource_spans
                                                                for ss in rs.scope_spans)) for r in good]
    # bytes that upb and ClickHouse read differently (a truncated message): refused natively, then by Python too
    bad = ingest.submit_native(b"\x0a\x05\x12\x03\x12\x01", 1)
    for f in futures:
        f.result(60)
    with pytest.raises(Exception):  # noqa: B017 - refused by both paths, whichever error the parser raises
        bad.result(60)
    ingest.close()
    expected = sum(len(ss.spans) for r in good for rs in r.resource_spans for ss in rs.scope_spans)
    assert store.query(f"SELECT count() FROM {store.table('otel_traces')}")[0][0] == expected == ingest.stats.rows
    assert ingest.stats.native_rows == expected


def test_batch_file_layout():
    """Length-delimited messages: varint length, then the message, for each request."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "b")
        assert native.write_batch(path, [b"abc", b"x" * 200]) == 1 + 3 + 2 + 200
        with open(path, "rb") as f:
            data = f.read()
        assert data[:4] == b"\x03abc" and data[4:6] == b"\xc8\x01"
