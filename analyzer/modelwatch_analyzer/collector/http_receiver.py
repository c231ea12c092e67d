"""OTLP/HTTP receiver (port 4318): ``POST /v1/traces``, ``/v1/metrics`` and ``/v1/logs``, protobuf or JSON, gzip;
``GET /health`` for liveness checks (no token needed; it reveals only the pending row count);
``POST /v1/modelwatch/cli`` for the CLI's commands while this process owns the store (the local
user only; see :mod:`.cli_endpoint`).

Served by uvicorn (an ASGI server) running a bare ASGI application on its
own thread and event loop, over TLS when given a certificate and key. At
most ``max_concurrent_requests`` OTLP requests are handled at once; beyond,
503 with ``Retry-After`` (the limit is the application's, so that answer
carries a Status body too). Bodies are read up to the size limit (413
beyond). ``Content-Type`` must be ``application/x-protobuf`` or
``application/json`` (parameters allowed, any case; anything else, or none:
415), ``Content-Encoding`` gzip (whole members up to their trailer, nothing
after: else 400) or none / identity (anything else: 415); gzip is
decompressed with the same limit on the output. The body is handed to the
:class:`~modelwatch_analyzer.collector.receiver.Receiver` on a worker thread, since
the answer waits for the commit. Errors carry a ``google.rpc.Status`` body
as the OTLP specification asks, in the request's encoding (JSON when the
media type is not one of the two); 503 comes with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import uvicorn
from google.rpc import status_pb2

from modelwatch_analyzer.collector import cli_endpoint
from modelwatch_analyzer.collector.grpc_receiver import EXPORT_THREADS
from modelwatch_analyzer.collector.receiver import (
    MAX_CONCURRENT_REQUESTS,
    RETRY_AFTER_SECONDS,
    SIGNALS,
    Receiver,
    Rejected,
)

_PATHS = {"/v1/traces": SIGNALS["traces"], "/v1/metrics": SIGNALS["metrics"], "/v1/logs": SIGNALS["logs"]}
_HTTP = {"invalid": 400, "unauthenticated": 401, "too_large": 413, "unsupported": 415, "unavailable": 503}
_GRPC_CODE = {"invalid": 3, "unauthenticated": 16, "too_large": 8, "unsupported": 12, "unavailable": 14}


class _TooLarge(Exception):
    pass


_GZIP_MAGIC = b"\x1f\x8b"


def _gunzip(body: bytes, limit: int) -> bytes:
    """The decompressed body, at most `limit` bytes (:class:`_TooLarge` beyond).

    Every gzip member must be whole, up to its end-of-stream and checked
    trailer, and the body must hold nothing else: several members are read
    one after the other (as ``gzip -d`` does), anything else after a member,
    or a body cut short (even after a full flush, whose bytes do inflate) is
    refused as invalid.
    """
    out: list[bytes] = []
    size, data = 0, body
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            chunk = inflater.decompress(data, limit - size + 1)
        except zlib.error as exc:
            raise Rejected("invalid", f"bad gzip body: {exc}") from None
        size += len(chunk)
        if size > limit or inflater.unconsumed_tail:
            raise _TooLarge()
        if not inflater.eof:
            raise Rejected("invalid", "truncated gzip body: the stream ends before its end-of-stream marker and trailer")
        out.append(chunk)
        data = inflater.unused_data
        if not data:
            return b"".join(out)
        if not data.startswith(_GZIP_MAGIC):
            raise Rejected("invalid", f"bad gzip body: {len(data)} bytes after the end of the gzip stream")


PROTOBUF, JSON = "application/x-protobuf", "application/json"
_IDENTITY = ("", "identity")
_GZIP = ("gzip", "x-gzip")

class _Reply:
    """Answers to one request, in the request's encoding (protobuf, else JSON)."""

    def __init__(self, send: Any, reply_json: bool) -> None:
        self.send, self.json = send, reply_json

    async def respond(self, status: int, body: bytes, extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
        ctype = JSON.encode() if self.json else PROTOBUF.encode()
        await self.send({"type": "http.response.start", "status": status,
                         "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode()), *extra]})
        await self.send({"type": "http.response.body", "body": body})

    async def reject(self, code: str, message: str) -> None:
        """An OTLP error: its HTTP status, a ``google.rpc.Status`` body, and Retry-After when retryable."""
        status = status_pb2.Status(code=_GRPC_CODE[code], message=message)
        body = json.dumps({"code": status.code, "message": message}).encode() if self.json else status.SerializeToString()
        extra = [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())] if code == "unavailable" else []
        await self.respond(_HTTP[code], body, extra)


class OtlpApp:
    """The ASGI application: ``POST /v1/{traces,metrics,logs}``, ``GET /health`` and the CLI endpoint."""

    def __init__(self, receiver: Receiver, max_concurrent_requests: int = MAX_CONCURRENT_REQUESTS) -> None:
        self.receiver = receiver
        self.max_concurrent_requests = max_concurrent_requests
        # export threads mostly wait for their group commit: many of them let concurrent requests share a commit
        self.exports = ThreadPoolExecutor(max_workers=EXPORT_THREADS, thread_name_prefix="otlp-http")
        self.in_flight = 0  # OTLP requests being handled; the event loop is one thread, so no lock

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        media = headers.get("content-type", "").split(";")[0].strip().lower()  # media types are case-insensitive
        reply = _Reply(send, reply_json=media != PROTOBUF)  # the request's encoding; JSON when it is neither
        if scope["path"] == "/health" and scope["method"] == "GET":
            body = json.dumps({"status": "ok", "pending_rows": self.receiver.ingest.pending_rows}).encode()
            await _Reply(send, reply_json=True).respond(200, body)
            return
        if scope["path"] == cli_endpoint.PATH and scope["method"] == "POST":
            await cli_endpoint.handle(scope, receive, send, self.receiver, headers)
            return
        signal = _PATHS.get(scope["path"])
        if signal is None:
            await reply.respond(404, b"")
            return
        if scope["method"] != "POST":
            await reply.respond(405, b"")
            return
        if self.in_flight >= self.max_concurrent_requests:
            await reply.reject("unavailable", f"{self.in_flight} concurrent requests being handled; retry later")
            return
        self.in_flight += 1
        try:
            await self._otlp(signal, headers, media, receive, reply)
        finally:
            self.in_flight -= 1

    async def _otlp(self, signal: Any, headers: dict[str, str], media: str, receive: Any, reply: _Reply) -> None:
        """One OTLP export request: read the body (size-limited), check it, decode, commit, answer."""
        limit = self.receiver.max_request_bytes
        json_body = media == JSON
        try:
            body = await _read_body(headers, receive, limit)
            if body is None:  # the client went away
                return
            self.receiver.authorise(headers.get("authorization"))
            body = _decoded(body, media, headers, limit)
            request = self.receiver.decode(signal, body, json_body=json_body)
            await asyncio.get_running_loop().run_in_executor(self.exports, self.receiver.export, signal, request,
                                                            None if json_body else body)
        except _TooLarge:
            await reply.reject("too_large", f"decompressed body exceeds {limit} bytes")
            return
        except Rejected as exc:
            await reply.reject(exc.code, exc.message)
            return
        response = signal.response_type()
        await reply.respond(200, b"{}" if json_body else response.SerializeToString())


async def _read_body(headers: dict[str, str], receive: Any, limit: int) -> bytes | None:
    """The request body, at most `limit` bytes (:class:`Rejected` "too_large" beyond); None when the client left."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Rejected("too_large", f"body of {declared} bytes exceeds {limit}")
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Rejected("too_large", f"body exceeds {limit} bytes")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _decoded(body: bytes, media: str, headers: dict[str, str], limit: int) -> bytes:
    """The body as OTLP bytes: its media type checked, gzip undone (at most `limit` bytes, checked to its end);
    :class:`Rejected` "unsupported" for other media types and encodings."""
    if media not in (PROTOBUF, JSON):
        shown = repr(media) if media else "none"
        raise Rejected("unsupported", f"unsupported Content-Type {shown}: OTLP/HTTP takes {PROTOBUF} or {JSON}")
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding in _GZIP:
        return _gunzip(body, limit)
    if encoding not in _IDENTITY:
        raise Rejected("unsupported", f"unsupported Content-Encoding {encoding!r}: send gzip, or no encoding")
    return body


class HttpServer:
    """uvicorn on a thread of its own; :meth:`stop` lets in-flight requests finish.

    With `tls_cert` and `tls_key` (PEM files) it serves https only. The
    concurrency limit is the application's (`max_concurrent_requests`), not
    uvicorn's, whose 503 carries neither Retry-After nor a Status body.
    """

    def __init__(self, receiver: Receiver, host: str, port: int,
                 max_concurrent_requests: int = MAX_CONCURRENT_REQUESTS,
                 tls_cert: str | None = None, tls_key: str | None = None) -> None:
        config = uvicorn.Config(OtlpApp(receiver, max_concurrent_requests), host=host, port=port, lifespan="off",
                                log_level="warning", access_log=False, timeout_graceful_shutdown=30,
                                ssl_certfile=tls_cert, ssl_keyfile=tls_key)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="otlp-http", daemon=True)

    def start(self, timeout: float = 10.0) -> int:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise OSError("the OTLP/HTTP server did not start (port in use?)")
            time.sleep(0.01)
        return self.server.servers[0].sockets[0].getsockname()[1]

    def stop(self, timeout: float = 30.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
