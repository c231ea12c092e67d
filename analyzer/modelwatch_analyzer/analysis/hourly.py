"""Hourly aggregates of analysed windows, kept so that the next analysis reads them instead of the rows.

An analysis scans its window grouped by hour (:func:`.scan.numeric_by_hour`
and friends: still one pass per kind over the window's rows). The aggregates
of every whole hour of the window that ended at least :data:`SETTLE_SECONDS`
ago are stored in ``ml_hourly_aggregates``, keyed by model, version,
baseline and hour, with the hour's row count. The next analysis of a window
holding that hour (the scheduled analyzer's windows overlap by all but one
period: a 24-hour window every hour re-reads 23 hours) takes them from there,
after one cheap check per window: the rows per hour, counted from the time
column alone. An hour whose count changed (late rows) is scanned again and
its aggregates replaced, so a reused hour is always the one a scan would see.

Every aggregate is a sum (weights, squared weights, grid cells, tails,
out-of-range weight, category weights) or a min / max, so hours add up to the
window: the results equal a single scan's up to the order of floating-point
additions. One difference: a categorical feature with more than the cap's
values (5,000) in an hour keeps its heaviest values per hour, so which rare
values are named (rather than counted as "other") can differ from a scan of
the whole window at once. The current window's mean and variance are not
kept (an analysis does not use them).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Sequence

import numpy as np

from modelwatch_analyzer.analysis import scan
from modelwatch_analyzer.analysis.scan import HOUR, CategoricalAgg, NumericAgg, Totals
from modelwatch_analyzer.analysis.stats import Grid
from modelwatch_analyzer.analysis.window import Window, utc
from modelwatch_analyzer.errors import StoreError
from modelwatch_analyzer.store.client import Store

log = logging.getLogger("modelwatch.hourly")

SETTLE_SECONDS = 300
"""An hour's aggregates are kept once it ended this long ago (rows arriving later still invalidate them)."""

TABLE = "ml_hourly_aggregates"


@dataclass
class Hour:
    """One bucket's aggregates: the window's rows in it, and every feature's."""

    totals: Totals
    numeric: dict[str, NumericAgg] = field(default_factory=dict)
    categorical: dict[str, CategoricalAgg] = field(default_factory=dict)
    sample: float = 1.0  # the share of the hour's rows its numeric aggregates were read from (see scan.sample_rate)


@dataclass
class WindowAggregates:
    """A window's aggregates, and how many of its hours came from the store rather than from a scan."""

    totals: Totals
    numeric: dict[str, NumericAgg]
    categorical: dict[str, CategoricalAgg]
    hours_reused: int = 0
    hours_scanned: int = 0
    sample: float = 1.0  # the smallest share of an hour's rows its numeric aggregates were read from (1: all)


