"""Attribute rendering, rule by rule, as the collector's clickhouse exporter (pdata AsString) does it."""

from __future__ import annotations

import math
import random
import time

import pytest
from modelwatch_analyzer.store.attribute_text import (
    as_string,
    attributes_map,
    format_double,
    go_json,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    KeyValue,
    KeyValueList,
)

NOW_NS = time.time_ns()


@pytest.mark.parametrize("value, expected", [
    (0.42, "0.42"), (1.0, "1"), (1e-7, "1e-7"), (-1e-7, "-1e-7"), (1.5e-7, "1.5e-7"), (1e-10, "1e-10"),
    (1.234e-300, "1.234e-300"), (1e-6, "0.000001"), (123456.789, "123456.789"), (1e20, "100000000000000000000"),
    (1e21, "1e+21"), (1.5e300, "1.5e+300"), (0.0, "0"), (-0.0, "-0"), (100.0, "100"), (-2.5, "-2.5"),
    (0.1 + 0.2, "0.30000000000000004"), (5e-324, "5e-324"), (1.7976931348623157e308, "1.7976931348623157e+308"),
    (math.nan, "json: unsupported value: NaN"), (math.inf, "json: unsupported value: +Inf"),
    (-math.inf, "json: unsupported value: -Inf"),
])
def test_doubles_render_as_go_json_numbers(value, expected):
    """A double renders in ES6 shortest form with Go's exponent cutoffs (1e-6, 1e21) and unpadded negative exponents."""
    assert format_double(value) == expected
    assert as_string(AnyValue(double_value=value)) == expected


def test_doubles_round_trip_exactly():
    """Every rendered finite double parses back to the same float (shortest round-trip digits)."""
    rng = random.Random(4)
    for _ in range(20_000):
        v = rng.uniform(-1, 1) * 10 ** rng.randint(-320, 308)
        assert float(format_double(v)) == v


def test_scalars_bytes_and_empty():
    """Ints in decimal, bools as true/false, strings verbatim, bytes as padded base64, an empty value as ''."""
    assert as_string(AnyValue(int_value=-42)) == "-42"
    assert as_string(AnyValue(int_value=2**63 - 1)) == "9223372036854775807"
    assert as_string(AnyValue(bool_value=True)) == "true"
    assert as_string(AnyValue(bool_value=False)) == "false"
    assert as_string(AnyValue(string_value="va'l\n\"ue ☃")) == "va'l\n\"ue ☃"
    assert as_string(AnyValue(bytes_value=b"\x00\xffab")) == "AP9hYg=="
    assert as_string(AnyValue()) == ""


def test_arrays_and_maps_render_as_go_json():
    """Arrays and maps are Go json.Marshal output: sorted keys, no spaces, HTML characters escaped."""
    arr = AnyValue(array_value=ArrayValue(values=[
        AnyValue(int_value=1), AnyValue(double_value=2.5), AnyValue(string_value="a<b>&c"), AnyValue(bool_value=True),
        AnyValue(), AnyValue(double_value=1e-7),
    ]))
    assert as_string(arr) == '[1,2.5,"a\\u003cb\\u003e\\u0026c",true,null,1e-7]'
    kv = AnyValue(kvlist_value=KeyValueList(values=[
        KeyValue(key="z", value=AnyValue(string_value="q\"\\\n\t\x01")),
        KeyValue(key="a", value=AnyValue(array_value=ArrayValue(values=[AnyValue(bytes_value=b"hi")]))),
    ]))
    assert as_string(kv) == '{"a":["aGk="],"z":"q\\"\\\\\\n\\t\\u0001"}'


def test_a_nan_inside_an_array_makes_the_exporter_store_an_empty_string():
    """Go's json.Marshal fails on NaN/Inf, and the exporter stores the empty string it got."""
    arr = AnyValue(array_value=ArrayValue(values=[AnyValue(double_value=1.0), AnyValue(double_value=math.nan)]))
    assert as_string(arr) == ""


def test_attributes_map_keeps_the_last_duplicate_key():
    """A repeated KeyValue becomes one map entry per key, the later value winning."""
    kvs = [KeyValue(key="k", value=AnyValue(int_value=1)), KeyValue(key="k", value=AnyValue(int_value=2)),
           KeyValue(key="x", value=AnyValue(double_value=0.5))]
    assert attributes_map(kvs) == {"k": "2", "x": "0.5"}


def test_go_json_escapes_line_separators_and_control_characters():
    """U+2028/U+2029 and control characters are escaped as Go does; other unicode passes through."""
    assert go_json("\u2028\u2029\b\f☃") == '"\\u2028\\u2029\\b\\f☃"'


def test_service_name_is_the_first_while_the_resource_map_keeps_the_last():
    """A resource with two service.name attributes: ServiceName is the first (the exporter's GetServiceName), the
    ResourceAttributes map holds the last, for spans, metric points and log records alike."""
    from modelwatch_analyzer.collector.otlp_rows import (
        LOG_COLUMNS,
        METRIC_COLUMNS,
        TRACE_COLUMNS,
        log_rows,
        metric_rows,
        span_rows,
    )
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    def resource(r):  # type: ignore[no-untyped-def]
        r.attributes.add(key="service.name").value.string_value = "first"
        r.attributes.add(key="service.name").value.string_value = "last"

    traces = trace_service_pb2.ExportTraceServiceRequest()
    rs = traces.resource_spans.add()
    resource(rs.resource)
    rs.scope_spans.add().spans.add(name="s", start_time_unix_nano=NOW_NS, end_time_unix_nano=NOW_NS + 1)
    metrics = metrics_service_pb2.ExportMetricsServiceRequest()
    rm = metrics.resource_metrics.add()
    resource(rm.resource)
    rm.scope_metrics.add().metrics.add(name="g").gauge.data_points.add(as_double=1.0, time_unix_nano=NOW_NS)
    logs = logs_service_pb2.ExportLogsServiceRequest()
    rl = logs.resource_logs.add()
    resource(rl.resource)
    rl.scope_logs.add().log_records.add(time_unix_nano=NOW_NS)
    rows = [(TRACE_COLUMNS, span_rows(traces)[0]), (METRIC_COLUMNS["otel_metrics_gauge"],
            metric_rows(metrics)["otel_metrics_gauge"][0]), (LOG_COLUMNS, log_rows(logs)[0])]
    for columns, row in rows:
        got = dict(zip(columns, row))
        assert got["ServiceName"] == "first" and got["ResourceAttributes"]["service.name"] == "last"
