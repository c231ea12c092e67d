"""What every OTLP receiver does, whatever the transport: decode, authorise, convert, commit.

A request is decoded whole (protobuf, or OTLP/JSON, which must be a JSON
object) and converted to rows before anything is queued, so a malformed
payload is refused with nothing stored; so is one whose row timestamps fall
outside the accepted range (see :func:`~.otlp_rows.row_time`: from 2000-01-01,
or from the signal's table retention before now when the store has one, to 7
days ahead), since the TTL would drop those rows after they were
acknowledged. A prediction or label span may be as old as its typed table's
retention (:class:`~.otlp_rows.SpanBounds`): its typed row is kept. The answer is sent only once the rows are committed (see
:mod:`modelwatch_analyzer.collector.ingest`); a request not committed within
``ack_timeout`` is withdrawn from the queue before it is refused, and one a
writer is already committing is answered with that commit's outcome, so a
retryable refusal always means nothing of the request was or will be stored.
Failures map to OTLP's status semantics:

=====================  ============================  ==================  =================
:class:`Rejected` code  meaning                       gRPC                HTTP
=====================  ============================  ==================  =================
``invalid``             malformed payload             INVALID_ARGUMENT    400
``unauthenticated``     bad/missing token             UNAUTHENTICATED     401
``too_large``           over the limit                RESOURCE_EXHAUSTED  413
``unsupported``         media type or encoding (HTTP)  UNIMPLEMENTED       415
``unavailable``         busy, or store down (retry)   UNAVAILABLE         503 + Retry-After
=====================  ============================  ==================  =================
"""

from __future__ import annotations

import base64
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any, Callable

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from modelwatch_analyzer.collector.ingest import Busy, Ingest, Tables
from modelwatch_analyzer.collector.otlp_rows import (
    EARLIEST_NS,
    METRIC_COLUMNS,
    SpanBounds,
    latest_ns,
    log_tables,
    metric_tables,
    ns,
    span_start,
    trace_tables,
)

DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024  # after decompression
RETRY_AFTER_SECONDS = 2
MAX_CONCURRENT_REQUESTS = 256
"""OTLP requests a port handles at once (queued, decoding, waiting for their commit); more are answered
"unavailable, retry after :data:`RETRY_AFTER_SECONDS`" (HTTP 503 + Retry-After, gRPC UNAVAILABLE + RetryInfo),
which every OTLP exporter retries."""


