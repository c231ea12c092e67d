"""``modelwatch serve``: the embedded collector side in one process.

It opens the store (the single owner of an embedded chDB directory),
applies the schema, types the raw spans an interrupted commit left without
their typed rows (:mod:`modelwatch_analyzer.store.consistency`), and receives OTLP on gRPC (4317) and HTTP (4318), bound
to 127.0.0.1 unless told otherwise, optionally behind a bearer token
(``--token-file``, ``MODELWATCH_TOKEN``, or ``--token``, which other users
see in ``ps``), and over TLS on both ports when given a certificate and its
key (https, secure gRPC; the two go together, checked before the store is
opened). Bound to an address other than loopback without a token, it
says so on stderr with a WARNING line: anyone who can reach the port can then
write into the store. On SIGTERM or Ctrl-C it stops accepting, lets
in-flight requests finish, commits everything pending and closes the store.

It serves the read-only web UI on its own port (4320 from the command line; :mod:`modelwatch_analyzer.ui`),
bound like the receiver and behind the same token, and prints its address.

On an embedded store it also answers the CLI's commands for the local user
(:mod:`.cli_endpoint`), with a secret drawn per run and kept in a file only
that user can read (:func:`.lockfile.write_lock`).

With ``--config`` (or by default, for every model that has a baseline) it
also hosts the scheduled analyzer (:mod:`modelwatch_analyzer.service.scheduler`) on the same store: an
embedded chDB directory has one owner, so the analyzer lives here.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import signal
import ssl
import sys
import threading
from dataclasses import dataclass

from modelwatch_analyzer.collector import cli_endpoint
from modelwatch_analyzer.collector import grpc_receiver as grpc_server
from modelwatch_analyzer.collector.http_receiver import HttpServer
from modelwatch_analyzer.collector.ingest import Ingest
from modelwatch_analyzer.collector.receiver import (
    DEFAULT_MAX_REQUEST_BYTES,
    SIGNALS,
    Receiver,
)
from modelwatch_analyzer.errors import ConfigError
from modelwatch_analyzer.store import consistency, lockfile, schema
from modelwatch_analyzer.store.client import Store

MODELWATCH_TOKEN = "MODELWATCH_TOKEN"
"""Bearer token every OTLP request must carry (``Authorization: Bearer <token>``); unset: no token."""


@dataclass
class ServeOptions:
    url: str | None = None
    database: str | None = None
    host: str = "127.0.0.1"
    grpc_port: int = 4317
    http_port: int = 4318
    token: str | None = None
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    config: str | None = None  # the analyzer's TOML config
    analyzer: bool = True  # run the scheduled analyzer in this process
    tls_cert: str | None = None  # PEM certificate (chain): OTLP over TLS on both ports, with tls_key
    tls_key: str | None = None  # PEM private key of tls_cert
    commands: cli_endpoint.Commands | None = None  # answers the CLI's commands (embedded store); None: no endpoint
    ui_port: int | None = None  # the read-only web UI's port (the CLI's default: 4320); None: no UI
    trace_url: str | None = None  # the UI's link to a trace, with {trace_id} (Jaeger, Grafana Tempo, ...)


def _tls(options: ServeOptions) -> tuple[bytes, bytes] | None:
    """The (certificate, key) PEM bytes, checked to load as a pair; None without TLS. ConfigError when only one
    is given, a file cannot be read, or they are not a matching certificate and key."""
    if not options.tls_cert and not options.tls_key:
        return None
    if not (options.tls_cert and options.tls_key):
        raise ConfigError("--tls-cert and --tls-key go together: give both (PEM files), or neither")
    pems = []
    for what, path in (("--tls-cert", options.tls_cert), ("--tls-key", options.tls_key)):
        try:
            with open(path, "rb") as f:
                pems.append(f.read())
        except OSError as exc:
            raise ConfigError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(options.tls_cert, options.tls_key)
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"--tls-cert {options.tls_cert} / --tls-key {options.tls_key}: not a PEM certificate "
                          f"and its private key ({exc})") from None
    return pems[0], pems[1]


class Server:
    """The running receiver: store, ingest, gRPC and HTTP servers."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        for name, port in (("grpc_port", options.grpc_port), ("http_port", options.http_port),
                           ("ui_port", options.ui_port if options.ui_port is not None else 0)):
            if not 0 <= port <= 65535:  # grpcio would listen on port % 65536
                raise ConfigError(f"{name} {port} is not a port (0 to 65535; 0 picks a free one)")
        self.tls = _tls(options)  # before the store is opened: a bad option opens nothing
        self.store = Store(options.url, database=options.database)
        schema.apply(self.store)
        self.repaired: list[consistency.Gap] = []
        if self.store.embedded:  # nothing else writes here: type what a kill -9 mid-commit left untyped
            self.repaired = consistency.repair(self.store)
        self.ingest = Ingest(self.store)
        token = token_of(options)
        self.receiver = Receiver(self.ingest, token=token, max_request_bytes=options.max_request_bytes,
                                 retention_seconds=_retention(self.store))
        cli_secret = secrets.token_urlsafe(32)
        if self.store.embedded and options.commands is not None:  # the CLI's commands, for the local user
            cli_endpoint.enable(self.receiver, cli_secret, self.store.url, self.store.database, options.commands)
        self.grpc, self.grpc_port = grpc_server.start(self.receiver, options.host, options.grpc_port, tls=self.tls)
        self.http = HttpServer(self.receiver, options.host, options.http_port,
                               tls_cert=options.tls_cert if self.tls else None,
                               tls_key=options.tls_key if self.tls else None)
        self.http_port = self.http.start()
        self.ui = None
        self.ui_port = 0
        if options.ui_port is not None:
            from modelwatch_analyzer.ui.server import UiServer

            self.ui = UiServer(self.store, options.host, options.ui_port, token=token, trace_url=options.trace_url,
                               tls_cert=options.tls_cert if self.tls else None, tls_key=options.tls_key if self.tls else None)
            self.ui_port = self.ui.start()
        self._stopped = threading.Event()
        if self.store.embedded:  # the CLI finds us here while we own the directory (store/lockfile.py)
            lockfile.write_lock(self.store.location, local_url(self.scheme, options.host, self.http_port), cli_secret,
                              options.tls_cert if self.tls else None)
        self.analyzer = None
        if options.analyzer:
            from modelwatch_analyzer.service import config as analyzer_config
            from modelwatch_analyzer.service.scheduler import AnalyzerService

            cfg = analyzer_config.load(options.config)
            emitter = None
            if cfg.emit and os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
                from modelwatch_analyzer.outputs.metrics import Emitter

                emitter = Emitter()
            self.analyzer = AnalyzerService(self.store, cfg, emitter).start()

    @property
    def scheme(self) -> str:
        """The OTLP/HTTP port's URL scheme."""
        return "https" if self.tls else "http"

    def stop(self, grace: float = 10.0) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.ui is not None:
            self.ui.stop()
        if self.analyzer is not None:
            self.analyzer.stop(grace)
        done = self.grpc.stop(grace)
        self.http.stop(grace)
        done.wait(grace)
        self.ingest.close()
        if self.store.embedded:
            lockfile.remove_lock(self.store.location)
            cli_endpoint.disable(self.receiver)
        self.store.close()


