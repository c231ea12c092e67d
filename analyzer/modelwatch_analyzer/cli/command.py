"""The ``modelwatch`` command.

    modelwatch serve [--url URL] [--host H] [--grpc-port N] [--http-port N] [--token-file F] [--config F]
    modelwatch schema apply [--url URL] [--cluster NAME] [--retention-days N]
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
(:mod:`.textsafe`). Without the server side's extras installed, every command
but ``schema print`` says which packages are missing and exits 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Sequence

REPORT_OUT = "modelwatch-report.html"
_ANALYZER = ("numpy", "scipy", "pandas", "clickhouse_connect")
_EXTRAS = {"schema": ("clickhouse_connect",), "serve": (*_ANALYZER, "uvicorn", "grpc", "google.rpc"),
           "demo": (*_ANALYZER, "uvicorn", "grpc", "google.rpc")}
_EXTRA_MODULES = {"numpy", "scipy", "pandas", "clickhouse_connect", "chdb", "uvicorn", "grpc", "google", "pyarrow"}

EXAMPLES = """examples:
  modelwatch serve                                         # OTLP on 127.0.0.1:4317 (gRPC) and :4318 (HTTP)
  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 python my_service.py
  modelwatch serve --host 0.0.0.0 --tls-cert cert.pem --tls-key key.pem   # https:// and secure gRPC only
  modelwatch schema apply                                  # embedded store, default location
  modelwatch schema apply --url http://default:pw@localhost:8123/modelwatch
  modelwatch schema print --cluster prod > schema.sql      # review the cluster DDL
  modelwatch baseline create --model credit --version 3 --file train.parquet --score proba --prediction label
  modelwatch baseline create --model credit --version 3 --since 2026-11-01 --until 2026-11-08
  modelwatch analyze --model credit --last 24h             # readable summary
  modelwatch analyze --model credit --last 24h --format json --fail-on-drift   # in CI: exit 3 on drift
  modelwatch analyzer --config modelwatch.toml             # the scheduled service (production)
  modelwatch demo                                          # the whole product on generated data, in under a minute
  modelwatch report --last 7d --out report.html            # one self-contained HTML file, readable offline
  modelwatch status --cost                                 # what the store holds, open alerts, monitoring cost
