"""OTLP logs to ``otel_logs`` rows, rule by rule, as the collector's clickhouse exporter writes them.

The rules follow contrib ``exporter/clickhouseexporter/exporter_logs.go`` (the version that detects the
``EventName`` column): timestamp, or observed timestamp when it is 0 (the receive time when both are: the
exporter's epoch would be dropped by the TTL); ids by ``TraceIDToHexOrEmptyString``; ``uint8`` flags and
severity number; ``ServiceName`` by ``GetServiceName`` (first ``service.name``, ``AsString``);
``Body().AsString()``; attribute maps by ``AsString``.
"""

from __future__ import annotations

import time

import pytest
from modelwatch_analyzer.collector.otlp_rows import LOG_COLUMNS, log_rows
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

T0 = 1_700_000_000_123_456_789


def _request(**record) -> logs_service_pb2.ExportLogsServiceRequest:
    req = logs_service_pb2.ExportLogsServiceRequest()
    rl = req.resource_logs.add(schema_url="https://opentelemetry.io/schemas/1.21.0")
    rl.resource.attributes.add(key="service.name").value.string_value = "scoring-api"
    rl.resource.attributes.add(key="host.cpus").value.int_value = 2
    sl = rl.scope_logs.add(schema_url="https://scope/1")
    sl.scope.name, sl.scope.version = "modelwatch.app", "1.2"
    sl.scope.attributes.add(key="lib.flag").value.bool_value = True
    sl.log_records.add(**record)
    return req


def _row(request) -> dict:
    rows = log_rows(request)
    assert len(rows) == 1
    return dict(zip(LOG_COLUMNS, rows[0]))


def test_columns_are_the_exporters_insert_columns():
    assert LOG_COLUMNS == (
        "Timestamp", "TraceId", "SpanId", "TraceFlags", "SeverityText", "SeverityNumber", "ServiceName", "Body",
        "ResourceSchemaUrl", "ResourceAttributes", "ScopeSchemaUrl", "ScopeName", "ScopeVersion", "ScopeAttributes",
        "LogAttributes", "EventName")


def test_a_full_record():
    req = _request(time_unix_nano=T0, observed_time_unix_nano=T0 + 5, severity_number=17, severity_text="ERROR",
                   trace_id=bytes.fromhex("5B8EFFF798038103D269B633813FC60C"), span_id=bytes.fromhex("EEE19B7EC3C1B174"),
                   flags=1, event_name="ml.alert")
    rec = req.resource_logs[0].scope_logs[0].log_records[0]
    rec.body.string_value = "model drifted"
    rec.attributes.add(key="ml.model.name").value.string_value = "fraud"
    rec.attributes.add(key="ml.psi").value.double_value = 0.42
    assert _row(req) == {
        "Timestamp": T0, "TraceId": "5b8efff798038103d269b633813fc60c", "SpanId": "eee19b7ec3c1b174",
        "TraceFlags": 1, "SeverityText": "ERROR", "SeverityNumber": 17, "ServiceName": "scoring-api",
        "Body": "model drifted", "ResourceSchemaUrl": "https://opentelemetry.io/schemas/1.21.0",
        "ResourceAttributes": {"service.name": "scoring-api", "host.cpus": "2"},
        "ScopeSchemaUrl": "https://scope/1", "ScopeName": "modelwatch.app", "ScopeVersion": "1.2",
        "ScopeAttributes": {"lib.flag": "true"}, "LogAttributes": {"ml.model.name": "fraud", "ml.psi": "0.42"},
        "EventName": "ml.alert",
    }


def test_timestamp_falls_back_to_observed_time_only_when_zero():
    assert _row(_request(time_unix_nano=0, observed_time_unix_nano=T0))["Timestamp"] == T0
    assert _row(_request(time_unix_nano=T0, observed_time_unix_nano=T0 + 99))["Timestamp"] == T0
    before = time.time_ns()
    # neither set: the receive time (the exporter's epoch would be dropped by the TTL at once)
    assert before <= _row(_request())["Timestamp"] <= time.time_ns()


