"""``modelwatch demo``: the whole product in one command, on this machine, in under a minute.

This module tells the story, step by step; each step lives in a module of
its own. Every step is the real thing: OTLP over HTTP, chDB, the analyzer,
the alerter, the report.

1. starts the embedded receiver in-process on free ports, on a store
   directory: a fresh temporary one, or ``--url``
   (:mod:`modelwatch_analyzer.demo.pipeline`);
2. trains a credit-risk classifier (logistic regression, numpy) on
   generated applicants (:mod:`modelwatch_analyzer.demo.world`);
3. decorates its scoring function with :func:`modelwatch.monitor` and
   streams applications over ``--days`` simulated days, exported by the SDK
   over OTLP to the receiver. Midway a **drift event** happens (a recession,
   a new region, an upstream form change); ground truth arrives a day late
   (:mod:`modelwatch_analyzer.demo.traffic`);
4. builds the baseline from the first day, analyses every later day, fires
   and delivers alerts (to a webhook in this process) and a retrain trigger
   (:mod:`modelwatch_analyzer.demo.daily_analysis`);
5. prints a summary (:mod:`modelwatch_analyzer.demo.summary`), writes the
   HTML report, and says what to run next.

What it prints from the store (feature names, categories, alert messages,
trace ids; ``--url`` may name a store that already holds data) passes
through :func:`modelwatch_analyzer.textsafe.escape`.
"""

from __future__ import annotations

import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from modelwatch import pipeline as sdk_pipeline

from modelwatch_analyzer.analysis import results as results_mod
from modelwatch_analyzer.demo import traffic, world
from modelwatch_analyzer.demo.daily_analysis import analyse_days
from modelwatch_analyzer.demo.options import DemoOptions
from modelwatch_analyzer.demo.pipeline import Pipeline
from modelwatch_analyzer.demo.summary import say_summary
from modelwatch_analyzer.demo.traffic import Day
from modelwatch_analyzer.report import html as report
from modelwatch_analyzer.store.client import Store
from modelwatch_analyzer.textsafe import escape as e

__all__ = ["DemoOptions", "run"]


def run(options: DemoOptions) -> int:
    """Run the demo; returns the exit code (0 when everything happened as described)."""
    say = options.print
    started = time.monotonic()
    problem = options.problem()
    if problem is not None:
        say(f"modelwatch demo: {problem}")
        return 2
    if sdk_pipeline.current() is not None:
        say("modelwatch demo: the SDK is already configured in this process; run the demo in a process of its own")
        return 2
    url = options.url or f"chdb://{tempfile.mkdtemp(prefix='modelwatch-demo-')}"
    rng = np.random.default_rng(options.seed)

    say("modelwatch demo: a credit-risk model, monitored end to end on this machine (no Docker, no server)")
    pipeline = Pipeline(url, options.database)
    store = pipeline.store
    say(f"  receiver  OTLP/HTTP on http://127.0.0.1:{pipeline.server.http_port}, "
        f"gRPC on 127.0.0.1:{pipeline.server.grpc_port}")
    say(f"  store     {e(store.location)} (database {store.database})")
    try:
        clf, default_rate, accuracy = world.train(rng)
        say(f"  model     logistic regression on 9 features, trained on {world.TRAINING_ROWS:,} generated applicants "
            f"(default rate {default_rate:.0%}, training accuracy {accuracy:.1%})")
        clock = pipeline.connect_sdk()
        days = traffic.day_bounds(options.days, datetime.now(timezone.utc))
        traffic.stream(options, rng, clf, clock, pipeline.telemetry, days)
        pipeline.shutdown_sdk()
        total = options.days * options.per_day
        stored = pipeline.stored_predictions()
        say(f"  stored: {stored:,} of {total:,} predictions as spans ({stored / total:.0%}), "
            "typed into ml_predictions at insert")
        per_day = analyse_days(say, store, days, pipeline.webhook.url)
        say_summary(say, per_day, options.drift_day)
        _write_report(options, pipeline, days)
        _say_next(options, url, started, len(results_mod.load(store, world.MODEL)))
        if options.ui:
            _serve_ui(options, store)
        return 0
    finally:
        pipeline.close()


def _serve_ui(options: DemoOptions, store: Store) -> None:
    """The web UI on the demo's store, until Ctrl-C (or ``options.ui_stop``)."""
    from modelwatch_analyzer.ui.server import UiServer

    ui = UiServer(store, port=options.ui_port)
    port = ui.start()
    options.print(f"\nweb UI on http://127.0.0.1:{port}/ (read-only; Ctrl-C to stop)")
    try:
        while not options.ui_stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        ui.stop()


def _write_report(options: DemoOptions, pipeline: Pipeline, days: list[Day]) -> None:
    """The HTML report of the simulated days, and what the local webhook received."""
    say = options.print
    out = Path(options.out).expanduser().resolve()
    say("\nwriting the report")
    report.write(pipeline.store, out, since=days[0][0], until=days[-1][1])
    say(f"  {out}  ({out.stat().st_size / 1024:,.0f} KiB, one self-contained file: open it in a browser)")
    say(f"  the local webhook received {pipeline.webhook.received('/alerts')} alert(s) and "
        f"{pipeline.webhook.received('/retrain')} retrain trigger(s)")


def _say_next(options: DemoOptions, url: str, started: float, stored_results: int) -> None:
    """How long it took, and the commands to run next on the same store."""
    say = options.print
    shown = _shell_url(url)
    db = f" --database {options.database}" if options.database else ""
    say(f"\ndone in {time.monotonic() - started:.0f} s ({stored_results:,} results stored). Next:")
    say(f"  modelwatch status --url {shown}{db} --cost      # what the store holds, what monitoring costs")
    say(f"  modelwatch analyze --url {shown}{db} --model {world.MODEL} --last 24h")
    say(f"  modelwatch report --url {shown}{db} --last {options.days}d --out report.html")
    say(f"  modelwatch serve --url {shown}{db}               # then point your own service at it:")
    say("  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 python my_service.py   (see README: Using the SDK)")


def _shell_url(url: str) -> str:
    """`url` as it can be pasted into a shell: quoted unless it is made of safe characters only."""
    return url if all(c.isalnum() or c in ":/._-~+" for c in url) else f"'{url}'"
