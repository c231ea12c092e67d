"""OTLP/HTTP receiver (port 4318): ``POST /v1/traces``, ``/v1/metrics`` and ``/v1/logs``, protobuf or JSON, gzip;
``GET /health`` for liveness checks (no token needed; it reveals only the pending row count);
``POST /v1/modelwatch/cli`` for the CLI's commands while this process owns the store (loopback
clients only; see :mod:`.remote`).

Served by uvicorn (an ASGI server) running a bare ASGI application on its
own thread and event loop. Bodies are read up to the size limit (413
beyond), gzip-decompressed with the same limit on the output, and handed to
the :class:`~modelwatch_analyzer.receiver.Receiver` on a worker thread, since
the answer waits for the commit. Errors carry a ``google.rpc.Status`` body
(JSON for JSON requests) as the OTLP specification asks; 503 comes with
``Retry-After``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn
from google.rpc import status_pb2

from . import remote
from .grpc_server import EXPORT_THREADS
from .receiver import RETRY_AFTER_SECONDS, SIGNALS, Receiver, Rejected

_PATHS = {"/v1/traces": SIGNALS["traces"], "/v1/metrics": SIGNALS["metrics"], "/v1/logs": SIGNALS["logs"]}
_HTTP = {"invalid": 400, "unauthenticated": 401, "too_large": 413, "unavailable": 503}
_GRPC_CODE = {"invalid": 3, "unauthenticated": 16, "too_large": 8, "unavailable": 14}


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


def make_app(receiver: Receiver) -> Any:
    """The ASGI application."""
    # export threads mostly wait for their group commit: many of them let concurrent requests share a commit
    exports = ThreadPoolExecutor(max_workers=EXPORT_THREADS, thread_name_prefix="otlp-http")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        json_body = headers.get("content-type", "").split(";")[0].strip() == "application/json"

        async def respond(status: int, body: bytes, extra: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
            ctype = b"application/json" if json_body else b"application/x-protobuf"
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode()), *extra]})
            await send({"type": "http.response.body", "body": body})

        async def reject(code: str, message: str) -> None:
            status = status_pb2.Status(code=_GRPC_CODE[code], message=message)
            body = json.dumps({"code": status.code, "message": message}).encode() if json_body else status.SerializeToString()
            extra = [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())] if code == "unavailable" else []
            await respond(_HTTP[code], body, extra)

        if scope["path"] == "/health" and scope["method"] == "GET":
            body = json.dumps({"status": "ok", "pending_rows": receiver.ingest.pending_rows}).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        if scope["path"] == remote.PATH and scope["method"] == "POST":
            await _cli(scope, receive, send, receiver, headers)
            return
        signal = _PATHS.get(scope["path"])
        if signal is None:
            await respond(404, b"")
            return
        if scope["method"] != "POST":
            await respond(405, b"")
            return
        limit = receiver.max_request_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await reject("too_large", f"body of {declared} bytes exceeds {limit}")
            return
        chunks, size = [], 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await reject("too_large", f"body exceeds {limit} bytes")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            receiver.authorise(headers.get("authorization"))
            if headers.get("content-encoding", "").lower() == "gzip":
                body = _gunzip(body, limit)
            request = receiver.decode(signal, body, json_body=json_body)
            await asyncio.get_running_loop().run_in_executor(exports, receiver.export, signal, request,
                                                            None if json_body else body)
        except _TooLarge:
            await reject("too_large", f"decompressed body exceeds {limit} bytes")
            return
        except Rejected as exc:
            await reject(exc.code, exc.message)
            return
        response = signal.response_type()
        await respond(200, b"{}" if json_body else response.SerializeToString())

    return app


_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


async def _cli(scope: dict[str, Any], receive: Any, send: Any, receiver: Receiver, headers: dict[str, str]) -> None:
    """Run a forwarded CLI command (see :mod:`.remote`): loopback only, token when set, small JSON body."""
    async def answer(status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    client = (scope.get("client") or ("", 0))[0]
    if client not in _LOOPBACK:
        await answer(403, {"error": "the CLI endpoint answers loopback clients only"})
        return
    try:
        receiver.authorise(headers.get("authorization"))
    except Rejected as exc:
        await answer(401, {"error": exc.message})
        return
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > 1 << 20:
            await answer(413, {"error": "too large"})
            return
        more = message.get("more_body", False)
    try:
        argv = json.loads(b"".join(chunks))["argv"]
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise ValueError("argv must be a list of strings")
    except (ValueError, KeyError, TypeError) as exc:
        await answer(400, {"error": f"bad request: {exc}"})
        return
    result = await asyncio.get_running_loop().run_in_executor(None, remote.execute, argv)
    await answer(200, result)


class HttpServer:
    """uvicorn on a thread of its own; :meth:`stop` lets in-flight requests finish."""

    def __init__(self, receiver: Receiver, host: str, port: int) -> None:
        config = uvicorn.Config(make_app(receiver), host=host, port=port, lifespan="off", log_level="warning",
                                access_log=False, timeout_graceful_shutdown=30, limit_concurrency=256)
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
