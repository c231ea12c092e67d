"""The span queue between kept predictions and the exporter, sized for bursts, counting every span it loses.

:class:`CountingBatchSpanProcessor` is what :func:`modelwatch.configure` puts in
front of the OTLP span exporter. It batches like the OTel SDK's
``BatchSpanProcessor`` (a bounded in-memory queue, a worker thread exporting
batches every ``schedule_delay`` or as soon as a batch is full) and honours
the same ``OTEL_BSP_*`` variables, with two differences:

* the default queue holds :data:`DEFAULT_MAX_QUEUE_SIZE` spans (65,536)
  instead of 2,048: a burst of kept predictions (a loop over a backlog, a
  spike of high-risk traffic) waits for the exporter instead of being
  thrown away. A queued span with 25 attributes takes about 1.5 KB, so a
  full default queue is of the order of 100 MB; ``OTEL_BSP_MAX_QUEUE_SIZE``
  (or ``configure(max_queue_size=...)``) bounds it lower.
* every span it does not deliver is counted in the full-population metric
  ``ml.spans.dropped`` (attributes ``ml.model.name``, ``ml.model.version``,
  ``reason``, ``span``), exported with the other ``ml.*`` metrics. Reasons:
  ``queue_full`` (the queue was full: the new span is refused, nothing
  queued is evicted), ``export_failed`` (the exporter returned a failure
  after its own retries, or raised: the whole batch is counted) and
  ``shutdown`` (a span ended after shutdown, or was still queued when the
  shutdown deadline passed). ``span`` is ``ml.predict``, ``ml.label`` or
  ``other`` (the application's own spans, if it uses modelwatch's provider).

The queue never blocks the caller: ``on_end`` is an append (or a count) and
the exporter runs on the worker thread. Detection uses no private API: the
queue is this processor's own, and failures are the exporter's public
``SpanExportResult``.
"""

from __future__ import annotations

import collections
import os
import threading
import time
import weakref
from typing import Any

from opentelemetry import context as context_api
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from . import _safety, metrics
from .contract import DROP_EXPORT_FAILED, DROP_QUEUE_FULL, DROP_SHUTDOWN
from .errors import ConfigurationError

DEFAULT_MAX_QUEUE_SIZE = 65_536
DEFAULT_SCHEDULE_DELAY_MILLIS = 5_000
DEFAULT_MAX_EXPORT_BATCH_SIZE = 512
DEFAULT_EXPORT_TIMEOUT_MILLIS = 30_000

# the key HTTP/gRPC client instrumentations check, so that exporting does not trace itself
_SUPPRESS = getattr(context_api, "_SUPPRESS_INSTRUMENTATION_KEY", None)


