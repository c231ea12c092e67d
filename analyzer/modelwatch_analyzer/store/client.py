"""The one place that talks to ClickHouse.

One setting selects the store, by precedence: the ``url`` argument, then
``MODELWATCH_CLICKHOUSE_URL``, then the embedded default:

* ``chdb:///path/to/dir`` — the ClickHouse engine in process (chDB); the
  default is ``chdb://~/.local/share/modelwatch/store`` (``$XDG_DATA_HOME``
  honoured). A chDB directory can be open in one process at a time, which is
  why ``modelwatch serve`` owns it and hosts the analyzer's runs.
* ``http(s)://user:password@host:8123/database`` — a ClickHouse server.

Both go through clickhouse-connect, so every statement runs unchanged on
either. Values are always bound as typed server-side parameters
(``{model:String}``), never formatted into SQL text. The identifiers that must
be in the text (database, table, cluster names) pass through :func:`ident`,
which validates and quotes them.

Commands that only read (``status``, ``report``, ``baseline list``,
``analyze``) open the store with ``create=False``: an embedded directory
that is not a chDB store yet is the error :class:`~.errors.NoStore`, and
nothing is created on disk (no directory, no database). A server that cannot
be reached is one line naming the URL and the reason (``connection
refused``, ``unknown host``, ``timed out``).
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

from modelwatch_analyzer.errors import (
    NoStore,
    StoreError,
    StoreUnavailable,
    UnsafeIdentifier,
)

MODELWATCH_CLICKHOUSE_URL = "MODELWATCH_CLICKHOUSE_URL"
"""Where the store is: ``chdb:///dir`` (embedded) or ``http(s)://user:pass@host:8123/db`` (server)."""

DEFAULT_DATABASE = "modelwatch"

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def ident(name: str) -> str:
    """`name` validated and back-quoted for SQL text; raises :class:`UnsafeIdentifier` otherwise.

    Only plain names (letters, digits, underscore, not starting with a digit,
    at most 128 characters) are accepted: modelwatch creates its own tables
    and never needs more, and a hostile name is rejected rather than escaped.
    """
    if not isinstance(name, str) or not _IDENT.match(name):
        raise UnsafeIdentifier(f"not a safe SQL identifier: {name!r} (letters, digits and _ only)")
    return f"`{name}`"


def default_url() -> str:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return f"chdb://{Path(base) / 'modelwatch' / 'store'}"


def resolve_url(url: str | None = None) -> str:
    """The store URL: argument, then ``MODELWATCH_CLICKHOUSE_URL``, then the embedded default."""
    return url or os.environ.get(MODELWATCH_CLICKHOUSE_URL) or default_url()


def chdb_directory(url: str) -> Path:
    """The directory of an embedded ``chdb://`` store URL."""
    parts = urlsplit(url)
    return Path(parts.path if not parts.netloc else parts.netloc + parts.path).expanduser()


