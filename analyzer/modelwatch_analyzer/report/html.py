"""``modelwatch report``: one self-contained HTML file per store, readable offline.

Per model (:mod:`.sections`): a summary; every feature's reference-vs-current
distribution (the latest window's PSI bins or category shares, as the
analyzer computed them) and its drift score over time against its threshold,
with links from a drifted feature to the sampled predictions behind it; data
quality (with the pipeline gap: kept predictions the store lacks, told apart
from low volume); performance against late labels over time; prediction
volume and sampling by reason, with kept-vs-stored per window; alerts. Then
the monitoring cost (:func:`.status.cost`).

What is shown is read by :mod:`.data`, nothing is recomputed here; the charts
(:mod:`.charts`) are the web UI's: uPlot and ``charts.js``, inlined, their data
as JSON in non-executed elements. The Content-Security-Policy allows those two
scripts by their SHA-256 hashes and nothing else, and loading nothing, so the
file works offline and a hostile model or feature name cannot inject script:
every string from the data passes through :func:`html.escape` (and the
charts' JSON escapes ``<``, ``>`` and ``&``), and element ids are generated,
never taken from the data. (Control characters pass through
:func:`html.escape` unchanged; a browser shows them as nothing or as a
replacement glyph, never acting on them.) The command itself only reads the
store and does not create one; what it prints to the terminal from the store
is escaped by :func:`.textsafe.escape`.
"""

from __future__ import annotations

