"""The demo's summary: which features drifted and how badly, what happened to accuracy, which alerts fired.

Printed from the analyzer's results of every analysed day
(:class:`~modelwatch_analyzer.demo.daily_analysis.DayAnalysis`). Feature
names, categories, alert messages and trace ids come from the store (which
``--url`` may have filled before) and pass through
:func:`modelwatch_analyzer.textsafe.escape`.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from modelwatch_analyzer.analysis.results import severity_rank
from modelwatch_analyzer.demo.daily_analysis import DayAnalysis
from modelwatch_analyzer.report.sections import evidence_where
from modelwatch_analyzer.textsafe import escape as e

Say = Callable[[str], None]


def say_summary(say: Say, per_day: list[DayAnalysis], drift_day: int) -> None:
    """Print the summary of the analysed days; `drift_day` is the first day of the drift event."""
    say("\nsummary")
    _say_drift(say, per_day)
    _say_accuracy(say, per_day, drift_day)
    dq = sorted({(r.feature, r.method) for _, rows, _ in per_day for r in rows if r.kind == "data_quality" and r.drifted})
    if dq:
        say("  data quality: " + ", ".join(f"{e(f)} {m}" for f, m in dq))
    _say_alerts(say, per_day)


def _worst_drift(per_day: list[DayAnalysis]) -> tuple[dict[str, Any], dict[str, int]]:
    """Per drifted feature: its worst result (severity, then statistic), and the first day it drifted."""
    worst: dict[str, Any] = {}
    first: dict[str, int] = {}
    for d, rows, _ in per_day:
        for r in rows:
            if r.kind == "drift" and r.details.get("score") and r.drifted and r.feature:
                first.setdefault(r.feature, d)
                w = worst.get(r.feature)
                if w is None or (severity_rank(r.severity), r.statistic or 0) > (severity_rank(w.severity), w.statistic or 0):
                    worst[r.feature] = r
    return worst, first


def _say_drift(say: Say, per_day: list[DayAnalysis]) -> None:
    worst, first = _worst_drift(per_day)
    if worst:
        say("  drifted (worst day, against day 1; per feature PSI, and how the features move together):")
        for f, r in sorted(worst.items(), key=lambda kv: (-severity_rank(kv[1].severity), -(kv[1].statistic or 0))):
            where = evidence_where(r.details)
            extra = f", most over-represented: {e(f)} {e(where)}" if where else ""
            say(f"    {e(f):<18} {r.severity:<8} {r.method} {r.statistic:6.3f} (threshold {r.threshold:g}), from day {first[f]}{extra}")
    else:
        say("  no feature drifted")
    quiet = sorted({r.feature for _, rows, _ in per_day for r in rows
                    if r.kind == "drift" and r.details.get("score") and r.feature and r.feature not in worst})
    if quiet:
        say(f"  stable: {e(', '.join(quiet))}")


def _say_accuracy(say: Say, per_day: list[DayAnalysis], drift_day: int) -> None:
    accs = [(d, next((r.statistic for r in rows if r.kind == "performance" and r.method == "accuracy"), None))
            for d, rows, _ in per_day]
    cov = [(d, next((r.statistic for r in rows if r.method == "label_coverage"), None)) for d, rows, _ in per_day]
    say("  accuracy by day (labels arrive a day late): "
        + ", ".join(f"d{d} {a:.1%}" if a is not None else f"d{d} n/a" for d, a in accs))
    est = [(d, next((r for r in rows if r.kind == "estimated_performance" and r.method == "accuracy"
                     and r.statistic is not None), None)) for d, rows, _ in per_day]
    if any(r is not None for _, r in est):
        say("  accuracy estimated without labels (from the calibrated scores, weighted): "
            + ", ".join(f"d{d} {r.statistic:.1%}" if r is not None else f"d{d} n/a" for d, r in est))
        say("    what estimation sees is the shift in the inputs (covariate shift); the recession also changed who "
            "defaults at the same scores (concept shift), which only the late labels show")
    before = [a for d, a in accs if a is not None and d < drift_day]
    after = [a for d, a in accs if a is not None and d >= drift_day]
    if before and after:
        say(f"    before the event {np.mean(before):.1%}, after {np.mean(after):.1%} "
            f"({(np.mean(after) - np.mean(before)) * 100:+.1f} points); label coverage "
            + ", ".join(f"d{d} {c:.0%}" for d, c in cov if c is not None))


def _say_alerts(say: Say, per_day: list[DayAnalysis]) -> None:
    fired = [(d, a) for d, _, alerts in per_day for a in alerts]
    if not fired:
        say("  alerts: none fired")
        return
    say(f"  alerts fired: {len(fired)}, all delivered to the local webhook: {all(a.delivered for _, a in fired)} "
        "(the same alert fires at most once a week; a worsening fires again)")
    for d, a in fired:
        what = a.feature if a.feature else ("retrain trigger" if a.rule == "retrain" else a.rule)
        detail = a.message.split(": ", 1)[-1]
        ids = a.payload.get("trace_ids", []) if isinstance(a.payload, dict) else []
        say(f"    day {d} [{a.severity}] {e(a.rule):<15} {e(what)}: {e(detail[:90])}")
        if ids and a.rule != "retrain":
            say(f"        sampled predictions behind it: {e(', '.join(ids[:3]))}{' …' if len(ids) > 3 else ''}")
