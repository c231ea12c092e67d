"""A bounded fuzz/soak probe of ``modelwatch serve``, the SDK and the CLI, as an attacker and a new user would use them.

    python benchmarks/probe_security.py [--quick] [--seed 1] [--only 1,3]

Everything runs on loopback, in temporary directories, against real
``modelwatch serve`` processes (each killed on the way out, even on failure).
Probes:

1. malformed OTLP (~741 seeded payloads over HTTP, a share over gRPC): every
   answer is one the docs name (2xx / 4xx / 503, never a crash), serve stays up,
   every acknowledged batch is stored, and nothing of a refused one;
2. kill -9 during ingest, N rounds: every acknowledged span is in ``otel_traces``
   and ``ml_predictions`` after the restart, and ``modelwatch status`` does not warn;
3. overload at twice the concurrency limit (512 requests at once): 2xx or
   503/429 with ``Retry-After``; every 2xx stored, nothing refused stored;
4. auth: bearer-token variants (401, nothing stored) and the CLI endpoint's
   checks (secret, Host, Origin, content type, foreign --url, paths, symlinks);
5. 16k hostile SDK calls (unreachable endpoint, disabled, unconfigured): the SDK
   never raises anything but the model's own exceptions;
6. concurrent analyses with alerting: serve's scheduled analyzer and several
   forwarded ``analyze --alert`` at once; each alert key is POSTed exactly once;
7. the CLI as a new user: mistakes and hostile arguments get a documented exit
   code and a short message, never a traceback or a raw escape sequence, and a
   port out of range is refused rather than bound elsewhere.

One line per probe, then a Markdown table (probe, cases, failures, seconds)
that can be pasted into docs. Exit 1 when any probe failed. The default run is
bounded to about 5 minutes on 2 cores; ``--quick`` takes about one.

This script keeps the options, the run loop and the summary; the probes are in
``benchmarks/security_probe/`` (this folder is on ``sys.path`` when the script
runs): ``common`` (results, children, serve, requests), ``payloads`` and
``cases`` (OTLP payloads, probe 1's cases), then one module per probe:
``malformed``, ``kill9``, ``overload``, ``auth``, ``sdk_calls``, ``alerting``,
``cli_user``.
"""
from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from security_probe.alerting import probe_alerts
from security_probe.auth import probe_auth
from security_probe.cli_user import probe_cli_usage
from security_probe.common import Probe, kill_children
from security_probe.kill9 import probe_kill9
from security_probe.malformed import probe_malformed
from security_probe.overload import probe_overload
from security_probe.sdk_calls import probe_sdk, sdk_child

PROBES = [(1, "malformed OTLP", probe_malformed), (2, "kill -9 during ingest", probe_kill9),
          (3, "overload at 2x the limit", probe_overload), (4, "auth and the CLI endpoint", probe_auth),
          (5, "hostile SDK calls", probe_sdk), (6, "concurrent alerting", probe_alerts),
          (7, "the CLI as a new user", probe_cli_usage)]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a small version of every probe (about a minute)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", default="", help="comma-separated probe numbers (default: all)")
    ap.add_argument("--cases", type=int, help="malformed payloads (default 741; --quick 120)")
    ap.add_argument("--kill-rounds", type=int, help="kill -9 rounds (default 5; --quick 2)")
    ap.add_argument("--kill-after", type=float, default=3.0, help="kill within this many seconds of the sender's start")
    ap.add_argument("--overload", type=int, default=512, help="concurrent HTTP requests (the limit is 256)")
    ap.add_argument("--overload-spans", type=int, help="spans per overload request (default 100; --quick 20)")
    ap.add_argument("--sdk-calls", type=int, help="hostile SDK calls in all (default 16000; --quick 3000)")
    ap.add_argument("--sdk-timeout", type=float, default=240)
    ap.add_argument("--alert-procs", type=int, help="concurrent analyze --alert processes (default 4; --quick 2)")
    ap.add_argument("--alert-spans", type=int, default=1000)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--sdk-child", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def run_probe(number: int, name: str, fn, args: argparse.Namespace, tmp: Path) -> Probe:
    """One probe, its line and its first failures printed; a probe that raises has failed."""
    p = Probe(number, name)
    t = time.monotonic()
    try:
        fn(p, args, tmp)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - a probe that cannot finish has failed
        import traceback
        p.fail(f"probe aborted: {type(exc).__name__}: {exc}\n{traceback.format_exc()[-1500:]}")
    finally:
        kill_children()
    p.seconds = time.monotonic() - t
    verdict = "ok" if not p.failures else f"FAILED ({len(p.failures)})"
    print(f"probe {number} {name}: {p.cases} checks, {len(p.failures)} failures, {p.seconds:.1f} s: {verdict}"
          f"\n    {p.detail}", flush=True)
    for f in p.failures[:12]:
        print(f"    FAIL {f}", flush=True)
    if len(p.failures) > 12:
        print(f"    ... and {len(p.failures) - 12} more", flush=True)
    return p


def summary(results: list[Probe], total: float, args: argparse.Namespace) -> int:
    """The Markdown table and the last line; the exit code."""
    print("\n| probe | checks | failures | seconds |\n|---|---:|---:|---:|")
    for p in results:
        print(f"| {p.number}. {p.name} | {p.cases} | {len(p.failures)} | {p.seconds:.0f} |")
    failed = sum(bool(p.failures) for p in results)
    print(f"\n{len(results)} probes in {total:.0f} s ({'--quick' if args.quick else 'default'}, seed {args.seed}): "
          + ("all passed" if not failed else f"{failed} FAILED"))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.sdk_child:
        return sdk_child(args.sdk_child, args.sdk_calls, args.seed)
    q = args.quick
    args.cases = args.cases or (120 if q else 741)
    args.kill_rounds = args.kill_rounds or (2 if q else 5)
    args.overload_spans = args.overload_spans or (20 if q else 100)
    args.sdk_calls = args.sdk_calls or (3000 if q else 16000)
    args.alert_procs = args.alert_procs or (2 if q else 4)
    only = {int(x) for x in args.only.split(",") if x.strip()}

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    tmp = Path(tempfile.mkdtemp(prefix="modelwatch-probe-"))
    results: list[Probe] = []
    t_all = time.monotonic()
    try:
        for number, name, fn in PROBES:
            if not only or number in only:
                results.append(run_probe(number, name, fn, args, tmp))
    finally:
        kill_children()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return summary(results, time.monotonic() - t_all, args)


if __name__ == "__main__":
    sys.exit(main())
