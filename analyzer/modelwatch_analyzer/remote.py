"""The CLI while ``modelwatch serve`` owns the embedded store: commands are run by the serve process.

An embedded chDB directory can be opened by one process at a time. While
``modelwatch serve`` runs, it leaves ``modelwatch-serve.json`` in the store
directory (its pid and HTTP address). A command (``modelwatch analyze``,
``baseline``, ``status``, ``report``) that finds that file, with the process
alive, asks the server to run the same command on its own open store:
``POST /v1/modelwatch/cli`` with the arguments; the server answers with the
exit code and the output, which the CLI prints as if it had run locally.

Only loopback clients may ask (and the bearer token is required when one is
set), only those commands run, relative paths are made absolute by the
client, and commands run one at a time.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Sequence

LOCK_NAME = "modelwatch-serve.json"
PATH = "/v1/modelwatch/cli"
COMMANDS = frozenset({"analyze", "baseline", "status", "report"})
_PATH_OPTIONS = ("--file", "--out", "--config")
_run_lock = threading.Lock()


def write_lock(directory: str, http_url: str) -> Path:
    path = Path(directory) / LOCK_NAME
    path.write_text(json.dumps({"pid": os.getpid(), "http": http_url}), encoding="utf-8")
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
        info = json.loads((Path(directory) / LOCK_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    args = _absolute(argv)
    if "--url" not in args and not any(a.startswith("--url=") for a in args):
        at = 2 if args[0] == "baseline" else 1  # after the command (and the baseline action)
        args = args[:at] + ["--url", url] + args[at:]
    request = urllib.request.Request(info["http"].rstrip("/") + PATH, data=json.dumps({"argv": args}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    token = os.environ.get("MODELWATCH_TOKEN")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            answer = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"modelwatch serve (pid {info.get('pid')}) refused the command: "
                           f"{exc.code} {exc.read()[:200].decode(errors='replace')}") from None
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
    from . import cli

    out, err = io.StringIO(), io.StringIO()
    with _run_lock, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(argv), forwarded=True)
        except SystemExit as exc:  # argparse errors
            code = exc.code if isinstance(exc.code, int) else 2
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}
