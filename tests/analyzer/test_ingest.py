"""Ingest writers: each commits through its own connection, and they commit concurrently."""

from __future__ import annotations

import os
import threading
import time

import pytest
from modelwatch_analyzer.collector.ingest import Ingest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2


def _request(n: int, seed: int) -> bytes:
    req = trace_service_pb2.ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    for i in range(n):
        span = spans.add(name="ml.predict", trace_id=bytes([seed + 1]) * 8 + i.to_bytes(8, "big"),
                         span_id=(seed * 1000 + i + 1).to_bytes(8, "big"), start_time_unix_nano=time.time_ns(),
                         end_time_unix_nano=time.time_ns() + 1000)
        span.attributes.add(key="ml.model.name").value.string_value = "m"
        span.attributes.add(key="ml.feature.x").value.double_value = i / 7
    return req.SerializeToString()


def _count(store, table: str = "otel_traces") -> int:
    return store.query(f"SELECT count() FROM {store.table(table)}")[0][0]


def test_a_busy_main_connection_does_not_hold_commits_up(store):
    """While the main connection is held (as by a long analysis), requests are still committed and typed."""
    ingest = Ingest(store, linger_seconds=0, native_traces=True)
    try:
        with store._lock:  # what an analysis holds for the length of its queries
            future = ingest.submit_native(_request(50, 1), 50)
            future.result(20)
        assert _count(store) == 50 and _count(store, "ml_predictions") == 50
    finally:
        ingest.close()


def test_writers_commit_concurrently(store):
    """With one writer's commit stalled, another writer commits the next request; both end up stored once."""
    ingest = Ingest(store, linger_seconds=0, native_traces=True, writers=2)
    stalled, release = threading.Event(), threading.Event()
    commands = [own.command for own in ingest._stores]

    def stalling(original):  # type: ignore[no-untyped-def]
        def command(sql, parameters=None):  # type: ignore[no-untyped-def]
            if "INSERT INTO" in sql and not stalled.is_set():
                stalled.set()
                assert release.wait(60)
            return original(sql, parameters)
        return command

    for own, original in zip(ingest._stores, commands):
        own.command = stalling(original)
    try:
        first = ingest.submit_native(_request(30, 2), 30)
        assert stalled.wait(60)
        second = ingest.submit_native(_request(20, 3), 20)
        second.result(60)  # committed by the other writer while the first commit is stalled
        assert not first.done()
        assert _count(store) == 20
        release.set()
        first.result(60)
        assert _count(store) == 50 and _count(store, "ml_predictions") == 50
        assert ingest.stats.rows == 50 and ingest.stats.batches == 2
    finally:
        release.set()
        ingest.close()


def test_writers_must_be_positive(store):
    """A writer count below one is a programming error, refused at construction."""
    with pytest.raises(ValueError):
        Ingest(store, writers=0)


def test_writers_keep_running_when_another_takes_the_queue(store):
    """Writers racing for the same requests (one finds the queue emptied by the other) all keep committing."""
    ingest = Ingest(store, linger_seconds=0.002, native_traces=True, writers=3)
    try:
        futures = []
        for round_ in range(20):
            futures += [ingest.submit_native(_request(2, 10 + round_ * 5 + k), 2) for k in range(5)]
            time.sleep(0.003)
        for f in futures:
            f.result(60)
        assert all(thread.is_alive() for thread in ingest._threads)
        assert _count(store) == 200 == ingest.stats.rows
    finally:
        ingest.close()


def test_a_failing_commit_fails_its_requests_and_the_writer_goes_on(store, monkeypatch):
    """An unexpected error inside a commit fails that batch's requests (clients retry); later requests are committed."""
    ingest = Ingest(store, linger_seconds=0, native_traces=True, writers=1)
    from modelwatch_analyzer.collector import ingest as ingest_module

    calls = []
    real = ingest_module._Writer.commit_native

    def once_broken(self, group):  # type: ignore[no-untyped-def]
        calls.append(len(group))
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return real(self, group)

    monkeypatch.setattr(ingest_module._Writer, "commit_native", once_broken)
    try:
        with pytest.raises(RuntimeError):
            ingest.submit_native(_request(3, 200), 3).result(60)
        ingest.submit_native(_request(4, 201), 4).result(60)
        assert _count(store) == 4 and ingest._threads[0].is_alive()
    finally:
        ingest.close()


def test_batch_directories_of_dead_processes_are_removed(store, tmp_path, monkeypatch):
    """A batch directory left by a killed process (its pid gone) is removed when ingest starts; a live one stays."""
    import subprocess
    import sys

    from modelwatch_analyzer.collector import ingest as ingest_module

    monkeypatch.setattr(ingest_module, "_scratch_dir", lambda: str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = tmp_path / f"modelwatch-ingest-{int(dead.stdout)}-abc"
    gone.mkdir()
    (gone / "batch-0.pb").write_bytes(b"x" * 100)
    alive = tmp_path / "modelwatch-ingest-1-def"  # pid 1 is always there
    alive.mkdir()
    other = tmp_path / "unrelated-123"
    other.mkdir()
    ingest = Ingest(store, native_traces=True)
    try:
        assert not gone.exists() and alive.exists() and other.exists()
        assert ingest._dir is not None and ingest._dir.startswith(str(tmp_path / f"modelwatch-ingest-{os.getpid()}-"))
    finally:
        ingest.close()
