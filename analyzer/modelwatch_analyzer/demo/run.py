"""``modelwatch demo``: the whole product in one command, on this machine, in under a minute.

What it does, in order (every step is the real thing: OTLP over HTTP, chDB,
the analyzer, the alerter, the report):

1. starts the embedded receiver in-process (:class:`~.serve.Server` on free
   ports) on a store directory: a fresh temporary one, or ``--url``;
2. trains a credit-risk classifier (logistic regression, numpy) on
   generated applicants — income (log-normal), age, debt ratio, years
   employed, credit lines, loan amount, region, home ownership, loan purpose;
3. decorates its scoring function with :func:`modelwatch.monitor` and
   streams applications over ``--days`` simulated days, exported by the SDK
   over OTLP to the receiver. Midway a **drift event** happens: a recession
   lowers incomes and raises debt, a new region (``central``) opens whose
   risk the model has never seen, the real default rate rises, and an
   upstream form change leaves ``employment_years`` empty for some
   applicants. Ground truth arrives **late**: labels for one day's loans
   come a day later (the last day has none yet);
4. builds the baseline from the first day, analyses every later day, fires
   and delivers alerts (to a webhook in this process) and a retrain trigger;
5. prints a summary, writes the HTML report, and says what to run next.

Simulated time. The SDK stamps a prediction's span with the wall clock of
the call, and has no argument to change it. The demo therefore installs one
span processor of its own, :class:`SimulatedClock`, between the SDK and the
OTLP batch exporter: it re-stamps each prediction span with the simulated
time of its request (same duration) before export, and passes every other
span (labels carry their own ``timestamp_ns``) through unchanged. Metrics
keep real time: they count the same predictions whatever their timestamps.

What it prints from the store (feature names, categories, alert messages,
trace ids; ``--url`` may name a store that already holds data) passes
through :func:`.textsafe.escape`.
"""

from __future__ import annotations

import http.server
import json
import math
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from modelwatch_analyzer.textsafe import escape as e

MODEL = "credit-risk"
VERSION = "2024.06"
REGIONS = ("north", "south", "east", "west")
NEW_REGION = "central"
HOMES = ("rent", "mortgage", "own")
PURPOSES = ("car", "home_improvement", "debt_consolidation", "education", "business")


@dataclass
class DemoOptions:
    url: str | None = None  # store; default a fresh temporary directory
    database: str | None = None
    days: int = 7
    per_day: int = 2000
    drift_day: int = 4  # 1-based: the first drifted day
    label_share: float = 0.7  # share of loans whose outcome is known a day later
    sampling_rate: float = 0.1
    seed: int = 7
    out: str = "modelwatch-demo-report.html"
    print: Callable[[str], None] = field(default=lambda s: print(s, flush=True))


# -- the world: applicants and their true risk ---------------------------------------------


def applicants(rng: np.random.Generator, n: int, drifted: bool) -> dict[str, np.ndarray]:
    """`n` generated loan applications; after the drift event, the recession's."""
    income = rng.lognormal(math.log(52_000), 0.45, n) * (0.72 if drifted else 1.0)
    regions_p = [0.3, 0.25, 0.25, 0.2]
    regions = list(REGIONS)
    if drifted:
        regions, regions_p = regions + [NEW_REGION], [0.24, 0.2, 0.2, 0.16, 0.2]
    years = np.round(np.clip(rng.exponential(6.0, n), 0, 45), 1).astype(object)
    if drifted:  # an upstream form change: the field is sometimes left empty
        years[rng.random(n) < 0.12] = None
    return {
        "income": np.round(income, 2),
        "age": np.clip(np.round(rng.normal(41, 12, n)), 18, 85).astype(int),
        "debt_ratio": np.round(np.clip(rng.beta(2.2, 5.0, n) + (0.09 if drifted else 0.0), 0, 1.5), 4),
        "employment_years": years,
        "credit_lines": rng.poisson(4.0, n),
        "loan_amount": np.round(rng.lognormal(math.log(14_000), 0.55, n), -1),
        "region": rng.choice(regions, n, p=regions_p),
        "home_ownership": rng.choice(HOMES, n, p=[0.4, 0.42, 0.18]),
        "loan_purpose": rng.choice(PURPOSES, n, p=[0.25, 0.15, 0.35, 0.1, 0.15]),
    }


