"""What the analyzer benchmark prints: a line per contender as it finishes, then the table, the targets and verdicts.

Every contender's figures arrive as the dict its process printed as JSON
(:func:`analyzer_bench.harness.child`); the table has one :class:`Row` per
timed run, compared with modelwatch's cold ``analyze`` (wall seconds).
"""

from __future__ import annotations

import os
from typing import NamedTuple

from analyzer_bench.data import DRIFTED
from analyzer_bench.harness import load
from analyzer_bench.modelwatch_run import SAMPLE_ROWS


class Row(NamedTuple):
    """One line of the table: a timed run, its wall and CPU seconds, its process's peak RSS and load averages."""

    name: str
    seconds: float
    cpu_seconds: float
    rss_mb: float
    load_before: str
    load_after: str


def header(rows: int) -> None:
    print(f"modelwatch analyzer benchmark: {rows:,} rows per side, 27 columns (20 numeric + 5 categorical "
          f"features, score, class), drifted by design: {', '.join(DRIFTED)}; {os.cpu_count()} CPUs, load {load()}",
          flush=True)


def data_line(prep: dict) -> None:
    reused = " (reused from an earlier --keep run)" if prep.get("reused") else ""
    print(f"data{reused}: generated + parquet {prep['generate']:.1f} s; chDB insert {prep['insert']:.1f} s, "
          f"OPTIMIZE FINAL {prep['merge']:.1f} s; {prep['rows']:,.0f} rows in {prep['parts']:.0f} parts, "
          f"{prep['bytes'] / 1e6:,.0f} MB on disk", flush=True)


def modelwatch_lines(mw: dict, rss: float, l0: str, l1: str) -> list[Row]:
    """The modelwatch contender's lines; returns its rows of the table."""
    print(f"modelwatch: baseline {mw['baseline_s']:.2f} s ({mw['baseline_cpu']:.1f} CPU-s), analyze {mw['analyze_s']:.2f} s "
          f"({mw['analyze_cpu']:.1f} CPU-s), again with the window's hour kept {mw['warm_s']:.2f} s "
          f"({mw['warm_cpu']:.1f} CPU-s; {mw['warm_hours_reused']} hour read back, same verdicts: "
          f"{'yes' if mw['warm_same'] else 'NO'}), peak RSS {rss:,.0f} MB, "
          f"analyzer heap peak {mw['heap_peak_bytes'] / 1e6:.2f} MB (load {l0} -> {l1})", flush=True)
    table = [Row("modelwatch analyze (baseline given)", mw["analyze_s"], mw["analyze_cpu"], rss, l0, l1),
             Row("modelwatch analyze again (hour kept)", mw["warm_s"], mw["warm_cpu"], rss, l0, l1)]
    if mw["sample_rate"] < 1:
        dev = ", ".join(f"{m} {d:.4f}" for m, d in sorted(mw["sampled_deviation"].items()) if d > 0)
        print(f"modelwatch with a numeric sample of {SAMPLE_ROWS:,} rows (numeric features from a uniform "
              f"{mw['sample_rate']:.1%} sample; categories and totals whole): analyze {mw['sampled_s']:.2f} s "
              f"({mw['sampled_cpu']:.1f} CPU-s); drifted columns "
              f"{'the same' if mw['sampled_drifted'] == mw['drifted'] else mw['sampled_drifted']}; "
              f"largest |statistic - exact| per method: {dev}; per-row flags that differ: "
              f"{', '.join(mw['sampled_flags_differ']) or 'none'}", flush=True)
        table.append(Row(f"modelwatch analyze, numeric sample of {SAMPLE_ROWS:,} rows", mw["sampled_s"],
                         mw["sampled_cpu"], rss, l0, l1))
    table.append(Row("modelwatch baseline from window", mw["baseline_s"], mw["baseline_cpu"], rss, l0, l1))
    table.append(Row("modelwatch baseline + analyze", mw["baseline_s"] + mw["analyze_s"],
                     mw["baseline_cpu"] + mw["analyze_cpu"], rss, l0, l1))
    return table


def small_line(small: int, smw: dict, rss: float, l0: str, l1: str) -> None:
    print(f"modelwatch at {small:,} rows: analyze {smw['analyze_s']:.2f} s, peak RSS {rss:,.0f} MB, analyzer "
          f"heap peak {smw['heap_peak_bytes'] / 1e6:.2f} MB (load {l0} -> {l1})", flush=True)


