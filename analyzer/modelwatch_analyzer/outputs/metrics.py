"""Analysis results out as OTel metrics: one mapping function and one exporter.

:func:`metric_points` is the whole contract between a :class:`~.results.Result`
and the metrics that leave the analyzer; :class:`Emitter` sends those points
as OTel **gauges** through the OpenTelemetry SDK and the standard OTLP
exporter, so they land in any OTel backend (or, through ``modelwatch serve``
or the collector, in ``otel_metrics_gauge``) next to the traces.

The mapping, per result (attributes below)::

    kind="drift"         ml.drift.score      statistic
                         ml.drift.pvalue     p-value (when the method has one)
                         ml.drift.threshold  the threshold actually used
                         ml.drift.detected   0 / 1
                         ml.drift.severity   0 none, 1 info, 2 warning, 3 critical
    kind="summary"       ml.drift.share      share of drifted features (statistic)
                         ml.drift.detected, ml.drift.severity   (worst severity)
    kind="data_quality"  ml.data_quality.<method>   statistic (a rate)
    kind="performance"   ml.performance.<method>    statistic
    kind="estimated_performance"
                         ml.performance.estimated.<method>         the estimate (statistic)
                         ml.performance.estimated.<method>.lower   its confidence interval
                         ml.performance.estimated.<method>.upper
                         ml.performance.estimated.<method>.threshold  the reference band's edge
                         ml.performance.estimated.<method>.error   estimate − realized (once labels arrived)
                         ml.performance.degraded   0 / 1 (the estimate is past the reference band)
    kind="segment"       ml.segment.drift_share   share of analysed segments with a drifted feature
                         ml.drift.detected, ml.drift.severity   (a segment's own results are the
                         kinds above, with ``ml.segment``)
    status="insufficient_data"
                         ml.analysis.insufficient_data   1 (and nothing else: no verdict was given)

Attributes: ``ml.model.name``, ``ml.model.version``, ``ml.feature.name``
(absent for model-level results), ``ml.drift.method`` (the method, for every
kind), ``ml.segment`` (``key=value``, on a segment's results only) and, for
insufficient-data points, ``ml.result.kind``. The severity is
a numeric gauge rather than an attribute on every point: an attribute whose
value changes would split each series in two whenever drift worsens, which
metric backends count as new series; ``ml.drift.severity`` points carry the
name as ``ml.severity`` for display. ``None`` and non-finite values are
skipped.

Delivery. Gauges are recorded and then ``force_flush``-ed at once, so a run's
numbers leave with the run. Gauge aggregation is configured with delta
temporality, which for a gauge only means "export what was recorded since
the last flush and then forget it": old results are not re-sent and the SDK's
memory does not grow with the number of series ever seen. A gauge keeps one
value per attribute set per export, so when several results share a metric
name *and* attributes (the same feature over two windows in one call), the
points are split into rounds, each flushed on its own; every result's value
is exported. A collector that is down never raises into the analyzer: the
exporter's own timeout (``OTEL_EXPORTER_OTLP_TIMEOUT``, or ``timeout``)
bounds the wait, the failure is logged once (and the recovery once), and the
results stay in ``ml_results`` regardless.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from modelwatch.pipeline import otlp_protocol

from modelwatch_analyzer.analysis.results import INSUFFICIENT, Result, severity_rank

logger = logging.getLogger("modelwatch.analyzer.emit")

DEFAULT_SERVICE_NAME = "modelwatch-analyzer"

MAX_POINTS_PER_ROUND = 2000
"""Points of one metric name per export: the SDK's default cardinality limit (more would overflow into one series)."""

_INSTRUMENT_NAME = re.compile(r"[^A-Za-z0-9_.\-/]")

_UNITS = {"ml.drift.score": "1", "ml.drift.pvalue": "1", "ml.drift.threshold": "1", "ml.drift.detected": "1",
          "ml.drift.severity": "1", "ml.drift.share": "1", "ml.analysis.insufficient_data": "1"}
_DESCRIPTIONS = {
    "ml.drift.score": "Drift statistic of a feature or prediction against its baseline",
    "ml.drift.pvalue": "P-value of the drift test (corrected across a model's features where configured)",
    "ml.drift.threshold": "Threshold the drift verdict used",
    "ml.drift.detected": "1 when drift was detected, else 0",
    "ml.drift.severity": "Drift severity: 0 none, 1 info, 2 warning, 3 critical",
    "ml.drift.share": "Share of a model's features found drifted",
    "ml.analysis.insufficient_data": "1 when a window had too little data for a verdict",
}


