"""Batched, acknowledged-means-durable ingestion into the store.

Receivers convert a request to rows (rejecting it whole if it is malformed)
and :meth:`Ingest.submit` them; a writer thread inserts everything pending
in a batch (group commit) and only then resolves each request's future, so a
receiver answers "OK" after its rows are in a committed part on disk: an
acknowledged request survives ``kill -9`` and a restart. Several writers
(two by default), each on its own connection to the store, commit batches
concurrently: a commit is one INSERT, which runs on one core (it parses and
renders the batch as one block, so that nothing of it is written unless all
of it is), and while one writer commits, the requests that arrive meanwhile
form the next writer's batch. When more rows are
pending than the bound allows, :meth:`submit` refuses with :class:`Busy`
instead of growing memory: receivers answer with the OTLP retryable status
(gRPC UNAVAILABLE, HTTP 503 with Retry-After) and the exporters retry.

A request's future follows :class:`concurrent.futures.Future`'s states: pending
while queued, running once a writer has taken it into a batch, then done. A
receiver that stops waiting (its ack timeout) calls :meth:`Ingest.withdraw`:
a request still queued is removed and will never be committed, so a retryable
answer is true; one a writer has taken cannot be withdrawn, and the receiver
answers with its commit's outcome.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Sequence

from modelwatch_analyzer.collector import native
from modelwatch_analyzer.collector.otlp_rows import Tables, trace_tables
from modelwatch_analyzer.store.client import Store

log = logging.getLogger("modelwatch.ingest")



class Busy(Exception):
    """Too much is pending: the client should retry later."""


@dataclass
class _Item:
    tables: Tables
    rows: int
    body: bytes | None = None  # a trace request for the native path: its serialized ExportTraceServiceRequest
    nested: bool = True  # that request has events or links (unknown: assume so)
    future: Future = field(default_factory=Future)


@dataclass
class IngestStats:
    requests: int = 0
    rows: int = 0
    batches: int = 0
    refused_busy: int = 0
    withdrawn: int = 0  # requests taken back from the queue by a receiver that stopped waiting
    failed_batches: int = 0
    native_rows: int = 0
    python_fallbacks: int = 0
    commit_seconds: float = 0.0  # the writers' time in inserts (wall clock, summed over writers)


DEFAULT_WRITERS = 2
"""Concurrent commits: one per core of the machines modelwatch serve is sized for; more writers make smaller batches."""


class Ingest:
    """Group commit of OTLP rows into the store by `writers` threads, with a bound on pending rows.

    Each writer has its own connection (:meth:`Store.connect_again`); `store` itself is not written through,
    so the analyzer and the CLI's questions that use it do not hold commits up.
    """

    def __init__(self, store: Store, max_pending_rows: int = 500_000, max_batch_rows: int = 100_000,
                 linger_seconds: float = 0.005, native_traces: bool | None = None,
                 writers: int = DEFAULT_WRITERS, min_busy_batch_rows: int = 4000,
                 busy_linger_seconds: float = 0.05) -> None:
        if writers < 1:
            raise ValueError(f"writers must be at least 1, not {writers}")
        self.store = store
        self.max_pending_rows = max_pending_rows
        self.max_batch_rows = max_batch_rows
        self.linger = linger_seconds
        self.min_busy_batch = min_busy_batch_rows
        self.busy_linger = busy_linger_seconds
        self.stats = IngestStats()
        self._queue: deque[_Item] = deque()
        self._pending = 0  # rows queued or being committed
        self._queued = 0  # rows queued
        self._committing = 0  # writers inside a commit
        self._cond = threading.Condition()
        self._closing = False
        self._dir: str | None = None
        self.native = bool(getattr(store, "embedded", False)) if native_traces is None else native_traces
        if self.native:
            scratch = _scratch_dir()
            _remove_orphans(scratch)
            self._dir = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=scratch)
        self._stores = [store.connect_again() for _ in range(writers)]
        self._threads = [threading.Thread(target=self._run, args=(own, n), name=f"modelwatch-ingest-{n}", daemon=True)
                         for n, own in enumerate(self._stores)]
        for thread in self._threads:
            thread.start()

    def submit(self, tables: Tables) -> Future:
        """Queue one request's rows; the future resolves (to None) once they are committed, or to the store's error."""
        rows = sum(len(r) for _cols, r in tables.values())
        return self._submit(_Item(tables, rows))

    def submit_native(self, body: bytes, spans: int, nested: bool = True) -> Future:
        """Queue one serialized ``ExportTraceServiceRequest`` of `spans` spans, already checked, for the native path;
        `nested`: some span has events or links."""
        return self._submit(_Item({}, spans, body, nested))

    def _submit(self, item: _Item) -> Future:
        rows = item.rows
        if rows == 0:
            item.future.set_result(None)
            return item.future
        with self._cond:
            if self._closing:
                raise Busy("shutting down")
            if self._pending and self._pending + rows > self.max_pending_rows:
                self.stats.refused_busy += 1
                raise Busy(f"{self._pending} rows pending")
            self._queue.append(item)
            self._pending += rows
            self._queued += rows
            self.stats.requests += 1
            self._cond.notify_all()
        return item.future

    def withdraw(self, future: Future) -> bool:
        """Take back the request of `future` if no writer has taken it yet.

        True: it is out of the queue, its future cancelled, and it will never
        be committed. False: a writer has it (or is done with it), and its
        future will tell the commit's outcome.
        """
        with self._cond:
            for position, item in enumerate(self._queue):
                if item.future is future:  # identity: a retried request may equal another one
                    break
            else:
                return False
            if not future.cancel():  # a queued future is pending; cancel() fails only once running or done
                return False
            del self._queue[position]
            self._pending -= item.rows
            self._queued -= item.rows
            self.stats.withdrawn += 1
            self._cond.notify_all()
            return True

    @property
    def pending_rows(self) -> int:
        return self._pending

    def close(self, timeout: float = 30.0) -> None:
        """Stop accepting, commit everything pending, stop the writers."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        if any(thread.is_alive() for thread in self._threads):
            log.error("modelwatch: ingest writers still committing after %.0f s", timeout)
            return
        for own in self._stores:
            own.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    def _take(self) -> list[_Item]:
        """The next batch to commit; [] once closing with nothing left."""
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return []
                # While another writer commits, wait (a little) for a batch worth its fixed costs: a commit
                # pays ~100 ms of statement analysis and part writing whatever its size, and the requests of
                # the other writer's batch come back as soon as it is done.
                deadline = time.monotonic() + self.busy_linger
                while (self._committing and not self._closing and self._queued < self.min_busy_batch
                       and (left := deadline - time.monotonic()) > 0):
                    self._cond.wait(left)
            if self.linger and not self._closing:
                time.sleep(self.linger)  # let concurrent requests join this batch
            batch: list[_Item] = []
            rows = 0
            with self._cond:
                while self._queue and (not batch or rows + self._queue[0].rows <= self.max_batch_rows):
                    item = self._queue.popleft()
                    self._queued -= item.rows
                    if not item.future.set_running_or_notify_cancel():  # cancelled outside withdraw(): drop it
                        self._pending -= item.rows
                        continue
                    batch.append(item)  # from now on withdraw() refuses: the receiver waits for the outcome
                    rows += item.rows
                if batch:  # else another writer took them meanwhile: wait again
                    self._committing += 1
                    return batch

    def _run(self, store: Store, n: int) -> None:
        writer = _Writer(self, store, os.path.join(self._dir, f"batch-{n}.pb") if self._dir else "")
        while True:
            batch = self._take()
            if not batch:
                return
            # native trace requests and row-converted requests are committed separately, each request
            # acknowledged once its own rows are committed
            t0 = time.perf_counter()
            try:
                outcomes = writer.commit_native([i for i in batch if i.body is not None])
                outcomes += writer.commit_rows([i for i in batch if i.body is None])
            except Exception as exc:  # noqa: BLE001 - a bug here must not stop the writer: the batch fails, clients retry
                log.exception("modelwatch: committing a batch of %d requests failed", len(batch))
                outcomes = [(item, exc) for item in batch]
            elapsed = time.perf_counter() - t0
            with self._cond:
                self._pending -= sum(item.rows for item in batch)
                self._committing -= 1
                self._cond.notify_all()  # a writer waiting for a bigger batch goes now
                self.stats.commit_seconds += elapsed
                self.stats.rows += sum(item.rows for item, err in outcomes if err is None)
            for item, err in outcomes:
                if err is None:
                    item.future.set_result(None)
                else:  # nothing of this request is acknowledged: the client retries
                    item.future.set_exception(err)

    def _count(self, **increments: int) -> None:
        with self._cond:
            for name, value in increments.items():
                setattr(self.stats, name, getattr(self.stats, name) + value)


