"""The OTLP payloads the probes send: traces, gauges and logs whose resource carries ``probe.case`` = a marker, as
protobuf or OTLP/JSON, and the hostile strings they are built with."""

from __future__ import annotations

import base64
import json
import random

from security_probe.common import NOW_NS


def pb_modules():
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    return trace_service_pb2, metrics_service_pb2, logs_service_pb2


def set_attr(attrs, key: str, value) -> None:
    v = attrs.add(key=key).value
    if isinstance(value, bool):
        v.bool_value = value
    elif isinstance(value, int):
        v.int_value = value
    elif isinstance(value, float):
        v.double_value = value
    else:
        v.string_value = value


def trace_request(rng: random.Random, marker: str, n: int, *, start: int | None = None, name: str = "ml.predict",
                  model: str = "probe", attrs: dict | None = None, service: str = "probe"):
    """n spans whose resource carries probe.case = marker; ml.prediction.id = marker~i (for ml_predictions)."""
    trace_pb2 = pb_modules()[0]
    req = trace_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    set_attr(rs.resource.attributes, "service.name", service)
    set_attr(rs.resource.attributes, "probe.case", marker)
    spans = rs.scope_spans.add().spans
    t = NOW_NS - rng.randrange(3600) * 10**9 if start is None else start
    for i in range(n):
        span = spans.add(name=name, trace_id=rng.randbytes(16), span_id=rng.randbytes(8),
                         start_time_unix_nano=t, end_time_unix_nano=min(t + 1000, 2**64 - 1))
        set_attr(span.attributes, "ml.model.name", model)
        set_attr(span.attributes, "ml.model.version", "1")
        set_attr(span.attributes, "ml.prediction.id", f"{marker}~{i}")
        set_attr(span.attributes, "ml.feature.x", rng.random())
        for k, v in (attrs or {}).items():
            set_attr(span.attributes, k, v)
    return req


def metric_request(rng: random.Random, marker: str, n: int, *, t: int | None = None, name: str = "probe.gauge"):
    metrics_pb2 = pb_modules()[1]
    req = metrics_pb2.ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    set_attr(rm.resource.attributes, "service.name", "probe")
    set_attr(rm.resource.attributes, "probe.case", marker)
    m = rm.scope_metrics.add().metrics.add(name=name)
    t = NOW_NS - rng.randrange(3600) * 10**9 if t is None else t
    for i in range(n):
        p = m.gauge.data_points.add(time_unix_nano=t, as_double=rng.random())
        set_attr(p.attributes, "i", i)
    return req


def log_request(rng: random.Random, marker: str, n: int, *, t: int | None = None, body: str = "probe"):
    logs_pb2 = pb_modules()[2]
    req = logs_pb2.ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    set_attr(rl.resource.attributes, "service.name", "probe")
    set_attr(rl.resource.attributes, "probe.case", marker)
    recs = rl.scope_logs.add().log_records
    t = NOW_NS - rng.randrange(3600) * 10**9 if t is None else t
    for i in range(n):
        r = recs.add(time_unix_nano=t, severity_text="INFO")
        r.body.string_value = body
    return req


def items(req) -> int:
    """Spans, gauge points or log records in a request."""
    if hasattr(req, "resource_spans"):
        return sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
    if hasattr(req, "resource_metrics"):
        return sum(len(m.gauge.data_points) for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics)
    return sum(len(sl.log_records) for rl in req.resource_logs for sl in rl.scope_logs)


def otlp_json(req) -> bytes:
    """OTLP/JSON: the protobuf JSON mapping, with trace and span ids in hex as OTLP wants them."""
    from google.protobuf import json_format

    def hexed(o):
        if isinstance(o, dict):
            return {k: (base64.b64decode(v).hex() if k in ("traceId", "spanId") and isinstance(v, str) else hexed(v))
                    for k, v in o.items()}
        if isinstance(o, list):
            return [hexed(x) for x in o]
        return o

    return json.dumps(hexed(json_format.MessageToDict(req))).encode()


SIGNAL_PATH = {"traces": "/v1/traces", "metrics": "/v1/metrics", "logs": "/v1/logs"}
SIGNAL_TABLE = {"traces": ["otel_traces"], "logs": ["otel_logs"],
                "metrics": [f"otel_metrics_{k}" for k in ("gauge", "sum", "histogram", "exponential_histogram", "summary")]}

HOSTILE = ["\x00\x01\x07\x08", "\x1b[2J\x1b[H", "\x1b]0;pwned\x07", "'; DROP TABLE otel_traces; --", "\" OR 1=1 --",
           "') UNION SELECT * FROM system.users --", "`\\'\"\\\\", "x" * 10240, "\u202e\u200bevil\u2066", "\r\nX-Injected: 1",
           "{{7*7}}${jndi:ldap://x}", "%s%n%x", "价格 💥", "\ud7ff\ue000", "a\tb\nc", "../../etc/passwd", ""]
INVALID_UTF8 = b"\xff\xfe\xc3(\x80\xed\xa0\x80"


def request_for(signal_name: str, rng: random.Random, marker: str, n: int, **kw):
    return {"traces": trace_request, "metrics": metric_request, "logs": log_request}[signal_name](rng, marker, n, **kw)
