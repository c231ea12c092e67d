"""Full drift of 27 columns, current vs reference: modelwatch (SQL in embedded chDB + scipy) against a plain
numpy/scipy pass and Evidently's data drift preset, on the same generated data, in one run.

    python benchmarks/bench_analyzer.py [--rows 1000000] [--small-rows N] [--skip-evidently]

Data (seeded, the same for every contender): 20 numeric features of varied
shape (normal, lognormal, exponential, uniform, bimodal, integer counts,
heavy tails, three with missing values), 5 categorical features of
cardinality 2 to 1,000, and the model's output (a score and a class: 27
columns analysed), ``--rows`` rows per side; 7 columns drift in the current
side (5 numeric, 2 categorical). It is generated with numpy into two parquet
files, then loaded into a fresh embedded store's ``ml_predictions`` (schema
from ``modelwatch_analyzer.store.schema.apply``) by one ``INSERT ... SELECT FROM
file()`` per side; the reference is one hour of day -3, the current one hour
of day -2. Generation and loading are timed but not part of any contender.

Contenders, each in its own subprocess (peak RSS = the child's ``ru_maxrss``):

* **modelwatch**: ``baseline.from_window`` on the reference window (reported
  separately), then ``analyze.analyze`` of the current window against it:
  cold (every row scanned; the window's hour is then kept, see
  ``modelwatch_analyzer/analysis/hourly.py``) and again (the kept hour read back after
  a row count, as the scheduled analyzer's overlapping windows do), and cold
  once more with a numeric sample of ``SAMPLE_ROWS`` rows (``numeric_sample_rows``:
  numeric features from a uniform sample; compared with the exact run: the
  largest deviation per method and the verdicts that differ).
  The analyzer's own Python heap (``tracemalloc`` peak of a scanning
  ``analyze`` call) is also measured on a second, smaller data set
  (``--small-rows``, default rows / 10) to show that it does not grow with
  the rows: the rows stay in the engine.
* **numpy/scipy**: the parquet files loaded into arrays (load time reported,
  not counted), then per numeric column ``ks_2samp``, PSI on reference
  deciles, ``wasserstein_distance`` (normalised by the reference std) and
  Jensen-Shannon on the decile bins; per categorical column
  ``chi2_contingency``, PSI and Jensen-Shannon on the category counts
  (from dictionary codes: no string sorting). Same verdict rule as
  modelwatch's defaults: PSI >= 0.1 and BH-adjusted test p < 0.05.
* **Evidently** 0.7 ``DataDriftPreset()`` defaults, in its own virtual
  environment (``--evidently-python``, default ``/tmp/venv-evidently/bin/python``;
  create it with ``python -m venv /tmp/venv-evidently && /tmp/venv-evidently/bin/pip
  install 'evidently==0.7.*' 'pandas<3' pyarrow``), on DataFrames read from the
  parquet files; skipped, with the reason printed, when it is not installed or
  when ``--rows`` exceeds ``--evidently-max-rows`` (at 10M rows it needs more
  than 19 GB).

Targets: >= 40x faster than Evidently's default preset and >= 5x
faster than numpy/scipy at 1M rows; 10M rows per side in <= 10 s embedded;
the analyzer's own memory does not grow with the rows.

The parts live in ``benchmarks/analyzer_bench/``: ``data`` (generation and
loading), ``harness`` (one process per contender), ``modelwatch_run``,
``baselines`` (numpy/scipy, Evidently) and ``printout``. This script parses
the flags, and is also what each contender's process runs (the hidden
``--_contender`` flag).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from analyzer_bench import printout
from analyzer_bench.baselines import run_evidently, run_numpy
from analyzer_bench.data import load_store
from analyzer_bench.harness import child, prepare
from analyzer_bench.modelwatch_run import run_modelwatch


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per side")
    parser.add_argument("--small-rows", type=int, default=None, help="rows per side of the heap-growth check "
                        "(default rows / 10; 0 skips it)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--evidently-python", default="/tmp/venv-evidently/bin/python")
    parser.add_argument("--evidently-max-rows", type=int, default=2_000_000)
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--skip-numpy", action="store_true")
    parser.add_argument("--keep", help="keep the data in this directory (default: a temporary one, removed)")
    parser.add_argument("--_contender", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--heap", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    return parser.parse_args()


def contender(args: argparse.Namespace) -> int:
    """Inside a contender's process: run it, print its figures as one JSON line."""
    if args._contender == "load":
        result = load_store(args.url, args.files)
    elif args._contender == "modelwatch":
        result = run_modelwatch(args.url, args.heap)
    elif args._contender == "numpy":
        result = run_numpy(*args.files)
    elif args._contender == "evidently":
        result = run_evidently(*args.files)
    else:
        raise SystemExit(f"unknown contender {args._contender}")
    print(json.dumps(result))
    return 0


