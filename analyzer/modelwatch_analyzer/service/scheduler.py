"""The scheduled analyzer: inside ``modelwatch serve`` (embedded) or as ``modelwatch analyzer`` (production).

Every ``schedule.every_minutes`` (windows aligned to that period, so a run
that is repeated — after a crash, or by hand — replaces the same window's
results), and early when ``schedule.every_predictions`` new predictions
arrived, each model of the config (or, with none listed, every model that
has a baseline) is analysed over its last ``window_hours``. A run:

1. analyses the window and adds performance against labels (:mod:`.analyze`);
2. feeds the drift scores to the sequential detectors (state in the store);
3. stores every result (re-running a window replaces it);
4. fires and delivers alerts and retrain triggers (:mod:`.alerts`);
5. emits every result as OTel metrics (:mod:`.emit`);
6. reconciles earlier estimates with late labels: every window of the last
   ``schedule.label_lookback_hours`` whose stored label-free estimates saw
   fewer labelled predictions than the store now holds is estimated again,
   now with its realized metrics and the estimates' errors (stored, alerted
   on, emitted like the rest). One scan finds the windows whose labels grew.

A store that cannot be reached fails the round, not the service: it is
logged and retried with backoff (up to the schedule period).
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from modelwatch_analyzer.analysis import analyze, baseline, estimation, estimator, results
from modelwatch_analyzer.analysis.baseline import Baseline
from modelwatch_analyzer.analysis.detector import SequentialDetector
from modelwatch_analyzer.analysis.results import Result
from modelwatch_analyzer.analysis.window import Window
from modelwatch_analyzer.errors import BaselineError, StoreError, StoreUnavailable
from modelwatch_analyzer.outputs.alerts.firing import Alerter
from modelwatch_analyzer.outputs.alerts.rows import Alert
from modelwatch_analyzer.service.config import Config, ModelConfig
from modelwatch_analyzer.store.client import Store

log = logging.getLogger("modelwatch.analyzer")


@dataclass
class RunReport:
    model: str
    window: Window
    baseline: Baseline | None = None
    results: list[Result] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    error: str | None = None
    reconciled: list[Result] = field(default_factory=list)  # earlier windows' estimates, redone with late labels


def aligned_end(now: datetime, every_minutes: float) -> datetime:
    """The end of the last complete schedule period at `now` (UTC epoch-aligned)."""
    period = max(int(every_minutes * 60), 1)
    seconds = int(now.timestamp()) // period * period
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def analyse_model(store: Store, model: ModelConfig, window: Window, config: Config, alerter: Alerter | None = None,
                  emitter: Any = None, save: bool = True) -> RunReport:
    """One model, one window: analysis, detectors, storage, alerts, emission (see the module docstring)."""
    base = baseline.load(store, model.name, model.version, model.baseline)
    report = RunReport(model.name, window, base)
    rows = analyze.run(store, window, model.settings, base, save=False)
    for cfg in config.detectors:
        extra = SequentialDetector(store, cfg).update(rows)
        for r in extra:
            r.run_id, r.run_at = rows[0].run_id, rows[0].run_at
        rows += extra
    if save:
        results.save(store, rows)
    report.results = rows
    if alerter is not None:
        report.alerts = alerter.process(rows)
    if emitter is not None:
        emitter.emit(rows)
    return report


def reconcile(store: Store, model: ModelConfig, before: datetime, config: Config, alerter: Alerter | None = None,
              emitter: Any = None) -> list[Result]:
    """Re-estimate the model's earlier windows (ending in the lookback, before `before`) whose labels grew."""
    hours = config.schedule.label_lookback_hours
    settings = model.settings
    if hours <= 0 or not settings.estimation.enabled:
        return []
    past = estimation.stored(store, model.name, before - timedelta(hours=hours), before)
    if model.version:
        past = [p for p in past if p[0].version == model.version]
    out: list[Result] = []
    for version in sorted({w.version or "" for w, _b, _l in past}):
        group = [p for p in past if (p[0].version or "") == version]
        now_labelled = estimation.labelled_weights(store, [w for w, _b, _l in group])
        for (window, baseline_id, then), labelled in zip(group, now_labelled):
            if labelled <= then * (1 + 1e-9) + 1e-9:
                continue
            est = estimator.load(store, model.name, baseline_id)
            if est is None:
                continue
            rows = estimation.evaluate(store, window, est, settings.estimation, min_labels=settings.performance.min_labels)
            run_id, run_at = uuid.uuid4().hex[:16], datetime.now(timezone.utc)
            for r in rows:
                r.model, r.version, r.baseline_id = model.name, window.version or "", baseline_id
                r.window_start, r.window_end, r.run_id, r.run_at = window.start, window.end, run_id, run_at
            out += rows
    if out:
        results.save(store, out)
        if alerter is not None:
            alerter.process(out)
        if emitter is not None:
            emitter.emit(out)
    return out


