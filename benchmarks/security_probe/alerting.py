"""Probe 6, concurrent analyses with alerting: serve's scheduled analyzer and several forwarded ``analyze --alert``
at once; each alert key is POSTed exactly once."""

from __future__ import annotations

import collections
import json
import random
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from security_probe.common import CLI, NOW_NS, PROTO, Probe, Serve, kill, post, query, run, spawn
from security_probe.payloads import set_attr, trace_request


class Webhook:
    def __init__(self) -> None:
        self.bodies: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    hook.bodies.append(json.loads(body))
                except ValueError:
                    hook.bodies.append({"raw": body[:200].decode(errors="replace")})
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _write_inputs(rng: random.Random, work: Path, hook: Webhook, model: str) -> tuple[Path, Path]:
    """The training file of the baseline and a config that routes alerts to the webhook."""
    train = work / "train.csv"
    train.write_text("x,y,plan\n" + "".join(f"{rng.gauss(0, 1):.5f},{rng.gauss(10, 2):.4f},{rng.choice('ab')}\n"
                                            for _ in range(2000)))
    cfg = work / "modelwatch.toml"
    cfg.write_text(f"""[schedule]
every_minutes = 60
window_hours = 24

[[models]]
name = "{model}"
categorical = ["plan"]

[alerts]
cooldown_seconds = 3600

[[alerts.routes]]
name = "hook"
url = "{hook.url}"
""")
    return train, cfg


def _ingest_drift(p: Probe, args, rng: random.Random, store: Path, work: Path, model: str, train: Path) -> None:
    """Current data: x drifted far, y a little, plan flipped; 2-3 h ago (inside both the scheduled window, which
    ends on the last hour, and analyze --last 24h); then the baseline from the training file."""
    serve = Serve(store, cwd=work)
    try:
        for b in range(args.alert_spans // 200):
            req = trace_request(rng, f"dr{b}", 0, model=model)
            spans = req.resource_spans[0].scope_spans[0].spans
            for i in range(200):
                t = NOW_NS - int((2 * 3600 + rng.random() * 3600) * 10**9)
                span = spans.add(name="ml.predict", trace_id=rng.randbytes(16), span_id=rng.randbytes(8),
                                 start_time_unix_nano=t, end_time_unix_nano=t + 1000)
                for k, v in {"ml.model.name": model, "ml.model.version": "1", "ml.prediction.id": f"dr{b}~{i}",
                             "ml.feature.x": rng.gauss(4, 1), "ml.feature.y": rng.gauss(10.5, 2),
                             "ml.feature.plan": rng.choice("aab c"), "ml.sampling.reason": "random"}.items():
                    set_attr(span.attributes, k, v)
            status = post(serve.http_port, "/v1/traces", req.SerializeToString(), {"Content-Type": PROTO})[0]
            p.check(status == 200, f"drifted batch {b}: answered {status}")
        made = run(CLI + ["baseline", "create", "--url", serve.url, "--model", model, "--version", "1",
                          "--file", str(train), "--categorical", "plan"], cwd=work)
        p.check(made.returncode == 0, f"baseline create: exit {made.returncode}: {made.stderr[-300:]}")
    finally:
        serve.stop()


def _analyze_waves(p: Probe, args, store: Path, work: Path, cfg: Path, model: str, hook: Webhook) -> tuple[list, int]:
    """Two waves of forwarded ``analyze --alert`` while serve's scheduled analyzer runs; their exit codes, and the
    POSTs the hook had after the first wave."""
    analyze = CLI + ["analyze", "--url", f"chdb://{store}", "--model", model, "--last", "24h", "--config", str(cfg),
                     "--alert", "--format", "json"]
    serve = Serve(store, config=cfg, analyzer=True, cwd=work)  # its scheduled round starts at once
    outcomes = []
    try:
        for wave in range(2):  # the second wave is inside the cooldown: nothing new may be POSTed
            procs = [spawn(analyze, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for _ in range(args.alert_procs)]
            for proc in procs:
                try:
                    _out, err = proc.communicate(timeout=240)
                except subprocess.TimeoutExpired:
                    kill(proc)
                    err = "timed out"
                outcomes.append(proc.returncode)
                p.check(proc.returncode in (0, 3), f"wave {wave}: analyze --alert exited {proc.returncode}: "
                                                    f"{err.strip()[-300:]}")
            if wave == 0:
                time.sleep(5)  # the scheduled round began with serve; let it finish too
                first = len(hook.bodies)
    finally:
        serve.stop()
        hook.close()
    return outcomes, first


def _check_stored(p: Probe, args, store: Path, model: str) -> tuple[list, int]:
    """One live, delivered ml_alerts row per key; the runs stored, and how many of them were scheduled."""
    rows = query(store, "SELECT Rule, Feature, Severity, countIf(SupersededBy = ''), "
                        "countIf(SupersededBy = '' AND Delivered) FROM modelwatch.ml_alerts FINAL "
                        f"WHERE ModelName = '{model}' GROUP BY Rule, Feature, Severity")[0]
    for rule, feature, severity, live, delivered in rows:
        p.check(int(live) == 1 and int(delivered) == 1,
                f"ml_alerts holds {live} live rows ({delivered} delivered) for {rule}/{feature}/{severity}")
    runs = query(store, "SELECT RunId, any(WindowEnd), any(WindowStart) FROM modelwatch.ml_results "
                        f"WHERE ModelName = '{model}' GROUP BY RunId")[0]
    # the scheduled round's window ends on the hour; a forwarded --last 24h one ends at its own now
    scheduled = sum(1 for _r, end, _s in runs if str(end)[14:19] in ("00:00", "00:00.000"))
    p.check(scheduled >= 1, f"serve's scheduled analyzer stored no round ({len(runs)} runs: {runs[:3]})")
    p.check(len(runs) - scheduled >= 2 * args.alert_procs - 1,
            f"{len(runs) - scheduled} forwarded analyses stored, expected {2 * args.alert_procs}")
    return runs, scheduled


def probe_alerts(p: Probe, args, tmp: Path) -> None:
    rng = random.Random(args.seed + 6)
    store, work = tmp / "p6-store", tmp / "p6-work"
    work.mkdir()
    hook = Webhook()
    model = "probe-drift"
    train, cfg = _write_inputs(rng, work, hook, model)
    _ingest_drift(p, args, rng, store, work, model, train)
    outcomes, first = _analyze_waves(p, args, store, work, cfg, model, hook)
    keys = collections.Counter()
    for b in hook.bodies:
        a = b.get("alert", {})
        keys[(a.get("rule"), a.get("model"), a.get("feature"), a.get("severity"))] += 1
    p.cases += len(keys) + len(outcomes)
    p.check(len(keys) > 0, "no alert was POSTed: the drifted data did not trigger one")
    for key, n in keys.items():
        p.check(n == 1, f"alert {key} POSTed {n} times within the cooldown")
    p.check(len(hook.bodies) == first, f"the second wave POSTed {len(hook.bodies) - first} more alerts")
    runs, scheduled = _check_stored(p, args, store, model)
    p.detail = (f"{args.alert_procs} x 2 forwarded analyze --alert + the scheduled analyzer; {len(hook.bodies)} POSTs "
                f"for {len(keys)} alert keys: " + ", ".join(f"{k[2] or k[0]}/{k[3]}x{n}" for k, n in sorted(
                    keys.items(), key=str)) + f"; {len(runs)} runs stored ({scheduled} scheduled)")
