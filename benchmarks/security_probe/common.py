"""Shared by the probes: the result type, children (every process started here is killed on the way out), a
``modelwatch serve`` child, raw HTTP and gRPC requests, and the rows a store holds per probe marker."""

from __future__ import annotations

import collections
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
CLI = [sys.executable, "-c", "import sys; from modelwatch_analyzer.cli import main; sys.exit(main(sys.argv[1:]))"]
NOW_NS = time.time_ns()
DAY_NS = 86_400 * 10**9
SECRET_HEADER = "X-Modelwatch-Cli-Secret"
PROTO = "application/x-protobuf"
JSON_CT = "application/json"

GRPC_METHOD = {"traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
               "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
               "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export"}


# -- children: every process started here is killed on the way out ----------------------------------------------

_CHILDREN: list[subprocess.Popen] = []


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child: this checkout first on PYTHONPATH (absolute: children run in other directories),
    no token, store URL or OTLP endpoint inherited from the caller."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MODELWATCH_TOKEN", "MODELWATCH_CLICKHOUSE_URL", "OTEL_EXPORTER_OTLP_ENDPOINT",
                        "OTEL_SDK_DISABLED")}
    paths = [str(ROOT / "sdk"), str(ROOT / "analyzer")] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env


def spawn(args: list[str], env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    proc = subprocess.Popen(args, env=env or child_env(), start_new_session=True, **kw)
    _CHILDREN.append(proc)
    return proc


def run(args: list[str], timeout: float = 120, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    proc = spawn(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(proc)
        out, err = proc.communicate()
        return subprocess.CompletedProcess(args, -9, out, (err or "") + f"\n[probe: timed out after {timeout} s]")
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: the group is this child and its children only
        except ProcessLookupError:
            pass
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        pass


def kill_children() -> None:
    for proc in _CHILDREN:
        kill(proc)


class Serve:
    """A ``modelwatch serve`` child on free ports; its output is kept in `lines`."""

    START = re.compile(r"OTLP gRPC on [^:]+:(\d+).*OTLP HTTP on https?://[^ ]+:(\d+)")

    def __init__(self, store_dir: Path, *, token_file: Path | None = None, config: Path | None = None,
                 analyzer: bool = False, cwd: Path | None = None, timeout: float = 120,
                 extra: list[str] | None = None) -> None:
        self.store_dir = store_dir
        self.url = f"chdb://{store_dir}"
        args = CLI + ["serve", "--url", self.url, "--grpc-port", "0", "--http-port", "0", "--ui-port", "0"]
        if not analyzer:
            args.append("--no-analyzer")
        if token_file is not None:
            args += ["--token-file", str(token_file)]
        if config is not None:
            args += ["--config", str(config)]
        args += extra or []  # later options win
        self.proc = spawn(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)
        self.lines: list[str] = []
        self.started = threading.Event()
        self.http_port = self.grpc_port = 0
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self.started.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                kill(self.proc)
                raise RuntimeError("serve did not start: " + "".join(self.lines)[-2000:])

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            m = self.START.search(line)
            if m and not self.started.is_set():
                self.grpc_port, self.http_port = int(m.group(1)), int(m.group(2))
                self.started.set()

    def healthy(self) -> bool:
        if self.proc.poll() is not None:
            return False
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=30)
            conn.request("GET", "/health")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def stop(self, timeout: float = 90) -> int:
        """SIGTERM (commits what is pending); the exit code, -9 when it had to be killed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                kill(self.proc)
                return -9
        return self.proc.returncode

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)


def query(store_dir: Path, *sql: str) -> list[list]:
    """Run SQL on a stopped store in a child process (an embedded chDB directory has one owner at a time)."""
    code = ("import json, sys; from modelwatch_analyzer.store.client import Store; s = Store(sys.argv[1]); "
            "print(json.dumps([[list(r) for r in s.query(q)] for q in json.loads(sys.argv[2])], default=str))")
    out = run([sys.executable, "-c", code, f"chdb://{store_dir}", json.dumps(list(sql))], timeout=180)
    if out.returncode != 0:
        raise RuntimeError(f"query failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def post(port: int, path: str, body: bytes, headers: dict[str, str], timeout: float = 90, method: str = "POST",
         ) -> tuple[int, dict[str, str], bytes]:
    """A request with exactly these headers; status -1 and the error as body when the connection failed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host="Host" in headers, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return -1, {}, repr(exc).encode()
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

# -- probe results ------------------------------------------------------------------------------------------------

class Probe:
    """One probe's result: checks made (`cases`), what failed, a one-line detail and the time it took."""

    def __init__(self, number: int, name: str) -> None:
        self.number, self.name = number, name
        self.cases = 0
        self.failures: list[str] = []
        self.detail = ""
        self.seconds = 0.0

    def fail(self, what: str) -> None:
        self.failures.append(what)

    def check(self, ok: bool, what: str) -> bool:
        self.cases += 1
        if not ok:
            self.fail(what)
        return ok


def grpc_raw(port: int, sig: str, body: bytes, metadata=None, timeout: float = 90) -> str:
    """Send raw bytes as an OTLP gRPC Export; the status code's name."""
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 64 * 2**20)]) as ch:
        call = ch.unary_unary(GRPC_METHOD[sig], request_serializer=None, response_deserializer=None)
        try:
            call(body, timeout=timeout, metadata=metadata)
            return "OK"
        except grpc.RpcError as exc:
            return exc.code().name


def stored_counts(store_dir: Path, sig_tables: dict[str, list[str]]) -> dict[str, int]:
    """Rows per probe.case marker in these tables of a stopped store."""
    qs = [f"SELECT ResourceAttributes['probe.case'] AS m, count() FROM modelwatch.{t} WHERE m != '' GROUP BY m"
          for tables in sig_tables.values() for t in tables]
    out: dict[str, int] = collections.Counter()
    for rows in query(store_dir, *qs):
        for m, c in rows:
            out[m] += int(c)
    return out