def aggregates(store: Store, window: Window, baseline_id: str, grids: dict[str, Grid],
               ranges: dict[str, tuple[float, float]], keys: Sequence[str], numbers_as_text: Sequence[str],
               cap: int, reuse: bool = True, now: float | None = None, numeric_sample_rows: int = 0) -> WindowAggregates:
    """The window's totals, numeric and categorical aggregates: kept hours read back, the rest scanned (and kept).

    With `numeric_sample_rows`, when the hours to scan hold more rows than that, the
    numeric scan reads a uniform sample of about that many (the totals and the
    categorical scan still read every row). Hours are kept with the share of
    rows their numeric aggregates come from: an analysis with `numeric_sample_rows` reads
    back any kept hour, one without only those read whole (it scans the others
    whole, which replaces them).
    """
    counts = row_counts(store, window)
    if not counts:
        return WindowAggregates(Totals(), {}, {})
    now = time.time() if now is None else now
    start, end = utc(window.start).timestamp(), utc(window.end).timestamp()  # type: ignore[union-attr]
    settled = {h for h in counts if h >= start and h + HOUR <= end and h + HOUR + SETTLE_SECONDS <= now}
    kept = _load(store, window, baseline_id, sorted(settled)) if reuse and settled else {}
    hours = {h: kept[h] for h in settled if h in kept and kept[h].totals.rows == counts[h]
             and (kept[h].sample == 1.0 or numeric_sample_rows > 0)}
    to_scan = sorted(set(counts) - set(hours))
    sample = scan.sample_rate(sum(counts[h] for h in to_scan), numeric_sample_rows)
    scanned: dict[int, Hour] = {}
    for a, b in _runs(to_scan):
        part = window.span(_time(max(start, a)), _time(min(end, b)))
        by_hour = b - a > HOUR  # one hour: no hour key to group by (a wider key costs ~5-10% of a scan)

        def bucket(h: int) -> int:
            return h if by_hour else a  # noqa: B023 - used within this iteration

        totals = scan.totals_by_hour(store, part, hourly=by_hour)
        found = {bucket(h): Hour(t, sample=sample) for h, t in totals.items()}
        numeric = scan.numeric_by_hour(store, part, grids, ranges, moments=False, hourly=by_hour, present=numbers_as_text,
                                       sample=sample)
        for (h, k), agg in numeric.items():
            if k in grids:
                found.setdefault(bucket(h), Hour(Totals(), sample=sample)).numeric[k] = agg
        # a categorical feature's numbers are read as text only where the numeric scan saw some
        seen_keys = {key for _h, key in numeric}
        as_text = [k for k in numbers_as_text if k == scan.PREDICTION or k in seen_keys]
        for (h, k), cat in scan.categorical_by_hour(store, part, keys, as_text, cap, hourly=by_hour).items():
            found.setdefault(bucket(h), Hour(Totals(), sample=sample)).categorical[k] = cat
        scanned.update(found)
    if reuse:
        _save(store, window, baseline_id, {h: v for h, v in scanned.items() if h in settled})
    every = list(hours.values()) + list(scanned.values())
    return WindowAggregates(
        Totals(sum(h.totals.weight for h in every), sum(h.totals.weight2 for h in every),
               sum(h.totals.rows for h in every)),
        {k: merge_numeric([h.numeric[k] for h in every if k in h.numeric]) for k in {k for h in every for k in h.numeric}},
        {k: merge_categorical([h.categorical[k] for h in every if k in h.categorical])
         for k in {k for h in every for k in h.categorical}},
        hours_reused=len(hours), hours_scanned=len(scanned), sample=min((h.sample for h in every), default=1.0))


def row_counts(store: Store, window: Window) -> dict[int, int]:
    """Rows of the window per hour (the hour's start, epoch seconds); reads the time column alone."""
    where, params = window.where()
    rows = store.query(f"SELECT toUInt32(toStartOfHour(Timestamp, 'UTC')) AS h, count() FROM {store.table('ml_predictions')} "
                       f"WHERE {where} GROUP BY h", params)
    return {int(h): int(n) for h, n in rows}


def merge_numeric(parts: list[NumericAgg]) -> NumericAgg:
    """The aggregates of the union of disjoint sets of rows (the grids must be the same)."""
    if len(parts) == 1:
        return parts[0]
    seen = [p for p in parts if p.n > 0]
    grids = [p.grid_counts for p in parts if p.grid_counts is not None]
    return NumericAgg(
        n=sum(p.n for p in parts), n2=sum(p.n2 for p in parts), nonfinite=sum(p.nonfinite for p in parts),
        min=min((p.min for p in seen), default=math.nan), max=max((p.max for p in seen), default=math.nan),
        s1=sum(p.s1 for p in parts), s2=sum(p.s2 for p in parts),
        grid_counts=np.sum(grids, axis=0) if grids else None,
        tail_below=sum(p.tail_below for p in parts), tail_above=sum(p.tail_above for p in parts),
        out_of_range=sum(p.out_of_range for p in parts), shift=parts[0].shift)  # one baseline: one grid, one shift


def merge_categorical(parts: list[CategoricalAgg]) -> CategoricalAgg:
    """Category weights added up; ``distinct`` becomes a lower bound (the largest part's)."""
    if len(parts) == 1:
        return parts[0]
    counts: dict[str, float] = {}
    for p in parts:
        for value, w in p.counts.items():
            counts[value] = counts.get(value, 0.0) + w
    return CategoricalAgg(counts=counts, n=sum(p.n for p in parts), n2=sum(p.n2 for p in parts),
                          distinct=max(p.distinct for p in parts))


