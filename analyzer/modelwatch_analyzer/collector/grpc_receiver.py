"""OTLP/gRPC receiver (port 4317): the official TraceService / MetricsService / LogsService Export methods
(one handler per signal of :data:`~modelwatch_analyzer.collector.receiver.SIGNALS`).

Requests arrive as raw bytes and are decoded by the receiver, so that a
malformed payload is answered INVALID_ARGUMENT (a failing grpcio
deserializer would answer INTERNAL). gzip request compression is handled by
grpcio itself. With a certificate and key the port speaks TLS only
(``grpc.ssl_server_credentials``).

Overload: at most :data:`~modelwatch_analyzer.collector.receiver.MAX_CONCURRENT_REQUESTS`
requests are admitted at once (counted when grpcio hands a call over, so
queued calls count); the next ones are answered ``UNAVAILABLE`` with a
``google.rpc.RetryInfo`` detail, which OTLP exporters retry after that delay.
grpcio's own ``RESOURCE_EXHAUSTED`` (which exporters retry only with
RetryInfo, and grpcio sends none) is left as a memory bound at four times
that, which a burst does not reach: admission rejects far earlier.
"""

from __future__ import annotations

import threading
from concurrent import futures
from typing import Any, Callable, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from modelwatch_analyzer.collector.receiver import (
    MAX_CONCURRENT_REQUESTS,
    RETRY_AFTER_SECONDS,
    SIGNALS,
    Receiver,
    Rejected,
    Signal,
)

_CODES = {
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "unauthenticated": grpc.StatusCode.UNAUTHENTICATED,
    "too_large": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "unsupported": grpc.StatusCode.UNIMPLEMENTED,  # raised for HTTP media types only
    "unavailable": grpc.StatusCode.UNAVAILABLE,
}


def _handler(receiver: Receiver, signal: Signal) -> Any:
    def export(body: bytes, context: grpc.ServicerContext) -> Any:
        try:
            metadata = dict(context.invocation_metadata() or ())
            receiver.authorise(metadata.get("authorization"))
            receiver.export(signal, receiver.decode(signal, body), body)
        except Rejected as exc:
            if exc.code == "unavailable":
                _abort_retry_later(context, exc.message)  # raises
            context.abort(_CODES[exc.code], exc.message)
        return signal.response_type()

    return grpc.method_handlers_generic_handler(signal.service, {
        "Export": grpc.unary_unary_rpc_method_handler(
            export, request_deserializer=None, response_serializer=lambda m: m.SerializeToString()),
    })


def _abort_retry_later(context: grpc.ServicerContext, message: str) -> NoReturn:
    """End the call ``UNAVAILABLE`` with a ``RetryInfo`` of :data:`RETRY_AFTER_SECONDS` (the gRPC form of HTTP's
    503 + Retry-After)."""
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=RETRY_AFTER_SECONDS)))
    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message=message, details=[detail])
    context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
    context.abort(grpc.StatusCode.UNAVAILABLE, message)  # raises
    raise AssertionError("unreachable: ServicerContext.abort raises")


class Admission(grpc.ServerInterceptor):
    """At most `limit` calls admitted at once; the others are answered "retry later" at once."""

    def __init__(self, limit: int = MAX_CONCURRENT_REQUESTS) -> None:
        self.limit = limit
        self.admitted = 0
        self._lock = threading.Lock()

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        with self._lock:
            admit = self.admitted < self.limit
            if admit:
                self.admitted += 1
        if not admit:
            return grpc.unary_unary_rpc_method_handler(
                self._refuse, response_serializer=handler.response_serializer)
        inner = handler.unary_unary

        def admitted(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                return inner(request, context)
            finally:
                with self._lock:
                    self.admitted -= 1

        return grpc.unary_unary_rpc_method_handler(admitted, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)

    def _refuse(self, _request: Any, context: grpc.ServicerContext) -> Any:
        _abort_retry_later(context, f"{self.limit} concurrent requests being handled; retry later")


EXPORT_THREADS = 64
"""Requests handled at once. A handler thread mostly waits for its group commit, so many threads cost
little, and they let concurrent requests join one larger (cheaper per span) commit."""


def start(receiver: Receiver, host: str, port: int, workers: int = EXPORT_THREADS,
          tls: tuple[bytes, bytes] | None = None,
          max_concurrent_requests: int = MAX_CONCURRENT_REQUESTS) -> tuple[grpc.Server, int]:
    """Start serving; returns the server and the port bound (useful with port 0).

    With `tls`, a (PEM certificate chain, PEM private key) pair, the port takes TLS connections only.
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="otlp-grpc"),
        handlers=[_handler(receiver, s) for s in SIGNALS.values()],
        interceptors=[Admission(max_concurrent_requests)],
        options=[
            ("grpc.max_receive_message_length", receiver.max_request_bytes),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ],
        maximum_concurrent_rpcs=4 * max(max_concurrent_requests, workers),
    )
    address = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"  # IPv6 in brackets
    try:
        if tls is None:
            bound = server.add_insecure_port(address)
        else:
            cert, key = tls
            bound = server.add_secure_port(address, grpc.ssl_server_credentials([(key, cert)]))
    except RuntimeError:  # grpcio >= 1.60 raises where older versions returned 0
        bound = 0
    if bound == 0:
        raise OSError(f"cannot listen on {address} (gRPC): address in use or not on this machine")
    server.start()
    return server, bound
