"""The UI's HTTP server: read-only pages on a port of their own, behind the receiver's token.

* **Read-only.** ``GET`` and ``HEAD`` only (anything else: 405); no page writes to the store, and the
  store connection is the server's own (:meth:`Store.connect_again`), so pages never wait for ingest.
* **Auth.** With a token (the receiver's: ``--token-file``, ``MODELWATCH_TOKEN``), every page needs it:
  ``Authorization: Bearer <token>``, or once ``?token=<token>`` in the address, which sets an
  HttpOnly, SameSite=Strict cookie holding an HMAC of the token (never the token) and redirects to the
  address without it. Without a token the UI is open to whoever reaches the port: loopback by
  default, as the receiver.
* **Headers.** A strict Content-Security-Policy (scripts, styles and connections from this origin only, no
  inline script or style, no framing), ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
  no-referrer``, ``Cache-Control: no-store``. Pages escape every string from the store.
* **Static files**: the report's chart files (``report/static``: uPlot, MIT, its license beside it, and
  ``charts.js``) and ``ui.css``, from a fixed list; no path from the request reaches the file system.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.cookies import SimpleCookie
from importlib import resources
from typing import Any, Callable
from urllib.parse import parse_qs, quote, unquote, urlencode

import uvicorn

from modelwatch_analyzer.errors import ConfigError
from modelwatch_analyzer.store.client import Store
from modelwatch_analyzer.ui import pages

logger = logging.getLogger(__name__)

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
COOKIE = "modelwatch_ui"
STATIC = {
    "/static/charts.js": ("charts.js", "text/javascript; charset=utf-8"),
    "/static/ui.css": ("ui.css", "text/css; charset=utf-8"),
    "/static/vendor/uPlot.iife.min.js": ("vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    "/static/vendor/uPlot.min.css": ("vendor/uPlot.min.css", "text/css; charset=utf-8"),
    "/static/vendor/uPlot.LICENSE": ("vendor/uPlot.LICENSE", "text/plain; charset=utf-8"),
}
_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"), (b"cache-control", b"no-store")]


def _static(name: str) -> bytes:
    return resources.files("modelwatch_analyzer.report").joinpath("static", *name.split("/")).read_bytes()


class UiApp:
    """The ASGI application: routing, auth, headers; pages are rendered on worker threads."""

    def __init__(self, store: Store, token: str | None = None, trace_url: str | None = None) -> None:
        if trace_url is not None and not (trace_url.startswith(("http://", "https://")) and "{trace_id}" in trace_url):
            raise ConfigError(f"--trace-url {trace_url!r}: an http(s) address with {{trace_id}} in it, e.g. "
                              "http://localhost:16686/trace/{trace_id}")
        self.store = store
        self.token = token
        self.trace_url = trace_url
        self._cookie = hmac.new(token.encode(), b"modelwatch-ui", hashlib.sha256).hexdigest() if token else ""
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="ui")
        self._lock = threading.Lock()  # one page at a time on the UI's connection
        self._files = {path: (_static(name), kind) for path, (name, kind) in STATIC.items()}

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            return
        method = scope["method"]
        path = scope["path"]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        if method not in ("GET", "HEAD"):
            await self._send(send, 405, b"read-only: GET and HEAD only", "text/plain; charset=utf-8", method,
                             [(b"allow", b"GET, HEAD")])
            return
        if path in self._files:
            body, kind = self._files[path]
            await self._send(send, 200, body, kind, method, [(b"cache-control", b"max-age=3600")])
            return
        auth = self._authorised(scope, query)
        if auth == "redirect":
            # the address as it came (percent-encoded: no CR/LF can reach the header), on this host only
            rest = {k: v for k, v in query.items() if k != "token"}
            raw_path = (scope.get("raw_path") or quote(path).encode()).decode("latin-1").split("?", 1)[0]
            target = "/" + raw_path.lstrip("/") + ("?" + urlencode(rest, doseq=True) if rest else "")
            cookie = f"{COOKIE}={self._cookie}; HttpOnly; SameSite=Strict; Path=/"
            await self._send(send, 303, b"", "text/plain; charset=utf-8", method,
                             [(b"location", target.encode("latin-1", "replace")), (b"set-cookie", cookie.encode())])
            return
        if not auth:
            await self._send(send, 401, pages.unauthorised().encode(), "text/html; charset=utf-8", method,
                             [(b"www-authenticate", b'Bearer realm="modelwatch"')])
            return
        window = (query.get("window") or [None])[0]
        baseline = (query.get("baseline") or [None])[0]
        raw = (scope.get("raw_path") or path.encode()).decode("latin-1").split("?", 1)[0]  # names may hold "/"
        loop = asyncio.get_running_loop()
        try:
            status, html = await loop.run_in_executor(self._pool, self._render, raw, window, baseline)
        except Exception:  # a page must never take the server down; the log says what
            logger.exception("modelwatch ui: rendering %s failed", path)
            status, html = 500, pages.error_page(500, "this page could not be rendered; the server log says why")
        await self._send(send, status, html.encode(), "text/html; charset=utf-8", method)

    def _authorised(self, scope: dict[str, Any], query: dict[str, list[str]]) -> bool | str:
        if not self.token:
            return True
        headers = dict(scope.get("headers") or [])
        bearer = headers.get(b"authorization", b"").decode("latin-1")
        if bearer.startswith("Bearer ") and hmac.compare_digest(bearer[7:].encode(), self.token.encode()):
            return True
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get(b"cookie", b"").decode("latin-1"))
        except Exception:
            cookie = SimpleCookie()
        if COOKIE in cookie and hmac.compare_digest(cookie[COOKIE].value.encode(), self._cookie.encode()):
            return True
        given = (query.get("token") or [""])[0]
        if given and hmac.compare_digest(given.encode(), self.token.encode()):
            return "redirect"
        return False

    def _render(self, path: str, window: str | None, baseline: str | None = None) -> tuple[int, str]:
        try:
            parts = [unquote(p, errors="strict") for p in path.split("/")[1:]]
        except UnicodeDecodeError:
            return 404, pages.error_page(404, "no such page")
        with self._lock:
            try:
                if parts == [""]:
                    return 200, pages.overview(self.store)
                if len(parts) == 2 and parts[0] == "model":
                    return 200, pages.model(self.store, parts[1], window, baseline)
                if len(parts) == 4 and parts[0] == "model" and parts[2] == "feature":
                    return 200, pages.feature(self.store, parts[1], parts[3], window)
                if len(parts) == 4 and parts[0] == "model" and parts[2] == "alert":
                    return 200, pages.alert(self.store, parts[1], parts[3], self.trace_url)
            except pages.NotFound as exc:
                return 404, pages.error_page(404, str(exc))
        return 404, pages.error_page(404, "no such page")

    @staticmethod
    async def _send(send: Callable[..., Any], status: int, body: bytes, kind: str, method: str,
                    extra: list[tuple[bytes, bytes]] | None = None) -> None:
        headers = [(b"content-type", kind.encode()), (b"content-length", str(len(body)).encode())] + _HEADERS
        for name, value in extra or []:
            headers = [h for h in headers if h[0] != name] + [(name, value)]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


class UiServer:
    """uvicorn serving :class:`UiApp` on a thread of its own."""

    def __init__(self, store: Store, host: str = "127.0.0.1", port: int = 4320, token: str | None = None,
                 trace_url: str | None = None, tls_cert: str | None = None, tls_key: str | None = None) -> None:
        self.store = store.connect_again()
        self.app = UiApp(self.store, token, trace_url)
        self.host = host
        self.scheme = "https" if tls_cert else "http"
        config = uvicorn.Config(self.app, host=host, port=port, lifespan="off", log_level="warning", access_log=False,
                                ssl_certfile=tls_cert, ssl_keyfile=tls_key)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="ui-http", daemon=True)
        self.port = 0

    def start(self, timeout: float = 10.0) -> int:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"the UI server did not start on {self.host} (port in use?)")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self.port

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.app._pool.shutdown(wait=False)
        self.store.close()