class _Writer:
    """One writer's commits, through its own connection and its own batch file."""

    def __init__(self, ingest: Ingest, store: Store, path: str) -> None:
        self.ingest = ingest
        self.store = store
        self.path = path

    def commit_rows(self, group: list[_Item]) -> list[tuple[_Item, Exception | None]]:
        if not group:
            return []
        error = self._insert(group)
        if error is not None and len(group) > 1:
            # one request's rows may be what the store refused: isolate it, commit the others
            return [(item, self._insert([item])) for item in group]
        return [(item, error) for item in group]

    def _insert(self, batch: list[_Item]) -> Exception | None:
        merged: dict[str, tuple[Sequence[str], list[tuple[Any, ...]]]] = {}
        for item in batch:
            for table, (columns, rows) in item.tables.items():
                if rows:
                    merged.setdefault(table, (columns, []))[1].extend(rows)
        try:
            for table, (columns, rows) in merged.items():
                self.store.insert(table, rows, columns)
        except Exception as exc:
            self.ingest._count(failed_batches=1)
            log.error("modelwatch: inserting a batch of %d requests failed: %s", len(batch), exc)
            return exc
        self.ingest._count(batches=1)
        return None

    def commit_native(self, group: list[_Item]) -> list[tuple[_Item, Exception | None]]:
        """One INSERT … SELECT of the group's trace requests; those it cannot take go the Python path."""
        if not group:
            return []
        assert self.path
        path = self.path  # this writer's batch file
        rows = sum(item.rows for item in group)
        try:
            native.write_batch(path, [item.body for item in group])  # type: ignore[misc]
            self.store.command(native.insert_sql(self.store.table("otel_traces"), path, rows,
                                                 events_and_links=any(item.nested for item in group)))
        except Exception as exc:
            if native.COMPLEX_MARKER in str(exc):
                # some request holds an array or kvlist value (Go JSON, rendered in Python): those take the
                # Python path, the others are retried natively; the failed statement wrote nothing
                try:
                    positions = {int(r[0]) for r in self.store.query(native.complex_sql(path))}
                except Exception as exc2:  # noqa: BLE001 - the group's outcome
                    return [(item, exc2) for item in group]
                odd = [item for n, item in enumerate(group) if n in positions] or group
                return self.commit_native([i for i in group if i not in odd]) + self._commit_converted(odd)
            if len(group) == 1:
                # a request upb accepted but the native statement refuses: the Python path decides
                log.warning("modelwatch: native insert refused a request (%s); converting it in Python", exc)
                return self._commit_converted(group)
            self.ingest._count(failed_batches=1)
            log.error("modelwatch: inserting a batch of %d trace requests failed: %s", len(group), exc)
            return [outcome for item in group for outcome in self.commit_native([item])]
        self.ingest._count(batches=1, native_rows=rows)
        return [(item, None) for item in group]

    def _commit_converted(self, group: list[_Item]) -> list[tuple[_Item, Exception | None]]:
        """Trace requests of the native queue converted to rows in Python, then committed as such."""
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        ok, refused = [], []
        for item in group:
            try:
                request = trace_service_pb2.ExportTraceServiceRequest.FromString(item.body)
                item.tables = trace_tables(request)
                ok.append(item)
            except Exception as exc:  # noqa: BLE001 - the receiver checked it; this is that request's outcome
                refused.append((item, exc))
        self.ingest._count(python_fallbacks=len(group))
        return self.commit_rows(ok) + refused


_PREFIX = "modelwatch-ingest-"


def _remove_orphans(scratch: str | None) -> None:
    """Remove the batch directories of ingest processes that are gone (a ``kill -9`` leaves its directory, and
    /dev/shm is memory): their name holds their pid."""
    base = scratch or tempfile.gettempdir()
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        pid = name[len(_PREFIX):].split("-", 1)[0]
        if not (name.startswith(_PREFIX) and pid.isdigit()) or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
        except OSError:  # alive, or not ours to signal
            pass


def _scratch_dir() -> str | None:
    """Where batch files go: memory-backed /dev/shm when there is one (they live for one statement)."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