@dataclass(frozen=True)
class MetricPoint:
    """One gauge value: a metric name, a number and its attributes (all strings)."""

    name: str
    value: float
    attributes: Mapping[str, str] = field(default_factory=dict)

    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """What identifies the series this point belongs to."""
        return self.name, tuple(sorted(self.attributes.items()))


def metric_name_part(method: str) -> str:
    """`method` made safe for an OTel instrument name (letters, digits, ``_ . - /``; anything else becomes ``_``)."""
    return _INSTRUMENT_NAME.sub("_", method) or "_"


def metric_points(results: Iterable[Result]) -> list[MetricPoint]:
    """The OTel metric points that represent `results` (see the module docstring for the mapping)."""
    out: list[MetricPoint] = []
    for r in results:
        attrs = {"ml.model.name": r.model, "ml.model.version": r.version, "ml.drift.method": r.method}
        if r.feature is not None:
            attrs["ml.feature.name"] = r.feature
        if r.segment:
            attrs["ml.segment"] = r.segment
        if r.status == INSUFFICIENT:
            out.append(MetricPoint("ml.analysis.insufficient_data", 1.0, {**attrs, "ml.result.kind": r.kind}))
            continue
        values: list[tuple[str, float | None]] = []
        if r.kind == "drift":
            values = [("ml.drift.score", r.statistic), ("ml.drift.pvalue", r.pvalue),
                      ("ml.drift.threshold", r.threshold), ("ml.drift.detected", _bool(r.drifted))]
        elif r.kind == "summary":
            values = [("ml.drift.share", r.statistic), ("ml.drift.detected", _bool(r.drifted))]
        elif r.kind == "data_quality":
            values = [(f"ml.data_quality.{metric_name_part(r.method)}", r.statistic)]
        elif r.kind == "performance":
            values = [(f"ml.performance.{metric_name_part(r.method)}", r.statistic)]
        elif r.kind == "estimated_performance":
            name = f"ml.performance.estimated.{metric_name_part(r.method)}"
            d = r.details
            values = [(name, r.statistic), (f"{name}.lower", _number(d.get("lower"))),
                      (f"{name}.upper", _number(d.get("upper"))), (f"{name}.threshold", r.threshold),
                      (f"{name}.error", _number(d.get("error"))), ("ml.performance.degraded", _bool(r.drifted))]
        elif r.kind == "segment":
            values = [("ml.segment.drift_share", r.statistic), ("ml.drift.detected", _bool(r.drifted))]
        else:
            logger.debug("modelwatch: no metric mapping for result kind %r", r.kind)
        for name, value in values:
            if value is not None and math.isfinite(value):
                out.append(MetricPoint(name, float(value), attrs))
        if r.kind in ("drift", "summary", "segment"):
            out.append(MetricPoint("ml.drift.severity", float(severity_rank(r.severity)),
                                   {**attrs, "ml.severity": r.severity}))
    return out


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _bool(x: bool | None) -> float | None:
    return None if x is None else float(bool(x))


def rounds(points: Sequence[MetricPoint], max_per_name: int = MAX_POINTS_PER_ROUND) -> list[list[MetricPoint]]:
    """`points` split into export rounds: within a round, no series twice and at most `max_per_name` points per name.

    Order is kept: a point goes to the first round that can still take it.
    """
    out: list[tuple[list[MetricPoint], set, Counter]] = []
    for p in points:
        k = p.key()
        for batch, keys, names in out:
            if k not in keys and names[p.name] < max_per_name:
                break
        else:
            batch, keys, names = [], set(), Counter()
            out.append((batch, keys, names))
        batch.append(p)
        keys.add(k)
        names[p.name] += 1
    return [b for b, _, _ in out]


def _otlp_exporter(protocol: str, timeout: float | None) -> Any:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter,
        )
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter,  # type: ignore[assignment]
        )
    return OTLPMetricExporter(timeout=timeout)


