"""The ``modelwatch`` command.

    modelwatch serve [--url URL] [--host H] [--grpc-port N] [--http-port N] [--token-file F] [--config F]
    modelwatch schema apply [--url URL] [--cluster NAME] [--retention-days N] [--traces-retention-days N]
    modelwatch schema print [--cluster NAME]
    modelwatch baseline create --model M --version V (--file F | --since T --until T)
    modelwatch baseline list [--model M]
    modelwatch analyze --model M [--version V] (--since T [--until T] | --last 24h) [--format json] [--fail-on-drift]
    modelwatch analyzer [--config F] [--once]
    modelwatch demo [--url URL] [--out report.html] [--quick]
    modelwatch report [--model M] [--out report.html] [--since T [--until T] | --last 7d]
    modelwatch status [--model M] [--cost] [--format json] [--fail-on-alerts]

Exit codes: 0 success, 1 the store refused or could not be reached (or a
baseline is missing), 2 bad usage or configuration, 3 drift found (with
``--fail-on-drift``). The store is chosen by ``--url``, else ``MODELWATCH_CLICKHOUSE_URL``,
else the embedded default (``chdb://~/.local/share/modelwatch/store``).
The read-only commands (``status``, ``report``, ``baseline list``,
``analyze``) never create a store: a chDB directory that holds none is an
error. Every failure is one line on stderr, starting ``modelwatch:``; text
from the store is printed with control characters escaped
(:mod:`modelwatch_analyzer.textsafe`). Without the server side's extras installed, every command
but ``schema print`` says which packages are missing and exits 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from modelwatch_analyzer.cli.parser import REPORT_OUT, parser

__all__ = ["REPORT_OUT", "main", "parser"]

_ANALYZER = ("numpy", "scipy", "pandas", "clickhouse_connect")
_EXTRAS = {"schema": ("clickhouse_connect",), "serve": (*_ANALYZER, "uvicorn", "grpc", "google.rpc"),
           "demo": (*_ANALYZER, "uvicorn", "grpc", "google.rpc")}
_EXTRA_MODULES = {"numpy", "scipy", "pandas", "clickhouse_connect", "chdb", "uvicorn", "grpc", "google", "pyarrow"}


def _serve_owns_store(argv: Sequence[str], args: argparse.Namespace) -> int | None:
    """When a running `modelwatch serve` holds the embedded store, run the command there (:mod:`.forward`).

    None when it does not apply (a server URL, no serve running, another command): run locally."""
    from modelwatch_analyzer.cli import forward
    from modelwatch_analyzer.store import lockfile
    from modelwatch_analyzer.store.client import chdb_directory, resolve_url

    if not argv or argv[0] not in forward.COMMANDS:
        return None
    url = resolve_url(getattr(args, "url", None))
    if not url.startswith("chdb://"):
        return None
    directory = str(chdb_directory(url))
    if not lockfile.serve_alive(directory):
        return None
    try:
        return forward.forward(argv, directory, url)
    except RuntimeError as err:
        return _fail(err, 1)


def _fail(error: object, code: int) -> int:
    """Print `error` as the one line ``modelwatch: ...`` (control characters escaped); return `code`."""
    from modelwatch_analyzer.textsafe import escape

    print(f"modelwatch: {escape(error)}", file=sys.stderr)
    return code


def _needs(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def _missing_extras(args: argparse.Namespace) -> list[str]:
    """The server side's packages that `args`' command needs and this environment lacks."""
    if args.command == "schema" and args.action == "print":
        return []
    from modelwatch_analyzer.store.client import resolve_url

    wanted = list(_EXTRAS.get(args.command, _ANALYZER))
    url = getattr(args, "url", None)
    if ((url or "chdb:") if args.command == "demo" else resolve_url(url)).startswith("chdb:"):  # demo default: chDB
        wanted.append("chdb")
    return [m for m in wanted if _needs(m)]


def _extras_message(missing: Sequence[str]) -> str:
    return (f"the server side needs its extras: pip install 'modelwatch[analyzer]' "
            f"(missing: {', '.join(missing)})")


def main(argv: Sequence[str] | None = None, forwarded: bool = False) -> int:
    """The ``modelwatch`` command; `forwarded` when the serve process runs it for another CLI (no re-forwarding)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    for name in ("clickhouse_connect", "urllib3"):  # driver warnings would add lines to our one-line errors
        if not logging.getLogger(name).handlers:
            logging.getLogger(name).addHandler(logging.NullHandler())
    if not forwarded:
        code = _serve_owns_store(argv, args)
        if code is not None:
            return code
    missing = _missing_extras(args)
    if missing:
        return _fail(_extras_message(missing), 1)
    try:
        return _run(args)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in _EXTRA_MODULES:
            raise
        return _fail(_extras_message([exc.name or "?"]), 1)


