"""The CLI while ``modelwatch serve`` owns the embedded store: commands are run by the serve process.

An embedded chDB directory can be opened by one process at a time. While
``modelwatch serve`` runs, it leaves ``modelwatch-serve.json`` in the store
directory: its pid, its HTTP address and a secret drawn for this run, in a
file only its user can read (mode 0600, created that way, never readable by
others even for a moment: :func:`write_lock`). A command (``modelwatch
analyze``, ``baseline``, ``status``, ``report``) that finds that file, with
the process alive, asks the server to run the same command on its own open
store: ``POST /v1/modelwatch/cli`` with the arguments and the secret (header
``X-Modelwatch-Cli-Secret``); the server answers with the exit code and the
output, which the CLI prints as if it had run locally.

The client trusts the file only when it belongs to the user running the
command and nobody else can read or write it. It sends the store's URL,
makes relative paths absolute, and names the report's default ``--out``, so
every path is the caller's. The bearer token (``MODELWATCH_TOKEN``) is sent
too when set; serve requires it when it has one. What the server checks
before running anything is in :mod:`.cli_endpoint`; commands run one at a
time.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import ssl
import stat
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Sequence

LOCK_NAME = "modelwatch-serve.json"
PATH = "/v1/modelwatch/cli"
SECRET_HEADER = "x-modelwatch-cli-secret"
COMMANDS = frozenset({"analyze", "baseline", "status", "report"})
_PATH_OPTIONS = ("--file", "--out", "--config")
_run_lock = threading.Lock()


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


def _pinned(cert: str | None) -> ssl.SSLContext | None:
    """With TLS on: trust exactly the certificate serve was started with (named in the lock file, which only
    this user can write), whatever host name it was issued for; the endpoint is on loopback."""
    if not cert:
        return None
    context = ssl.create_default_context(cafile=cert)
    context.check_hostname = False
    return context


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


def _absolute(argv: Sequence[str]) -> list[str]:
    out = list(argv)
    for i, arg in enumerate(out):
        if arg in _PATH_OPTIONS and i + 1 < len(out):
            out[i + 1] = str(Path(out[i + 1]).expanduser().absolute())
        for opt in _PATH_OPTIONS:
            if arg.startswith(opt + "="):
                out[i] = f"{opt}={Path(arg.split('=', 1)[1]).expanduser().absolute()}"
    return out


def _read_lock(path: Path) -> dict[str, Any]:
    """The lock file's content, when this user owns it and nobody else may read or change it."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, encoding="utf-8") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise RuntimeError(f"{path} is not a private file of this user (owner uid {st.st_uid}, mode "
                               f"{stat.S_IMODE(st.st_mode):o}): not sending commands to the process it names")
        return json.loads(f.read())


def forward(argv: Sequence[str], directory: str, url: str, timeout: float = 600.0) -> int | None:
    """Run `argv` in the serve process that holds `directory`; its exit code, or None when none is running."""
    try:
        info = _read_lock(Path(directory) / LOCK_NAME)
    except (OSError, ValueError):
        return None
    args = _absolute(argv)
    if "--url" not in args and not any(a.startswith("--url=") for a in args):
        at = 2 if args[0] == "baseline" else 1  # after the command (and the baseline action)
        args = args[:at] + ["--url", url] + args[at:]
    if args[0] == "report" and not any(a == "--out" or a.startswith("--out=") for a in args):
        from modelwatch_analyzer.cli.command import REPORT_OUT

        args += ["--out", str(Path(REPORT_OUT).absolute())]  # the default is relative to the caller's directory
    request = urllib.request.Request(info["http"].rstrip("/") + PATH, data=json.dumps({"argv": args}).encode(),
                                     headers={"Content-Type": "application/json",
                                              SECRET_HEADER: str(info.get("secret", ""))}, method="POST")
    token = os.environ.get("MODELWATCH_TOKEN")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=_pinned(info.get("tls_cert"))) as resp:
            answer = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        from modelwatch_analyzer.textsafe import escape

        raise RuntimeError(f"modelwatch serve (pid {info.get('pid')}) refused the command: "
                           f"{exc.code} {escape(exc.read()[:200].decode(errors='replace'))}") from None
    except (urllib.error.URLError, OSError) as exc:
        if "refused" in str(exc).lower():  # a stale file: that server is gone
            return None
        raise RuntimeError(f"modelwatch serve (pid {info.get('pid')}, {info.get('http')}) did not answer: {exc}") from None
    print(answer.get("stdout", ""), end="")
    print(answer.get("stderr", ""), end="", file=sys.stderr)
    return int(answer.get("code", 1))


def execute(argv: Sequence[str]) -> dict[str, Any]:
    """Run one forwarded command in this process (the serve process); output captured."""
    if not argv or argv[0] not in COMMANDS:
        return {"code": 2, "stdout": "", "stderr": f"modelwatch serve runs only {', '.join(sorted(COMMANDS))}\n"}
    from modelwatch_analyzer.cli import command as cli

    out, err = io.StringIO(), io.StringIO()
    with _run_lock, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(argv), forwarded=True)
        except SystemExit as exc:  # argparse errors
            code = exc.code if isinstance(exc.code, int) else 2
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}
