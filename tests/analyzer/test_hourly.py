"""Hourly aggregates: a later analysis reads the whole hours an earlier one kept, and gets the scan's results."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from analyzer_data import T0, insert
from modelwatch_analyzer.analysis import analyze, baseline, hourly, scan
from modelwatch_analyzer.analysis.window import Window

REF = Window("m", T0, T0 + timedelta(hours=1))
# 4:30 to 9:15: four whole hours kept (5 to 9), the part hours at both ends scanned every time
CUR = Window("m", T0 + timedelta(hours=4, minutes=30), T0 + timedelta(hours=9, minutes=15))
NO_REUSE = analyze.Settings(reuse_hours=False)


def _fill(store, seed: int = 3) -> None:
    rng = np.random.default_rng(seed)
    n = 4000
    cats = np.array(["a", "b", "c", "d"])
    insert(store, "m", T0, {"x": rng.normal(0, 1, n), "y": rng.lognormal(0, 1.5, n)},
           {"c": cats[rng.integers(0, 4, n)]}, score=rng.beta(2, 3, n))
    baseline.save(store, baseline.from_window(store, REF, "1"))
    x = rng.normal(0.3, 1.2, 6 * n)
    x[rng.uniform(size=6 * n) < 0.02] = np.inf  # non-finite values count apart
    y = rng.lognormal(0.2, 1.5, 6 * n)
    y[rng.uniform(size=6 * n) < 0.1] = np.nan  # missing
    insert(store, "m", T0 + timedelta(hours=4), {"x": x, "y": y}, {"c": cats[rng.integers(0, 4, 6 * n)]},
           weights=rng.choice([1.0, 10.0], 6 * n), score=rng.beta(2, 2.5, 6 * n), seconds=6 * 3600, id_prefix="c")


def _results(rows):
    out = {}
    for r in rows:
        if r.kind in ("drift", "data_quality"):
            out[r.feature, r.method] = (r.statistic, r.pvalue, r.drifted, r.severity, r.n_current)
    return out


def _close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and a
    for key in a:
        for x, y in zip(a[key], b[key]):
            if isinstance(x, float) and isinstance(y, float):
                assert x == pytest.approx(y, rel=1e-9, abs=1e-12), key
            else:
                assert x == y, key


def test_a_second_analysis_reads_the_kept_hours_and_gets_the_same_results(store):
    """The second analysis of a window takes its four whole hours from the store; every result equals a plain scan's."""
    _fill(store)
    scanned = analyze.analyze(store, CUR, NO_REUSE)
    first = analyze.analyze(store, CUR)
    second = analyze.analyze(store, CUR)
    summary = {r.kind: r for r in second}["summary"].details
    assert (summary["hours_reused"], summary["hours_scanned"]) == (4, 2)
    assert {r.kind: r for r in first}["summary"].details["hours_reused"] == 0
    _close(_results(second), _results(scanned))
    _close(_results(first), _results(scanned))
    assert any(r.drifted for r in scanned if r.kind == "drift")  # the comparison covers real verdicts


def test_late_rows_make_an_hour_scanned_again(store):
    """Rows arriving in a kept hour change its row count: that hour is scanned again, and its aggregates replaced."""
    _fill(store)
    analyze.analyze(store, CUR)
    insert(store, "m", T0 + timedelta(hours=6, minutes=10), {"x": np.full(500, 8.0)}, id_prefix="late", seconds=60)
    again = analyze.analyze(store, CUR)
    summary = {r.kind: r for r in again}["summary"].details
    assert (summary["hours_reused"], summary["hours_scanned"]) == (3, 3)
    _close(_results(again), _results(analyze.analyze(store, CUR, NO_REUSE)))
    third = {r.kind: r for r in analyze.analyze(store, CUR)}["summary"].details
    assert third["hours_reused"] == 4


def test_hours_are_kept_per_baseline(store):
    """A new baseline does not reuse the hours kept for another one: its grids differ."""
    _fill(store)
    analyze.analyze(store, CUR)
    other = baseline.from_window(store, Window("m", T0 + timedelta(hours=4), T0 + timedelta(hours=5)), "1")
    rows = analyze.analyze(store, CUR, baseline=other)
    assert {r.kind: r for r in rows}["summary"].details["hours_reused"] == 0
    _close(_results(rows), _results(analyze.analyze(store, CUR, NO_REUSE, baseline=other)))