import base64
import hashlib
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from modelwatch_analyzer.analysis.results import INSUFFICIENT
from modelwatch_analyzer.report import status
from modelwatch_analyzer.report.charts import esc, script_files
from modelwatch_analyzer.report.data import gather, models_in
from modelwatch_analyzer.report.sections import model_section, pct, pipeline, sev
from modelwatch_analyzer.store.client import Store

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#212529;background:#f8f9fa}
main{max-width:1180px;margin:0 auto;padding:16px 24px 64px}
h1{font-size:24px;margin:8px 0 4px}h2{font-size:20px;margin:32px 0 8px;border-bottom:2px solid #dee2e6}
h3{font-size:16px;margin:20px 0 6px}
section.model{background:#fff;border:1px solid #dee2e6;border-radius:6px;padding:4px 20px 20px;margin:20px 0}
table{border-collapse:collapse;margin:6px 0 12px}
td,th{border-bottom:1px solid #e9ecef;padding:3px 10px 3px 0;text-align:left;vertical-align:top}
th{font-weight:600;color:#495057}td.n{text-align:right;font-variant-numeric:tabular-nums}
.sev{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-size:12px}
.sev-none{background:#2b8a3e}.sev-info{background:#1971c2}.sev-warning{background:#e67700}
.sev-critical{background:#c92a2a}
.feature{border-top:1px solid #e9ecef;padding-top:6px}.plots{display:flex;flex-wrap:wrap;gap:12px}
figure.chart-box{background:#fff;border:1px solid #e9ecef;margin:0;padding:8px 10px;flex:1 1 540px;max-width:1100px}
figure.chart-box h4{margin:0 0 4px;font-size:13px}figcaption{font-size:12px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
.muted{color:#868e96}.flag{color:#c92a2a;font-weight:600}nav a{margin-right:12px}
details{margin:4px 0}summary{cursor:pointer}
"""


def _cost_section(store: Store, model: str | None) -> str:
    try:
        c = status.cost(store, model)
    except Exception as exc:  # the report stays useful without it
        return f'<h2 id="cost">Monitoring cost</h2><p class="muted">unavailable: {esc(exc)}</p>'
    out = ['<h2 id="cost">Monitoring cost</h2><p class="muted">Everything the store retains. Predictions made come '
           "from the SDK's full-population counter <code>ml.predictions</code> (or, without metrics, the sum of "
           "sampling weights).</p><table><tr><th>model</th><th>made</th><th>stored</th><th>rate</th><th>kept by reason "
           "(share of all made)</th><th>dropped</th></tr>"]
    for m in c.models:
        reasons = ", ".join(f"{esc(k)} {v:,.0f} ({v / max(m.seen, 1):.1%})" for k, v in
                            sorted(m.kept_by_reason.items(), key=lambda kv: -kv[1]))
        out.append(f'<tr><td>{esc(m.model)}</td><td class="n">{m.seen:,.0f}</td><td class="n">{m.stored:,}</td>'
                   f'<td class="n">{m.rate:.1%}</td><td>{reasons}</td><td class="n">{m.dropped:,.0f}</td></tr>')
    out.append("</table><table><tr><th>table</th><th>rows</th><th>on disk</th><th>uncompressed</th></tr>")
    for t, v in sorted(c.tables.items(), key=lambda kv: -kv[1]["bytes"]):
        out.append(f'<tr><td>{esc(t)}</td><td class="n">{v["rows"]:,.0f}</td>'
                   f'<td class="n">{status.human_bytes(v["bytes"])}</td>'
                   f'<td class="n">{status.human_bytes(v["uncompressed"])}</td></tr>')
    out.append("</table>")
    if c.stored and c.seen:
        now = c.bytes_per_prediction * c.stored
        out.append(f"<p>{c.bytes_per_prediction:,.0f} bytes on disk per stored prediction (typed row + its share of "
                   f"<code>otel_traces</code>). Logging all {c.seen:,.0f} predictions would take ≈ "
                   f"<b>{status.human_bytes(c.full_logging_bytes)}</b> instead of {status.human_bytes(now)} "
                   f"({c.full_logging_bytes / max(now, 1):.1f}×).</p>")
    return "".join(out)


def render(store: Store, models: Sequence[str], since: datetime | None = None, until: datetime | None = None,
           trace_url: str | None = None) -> str:
    """The whole report as one HTML string."""
    data = [gather(store, m, since, until) for m in models]
    now = datetime.now(timezone.utc)
    rng = ((f"{since:%Y-%m-%d %H:%M}" if since else "the beginning") + " → "
           + (f"{until:%Y-%m-%d %H:%M}" if until else "now"))
    uplot_js, uplot_css, charts_js = script_files()
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(js.encode()).digest()).decode()}'"
                      for js in (uplot_js, charts_js))
    head = ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
            f"img-src data:; script-src {hashes}\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>modelwatch report: {esc(', '.join(models) or 'no models')}</title><style>{uplot_css}{CSS}</style>"
            f"<script>{uplot_js}</script><script>{charts_js}</script></head>"
            "<body><main>")
    out = [head, f"<h1>modelwatch report</h1><p class=\"muted\">store {esc(store.location)} (database "
           f"{esc(store.database)}) · range {esc(rng)} UTC · generated {now:%Y-%m-%d %H:%M} UTC</p>"]
    if not data:
        out.append("<p>No models in this store yet. Send predictions with the SDK to <code>modelwatch serve</code>, "
                   "or run <code>modelwatch demo</code>.</p>")
    else:
        out.append("<table><tr><th>model</th><th>latest verdict</th><th>drifted features</th><th>alerts</th></tr>")
        for i, d in enumerate(data):
            s = next((r for r in d.latest() if r.method == "drift_share"), None)
            verdict = (sev(s.severity) if s is not None and s.status != INSUFFICIENT
                       else '<span class="muted">n/a</span>')
            gap = pipeline(d.latest())
            if gap is not None and gap.drifted:
                verdict += f' <span class="flag">pipeline gap {pct(gap.statistic)}</span>'
            drifted = ", ".join(s.details.get("drifted_features", [])) if s is not None else ""
            out.append(f'<tr><td><a href="#m{i}">{esc(d.model)}</a></td><td>{verdict}</td>'
                       f'<td>{esc(drifted) or "–"}</td>'
                       f'<td class="n">{len({a.alert_id.split(":")[0] for a in d.alerts})}</td></tr>')
        out.append('</table><p><a href="#cost">monitoring cost</a></p>')
    for i, d in enumerate(data):
        out.append(model_section(d, i, trace_url))
    out.append(_cost_section(store, models[0] if len(models) == 1 else None))
    out.append("</main></body></html>\n")
    return "".join(out)


def write(store: Store, path: str | Path, model: str | None = None, since: datetime | None = None,
          until: datetime | None = None, trace_url: str | None = None) -> Path:
    """Write the report for `model` (default: every model in the store) to `path`; returns the path."""
    models = [model] if model else models_in(store)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render(store, models, since, until, trace_url), encoding="utf-8")
    return p


def main(args: Any) -> int:
    """``modelwatch report`` (arguments parsed in cli.py)."""
    # The one import against the layers (report <- cli): the time parser of every command lives in the CLI.
    from modelwatch_analyzer.analysis.window import parse_time
    from modelwatch_analyzer.errors import ConfigError

    now = datetime.now(timezone.utc)
    if args.last and args.since:
        raise ConfigError("give --last or --since, not both")
    since = (parse_time(args.last or args.since, now, "--last" if args.last else "--since")
             if (args.last or args.since) else None)
    until = parse_time(args.until, now, "--until") if args.until else None
    if since and until and until <= since:
        raise ConfigError("the range is empty: --since must be before --until")
    if args.trace_url and "{trace_id}" not in args.trace_url:
        raise ConfigError("--trace-url needs a {trace_id} placeholder, e.g. http://localhost:16686/trace/{trace_id}")
    store = Store(args.url, database=args.database, create=False)
    try:
        from modelwatch_analyzer.store import schema
        from modelwatch_analyzer.textsafe import escape

        if not schema.version(store):
            print(f"modelwatch: the store {escape(store.location)} (database {store.database}) holds no modelwatch "
                  "tables; nothing to report. Try `modelwatch demo`.", file=sys.stderr)
            return 1
        if args.model and args.model not in models_in(store):
            print(f"modelwatch: no model {escape(repr(args.model))} in the store; models: "
                  f"{escape(', '.join(models_in(store))) or 'none'}", file=sys.stderr)
            return 1
        path = write(store, args.out, args.model, since, until, args.trace_url)
    finally:
        store.close()
    print(f"report written: {path.resolve()} (open it in a browser; it needs no network)")
    return 0
