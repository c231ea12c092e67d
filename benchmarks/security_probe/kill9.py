"""Probe 2, kill -9 during ingest: every acknowledged span is in ``otel_traces`` and ``ml_predictions`` after the
restart, and ``modelwatch status`` does not warn."""

from __future__ import annotations

import random
import re
import threading
import time
from pathlib import Path

from security_probe.common import CLI, NOW_NS, PROTO, Probe, Serve, post, query, run
from security_probe.payloads import trace_request

BATCH = 50


class _Senders:
    """Three threads posting batches of spans until serve is killed; what was acknowledged, and how much was sent."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.acked: set[str] = set()
        self.sent = 0
        self.lock = threading.Lock()

    def send(self, worker: int, stop: threading.Event, rnd: int, serve: Serve) -> None:
        rng, k = self.rng, 0
        while not stop.is_set():
            marker = f"k{rnd}w{worker}b{k}"
            k += 1
            body = trace_request(rng, marker, BATCH, start=NOW_NS - rng.randrange(600) * 10**9,
                                 model="durable").SerializeToString()
            status = post(serve.http_port, "/v1/traces", body, {"Content-Type": PROTO}, timeout=30)[0]
            with self.lock:
                self.sent += BATCH
                if 200 <= status < 300:
                    self.acked.update(f"{marker}~{i}" for i in range(BATCH))


def _kill_round(p: Probe, args, tmp: Path, store: Path, serve: Serve, rnd: int, senders: _Senders,
                repairs: list[int]) -> Serve:
    """Send, kill -9 at a random moment, restart; the new serve."""
    stop = threading.Event()
    threads = [threading.Thread(target=senders.send, args=(w, stop, rnd, serve)) for w in range(3)]
    for t in threads:
        t.start()
    time.sleep(senders.rng.uniform(0.3, args.kill_after))
    serve.kill9()
    stop.set()
    for t in threads:
        t.join(60)
    serve = Serve(store)  # repairs at start what the kill left untyped
    repaired = sum(int(m.group(1)) for ln in serve.lines
                   for m in [re.search(r"typed (\d+) ml_predictions rows", ln)] if m)
    st = run(CLI + ["status", "--url", f"chdb://{store}"], cwd=tmp)
    p.check(st.returncode == 0 and "WARNING" not in st.stdout + st.stderr,
            f"round {rnd}: status after restart exited {st.returncode}: "
            f"{(st.stdout + st.stderr).strip()[-400:]}")
    repairs.append(repaired)
    return serve


def probe_kill9(p: Probe, args, tmp: Path) -> None:
    store = tmp / "p2-store"
    senders = _Senders(random.Random(args.seed + 2))
    repairs: list[int] = []
    serve = Serve(store)
    try:
        for rnd in range(args.kill_rounds):
            serve = _kill_round(p, args, tmp, store, serve, rnd, senders, repairs)
    finally:
        rc = serve.stop()
    p.check(rc == 0, f"serve's SIGTERM exit code {rc}")
    acked = senders.acked
    raw, typed = query(store,
                       "SELECT DISTINCT SpanAttributes['ml.prediction.id'] FROM modelwatch.otel_traces "
                       "WHERE SpanName = 'ml.predict'",
                       "SELECT DISTINCT PredictionId FROM modelwatch.ml_predictions")
    raw_ids = {r[0] for r in raw}
    typed_ids = {r[0] for r in typed}
    lost_raw, lost_typed = acked - raw_ids, acked - typed_ids
    p.check(not lost_raw, f"{len(lost_raw)} acknowledged spans missing from otel_traces, e.g. {sorted(lost_raw)[:3]}")
    p.check(not lost_typed, f"{len(lost_typed)} acknowledged spans missing from ml_predictions, "
                            f"e.g. {sorted(lost_typed)[:3]}")
    untyped = raw_ids - typed_ids
    p.check(not untyped, f"{len(untyped)} spans in otel_traces without a typed row after the restarts")
    p.cases += len(acked)
    p.detail = (f"{args.kill_rounds} rounds, {senders.sent} spans sent, {len(acked)} acknowledged, {len(raw_ids)} in "
                f"otel_traces, {len(typed_ids)} in ml_predictions; typed by serve at restart: "
                + "/".join(map(str, repairs)) + " spans per round")
