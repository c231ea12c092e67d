"""The CLI while ``modelwatch serve`` owns the embedded store: commands are run by the serve process.

An embedded chDB directory can be opened by one process at a time. While
``modelwatch serve`` runs, it names itself in ``modelwatch-serve.json`` in the
store directory (:mod:`modelwatch_analyzer.store.lockfile`): its pid, its
HTTP address and a secret drawn for this run, in a file only its user can
read. A command (``modelwatch analyze``, ``baseline``, ``status``,
``report``) that finds that file, with the process alive, asks the server to
run the same command on its own open store (:func:`forward`): ``POST
/v1/modelwatch/cli`` with the arguments and the secret (header
``X-Modelwatch-Cli-Secret``); the server answers with the exit code and the
output, which the CLI prints as if it had run locally.

The client trusts the file only when it belongs to the user running the
command and nobody else can read or write it. It sends the store's URL,
makes relative paths absolute, and names the report's default ``--out``, so
every path is the caller's. The bearer token (``MODELWATCH_TOKEN``) is sent
too when set; serve requires it when it has one. The endpoint's HTTP checks
are in :mod:`modelwatch_analyzer.collector.cli_endpoint`; what it may run
(:func:`check`) and how (:func:`execute`, one command at a time) is here,
handed to serve by :func:`runner`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import ssl
import stat
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Sequence

from modelwatch_analyzer.cli.parser import REPORT_OUT, parser
from modelwatch_analyzer.collector import cli_endpoint
from modelwatch_analyzer.store import lockfile
from modelwatch_analyzer.store.client import DEFAULT_DATABASE, chdb_directory
from modelwatch_analyzer.textsafe import escape

COMMANDS = frozenset({"analyze", "baseline", "status", "report"})
_PATH_OPTIONS = ("--file", "--out", "--config")
_run_lock = threading.Lock()
Main = Callable[..., int]  # modelwatch_analyzer.cli.command.main


def _pinned(cert: str | None) -> ssl.SSLContext | None:
    """With TLS on: trust exactly the certificate serve was started with (named in the lock file, which only
    this user can write), whatever host name it was issued for; the endpoint is on loopback."""
    if not cert:
        return None
    context = ssl.create_default_context(cafile=cert)
    context.check_hostname = False
    return context


def _absolute(argv: Sequence[str]) -> list[str]:
    out = list(argv)
    for i, arg in enumerate(out):
        if arg in _PATH_OPTIONS and i + 1 < len(out):
            out[i + 1] = str(Path(out[i + 1]).expanduser().absolute())
        for opt in _PATH_OPTIONS:
            if arg.startswith(opt + "="):
                out[i] = f"{opt}={Path(arg.split('=', 1)[1]).expanduser().absolute()}"
    return out


def forward(argv: Sequence[str], directory: str, url: str, timeout: float = 600.0) -> int | None:
    """Run `argv` in the serve process that holds `directory`; its exit code, or None when none is running."""
    try:
        info = lockfile.read_lock(Path(directory) / lockfile.LOCK_NAME)
    except (OSError, ValueError):
        return None
    args = _absolute(argv)
    if "--url" not in args and not any(a.startswith("--url=") for a in args):
        at = 2 if args[0] == "baseline" else 1  # after the command (and the baseline action)
        args = args[:at] + ["--url", url] + args[at:]
    if args[0] == "report" and not any(a == "--out" or a.startswith("--out=") for a in args):
        args += ["--out", str(Path(REPORT_OUT).absolute())]  # the default is relative to the caller's directory
    request = urllib.request.Request(info["http"].rstrip("/") + cli_endpoint.PATH, data=json.dumps({"argv": args}).encode(),
                                     headers={"Content-Type": "application/json",
                                              cli_endpoint.SECRET_HEADER: str(info.get("secret", ""))}, method="POST")
    token = os.environ.get("MODELWATCH_TOKEN")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=_pinned(info.get("tls_cert"))) as resp:
            answer = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"modelwatch serve (pid {info.get('pid')}) refused the command: "
                           f"{exc.code} {escape(exc.read()[:200].decode(errors='replace'))}") from None
    except (urllib.error.URLError, OSError) as exc:
        if "refused" in str(exc).lower():  # a stale file: that server is gone
            return None
        raise RuntimeError(f"modelwatch serve (pid {info.get('pid')}, {info.get('http')}) did not answer: {exc}") from None
    print(answer.get("stdout", ""), end="")
    print(answer.get("stderr", ""), end="", file=sys.stderr)
    return int(answer.get("code", 1))


def _refuse(message: str) -> dict[str, Any]:
    return {"code": 2, "stdout": "", "stderr": f"modelwatch serve: {message}\n"}


def check(argv: Sequence[str], directory: Path, database: str) -> dict[str, Any] | None:
    """None when `argv` may run in this serve process; else the answer refusing it (exit code 2)."""
    if not argv or argv[0] not in COMMANDS:
        return _refuse(f"runs only {', '.join(sorted(COMMANDS))}")
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            args = parser().parse_args(list(argv))
    except SystemExit:
        return None  # a usage error (or --help): the run itself reports it, having done nothing
    url = getattr(args, "url", None)
    if not url:
        return _refuse("a forwarded command must name the store with --url")
    if not url.startswith("chdb://") or chdb_directory(url).resolve() != directory:
        return _refuse(f"runs commands only on its own store (chdb://{directory}), not {url}")
    asked = getattr(args, "database", None) or DEFAULT_DATABASE
    if asked != database:
        return _refuse(f"runs commands only on its own database ({database}), not {asked}")
    for option in ("file", "config"):
        value = getattr(args, option, None)
        if value is None:
            continue
        if not os.path.isabs(value):
            return _refuse(f"--{option} must be an absolute path, not {value!r}")
        if not os.path.isfile(value):
            return _refuse(f"--{option} {value!r} is not an existing regular file")
    out = getattr(args, "out", None)
    if args.command == "report" and out is not None:
        if not os.path.isabs(out):
            return _refuse(f"--out must be an absolute path, not {out!r}")
        if not Path(out).parent.is_dir():
            return _refuse(f"--out {out!r}: its directory does not exist")
        try:
            mode = os.lstat(out).st_mode
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            return _refuse(f"--out {out!r}: {exc.strerror}")
        if mode is not None and not stat.S_ISREG(mode):
            return _refuse(f"--out {out!r} exists and is not a regular file (a symlink, directory or device): "
                           "not overwritten")
    return None


def execute(argv: Sequence[str], main: Main) -> dict[str, Any]:
    """Run one forwarded command in this process (the serve process); output captured."""
    if not argv or argv[0] not in COMMANDS:
        return {"code": 2, "stdout": "", "stderr": f"modelwatch serve runs only {', '.join(sorted(COMMANDS))}\n"}
    out, err = io.StringIO(), io.StringIO()
    with _run_lock, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv), forwarded=True)
        except SystemExit as exc:  # argparse errors
            code = exc.code if isinstance(exc.code, int) else 2
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}



def runner(main: Main) -> cli_endpoint.Commands:
    """What serve's CLI endpoint runs for a caller: `argv` refused (:func:`check`) or run by `main` (the
    ``modelwatch`` command, :func:`execute`) on serve's own store."""
    def run(argv: Sequence[str], directory: Path, database: str) -> dict[str, Any]:
        return check(argv, directory, database) or execute(argv, main)

    return run
