"""What an alert says: its one-line message, its id and the JSON body every channel delivers."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from modelwatch_analyzer.analysis.results import Result
from modelwatch_analyzer.outputs.alerts.rules import Rule


def group_id(*parts: Any) -> str:
    """The id the rows of one firing share (a route's row adds ``:<route>``)."""
    h = hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()
    return h[:24]


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.4g}"


def describe(rule: Rule, r: Result) -> str:
    """The alert's one line: where, what and against which threshold."""
    where = (f"{r.model} v{r.version}" + (f" feature {r.feature!r}" if r.feature else "")
             + (f" in segment {r.segment}" if r.segment else ""))
    rate = r.details.get("sample_rate") if isinstance(r.details, Mapping) else None
    sampled = f"; from a {rate:.1%} sample of the rows" if isinstance(rate, float) and rate < 1 else ""
    if rule.type == "performance":
        return f"{where}: {r.method} = {_fmt(r.statistic)} below the floor {_fmt(rule.min)}"
    if rule.type == "estimated_performance":
        d = r.details if isinstance(r.details, Mapping) else {}
        if rule.min is not None:
            limit = f"below the floor {_fmt(rule.min)}"
        elif rule.max is not None:
            limit = f"above the ceiling {_fmt(rule.max)}"
        else:
            limit = f"past the reference band's edge {_fmt(r.threshold)}"
        ci = f" ({_fmt(d.get('lower'))}..{_fmt(d.get('upper'))})" if "lower" in d else ""
        real = f"; realized {_fmt(d.get('realized'))}" if "realized" in d else "; no labels yet"
        return f"{where}: estimated {r.method} = {_fmt(r.statistic)}{ci} {limit}{real}{sampled}"
    if rule.type == "data_quality" and isinstance(r.details, Mapping) and r.details.get("floor"):
        return f"{where}: {r.method} = {_fmt(r.statistic)} below the floor {_fmt(r.threshold)}{sampled}"
    if rule.type == "data_quality":
        ceiling = rule.max if rule.max is not None else r.threshold
        return f"{where}: {r.method} = {_fmt(r.statistic)} above the ceiling {_fmt(ceiling)}{sampled}"
    p = f", p = {_fmt(r.pvalue)}" if r.pvalue is not None else ""
    return f"{where}: {r.severity} drift, {r.method} = {_fmt(r.statistic)} (threshold {_fmt(r.threshold)}{p}{sampled})"


def trace_ids(results: Iterable[Result], limit: int = 20) -> list[str]:
    """The first `limit` distinct trace ids the results carry as evidence."""
    out: list[str] = []
    for r in results:
        ids = r.details.get("trace_ids") if isinstance(r.details, Mapping) else None
        for t in ids if isinstance(ids, (list, tuple)) else ():
            if isinstance(t, str) and t not in out and len(out) < limit:
                out.append(t)
    return out


def alert_body(group: str, rule: str, severity: str, fired_at: datetime, message: str,
               results: Sequence[Result]) -> dict[str, Any]:
    """The JSON body every channel delivers (and ``ml_alerts.Message`` keeps for retries)."""
    first = results[0]
    return {
        "alert": {"id": group, "rule": rule, "severity": severity, "model": first.model,
                  "version": first.version, "feature": first.feature,
                  "method": ",".join(sorted({r.method for r in results})),
                  "message": message, "fired_at": fired_at.isoformat(), "run_id": first.run_id},
        "results": [r.to_json() for r in results],
        "trace_ids": trace_ids(results),
    }