def true_default_probability(a: dict[str, np.ndarray], drifted: bool) -> np.ndarray:
    """The world's risk (the model only ever sees samples of it)."""
    years = np.array([6.0 if v is None else v for v in a["employment_years"]], float)
    z = (-1.75 - 1.4 * np.log(a["income"] / 52_000) + 4.5 * (a["debt_ratio"] - 0.3) - 0.025 * (a["age"] - 41)
         - 0.07 * (years - 6) + 0.08 * (a["credit_lines"] - 4) + 0.9 * np.log(a["loan_amount"] / 14_000)
         + np.where(a["loan_purpose"] == "business", 0.6, 0.0) + np.where(a["loan_purpose"] == "education", 0.3, 0.0)
         + np.where(a["home_ownership"] == "own", -0.4, 0.0) + np.where(a["region"] == "south", 0.2, 0.0))
    if drifted:  # the recession hits harder than incomes alone say, and the new region is riskier
        z = z + 0.6 + np.where(a["region"] == NEW_REGION, 1.2, 0.0)
    return 1 / (1 + np.exp(-z))


# -- the model: logistic regression, fitted with Newton's method ------------------------------


class CreditModel:
    """Logistic regression on standardised numeric features and one-hot categories."""

    def __init__(self) -> None:
        self.mean = np.zeros(0)
        self.std = np.ones(0)
        self.coef = np.zeros(0)
        self.median_years = 6.0

    def _matrix(self, a: dict[str, Any]) -> np.ndarray:
        years = np.array([self.median_years if v is None else v for v in np.atleast_1d(a["employment_years"])], float)
        num = np.column_stack([np.log(np.atleast_1d(a["income"]).astype(float)), np.atleast_1d(a["age"]).astype(float),
                               np.atleast_1d(a["debt_ratio"]).astype(float), years,
                               np.atleast_1d(a["credit_lines"]).astype(float),
                               np.log(np.atleast_1d(a["loan_amount"]).astype(float))])
        if self.mean.size:
            num = (num - self.mean) / self.std
        onehot = [np.atleast_1d(a[k])[:, None] == np.array(v)[None, 1:]
                  for k, v in (("region", REGIONS), ("home_ownership", HOMES), ("loan_purpose", PURPOSES))]
        return np.column_stack([np.ones(len(num)), num] + [o.astype(float) for o in onehot])

    def fit(self, a: dict[str, np.ndarray], y: np.ndarray, l2: float = 1e-3) -> "CreditModel":
        raw = self._matrix(a)[:, 1:7]
        self.mean, self.std = raw.mean(axis=0), raw.std(axis=0) + 1e-12
        x = self._matrix(a)
        w = np.zeros(x.shape[1])
        for _ in range(25):
            p = 1 / (1 + np.exp(-x @ w))
            grad = x.T @ (p - y) + l2 * w
            hess = (x * (p * (1 - p))[:, None]).T @ x + l2 * np.eye(len(w))
            step = np.linalg.solve(hess, grad)
            w -= step
            if np.max(np.abs(step)) < 1e-8:
                break
        self.coef = w
        return self

    def predict_proba(self, a: dict[str, Any]) -> np.ndarray:
        return 1 / (1 + np.exp(-self._matrix(a) @ self.coef))


# -- simulated time between the SDK and the exporter ---------------------------------------------


class SimulatedClock:
    """A span processor that re-stamps prediction spans with the simulated time of their request.

    Set :attr:`now_ns` before each monitored call; the SDK hands a kept
    prediction's finished span to :meth:`on_end` synchronously, on the
    calling thread, and it goes on to `inner` (the OTLP batch processor) with
    its start moved to ``now_ns`` and its duration kept. Other spans pass
    through unchanged.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.now_ns = 0

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.inner.on_start(span, parent_context=parent_context)

    def on_end(self, span: Any) -> None:
        if span.name == "ml.predict" and self.now_ns:
            from opentelemetry.sdk.trace import ReadableSpan

            duration = (span.end_time or 0) - (span.start_time or 0)
            span = ReadableSpan(span.name, span.context, span.parent, span.resource, span.attributes, span.events,
                                span.links, span.kind, None, span.status, self.now_ns, self.now_ns + max(duration, 0),
                                span.instrumentation_scope)
        self.inner.on_end(span)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


class _Webhook:
    """A local HTTP endpoint standing in for Slack / PagerDuty / a CI job: records what it receives."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    outer.bodies.append((self.path, json.loads(body or b"{}")))
                except ValueError:
                    outer.bodies.append((self.path, {}))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, name="modelwatch-demo-webhook", daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- the run ------------------------------------------------------------------------------------


