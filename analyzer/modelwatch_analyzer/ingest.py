"""Batched, acknowledged-means-durable ingestion into the store.

Receivers convert a request to rows (rejecting it whole if it is malformed)
and :meth:`Ingest.submit` them; one writer thread inserts everything pending
in a batch (group commit) and only then resolves each request's future, so a
receiver answers "OK" after its rows are in a committed part on disk: an
acknowledged request survives ``kill -9`` and a restart. When more rows are
pending than the bound allows, :meth:`submit` refuses with :class:`Busy`
instead of growing memory: receivers answer with the OTLP retryable status
(gRPC UNAVAILABLE, HTTP 503 with Retry-After) and the exporters retry.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Sequence

from .store import Store

log = logging.getLogger("modelwatch.ingest")

Tables = dict[str, tuple[Sequence[str], list[tuple[Any, ...]]]]


class Busy(Exception):
    """Too much is pending: the client should retry later."""


@dataclass
class _Item:
    tables: Tables
    rows: int
    future: Future = field(default_factory=Future)


@dataclass
class IngestStats:
    requests: int = 0
    rows: int = 0
    batches: int = 0
    refused_busy: int = 0
    failed_batches: int = 0


class Ingest:
    """Group commit of OTLP rows into the store, with a bound on pending rows."""

    def __init__(self, store: Store, max_pending_rows: int = 500_000, max_batch_rows: int = 100_000,
                 linger_seconds: float = 0.05) -> None:
        self.store = store
        self.max_pending_rows = max_pending_rows
        self.max_batch_rows = max_batch_rows
        self.linger = linger_seconds
        self.stats = IngestStats()
        self._queue: deque[_Item] = deque()
        self._pending = 0
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="modelwatch-ingest", daemon=True)
        self._thread.start()

    def submit(self, tables: Tables) -> Future:
        """Queue one request's rows; the future resolves (to None) once they are committed, or to the store's error."""
        rows = sum(len(r) for _cols, r in tables.values())
        item = _Item(tables, rows)
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
            self.stats.requests += 1
            self._cond.notify()
        return item.future

    @property
    def pending_rows(self) -> int:
        return self._pending

    def close(self, timeout: float = 30.0) -> None:
        """Stop accepting, commit everything pending, stop the writer."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)

    def _take(self) -> list[_Item]:
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            if not self._queue:
                return []
        if self.linger and not self._closing:
            time.sleep(self.linger)  # let concurrent requests join this batch
        batch: list[_Item] = []
        rows = 0
        with self._cond:
            while self._queue and (not batch or rows + self._queue[0].rows <= self.max_batch_rows):
                item = self._queue.popleft()
                batch.append(item)
                rows += item.rows
        return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                return
            error = self._insert(batch)
            if error is not None and len(batch) > 1:
                # one request's rows may be what the store refused: isolate it, commit the others
                outcomes = [(item, self._insert([item])) for item in batch]
            else:
                outcomes = [(item, error) for item in batch]
            with self._cond:
                self._pending -= sum(item.rows for item in batch)
            for item, err in outcomes:
                if err is None:
                    self.stats.rows += item.rows
                    item.future.set_result(None)
                else:  # nothing of this request is acknowledged: the client retries
                    item.future.set_exception(err)

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
            self.stats.failed_batches += 1
            log.error("modelwatch: inserting a batch of %d requests failed: %s", len(batch), exc)
            return exc
        self.stats.batches += 1
        return None