def _serve_token(args: argparse.Namespace) -> tuple[str | None, int | None]:
    """The token given to serve (--token or --token-file), or the exit code of a bad one."""
    if args.token_file is None:
        if args.token is not None:
            print("modelwatch serve: WARNING: --token on the command line is visible to every user of this machine "
                  "(ps); use --token-file FILE or MODELWATCH_TOKEN", file=sys.stderr, flush=True)
        return args.token, None
    if args.token is not None:
        return None, _fail("give --token or --token-file, not both", 2)
    try:
        token = Path(args.token_file).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        return None, _fail(f"cannot read the token file {args.token_file}: {getattr(exc, 'strerror', None) or exc}", 2)
    if not token:
        return None, _fail(f"the token file {args.token_file} is empty", 2)
    return token, None


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command; every error the product raises becomes one line and its exit code
    (one mapping, here)."""
    from modelwatch_analyzer.errors import (
        BaselineError,
        ConfigError,
        NoStore,
        StoreError,
    )

    try:
        return _dispatch(args)
    except ConfigError as exc:
        return _fail(exc, 2)
    except (BaselineError, NoStore) as exc:
        return _fail(exc, 1)
    except (StoreError, OSError) as exc:
        hint = ("; an embedded store is open in one process at a time: is `modelwatch serve` (or another "
                "command) using it?") if args.command != "serve" and ("chdb" in str(exc).lower()
                                                                     or "lock" in str(exc).lower()) else ""
        return _fail(f"{exc}{hint}", 1)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "serve":
        return _serve(args)
    if args.command in ("baseline", "analyze", "analyzer"):
        from modelwatch_analyzer.cli import analysis_commands

        return analysis_commands.main(args)
    if args.command == "demo":
        from modelwatch_analyzer.demo.run import DemoOptions
        from modelwatch_analyzer.demo.run import run as run_demo

        opts = DemoOptions(url=args.url, database=args.database, out=args.out, days=args.days,
                           per_day=args.per_day, drift_day=args.drift_day, seed=args.seed, ui=args.ui,
                           ui_port=args.ui_port)
        if args.quick:
            opts.days, opts.per_day, opts.drift_day, opts.sampling_rate = 5, 600, 3, 0.3
        return run_demo(opts)
    if args.command == "report":
        from modelwatch_analyzer.report.html import main as report_main

        return report_main(args)
    if args.command == "status":
        from modelwatch_analyzer.report.status import main as status_main

        return status_main(args)
    return _schema(args)


def _serve(args: argparse.Namespace) -> int:
    from modelwatch_analyzer.cli import forward
    from modelwatch_analyzer.service.serve import ServeOptions, run

    args.token, bad = _serve_token(args)
    if bad is not None:
        return bad
    return run(ServeOptions(url=args.url, host=args.host, grpc_port=args.grpc_port, http_port=args.http_port,
                            token=args.token, config=args.config, analyzer=not args.no_analyzer,
                            tls_cert=args.tls_cert, tls_key=args.tls_key, commands=forward.runner(main),
                            ui_port=None if args.no_ui else args.ui_port, trace_url=args.trace_url))


def _schema(args: argparse.Namespace) -> int:
    from modelwatch_analyzer.store import schema
    from modelwatch_analyzer.store.client import Store

    if args.action == "print":
        for sql in schema.statements(args.database, cluster=args.cluster):
            print(sql.rstrip() + ";\n")
        return 0
    retention = schema.Retention()
    for flag, days in (("--retention-days", args.retention_days), ("--traces-retention-days", args.traces_retention_days)):
        if days is not None and days < 0:
            return _fail(f"{flag} must be >= 0 (0 keeps data forever)", 2)
    if args.retention_days is not None:
        retention = replace(retention, predictions_days=args.retention_days, logs_days=args.retention_days)
    if args.traces_retention_days is not None:
        retention = replace(retention, traces_days=args.traces_retention_days)
    store = Store(args.url)
    applied = schema.apply(store, cluster=args.cluster, retention=retention)
    where = f"{store.location} (database {store.database})"
    if applied:
        for m in applied:
            print(f"applied migration {m.version}: {m.name}")
        print(f"schema at version {schema.version(store)} in {where}")
    else:
        print(f"schema up to date (version {schema.version(store)}) in {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
