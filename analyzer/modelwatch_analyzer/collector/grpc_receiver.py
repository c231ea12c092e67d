"""OTLP/gRPC receiver (port 4317): the official TraceService / MetricsService / LogsService Export methods
(one handler per signal of :data:`~modelwatch_analyzer.collector.receiver.SIGNALS`).

Requests arrive as raw bytes and are decoded by the receiver, so that a
malformed payload is answered INVALID_ARGUMENT (a failing grpcio
deserializer would answer INTERNAL). gzip request compression is handled by
grpcio itself. With a certificate and key the port speaks TLS only
(``grpc.ssl_server_credentials``).
"""

from __future__ import annotations

from concurrent import futures
from typing import Any

import grpc

from modelwatch_analyzer.collector.receiver import SIGNALS, Receiver, Rejected, Signal

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
            context.abort(_CODES[exc.code], exc.message)
        return signal.response_type()

    return grpc.method_handlers_generic_handler(signal.service, {
        "Export": grpc.unary_unary_rpc_method_handler(
            export, request_deserializer=None, response_serializer=lambda m: m.SerializeToString()),
    })


EXPORT_THREADS = 64
"""Requests handled at once. A handler thread mostly waits for its group commit, so many threads cost
little, and they let concurrent requests join one larger (cheaper per span) commit."""


def start(receiver: Receiver, host: str, port: int, workers: int = EXPORT_THREADS,
          tls: tuple[bytes, bytes] | None = None) -> tuple[grpc.Server, int]:
    """Start serving; returns the server and the port bound (useful with port 0).

    With `tls`, a (PEM certificate chain, PEM private key) pair, the port takes TLS connections only.
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="otlp-grpc"),
        handlers=[_handler(receiver, s) for s in SIGNALS.values()],
        options=[
            ("grpc.max_receive_message_length", receiver.max_request_bytes),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ],
        maximum_concurrent_rpcs=workers * 4,
    )
    if tls is None:
        bound = server.add_insecure_port(f"{host}:{port}")
    else:
        cert, key = tls
        bound = server.add_secure_port(f"{host}:{port}", grpc.ssl_server_credentials([(key, cert)]))
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port} (gRPC)")
    server.start()
    return server, bound
