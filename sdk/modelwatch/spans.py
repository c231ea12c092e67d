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
import random
import threading
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace.status import Status, StatusCode

from . import _safety
from .version import __version__

ROOT_CONTEXT = context_api.Context()  # no active span in it: start_span makes a root
_UNSET = Status(StatusCode.UNSET)
_getrandbits = random.getrandbits


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


class DirectSpans:
    """Kept prediction spans built finished and handed straight to the provider's processors.

    A prediction span is decided, timed and attributed before it exists: the
    SDK's live-span machinery (a mutable span with its locks, attribute
    re-validation, start hooks) has nothing left to do, and on a 2-core
    machine it is most of a kept prediction's cost. For the providers modelwatch
    builds itself (:func:`modelwatch.configure`, :func:`modelwatch.testing.capture`),
    whose fan-out processor and span limits it holds, the finished
    ``ReadableSpan`` goes to ``on_end`` of every processor of the provider,
    exactly what the SDK does when a span ends. Differences: processors'
    ``on_start`` is not called for these spans, and the span limits
    (``OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT``, ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``)
    are applied here. Error spans take the SDK path (exception recording).
    """

    __slots__ = ("processor", "resource", "scope", "max_attrs", "max_len", "flags")

    def __init__(self, processor: Any, resource: Any, limits: Any) -> None:
        self.processor = processor
        self.resource = resource
        self.scope = InstrumentationScope("modelwatch", __version__)
        self.max_attrs = limits.max_span_attributes
        self.max_len = limits.max_span_attribute_length
        flags = trace.TraceFlags.SAMPLED | getattr(trace.TraceFlags, "RANDOM_TRACE_ID", 0)
        self.flags = trace.TraceFlags(flags)

    def emit(self, trace_id: int, name: str, attributes: dict[str, Any], start_ns: int, end_ns: int, links: Any = ()) -> None:
        attrs: Any = attributes
        if self.max_len is not None:
            limit = self.max_len
            for key, value in attrs.items():
                if type(value) is str and len(value) > limit:
                    attrs[key] = value[:limit]
        if self.max_attrs is not None and len(attrs) > self.max_attrs:
            # keeps the first max_attrs (the ml.* contract attributes come first) and counts the rest as dropped
            attrs = BoundedAttributes(self.max_attrs, dict(list(attrs.items())[: self.max_attrs]), immutable=True)
            attrs.dropped = len(attributes) - self.max_attrs
        context = trace.SpanContext(trace_id, _getrandbits(64) or 1, False, self.flags)
        span = ReadableSpan(
            name, context, None, self.resource, attrs, (), links, trace.SpanKind.INTERNAL, None, _UNSET,
            start_ns, end_ns, self.scope,
        )
        self.processor.on_end(span)


class TracerHandle:
    """A tracer plus, when the tracer allows it, the hook that presets its next trace id."""

    __slots__ = ("provider", "tracer", "ids", "direct")

    def __init__(self, provider: Any, direct: DirectSpans | None = None) -> None:
        self.provider = provider
        self.direct = direct
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
_configured_direct: DirectSpans | None = None
_cache: TracerHandle | None = None
_cache_lock = threading.Lock()


def set_configured_provider(provider: Any, direct: DirectSpans | None = None) -> None:
    """Route predictions to `provider` (None: back to the global one); `direct` enables the finished-span path."""
    global _configured_provider, _configured_direct, _cache
    with _cache_lock:
        _configured_provider = provider
        _configured_direct = direct if provider is not None else None
        _cache = None


def owned_provider(resource: Any = None, sampler: Any = None) -> tuple[Any, DirectSpans]:
    """A TracerProvider whose fan-out processor and limits modelwatch holds, and its direct span path."""
    from opentelemetry.sdk.trace import SpanLimits, SynchronousMultiSpanProcessor, TracerProvider

    fan_out = SynchronousMultiSpanProcessor()
    limits = SpanLimits()
    kwargs: dict[str, Any] = {"active_span_processor": fan_out, "span_limits": limits}
    if resource is not None:
        kwargs["resource"] = resource
    if sampler is not None:
        kwargs["sampler"] = sampler
    provider = TracerProvider(**kwargs)
    return provider, DirectSpans(fan_out, provider.resource, limits)


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
        _cache = TracerHandle(provider, _configured_direct if provider is _configured_provider else None)
        return _cache


def caller_links() -> tuple[trace.Link, ...]:
    """A link to the caller's active span, if there is a valid one."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        return (trace.Link(ctx),)
    return ()
