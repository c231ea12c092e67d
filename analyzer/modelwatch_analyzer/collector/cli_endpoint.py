"""``POST /v1/modelwatch/cli``: the serve process runs a CLI command for the local user (client: :mod:`.remote`).

The endpoint runs commands and writes files, so it answers only the user who
started ``modelwatch serve``, whatever else can reach the port (another user
of the machine, a web page in that user's browser, a DNS name rebound to
127.0.0.1). A request must pass every check, in this order:

* the endpoint is enabled (:func:`enable`): only a serve process that owns an
  embedded store has it; elsewhere 404;
* the peer address is loopback, and the ``Host`` header names a loopback
  address (``127.0.0.1``, ``localhost``, ``[::1]``, any port): 403 otherwise,
  which defeats DNS rebinding (the browser sends the attacker's name);
* no ``Origin`` or ``Sec-Fetch-*`` header: browsers send them, the CLI does
  not (403);
* ``Content-Type: application/json`` (415): a browser cannot send it to
  another origin without a CORS preflight, which this endpoint never grants;
* the per-run secret in ``X-Modelwatch-Cli-Secret``, compared in constant
  time (403). serve draws it with :func:`secrets.token_urlsafe` at start and
  writes it into ``modelwatch-serve.json`` in the store directory, a file
  created with mode 0600 (see :func:`.remote.write_lock`), so only that user
  (and root) can read it;
* the bearer token too, when serve has one (401);
* a body of at most 1 MiB (413) holding ``{"argv": [str, ...]}`` (400).

Then the arguments are parsed with the CLI's own parser and checked
(:func:`check`); a refused command is answered like a local usage error:
exit code 2 and a one-line message. Only ``analyze``, ``baseline``,
``status`` and ``report`` run; ``--url`` must name this server's store (the
same directory; the client always sends it) and ``--database``, where the
command has it, this server's database, so a forwarded command never creates
a directory or a database. Paths must be absolute: ``--file`` and
``--config`` existing regular files; ``--out`` a path whose parent directory
exists and that is either absent or a regular file (not a symlink, directory,
device or FIFO), so the report cannot be written through a link. The caller
holds the secret, so is the serve user: these rules keep a forwarded command
inside the store and away from special files, they are not a sandbox (a
``--config`` given with ``--alert`` may name command routes, which run as that
user, as they would locally).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import io
import json
import os
import stat
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from modelwatch_analyzer.service import remote
from modelwatch_analyzer.collector.receiver import Receiver, Rejected
from modelwatch_analyzer.store.client import DEFAULT_DATABASE, chdb_directory

PATH = remote.PATH
SECRET_HEADER = remote.SECRET_HEADER
MAX_BODY = 1 << 20
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass(frozen=True)
class Owned:
    """What one serve process's endpoint accepts: its secret, its store directory and database."""

    secret: str
    directory: Path
    database: str


_enabled: "weakref.WeakKeyDictionary[Receiver, Owned]" = weakref.WeakKeyDictionary()


def enable(receiver: Receiver, secret: str, url: str, database: str) -> None:
    """Answer CLI requests on `receiver`'s HTTP server, for the embedded store at `url` / `database`."""
    _enabled[receiver] = Owned(secret, chdb_directory(url).resolve(), database)


def disable(receiver: Receiver) -> None:
    _enabled.pop(receiver, None)


def loopback_host(host: str) -> bool:
    """Whether a ``Host`` header value names a loopback address: 127.0.0.1, localhost or [::1], with any port."""
    host = host.strip().lower()
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name == "::1" and (rest == "" or (rest.startswith(":") and rest[1:].isdigit()))
    name, colon, port = host.partition(":")
    return name in ("127.0.0.1", "localhost") and (not colon or port.isdigit())


def _refuse(message: str) -> dict[str, Any]:
    return {"code": 2, "stdout": "", "stderr": f"modelwatch serve: {message}\n"}


def check(argv: Sequence[str], owned: Owned) -> dict[str, Any] | None:
    """None when `argv` may run in this serve process; else the answer refusing it (exit code 2)."""
    if not argv or argv[0] not in remote.COMMANDS:
        return _refuse(f"runs only {', '.join(sorted(remote.COMMANDS))}")
    from modelwatch_analyzer.cli import command as cli

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            args = cli._parser().parse_args(list(argv))
    except SystemExit:
        return None  # a usage error (or --help): the run itself reports it, having done nothing
    url = getattr(args, "url", None)
    if not url:
        return _refuse("a forwarded command must name the store with --url")
    if not url.startswith("chdb://") or chdb_directory(url).resolve() != owned.directory:
        return _refuse(f"runs commands only on its own store (chdb://{owned.directory}), not {url}")
    database = getattr(args, "database", None) or DEFAULT_DATABASE
    if database != owned.database:
        return _refuse(f"runs commands only on its own database ({owned.database}), not {database}")
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


def _parse_argv(body: bytes) -> list[str]:
    argv = json.loads(body)["argv"]
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise ValueError("argv must be a list of strings")
    return argv


async def handle(scope: dict[str, Any], receive: Any, send: Any, receiver: Receiver, headers: dict[str, str]) -> None:
    """Answer one ``POST /v1/modelwatch/cli`` (the checks of the module docstring, then the command)."""
    async def answer(status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    owned = _enabled.get(receiver)
    if owned is None:
        await answer(404, {"error": "no CLI endpoint here (it exists while modelwatch serve owns an embedded store)"})
        return
    client = (scope.get("client") or ("", 0))[0]
    if client not in LOOPBACK:
        await answer(403, {"error": "the CLI endpoint answers loopback clients only"})
        return
    if not loopback_host(headers.get("host", "")):
        await answer(403, {"error": "the CLI endpoint answers requests for 127.0.0.1, localhost or [::1] only"})
        return
    if "origin" in headers or any(k.startswith("sec-fetch-") for k in headers):
        await answer(403, {"error": "the CLI endpoint does not answer browsers"})
        return
    if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        await answer(415, {"error": "the CLI endpoint takes application/json only"})
        return
    given = headers.get(SECRET_HEADER, "").encode("latin-1")
    if not hmac.compare_digest(given, owned.secret.encode("ascii")):
        await answer(403, {"error": f"missing or wrong {SECRET_HEADER} (the secret in {remote.LOCK_NAME}, "
                                    "readable by the user running modelwatch serve)"})
        return
    try:
        receiver.authorise(headers.get("authorization"))
    except Rejected as exc:
        await answer(401, {"error": exc.message})
        return
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > MAX_BODY:
            await answer(413, {"error": "too large"})
            return
        more = message.get("more_body", False)
    try:
        argv = _parse_argv(b"".join(chunks))
    except (ValueError, KeyError, TypeError) as exc:
        await answer(400, {"error": f"bad request: {exc}"})
        return
    refused = check(argv, owned)
    if refused is not None:
        await answer(200, refused)
        return
    result = await asyncio.get_running_loop().run_in_executor(None, remote.execute, argv)
    await answer(200, result)