def _runs(hours: list[int]) -> list[tuple[int, int]]:
    """Consecutive hours as [start, end) ranges of epoch seconds."""
    runs: list[list[int]] = []
    for h in hours:
        if runs and runs[-1][1] == h:
            runs[-1][1] = h + HOUR
        else:
            runs.append([h, h + HOUR])
    return [(a, b) for a, b in runs]


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


_COLUMNS = ("ModelName", "ModelVersion", "BaselineId", "HourStart", "Kind", "Feature", "ComputedAt", "Rows", "N", "N2",
            "NonFinite", "Min", "Max", "GridCounts", "TailBelow", "TailAbove", "OutOfRange", "Categories",
            "CategoryCounts", "Distinct", "SampleRate")


def _save(store: Store, window: Window, baseline_id: str, hours: dict[int, Hour]) -> None:
    """Keep `hours`; a store that refuses (read-only user, say) only costs the next analysis a scan."""
    if not hours:
        return
    at = datetime.now(timezone.utc)
    head = (window.model, window.version or "", baseline_id)
    rows = []
    for h, hour in hours.items():
        t, start = hour.totals, _time(h)
        rows.append(head + (start, "totals", "", at, t.rows, t.weight, t.weight2, 0.0, None, None, [], 0.0, 0.0, 0.0,
                            [], [], 0, hour.sample))
        for k, a in hour.numeric.items():
            rows.append(head + (start, "numeric", k, at, t.rows, a.n, a.n2, a.nonfinite,
                                scan.finite_or_none(a.min), scan.finite_or_none(a.max),
                                [float(x) for x in a.grid_counts] if a.grid_counts is not None else [],
                                a.tail_below, a.tail_above, a.out_of_range, [], [], 0, hour.sample))
        for k, c in hour.categorical.items():
            rows.append(head + (start, "categorical", k, at, t.rows, c.n, c.n2, 0.0, None, None, [], 0.0, 0.0, 0.0,
                                list(c.counts), list(c.counts.values()), c.distinct, hour.sample))
    try:
        store.insert(TABLE, rows, _COLUMNS)
    except StoreError as exc:
        log.warning("modelwatch: could not keep hourly aggregates (the next analysis scans those hours): %s", exc)


def _load(store: Store, window: Window, baseline_id: str, hours: list[int]) -> dict[int, Hour]:
    try:
        rows = store.query(
            f"SELECT toUInt32(HourStart), Kind, Feature, Rows, N, N2, NonFinite, Min, Max, GridCounts, TailBelow, "
            f"TailAbove, OutOfRange, Categories, CategoryCounts, Distinct, SampleRate FROM {store.table(TABLE)} FINAL "
            "WHERE ModelName = {model:String} AND ModelVersion = {version:String} AND BaselineId = {baseline:String} "
            "AND toUInt32(HourStart) IN {hours:Array(UInt32)}",
            {"model": window.model, "version": window.version or "", "baseline": baseline_id, "hours": hours})
    except StoreError as exc:
        log.warning("modelwatch: could not read hourly aggregates (scanning instead): %s", exc)
        return {}
    out: dict[int, Hour] = {}
    whole: set[int] = set()  # hours whose totals row was read (an hour is saved by one INSERT: all or nothing)
    for h, kind, feature, n_rows, n, n2, nonfinite, lo, hi, grid, below, above, oor, cats, weights, distinct, rate in rows:
        hour = out.setdefault(int(h), Hour(Totals()))
        if kind == "totals":
            hour.totals = Totals(float(n), float(n2), int(n_rows))
            hour.sample = float(rate)
            whole.add(int(h))
        elif kind == "numeric":
            hour.numeric[feature] = NumericAgg(float(n), float(n2), float(nonfinite), scan.as_float(lo),
                                               scan.as_float(hi), math.nan, math.nan,
                                               np.asarray(grid, dtype=float) if grid else None,
                                               float(below), float(above), float(oor))
        elif kind == "categorical":
            hour.categorical[feature] = CategoricalAgg(dict(zip(cats, (float(w) for w in weights))), float(n), float(n2),
                                                       int(distinct))
    return {h: v for h, v in out.items() if h in whole}
