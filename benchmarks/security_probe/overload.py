"""Probe 3, overload at twice the concurrency limit: 2xx or 503/429 with ``Retry-After`` (gRPC: UNAVAILABLE with
RetryInfo); every 2xx stored, nothing refused stored."""

from __future__ import annotations

import collections
import http.client
import random
import threading
from pathlib import Path

from security_probe.common import GRPC_METHOD, PROTO, Probe, Serve, stored_counts
from security_probe.payloads import trace_request


def _http_at_once(port: int, bodies: list[bytes]) -> list:
    """Every body on its own connection, released together by a barrier; (status, Retry-After) per body."""
    n = len(bodies)
    results: list = [None] * n
    barrier = threading.Barrier(n)

    def one(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
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
    return results


def _grpc_at_once(port: int, bodies: list[bytes]) -> list:
    """Every body as an asynchronous Export on one channel; the status code's name per body."""
    import grpc

    results: list = [None] * len(bodies)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = ch.unary_unary(GRPC_METHOD["traces"], request_serializer=None, response_deserializer=None)
        futures = [call.future(b, timeout=120) for b in bodies]
        for i, f in enumerate(futures):
            try:
                f.result()
                results[i] = "OK"
            except grpc.RpcError as exc:
                results[i] = exc.code().name
                if exc.code() == grpc.StatusCode.UNAVAILABLE and not _retry_info(exc):
                    results[i] = "UNAVAILABLE without RetryInfo"
    return results


def probe_overload(p: Probe, args, tmp: Path) -> None:
    rng = random.Random(args.seed + 3)
    store = tmp / "p3-store"
    n = args.overload
    bodies = [trace_request(rng, f"ov{i}", args.overload_spans).SerializeToString() for i in range(n)]
    grpc_bodies = [trace_request(rng, f"og{i}", args.overload_spans).SerializeToString() for i in range(n)]
    serve = Serve(store)
    try:
        results = _http_at_once(serve.http_port, bodies)
        grpc_results = _grpc_at_once(serve.grpc_port, grpc_bodies)
        alive = serve.healthy()
    finally:
        rc = serve.stop()
    p.check(alive and rc == 0, f"serve unhealthy after the overload (exit {rc})")
    stored = stored_counts(store, {"traces": ["otel_traces"]})
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
