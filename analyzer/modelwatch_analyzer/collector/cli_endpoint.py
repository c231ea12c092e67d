"""``POST /v1/modelwatch/cli``: the serve process runs a CLI command for the local user (client and commands:
:mod:`modelwatch_analyzer.cli.forward`).

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
  created with mode 0600 (see :func:`modelwatch_analyzer.store.lockfile.write_lock`), so only that user
  (and root) can read it;
* the bearer token too, when serve has one (401);
* a body of at most 1 MiB (413) holding ``{"argv": [str, ...]}`` (400).

Then the arguments are parsed with the CLI's own parser and checked
(:func:`modelwatch_analyzer.cli.forward.check`); a refused command is answered like a local usage error:
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
import hmac
import json
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from modelwatch_analyzer.collector.receiver import Receiver, Rejected
from modelwatch_analyzer.store.client import chdb_directory
from modelwatch_analyzer.store.lockfile import LOCK_NAME

PATH = "/v1/modelwatch/cli"
SECRET_HEADER = "x-modelwatch-cli-secret"
Commands = Callable[[Sequence[str], Path, str], dict[str, Any]]
"""Runs ``argv`` for the local user on the store (`directory`, `database`) the endpoint serves; answers
``{"code": int, "stdout": str, "stderr": str}``. The CLI gives serve its own
(:func:`modelwatch_analyzer.cli.forward.runner`)."""
MAX_BODY = 1 << 20
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass(frozen=True)
class Owned:
    """What one serve process's endpoint accepts (its secret), for which store, and what runs the command."""

    secret: str
    directory: Path
    database: str
    commands: Commands


_enabled: weakref.WeakKeyDictionary[Receiver, Owned] = weakref.WeakKeyDictionary()


def enable(receiver: Receiver, secret: str, url: str, database: str, commands: Commands) -> None:
    """Answer CLI requests on `receiver`'s HTTP server with `commands`, for the embedded store at `url` /
    `database`."""
    _enabled[receiver] = Owned(secret, chdb_directory(url).resolve(), database, commands)


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
        await answer(403, {"error": f"missing or wrong {SECRET_HEADER} (the secret in {LOCK_NAME}, "
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
    result = await asyncio.get_running_loop().run_in_executor(None, owned.commands, argv, owned.directory,
                                                              owned.database)
    await answer(200, result)

