"""An acknowledged request survives kill -9 and a restart; SIGTERM commits what is pending and exits cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

MODELWATCH = [sys.executable, "-c", "import sys; from modelwatch_analyzer.cli.command import main; sys.exit(main())"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(url: str) -> tuple[subprocess.Popen, int]:
    http = _free_port()
    proc = subprocess.Popen(MODELWATCH + ["serve", "--url", url, "--grpc-port", str(_free_port()), "--http-port", str(http),
                                          "--ui-port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    assert "OTLP HTTP on" in line, line
    return proc, http


def _spans(n: int, seed: int) -> bytes:
    req = trace_service_pb2.ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    now = time.time_ns()
    for i in range(n):
        span = ss.spans.add(name="ml.predict", trace_id=os.urandom(16), span_id=os.urandom(8),
                            start_time_unix_nano=now, end_time_unix_nano=now + 10)
        a = span.attributes.add(key="ml.model.name")
        a.value.string_value = "durable"
        a = span.attributes.add(key="ml.prediction.id")
        a.value.string_value = f"{seed}-{i}"
    return req.SerializeToString()


def _post(port: int, body: bytes) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/traces", data=body,
                                 headers={"Content-Type": "application/x-protobuf"}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status


def _count(url: str) -> tuple[int, int]:
    code = (f"from modelwatch_analyzer.store.client import Store; s = Store({url!r}); "
            "print(s.query('SELECT count() FROM modelwatch.otel_traces')[0][0], "
            "s.query('SELECT count() FROM modelwatch.ml_predictions')[0][0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    traces, predictions = out.stdout.split()
    return int(traces), int(predictions)


def test_acknowledged_requests_survive_kill_9_and_restart(tmp_path):
    """Every request answered 200 before kill -9 is in the store after a restart, typed rows included."""
    url = f"chdb://{tmp_path / 'store'}"
    proc, port = _start(url)
    acked = sum(50 for k in range(20) if _post(port, _spans(50, k)) == 200)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert _count(url) == (acked, acked) == (1000, 1000)
    proc, port = _start(url)  # the directory is usable again after the crash
    assert _post(port, _spans(7, 99)) == 200
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "stopped" in out
    assert _count(url) == (1007, 1007)