def _setting(arg: Any, env: str, default: float, minimum: float, what: str) -> float:
    """Argument, then environment variable, then default; a bad argument raises, a bad variable warns."""
    if arg is not None:
        if isinstance(arg, bool) or not isinstance(arg, (int, float)) or not arg >= minimum:
            raise ConfigurationError(f"{what} must be a number >= {minimum:g}, got {arg!r}")
        return arg
    raw = os.environ.get(env, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
        if not value >= minimum:
            raise ValueError(raw)
        return value
    except ValueError:
        _safety.logger.warning("modelwatch: %s=%r is not a number >= %g; using %g", env, raw, minimum, default)
        return default


class CountingBatchSpanProcessor(SpanProcessor):
    """Batches finished spans to `exporter` from a bounded queue; counts what it loses in ``ml.spans.dropped``.

    Each setting is the argument if given, else its ``OTEL_BSP_*`` variable,
    else the default: ``max_queue_size`` (``OTEL_BSP_MAX_QUEUE_SIZE``, 65,536),
    ``schedule_delay_millis`` (``OTEL_BSP_SCHEDULE_DELAY``, 5,000),
    ``max_export_batch_size`` (``OTEL_BSP_MAX_EXPORT_BATCH_SIZE``, 512, at
    most the queue size), ``export_timeout_millis`` (``OTEL_BSP_EXPORT_TIMEOUT``,
    30,000: how long ``shutdown`` and a ``force_flush`` without a timeout wait).
    """

    def __init__(
        self,
        exporter: SpanExporter,
        max_queue_size: int | None = None,
        schedule_delay_millis: float | None = None,
        max_export_batch_size: int | None = None,
        export_timeout_millis: float | None = None,
    ) -> None:
        self.exporter = exporter
        self.max_queue_size = int(_setting(max_queue_size, "OTEL_BSP_MAX_QUEUE_SIZE", DEFAULT_MAX_QUEUE_SIZE, 1,
                                           "max_queue_size"))
        self.schedule_delay_millis = _setting(schedule_delay_millis, "OTEL_BSP_SCHEDULE_DELAY",
                                              DEFAULT_SCHEDULE_DELAY_MILLIS, 1, "schedule_delay_millis")
        batch = int(_setting(max_export_batch_size, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", DEFAULT_MAX_EXPORT_BATCH_SIZE, 1,
                             "max_export_batch_size"))
        self.max_export_batch_size = min(batch, self.max_queue_size)
        self.export_timeout_millis = _setting(export_timeout_millis, "OTEL_BSP_EXPORT_TIMEOUT",
                                              DEFAULT_EXPORT_TIMEOUT_MILLIS, 0, "export_timeout_millis")
        self._stopped = False
        self._warned_full = False
        self._start()
        if hasattr(os, "register_at_fork"):
            ref = weakref.WeakMethod(self._after_fork)

            def _child() -> None:
                method = ref()
                if method is not None:
                    method()

            os.register_at_fork(after_in_child=_child)

    def _start(self) -> None:
        # a deque without maxlen: nothing ever leaves it silently; on_end refuses (and counts) past the bound
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._export_lock = threading.Lock()
        self._wake = threading.Event()
        self._worker = threading.Thread(target=self._work, name="modelwatch-span-export", daemon=True)
        self._worker.start()

    def _after_fork(self) -> None:
        """A forked child exports its own spans: the parent's queue (the parent exports it) is not inherited."""
        if not self._stopped:
            self._start()

    # -- the inference thread's side ---------------------------------------------------------

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.context
        if ctx is None or not ctx.trace_flags.sampled:
            return
        if self._stopped:
            metrics.span_drops.add_span(span, DROP_SHUTDOWN)
            return
        queue = self._queue
        if len(queue) >= self.max_queue_size:
            metrics.span_drops.add_span(span, DROP_QUEUE_FULL)
            if not self._warned_full:
                self._warned_full = True
                _safety.logger.warning("modelwatch: the span queue is full (%d spans; OTEL_BSP_MAX_QUEUE_SIZE): spans are "
                                       "dropped and counted in ml.spans.dropped (logged once)", self.max_queue_size)
            return
        queue.append(span)
        if len(queue) >= self.max_export_batch_size and not self._wake.is_set():
            self._wake.set()

    # -- the worker's side ------------------------------------------------------------------------

    def _work(self) -> None:
        delay = self.schedule_delay_millis / 1e3
        while not self._stopped:
            self._wake.wait(delay)
            self._wake.clear()
            while self._queue and not self._stopped:
                with self._export_lock:
                    self._export_batch()

    def _export_batch(self) -> None:
        """Export up to one batch from the head of the queue (caller holds the export lock)."""
        queue = self._queue
        batch: list[ReadableSpan] = []
        try:
            for _ in range(min(self.max_export_batch_size, len(queue))):
                batch.append(queue.popleft())
        except IndexError:
            pass
        if not batch:
            return
        token = context_api.attach(context_api.set_value(_SUPPRESS, True)) if _SUPPRESS is not None else None
        try:
            result = self.exporter.export(batch)
        except Exception:
            _safety.report("export_error", "", "the span exporter raised; its batch is counted as export_failed",
                           key="span_export", exc_info=True)
            result = None
        finally:
            if token is not None:
                context_api.detach(token)
        if result is not SpanExportResult.SUCCESS:
            metrics.span_drops.add_spans(batch, DROP_EXPORT_FAILED)

    def _flush(self, deadline: float) -> bool:
        while self._queue:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._export_lock.acquire(timeout=remaining):
                return False
            try:
                self._export_batch()
            finally:
                self._export_lock.release()
        # a batch the worker took may still be on its way: wait for it
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not self._export_lock.acquire(timeout=remaining):
            return False
        self._export_lock.release()
        return not self._queue

    def force_flush(self, timeout_millis: int | None = None) -> bool:
        """Export everything queued now; False if `timeout_millis` passed first (or after shutdown)."""
        if self._stopped:
            return False
        timeout = self.export_timeout_millis if timeout_millis is None else timeout_millis
        return self._flush(time.monotonic() + timeout / 1e3)

    def shutdown(self) -> None:
        """Export what is queued (until ``export_timeout_millis``), count what is left, shut the exporter down."""
        if self._stopped:
            return
        deadline = time.monotonic() + self.export_timeout_millis / 1e3
        self._stopped = True
        self._wake.set()
        self._worker.join(max(0.0, deadline - time.monotonic()))
        self._flush(deadline)
        left: list[ReadableSpan] = []
        while True:
            try:
                left.append(self._queue.popleft())
            except IndexError:
                break
        if left:
            metrics.span_drops.add_spans(left, DROP_SHUTDOWN)
        self.exporter.shutdown()

    def queued(self) -> int:
        """Spans waiting in the queue now."""
        return len(self._queue)

