"""Never raise into, never flood: the SDK's own failure handling.

Every problem the SDK meets while recording (a value it cannot serialise, a
user hook that raises, an internal bug, an exporter that fails) goes through
:func:`report`: it is counted under a *kind* and logged once per (kind, key),
so a hot inference loop with a recurring problem produces one log line, not a
million.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter

logger = logging.getLogger("modelwatch")

_lock = threading.Lock()
_counts: Counter[tuple[str, str]] = Counter()
_logged: set[tuple[str, str]] = set()
_MAX_LOGGED = 10_000  # bound the memory of "already logged" keys


def report(kind: str, model: str, message: str, *args: object, key: str = "", exc_info: bool = False, n: int = 1) -> None:
    """Count `n` occurrences of `kind` for `model`; log it the first time (kind, model, key) is seen."""
    first = False
    with _lock:
        _counts[(kind, model)] += n
        ident = (kind, f"{model}\x00{key}")
        if ident not in _logged and len(_logged) < _MAX_LOGGED:
            _logged.add(ident)
            first = True
    if first:
        logger.warning("modelwatch: " + message + " (further occurrences are counted, not logged)", *args, exc_info=exc_info)


def text(x: object) -> str:
    """``str(x)``, or a placeholder when that raises: for naming what could not be recorded."""
    try:
        return str(x)
    except Exception:  # a caller's object whose __str__ (or a container item's __repr__) raises
        return f"<unprintable {type(x).__name__}>"


def _new_lock_after_fork() -> None:
    global _lock
    _lock = threading.Lock()  # the parent may have held it at fork time


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_after_fork)


def counts() -> dict[tuple[str, str], int]:
    """A snapshot of the problem counts, keyed by (kind, model)."""
    with _lock:
        return dict(_counts)


def reset() -> None:
    """Forget counts and logged keys (tests)."""
    with _lock:
        _counts.clear()
        _logged.clear()


class RateLimitFilter(logging.Filter):
    """Lets through the first `burst` records of each message template, then one in `every`.

    Attached by :func:`modelwatch.configure` to the OTel SDK's batch processor
    logger, which otherwise logs a warning for every span dropped while the
    collector is unreachable.
    """

    def __init__(self, burst: int = 5, every: int = 10_000) -> None:
        super().__init__()
        self._burst = burst
        self._every = every
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            n = self._seen[str(record.msg)]
            self._seen[str(record.msg)] = n + 1
        if n < self._burst:
            return True
        if n % self._every == 0:
            record.msg = f"{record.msg} [repeated {n} times]"
            return True
        return False
