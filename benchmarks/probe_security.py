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
"""

from __future__ import annotations

import argparse
import base64
import collections
import concurrent.futures
import gzip
import http.client
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-c", "import sys; from modelwatch_analyzer.cli import main; sys.exit(main(sys.argv[1:]))"]
NOW_NS = time.time_ns()
DAY_NS = 86_400 * 10**9
SECRET_HEADER = "X-Modelwatch-Cli-Secret"
PROTO = "application/x-protobuf"
JSON_CT = "application/json"

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
        args = CLI + ["serve", "--url", self.url, "--grpc-port", "0", "--http-port", "0"]
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


# -- OTLP payloads ------------------------------------------------------------------------------------------------

def _pb():
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    return trace_service_pb2, metrics_service_pb2, logs_service_pb2


def _set(attrs, key: str, value) -> None:
    v = attrs.add(key=key).value
    if isinstance(value, bool):
        v.bool_value = value
    elif isinstance(value, int):
        v.int_value = value
    elif isinstance(value, float):
        v.double_value = value
    else:
        v.string_value = value


def trace_request(rng: random.Random, marker: str, n: int, *, start: int | None = None, name: str = "ml.predict",
                  model: str = "probe", attrs: dict | None = None, service: str = "probe"):
    """n spans whose resource carries probe.case = marker; ml.prediction.id = marker~i (for ml_predictions)."""
    trace_pb2 = _pb()[0]
    req = trace_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    _set(rs.resource.attributes, "service.name", service)
    _set(rs.resource.attributes, "probe.case", marker)
    spans = rs.scope_spans.add().spans
    t = NOW_NS - rng.randrange(3600) * 10**9 if start is None else start
    for i in range(n):
        span = spans.add(name=name, trace_id=rng.randbytes(16), span_id=rng.randbytes(8),
                         start_time_unix_nano=t, end_time_unix_nano=min(t + 1000, 2**64 - 1))
        _set(span.attributes, "ml.model.name", model)
        _set(span.attributes, "ml.model.version", "1")
        _set(span.attributes, "ml.prediction.id", f"{marker}~{i}")
        _set(span.attributes, "ml.feature.x", rng.random())
        for k, v in (attrs or {}).items():
            _set(span.attributes, k, v)
    return req


def metric_request(rng: random.Random, marker: str, n: int, *, t: int | None = None, name: str = "probe.gauge"):
    metrics_pb2 = _pb()[1]
    req = metrics_pb2.ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    _set(rm.resource.attributes, "service.name", "probe")
    _set(rm.resource.attributes, "probe.case", marker)
    m = rm.scope_metrics.add().metrics.add(name=name)
    t = NOW_NS - rng.randrange(3600) * 10**9 if t is None else t
    for i in range(n):
        p = m.gauge.data_points.add(time_unix_nano=t, as_double=rng.random())
        _set(p.attributes, "i", i)
    return req


def log_request(rng: random.Random, marker: str, n: int, *, t: int | None = None, body: str = "probe"):
    logs_pb2 = _pb()[2]
    req = logs_pb2.ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    _set(rl.resource.attributes, "service.name", "probe")
    _set(rl.resource.attributes, "probe.case", marker)
    recs = rl.scope_logs.add().log_records
    t = NOW_NS - rng.randrange(3600) * 10**9 if t is None else t
    for i in range(n):
        r = recs.add(time_unix_nano=t, severity_text="INFO")
        r.body.string_value = body
    return req


def items(req) -> int:
    """Spans, gauge points or log records in a request."""
    if hasattr(req, "resource_spans"):
        return sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
    if hasattr(req, "resource_metrics"):
        return sum(len(m.gauge.data_points) for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics)
    return sum(len(sl.log_records) for rl in req.resource_logs for sl in rl.scope_logs)


def otlp_json(req) -> bytes:
    """OTLP/JSON: the protobuf JSON mapping, with trace and span ids in hex as OTLP wants them."""
    from google.protobuf import json_format

    def hexed(o):
        if isinstance(o, dict):
            return {k: (base64.b64decode(v).hex() if k in ("traceId", "spanId") and isinstance(v, str) else hexed(v))
                    for k, v in o.items()}
        if isinstance(o, list):
            return [hexed(x) for x in o]
        return o

    return json.dumps(hexed(json_format.MessageToDict(req))).encode()


SIGNAL_PATH = {"traces": "/v1/traces", "metrics": "/v1/metrics", "logs": "/v1/logs"}
SIGNAL_TABLE = {"traces": ["otel_traces"], "logs": ["otel_logs"],
                "metrics": [f"otel_metrics_{k}" for k in ("gauge", "sum", "histogram", "exponential_histogram", "summary")]}
GRPC_METHOD = {"traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
               "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
               "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export"}

HOSTILE = ["\x00\x01\x07\x08", "\x1b[2J\x1b[H", "\x1b]0;pwned\x07", "'; DROP TABLE otel_traces; --", "\" OR 1=1 --",
           "') UNION SELECT * FROM system.users --", "`\\'\"\\\\", "x" * 10240, "\u202e\u200bevil\u2066", "\r\nX-Injected: 1",
           "{{7*7}}${jndi:ldap://x}", "%s%n%x", "价格 💥", "\ud7ff\ue000", "a\tb\nc", "../../etc/passwd", ""]
INVALID_UTF8 = b"\xff\xfe\xc3(\x80\xed\xa0\x80"


def request_for(signal_name: str, rng: random.Random, marker: str, n: int, **kw):
    return {"traces": trace_request, "metrics": metric_request, "logs": log_request}[signal_name](rng, marker, n, **kw)


class Case:
    """One malformed-or-not request; `expect`: the statuses the docs allow (None: any documented class); `count`:
    the items of `marker` to be found stored if it is acknowledged."""

    def __init__(self, kind: str, sig: str, body: bytes, headers: dict[str, str], expect: set[int] | None,
                 count: int, marker: str, path: str | None = None, grpc: bool = False, typed: int = 0) -> None:
        self.kind, self.sig, self.body, self.headers, self.expect = kind, sig, body, headers, expect
        self.count, self.marker, self.path, self.grpc, self.typed = count, marker, path or SIGNAL_PATH[sig], grpc, typed
        self.status: int | str | None = None


def _parsed_items(sig: str, body: bytes) -> int | None:
    cls = {"traces": _pb()[0].ExportTraceServiceRequest, "metrics": _pb()[1].ExportMetricsServiceRequest,
           "logs": _pb()[2].ExportLogsServiceRequest}[sig]
    try:
        return items(cls.FromString(body))
    except Exception:  # noqa: BLE001 - any parse failure
        return None


def malformed_cases(n_total: int, seed: int) -> list[Case]:
    rng = random.Random(seed)
    cases: list[Case] = []
    sigs = ("traces", "metrics", "logs")

    def marker() -> str:
        return f"pm{len(cases)}"

    def add(kind, sig, body, headers, expect, count, m, **kw):
        cases.append(Case(kind, sig, body, headers, expect, count, m, **kw))

    def random_bytes():
        sig = rng.choice(sigs)
        body = rng.randbytes(rng.choice([1, 2, 7, 64, 1000, 65536]))
        add("random bytes", sig, body, {"Content-Type": PROTO}, {200, 400}, 0, marker(), grpc=rng.random() < 0.3)

    def truncated_proto():
        sig, m = rng.choice(sigs), marker()
        raw = request_for(sig, rng, m, rng.randrange(2, 20)).SerializeToString()
        cut = raw[:rng.randrange(1, len(raw))]
        parsed = _parsed_items(sig, cut)
        add("truncated protobuf", sig, cut, {"Content-Type": PROTO}, {400} if parsed is None else {200, 400},
            parsed or 0, m, grpc=rng.random() < 0.3)

    def gzip_cases():
        sig, m = rng.choice(sigs), marker()
        req = request_for(sig, rng, m, rng.randrange(2, 10))
        as_json = rng.random() < 0.3
        raw = otlp_json(req) if as_json else req.SerializeToString()
        ct = {"Content-Type": JSON_CT if as_json else PROTO}
        which = rng.choice(["flush", "flush", "bare", "trailing", "trailer", "empty", "ok", "members", "x-gzip"])
        if which == "flush":
            d = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            body = d.compress(raw[:rng.randrange(1, len(raw))]) + d.flush(zlib.Z_FULL_FLUSH)
            add("gzip cut after a full flush", sig, body, {**ct, "Content-Encoding": "gzip"}, {400}, 0, m)
        elif which == "bare":
            add("gzip bare 10-byte header", sig, gzip.compress(b"")[:10], {**ct, "Content-Encoding": "gzip"}, {400}, 0, m)
        elif which == "trailing":
            add("gzip trailing garbage", sig, gzip.compress(raw) + b"garbage", {**ct, "Content-Encoding": "gzip"},
                {400}, 0, m)
        elif which == "trailer":
            add("gzip truncated trailer", sig, gzip.compress(raw)[:-4], {**ct, "Content-Encoding": "gzip"}, {400}, 0, m)
        elif which == "empty":
            add("gzip empty body", sig, b"", {**ct, "Content-Encoding": "gzip"}, {400}, 0, m)
        elif which == "members":
            cut = rng.randrange(1, len(raw))
            add("gzip two members", sig, gzip.compress(raw[:cut]) + gzip.compress(raw[cut:]),
                {**ct, "Content-Encoding": "gzip"}, {200}, items(req), m)
        else:
            enc = "x-gzip" if which == "x-gzip" else "gzip"
            add("gzip whole", sig, gzip.compress(raw), {**ct, "Content-Encoding": enc}, {200}, items(req), m)

    def content_types():
        sig, m = rng.choice(sigs), marker()
        req = request_for(sig, rng, m, 3)
        ct = rng.choice([None, "", "text/plain", "application/xml", "application/protobuf", "application/grpc",
                         "multipart/form-data; boundary=x", "application/x-www-form-urlencoded", "application/jsonx",
                         "APPLICATION/X-PROTOBUF", "Application/Json; charset=utf-8", "application/x-protobuf; q=1"])
        ok = ct is not None and ct.lower().split(";")[0].strip() in (PROTO, JSON_CT)
        body = otlp_json(req) if ct and "json" in ct.lower() else req.SerializeToString()
        headers = {} if ct is None else {"Content-Type": ct}
        add(f"content type {'ok' if ok else 'wrong/absent'}", sig, body, headers, {200} if ok else {415},
            items(req) if ok else 0, m)

    def encodings():
        sig, m = rng.choice(sigs), marker()
        raw = request_for(sig, rng, m, 3).SerializeToString()
        enc = rng.choice(["br", "deflate", "zstd", "gzip, gzip", "compress", "gzip;q=1", "identity, br"])
        body = gzip.compress(gzip.compress(raw)) if enc == "gzip, gzip" else (zlib.compress(raw) if enc == "deflate" else raw)
        add(f"Content-Encoding {enc}", sig, body, {"Content-Type": PROTO, "Content-Encoding": enc}, {415}, 0, m)

    def json_shapes():
        sig, m = rng.choice(sigs), marker()
        which = rng.choice(["[]", '"str"', "null", "123", "true", "{", "deep-array", "deep-object", "deep-anyvalue",
                            "wrong-types", "bad-ids", "empty-object"])
        if which == "deep-array":
            d = rng.choice([1000, 10000, 100000])
            add(f"JSON nested array x{d}", sig, b"[" * d + b"]" * d, {"Content-Type": JSON_CT}, {400}, 0, m)
        elif which == "deep-object":
            d = rng.choice([1000, 10000, 100000])
            add(f"JSON nested object x{d}", sig, b'{"a":' * d + b"1" + b"}" * d, {"Content-Type": JSON_CT},
                {200, 400}, 0, m)
        elif which == "deep-anyvalue":
            d = rng.choice([50, 200, 5000])
            doc = json.loads(otlp_json(trace_request(rng, m, 1)))
            doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"].append(
                {"key": "deep", "value": "DEEP-PLACEHOLDER"})
            deep = ('{"kvlistValue":{"values":[{"key":"k","value":' * d + '{"stringValue":"bottom"}'
                    + "}]}}" * d)  # written out: json.dumps itself would recurse too deep
            body = json.dumps(doc).replace('"DEEP-PLACEHOLDER"', deep).encode()
            add(f"JSON kvlist nested x{d}", "traces", body, {"Content-Type": JSON_CT}, {200, 400}, 1, m)
        elif which == "wrong-types":
            body = json.dumps({"resourceSpans": rng.choice(["x", 1, {"a": 1}, [1, 2], [{"scopeSpans": "x"}]])}).encode()
            add("JSON wrong field types", "traces", body, {"Content-Type": JSON_CT}, {400}, 0, m)
        elif which == "bad-ids":
            doc = json.loads(otlp_json(trace_request(rng, m, 2)))
            for s in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:
                s["traceId"] = rng.choice(["zz", "", "0" * 31, "0" * 64, "AAAA"])
            add("JSON bad trace ids", "traces", json.dumps(doc).encode(), {"Content-Type": JSON_CT}, {200, 400}, 2, m)
        elif which == "empty-object":
            add("JSON empty object", sig, b"{}", {"Content-Type": JSON_CT}, {200}, 0, m)
        else:
            add(f"JSON {which}", sig, which.encode(), {"Content-Type": JSON_CT}, {400}, 0, m)

    def deep_proto():
        m = marker()
        req = trace_request(rng, m, 1)
        v = req.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="deep").value
        for _ in range(rng.choice([60, 150, 2000])):
            v = v.kvlist_value.values.add(key="k").value
        v.string_value = "bottom"
        try:
            body = req.SerializeToString()
        except Exception:  # noqa: BLE001 - the protobuf runtime's own recursion limit
            return
        add("protobuf kvlist deeply nested", "traces", body, {"Content-Type": PROTO}, {200, 400}, 1, m,
            grpc=rng.random() < 0.3)

    def huge_attrs():
        m = marker()
        k = rng.choice([1000, 10000, 60000])
        req = trace_request(rng, m, 1, attrs={f"a{i}": i for i in range(k)})
        add(f"{k} span attributes", "traces", req.SerializeToString(), {"Content-Type": PROTO}, {200, 400}, 1, m,
            grpc=rng.random() < 0.3)

    def timestamps():
        sig, m = rng.choice(sigs), marker()
        bad = rng.choice([0, 1, 2**63 - 1, 2**64 - 1, NOW_NS + 30 * DAY_NS, NOW_NS + 10**12 * 10**9 % 2**64,
                          946_684_799 * 10**9, NOW_NS - 120 * DAY_NS])
        good = rng.choice([NOW_NS - DAY_NS, NOW_NS + DAY_NS, NOW_NS])
        t = bad if rng.random() < 0.75 else good
        if sig == "logs" and t == 0:
            expect, n = {200}, 2  # both times unset: stored at the receiver's time (docs)
        else:
            expect = {200} if t == good else {400}
            n = 2
        req = request_for(sig, rng, m, n, **({"start": t} if sig == "traces" else {"t": t}))
        as_json = rng.random() < 0.3
        body = otlp_json(req) if as_json else req.SerializeToString()
        add(f"{sig} timestamp {'in range' if 200 in expect else t}", sig, body,
            {"Content-Type": JSON_CT if as_json else PROTO}, expect, n if 200 in expect else 0, m,
            grpc=not as_json and rng.random() < 0.3)

    def json_timestamps():
        m = marker()
        doc = json.loads(otlp_json(trace_request(rng, m, 1)))
        doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["startTimeUnixNano"] = rng.choice(
            ["18446744073709551615", "18446744073709551616", "-1", "1e30", "NaN", "", "9" * 40, 1.5])
        add("JSON timestamp not a uint64", "traces", json.dumps(doc).encode(), {"Content-Type": JSON_CT}, {400}, 0, m)

    def weights():
        m = marker()
        w = rng.choice([math.nan, math.inf, -math.inf, 9.2e18, -5.0, 0.0, 1e-300, 2**63 - 1, -1, "NaN", "abc", "",
                        "1e400", True, 1e6 + 1])
        req = trace_request(rng, m, 3, attrs={"ml.sampling.weight": w, "ml.sampling.reason": "random"})
        as_json = rng.random() < 0.3
        if as_json:
            try:
                body = otlp_json(req)
            except ValueError:  # NaN / inf in JSON: the protobuf mapping writes them as strings
                body = req.SerializeToString()
                as_json = False
        else:
            body = req.SerializeToString()
        add(f"weight {w!r}", "traces", body, {"Content-Type": JSON_CT if as_json else PROTO}, {200}, 3, m,
            typed=3, grpc=not as_json and rng.random() < 0.3)

    def hostile_names():
        sig, m = rng.choice(sigs), marker()
        h = rng.choice(HOSTILE)
        where = rng.choice(["name", "model", "key", "value", "service"])
        if sig == "traces":
            kw = {"name": h} if where == "name" else {"model": h} if where == "model" else \
                {"service": h} if where == "service" else {"attrs": {h or "empty": "v"} if where == "key" else {"v": h}}
            req = trace_request(rng, m, 2, **kw)
        elif sig == "metrics":
            req = metric_request(rng, m, 2, name=h or "x")
        else:
            req = log_request(rng, m, 2, body=h)
        as_json = rng.random() < 0.3
        add(f"hostile {sig} {where}", sig, otlp_json(req) if as_json else req.SerializeToString(),
            {"Content-Type": JSON_CT if as_json else PROTO}, {200, 400}, 2, m, grpc=not as_json and rng.random() < 0.3)

    def invalid_utf8():
        m = marker()
        placeholder = "Q" * len(INVALID_UTF8)
        where = rng.choice(["name", "model", "value"])
        kw = {"name": placeholder} if where == "name" else {"model": placeholder} if where == "model" else \
            {"attrs": {"v": placeholder}}
        body = trace_request(rng, m, 2, **kw).SerializeToString().replace(placeholder.encode(), INVALID_UTF8)
        add(f"invalid UTF-8 in span {where}", "traces", body, {"Content-Type": PROTO}, {200, 400}, 2, m,
            grpc=rng.random() < 0.3)

    def odd_paths():
        m = marker()
        req = trace_request(rng, m, 1)
        path = rng.choice(["/v1/traces/", "/V1/TRACES", "/v1/traces%00", "/v1//traces", "/v1/traces/../metrics",
                           "/v1/spans", "/v1/modelwatch/cli", "/" + "a" * 5000])
        add(f"path {path[:24]}", "traces", req.SerializeToString(), {"Content-Type": PROTO}, None, 1, m, path=path)

    def too_big():
        m = marker()
        which = rng.choice(["raw", "bomb"])
        req = trace_request(rng, m, 1, attrs={"big": "z" * (17 * 2**20)})
        raw = req.SerializeToString()
        if which == "raw":
            add("body over 16 MiB", "traces", raw, {"Content-Type": PROTO}, {413}, 0, m)
        else:
            add("gzip bomb over 16 MiB inflated", "traces", gzip.compress(raw, 9),
                {"Content-Type": PROTO, "Content-Encoding": "gzip"}, {413}, 0, m)

    def valid():
        sig, m = rng.choice(sigs), marker()
        req = request_for(sig, rng, m, rng.randrange(1, 30))
        as_json = rng.random() < 0.3
        add(f"valid {sig}", sig, otlp_json(req) if as_json else req.SerializeToString(),
            {"Content-Type": JSON_CT if as_json else PROTO}, {200}, items(req), m,
            typed=items(req) if sig == "traces" else 0, grpc=not as_json and rng.random() < 0.3)

    def hostile_metrics():
        m = marker()
        metrics_pb2 = _pb()[1]
        req = metrics_pb2.ExportMetricsServiceRequest()
        rm = req.resource_metrics.add()
        _set(rm.resource.attributes, "probe.case", m)
        met = rm.scope_metrics.add().metrics.add(name="probe.h")
        t = NOW_NS - rng.randrange(3600) * 10**9
        kind = rng.choice(["histogram, counts and bounds mismatched", "histogram, NaN sum", "histogram, no buckets",
                           "exponential histogram, scale -100", "exponential histogram, huge offset",
                           "summary, NaN quantiles", "sum, NaN and inf", "gauge, int64 extremes", "no data"])
        n = 2
        for i in range(n):
            if kind.startswith("histogram"):
                dp = met.histogram.data_points.add(time_unix_nano=t, count=rng.randrange(10**6))
                if "mismatched" in kind:
                    dp.bucket_counts.extend([1] * rng.randrange(0, 9))
                    dp.explicit_bounds.extend(sorted(rng.random() for _ in range(rng.randrange(0, 9))))
                elif "NaN" in kind:
                    dp.sum = math.nan
                    dp.bucket_counts.extend([1, 2])
                    dp.explicit_bounds.extend([math.inf])
            elif kind.startswith("exponential"):
                dp = met.exponential_histogram.data_points.add(time_unix_nano=t, count=3, zero_count=1)
                dp.scale = -100 if "scale" in kind else 20
                dp.positive.offset = 2**31 - 1 if "offset" in kind else -(2**31)
                dp.positive.bucket_counts.extend([1, 1])
            elif kind.startswith("summary"):
                dp = met.summary.data_points.add(time_unix_nano=t, count=1, sum=math.nan)
                dp.quantile_values.add(quantile=math.nan, value=math.inf)
                dp.quantile_values.add(quantile=2.0, value=-math.inf)
            elif kind.startswith("sum"):
                met.sum.data_points.add(time_unix_nano=t, as_double=rng.choice([math.nan, math.inf, -math.inf]))
                met.sum.aggregation_temporality = rng.choice([0, 1, 2, 7])
            elif kind.startswith("gauge"):
                met.gauge.data_points.add(time_unix_nano=t, as_int=rng.choice([2**63 - 1, -(2**63)]))
        count = 0 if kind == "no data" else n
        add(f"metrics {kind}", "metrics", req.SerializeToString(), {"Content-Type": PROTO}, {200, 400}, count, m,
            grpc=rng.random() < 0.3)

    def lone_surrogate_json():
        m = marker()
        where = rng.choice(["name", "model", "value"])
        ph = "SURROGATE-PLACEHOLDER"
        kw = {"name": ph} if where == "name" else {"model": ph} if where == "model" else {"attrs": {"v": ph}}
        body = otlp_json(trace_request(rng, m, 2, **kw)).replace(ph.encode(), rng.choice([b"\\ud800", b"\\udfff",
                                                                                         b"a\\u0000b"]))
        add(f"JSON lone surrogate / NUL in span {where}", "traces", body, {"Content-Type": JSON_CT}, {200, 400}, 2, m)

    def odd_ids_and_types():
        m = marker()
        req = trace_request(rng, m, 2)
        span = req.resource_spans[0].scope_spans[0].spans[0]
        which = rng.choice(["ids", "types", "events"])
        if which == "ids":
            span.trace_id = rng.choice([b"", b"\x01\x02\x03", b"\x00" * 16, rng.randbytes(40)])
            span.span_id = rng.choice([b"", b"\x01", b"\x00" * 8, rng.randbytes(20)])
            span.parent_span_id = rng.choice([b"", rng.randbytes(3)])
        elif which == "types":
            for k in ("ml.model.name", "ml.prediction.id", "ml.feature.x", "ml.prediction.value", "ml.sampling.weight"):
                v = span.attributes.add(key=k).value
                pick = rng.randrange(4)
                if pick == 0:
                    v.array_value.values.add().double_value = math.nan
                elif pick == 1:
                    v.kvlist_value.values.add(key="a").value.string_value = "b"
                elif pick == 2:
                    v.bytes_value = rng.randbytes(8)
                # 3: an empty AnyValue
        else:
            for i in range(rng.choice([100, 5000])):
                ev = span.events.add(name=f"e{i}", time_unix_nano=rng.choice([0, 1, 2**64 - 1]))
                _set(ev.attributes, "k", "v")
            span.links.add(trace_id=b"\x01", span_id=b"")
            span.status.code = 7
            span.kind = 99
        add(f"span {which} odd", "traces", req.SerializeToString(), {"Content-Type": PROTO}, {200, 400}, 2, m,
            grpc=rng.random() < 0.3)

    weighted = [(hostile_metrics, 5), (lone_surrogate_json, 3), (odd_ids_and_types, 5), (random_bytes, 10),
                (truncated_proto, 12), (gzip_cases, 12), (content_types, 8), (encodings, 5),
                (json_shapes, 10), (deep_proto, 3), (huge_attrs, 2), (timestamps, 12), (json_timestamps, 3),
                (weights, 8), (hostile_names, 12), (invalid_utf8, 4), (odd_paths, 3), (valid, 8)]
    pool = [f for f, w in weighted for _ in range(w)]
    big = 0
    while len(cases) < n_total:
        if big < 2 and len(cases) in (n_total // 3, 2 * n_total // 3):
            big += 1
            too_big()
            continue
        rng.choice(pool)()
    return cases[:n_total]


# -- probe results ------------------------------------------------------------------------------------------------

class Probe:
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


GRPC_OK = {"OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "UNAVAILABLE", "UNAUTHENTICATED"}
GRPC_FOR_HTTP = {200: "OK", 400: "INVALID_ARGUMENT", 413: "RESOURCE_EXHAUSTED", 401: "UNAUTHENTICATED"}


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


def _documented_http(status: int) -> bool:
    return 200 <= status < 300 or status in (400, 401, 403, 404, 405, 413, 415, 429, 503) or (400 <= status < 500)


def _stored(store_dir: Path, sig_tables: dict[str, str]) -> dict[str, int]:
    qs = [f"SELECT ResourceAttributes['probe.case'] AS m, count() FROM modelwatch.{t} WHERE m != '' GROUP BY m"
          for tables in sig_tables.values() for t in tables]
    out: dict[str, int] = collections.Counter()
    for rows in query(store_dir, *qs):
        for m, c in rows:
            out[m] += int(c)
    return out


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
    stored = _stored(store, SIGNAL_TABLE)
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


# -- 2. kill -9 during ingest -------------------------------------------------------------------------------------

def probe_kill9(p: Probe, args, tmp: Path) -> None:
    rng = random.Random(args.seed + 2)
    store = tmp / "p2-store"
    acked: set[str] = set()
    repairs: list[int] = []
    sent = 0
    batch = 50
    serve = Serve(store)
    try:
        for rnd in range(args.kill_rounds):
            stop = threading.Event()
            lock = threading.Lock()

            def sender(worker: int, stop: threading.Event = stop, rnd: int = rnd, serve: Serve = serve,
                       lock: threading.Lock = lock) -> None:
                nonlocal sent
                k = 0
                while not stop.is_set():
                    marker = f"k{rnd}w{worker}b{k}"
                    k += 1
                    body = trace_request(rng, marker, batch, start=NOW_NS - rng.randrange(600) * 10**9,
                                         model="durable").SerializeToString()
                    status = post(serve.http_port, "/v1/traces", body, {"Content-Type": PROTO}, timeout=30)[0]
                    with lock:
                        sent += batch
                        if 200 <= status < 300:
                            acked.update(f"{marker}~{i}" for i in range(batch))

            threads = [threading.Thread(target=sender, args=(w,)) for w in range(3)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.3, args.kill_after))
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
    finally:
        rc = serve.stop()
    p.check(rc == 0, f"serve's SIGTERM exit code {rc}")
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
    p.detail = (f"{args.kill_rounds} rounds, {sent} spans sent, {len(acked)} acknowledged, {len(raw_ids)} in "
                f"otel_traces, {len(typed_ids)} in ml_predictions; typed by serve at restart: "
                + "/".join(map(str, repairs)) + " spans per round")


# -- 3. overload ---------------------------------------------------------------------------------------------------

def probe_overload(p: Probe, args, tmp: Path) -> None:
    rng = random.Random(args.seed + 3)
    store = tmp / "p3-store"
    n = args.overload
    bodies = [trace_request(rng, f"ov{i}", args.overload_spans).SerializeToString() for i in range(n)]
    grpc_bodies = [trace_request(rng, f"og{i}", args.overload_spans).SerializeToString() for i in range(n)]
    serve = Serve(store)
    results: list = [None] * n
    grpc_results: list = [None] * len(grpc_bodies)
    try:
        barrier = threading.Barrier(n)

        def one(i: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", serve.http_port, timeout=120)
            try:
                conn.connect()
                try:
                    barrier.wait(60)
                except threading.BrokenBarrierError:
                    pass
                conn.request("POST", "/v1/traces", body=bodies[i], headers={"Content-Type": PROTO})
                resp = conn.getresponse()
                resp.read()
                results[i] = (resp.status, resp.getheader("Retry-After"))
            except (OSError, http.client.HTTPException) as exc:
                results[i] = (-1, repr(exc))
            finally:
                conn.close()

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)

        import grpc
        with grpc.insecure_channel(f"127.0.0.1:{serve.grpc_port}") as ch:
            call = ch.unary_unary(GRPC_METHOD["traces"], request_serializer=None, response_deserializer=None)
            futures = [call.future(b, timeout=120) for b in grpc_bodies]
            for i, f in enumerate(futures):
                try:
                    f.result()
                    grpc_results[i] = "OK"
                except grpc.RpcError as exc:
                    grpc_results[i] = exc.code().name
                    if exc.code() == grpc.StatusCode.UNAVAILABLE and not _retry_info(exc):
                        grpc_results[i] = "UNAVAILABLE without RetryInfo"
        alive = serve.healthy()
    finally:
        rc = serve.stop()
    p.check(alive and rc == 0, f"serve unhealthy after the overload (exit {rc})")
    stored = _stored(store, {"traces": ["otel_traces"]})
    answers = collections.Counter()
    for i, (status, retry) in enumerate(results):
        answers[status] += 1
        ok = 200 <= status < 300 or (status in (503, 429) and retry is not None)
        p.check(ok, f"request {i}: answered {status} (Retry-After {retry!r})")
        want = args.overload_spans if 200 <= status < 300 else 0
        p.check(stored.get(f"ov{i}", 0) == want, f"request {i} answered {status}: {stored.get(f'ov{i}', 0)} "
                                                 f"spans stored, expected {want}")
    gans = collections.Counter(grpc_results)
    for i, code in enumerate(grpc_results):
        # overload must be retryable: UNAVAILABLE with a RetryInfo delay (RESOURCE_EXHAUSTED is not retried)
        p.check(code in ("OK", "UNAVAILABLE"), f"gRPC request {i}: {code}")
        want = args.overload_spans if code == "OK" else 0
        p.check(stored.get(f"og{i}", 0) == want, f"gRPC request {i} {code}: {stored.get(f'og{i}', 0)} stored")
    p.detail = (f"{n} HTTP at once: " + ", ".join(f"{k}x{v}" for k, v in sorted(answers.items()))
                + f"; {len(grpc_bodies)} gRPC at once: " + ", ".join(f"{k}x{v}" for k, v in sorted(gans.items())))
    if answers.get(503, 0) + answers.get(429, 0) == 0:
        p.detail += " (the limit was not reached)"


def _retry_info(exc) -> bool:
    """Whether a gRPC error carries a google.rpc.RetryInfo detail (the delay OTLP exporters wait before retrying)."""
    from google.rpc import error_details_pb2, status_pb2

    raw = dict(exc.trailing_metadata() or ()).get("grpc-status-details-bin")
    if not raw:
        return False
    return any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status_pb2.Status.FromString(raw).details)


# -- 4. auth -------------------------------------------------------------------------------------------------------

def probe_auth(p: Probe, args, tmp: Path) -> None:
    rng = random.Random(args.seed + 4)
    store, work = tmp / "p4-store", tmp / "p4-work"
    work.mkdir()
    token = "tok-" + "".join(rng.choice("abcdefghijkmnopqrstuvwxyz23456789") for _ in range(32))
    token_file = tmp / "token"
    token_file.write_text(f"\n  {token}  \n")
    token_file.chmod(0o600)
    bad = {"missing": None, "wrong": "Bearer nope", "prefix": f"Bearer {token[:-1]}", "suffix": f"Bearer {token}x",
           "token upper-cased": f"Bearer {token.upper()}", "no scheme": token, "scheme only": "Bearer",
           "empty": "", "Basic token": "Basic " + base64.b64encode(token.encode()).decode(),
           "Basic user:token": "Basic " + base64.b64encode(f"u:{token}".encode()).decode(),
           "two tokens": f"Bearer {token}, Bearer {token}", "Bearer with NUL": f"Bearer {token}\x00",
           "Token scheme": f"Token {token}"}
    lenient = {"lower-case scheme": f"bearer {token}", "two spaces": f"Bearer  {token}", "tab": f"Bearer\t{token}"}
    expected_stored: dict[str, int] = {}
    results: list[tuple[str, object, set]] = []
    serve = Serve(store, token_file=token_file, cwd=work)
    written: list[Path] = []
    try:
        for what, value in list(bad.items()) + list(lenient.items()) + [("correct", f"Bearer {token}")]:
            m = f"au{len(results)}"
            headers = {"Content-Type": PROTO}
            if value is not None:
                headers["Authorization"] = value
            body = trace_request(rng, m, 2).SerializeToString()
            status = post(serve.http_port, "/v1/traces", body, headers)[0]
            if status == -1 and "\x00" in (value or ""):
                status = 401  # http.client refuses to send a NUL in a header: nothing left this machine
            expect = {401} if what in bad else {200, 401} if what in lenient else {200}
            if "NUL" in what:
                expect = {400, 401}  # the HTTP parser may refuse a NUL in a header before the token is read
            results.append((f"HTTP {what}", status, expect))
            expected_stored[m] = 2 if status == 200 else 0
        for what, value in [("missing", None), ("wrong", "Bearer nope"), ("prefix", f"Bearer {token[:-1]}"),
                            ("Basic", "Basic " + base64.b64encode(token.encode()).decode()),
                            ("correct", f"Bearer {token}")]:
            m = f"au{len(results)}"
            md = None if value is None else [("authorization", value)]
            code = grpc_raw(serve.grpc_port, "traces", trace_request(rng, m, 2).SerializeToString(), metadata=md)
            results.append((f"gRPC {what}", code, {"OK"} if what == "correct" else {"UNAUTHENTICATED"}))
            expected_stored[m] = 2 if code == "OK" else 0

        # the CLI endpoint
        lock = store / "modelwatch-serve.json"
        mode = stat.S_IMODE(lock.stat().st_mode)
        p.check(mode == 0o600, f"lock file mode {oct(mode)}")
        info = json.loads(lock.read_text())
        secret = info["secret"]
        url = f"chdb://{store}"
        auth = {"Authorization": f"Bearer {token}"}
        out = work / "report.html"
        precious = work / "precious.txt"
        precious.write_text("keep me")
        link = work / "link.html"
        link.symlink_to(precious)
        good_headers = {"Host": f"127.0.0.1:{serve.http_port}", "Content-Type": JSON_CT, SECRET_HEADER: secret, **auth}

        def cli_post(argv, **changes) -> tuple[int, dict]:
            headers = {k: v for k, v in {**good_headers, **changes}.items() if v is not None}
            body = changes.pop("_body", None)
            headers.pop("_body", None)
            status, _h, data = post(serve.http_port, "/v1/modelwatch/cli",
                                    body if body is not None else json.dumps({"argv": argv}).encode(), headers)
            try:
                return status, json.loads(data)
            except ValueError:
                return status, {"raw": data[:200]}

        report = ["report", "--url", url, "--out", str(out)]
        refusals = [
            ("no secret", report, {SECRET_HEADER: None}, 403),
            ("wrong secret", report, {SECRET_HEADER: "guess"}, 403),
            ("secret prefix", report, {SECRET_HEADER: secret[:-1]}, 403),
            ("secret upper-cased", report, {SECRET_HEADER: secret.upper()}, 403),
            ("no bearer token", report, {"Authorization": None}, 401),
            ("Host evil.example", report, {"Host": "evil.example"}, 403),
            ("Host evil.example:port", report, {"Host": f"evil.example:{serve.http_port}"}, 403),
            ("Host 127.0.0.1.evil.example", report, {"Host": f"127.0.0.1.evil.example:{serve.http_port}"}, 403),
            ("Host localhost.evil.example", report, {"Host": "localhost.evil.example"}, 403),
            ("Origin", report, {"Origin": "http://evil.example"}, 403),
            ("Origin null", report, {"Origin": "null"}, 403),
            ("Sec-Fetch-Site", report, {"Sec-Fetch-Site": "cross-site"}, 403),
            ("Sec-Fetch-Mode", report, {"Sec-Fetch-Mode": "no-cors"}, 403),
            ("text/plain", report, {"Content-Type": "text/plain"}, 415),
            ("form", report, {"Content-Type": "application/x-www-form-urlencoded"}, 415),
            ("no content type", report, {"Content-Type": None}, 415),
            ("argv not a list", None, {"_body": b'{"argv": "status"}'}, 400),
            ("argv of numbers", None, {"_body": b'{"argv": [1, 2]}'}, 400),
            ("body not JSON", None, {"_body": b"{nope"}, 400),
            ("body a JSON list", None, {"_body": b'["status"]'}, 400),
            ("body over 1 MiB", None, {"_body": json.dumps({"argv": ["status", "x" * (2**20 + 10)]}).encode()}, 413),
        ]
        for what, argv, changes, want in refusals:
            status, _answer = cli_post(argv, **changes)
            p.check(status == want, f"CLI endpoint, {what}: answered {status}, expected {want}")
        exit2 = [
            ("non-loopback --url (http)", ["status", "--url", "http://10.1.2.3:8123"]),
            ("non-loopback --url (clickhouse)", ["status", "--url", "clickhouse://evil.example:9000/x"]),
            ("another chDB directory", ["status", "--url", f"chdb://{work / 'other-store'}"]),
            ("another database", ["status", "--url", url, "--database", "other"]),
            ("no --url", ["baseline", "list"]),
            ("relative --out", ["report", "--url", url, "--out", "relative.html"]),
            ("relative --config", ["analyze", "--url", url, "--model", "m", "--last", "1h", "--config", "mw.toml"]),
            ("--out a symlink", ["report", "--url", url, "--out", str(link)]),
            ("--out a directory", ["report", "--url", url, "--out", str(work)]),
            ("--out in a missing directory", ["report", "--url", url, "--out", str(work / "no" / "dir" / "r.html")]),
            ("--out /dev/null", ["report", "--url", url, "--out", "/dev/null"]),
            ("--file /dev/zero", ["baseline", "create", "--url", url, "--model", "m", "--version", "1",
                                  "--file", "/dev/zero"]),
            ("command serve", ["serve", "--url", url]),
            ("command schema apply", ["schema", "apply", "--url", url]),
            ("command demo", ["demo"]),
            ("command analyzer", ["analyzer", "--url", url]),
        ]
        for what, argv in exit2:
            status, answer = cli_post(argv)
            p.check(status == 200 and answer.get("code") == 2,
                    f"CLI endpoint, {what}: answered {status} {str(answer)[:160]}, expected exit code 2")
        written += [out, work / "relative.html", work / "other-store", work / "no", store / "relative.html"]
        p.check(precious.read_text() == "keep me" and link.is_symlink(), "the symlink's target was overwritten")
        status, answer = cli_post(["status", "--url", url])
        p.check(status == 200 and answer.get("code") == 0 and str(store) in answer.get("stdout", ""),
                f"CLI endpoint with the secret: {status} {str(answer)[:200]}")
        # the CLI itself: with the token it forwards; a lock file others may read is not trusted
        shown = run(CLI + ["status", "--url", url], cwd=work, env=child_env(MODELWATCH_TOKEN=token))
        p.check(shown.returncode == 0 and str(store) in shown.stdout,
                f"`modelwatch status` with MODELWATCH_TOKEN: exit {shown.returncode} {shown.stderr[-200:]}")
        no_token = run(CLI + ["status", "--url", url], cwd=work)
        p.check(no_token.returncode != 0, f"`modelwatch status` without the token: exit {no_token.returncode}")
        lock.chmod(0o644)
        try:
            loose = run(CLI + ["report", "--url", url, "--out", str(out)], cwd=work,
                        env=child_env(MODELWATCH_TOKEN=token))
        finally:
            lock.chmod(0o600)
        p.check(loose.returncode != 0 and not out.exists(),
                f"`modelwatch report` trusted a lock file of mode 0644: exit {loose.returncode}")
        p.check(len((loose.stdout + loose.stderr).strip().splitlines()) <= 2,
                f"refusal of a 0644 lock file is not one line: {(loose.stdout + loose.stderr)[-300:]}")
    finally:
        rc = serve.stop()
    p.check(rc == 0, f"serve's SIGTERM exit code {rc}")
    for path in written:
        p.check(not path.exists(), f"a refused command wrote {path}")
    stored = _stored(store, {"traces": ["otel_traces"]})
    for i, (what, status, expect) in enumerate(results):
        p.check(status in expect, f"{what}: answered {status}, expected {sorted(expect)}")
        m = f"au{i}"
        p.check(stored.get(m, 0) == expected_stored[m], f"{what} ({status}): {stored.get(m, 0)} spans stored, "
                                                         f"expected {expected_stored[m]}")
    p.detail = (f"{len(results)} OTLP token variants, {len(refusals) + len(exit2)} CLI endpoint refusals, "
                "lock file mode, CLI client checks")


# -- 5. hostile SDK calls -----------------------------------------------------------------------------------------

class ModelError(Exception):
    pass


class _Weird:
    def __float__(self):
        raise RuntimeError("no float for you")

    def __str__(self):
        raise RuntimeError("no str for you")

    def __repr__(self):
        raise RuntimeError("no repr for you")

    def __len__(self):
        raise RuntimeError("no len")

    def __iter__(self):
        raise RuntimeError("no iter")

    def __eq__(self, other):
        raise RuntimeError("no eq")

    __hash__ = object.__hash__


def _hostile_value(rng: random.Random, depth: int = 0):
    choice = rng.randrange(22)
    if choice == 0:
        return math.nan
    if choice == 1:
        return rng.choice([math.inf, -math.inf])
    if choice == 2:
        return None
    if choice == 3:
        return "s" * rng.choice([0, 1, 1000, 100_000])
    if choice == 4 and depth < 3:
        return {rng.choice(["a", 1, None, (1, 2), "b" * 300]): _hostile_value(rng, depth + 1) for _ in range(3)}
    if choice == 5 and depth < 3:
        return [_hostile_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    if choice == 6:
        return object()
    if choice == 7:
        return _Weird()
    if choice == 8:
        return b"\xff\xfe" * rng.randrange(10)
    if choice == 9:
        return complex(1, 2)
    if choice == 10:
        return 2**200
    if choice == 11:
        return -(2**63)
    if choice == 12:
        return rng.choice(HOSTILE)
    if choice == 13:
        return {1, 2}
    if choice == 14:
        return lambda: 1
    if choice == 15:
        return True
    if choice == 16:
        return 9.2e18
    if choice == 17:
        import decimal
        return decimal.Decimal("NaN")
    if choice == 18:
        import datetime
        return datetime.datetime.now()
    if choice == 19:
        d: dict = {}
        d["self"] = d
        return d
    if choice == 20:
        return "\ud800"  # a lone surrogate: not encodable as UTF-8
    return rng.random()


def _hostile_input(rng: random.Random):
    kind = rng.randrange(12)
    if kind == 0:
        return {f"f{i}": _hostile_value(rng) for i in range(rng.randrange(1, 8))}
    if kind == 1:
        return {f"f{i}": 0.5 for i in range(rng.choice([1000, 5000]))}
    if kind == 2:
        return [{"a": _hostile_value(rng)} for _ in range(rng.randrange(0, 4))]
    if kind == 3:
        return [[_hostile_value(rng) for _ in range(3)] for _ in range(rng.randrange(0, 4))]
    if kind == 4:
        try:
            import numpy as np
            return np.array([[math.nan, math.inf], [-math.inf, 1e308]])
        except ImportError:
            return [math.nan]
    if kind == 5:
        return {rng.choice(HOSTILE) or "e": _hostile_value(rng)}
    if kind == 6:
        return {(1, 2): 1, None: 2, 3: "x"}
    return _hostile_value(rng)


def _hostile_output(rng: random.Random):
    k = rng.randrange(8)
    if k == 0:
        return {"prediction": _hostile_value(rng), "score": _hostile_value(rng)}
    if k == 1:
        return {"prediction": "ok", "score": rng.choice([math.nan, math.inf, -1.0, 2.0, None, "0.3"])}
    if k == 2:
        return {"confidence": _hostile_value(rng), "risk": _hostile_value(rng)}
    return _hostile_value(rng)


def sdk_child(mode: str, calls: int, seed: int) -> int:
    """In a fresh interpreter: `calls` hostile calls of monitored functions. Prints a JSON summary."""
    import asyncio
    import logging

    logging.disable(logging.CRITICAL)  # the SDK logs what it swallows; the count is what matters here
    import modelwatch

    if mode == "unreachable":
        modelwatch.configure(metric_export_interval_millis=500)
    elif mode == "disabled":
        modelwatch.configure()
    rng = random.Random(seed)
    outcome = collections.Counter()
    foreign: list[str] = []

    def make(variant: int):
        opts = [{}, {"sampling_rate": 1.0}, {"sampling_rate": 0.0}, {"model": rng.choice(HOSTILE) or "m"},
                {"feature_names": ["a", "b"]}, {"version": "\x1b[2J"}, {"max_string_length": 1},
                {"hash_features": ["f0", "a"], "drop_features": ["f1"]}]
        options = {"model": "hostile", "sampling_rate": 1.0, **opts[variant % len(opts)]}

        @modelwatch.monitor(**options)
        def predict(x=None, **kw):
            if rng.random() < 0.1:
                raise ModelError("the model's own")
            return _hostile_output(rng)

        return predict

    functions = [make(i) for i in range(8)]

    async def _async_model(x):
        if rng.random() < 0.1:
            raise ModelError("the model's own, async")
        return _hostile_output(rng)

    apredict = modelwatch.monitor(model="hostile-async", sampling_rate=1.0)(_async_model)
    for i in range(calls):
        x = _hostile_input(rng)
        try:
            if i % 50 == 49:
                asyncio.run(apredict(x))
            elif i % 7 == 3:
                rng.choice(functions)(features=x)
            else:
                rng.choice(functions)(x)
            outcome["returned"] += 1
        except ModelError:
            outcome["model raised"] += 1
        except BaseException as exc:  # noqa: BLE001 - anything else is the SDK's
            outcome["sdk raised"] += 1
            if len(foreign) < 5:
                foreign.append(f"{type(exc).__name__}: {str(exc)[:160]}")
        if i % 13 == 0:  # the other public calls a new user makes, with hostile arguments too
            for name, api in (("record_label", lambda: modelwatch.record_label(
                                    _hostile_value(rng), _hostile_value(rng), _hostile_value(rng))),
                              ("set_prediction_id", lambda: modelwatch.set_prediction_id(_hostile_value(rng))),
                              ("mark_edge_case", modelwatch.mark_edge_case),
                              ("last_prediction", modelwatch.last_prediction)):
                try:
                    api()
                    outcome["api calls"] += 1
                except BaseException as exc:  # noqa: BLE001
                    outcome["sdk raised"] += 1
                    if len(foreign) < 5:
                        foreign.append(f"{name}: {type(exc).__name__}: {str(exc)[:160]}")
    print(json.dumps({"mode": mode, "outcome": outcome, "foreign": foreign}), flush=True)
    return 0


def probe_sdk(p: Probe, args, tmp: Path) -> None:
    dead = free_port()  # nothing listens there
    modes = {
        "unreachable": {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{dead}", "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
                        "OTEL_BSP_EXPORT_TIMEOUT": "1000", "OTEL_BSP_SCHEDULE_DELAY": "200"},
        "disabled": {"OTEL_SDK_DISABLED": "true"},
        "unconfigured": {},
    }
    per = -(-args.sdk_calls // len(modes))
    procs = {}
    for i, (mode, env) in enumerate(modes.items()):
        procs[mode] = spawn([sys.executable, str(Path(__file__).resolve()), "--sdk-child", mode, "--sdk-calls", str(per),
                             "--seed", str(args.seed + 50 + i)], env=child_env(**env), cwd=tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parts = []
    for mode, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=args.sdk_timeout)
        except subprocess.TimeoutExpired:
            kill(proc)
            p.check(False, f"{mode}: {per} calls did not complete within {args.sdk_timeout} s")
            continue
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            p.check(False, f"{mode}: the child exited {proc.returncode}: {err[-400:]}")
            continue
        res = json.loads(lines[-1])
        o = res["outcome"]
        done = o.get("returned", 0) + o.get("model raised", 0)
        p.cases += per
        if o.get("sdk raised"):
            p.fail(f"{mode}: the SDK raised {o['sdk raised']} times: {res['foreign']}")
        if done != per:
            p.fail(f"{mode}: {done} of {per} calls completed")
        parts.append(f"{mode}: {o.get('returned', 0)} returned, {o.get('model raised', 0)} model raised, "
                     f"{o.get('sdk raised', 0)} SDK raised")
    p.detail = f"{per * len(modes)} calls; " + "; ".join(parts)


# -- 6. concurrent analyses with alerting ---------------------------------------------------------------------------

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


def probe_alerts(p: Probe, args, tmp: Path) -> None:
    rng = random.Random(args.seed + 6)
    store, work = tmp / "p6-store", tmp / "p6-work"
    work.mkdir()
    hook = Webhook()
    model = "probe-drift"
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
    # current data: x drifted far, y a little, plan flipped; 2-3 h ago (inside both the scheduled window, which
    # ends on the last hour, and analyze --last 24h)
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
                    _set(span.attributes, k, v)
            status = post(serve.http_port, "/v1/traces", req.SerializeToString(), {"Content-Type": PROTO})[0]
            p.check(status == 200, f"drifted batch {b}: answered {status}")
        made = run(CLI + ["baseline", "create", "--url", serve.url, "--model", model, "--version", "1",
                          "--file", str(train), "--categorical", "plan"], cwd=work)
        p.check(made.returncode == 0, f"baseline create: exit {made.returncode}: {made.stderr[-300:]}")
    finally:
        serve.stop()

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
    keys = collections.Counter()
    for b in hook.bodies:
        a = b.get("alert", {})
        keys[(a.get("rule"), a.get("model"), a.get("feature"), a.get("severity"))] += 1
    p.cases += len(keys) + len(outcomes)
    p.check(len(keys) > 0, "no alert was POSTed: the drifted data did not trigger one")
    for key, n in keys.items():
        p.check(n == 1, f"alert {key} POSTed {n} times within the cooldown")
    p.check(len(hook.bodies) == first, f"the second wave POSTed {len(hook.bodies) - first} more alerts")
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
    p.detail = (f"{args.alert_procs} x 2 forwarded analyze --alert + the scheduled analyzer; {len(hook.bodies)} POSTs "
                f"for {len(keys)} alert keys: " + ", ".join(f"{k[2] or k[0]}/{k[3]}x{n}" for k, n in sorted(
                    keys.items(), key=str)) + f"; {len(runs)} runs stored ({scheduled} scheduled)")


# -- 7. the CLI as a new user -----------------------------------------------------------------------------------

def probe_cli_usage(p: Probe, args, tmp: Path) -> None:
    """Mistakes and hostile arguments of a new user: a documented exit code, no traceback, a short message, and no
    escape sequence echoed to the terminal."""
    rng = random.Random(args.seed + 7)
    work = tmp / "p7-work"
    work.mkdir()
    url = "chdb://STORE"  # each of the two workers has a store of its own (an embedded store has one owner)
    other = "chdb://STORE-serve"
    files = {"bad.toml": "[schedule\nevery_minutes = 1\n", "nan.toml": "[schedule]\nevery_minutes = nan\n",
             "inf.toml": "[schedule]\nwindow_hours = inf\n", "unknown.toml": "[schedul]\nx = 1\n",
             "hostile.toml": '[[models]]\nname = "\\u001b[2J\\u001b]0;pwned\\u0007"\n',
             "empty.csv": "", "header.csv": "x,y\n", "nan.csv": "x,y\nnan,inf\n-inf,1e400\n,\n",
             "ragged.csv": "x,y\n1\n1,2,3\n\"unterminated\n", "empty-token": "  \n"}
    for name, text in files.items():
        (work / name).write_text(text)
    (work / "garbage.csv").write_bytes(rng.randbytes(4096))
    (work / "garbage.parquet").write_bytes(b"PAR1" + rng.randbytes(4096))
    (work / "cert.pem").write_text("not a certificate\n")
    w = lambda name: str(work / name)  # noqa: E731
    esc = "\x1b[2J\x1b]0;pwned\x07"
    an = ["analyze", "--url", url, "--model"]
    bc = ["baseline", "create", "--url", url, "--model", "m", "--version", "1"]
    cmds: list[tuple[list[str], set[int]]] = [
        (["status", "--url", url], {1}),  # no store yet: says how to make one
        ([], {0, 2}), (["nosuchcommand"], {2}), (["analyze"], {2}), (["analyze", "--url", url], {2}),
        (an + ["nope", "--last", "24h"], {1, 2}),
        (an + [esc, "--last", "24h"], {1, 2}),
        (an + ["m", "--last", "banana"], {2}), (an + ["m", "--last", "-5h"], {1, 2}),
        (an + ["m", "--since", "2026-13-45"], {2}), (an + ["m", "--last", "1h", "--numeric-sample-rows", "-5"], {2}),
        (an + ["m", "--last", "1h", "--baseline", "'; DROP TABLE ml_baselines; --"], {1, 2}),
        (an + ["m", "--last", "1h", "--config", w("bad.toml")], {2}),
        (an + ["m", "--last", "1h", "--config", w("nan.toml")], {2}),
        (an + ["m", "--last", "1h", "--config", w("hostile.toml")], {1, 2}),
        (an + ["m", "--last", "1h", "--config", w("missing.toml")], {2}),
        (bc + ["--file", w("missing.csv")], {1, 2}), (bc + ["--file", w("empty.csv")], {1, 2}),
        (bc + ["--file", w("nan.csv")], {0, 1, 2}), (bc + ["--file", w("ragged.csv")], {0, 1, 2}),
        (bc + ["--file", w("garbage.csv")], {1, 2}), (bc + ["--file", w("garbage.parquet")], {1, 2}),
        (bc + ["--since", "7d"], {1, 2}), (bc, {2}),
        (["report", "--url", url, "--out", w("no/dir/r.html")], {0}),  # run locally, it makes the directories
        (["report", "--url", url, "--out", str(work)], {1, 2}),
        (["status", "--url", url, "--model", esc], {0, 1}),
        (["status", "--url", url, "--database", "x'; DROP DATABASE modelwatch; --"], {1, 2}),
        (["status", "--url", url, "--database", esc], {1, 2}),
        (["status", "--url", "chdb:///proc/nope"], {1, 2}),
        (["status", "--url", "http://127.0.0.1:1"], {1}),
        (["status", "--url", "garbage://x"], {1, 2}), (["status", "--url", ""], {0, 1, 2}),
        (["status", "--url", "http://user:pw@127.0.0.1:1/?x=" + esc], {1, 2}),
        (["schema", "apply", "--url", url, "--retention-days", "-1"], {2}),
        (["schema", "apply", "--url", url, "--retention-days", "nan"], {2}),
        (["serve", "--url", other, "--http-port", "99999"], {1, 2}),
        (["serve", "--url", other, "--token-file", w("missing-token")], {2}),
        (["serve", "--url", other, "--token-file", w("empty-token")], {2}),
        (["serve", "--url", other, "--tls-cert", w("cert.pem")], {2}),
        (["serve", "--url", other, "--tls-cert", w("cert.pem"), "--tls-key", w("cert.pem")], {2}),
        (["serve", "--url", other, "--config", w("nan.toml")], {2}),
        (["status", "--url", url], {0}),  # the store is still whole after all that
    ]
    first, last = cmds[0], cmds[-1]  # status before the store exists; status after everything
    rest = cmds[1:-1]
    if args.quick:
        rest = rest[::4]
    make = (["schema", "apply", "--url", url], {0})
    plans = [[first, make] + rest[0::2] + [last], [make] + rest[1::2] + [last]]
    lock = threading.Lock()
    took: list[tuple[float, str]] = []

    def worker(k: int) -> None:
        store = str(tmp / f"p7-store{k}")
        for argv, want in plans[k]:
            argv = [a.replace("chdb://STORE", f"chdb://{store}") for a in argv]
            t = time.monotonic()
            out = run(CLI + argv, timeout=60, cwd=work)
            with lock:
                took.append((time.monotonic() - t, " ".join(argv)[:80]))
                _judge(argv, want, out)

    def _judge(argv, want, out) -> None:
        text = out.stdout + out.stderr
        shown = " ".join(argv)[:110].encode("unicode_escape").decode()
        p.check(out.returncode in want, f"`modelwatch {shown}` exited {out.returncode}, expected {sorted(want)}: "
                                        f"{out.stderr.strip()[-200:]!r}")
        p.check("Traceback" not in text, f"`modelwatch {shown}` printed a traceback: {out.stderr.strip()[-300:]!r}")
        p.check("\x1b" not in text and "\x07" not in text,
                f"`modelwatch {shown}` echoed raw control characters: {text[-200:]!r}")
        if out.returncode not in (0, 3):
            said = [ln for ln in out.stderr.strip().splitlines() if not ln.startswith(("usage:", " "))]
            p.check(len(said) <= 2 and len(out.stderr) < 4000,
                    f"`modelwatch {shown}`: a {len(said)}-line failure: {out.stderr.strip()[:300]!r}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    # a port out of range must be a usage error, not a listener on some other port
    for flag, port in (("--grpc-port", "99999"), ("--grpc-port", "-1")):
        try:
            srv = Serve(tmp / f"p7-ports{port}", extra=[flag, port], timeout=60)
        except RuntimeError as exc:
            p.check("Traceback" not in str(exc), f"`serve {flag} {port}` printed a traceback")
            continue
        p.check(False, f"`serve {flag} {port}` started, listening on gRPC port {srv.grpc_port} "
                       f"(HTTP {srv.http_port}) instead of refusing the port")
        srv.stop()
    if os.environ.get("PROBE_DEBUG"):
        for d, c in sorted(took, reverse=True):
            print(f"    {d:5.1f} s  {c}")
    p.detail = f"{sum(map(len, plans))} commands with mistakes or hostile arguments (two stores, two at a time)"


# -- main -------------------------------------------------------------------------------------------------------

PROBES = [(1, "malformed OTLP", probe_malformed), (2, "kill -9 during ingest", probe_kill9),
          (3, "overload at 2x the limit", probe_overload), (4, "auth and the CLI endpoint", probe_auth),
          (5, "hostile SDK calls", probe_sdk), (6, "concurrent alerting", probe_alerts),
          (7, "the CLI as a new user", probe_cli_usage)]


def main(argv: list[str] | None = None) -> int:
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
    args = ap.parse_args(argv)
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
            if only and number not in only:
                continue
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
            results.append(p)
            verdict = "ok" if not p.failures else f"FAILED ({len(p.failures)})"
            print(f"probe {number} {name}: {p.cases} checks, {len(p.failures)} failures, {p.seconds:.1f} s: {verdict}"
                  f"\n    {p.detail}", flush=True)
            for f in p.failures[:12]:
                print(f"    FAIL {f}", flush=True)
            if len(p.failures) > 12:
                print(f"    ... and {len(p.failures) - 12} more", flush=True)
    finally:
        kill_children()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    total = time.monotonic() - t_all
    print("\n| probe | checks | failures | seconds |\n|---|---:|---:|---:|")
    for p in results:
        print(f"| {p.number}. {p.name} | {p.cases} | {len(p.failures)} | {p.seconds:.0f} |")
    failed = sum(bool(p.failures) for p in results)
    print(f"\n{len(results)} probes in {total:.0f} s ({'--quick' if q else 'default'}, seed {args.seed}): "
          + ("all passed" if not failed else f"{failed} FAILED"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