def numpy_line(npy: dict, rss: float, l0: str, l1: str) -> Row:
    print(f"numpy/scipy: load {npy['load_s']:.2f} s (not counted), compute {npy['compute_s']:.2f} s, "
          f"peak RSS {rss:,.0f} MB (load {l0} -> {l1})", flush=True)
    return Row("numpy/scipy pass", npy["compute_s"], npy["compute_cpu"], rss, l0, l1)


def evidently_line(version: str, ev: dict, rss: float, l0: str, l1: str) -> Row:
    print(f"Evidently {version} DataDriftPreset: load {ev['load_s']:.2f} s (not counted), compute "
          f"{ev['compute_s']:.2f} s, peak RSS {rss:,.0f} MB (load {l0} -> {l1})", flush=True)
    return Row(f"Evidently {version} DataDriftPreset()", ev["compute_s"], ev["compute_cpu"], rss, l0, l1)


def table(rows: list[Row], rows_per_side: int, base: float) -> None:
    """The markdown table; `base` is modelwatch's cold analyze, in wall seconds."""
    print()
    print("| contender | rows per side | seconds | CPU-seconds | peak RSS (MB) | x modelwatch analyze (wall) "
          "| load avg before -> after |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, secs, cpus, mb, a, b in rows:
        print(f"| {name} | {rows_per_side:,} | {secs:.2f} | {cpus:.1f} | {mb:,.0f} | {secs / base:.1f} | {a} -> {b} |")


def targets(rows: int, mw: dict, npy: dict | None, ev: dict | None, small: int, heap_small: int | None) -> None:
    """The targets, each met, MISSED, or not measured in this run."""
    base = mw["analyze_s"]
    print()
    print("targets:")
    if ev is not None:
        r = ev["compute_s"] / base
        print(f"  >= 40x faster than Evidently's default preset: {r:.0f}x  {'ok' if r >= 40 else 'MISSED'}")
    else:
        print("  >= 40x faster than Evidently's default preset: not measured in this run")
    if npy is not None:
        r = npy["compute_s"] / base
        print(f"  >= 5x faster than numpy/scipy: {r:.1f}x  {'ok' if r >= 5 else 'MISSED'}"
              + ("" if rows == 1_000_000 else f" (target stated at 1M rows; this run: {rows:,})"))
    if rows >= 10_000_000:
        print(f"  10M rows per side in <= 10 s embedded: analyze {base:.2f} s  {'ok' if base <= 10 else 'MISSED'}"
              f" (baseline from the window: {mw['baseline_s']:.2f} s, once per model version; the same window "
              f"with its hour kept: {mw['warm_s']:.2f} s; with a numeric sample of {SAMPLE_ROWS:,} rows: "
              f"{mw['sampled_s']:.2f} s {'ok' if mw['sampled_s'] <= 10 else 'MISSED'})")
    else:
        print("  10M rows per side in <= 10 s: not measured in this run (--rows 10000000)")
    if heap_small is not None:
        ratio = mw["heap_peak_bytes"] / max(heap_small, 1)
        print(f"  analyzer heap does not grow with rows: {heap_small / 1e6:.2f} MB at {small:,} rows, "
              f"{mw['heap_peak_bytes'] / 1e6:.2f} MB at {rows:,} rows ({ratio:.2f}x for "
              f"{rows / small:.0f}x the rows)  {'ok' if ratio < 1.5 else 'GROWS'}")


def drifted_columns(mw: dict, npy: dict | None, ev: dict | None) -> None:
    """The columns each contender found drifted, against the designed ones."""
    print()
    print("drifted columns (designed: " + ", ".join(DRIFTED) + ")")
    print(f"  modelwatch  : {', '.join(mw['drifted'])}")
    if npy is not None:
        print(f"  numpy/scipy : {', '.join(npy['drifted'])}")
        print(f"  agree: {'yes' if npy['drifted'] == mw['drifted'] else 'NO'}")
    if ev is not None:
        print(f"  Evidently   : {', '.join(ev['drifted'])} (DriftedColumnsCount {ev['drifted_count']})")