"""


def _store_url(command: argparse.ArgumentParser) -> None:
    command.add_argument("--url", help="store URL (default: MODELWATCH_CLICKHOUSE_URL, else the embedded store)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelwatch", description="Monitoring for ML models in production.",
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="receive OTLP (gRPC and HTTP) into the store, until SIGTERM / Ctrl-C")
    _store_url(serve_cmd)
    serve_cmd.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")
    serve_cmd.add_argument("--grpc-port", type=int, default=4317)
    serve_cmd.add_argument("--http-port", type=int, default=4318)
    serve_cmd.add_argument("--token", help="bearer token required on every request (default: MODELWATCH_TOKEN); "
                           "visible to other users in `ps`: prefer --token-file or MODELWATCH_TOKEN")
    serve_cmd.add_argument("--token-file", metavar="FILE", help="read the bearer token from FILE (surrounding whitespace "
                           "stripped)")
    schema_cmd = commands.add_parser("schema", help="create or show the store's tables (versioned migrations)")
    actions = schema_cmd.add_subparsers(dest="action", required=True)
    apply_cmd = actions.add_parser("apply", help="apply the migrations the store has not recorded yet (idempotent)")
    _store_url(apply_cmd)
    apply_cmd.add_argument("--cluster", help="ClickHouse cluster name: ON CLUSTER, Replicated engines, Distributed tables")
    apply_cmd.add_argument("--retention-days", type=int, help="keep traces, logs and predictions this many days (default 30 / 30 / 180)")
    print_cmd = actions.add_parser("print", help="print every statement, without a store")
    print_cmd.add_argument("--database", default="modelwatch")
    print_cmd.add_argument("--cluster")
    serve_cmd.add_argument("--config", help="the analyzer's TOML config (scheduled runs inside serve)")
    serve_cmd.add_argument("--no-analyzer", action="store_true", help="only receive; do not run scheduled analyses")
    serve_cmd.add_argument("--tls-cert", metavar="FILE",
                           help="PEM certificate (chain): OTLP over TLS on both ports (https, secure gRPC); needs --tls-key")
    serve_cmd.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")

    base_cmd = commands.add_parser("baseline", help="build or list the reference statistics a model is compared with")
    base_actions = base_cmd.add_subparsers(dest="action", required=True)
    create = base_actions.add_parser("create", help="build a baseline from a training file or a window of stored predictions",
                                     epilog="examples:\n  modelwatch baseline create --model credit --version 3 --file train.parquet"
                                     "\n  modelwatch baseline create --model credit --version 3 --since 7d --until 1d",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _store_url(create)
    create.add_argument("--model", required=True)
    create.add_argument("--version", required=True, help="the model version this baseline is for")
    create.add_argument("--file", help="training data: .parquet or .csv (one column per feature)")
    create.add_argument("--since", help="reference window start: ISO time, or an age like 7d / 12h")
    create.add_argument("--until", help="reference window end (default: now)")
    create.add_argument("--window-version", help="with --since: only stored predictions of this version")
    create.add_argument("--categorical", default="", help="comma-separated numeric-looking features that are categories")
    create.add_argument("--prediction", help="with --file: the column holding the model's output")
    create.add_argument("--score", help="with --file: the column holding the model's score / probability")
    create.add_argument("--weight", help="with --file: a column of row weights")
    create.add_argument("--exclude", default="", help="with --file: comma-separated columns to ignore (ids, labels)")
    listing = base_actions.add_parser("list", help="the stored baselines, newest first")
    _store_url(listing)
    listing.add_argument("--model")

    an = commands.add_parser("analyze", help="analyse one window now: drift, data quality, performance",
                             epilog="examples:\n  modelwatch analyze --model credit --last 24h"
                             "\n  modelwatch analyze --model credit --since 2026-11-20T00:00 --until 2026-11-21T00:00 --format json",
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    _store_url(an)
    an.add_argument("--model", required=True)
    an.add_argument("--version", help="one model version (default: all, against the newest baseline)")
    an.add_argument("--baseline", help="a baseline id (default: the newest for the model version)")
    an.add_argument("--since", help="window start: ISO time, or an age like 24h / 7d")
    an.add_argument("--until", help="window end (default: now)")
    an.add_argument("--last", help="the last N hours or days, e.g. 24h, 7d (instead of --since)")
    an.add_argument("--config", help="TOML config: thresholds, methods, categorical features of this model")
    an.add_argument("--format", choices=("text", "json"), default="text")
    an.add_argument("--fail-on-drift", action="store_true", help="exit 3 when any feature drifted")
    an.add_argument("--no-save", action="store_true", help="do not store the results")
    an.add_argument("--alert", action="store_true", help="also fire and deliver the config's alerts")
    an.add_argument("--numeric-sample-rows", type=int, metavar="N",
                    help="read numeric features from a uniform sample of ~N rows when the window has more "
                         "(default: the config's numeric_sample_rows, else every row)")

    svc = commands.add_parser("analyzer", help="the scheduled analyzer service, for a ClickHouse server (production)")
    _store_url(svc)
    svc.add_argument("--config", help="TOML config: models, windows, methods, thresholds, alert routes")
    svc.add_argument("--once", action="store_true", help="run one round and exit")
    svc.add_argument("--poll-seconds", type=float, default=30.0)
    _add_demo_report_status(commands)
    return parser


def _add_demo_report_status(commands: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    demo = commands.add_parser("demo", help="the whole product on generated data: SDK → OTLP → store → analysis → "
                               "alerts → report, in under a minute", formatter_class=fmt,
                               epilog="examples:\n  modelwatch demo\n  modelwatch demo --url chdb:///tmp/mw --out demo.html"
                               "\n  modelwatch demo --quick")
    demo.add_argument("--url", help="store URL (default: a fresh temporary directory, printed)")
    demo.add_argument("--database", help="database inside the store (default: modelwatch)")
    demo.add_argument("--out", default="modelwatch-demo-report.html", help="where to write the HTML report")
    demo.add_argument("--days", type=int, default=7, help="simulated days (default 7)")
    demo.add_argument("--per-day", type=int, default=2000, help="predictions per simulated day (default 2000)")
    demo.add_argument("--drift-day", type=int, default=4, help="the day the drift event starts (default 4)")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--quick", action="store_true", help="a smaller run (5 days × 600 predictions), for tests")
    rep = commands.add_parser("report", help="write one self-contained HTML report (plots inline, works offline)",
                              formatter_class=fmt,
                              epilog="examples:\n  modelwatch report --out report.html"
                              "\n  modelwatch report --model credit --last 7d"
                              "\n  modelwatch report --since 2026-11-01 --until 2026-11-08 "
                              "--trace-url 'http://localhost:16686/trace/{trace_id}'")
    _store_url(rep)
    rep.add_argument("--database", help="database inside the store (default: modelwatch)")
    rep.add_argument("--model", help="one model (default: every model in the store)")
    rep.add_argument("--out", default=REPORT_OUT)
    rep.add_argument("--since", help="range start: ISO time, or an age like 7d (default: everything)")
    rep.add_argument("--until", help="range end (default: now)")
    rep.add_argument("--last", help="the last N hours or days, e.g. 24h, 7d (instead of --since)")
    rep.add_argument("--trace-url", help="link trace ids to a trace viewer: a URL with {trace_id}")
    st = commands.add_parser("status", help="what the store holds, the last analyses, open alerts, monitoring cost",
                             formatter_class=fmt,
                             epilog="examples:\n  modelwatch status\n  modelwatch status --cost"
                             "\n  modelwatch status --format json --fail-on-alerts   # exit 3 when alerts wait for delivery"
                             "\n\nexit codes: 0 read, 1 store unreachable or refused, 2 bad usage, "
                             "3 undelivered alerts (with --fail-on-alerts)")
    _store_url(st)
    st.add_argument("--database", help="database inside the store (default: modelwatch)")
    st.add_argument("--model", help="one model (default: all)")
    st.add_argument("--cost", action="store_true", help="add the monitoring cost report (seen vs stored, bytes)")
    st.add_argument("--format", choices=("text", "json"), default="text")
    st.add_argument("--fail-on-alerts", action="store_true", help="exit 3 when alerts are undelivered or failing")


def _serve_owns_store(argv: Sequence[str], args: argparse.Namespace) -> int | None:
    """When a running `modelwatch serve` holds the embedded store, run the command there (see remote.py).

    None when it does not apply (a server URL, no serve running, another command): run locally."""
    from modelwatch_analyzer.service import remote
    from modelwatch_analyzer.store.client import chdb_directory, resolve_url

    if not argv or argv[0] not in remote.COMMANDS:
        return None
    url = resolve_url(getattr(args, "url", None))
    if not url.startswith("chdb://"):
        return None
    directory = str(chdb_directory(url))
    if not remote.serve_alive(directory):
        return None
    try:
        return remote.forward(argv, directory, url)
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
    args = _parser().parse_args(argv)
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
    from modelwatch_analyzer.store import schema
    from modelwatch_analyzer.errors import BaselineError, ConfigError, StoreError
    from modelwatch_analyzer.store.client import Store

    if args.command == "serve":
        from modelwatch_analyzer.service.serve import ServeOptions, run

        args.token, bad = _serve_token(args)
        if bad is not None:
            return bad
        try:
            return run(ServeOptions(url=args.url, host=args.host, grpc_port=args.grpc_port,
                                    http_port=args.http_port, token=args.token, config=args.config,
                                    analyzer=not args.no_analyzer, tls_cert=args.tls_cert, tls_key=args.tls_key))
        except ConfigError as exc:
            print(f"modelwatch: {exc}", file=sys.stderr)
            return 2
        except (StoreError, OSError) as exc:
            print(f"modelwatch: {exc}", file=sys.stderr)
            return 1
    if args.command in ("baseline", "analyze", "analyzer"):
        from modelwatch_analyzer.cli import analysis_commands as analyzer_commands

        try:
            return analyzer_commands.main(args)
        except ConfigError as exc:
            return _fail(exc, 2)
        except (BaselineError, StoreError) as exc:
            return _fail(exc, 1)
    if args.command in ("demo", "report", "status"):
        return _demo_report_status(args)
    if args.command == "schema" and args.action == "print":
        for sql in schema.statements(args.database, cluster=args.cluster):
            print(sql.rstrip() + ";\n")
        return 0
    retention = schema.Retention()
    if args.retention_days is not None:
        if args.retention_days < 0:
            return _fail("--retention-days must be >= 0 (0 keeps data forever)", 2)
        retention = schema.Retention(traces_days=args.retention_days, predictions_days=args.retention_days,
                                     logs_days=args.retention_days)
    try:
        store = Store(args.url)
        applied = schema.apply(store, cluster=args.cluster, retention=retention)
    except StoreError as exc:
        return _fail(exc, 1)
    where = f"{store.location} (database {store.database})"
    if applied:
        for m in applied:
            print(f"applied migration {m.version}: {m.name}")
        print(f"schema at version {schema.version(store)} in {where}")
    else:
        print(f"schema up to date (version {schema.version(store)}) in {where}")
    return 0


def _demo_report_status(args: argparse.Namespace) -> int:
    from modelwatch_analyzer.errors import ConfigError, NoStore, StoreError

    try:
        if args.command == "demo":
            from modelwatch_analyzer.demo.run import DemoOptions, run as run_demo

            opts = DemoOptions(url=args.url, database=args.database, out=args.out, days=args.days,
                               per_day=args.per_day, drift_day=args.drift_day, seed=args.seed)
            if args.quick:
                opts.days, opts.per_day, opts.drift_day, opts.sampling_rate = 5, 600, 3, 0.3
            return run_demo(opts)
        if args.command == "report":
            from modelwatch_analyzer.report.html import main as report_main

            return report_main(args)
        from modelwatch_analyzer.report.status import main as status_main

        return status_main(args)
    except ConfigError as exc:
        return _fail(exc, 2)
    except NoStore as exc:
        return _fail(exc, 1)
    except (StoreError, OSError) as exc:
        hint = ("; an embedded store is open in one process at a time: is `modelwatch serve` (or another "
                "command) using it?") if "chdb" in str(exc).lower() or "lock" in str(exc).lower() else ""
        return _fail(f"{exc}{hint}", 1)


if __name__ == "__main__":
    sys.exit(main())
