"""Probe 1, malformed OTLP: every answer is one the docs name, serve stays up, every acknowledged batch is stored and
nothing of a refused one."""

from __future__ import annotations

import collections
import concurrent.futures
from pathlib import Path

from security_probe.cases import Case, malformed_cases
from security_probe.common import Probe, Serve, grpc_raw, post, query, stored_counts
from security_probe.payloads import SIGNAL_TABLE

GRPC_OK = {"OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "UNAVAILABLE", "UNAUTHENTICATED"}
GRPC_FOR_HTTP = {200: "OK", 400: "INVALID_ARGUMENT", 413: "RESOURCE_EXHAUSTED", 401: "UNAUTHENTICATED"}


def _documented_http(status: int) -> bool:
    return 200 <= status < 300 or status in (400, 401, 403, 404, 405, 413, 415, 429, 503) or (400 <= status < 500)


def probe_malformed(p: Probe, args, tmp: Path) -> None:
    cases = malformed_cases(args.cases, args.seed)
    store = tmp / "p1-store"
    serve = Serve(store)
    statuses: collections.Counter = collections.Counter()
    try:
        def send(c: Case) -> None:
            if c.grpc:
                c.status = grpc_raw(serve.grpc_port, c.sig, c.body)
            else:
                c.status = post(serve.http_port, c.path, c.body, c.headers)[0]

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(send, cases))
        alive = serve.healthy()
    finally:
        rc = serve.stop()
    p.check(alive, "serve was not healthy after the malformed payloads")
    p.check(rc == 0, f"serve's SIGTERM exit code {rc}")
    crashes = [ln for ln in serve.lines if "Traceback" in ln or "Exception in" in ln]
    p.check(not crashes, f"serve printed tracebacks: {''.join(crashes)[:300]}")
    stored = stored_counts(store, SIGNAL_TABLE)
    typed_rows = query(store, "SELECT splitByChar('~', PredictionId)[1] AS m, count(), "
                              "countIf(NOT isFinite(Weight) OR Weight < 1 OR Weight > 1e6) "
                              "FROM modelwatch.ml_predictions WHERE startsWith(PredictionId, 'pm') GROUP BY m")[0]
    typed = {m: int(c) for m, c, _bad in typed_rows}
    p.check(sum(int(b) for _m, _c, b in typed_rows) == 0, "ml_predictions holds weights outside [1, 1e6]")
    for c in cases:
        statuses[f"{'grpc ' if c.grpc else ''}{c.status}"] += 1
        what = f"{c.kind} ({'gRPC' if c.grpc else 'HTTP ' + c.path[:30]}): answered {c.status}"
        if c.grpc:
            acked = c.status == "OK"
            ok = c.status in GRPC_OK and (c.expect is None or c.status in {GRPC_FOR_HTTP.get(s) for s in c.expect}
                                          or (c.status == "RESOURCE_EXHAUSTED" and len(c.body) > 4 * 2**20))
        else:
            acked = isinstance(c.status, int) and 200 <= c.status < 300
            ok = isinstance(c.status, int) and c.status > 0 and _documented_http(c.status) and \
                (c.expect is None or c.status in c.expect or c.status == 503)
        p.check(ok, f"{what}, expected {sorted(c.expect) if c.expect else 'a documented answer'}")
        got = stored.get(c.marker, 0)
        want = c.count if acked else 0
        if not acked and got == 0 and c.expect is not None and 200 in c.expect and c.count:
            pass  # refused something acceptable: flagged above if the docs demand 200
        p.check(got == want, f"{what}: {got} rows stored, expected {want}")
        if acked and c.typed:
            p.check(typed.get(c.marker, 0) == c.typed, f"{what}: {typed.get(c.marker, 0)} rows in ml_predictions, "
                                                       f"expected {c.typed}")
    grpc_n = sum(c.grpc for c in cases)
    p.detail = (f"{len(cases)} payloads ({len(cases) - grpc_n} HTTP, {grpc_n} gRPC); answers "
                + ", ".join(f"{k}x{v}" for k, v in sorted(statuses.items(), key=lambda kv: -kv[1])))
