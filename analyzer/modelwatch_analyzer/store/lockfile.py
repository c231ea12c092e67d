"""``modelwatch-serve.json``: which ``modelwatch serve`` process owns an embedded store directory.

An embedded chDB directory can be opened by one process at a time. While
``modelwatch serve`` runs, it leaves this file in the store directory: its
pid, its HTTP address, a secret drawn for this run and, with TLS on, the
certificate it serves. The file is created readable by its user only (mode
0600, never readable by others even for a moment: :func:`write_lock`), and a
reader trusts it only when that user owns it and nobody else may read or
change it (:func:`read_lock`). The CLI uses it to run its commands in that
process (:mod:`modelwatch_analyzer.cli.forward`).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

LOCK_NAME = "modelwatch-serve.json"


def write_lock(directory: str, http_url: str, secret: str, tls_cert: str | None = None) -> Path:
    """Write ``modelwatch-serve.json`` (pid, address, secret) into `directory`, readable by this user only.

    The content goes to a new file made by :func:`tempfile.mkstemp` (``O_CREAT | O_EXCL``, mode 0600, in
    the same directory), which then replaces any stale file atomically: the secret is never in a file that
    another user can open, and a reader never sees a half-written one."""
    path = Path(directory) / LOCK_NAME
    fd, tmp = tempfile.mkstemp(prefix=f".{LOCK_NAME}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"pid": os.getpid(), "http": http_url, "secret": secret,
                       "tls_cert": str(Path(tls_cert).absolute()) if tls_cert else None}, f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def remove_lock(directory: str) -> None:
    try:
        (Path(directory) / LOCK_NAME).unlink()
    except OSError:
        pass


def serve_alive(directory: str) -> bool:
    """Whether a live serve process left its file in `directory`."""
    try:
        info = json.loads((Path(directory) / LOCK_NAME).read_text(encoding="utf-8"))
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if pid == os.getpid():  # this very process owns the store: run locally
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lock(path: Path) -> dict[str, Any]:
    """The lock file's content, when this user owns it and nobody else may read or change it."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, encoding="utf-8") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise RuntimeError(f"{path} is not a private file of this user (owner uid {st.st_uid}, mode "
                               f"{stat.S_IMODE(st.st_mode):o}): not sending commands to the process it names")
        return json.loads(f.read())