def local_url(scheme: str, host: str, port: int) -> str:
    """The URL a local client reaches a server bound to `host`:`port` at: a wildcard address (``0.0.0.0``, ``::``,
    empty) by 127.0.0.1, an IPv6 address in brackets."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"{scheme}://{_bracketed(host)}:{port}"


def _bracketed(host: str) -> str:
    """`host` as it stands before ``:port``: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def token_of(options: ServeOptions) -> str | None:
    """The bearer token: the options' (from --token or --token-file), else ``MODELWATCH_TOKEN``; None for none."""
    return (options.token if options.token is not None else os.environ.get(MODELWATCH_TOKEN)) or None


def loopback(host: str) -> bool:
    """Whether binding `host` listens on this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _retention(store: Store) -> dict[str, float]:
    """Per signal, the shortest retention of its tables (row timestamps older than that are refused); and the
    typed tables' own, which bound prediction and label spans (see :class:`~.otlp_rows.SpanBounds`)."""
    out = {}
    for name, kind in SIGNALS.items():
        kept = [r for r in (schema.retention_seconds(store, t) for t in kind.tables) if r]
        if kept:
            out[name] = min(kept)
    for table in ("ml_predictions", "ml_labels"):
        kept = schema.retention_seconds(store, table)
        if kept:
            out[table] = kept
    return out


def run(options: ServeOptions) -> int:
    if not loopback(options.host) and not token_of(options):
        print(f"modelwatch serve: WARNING: listening on {options.host} without a token: anyone who can reach "
              "this machine can write into the store (and read it in the web UI). Set a token with --token-file FILE "
              "or MODELWATCH_TOKEN.",
              file=sys.stderr, flush=True)
    server = Server(options)
    o = options
    tls = " (TLS)" if server.tls else ""
    print(f"modelwatch serve: OTLP gRPC on {_bracketed(o.host)}:{server.grpc_port}{tls}, "
          f"OTLP HTTP on {server.scheme}://{_bracketed(o.host)}:{server.http_port} "
          f"(POST /v1/traces, /v1/metrics); store {server.store.location} (database {server.store.database})"
          + ("; bearer token required" if server.receiver.token else ""), flush=True)
    if server.ui is not None:
        print(f"modelwatch serve: web UI on {local_url(server.scheme, o.host, server.ui_port)}/ (read-only"
              + ("; open it once with ?token=<the token> in the address" if server.receiver.token else "") + ")",
              flush=True)
    for gap in server.repaired:
        print(f"modelwatch serve: typed {gap.missing} {gap.table} rows of {gap.day} that an interrupted commit "
              "had left in otel_traces only", flush=True)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.wait(0.5):
        pass
    print("modelwatch serve: stopping, committing what is pending", flush=True)
    server.stop()
    st = server.ingest.stats
    print(f"modelwatch serve: stopped ({st.requests} requests, {st.rows} rows in {st.batches} batches, "
          f"{st.commit_seconds:.2f} s committing; {st.native_rows} rows parsed by ClickHouse, "
          f"{st.python_fallbacks} requests converted in Python)", flush=True)
    return 0