def redact(url: str) -> str:
    """`url` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class Store:
    """A connection to the store: embedded chDB or a ClickHouse server, through one client.

    ``database`` is where modelwatch's tables live (from the URL path for a
    server, ``modelwatch`` by default). All methods raise :class:`StoreError`
    (or :class:`StoreUnavailable`) with the URL, password redacted. With
    ``create=False`` an embedded store must already exist (else
    :class:`NoStore`) and the database is not created.
    """

    def __init__(self, url: str | None = None, database: str | None = None, create: bool = True) -> None:
        self.url = resolve_url(url)
        parts = urlsplit(self.url)
        self.embedded = parts.scheme == "chdb"
        if not self.embedded and parts.scheme not in ("http", "https"):
            raise StoreError(f"unsupported store URL {redact(self.url)!r}: use chdb:///dir or http(s)://host:8123/db")
        path_db = parts.path.strip("/") if not self.embedded else ""
        self.database = database or path_db or DEFAULT_DATABASE
        ident(self.database)
        self._lock = threading.RLock()  # chDB sessions are not safe for concurrent use
        try:
            import clickhouse_connect
        except ImportError as exc:  # the SDK-only install
            raise StoreError("the server side needs its extras: pip install 'modelwatch[analyzer]'") from exc
        if self.embedded and not create and not (chdb_directory(self.url) / "metadata").is_dir():
            raise NoStore(f"no store at {chdb_directory(self.url)} (an embedded store is made by `modelwatch serve`, "
                          "`modelwatch schema apply` or `modelwatch demo`)")
        try:
            if self.embedded:
                directory = chdb_directory(self.url)
                directory.mkdir(parents=True, exist_ok=True)
                self.location = str(directory)
                self._client = clickhouse_connect.get_client(dsn=f"chdb://{directory}")
            else:
                self.location = redact(self.url)
                self._client = clickhouse_connect.get_client(dsn=urlunsplit(
                    (parts.scheme, parts.netloc, "/" + self.database, parts.query, parts.fragment)))
        except Exception as exc:
            reason = _unreachable(str(exc))
            if reason and not self.embedded:
                raise StoreUnavailable(f"cannot reach ClickHouse at {redact(self.url)}: {reason}") from None
            raise StoreUnavailable(f"cannot open the store at {redact(self.url)}: {exc}") from exc
        self._create = create
        if create:
            self.command(f"CREATE DATABASE IF NOT EXISTS {ident(self.database)}")

    # -- the chokepoint ------------------------------------------------------------

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        """Run a statement that returns no rows (DDL, INSERT ... SELECT)."""
        with self._lock:
            try:
                return self._client.command(sql, parameters=parameters or None)
            except Exception as exc:
                raise _wrap(exc, self.url, sql) from exc

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a SELECT, as tuples; values bound as typed server-side parameters."""
        with self._lock:
            try:
                return list(self._client.query(sql, parameters=parameters or None).result_rows)
            except Exception as exc:
                raise _wrap(exc, self.url, sql) from exc

    def columns(self, sql: str, parameters: dict[str, Any] | None = None) -> list[Sequence[Any]]:
        """The columns of a SELECT's result (one sequence per selected expression): for reading many rows."""
        with self._lock:
            try:
                return list(self._client.query(sql, parameters=parameters or None).result_columns)
            except Exception as exc:
                raise _wrap(exc, self.url, sql) from exc

    def insert(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> None:
        """Insert rows (native protocol, no SQL text built from values)."""
        if not rows:
            return
        for c in columns:
            for part in c.split(".", 1):  # Nested columns are addressed as Parent.Child
                ident(part)
        with self._lock:
            try:
                self._client.insert(f"{self.database}.{table}", list(rows), column_names=list(columns))
            except Exception as exc:
                raise _wrap(exc, self.url, f"INSERT INTO {table}") from exc

    def table(self, name: str) -> str:
        """The quoted, database-qualified name of one of modelwatch's tables."""
        return f"{ident(self.database)}.{ident(name)}"

    def tables(self) -> set[str]:
        return {r[0] for r in self.query("SELECT name FROM system.tables WHERE database = {db:String}", {"db": self.database})}

    def connect_again(self) -> Store:
        """Another connection to the same store, with its own handle and lock.

        Statements of different connections run concurrently: chDB executes
        the queries of several handles of one process in parallel (one engine,
        one directory), and a server gets another HTTP client. ``modelwatch
        serve`` gives each ingest writer its own, so commits use every core and
        a long analysis on the main connection does not hold them up.
        """
        return Store(self.url, self.database, create=self._create)

    def close(self) -> None:
        with self._lock:
            try:
                self._client.close()
            except Exception:
                pass


_UNREACHABLE = (("Connection refused", "connection refused"), ("Name or service not known", "unknown host"),
                ("nodename nor servname", "unknown host"), ("Temporary failure in name resolution", "unknown host"),
                ("No route to host", "no route to host"), ("timed out", "timed out"),
                ("Failed to establish", "cannot connect"), ("Connection reset", "connection reset"))


def _unreachable(text: str) -> str | None:
    """The reason, in a few words, when `text` (a driver's exception chain) says the server was not reached."""
    return next((reason for marker, reason in _UNREACHABLE if marker in text), None)


def _wrap(exc: Exception, url: str, sql: str) -> StoreError:
    text = str(exc)
    first = " ".join(sql.split())[:200]
    reason = _unreachable(text)
    if reason and not url.startswith("chdb:"):
        return StoreUnavailable(f"cannot reach ClickHouse at {redact(url)}: {reason}")
    if reason:
        return StoreUnavailable(f"store {redact(url)} unreachable: {text}")
    return StoreError(f"store {redact(url)} refused `{first}`: {text}")

