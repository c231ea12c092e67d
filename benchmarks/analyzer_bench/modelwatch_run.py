"""The modelwatch contender: a baseline from the reference window, then the current window analysed against it.

Timed in one process, in this order: ``baseline.from_window`` (reported
separately); ``analyze.analyze`` cold (every row scanned; the window's hour
is then kept, see ``modelwatch_analyzer/analysis/hourly.py``); the same
window again (the kept hour read back after a row count, as the scheduled
analyzer's overlapping windows do); cold once more with a numeric sample of
:data:`SAMPLE_ROWS` rows, compared with the exact run (the largest deviation
per method and the verdicts that differ). With ``heap``, the Python heap of
one more scanning ``analyze`` call (``tracemalloc`` peak), which is what
could grow with the rows.
"""

from __future__ import annotations

import time
import tracemalloc
from typing import Any, Callable

from analyzer_bench.data import windows
from analyzer_bench.harness import cpu

SAMPLE_ROWS = 1_000_000
"""numeric_sample_rows of the sampled run (see modelwatch_analyzer/analysis/hourly.py): at 10M rows, numeric features
from ~10%."""


def _timed(call: Callable[[], Any]) -> tuple[Any, float, float]:
    """`call()`'s result, wall seconds and CPU seconds."""
    t0, c0 = time.perf_counter(), cpu()
    result = call()
    return result, time.perf_counter() - t0, cpu() - c0


def _drifted(results: list) -> list[str]:
    """The drifted features and prediction columns, from the summary row."""
    summary = next(r for r in results if r.kind == "summary")
    return sorted(summary.details["drifted_features"] + summary.details["prediction_drifted"])


def _drift_verdicts(results: list) -> list[tuple[str, str, bool]]:
    return sorted((r.feature or "", r.method, r.drifted) for r in results if r.kind == "drift")


def _sampled_vs_exact(sampled: list, exact_rows: list) -> tuple[dict[str, float], list[str]]:
    """The largest |statistic - exact| per method, and the feature/method whose verdict flag differs."""
    exact = {(r.feature, r.method): r for r in exact_rows if r.kind in ("drift", "data_quality")}
    deviation: dict[str, float] = {}
    flags_differ = []
    for r in sampled:
        e = exact.get((r.feature, r.method))
        if e is None:
            continue
        if e.statistic is not None and r.statistic is not None:
            deviation[r.method] = max(deviation.get(r.method, 0.0), abs(r.statistic - e.statistic))
        if e.drifted != r.drifted:
            flags_differ.append(f"{r.feature}/{r.method}")
    return deviation, sorted(flags_differ)


def run_modelwatch(url: str, heap: bool) -> dict:
    """The timings and verdicts of the modelwatch contender on the store at `url` (see the module docstring)."""
    from modelwatch_analyzer.analysis import analyze, baseline
    from modelwatch_analyzer.store import schema
    from modelwatch_analyzer.store.client import Store

    store = Store(url)
    schema.apply(store)  # a data set kept by an older version gets the newer migrations (not timed)
    ref_w, cur_w = windows()
    b, t_baseline, c_baseline = _timed(lambda: baseline.from_window(store, ref_w, "1"))
    # cold: nothing kept yet, every row scanned (and the hour kept)
    rows, t_analyze, c_analyze = _timed(lambda: analyze.analyze(store, cur_w, baseline=b))
    # the same window again: its hour read back after a row count
    warm, t_warm, c_warm = _timed(lambda: analyze.analyze(store, cur_w, baseline=b))
    # cold again, with a numeric sample: numeric features from a ~1M-row uniform sample (nothing kept is read)
    sampled_settings = analyze.Settings(reuse_hours=False, numeric_sample_rows=SAMPLE_ROWS)
    sampled, t_sampled, c_sampled = _timed(lambda: analyze.analyze(store, cur_w, sampled_settings, baseline=b))
    deviation, flags_differ = _sampled_vs_exact(sampled, rows)
    out = {"baseline_s": t_baseline, "analyze_s": t_analyze, "baseline_cpu": c_baseline, "analyze_cpu": c_analyze,
           "warm_s": t_warm, "warm_cpu": c_warm, "columns": len(b.features),
           "warm_hours_reused": next(r for r in warm if r.kind == "summary").details["hours_reused"],
           "warm_same": _drift_verdicts(warm) == _drift_verdicts(rows),
           "sampled_s": t_sampled, "sampled_cpu": c_sampled,
           "sample_rate": next(r for r in sampled if r.kind == "summary").details.get("sample_rate", 1.0),
           "sampled_deviation": deviation, "sampled_drifted": _drifted(sampled), "sampled_flags_differ": flags_differ,
           "drifted": _drifted(rows),
           "scores": {r.feature: r.statistic for r in rows if r.kind == "drift" and r.details.get("score")}}
    if heap:  # the scan path's heap (no kept hours read), which is what could grow with the rows
        tracemalloc.start()
        analyze.analyze(store, cur_w, analyze.Settings(reuse_hours=False), baseline=b)
        out["heap_peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    store.close()
    return out
