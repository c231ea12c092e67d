"""The demo's telemetry pipeline, all in this process: SDK -> OTLP/HTTP -> embedded receiver -> store.

:class:`Pipeline` starts the receiver (:class:`modelwatch_analyzer.service.serve.Server`
on free ports, the scheduled analyzer off) on a store, and a local
:class:`Webhook` that the demo's alerts are delivered to. Once the model is
trained, :meth:`Pipeline.connect_sdk` configures the modelwatch SDK to export
spans and metrics over OTLP/HTTP to that receiver; :meth:`Pipeline.close`
takes it all down again.

Simulated time. The SDK stamps a prediction's span with the wall clock of
the call, and has no argument to change it. The demo therefore installs one
span processor of its own, :class:`SimulatedClock`, between the SDK and the
OTLP batch exporter: it re-stamps each prediction span with the simulated
time of its request (same duration) before export, and passes every other
span (labels carry their own ``timestamp_ns``) through unchanged. Metrics
keep real time: they count the same predictions whatever their timestamps.
"""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any

import modelwatch
from modelwatch import contract as c
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from modelwatch_analyzer.demo.world import MODEL
from modelwatch_analyzer.service.serve import ServeOptions, Server
from modelwatch_analyzer.store.client import Store


class SimulatedClock:
    """A span processor that re-stamps prediction spans with the simulated time of their request.

    Set :attr:`now_ns` before each monitored call; the SDK hands a kept
    prediction's finished span to :meth:`on_end` synchronously, on the
    calling thread, and it goes on to `inner` (the OTLP batch processor) with
    its start moved to ``now_ns`` and its duration kept. Other spans pass
    through unchanged.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.now_ns = 0

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.inner.on_start(span, parent_context=parent_context)

    def on_end(self, span: Any) -> None:
        if span.name == c.PREDICTION_SPAN and self.now_ns:
            duration = (span.end_time or 0) - (span.start_time or 0)
            span = ReadableSpan(span.name, span.context, span.parent, span.resource, span.attributes, span.events,
                                span.links, span.kind, None, span.status, self.now_ns, self.now_ns + max(duration, 0),
                                span.instrumentation_scope)
        self.inner.on_end(span)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


class Webhook:
    """A local HTTP endpoint standing in for Slack / PagerDuty / a CI job: records what it receives."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    outer.bodies.append((self.path, json.loads(body or b"{}")))
                except ValueError:
                    outer.bodies.append((self.path, {}))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, name="modelwatch-demo-webhook", daemon=True).start()

    def received(self, path: str) -> int:
        """How many requests arrived on `path` (``/alerts``, ``/retrain``)."""
        return sum(1 for p, _ in self.bodies if p == path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Pipeline:
    """The receiver on `url`, the local webhook, and (after :meth:`connect_sdk`) the SDK exporting to them."""

    def __init__(self, url: str, database: str | None) -> None:
        self.server = Server(ServeOptions(url=url, database=database, grpc_port=0, http_port=0, analyzer=False))
        try:
            self.webhook = Webhook()
        except BaseException:
            self.server.stop()
            raise
        self.clock: SimulatedClock | None = None
        self.telemetry: Any = None

    @property
    def store(self) -> Store:
        return self.server.store

    def connect_sdk(self) -> SimulatedClock:
        """Configure the SDK (not globally) to export over OTLP/HTTP to the receiver, through the simulated clock."""
        base = f"http://127.0.0.1:{self.server.http_port}"
        self.clock = SimulatedClock(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces"),
                                                       max_queue_size=65_536, max_export_batch_size=2048))
        self.telemetry = modelwatch.configure(span_processor=self.clock, metric_exporter=OTLPMetricExporter(
            endpoint=f"{base}/v1/metrics"), metric_export_interval_millis=3_600_000, set_global=False,
            service_name="credit-api")
        return self.clock

    def shutdown_sdk(self) -> None:
        """Shut the SDK down: flushes spans and the metrics (the full-population counters) to the receiver."""
        if self.telemetry is not None:
            self.telemetry.shutdown()
            self.telemetry = None

    def stored_predictions(self) -> int:
        """Prediction spans of the demo's model that reached ``ml_predictions``."""
        store = self.store
        return store.query(f"SELECT count() FROM {store.table('ml_predictions')} WHERE ModelName = {{m:String}}",
                           {"m": MODEL})[0][0]

    def close(self) -> None:
        """SDK, webhook, receiver, in that order (the receiver commits what it holds and closes the store)."""
        self.shutdown_sdk()
        self.webhook.close()
        self.server.stop()