def _config(webhook: str) -> Any:
    from modelwatch_analyzer.service import config

    return config.Config.from_dict({
        "models": [{"name": MODEL, "version": VERSION}],
        "alerts": {
            "cooldown_seconds": 7 * 86400,  # the same alert at most once a week; a worsening fires
            "rules": [
                {"name": "drift", "type": "drift", "min_severity": "warning"},
                {"name": "accuracy-floor", "type": "performance", "metric": "accuracy", "min": 0.72,
                 "severity": "critical"},
                {"name": "missing-values", "type": "data_quality", "metric": "missing_rate"},
            ],
            "routes": [{"name": "demo-webhook", "url": f"{webhook}/alerts"}],
            "retrain": {"url": f"{webhook}/retrain", "min_severity": "critical"},
        },
        "emit": {"enabled": False},
    })


def _day_bounds(days: int, now: datetime) -> list[tuple[datetime, datetime]]:
    end = now.replace(minute=0, second=0, microsecond=0)
    first = end - timedelta(days=days)
    return [(first + timedelta(days=d), first + timedelta(days=d + 1)) for d in range(days)]


def _ns(t: datetime) -> int:
    return int(t.timestamp() * 1e9)


def run(options: DemoOptions) -> int:
    """Run the demo; returns the exit code (0 when everything happened as described)."""
    import modelwatch
    from modelwatch import pipeline as sdk_pipeline
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from modelwatch_analyzer.analysis import baseline
    from modelwatch_analyzer.report import html as report
    from modelwatch_analyzer.analysis import results as results_mod
    from modelwatch_analyzer.outputs.alerts import Alerter
    from modelwatch_analyzer.analysis.scan import Window
    from modelwatch_analyzer.service.serve import ServeOptions, Server
    from modelwatch_analyzer.service.scheduler import analyse_model

    say = options.print
    started = time.monotonic()
    if options.days < 3 or not 2 <= options.drift_day <= options.days or options.per_day < 100:
        say("modelwatch demo: needs --days >= 3, 2 <= --drift-day <= --days and --per-day >= 100")
        return 2
    if sdk_pipeline.current() is not None:
        say("modelwatch demo: the SDK is already configured in this process; run the demo in a process of its own")
        return 2
    url = options.url or f"chdb://{tempfile.mkdtemp(prefix='modelwatch-demo-')}"
    rng = np.random.default_rng(options.seed)

    say("modelwatch demo: a credit-risk model, monitored end to end on this machine (no Docker, no server)")
    srv = Server(ServeOptions(url=url, database=options.database, grpc_port=0, http_port=0, analyzer=False))
    store = srv.store
    say(f"  receiver  OTLP/HTTP on http://127.0.0.1:{srv.http_port}, gRPC on 127.0.0.1:{srv.grpc_port}")
    say(f"  store     {e(store.location)} (database {store.database})")
    webhook = _Webhook()
    telemetry = None
    try:
        # -- train ---------------------------------------------------------------------------
        train = applicants(rng, 20_000, drifted=False)
        y = rng.random(20_000) < true_default_probability(train, drifted=False)
        clf = CreditModel().fit(train, y.astype(float))
        acc = float(np.mean((clf.predict_proba(train) > 0.5) == y))
        say(f"  model     logistic regression on 9 features, trained on 20,000 generated applicants "
            f"(default rate {y.mean():.0%}, training accuracy {acc:.1%})")

        # -- the SDK, exporting over OTLP to the receiver, through the simulated clock ------------
        base = f"http://127.0.0.1:{srv.http_port}"
        clock = SimulatedClock(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces"),
                                                  max_queue_size=65_536, max_export_batch_size=2048))
        telemetry = modelwatch.configure(span_processor=clock, metric_exporter=OTLPMetricExporter(
            endpoint=f"{base}/v1/metrics"), metric_export_interval_millis=3_600_000, set_global=False,
            service_name="credit-api")

        @modelwatch.monitor(model=MODEL, version=VERSION, sampling_rate=options.sampling_rate)
        def score(applicant: dict[str, Any]) -> dict[str, Any]:
            """The application's inference code: P(default) for one applicant."""
            p = float(clf.predict_proba(applicant)[0])
            return {"prediction": p > 0.5, "score": p}

        days = _day_bounds(options.days, datetime.now(timezone.utc))
        say(f"\nstreaming {options.days} simulated days × {options.per_day:,} applications "
            f"({days[0][0]:%Y-%m-%d} → {days[-1][1]:%Y-%m-%d}); drift event on day {options.drift_day}")
        pending_labels: list[tuple[str, bool]] = []
        label_count = 0
        keys = list(train)
        for d, (start, end) in enumerate(days, start=1):
            drifted = d >= options.drift_day
            batch = applicants(rng, options.per_day, drifted)
            truth = rng.random(options.per_day) < true_default_probability(batch, drifted)
            # yesterday's outcomes arrive during today
            span = _ns(end) - _ns(start)
            for i, (pid, outcome) in enumerate(pending_labels):
                modelwatch.record_label(MODEL, pid, outcome, version=VERSION,
                                        timestamp_ns=_ns(start) + span * (i + 1) // (len(pending_labels) + 1))
            label_count += len(pending_labels)
            offsets = np.sort(rng.random(options.per_day)) * span
            pending_labels = []
            kept = 0
            t_day = time.monotonic()
            for i in range(options.per_day):
                clock.now_ns = _ns(start) + int(offsets[i])
                applicant = {k: batch[k][i].item() if hasattr(batch[k][i], "item") else batch[k][i] for k in keys}
                score(applicant)
                rec = modelwatch.last_prediction()
                kept += bool(rec.kept)
                if rng.random() < options.label_share:
                    pending_labels.append((rec.id, bool(truth[i])))
            clock.now_ns = 0
            telemetry.force_flush(60_000)
            note = "  ← drift event: recession, new region 'central', employment_years sometimes empty" \
                if d == options.drift_day else ""
            say(f"  day {d}/{options.days} {start:%a %m-%d}: {options.per_day:,} predictions, {kept:,} kept as spans, "
                f"{len(pending_labels):,} outcomes due tomorrow ({time.monotonic() - t_day:.1f} s){note}")
        say(f"  labels: {label_count:,} arrived late (one day after their prediction); "
            f"day {options.days}'s are not known yet")
        telemetry.shutdown()  # flushes spans and the metrics (the full-population counters)
        telemetry = None
        stored = store.query(f"SELECT count() FROM {store.table('ml_predictions')} WHERE ModelName = {{m:String}}",
                             {"m": MODEL})[0][0]
        say(f"  stored: {stored:,} of {options.days * options.per_day:,} predictions as spans "
            f"({stored / (options.days * options.per_day):.0%}), typed into ml_predictions at insert")

        # -- baseline and analysis --------------------------------------------------------------
        say("\nanalysing")
        ref = baseline.from_window(store, Window(MODEL, days[0][0], days[0][1], VERSION), VERSION)
        baseline.save(store, ref)
        say(f"  baseline {ref.id} from day 1 ({ref.rows:,.0f} predictions, weighted; {len(ref.features)} columns)")
        cfg = _config(webhook.url)
        alerter = Alerter(store, cfg.alerts)
        model_cfg = cfg.model(MODEL)
        per_day: list[tuple[int, list[Any], list[Any]]] = []
        for d, (start, end) in enumerate(days[1:], start=2):
            rep = analyse_model(store, model_cfg, Window(MODEL, start, end, VERSION), cfg, alerter=None)
            fired = alerter.process(rep.results, now=end)  # alerts fire at the simulated end of the day
            per_day.append((d, rep.results, fired))
            s = next((r for r in rep.results if r.method == "drift_share"), None)
            acc_r = next((r for r in rep.results if r.method == "accuracy"), None)
            drifted_f = s.details.get("drifted_features", []) if s is not None else []
            say(f"  day {d}: {len(drifted_f)} feature(s) drifted"
                + (f" ({e(', '.join(drifted_f))})" if drifted_f else "")
                + (f"; accuracy {acc_r.statistic:.1%}" if acc_r is not None and acc_r.statistic is not None
                   else "; accuracy: no labels yet")
                + (f"; {len(fired)} alert(s)" if fired else ""))

        _summary(say, per_day, options)
        # -- report ---------------------------------------------------------------------------------
        out = Path(options.out).expanduser().resolve()
        say("\nwriting the report")
        report.write(store, out, since=days[0][0], until=days[-1][1])
        hooks = webhook.bodies
        say(f"  {out}  ({out.stat().st_size / 1024:,.0f} KiB, one self-contained file: open it in a browser)")
        say(f"  the local webhook received {sum(1 for p, _ in hooks if p == '/alerts')} alert(s) and "
            f"{sum(1 for p, _ in hooks if p == '/retrain')} retrain trigger(s)")
        stored_results = len(results_mod.load(store, MODEL))
        shown = _shell_url(url)
        db = f" --database {options.database}" if options.database else ""
        say(f"\ndone in {time.monotonic() - started:.0f} s ({stored_results:,} results stored). Next:")
        say(f"  modelwatch status --url {shown}{db} --cost      # what the store holds, what monitoring costs")
        say(f"  modelwatch analyze --url {shown}{db} --model {MODEL} --last 24h")
        say(f"  modelwatch report --url {shown}{db} --last {options.days}d --out report.html")
        say(f"  modelwatch serve --url {shown}{db}               # then point your own service at it:")
        say("  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 python my_service.py   (see README: Using the SDK)")
        return 0
    finally:
        if telemetry is not None:
            telemetry.shutdown()
        webhook.close()
        srv.stop()


def _shell_url(url: str) -> str:
    return url if all(c.isalnum() or c in ":/._-~+" for c in url) else f"'{url}'"


def _summary(say: Callable[[str], None], per_day: list[tuple[int, list[Any], list[Any]]], options: DemoOptions) -> None:
    """Which features drifted and how badly, what happened to accuracy, which alerts fired, with their traces."""
    from modelwatch_analyzer.report.html import evidence_where
    from modelwatch_analyzer.analysis.results import severity_rank

    say("\nsummary")
    worst: dict[str, Any] = {}
    first: dict[str, int] = {}
    for d, rows, _ in per_day:
        for r in rows:
            if r.kind == "drift" and r.details.get("score") and r.drifted and r.feature:
                first.setdefault(r.feature, d)
                w = worst.get(r.feature)
                if w is None or (severity_rank(r.severity), r.statistic or 0) > (severity_rank(w.severity), w.statistic or 0):
                    worst[r.feature] = r
    if worst:
        say("  drifted (worst day; score = PSI against day 1):")
        for f, r in sorted(worst.items(), key=lambda kv: (-severity_rank(kv[1].severity), -(kv[1].statistic or 0))):
            where = evidence_where(r.details)
            extra = f", most over-represented: {e(f)} {e(where)}" if where else ""
            say(f"    {e(f):<18} {r.severity:<8} psi {r.statistic:6.3f} (threshold {r.threshold:g}), from day {first[f]}{extra}")
    else:
        say("  no feature drifted")
    quiet = sorted({r.feature for _, rows, _ in per_day for r in rows
                    if r.kind == "drift" and r.details.get("score") and r.feature and r.feature not in worst})
    if quiet:
        say(f"  stable: {e(', '.join(quiet))}")
    accs = [(d, next((r.statistic for r in rows if r.method == "accuracy"), None)) for d, rows, _ in per_day]
    cov = [(d, next((r.statistic for r in rows if r.method == "label_coverage"), None)) for d, rows, _ in per_day]
    say("  accuracy by day (labels arrive a day late): "
        + ", ".join(f"d{d} {a:.1%}" if a is not None else f"d{d} n/a" for d, a in accs))
    before = [a for d, a in accs if a is not None and d < options.drift_day]
    after = [a for d, a in accs if a is not None and d >= options.drift_day]
    if before and after:
        say(f"    before the event {np.mean(before):.1%}, after {np.mean(after):.1%} "
            f"({(np.mean(after) - np.mean(before)) * 100:+.1f} points); label coverage "
            + ", ".join(f"d{d} {c:.0%}" for d, c in cov if c is not None))
    dq = sorted({(r.feature, r.method) for _, rows, _ in per_day for r in rows if r.kind == "data_quality" and r.drifted})
    if dq:
        say("  data quality: " + ", ".join(f"{e(f)} {m}" for f, m in dq))
    fired = [(d, a) for d, _, alerts in per_day for a in alerts]
    if not fired:
        say("  alerts: none fired")
        return
    say(f"  alerts fired: {len(fired)}, all delivered to the local webhook: {all(a.delivered for _, a in fired)} "
        "(the same alert fires at most once a week; a worsening fires again)")
    for d, a in fired:
        what = a.feature if a.feature else ("retrain trigger" if a.rule == "retrain" else a.rule)
        detail = a.message.split(": ", 1)[-1]
        ids = a.payload.get("trace_ids", []) if isinstance(a.payload, dict) else []
        say(f"    day {d} [{a.severity}] {e(a.rule):<15} {e(what)}: {e(detail[:90])}")
        if ids and a.rule != "retrain":
            say(f"        sampled predictions behind it: {e(', '.join(ids[:3]))}{' …' if len(ids) > 3 else ''}")