class Rejected(Exception):
    """A request refused; ``code`` is one of invalid, unauthenticated, too_large, unsupported, unavailable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Signal:
    name: str
    request_type: Any
    response_type: Any
    service: str  # the gRPC service's full name, from the official proto descriptor
    to_rows: Callable[[Any, Any], Tables]  # (request, earliest row timestamp accepted: ns, or SpanBounds for traces)
    tables: tuple[str, ...]  # the exporter tables its rows go to (their retention bounds the row timestamps)


def checked_spans(request: Any, earliest: int | SpanBounds = EARLIEST_NS) -> tuple[int, bool]:
    """The number of spans of a trace request, after checking what the native path cannot refuse on its own,
    and whether some span has events or links (the native statement renders those only when needed).

    Raises ValueError (the request is refused whole) for a start time out of
    :func:`~.otlp_rows.row_time`'s range or another timestamp beyond
    DateTime64(9)'s, exactly as :func:`span_rows` would.
    """
    n, nested = 0, False
    latest = latest_ns()
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            spans = scope_spans.spans
            n += len(spans)
            low = earliest.raw if isinstance(earliest, SpanBounds) else earliest
            for span in spans:
                start = span.start_time_unix_nano
                if not low <= start <= latest:
                    span_start(span, earliest, latest)  # raises, naming the field, unless the span's kind allows it
                ns(span.end_time_unix_nano)
                if span.events:
                    nested = True
                    for event in span.events:
                        ns(event.time_unix_nano)
                if span.links:
                    nested = True
    return n, nested


SIGNALS: dict[str, Signal] = {
    "traces": Signal("traces", trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse,
                     trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name, trace_tables, ("otel_traces",)),
    "metrics": Signal("metrics", metrics_service_pb2.ExportMetricsServiceRequest, metrics_service_pb2.ExportMetricsServiceResponse,
                      metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name, metric_tables,
                      tuple(METRIC_COLUMNS)),
    # logs always take the Python conversion path (the native path of export() is for traces only)
    "logs": Signal("logs", logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse,
                   logs_service_pb2.DESCRIPTOR.services_by_name["LogsService"].full_name, log_tables, ("otel_logs",)),
}

_HEX_ID_FIELDS = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON carries ids as hex; protobuf's JSON mapping expects base64 for bytes."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in _HEX_ID_FIELDS and isinstance(value, str):
                try:
                    value = base64.b64encode(bytes.fromhex(value)).decode("ascii")
                except ValueError:
                    raise Rejected("invalid", f"{key} is not hex: {value[:40]!r}") from None
            else:
                value = _hex_ids_to_base64(value)
            out[key] = value
        return out
    if isinstance(node, list):
        return [_hex_ids_to_base64(v) for v in node]
    return node


class Receiver:
    """Decode, authorise, convert and commit OTLP requests for every transport."""

    def __init__(self, ingest: Ingest, token: str | None = None, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                 ack_timeout: float = 60.0, retention_seconds: dict[str, float] | None = None) -> None:
        self.ingest = ingest
        self.token = token or None
        self.max_request_bytes = max_request_bytes
        self.ack_timeout = ack_timeout
        # per signal, the shortest retention of its tables: older rows would be dropped by the TTL at once
        self.retention_seconds = dict(retention_seconds or {})

    def earliest_ns(self, signal: Signal) -> int | SpanBounds:
        """The earliest row timestamp `signal`'s requests may carry now: 2000-01-01, or the retention before now;
        for traces, per kind of span (:class:`SpanBounds`: the typed tables' retentions, keys ``ml_predictions``
        and ``ml_labels`` of ``retention_seconds``)."""
        now = time.time_ns()

        def before(keep: float | None) -> int:
            return EARLIEST_NS if not keep else max(EARLIEST_NS, now - int(keep * 10**9))

        raw = before(self.retention_seconds.get(signal.name))
        if signal.name != "traces":
            return raw
        return SpanBounds(raw, before(self.retention_seconds.get("ml_predictions")),
                          before(self.retention_seconds.get("ml_labels")))

    def authorise(self, authorization: str | None) -> None:
        """Check an ``Authorization: Bearer <token>`` value when a token is configured."""
        if self.token is None:
            return
        expected = f"Bearer {self.token}"
        if not authorization or not hmac.compare_digest(authorization.encode(), expected.encode()):
            raise Rejected("unauthenticated", "missing or wrong bearer token")

    def decode(self, signal: Signal, body: bytes, json_body: bool = False) -> Any:
        if len(body) > self.max_request_bytes:
            raise Rejected("too_large", f"request of {len(body)} bytes exceeds {self.max_request_bytes}")
        request = signal.request_type()
        try:
            if json_body:
                parsed = json.loads(body)
                if not isinstance(parsed, dict):
                    raise Rejected("invalid", f"an OTLP/JSON {signal.name} request is a JSON object, "
                                              f"not {type(parsed).__name__}")
                json_format.ParseDict(_hex_ids_to_base64(parsed), request, ignore_unknown_fields=True)
            else:
                request.ParseFromString(body)
        except Rejected:
            raise
        except (DecodeError, json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
            raise Rejected("invalid", f"malformed OTLP {signal.name} payload: {str(exc)[:200]}") from None
        return request

    def export(self, signal: Signal, request: Any, body: bytes | None = None) -> None:
        """Convert and commit one decoded request; returns once its rows are durable.

        `body`, the protobuf bytes `request` was decoded from, lets a trace
        request take the native path (ClickHouse parses it) on the embedded store.
        """
        earliest = self.earliest_ns(signal)
        try:
            if body is not None and signal.name == "traces" and self.ingest.native:
                spans, nested = checked_spans(request, earliest)
                submit = lambda: self.ingest.submit_native(body, spans, nested)  # noqa: E731
            else:
                tables = signal.to_rows(request, earliest)
                submit = lambda: self.ingest.submit(tables)  # noqa: E731
        except (ValueError, TypeError, OverflowError, UnicodeError) as exc:
            raise Rejected("invalid", f"cannot store this {signal.name} payload: {str(exc)[:200]}") from None
        try:
            future = submit()
        except Busy as exc:
            raise Rejected("unavailable", f"busy ({exc}); retry later") from None
        try:
            future.result(timeout=self.ack_timeout)
            return
        except TimeoutError:
            if self.ingest.withdraw(future):  # still queued: out of the queue, it will never be stored
                raise Rejected("unavailable", f"not committed within {self.ack_timeout:g} s (withdrawn, nothing "
                                              "stored); retry later") from None
        except Exception as exc:
            raise Rejected("unavailable", f"store unavailable: {str(exc)[:200]}") from None
        try:  # a writer is committing it: answering now could refuse what gets stored, so its outcome is the answer
            future.result()
        except Exception as exc:
            raise Rejected("unavailable", f"store unavailable: {str(exc)[:200]}") from None