def small_heap(args: argparse.Namespace, workdir: str, small: int) -> int:
    """The analyzer's heap peak on the smaller data set (made, measured, removed unless --keep)."""
    sdir = os.path.join(workdir, "small")
    os.makedirs(sdir, exist_ok=True)
    surl, _, _ = prepare(sdir, small, args.seed)
    smw, srss, s0, s1 = child(["--_contender", "modelwatch", "--url", surl, "--heap"])
    printout.small_line(small, smw, srss, s0, s1)
    if not args.keep:
        shutil.rmtree(sdir, ignore_errors=True)
    return smw["heap_peak_bytes"]


def evidently(args: argparse.Namespace, files: list[str]) -> tuple[dict | None, printout.Row | None]:
    """Evidently's figures and table row, or (None, None) with the reason printed when it is not run."""
    if args.skip_evidently:
        print("Evidently: skipped (--skip-evidently)")
    elif args.rows > args.evidently_max_rows:
        print(f"Evidently: skipped at {args.rows:,} rows (> --evidently-max-rows {args.evidently_max_rows:,}; "
              "it needs more than 19 GB at 10M rows)")
    elif not os.path.exists(args.evidently_python) or subprocess.run(
            [args.evidently_python, "-c", "import evidently, pyarrow"], capture_output=True).returncode != 0:
        print(f"Evidently: not installed in {args.evidently_python} (see the module docstring); skipped")
    else:
        version = subprocess.run([args.evidently_python, "-c", "import evidently; print(evidently.__version__)"],
                                 capture_output=True, text=True).stdout.strip()
        ev, erss, e0, e1 = child(["--_contender", "evidently", *files], python=args.evidently_python)
        return ev, printout.evidently_line(version, ev, erss, e0, e1)
    return None, None


def compare(args: argparse.Namespace, workdir: str) -> None:
    """Every contender on the same data, then the table, the targets and the drifted columns."""
    small = args.rows // 10 if args.small_rows is None else args.small_rows
    url, files, prep = prepare(os.path.join(workdir, "main"), args.rows, args.seed)
    printout.data_line(prep)
    mw, rss, l0, l1 = child(["--_contender", "modelwatch", "--url", url, "--heap"])
    table = printout.modelwatch_lines(mw, rss, l0, l1)
    heap_small = small_heap(args, workdir, small) if small else None
    npy = None
    if not args.skip_numpy:
        npy, nrss, n0, n1 = child(["--_contender", "numpy", *files])
        table.append(printout.numpy_line(npy, nrss, n0, n1))
    ev, ev_row = evidently(args, files)
    if ev_row is not None:
        table.append(ev_row)
    printout.table(table, args.rows, mw["analyze_s"])
    printout.targets(args.rows, mw, npy, ev, small, heap_small)
    printout.drifted_columns(mw, npy, ev)


def main() -> int:
    args = parse_args()
    if args._contender:  # inside a contender's process
        return contender(args)
    workdir = args.keep or tempfile.mkdtemp(prefix="mw-analyzer-")
    os.makedirs(workdir, exist_ok=True)
    printout.header(args.rows)
    try:
        compare(args, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
