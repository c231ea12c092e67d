"""The OTel pipeline: ``modelwatch.configure()`` sets up tracer and meter providers with OTLP exporters, in one call.

Honours the standard variables: ``OTEL_SDK_DISABLED``, ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_EXPORTER_OTLP_PROTOCOL`` (and its
``_TRACES_`` / ``_METRICS_`` variants: ``grpc`` or ``http/protobuf``, the
default), ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``_HEADERS``, ``_TIMEOUT``,
``_COMPRESSION`` (read by the exporters themselves), ``OTEL_BSP_*`` (span
queue size and batching) and ``OTEL_METRIC_EXPORT_INTERVAL``.

Spans go through :class:`~modelwatch.export.CountingBatchSpanProcessor`: a
bounded queue sized for bursts (``max_queue_size=``, else
``OTEL_BSP_MAX_QUEUE_SIZE``, else 65,536 spans) whose overflow, and whatever
the exporter fails to send, is counted in ``ml.spans.dropped``, never
blocking the inference thread. Memory stays bounded when the collector is
unreachable; metrics are aggregates whose size does not grow with traffic.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from . import _safety, metric_export, metrics, spans
from .config import sdk_disabled
from .contract import METRIC_SDK_MODELS
from .errors import ConfigurationError
from .version import __version__

OTEL_EXPORTER_OTLP_PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
"""``grpc`` or ``http/protobuf`` (the default); ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` and
``OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`` take precedence for their signal."""
PROTOCOLS = ("grpc", "http/protobuf")
DEFAULT_PROTOCOL = "http/protobuf"


@dataclass
class Telemetry:
    """What :func:`configure` set up; ``shutdown()`` flushes and stops it."""

    tracer_provider: Any = None
    meter_provider: Any = None
    disabled: bool = False
    span_processor: Any = None  # the processor configure() added to the tracer provider

    def force_flush(self, timeout_millis: int = 10_000) -> bool:
        ok = True
        for p in (self.tracer_provider, self.meter_provider):
            if p is not None:
                ok = bool(p.force_flush(timeout_millis)) and ok
        return ok

    def shutdown(self) -> None:
        global _current
        for p in (self.tracer_provider, self.meter_provider):
            if p is not None:
                p.shutdown()
        with _lock:
            if _current is self:
                _current = None
                spans.set_configured_provider(None)


_lock = threading.Lock()
_current: Telemetry | None = None


def otlp_protocol(signal: str, protocol: str | None = None) -> str:
    """The OTLP protocol of one signal (``"traces"`` or ``"metrics"``): `protocol` if given, else from the environment.

    The environment is ``OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL``, then
    ``OTEL_EXPORTER_OTLP_PROTOCOL``, then ``http/protobuf``. A bad `protocol`
    raises :class:`~modelwatch.errors.ConfigurationError` (a ``ValueError``);
    a bad environment value logs a warning and falls back to ``http/protobuf``.
    """
    if protocol is not None:
        if protocol not in PROTOCOLS:
            raise ConfigurationError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        return protocol
    raw = (os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL") or os.environ.get(OTEL_EXPORTER_OTLP_PROTOCOL)
           or DEFAULT_PROTOCOL)
    if raw not in PROTOCOLS:
        _safety.logger.warning("modelwatch: unsupported OTLP protocol %r; using %s", raw, DEFAULT_PROTOCOL)
        return DEFAULT_PROTOCOL
    return raw


def _span_exporter(protocol: str) -> Any:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # type: ignore[assignment]
    return OTLPSpanExporter()


def _metric_exporter(protocol: str) -> Any:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter  # type: ignore[assignment]
    return OTLPMetricExporter()


def configure(
    *,
    service_name: str | None = None,
    protocol: str | None = None,
    span_exporter: Any = None,
    metric_exporter: Any = None,
    metric_reader: Any = None,
    metric_export_interval_millis: float | None = None,
    span_processor: Any = None,
    resource_attributes: dict[str, Any] | None = None,
    set_global: bool = True,
    max_queue_size: int | None = None,
) -> Telemetry:
    """Set up OTel tracing and metrics for modelwatch (and, with ``set_global``, for the app).

    Without arguments everything comes from the ``OTEL_*`` environment. Exporters
    (or a whole span processor / metric reader) can be passed in instead, e.g.
    for tests. ``max_queue_size`` bounds the span queue (default
    ``OTEL_BSP_MAX_QUEUE_SIZE``, else 65,536; not used with ``span_processor``).
    Returns the :class:`Telemetry`; call its ``shutdown()`` at exit
    (also registered with ``atexit`` by the OTel SDK). Calling it again returns
    the existing setup.
    """
    global _current
    with _lock:
        if _current is not None:
            _safety.logger.warning("modelwatch: configure() called again; keeping the first configuration")
            return _current
        if sdk_disabled():
            _current = Telemetry(disabled=True)
            return _current

        from opentelemetry.sdk.resources import SERVICE_NAME, Resource

        attrs = dict(resource_attributes or {})
        if service_name is not None:
            attrs[SERVICE_NAME] = service_name
        resource = Resource.create(attrs)
        tracer_provider, direct, span_processor = _tracer_provider(resource, span_processor, span_exporter, protocol, max_queue_size)
        meter_provider = _meter_provider(resource, metric_reader, metric_exporter, protocol, metric_export_interval_millis)
        # The SDK's own BatchSpanProcessor (when passed in) logs a warning per dropped span when the collector is down.
        logging.getLogger("opentelemetry.sdk._shared_internal").addFilter(_safety.RateLimitFilter())
        if set_global:
            _set_global(tracer_provider, meter_provider)
        spans.set_configured_provider(tracer_provider, direct)
        _current = Telemetry(tracer_provider, meter_provider, span_processor=span_processor)
        return _current


def _tracer_provider(resource: Any, span_processor: Any, span_exporter: Any, protocol: str | None,
                     max_queue_size: int | None) -> tuple[Any, Any, Any]:
    """(provider, its direct span path, the processor added to it): an OTLP exporter behind the counting queue, unless given."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

    from .export import CountingBatchSpanProcessor

    # Our spans are already tail-sampled: the head sampler must keep every span we start.
    tracer_provider, direct = spans.owned_provider(resource, ParentBased(ALWAYS_ON))
    if span_processor is None:
        exporter = span_exporter if span_exporter is not None else _span_exporter(otlp_protocol("traces", protocol))
        span_processor = CountingBatchSpanProcessor(exporter, max_queue_size=max_queue_size)
    tracer_provider.add_span_processor(span_processor)
    return tracer_provider, direct, span_processor


def _meter_provider(resource: Any, metric_reader: Any, metric_exporter: Any, protocol: str | None,
                    interval_millis: float | None) -> Any:
    """A MeterProvider whose reader's exports carry modelwatch's aggregates (unless a reader is given)."""
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    if metric_reader is None:
        mexp = metric_exporter if metric_exporter is not None else _metric_exporter(otlp_protocol("metrics", protocol))
        metric_reader = PeriodicExportingMetricReader(
            metric_export.PredictionMetricsExporter(mexp, resource),
            export_interval_millis=interval_millis,
        )
    meter_provider = MeterProvider(resource=resource, metric_readers=[metric_reader])
    # The SDK reader exports only when some OTel instrument has data; this gauge always has,
    # so modelwatch's aggregates ship every interval even in a process with no other instrument.
    meter_provider.get_meter("modelwatch", __version__).create_observable_gauge(
        METRIC_SDK_MODELS,
        callbacks=[lambda _options: [Observation(len(metrics.registry.models()))]],
        description="Model versions monitored in this process",
    )
    return meter_provider


def _set_global(tracer_provider: Any, meter_provider: Any) -> None:
    """Make the providers the application's global ones, where none is set yet."""
    from opentelemetry import metrics as metrics_api
    from opentelemetry import trace

    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(tracer_provider)
    else:
        _safety.logger.warning("modelwatch: a global TracerProvider is already set; modelwatch uses its own")
    if type(metrics_api.get_meter_provider()).__name__ == "_ProxyMeterProvider":  # no public name for "unset"
        metrics_api.set_meter_provider(meter_provider)


def current() -> Telemetry | None:
    """The active :func:`configure` result, if any."""
    return _current
