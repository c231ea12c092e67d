"""Sustained ingest of 25-feature prediction spans into the embedded store, and bytes on disk per prediction.

    python benchmarks/bench_ingest.py [--spans 60000] [--batch 500] [--clients 4]

A ``modelwatch serve`` process is started on a fresh chDB directory, with the
schema and its materialized views on. Prediction spans are produced by the
modelwatch SDK (25 features: 20 numeric, 5 categorical, realistic precision)
and encoded once by the OTLP encoder, so the clients cost little; then they
are sent over OTLP/HTTP and OTLP/gRPC by concurrent clients, each request
waiting for its acknowledgement (which the server gives once the rows are
committed). Reported: spans/s per protocol, rows found afterwards (zero loss
means every acknowledged span is there, in ``otel_traces`` and typed in
``ml_predictions``), bytes on disk per prediction after merges, and bytes
per retained prediction at steady state as ``modelwatch status --cost``
computes it (the typed row plus the raw span's share given the two
retentions, 7 and 180 days by default).
Targets: >= 25,000 spans/s, <= 90 bytes per retained prediction at steady state.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import grpc
import modelwatch
from modelwatch.testing import capture
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

MODELWATCH = [sys.executable, "-c", "import sys; from modelwatch_analyzer.cli.command import main; sys.exit(main())"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_requests(n: int, batch: int, seed: int = 1) -> list:
    """n prediction spans from the SDK, encoded as ExportTraceServiceRequest messages of `batch` spans."""
    rng = random.Random(seed)

    @modelwatch.monitor(model="bench", version="1", sampling_rate=1.0)
    def predict(x: dict) -> dict:
        return {"prediction": "approve" if x["f0"] > 0 else "review", "score": rng.random()}

    requests = []
    with capture() as rec:
        for start in range(0, n, batch):
            for _ in range(min(batch, n - start)):
                row = {f"f{j}": round(rng.gauss(50, 15), 2) for j in range(20)}
                row.update({f"c{j}": rng.choice(["alpha", "beta", "gamma", "delta", "epsilon"]) for j in range(5)})
                predict(row)
            requests.append(encode_spans(rec.predictions()))
            rec.exporter.clear()
    return requests


def run_clients(items: list, send, clients: int) -> float:  # type: ignore[no-untyped-def]
    """Send every item with `clients` threads; return the wall time until the last acknowledgement."""
    queue = list(items)
    lock = threading.Lock()

    def client() -> None:
        while True:
            with lock:
                if not queue:
                    return
                item = queue.pop()
            send(item)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def send_http(port: int, bodies: list[bytes], clients: int) -> float:
    failures: list = []

    def send(body: bytes) -> None:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/traces", data=body,
                                     headers={"Content-Type": "application/x-protobuf"}, method="POST")
        for attempt in range(20):
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:
                    if resp.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                if exc.code != 503:
                    failures.append(exc.code)
                    return
                time.sleep(0.05 * (attempt + 1))  # the server asked to retry
        failures.append("gave up")

    elapsed = run_clients(bodies, send, clients)
    assert not failures, failures
    return elapsed


def send_grpc(port: int, requests: list, clients: int) -> float:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)

    def send(req) -> None:  # type: ignore[no-untyped-def]
        for attempt in range(20):
            try:
                stub.Export(req, timeout=60)
                return
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                time.sleep(0.05 * (attempt + 1))

    elapsed = run_clients(requests, send, clients)
    channel.close()
    return elapsed


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) of a running process, from /proc; None where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def self_cpu() -> float:
    import resource

    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def store_figures(url: str) -> dict:
    code = f"""
import json
from modelwatch_analyzer.store.client import Store
s = Store({url!r})
for t in ("otel_traces", "ml_predictions"):
    s.command(f"OPTIMIZE TABLE modelwatch.{{t}} FINAL")
rows = s.query("SELECT table, sum(rows), sum(bytes_on_disk) FROM system.parts WHERE active AND database = 'modelwatch' "
               "AND table IN ('otel_traces', 'ml_predictions') GROUP BY table")
