"""Where prediction spans go: resolving a tracer, and giving spans the trace id sampling hashed.

A prediction span is created only after sampling kept it, with the trace id
the decision was computed from: the SDK ``Tracer`` takes trace ids from its
``id_generator``, so the tracer modelwatch obtains (its own instance, not
shared with the application) gets a generator that hands out the id set for
the current thread before falling back to the original one.

Each prediction is the root of its own trace. Its tail-sampling decision is
then exactly the collector's per-trace decision, independent of whether an
upstream service head-sampled the request; the caller's active span, if any,
is attached as a span link so the request stays one click away.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace

from . import _safety
from .version import __version__

ROOT_CONTEXT = context_api.Context()  # no active span in it: start_span makes a root


class PresetTraceIds:
    """An OTel ``IdGenerator`` that returns a trace id chosen by the caller, once, on this thread."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.local = threading.local()

    def generate_trace_id(self) -> int:
        tid = getattr(self.local, "trace_id", 0)
        if tid:
            self.local.trace_id = 0
            return tid
        return self.inner.generate_trace_id()

    def generate_span_id(self) -> int:
        return self.inner.generate_span_id()

    def is_trace_id_random(self) -> bool:
        return True  # preset ids come from a CSPRNG-seeded 128-bit draw


class TracerHandle:
    """A tracer plus, when the tracer allows it, the hook that presets its next trace id."""

    __slots__ = ("provider", "tracer", "ids")

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("modelwatch", __version__)
        self.ids: PresetTraceIds | None = None
        inner = getattr(self.tracer, "id_generator", None)
        if inner is not None:
            self.ids = PresetTraceIds(inner)
            self.tracer.id_generator = self.ids
        else:
            _safety.report(
                "trace_id_not_controllable", "",
                "tracer %s does not expose id_generator: span trace ids will differ from the ids sampling hashed",
                type(self.tracer).__name__,
            )

    def start(self, trace_id: int, name: str, attributes: dict[str, Any], start_ns: int, links: Any = ()) -> Any:
        ids = self.ids
        if ids is not None:
            ids.local.trace_id = trace_id
        try:
            return self.tracer.start_span(name, context=ROOT_CONTEXT, attributes=attributes, links=links, start_time=start_ns)
        finally:
            if ids is not None:
                ids.local.trace_id = 0


_NO_ATTR = object()
# the API builds a provider from this variable on first use; then we must ask it
_PROVIDER_FROM_ENV = bool(os.environ.get("OTEL_PYTHON_TRACER_PROVIDER"))
_configured_provider: Any = None  # set by modelwatch.configure()
_cache: TracerHandle | None = None
_cache_lock = threading.Lock()


def set_configured_provider(provider: Any) -> None:
    global _configured_provider, _cache
    with _cache_lock:
        _configured_provider = provider
        _cache = None


def current() -> TracerHandle | None:
    """The tracer predictions go to, or None when no tracing SDK is set up (then spans cost nothing)."""
    global _cache
    provider = _configured_provider
    if provider is None:
        # trace.get_tracer_provider() costs ~2 us (it consults the environment every call);
        # the global it returns is read directly when this API version has it.
        provider = getattr(trace, "_TRACER_PROVIDER", _NO_ATTR)
        if provider is None and not _PROVIDER_FROM_ENV:
            return None  # nothing set up: predictions pass straight through
        if provider is _NO_ATTR or provider is None:
            provider = trace.get_tracer_provider()
        if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
            return None
    handle = _cache
    if handle is not None and handle.provider is provider:
        return handle
    with _cache_lock:
        _cache = TracerHandle(provider)
        return _cache


def caller_links() -> tuple[trace.Link, ...]:
    """A link to the caller's active span, if there is a valid one."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        return (trace.Link(ctx),)
    return ()