def _watching_exporter(inner: Any, on_result: Any) -> Any:
    """A MetricExporter that delegates to `inner`, with gauge deltas, reporting each export's outcome."""
    from opentelemetry.sdk.metrics import _Gauge
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality,
        MetricExporter,
        MetricExportResult,
    )

    class _Watching(MetricExporter):
        def __init__(self) -> None:
            temporality = dict(getattr(inner, "_preferred_temporality", None) or {})
            temporality[_Gauge] = AggregationTemporality.DELTA
            super().__init__(preferred_temporality=temporality,
                             preferred_aggregation=getattr(inner, "_preferred_aggregation", None))

        def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
            try:
                result = inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
            except Exception as exc:  # an exporter must not raise, but one that does must not reach the analyzer
                on_result(False, repr(exc))
                return MetricExportResult.FAILURE
            on_result(result == MetricExportResult.SUCCESS, None)
            return result

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return bool(inner.force_flush(timeout_millis))

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            inner.shutdown(timeout_millis=timeout_millis)

    return _Watching()


class Emitter:
    """Sends results as OTel gauges over OTLP, flushed after each :meth:`emit`.

    Configuration follows OTel's precedence, argument then environment then
    default: ``exporter`` (any SDK ``MetricExporter``; default the OTLP one
    for ``protocol``, from ``OTEL_EXPORTER_OTLP_[METRICS_]PROTOCOL``, HTTP by
    default, which reads ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``_HEADERS``,
    ``_TIMEOUT`` ... itself); ``service_name`` (then ``OTEL_SERVICE_NAME``,
    then ``modelwatch-analyzer``; ``OTEL_RESOURCE_ATTRIBUTES`` is merged in).
    ``timeout`` (seconds) bounds each OTLP export, retries included.

    The emitter owns its MeterProvider (it does not touch the global one).
    ``emit`` never raises on export failures; ``last_ok`` tells how the last
    export went and ``failures`` counts failed exports.
    """

    def __init__(self, *, exporter: Any = None, protocol: str | None = None, service_name: str | None = None,
                 timeout: float | None = None, flush_timeout_millis: float = 30_000) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import OTEL_SERVICE_NAME, Resource

        inner = exporter if exporter is not None else _otlp_exporter(otlp_protocol("metrics", protocol), timeout)
        self._lock = threading.Lock()
        self.last_ok: bool | None = None
        self.failures = 0
        self.flush_timeout_millis = flush_timeout_millis
        # math.inf: no periodic thread; exports happen on force_flush only.
        self._reader = PeriodicExportingMetricReader(_watching_exporter(inner, self._on_export),
                                                     export_interval_millis=math.inf)
        resource = Resource.create(
            {"service.name": service_name or os.environ.get(OTEL_SERVICE_NAME) or DEFAULT_SERVICE_NAME})
        self._provider = MeterProvider(resource=resource, metric_readers=[self._reader])
        self._meter = self._provider.get_meter("modelwatch_analyzer")
        self._gauges: dict[str, Any] = {}
        self._closed = False

    def _on_export(self, ok: bool, error: str | None) -> None:
        if not ok:
            self.failures += 1
            if self.last_ok is not False:  # log the transition, not every failure
                logger.warning("modelwatch: exporting analysis metrics failed%s; results stay in the store, "
                               "will keep trying after each analysis", f" ({error})" if error else "")
        elif self.last_ok is False:
            logger.info("modelwatch: exporting analysis metrics works again")
        self.last_ok = ok

    def _gauge(self, name: str) -> Any:
        g = self._gauges.get(name)
        if g is None:
            g = self._gauges[name] = self._meter.create_gauge(
                name, unit=_UNITS.get(name, "1"), description=_DESCRIPTIONS.get(name, ""))
        return g

    def emit(self, results: Iterable[Result]) -> int:
        """Record and export the metric points of `results`; returns how many points were recorded. Never raises."""
        try:
            points = metric_points(results)
            with self._lock:
                if self._closed:
                    return 0
                for batch in rounds(points):
                    for p in batch:
                        self._gauge(p.name).set(p.value, dict(p.attributes))
                    self._reader.force_flush(self.flush_timeout_millis)
            return len(points)
        except Exception:  # the analyzer's run must not fail because its metrics could not leave
            logger.exception("modelwatch: emitting analysis metrics failed")
            return 0

    def shutdown(self) -> None:
        """Stop the provider (after one last, normally empty, flush)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._provider.shutdown(timeout_millis=self.flush_timeout_millis)
        except Exception:
            logger.exception("modelwatch: shutting down the metrics emitter failed")