out = {{t: [int(r), int(b)] for t, r, b in rows}}
from modelwatch_analyzer.report.status import cost
steady = cost(s).steady
out["steady"] = steady.to_json() if steady else None
print(json.dumps(out))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=60_000, help="spans per protocol")
    parser.add_argument("--batch", type=int, default=500, help="spans per request")
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    print(f"encoding {args.spans:,} prediction spans per protocol ({args.batch} per request)...", flush=True)
    # distinct predictions per protocol: the same spans sent twice would compress to half their size on disk
    bodies = [r.SerializeToString() for r in make_requests(args.spans, args.batch, seed=1)]
    requests = make_requests(args.spans, args.batch, seed=2)
    workdir = tempfile.mkdtemp(prefix="mw-ingest-")
    url = f"chdb://{workdir}/store"
    grpc_port, http_port = _free_port(), _free_port()
    server = subprocess.Popen(MODELWATCH + ["serve", "--url", url, "--grpc-port", str(grpc_port), "--http-port", str(http_port), "--no-ui"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = server.stdout.readline()
        assert "OTLP HTTP on" in line, line
        cpu = []  # (server, clients) CPU seconds before, between and after the two protocols
        cpu.append((cpu_seconds(server.pid), self_cpu()))
        http_s = send_http(http_port, bodies, args.clients)
        cpu.append((cpu_seconds(server.pid), self_cpu()))
        grpc_s = send_grpc(grpc_port, requests, args.clients)
        cpu.append((cpu_seconds(server.pid), self_cpu()))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(120)
    tail = [line.strip() for line in server.stdout.read().splitlines() if "stopped" in line]
    print(tail[-1] if tail else "(the server printed no summary)")
    figures = store_figures(url)
    shutil.rmtree(workdir, ignore_errors=True)
    sent = 2 * args.spans
    traces_rows, traces_bytes = figures.get("otel_traces", [0, 0])
    pred_rows, pred_bytes = figures.get("ml_predictions", [0, 0])
    http_rate, grpc_rate = args.spans / http_s, args.spans / grpc_s
    for name, secs, rate, (a, b) in (("OTLP/HTTP", http_s, http_rate, (cpu[0], cpu[1])),
                                     ("OTLP/gRPC", grpc_s, grpc_rate, (cpu[1], cpu[2]))):
        # the clients run on the same cores as the server: what each side spent per span, in CPU microseconds
        server_us = f"{(b[0] - a[0]) / args.spans * 1e6:5.1f}" if a[0] is not None and b[0] is not None else "  n/a"
        print(f"{name:9s}  {args.spans:,} spans in {secs:6.2f} s = {rate:9,.0f} spans/s   target >= 25,000  "
              f"{'ok' if rate >= 25_000 else 'MISSED'}   (CPU per span: server {server_us} us, "
              f"clients {(b[1] - a[1]) / args.spans * 1e6:5.1f} us)")
    print(f"stored: otel_traces {traces_rows:,} rows, ml_predictions {pred_rows:,} rows, sent {sent:,}: "
          f"{'zero loss' if traces_rows == pred_rows == sent else 'LOSS'}")
    per_pred = (traces_bytes + pred_bytes) / max(pred_rows, 1)
    print(f"bytes on disk per prediction, every raw span still retained: {per_pred:.1f} (otel_traces "
          f"{traces_bytes / max(traces_rows, 1):.1f} + ml_predictions {pred_bytes / max(pred_rows, 1):.1f})")
    steady = figures.get("steady") or {}
    retained = steady.get("bytes_per_retained_prediction")
    if retained is not None:
        print(f"bytes per retained prediction at steady state: {retained:.1f} (typed {steady['typed_bytes_per_prediction']:.1f}"
              f" + raw {steady['raw_bytes_per_span'] or 0:.1f} × {steady['raw_spans_per_retained_prediction']:.4f})   "
              f"target <= 90  {'ok' if retained <= 90 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
