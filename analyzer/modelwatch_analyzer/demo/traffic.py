"""The demo's traffic: simulated days of loan applications scored by the monitored model, and their late outcomes.

The application's inference code is one function decorated with
:func:`modelwatch.monitor`. Each simulated day, from the first drifted day
on with the recession's applicants (:mod:`modelwatch_analyzer.demo.world`),
``per_day`` applications are scored at random times of that day (the
:class:`~modelwatch_analyzer.demo.pipeline.SimulatedClock` stamps their
spans). Ground truth arrives **late**: the outcomes of a share of one day's
loans are recorded with :func:`modelwatch.record_label` during the next day,
so the last day has none yet.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any, Callable

import modelwatch
import numpy as np

from modelwatch_analyzer.demo.options import DemoOptions
from modelwatch_analyzer.demo.pipeline import SimulatedClock
from modelwatch_analyzer.demo.world import MODEL, VERSION, CreditModel, applicants, true_default_probability

Day = tuple[datetime, datetime]
"""A simulated day: its start and end (UTC)."""

DRIFT_NOTE = "  ← drift event: recession, new region 'central', employment_years sometimes empty"


def day_bounds(days: int, now: datetime) -> list[Day]:
    """The last `days` whole days up to the current hour."""
    end = now.replace(minute=0, second=0, microsecond=0)
    first = end - timedelta(days=days)
    return [(first + timedelta(days=d), first + timedelta(days=d + 1)) for d in range(days)]


def ns(t: datetime) -> int:
    return int(t.timestamp() * 1e9)


def monitored_scorer(clf: CreditModel, sampling_rate: float) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The application's scoring function, monitored by the SDK."""

    @modelwatch.monitor(model=MODEL, version=VERSION, sampling_rate=sampling_rate)
    def score(applicant: dict[str, Any]) -> dict[str, Any]:
        """The application's inference code: P(default) for one applicant."""
        p = float(clf.predict_proba(applicant)[0])
        return {"prediction": p > 0.5, "score": p}

    return score


def stream(options: DemoOptions, rng: np.random.Generator, clf: CreditModel, clock: SimulatedClock,
           telemetry: Any, days: list[Day]) -> None:
    """Every simulated day's predictions and the previous day's outcomes, printed day by day."""
    say = options.print
    say(f"\nstreaming {options.days} simulated days × {options.per_day:,} applications "
        f"({days[0][0]:%Y-%m-%d} → {days[-1][1]:%Y-%m-%d}); drift event on day {options.drift_day}")
    score = monitored_scorer(clf, options.sampling_rate)
    pending_labels: list[tuple[str, bool]] = []
    label_count = 0
    for d, (start, end) in enumerate(days, start=1):
        drifted = d >= options.drift_day
        batch = applicants(rng, options.per_day, drifted)
        truth = rng.random(options.per_day) < true_default_probability(batch, drifted)
        label_count += _record_outcomes(pending_labels, start, end)  # yesterday's outcomes arrive during today
        t_day = time.monotonic()
        kept, pending_labels = _predict_day(options, rng, score, clock, batch, truth, (start, end))
        clock.now_ns = 0
        telemetry.force_flush(60_000)
        note = DRIFT_NOTE if d == options.drift_day else ""
        # a day is its window, start → end: the charts plot each window at its end
        say(f"  day {d}/{options.days} {start:%a %m-%d %H:%M} → {end:%a %H:%M} UTC: {options.per_day:,} predictions, "
            f"{kept:,} kept as spans, {len(pending_labels):,} outcomes due tomorrow "
            f"({time.monotonic() - t_day:.1f} s){note}")
    say(f"  labels: {label_count:,} arrived late (one day after their prediction); "
        f"day {options.days}'s are not known yet")


def _record_outcomes(pending: list[tuple[str, bool]], start: datetime, end: datetime) -> int:
    """Record the outcomes of yesterday's loans, spread evenly over the day [start, end); returns how many."""
    span = ns(end) - ns(start)
    for i, (pid, outcome) in enumerate(pending):
        modelwatch.record_label(MODEL, pid, outcome, version=VERSION,
                                timestamp_ns=ns(start) + span * (i + 1) // (len(pending) + 1))
    return len(pending)


def _predict_day(options: DemoOptions, rng: np.random.Generator, score: Callable[[dict[str, Any]], Any],
                 clock: SimulatedClock, batch: dict[str, np.ndarray], truth: np.ndarray,
                 day: Day) -> tuple[int, list[tuple[str, bool]]]:
    """Score one day's applications at sorted random times of the day.

    Returns how many the SDK kept as spans, and the (prediction id, outcome)
    of the loans whose outcome will be known tomorrow.
    """
    start, end = day
    offsets = np.sort(rng.random(options.per_day)) * (ns(end) - ns(start))
    keys = list(batch)
    pending: list[tuple[str, bool]] = []
    kept = 0
    for i in range(options.per_day):
        clock.now_ns = ns(start) + int(offsets[i])
        applicant = {k: batch[k][i].item() if hasattr(batch[k][i], "item") else batch[k][i] for k in keys}
        score(applicant)
        rec = modelwatch.last_prediction()
        kept += bool(rec.kept)
        if rng.random() < options.label_share:
            pending.append((rec.id, bool(truth[i])))
    return kept, pending