def test_timestamp_beyond_datetime64_range_is_refused():
    with pytest.raises(ValueError):
        log_rows(_request(time_unix_nano=2**63))
    with pytest.raises(ValueError):
        log_rows(_request(observed_time_unix_nano=2**64 - 1))


def test_ids_lowercase_hex_and_empty_when_absent_or_zero():
    row = _row(_request(time_unix_nano=T0))
    assert (row["TraceId"], row["SpanId"]) == ("", "")
    row = _row(_request(time_unix_nano=T0, trace_id=bytes(16), span_id=bytes(8)))
    assert (row["TraceId"], row["SpanId"]) == ("", "")
    row = _row(_request(time_unix_nano=T0, trace_id=b"\xab" * 16, span_id=b"\x0c" * 8))
    assert (row["TraceId"], row["SpanId"]) == ("ab" * 16, "0c" * 8)


def test_flags_and_severity_number_are_the_exporters_uint8():
    row = _row(_request(flags=0x1FF, severity_number=9, severity_text="INFO"))
    assert (row["TraceFlags"], row["SeverityNumber"], row["SeverityText"]) == (0xFF, 9, "INFO")
    # an out-of-range enum value wraps as Go's uint8(int32) does
    assert _row(_request(severity_number=300))["SeverityNumber"] == 300 % 256
    assert _row(_request(severity_number=-1))["SeverityNumber"] == 255
    assert _row(_request())["SeverityNumber"] == 0 and _row(_request())["SeverityText"] == ""


@pytest.mark.parametrize("kind, value, expected", [
    ("string_value", "plain text", "plain text"),
    ("int_value", -42, "-42"),
    ("double_value", 1.0, "1"),
    ("double_value", 1e-7, "1e-7"),
    ("double_value", float("nan"), "json: unsupported value: NaN"),
    ("bool_value", False, "false"),
    ("bytes_value", b"\x00\xff", "AP8="),
])
def test_body_is_rendered_by_as_string(kind, value, expected):
    req = _request(time_unix_nano=T0)
    setattr(req.resource_logs[0].scope_logs[0].log_records[0].body, kind, value)
    assert _row(req)["Body"] == expected


def test_structured_bodies_are_go_json_and_unset_is_empty():
    req = _request(time_unix_nano=T0)
    body = req.resource_logs[0].scope_logs[0].log_records[0].body
    body.kvlist_value.values.add(key="z").value.string_value = "<b>"
    body.kvlist_value.values.add(key="a").value.array_value.values.add().double_value = 0.5
    assert _row(req)["Body"] == '{"a":[0.5],"z":"\\u003cb\\u003e"}'
    assert _row(_request(time_unix_nano=T0))["Body"] == ""


def test_service_name_is_the_first_service_name_as_string_per_resource():
    req = logs_service_pb2.ExportLogsServiceRequest()
    a = req.resource_logs.add()
    a.resource.attributes.add(key="service.name").value.int_value = 7  # not a string: AsString
    a.scope_logs.add().log_records.add(time_unix_nano=T0)
    b = req.resource_logs.add()  # no service.name: '' (not the previous resource's)
    b.scope_logs.add().log_records.add(time_unix_nano=T0)
    c = req.resource_logs.add()
    c.resource.attributes.add(key="service.name").value.string_value = "first"
    c.resource.attributes.add(key="service.name").value.string_value = "second"
    c.scope_logs.add().log_records.add(time_unix_nano=T0)
    services = [dict(zip(LOG_COLUMNS, r))["ServiceName"] for r in log_rows(req)]
    assert services == ["7", "", "first"]


def test_one_row_per_record_across_resources_and_scopes():
    req = logs_service_pb2.ExportLogsServiceRequest()
    for r in range(2):
        rl = req.resource_logs.add()
        for s in range(3):
            sl = rl.scope_logs.add()
            sl.scope.name = f"s{s}"
            for i in range(4):
                sl.log_records.add(time_unix_nano=T0 + i).body.string_value = f"{r}-{s}-{i}"
    rows = log_rows(req)
    assert [dict(zip(LOG_COLUMNS, row))["Body"] for row in rows] == [
        f"{r}-{s}-{i}" for r in range(2) for s in range(3) for i in range(4)]
    assert log_rows(logs_service_pb2.ExportLogsServiceRequest()) == []