def test_unsettled_hours_are_not_kept(store):
    """An hour that ended less than SETTLE_SECONDS ago is scanned, not kept (its rows may still be arriving)."""
    _fill(store)
    b = baseline.load(store, "m", "1")
    grids = {k: f.grid for k, f in b.numeric().items()}
    args = (store, CUR, b.id, grids, {}, list(b.features), [], 100)
    seven = (T0 + timedelta(hours=7)).timestamp()
    first = hourly.aggregates(*args, now=seven + hourly.SETTLE_SECONDS - 1)  # hour 6 ended just too recently
    assert (first.hours_reused, first.hours_scanned) == (0, 6)
    second = hourly.aggregates(*args, now=seven + hourly.SETTLE_SECONDS)  # hour 5 kept by the first call
    assert (second.hours_reused, second.hours_scanned) == (1, 5)
    third = hourly.aggregates(*args, now=CUR.end.timestamp() + hourly.SETTLE_SECONDS)
    assert (third.hours_reused, third.hours_scanned) == (2, 4)


def test_merging_hours_adds_sums_and_keeps_extremes():
    """Numeric parts add their sums and grids and keep the overall min and max; categorical parts add weights."""
    a = scan.NumericAgg(2.0, 2.0, 1.0, -1.0, 3.0, 2.0, 10.0, np.array([1.0, 1.0, 0.0]), 0.5, 0.0, 1.0)
    b = scan.NumericAgg(3.0, 5.0, 0.0, -4.0, 2.0, 1.0, 20.0, np.array([0.0, 2.0, 1.0]), 0.0, 0.25, 0.0)
    empty = scan.NumericAgg(grid_counts=np.zeros(3))
    m = hourly.merge_numeric([a, b, empty])
    assert (m.n, m.n2, m.nonfinite, m.min, m.max, m.s1, m.s2) == (5.0, 7.0, 1.0, -4.0, 3.0, 3.0, 30.0)
    assert m.grid_counts.tolist() == [1.0, 3.0, 1.0] and (m.tail_below, m.tail_above, m.out_of_range) == (0.5, 0.25, 1.0)
    c = hourly.merge_categorical([scan.CategoricalAgg({"u": 1.0, "v": 2.0}, 3.0, 5.0, 2),
                                  scan.CategoricalAgg({"v": 4.0}, 4.5, 17.0, 1)])
    assert (c.counts, c.n, c.n2) == ({"u": 1.0, "v": 6.0}, 7.5, 22.0)


def test_a_store_that_refuses_the_aggregates_still_analyses(store, monkeypatch):
    """When keeping the hourly aggregates fails, the analysis still completes with the scan's results."""
    _fill(store)

    def refuse(*_args, **_kwargs):
        from modelwatch_analyzer.errors import StoreError
        raise StoreError("read-only user")

    monkeypatch.setattr(store, "insert", refuse)
    rows = analyze.analyze(store, CUR)
    _close(_results(rows), _results(analyze.analyze(store, CUR, NO_REUSE)))
    assert {r.kind: r for r in analyze.analyze(store, CUR)}["summary"].details["hours_reused"] == 0


def test_a_categorical_features_numbers_are_counted_as_text_only_where_there_are_some(store):
    """A categorical feature's values arrive as numbers (Numeric map) in some hours and as text in others; the
    numeric scan finds which keys have numbers, and the categorical scan counts those numbers under their
    rendering, merged with the text: the counts equal numpy's, with hours reused or not."""
    import pandas as pd

    rng = np.random.default_rng(11)
    n = 3000
    base = baseline.from_frame(pd.DataFrame({"store": rng.choice(["101", "102", "007"], n), "x": rng.normal(size=n)}),
                               "m", "1", categorical=["store"])
    baseline.save(store, base)
    numbers = rng.choice([101.0, 102.0, 103.5], n)  # 4:00-5:00 as numbers ...
    insert(store, "m", T0 + timedelta(hours=4), {"store": numbers, "x": rng.normal(size=n)}, id_prefix="a")
    text = rng.choice(["007", "101"], n)  # ... 5:00-7:00 as text
    insert(store, "m", T0 + timedelta(hours=5), {"x": rng.normal(size=n)}, {"store": text}, seconds=7200, id_prefix="b")
    def counts(values) -> dict[str, float]:
        out: dict[str, float] = {}
        for v in values:
            out[v] = out.get(v, 0.0) + 1.0
        return out

    both = Window("m", T0 + timedelta(hours=4), T0 + timedelta(hours=7))
    text_only = Window("m", T0 + timedelta(hours=5), T0 + timedelta(hours=7))
    for window, want in ((both, counts([f"{x:g}" for x in numbers] + list(text))), (text_only, counts(text))):
        for reuse in (False, True, True):
            seen = hourly.aggregates(store, window, base.id, {"x": base.features["x"].grid}, {}, ["store", "x"],
                                     ["store"], 5000, reuse=reuse)
            assert seen.categorical["store"].counts == want and "store" not in seen.numeric
        assert seen.hours_reused == (3 if window is both else 2)
    drift = {r.method: r for r in analyze.analyze(store, both, NO_REUSE, baseline=base) if r.feature == "store"}
    assert drift["psi"].n_current == 2 * n and drift["psi"].drifted  # 103.5 is unseen
