"""The ``modelwatch`` command.

    modelwatch serve [--url URL] [--host H] [--grpc-port N] [--http-port N] [--token T]
    modelwatch schema apply [--url URL] [--cluster NAME] [--retention-days N]
    modelwatch schema print [--cluster NAME]

Exit codes: 0 success, 1 the store refused or could not be reached,
2 bad usage. The store is chosen by ``--url``, else ``MODELWATCH_CLICKHOUSE_URL``,
else the embedded default (``chdb://~/.local/share/modelwatch/store``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

EXAMPLES = """examples:
  modelwatch serve                                         # OTLP on 127.0.0.1:4317 (gRPC) and :4318 (HTTP)
  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 python my_service.py
  modelwatch schema apply                                  # embedded store, default location
  modelwatch schema apply --url http://default:pw@localhost:8123/modelwatch
  modelwatch schema print --cluster prod > schema.sql      # review the cluster DDL
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelwatch", description="Monitoring for ML models in production.",
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="receive OTLP (gRPC and HTTP) into the store, until SIGTERM / Ctrl-C")
    serve_cmd.add_argument("--url", help="store URL (default: MODELWATCH_CLICKHOUSE_URL, else the embedded store)")
    serve_cmd.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")
    serve_cmd.add_argument("--grpc-port", type=int, default=4317)
    serve_cmd.add_argument("--http-port", type=int, default=4318)
    serve_cmd.add_argument("--token", help="bearer token required on every request (default: MODELWATCH_TOKEN)")
    schema_cmd = commands.add_parser("schema", help="create or show the store's tables (versioned migrations)")
    actions = schema_cmd.add_subparsers(dest="action", required=True)
    apply_cmd = actions.add_parser("apply", help="apply the migrations the store has not recorded yet (idempotent)")
    apply_cmd.add_argument("--url", help="store URL (default: MODELWATCH_CLICKHOUSE_URL, else the embedded store)")
    apply_cmd.add_argument("--cluster", help="ClickHouse cluster name: ON CLUSTER, Replicated engines, Distributed tables")
    apply_cmd.add_argument("--retention-days", type=int, help="keep traces and predictions this many days (default 30 / 180)")
    print_cmd = actions.add_parser("print", help="print every statement, without a store")
    print_cmd.add_argument("--database", default="modelwatch")
    print_cmd.add_argument("--cluster")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        from . import schema
        from .errors import StoreError
        from .store import Store
    except ImportError as exc:
        print(f"modelwatch: the server side needs its extras: pip install 'modelwatch[analyzer]' ({exc})", file=sys.stderr)
        return 1
    if args.command == "serve":
        from .serve import ServeOptions, run

        try:
            return run(ServeOptions(url=args.url, host=args.host, grpc_port=args.grpc_port,
                                    http_port=args.http_port, token=args.token))
        except (StoreError, OSError) as exc:
            print(f"modelwatch: {exc}", file=sys.stderr)
            return 1
    if args.command == "schema" and args.action == "print":
        for sql in schema.statements(args.database, cluster=args.cluster):
            print(sql.rstrip() + ";\n")
        return 0
    retention = schema.Retention()
    if args.retention_days is not None:
        if args.retention_days < 0:
            print("modelwatch: --retention-days must be >= 0 (0 keeps data forever)", file=sys.stderr)
            return 2
        retention = schema.Retention(traces_days=args.retention_days, predictions_days=args.retention_days)
    try:
        store = Store(args.url)
        applied = schema.apply(store, cluster=args.cluster, retention=retention)
    except StoreError as exc:
        print(f"modelwatch: {exc}", file=sys.stderr)
        return 1
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
