"""The ``modelwatch`` command line: its commands, options and examples (:func:`parser`)."""

from __future__ import annotations

import argparse

REPORT_OUT = "modelwatch-report.html"
EXAMPLES = """examples:
  modelwatch serve                                         # OTLP on 127.0.0.1:4317 (gRPC) and :4318 (HTTP)
  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 python my_service.py
  modelwatch serve --host 0.0.0.0 --tls-cert cert.pem --tls-key key.pem   # https:// and secure gRPC only
  modelwatch schema apply                                  # embedded store, default location
  modelwatch schema apply --url http://default:pw@localhost:8123/modelwatch
  modelwatch schema print --cluster prod > schema.sql      # review the cluster DDL
  modelwatch baseline create --model credit --version 3 --file train.parquet --score proba --prediction label
  modelwatch baseline create --model credit --version 3 --file valid.parquet --score proba --prediction pred --label y
  modelwatch baseline create --model credit --version 3 --since 2026-11-01 --until 2026-11-08
  modelwatch analyze --model credit --last 24h             # readable summary
  modelwatch analyze --model credit --last 24h --format json --fail-on-drift   # in CI: exit 3 on drift
  modelwatch analyzer --config modelwatch.toml             # the scheduled service (production)
  modelwatch demo                                          # the whole product on generated data, in under a minute
  modelwatch report --last 7d --out report.html            # one self-contained HTML file, readable offline
  modelwatch status --cost                                 # what the store holds, open alerts, monitoring cost
"""


def _port(text: str) -> int:
    """A TCP port to listen on: 0 (any free port) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0 to 65535; 0 picks a free one)")
    return port


def _store_url(command: argparse.ArgumentParser) -> None:
    command.add_argument("--url", help="store URL (default: MODELWATCH_CLICKHOUSE_URL, else the embedded store)")


def parser() -> argparse.ArgumentParser:
    """The ``modelwatch`` argument parser: every command and its options."""
    parser = argparse.ArgumentParser(prog="modelwatch", description="Monitoring for ML models in production.",
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_serve(commands)
    _add_schema(commands)
    _add_baseline(commands)
    _add_analyze(commands)
    _add_demo_report_status(commands)
    return parser


def _add_serve(commands: argparse._SubParsersAction) -> None:
    """``serve``: the OTLP receiver on an embedded or server store."""
    serve_cmd = commands.add_parser("serve", help="receive OTLP (gRPC and HTTP) into the store, until SIGTERM / Ctrl-C")
    _store_url(serve_cmd)
    serve_cmd.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")
    serve_cmd.add_argument("--grpc-port", type=_port, default=4317)
    serve_cmd.add_argument("--http-port", type=_port, default=4318)
    serve_cmd.add_argument("--ui-port", type=_port, default=4320, help="the read-only web UI's port (default 4320)")
    serve_cmd.add_argument("--no-ui", action="store_true", help="serve no web UI")
    serve_cmd.add_argument("--trace-url", help="the UI's link to a trace, with {trace_id}: e.g. "
                           "http://localhost:16686/trace/{trace_id} (Jaeger)")
    serve_cmd.add_argument("--token", help="bearer token required on every request (default: MODELWATCH_TOKEN); "
                           "visible to other users in `ps`: prefer --token-file or MODELWATCH_TOKEN")
    serve_cmd.add_argument("--token-file", metavar="FILE", help="read the bearer token from FILE (surrounding whitespace "
                           "stripped)")
    serve_cmd.add_argument("--config", help="the analyzer's TOML config (scheduled runs inside serve)")
    serve_cmd.add_argument("--no-analyzer", action="store_true", help="only receive; do not run scheduled analyses")
    serve_cmd.add_argument("--tls-cert", metavar="FILE",
                           help="PEM certificate (chain): OTLP over TLS on both ports (https, secure gRPC); needs --tls-key")
    serve_cmd.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")


def _add_schema(commands: argparse._SubParsersAction) -> None:
    """``schema apply`` / ``schema print``."""
    schema_cmd = commands.add_parser("schema", help="create or show the store's tables (versioned migrations)")
    actions = schema_cmd.add_subparsers(dest="action", required=True)
    apply_cmd = actions.add_parser("apply", help="apply the migrations the store has not recorded yet (idempotent)")
    _store_url(apply_cmd)
    apply_cmd.add_argument("--cluster", help="ClickHouse cluster name: ON CLUSTER, Replicated engines, Distributed tables")
    apply_cmd.add_argument("--retention-days", type=int,
                           help="keep typed predictions and logs this many days (default 180 / 30; 0: forever)")
    apply_cmd.add_argument("--traces-retention-days", type=int,
                           help="keep raw spans (otel_traces: trace viewing, drill-down) this many days (default 7; 0: forever)")
    print_cmd = actions.add_parser("print", help="print every statement, without a store")
    print_cmd.add_argument("--database", default="modelwatch")
    print_cmd.add_argument("--cluster")


def _add_baseline(commands: argparse._SubParsersAction) -> None:
    """``baseline create`` / ``baseline list``."""
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
    create.add_argument("--label", help="with --file: the column of true labels; fits the label-free performance "
                        "estimator (with --since: stored predictions' labels are used when they have any)")
    create.add_argument("--probabilities", metavar="PREFIX",
                        help="with --file --label: the prefix of a multiclass model's per-class probability columns")
    create.add_argument("--task", choices=("auto", "classification", "regression"), default="auto",
                        help="the estimator's task (default: from the labels)")
    create.add_argument("--positive-label", help="a binary classifier's positive class (what its score is the probability of)")
    create.add_argument("--chunk-size", type=int, default=5000,
                        help="reference rows per chunk of the estimator's reference band (default: 5000)")
    create.add_argument("--segment", action="append", default=[], metavar="KEY",
                        help="build the reference of each segment of KEY (a categorical feature; with --since also an "
                        "OTel resource attribute such as service.instance.id) with the baseline; repeatable. With "
                        "--since, segments are also built at the first analysis that needs them")
    listing = base_actions.add_parser("list", help="the stored baselines, newest first")
    _store_url(listing)
    listing.add_argument("--model")


def _add_analyze(commands: argparse._SubParsersAction) -> None:
    """``analyze`` (one window now) and ``analyzer`` (the scheduled service)."""
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


def _add_demo_report_status(commands: argparse._SubParsersAction) -> None:
    """``demo``, ``report`` and ``status``."""
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
    demo.add_argument("--ui", action="store_true", help="afterwards, serve the web UI on the demo's store (until Ctrl-C)")
    demo.add_argument("--ui-port", type=_port, default=4320, help="with --ui: its port (default 4320)")
    _add_report(commands, fmt)
    _add_status(commands, fmt)


def _add_report(commands: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
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


def _add_status(commands: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
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