class AnalyzerService:
    """Runs every configured model on a schedule, in a thread of its own, until :meth:`stop`."""

    def __init__(self, store: Store, config: Config, emitter: Any = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.store = store
        self.config = config
        self.emitter = emitter
        self.clock = clock
        self.alerter = Alerter(store, config.alerts)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_end: datetime | None = None
        self.rounds = 0
        self.failures = 0

    def models(self) -> list[ModelConfig]:
        if self.config.models:
            return self.config.models
        return [self.config.model(name) for name in sorted({row[0] for row in baseline.list_baselines(self.store)})]

    def run_once(self, end: datetime | None = None) -> list[RunReport]:
        """One round over every model, for the window ending at `end` (default: the last aligned period end)."""
        end = end or aligned_end(self.clock(), self.config.schedule.every_minutes)
        reports = []
        for m in self.models():
            hours = m.window_hours or self.config.schedule.window_hours
            window = Window(m.name, end - timedelta(hours=hours), end, m.version)
            try:
                report = analyse_model(self.store, m, window, self.config, self.alerter, self.emitter)
                reports.append(report)
                try:
                    report.reconciled = reconcile(self.store, m, window.end, self.config, self.alerter, self.emitter)
                except StoreUnavailable:
                    raise
                except (BaselineError, StoreError) as exc:  # the window's own analysis stands
                    log.error("modelwatch: reconciling %r's earlier estimates with late labels failed: %s", m.name, exc)
            except StoreUnavailable:
                raise
            except (BaselineError, StoreError) as exc:
                log.error("modelwatch: analysing %r for %s..%s failed: %s", m.name, window.start, window.end, exc)
                reports.append(RunReport(m.name, window, error=str(exc)))
        self.last_end = end
        self.rounds += 1
        return reports

    def _new_predictions(self, since: datetime) -> int:
        rows = self.store.query(f"SELECT count() FROM {self.store.table('ml_predictions')} "
                                "WHERE Timestamp >= fromUnixTimestamp64Milli({since:Int64})",
                                {"since": int(since.timestamp() * 1000)})
        return int(rows[0][0]) if rows else 0

    def _due(self) -> datetime | None:
        now = self.clock()
        end = aligned_end(now, self.config.schedule.every_minutes)
        if self.last_end is None or end > self.last_end:
            return end
        every_n = self.config.schedule.every_predictions
        if every_n and self._new_predictions(self.last_end) >= every_n:
            return now.replace(microsecond=0)
        return None

    def _loop(self, poll_seconds: float) -> None:
        backoff = poll_seconds
        while not self._stop.is_set():
            try:
                end = self._due()
                if end is not None:
                    for r in self.run_once(end):
                        if r.error is None:
                            summary = next((x for x in r.results if x.method == "drift_share"), None)
                            log.info("modelwatch: %s %s..%s: %s", r.model, r.window.start, r.window.end,
                                     summary.details.get("drifted_features") if summary else "no summary")
                backoff = poll_seconds
            except StoreError as exc:
                self.failures += 1
                log.error("modelwatch: analyzer round failed (%s); retrying in %.0f s", exc, backoff)
                if self._stop.wait(backoff):
                    return
                backoff = min(backoff * 2, self.config.schedule.every_minutes * 60)
                continue
            except Exception:
                self.failures += 1
                log.exception("modelwatch: analyzer round failed")
            self._stop.wait(poll_seconds)

    def start(self, poll_seconds: float = 30.0) -> AnalyzerService:
        self._thread = threading.Thread(target=self._loop, args=(poll_seconds,), name="modelwatch-analyzer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
