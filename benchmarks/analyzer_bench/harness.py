"""How the analyzer benchmark runs its contenders: each in a fresh process, measured from outside and inside.

:func:`child` runs the entry script (:data:`SCRIPT`, ``benchmarks/bench_analyzer.py``)
again with the hidden ``--_contender`` flag, under a given Python (Evidently's
lives in a virtual environment of its own), and returns the JSON line it
prints, its peak RSS (``ru_maxrss`` from ``wait4``) and the load average
before and after. :func:`prepare` makes the data set once per directory (the
loading into the store is itself a contender: it runs in a child).
:func:`cpu` is what the contenders time themselves with.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from analyzer_bench.data import T0, write_parquet

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench_analyzer.py")
"""The benchmark's entry script, which each contender's process runs with ``--_contender``."""


def cpu() -> float:
    """CPU seconds of this process so far, all threads (the embedded engine's included)."""
    import resource

    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def load() -> str:
    """The load averages over 1, 5 and 15 minutes, as printed."""
    a, b, c = os.getloadavg()
    return f"{a:.2f} {b:.2f} {c:.2f}"


def child(argv: list[str], python: str = sys.executable) -> tuple[dict, float, str, str]:
    """Run the entry script as a contender in a fresh process: (its JSON, peak RSS in MB, load before, load after)."""
    before = load()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([python, SCRIPT, *argv], stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, errors = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"contender {argv[1]} failed ({proc.returncode}):\n{errors[-3000:]}")
    return json.loads(text.strip().splitlines()[-1]), usage.ru_maxrss / 1024, before, load()


def prepare(workdir: str, rows: int, seed: int) -> tuple[str, list[str], dict]:
    """The data set in `workdir`: made there, or reused when a previous run (--keep) left the same one."""
    os.makedirs(workdir, exist_ok=True)
    files = [os.path.join(workdir, f"{name}.parquet") for name in ("reference", "current")]
    url = f"chdb://{workdir}/store"
    marker = os.path.join(workdir, "data.json")
    if os.path.exists(marker):
        with open(marker) as f:
            done = json.load(f)
        if done.get("rows") == rows and done.get("seed") == seed and done.get("t0") == T0.isoformat():
            return url, files, {**done["figures"], "reused": True}
        raise SystemExit(f"{workdir} holds another data set ({done}); use another --keep directory")
    t0 = time.perf_counter()
    for side, path in enumerate(files):
        write_parquet(path, side, rows, seed)
    t_gen = time.perf_counter() - t0
    figures, rss, _, _ = child(["--_contender", "load", "--url", url, *files])
    figures["generate"] = t_gen
    figures["rss_mb"] = rss
    with open(marker, "w") as f:
        json.dump({"rows": rows, "seed": seed, "t0": T0.isoformat(), "figures": figures}, f)
    return url, files, figures
