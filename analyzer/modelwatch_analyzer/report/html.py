"""``modelwatch report``: one self-contained HTML file per store, readable offline.

Per model: a summary; every feature's reference-vs-current distribution (the
latest window's PSI bins or category shares, as the analyzer computed them)
and its drift score over time against its threshold, with links from a
drifted feature to the sampled predictions behind it; data quality (with
the pipeline gap: kept predictions the store lacks, told apart from low
volume); performance against late labels over time; prediction volume and
sampling by reason, with kept-vs-stored per window; alerts. Then the monitoring cost (:func:`.status.cost`).

Everything comes from the store's own tables — ``ml_results`` (whose rows
carry bins, shares and trace ids in ``Details``), ``ml_baselines``,
``ml_predictions``, ``ml_alerts`` — nothing is recomputed here. The plots
are inline SVG drawn in Python; the page has no script at all and a
Content-Security-Policy that forbids loading anything, so it works offline
and a hostile model or feature name cannot inject script: every string from
the data passes through :func:`html.escape`, and element ids are generated,
never taken from the data. (Control characters pass through
:func:`html.escape` unchanged; a browser shows them as nothing or as a
replacement glyph, never acting on them.) The command itself only reads the
store and does not create one; what it prints to the terminal from the store
is escaped by :func:`.textsafe.escape`.
"""

from __future__ import annotations

import html
import math
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from modelwatch_analyzer.analysis import baseline as baselines
from modelwatch_analyzer.analysis import completeness
from modelwatch_analyzer.analysis import results as results_mod
from modelwatch_analyzer.analysis.results import INSUFFICIENT, Result, severity_rank, utc
from modelwatch_analyzer.store.client import Store

OTHER = "__other__"  # the analyzer's catch-all category bucket (analyze.OTHER)
_HEX = re.compile(r"^[0-9a-f]{32}$")
EVIDENCE_LIMIT = 60
REF_COLOR, CUR_COLOR = "#7f8c9a", "#d9480f"
SEV_COLOR = {"none": "#2b8a3e", "info": "#1971c2", "warning": "#e67700", "critical": "#c92a2a"}
REASON_COLOR = {"random": "#7f8c9a", "low_confidence": "#1971c2", "high_risk": "#c92a2a", "error": "#000000",
                "edge_case": "#862e9c"}
PALETTE = ("#1971c2", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#5c940d")


def esc(x: Any) -> str:
    """Text from the data, safe in element content and quoted attributes."""
    return html.escape(str(x), quote=True)


# -- data ---------------------------------------------------------------------------------------


@dataclass
class ModelData:
    model: str
    versions: list[str]
    results: list[Result]
    baseline: baselines.Baseline | None
    volume: list[tuple[datetime, str, int, float]]  # bucket, reason, stored, weight
    bucket: timedelta
    alerts: list[Any]
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)  # trace id -> stored prediction

    def windows(self) -> list[tuple[datetime, datetime]]:
        return sorted({(r.window_start, r.window_end) for r in self.results if r.window_start and r.window_end})

    def latest(self) -> list[Result]:
        w = self.windows()
        if not w:
            return []
        return [r for r in self.results if (r.window_start, r.window_end) == w[-1]]


def _bucket(span: timedelta) -> timedelta:
    for b in (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1),
              timedelta(hours=6), timedelta(days=1)):
        if span / b <= 60:
            return b
    return timedelta(days=7)


def models_in(store: Store) -> list[str]:
    tables = store.tables()
    names: set[str] = set()
    for table in ("ml_predictions", "ml_results", "ml_baselines"):
        if table in tables:
            names |= {r[0] for r in store.query(f"SELECT DISTINCT ModelName FROM {store.table(table)}")}
    return sorted(n for n in names if n)


def gather(store: Store, model: str, since: datetime | None = None, until: datetime | None = None) -> ModelData:
    """One model's part of the report, for windows inside [since, until] (default: everything)."""
    rows = results_mod.load(store, model, since, until)
    try:
        base = baselines.load(store, model)
    except Exception:
        base = None
    where = ["ModelName = {model:String}"]
    params: dict[str, Any] = {"model": model}
    if since is not None:
        where.append("Timestamp >= {since:DateTime64(3)}")
        params["since"] = since
    if until is not None:
        where.append("Timestamp < {until:DateTime64(3)}")
        params["until"] = until
    cond = " AND ".join(where)
    table = store.table("ml_predictions")
    versions = [r[0] for r in store.query(f"SELECT DISTINCT ModelVersion FROM {table} WHERE {cond} ORDER BY 1", params)]
    first, last = store.query(f"SELECT min(Timestamp), max(Timestamp) FROM {table} WHERE {cond}", params)[0]
    bucket = _bucket((utc(last) - utc(first)) if first and last and last > first else timedelta(hours=1))
    volume = [(utc(t), reason, int(n), float(w)) for t, reason, n, w in store.query(
        f"SELECT toStartOfInterval(Timestamp, toIntervalSecond({{b:UInt32}})) AS t, Reason, count(), sum(Weight) "
        f"FROM {table} WHERE {cond} GROUP BY t, Reason ORDER BY t, Reason",
        dict(params, b=int(bucket.total_seconds())))] if first else []
    alerts = []
    if "ml_alerts" in store.tables():
        from modelwatch_analyzer.outputs.alerts.rows import ALERT_COLUMNS, LIVE, Alert

        aw = [LIVE, "ModelName = {model:String}"] + [w.replace("Timestamp", "FiredAt") for w in where[1:]]
        alerts = [Alert.from_row(r) for r in store.query(
            f"SELECT {', '.join(ALERT_COLUMNS)} FROM {store.table('ml_alerts')} FINAL WHERE {' AND '.join(aw)} "
            "ORDER BY FiredAt, AlertId", params)]
    data = ModelData(model, versions, rows, base, volume, bucket, alerts)
    ids: list[str] = []
    for r in data.latest() + [r for r in rows if r.drifted]:
        for t in r.details.get("trace_ids", []) or []:
            if isinstance(t, str) and _HEX.match(t) and t not in ids:
                ids.append(t)
    for a in alerts:
        for t in a.payload.get("trace_ids", []) if isinstance(a.payload, dict) else []:
            if isinstance(t, str) and _HEX.match(t) and t not in ids:
                ids.append(t)
    ids = ids[:EVIDENCE_LIMIT]
    if ids:
        for ts, tid, reason, weight, pred, score, num, cat in store.query(
                f"SELECT Timestamp, TraceId, Reason, Weight, Prediction, Score, Numeric, Categorical FROM {table} "
                "WHERE ModelName = {model:String} AND TraceId IN {ids:Array(String)}", {"model": model, "ids": ids}):
            data.evidence[tid] = {"time": utc(ts), "reason": reason, "weight": weight, "prediction": pred,
                                  "score": score, "features": {**{k: v for k, v in num.items()}, **cat}}
    return data


# -- SVG ------------------------------------------------------------------------------------------


def _num(x: float) -> str:
    return f"{x:.1f}"


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if x != 0 and abs(x) < 10 ** -digits:
        return f"{x:.1e}"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def _short(x: float) -> str:
    a = abs(x)
    if a >= 1e6:
        return f"{x / 1e6:.3g}M"
    if a >= 1e4:
        return f"{x / 1e3:.3g}k"
    return f"{x:.3g}"


def svg_bars(labels: Sequence[str], ref: Sequence[float], cur: Sequence[float], title: str,
             width: int = 560, height: int = 220) -> str:
    """Grouped bars: reference (grey) and current (orange) shares per bin or category."""
    n = max(len(labels), 1)
    left, bottom, top = 44, 58, 22
    plot_w, plot_h = width - left - 10, height - bottom - top
    ymax = max([*ref, *cur, 1e-9]) * 1.1
    slot = plot_w / n
    bw = max(slot * 0.38, 1.0)
    parts = [f'<svg class="plot" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{esc(title)}</title>']
    for frac in (0, 0.5, 1):
        y = top + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{_num(y)}" y2="{_num(y)}" class="grid"/>'
                     f'<text x="{left - 4}" y="{_num(y + 4)}" class="ax" text-anchor="end">{frac * ymax:.0%}</text>')
    for i, lab in enumerate(labels):
        x0 = left + i * slot + slot * 0.1
        for j, (vals, color, who) in enumerate(((ref, REF_COLOR, "reference"), (cur, CUR_COLOR, "current"))):
            v = vals[i] if i < len(vals) else 0.0
            h = plot_h * v / ymax
            parts.append(f'<rect x="{_num(x0 + j * bw)}" y="{_num(top + plot_h - h)}" width="{_num(bw)}" '
                         f'height="{_num(h)}" fill="{color}"><title>{esc(lab)}: {who} {v:.1%}</title></rect>')
        shown = lab if len(lab) <= 14 else lab[:13] + "…"
        cx = left + (i + 0.5) * slot
        parts.append(f'<text x="{_num(cx)}" y="{top + plot_h + 12}" class="ax" text-anchor="end" '
                     f'transform="rotate(-35 {_num(cx)} {top + plot_h + 12})">{esc(shown)}</text>')
    parts.append(f'<rect x="{left}" y="4" width="10" height="10" fill="{REF_COLOR}"/>'
                 f'<text x="{left + 14}" y="13" class="ax">reference</text>'
                 f'<rect x="{left + 90}" y="4" width="10" height="10" fill="{CUR_COLOR}"/>'
                 f'<text x="{left + 104}" y="13" class="ax">current (latest window)</text></svg>')
    return "".join(parts)


def svg_lines(times: Sequence[datetime], series: dict[str, Sequence[float | None]], title: str,
              threshold: float | None = None, percent: bool = False, width: int = 560, height: int = 200,
              colors: Sequence[str] = PALETTE, point_colors: Sequence[str] | None = None) -> str:
    """Lines over time (one point per window end), with an optional dashed threshold."""
    left, bottom, top, right = 48, 34, 22, 12
    plot_w, plot_h = width - left - right, height - bottom - top
    values = [v for s in series.values() for v in s if v is not None and math.isfinite(v)]
    if threshold is not None:
        values.append(threshold)
    ymax = max(values + [1e-9]) * 1.1
    ymin = min(0.0, min(values + [0.0]))
    if percent:
        ymin, ymax = 0.0, 1.0
    span = (ymax - ymin) or 1.0
    t0 = times[0].timestamp() if times else 0.0
    t1 = times[-1].timestamp() if times else 1.0
    tspan = (t1 - t0) or 1.0

    def xy(t: datetime, v: float) -> tuple[float, float]:
        x = left + plot_w * ((t.timestamp() - t0) / tspan if len(times) > 1 else 0.5)
        return x, top + plot_h * (1 - (v - ymin) / span)

    parts = [f'<svg class="plot" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{esc(title)}</title>']
    for frac in (0, 0.5, 1):
        v = ymin + span * frac
        y = top + plot_h * (1 - frac)
        label = f"{v:.0%}" if percent else _short(v)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{_num(y)}" y2="{_num(y)}" class="grid"/>'
                     f'<text x="{left - 4}" y="{_num(y + 4)}" class="ax" text-anchor="end">{label}</text>')
    step = max(1, math.ceil(len(times) / 7))
    for i, t in enumerate(times):
        if (i % step == 0 and len(times) - 1 - i >= step / 2) or i == len(times) - 1:
            x, _ = xy(t, ymin)
            anchor = "start" if i == 0 and len(times) > 1 else "end" if i == len(times) - 1 and len(times) > 1 else "middle"
            parts.append(f'<text x="{_num(x)}" y="{height - 18}" class="ax" text-anchor="{anchor}">{t:%m-%d %H:%M}</text>')
    if threshold is not None and math.isfinite(threshold):
        _, y = xy(times[0] if times else datetime.now(timezone.utc), threshold)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{_num(y)}" y2="{_num(y)}" class="thr">'
                     f'<title>threshold {threshold:g}</title></line>'
                     f'<text x="{width - right}" y="{_num(y - 3)}" class="ax" text-anchor="end">threshold {threshold:g}</text>')
    legend_x = left
    for k, (name, vals) in enumerate(series.items()):
        color = colors[k % len(colors)]
        pts = [(t, v) for t, v in zip(times, vals) if v is not None and math.isfinite(v)]
        if len(pts) > 1:
            path = " ".join(f"{'M' if i == 0 else 'L'}{_num(xy(t, v)[0])},{_num(xy(t, v)[1])}" for i, (t, v) in enumerate(pts))
            parts.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for i, (t, v) in enumerate(zip(times, vals)):
            if v is None or not math.isfinite(v):
                continue
            x, y = xy(t, v)
            fill = point_colors[i] if point_colors is not None and len(series) == 1 else color
            label = f"{v:.1%}" if percent else _fmt(v)
            parts.append(f'<circle cx="{_num(x)}" cy="{_num(y)}" r="3.5" fill="{fill}">'
                         f'<title>{esc(name)} {label} (window ending {t:%Y-%m-%d %H:%M} UTC)</title></circle>')
        if len(series) > 1:
            parts.append(f'<rect x="{legend_x}" y="5" width="10" height="10" fill="{color}"/>'
                         f'<text x="{legend_x + 13}" y="14" class="ax">{esc(name)}</text>')
            legend_x += 20 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)


def svg_stacked(times: Sequence[datetime], layers: dict[str, Sequence[float]], title: str, bucket: timedelta,
                width: int = 760, height: int = 220) -> str:
    """Stacked bars per time bucket (stored predictions by sampling reason)."""
    left, bottom, top, right = 52, 34, 24, 12
    plot_w, plot_h = width - left - right, height - bottom - top
    totals = [sum(layer[i] for layer in layers.values()) for i in range(len(times))]
    ymax = max(totals + [1.0]) * 1.1
    slot = plot_w / max(len(times), 1)
    parts = [f'<svg class="plot" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{esc(title)}</title>']
    for frac in (0, 0.5, 1):
        y = top + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{_num(y)}" y2="{_num(y)}" class="grid"/>'
                     f'<text x="{left - 4}" y="{_num(y + 4)}" class="ax" text-anchor="end">{_short(frac * ymax)}</text>')
    names = list(layers)
    for i, t in enumerate(times):
        y = top + plot_h
        for k, name in enumerate(names):
            v = layers[name][i]
            if v <= 0:
                continue
            h = plot_h * v / ymax
            y -= h
            color = REASON_COLOR.get(name, PALETTE[k % len(PALETTE)])
            parts.append(f'<rect x="{_num(left + i * slot + 1)}" y="{_num(y)}" width="{_num(max(slot - 2, 1))}" '
                         f'height="{_num(h)}" fill="{color}"><title>{t:%Y-%m-%d %H:%M} {esc(name)}: {v:,.0f}</title></rect>')
    step = max(1, math.ceil(len(times) / 8))
    fmt = "%m-%d" if bucket >= timedelta(days=1) else "%m-%d %H:%M"
    for i, t in enumerate(times):
        if i % step == 0:
            parts.append(f'<text x="{_num(left + (i + 0.5) * slot)}" y="{height - 18}" class="ax" '
                         f'text-anchor="middle">{t:{fmt}}</text>')
    x = left
    for k, name in enumerate(names):
        color = REASON_COLOR.get(name, PALETTE[k % len(PALETTE)])
        parts.append(f'<rect x="{x}" y="5" width="10" height="10" fill="{color}"/>'
                     f'<text x="{x + 13}" y="14" class="ax">{esc(name)}</text>')
        x += 24 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)


# -- HTML -------------------------------------------------------------------------------------------

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#212529;background:#f8f9fa}
main{max-width:1180px;margin:0 auto;padding:16px 24px 64px}
h1{font-size:24px;margin:8px 0 4px}h2{font-size:20px;margin:32px 0 8px;border-bottom:2px solid #dee2e6}
h3{font-size:16px;margin:20px 0 6px}section.model{background:#fff;border:1px solid #dee2e6;border-radius:6px;padding:4px 20px 20px;margin:20px 0}
table{border-collapse:collapse;margin:6px 0 12px}td,th{border-bottom:1px solid #e9ecef;padding:3px 10px 3px 0;text-align:left;vertical-align:top}
th{font-weight:600;color:#495057}td.n{text-align:right;font-variant-numeric:tabular-nums}
.sev{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-size:12px}
.sev-none{background:#2b8a3e}.sev-info{background:#1971c2}.sev-warning{background:#e67700}.sev-critical{background:#c92a2a}
.feature{border-top:1px solid #e9ecef;padding-top:6px}.plots{display:flex;flex-wrap:wrap;gap:12px}
svg.plot{background:#fff;border:1px solid #e9ecef}svg .ax{font-size:10px;fill:#495057}svg .grid{stroke:#e9ecef}
svg .thr{stroke:#c92a2a;stroke-dasharray:5 4;stroke-width:1.5}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
.muted{color:#868e96}.flag{color:#c92a2a;font-weight:600}nav a{margin-right:12px}
details{margin:4px 0}summary{cursor:pointer}
"""


def _sev(severity: str) -> str:
    s = severity if severity in SEV_COLOR else "none"
    return f'<span class="sev sev-{s}">{esc(severity)}</span>'


def _trace_link(tid: str, prefix: str, trace_url: str | None) -> str:
    if not _HEX.match(tid):
        return esc(tid)
    out = f'<a class="mono" href="#{prefix}-t-{tid}">{tid}</a>'
    if trace_url:
        out += f' <a class="muted" href="{esc(trace_url.replace("{trace_id}", tid))}">↗</a>'
    return out


def _score_rows(rows: Iterable[Result]) -> dict[str, Result]:
    return {r.feature: r for r in rows if r.kind == "drift" and r.details.get("score") and r.feature}


def _time_range(d: ModelData) -> str:
    w = d.windows()
    if not w:
        return "no analysis windows"
    return f"{w[0][0]:%Y-%m-%d %H:%M} → {w[-1][1]:%Y-%m-%d %H:%M} UTC, {len(w)} window(s)"


def _model_section(d: ModelData, idx: int, trace_url: str | None) -> str:
    p = f"m{idx}"
    latest = d.latest()
    windows = d.windows()
    ends = [w[1] for w in windows]
    out = [f'<section class="model" id="{p}"><h2>{esc(d.model)}</h2>']
    # summary
    s = next((r for r in latest if r.method == "drift_share"), None)
    stored = sum(v[2] for v in d.volume)
    made = sum(v[3] for v in d.volume)
    out.append("<h3>Summary</h3><table>")
    out.append(f"<tr><th>versions</th><td>{esc(', '.join(v or '(none)' for v in d.versions) or '–')}</td></tr>")
    out.append(f"<tr><th>analysed</th><td>{esc(_time_range(d))}</td></tr>")
    if d.baseline is not None:
        b = d.baseline
        out.append(f"<tr><th>baseline</th><td><code>{esc(b.id)}</code> version {esc(b.version)}, from {esc(b.source)}, "
                   f"{b.rows:,.0f} rows, {len(b.features)} columns</td></tr>")
    out.append(f"<tr><th>predictions</th><td>{stored:,} stored as spans, standing for ≈ {made:,.0f} made "
               f"(sum of sampling weights)</td></tr>")
    gap = _pipeline(latest)
    if gap is not None and gap.drifted:
        out.append(f'<tr><th>pipeline</th><td><span class="flag">pipeline gap</span> in the latest window: '
                   f"{esc(completeness.describe(gap))}. Stored volume and drift cover only what arrived: not low "
                   f'traffic, and a possibly biased sample (<a href="#{p}-volume">kept vs stored</a>).</td></tr>')
    elif gap is not None:
        out.append(f"<tr><th>pipeline</th><td>complete in the latest window: {gap.details.get('kept', 0):,.0f} kept by "
                   f"the SDK, {gap.details.get('stored', 0):,.0f} stored</td></tr>")
    if s is not None and s.status != INSUFFICIENT:
        drifted = s.details.get("drifted_features", [])
        out.append(f"<tr><th>latest window</th><td>{_sev(s.severity)} {len(drifted)} of {s.details.get('features', 0)} "
                   f"features drifted" + (f": {esc(', '.join(drifted))}" if drifted else "") + "</td></tr>")
    elif s is not None:
        out.append(f"<tr><th>latest window</th><td>insufficient data: {esc(s.details.get('reason', ''))}</td></tr>")
    acc = [(r.window_end, r.statistic) for r in d.results if r.method == "accuracy" and r.statistic is not None]
    if acc:
        out.append(f"<tr><th>accuracy</th><td>{acc[0][1]:.1%} in the first labelled window, {acc[-1][1]:.1%} in the "
                   f"last ({(acc[-1][1] - acc[0][1]) * 100:+.1f} points)</td></tr>")
    out.append(f"<tr><th>alerts</th><td>{len({a.alert_id.split(':')[0] for a in d.alerts})} fired in range"
               + (f' (<a href="#{p}-alerts">list</a>)' if d.alerts else "") + "</td></tr></table>")
    out.append(f'<nav><a href="#{p}-features">features</a><a href="#{p}-quality">data quality</a>'
               f'<a href="#{p}-performance">performance</a><a href="#{p}-volume">volume and sampling</a>'
               f'<a href="#{p}-alerts">alerts</a><a href="#{p}-evidence">sampled predictions</a></nav>')

    # features
    out.append(f'<h3 id="{p}-features">Features: reference vs current, drift over time</h3>')
    scores = _score_rows(latest)
    history: dict[str, list[Result]] = {}
    for r in d.results:
        if r.kind == "drift" and r.details.get("score") and r.feature:
            history.setdefault(r.feature, []).append(r)
    names = sorted(set(history) | set(scores), key=lambda f: (
        -severity_rank(scores[f].severity) if f in scores else 0, -(scores[f].statistic or 0) if f in scores else 0, f))
    if not names:
        out.append('<p class="muted">No analysis results in this range: run <code>modelwatch analyze</code>.</p>')
    out.append("<table><tr><th>feature</th><th>latest verdict</th><th>score</th><th>threshold</th><th>windows drifted</th></tr>")
    for i, f in enumerate(names):
        r = scores.get(f)
        hist = history.get(f, [])
        n_drift = sum(1 for h in hist if h.drifted)
        verdict = _sev(r.severity) if r is not None and r.status != INSUFFICIENT else '<span class="muted">n/a</span>'
        out.append(f'<tr><td><a href="#{p}-f{i}">{esc(f)}</a></td><td>{verdict}</td>'
                   f'<td class="n">{esc(r.method) + " " + _fmt(r.statistic) if r else "–"}</td>'
                   f'<td class="n">{_fmt(r.threshold) if r else "–"}</td><td class="n">{n_drift} / {len(hist)}</td></tr>')
    out.append("</table>")
    for i, f in enumerate(names):
        r = scores.get(f)
        hist = sorted(history.get(f, []), key=lambda h: h.window_end)
        out.append(f'<div class="feature" id="{p}-f{i}"><h3>{esc(f)} ')
        if r is not None and r.status != INSUFFICIENT:
            out.append(f'{_sev(r.severity)} <span class="muted">{esc(r.method)} {_fmt(r.statistic)} '
                       f'(threshold {_fmt(r.threshold)})</span>')
        elif r is not None:
            out.append(f'<span class="muted">insufficient data: {esc(r.details.get("reason", ""))}</span>')
        out.append("</h3><div class=\"plots\">")
        if r is not None:
            dist = _distribution(f, r, latest)
            if dist:
                out.append(dist)
        if hist:
            thr = next((h.threshold for h in reversed(hist) if h.threshold is not None), None)
            out.append(svg_lines([h.window_end for h in hist], {hist[-1].method: [h.statistic for h in hist]},
                                 f"{f}: {hist[-1].method} per window", threshold=thr,
                                 point_colors=[SEV_COLOR.get(h.severity, "#1971c2") if h.drifted else "#1971c2"
                                               for h in hist]))
        out.append("</div>")
        ids = [t for t in (r.details.get("trace_ids", []) if r is not None else []) if isinstance(t, str)]
        if ids:
            where = evidence_where(r.details) if r is not None else ""
            out.append(f"<p>Sampled predictions behind the drift ({esc(feature_label(f, where))}): "
                       + ", ".join(_trace_link(t, p, trace_url) for t in ids) + "</p>")
        out.append("</div>")

    # data quality
    out.append(f'<h3 id="{p}-quality">Data quality (latest window)</h3>')
    dq = [r for r in latest if r.kind == "data_quality"]
    if dq:
        out.append("<table><tr><th>feature</th><th>check</th><th>rate</th><th>ceiling</th><th></th><th>windows flagged</th></tr>")
        flagged_hist: dict[tuple[str, str], int] = {}
        for r in d.results:
            if r.kind == "data_quality" and r.drifted:
                flagged_hist[(r.feature or "", r.method)] = flagged_hist.get((r.feature or "", r.method), 0) + 1
        for r in sorted(dq, key=lambda r: (not r.drifted, r.feature or "", r.method)):
            if not r.drifted and not flagged_hist.get((r.feature or "", r.method)) and not r.statistic:
                continue
            examples = r.details.get("examples") or []
            ex = f' <span class="muted">e.g. {esc(", ".join(map(str, examples[:3])))}</span>' if examples else ""
            label = "(pipeline)" if r.feature == completeness.FEATURE else r.feature or "(model)"
            out.append(f"<tr><td>{esc(label)}</td><td>{esc(r.method)}</td>"
                       f'<td class="n">{_pct(r.statistic)}</td><td class="n">{_pct(r.threshold)}</td>'
                       f"<td>{'<span class=flag>flagged</span>' if r.drifted else 'ok'}{ex}</td>"
                       f'<td class="n">{flagged_hist.get((r.feature or "", r.method), 0)} / {len(windows)}</td></tr>')
        out.append("</table><p class=\"muted\">Checks with a zero rate in every window are not listed.</p>")
    else:
        out.append('<p class="muted">No data-quality results.</p>')

    # performance
    out.append(f'<h3 id="{p}-performance">Performance against labels, over time</h3>')
    perf_methods = [m for m in ("accuracy", "precision", "recall", "f1", "roc_auc", "mae", "rmse")
                    if any(r.method == m and r.statistic is not None for r in d.results)]
    by_end: dict[tuple[str, datetime], float | None] = {(r.method, r.window_end): r.statistic for r in d.results
                                                         if r.kind == "performance"}
    if perf_methods:
        pct = not any(m in ("mae", "rmse") for m in perf_methods)
        out.append('<div class="plots">' + svg_lines(ends, {m: [by_end.get((m, e)) for e in ends] for m in perf_methods},
                                                     "performance per window", percent=pct))
        out.append(svg_lines(ends, {"label coverage": [by_end.get(("label_coverage", e)) for e in ends]},
                             "label coverage per window", percent=True) + "</div>")
        insufficient = [r for r in d.results if r.kind == "performance" and r.method == "performance"
                        and r.status == INSUFFICIENT]
        if insufficient:
            out.append(f'<p class="muted">{len(insufficient)} window(s) without enough labels yet (labels arrive late): '
                       + esc("; ".join(f"{r.window_end:%m-%d %H:%M}: {r.details.get('reason', '')}" for r in insufficient[-3:]))
                       + "</p>")
    else:
        out.append('<p class="muted">No labels joined to predictions yet (<code>modelwatch.record_label</code>).</p>')

    # volume and sampling
    out.append(f'<h3 id="{p}-volume">Prediction volume and sampling</h3>')
    gaps = sorted((r for r in d.results if r.method == completeness.METHOD and r.feature == completeness.FEATURE
                   and r.window_end is not None), key=lambda r: r.window_end)
    if any(r.drifted for r in gaps):
        n_flagged = sum(1 for r in gaps if r.drifted)
        worst_gap = max(gaps, key=lambda r: r.statistic or 0)
        out.append(f'<p><span class="flag">pipeline gap</span> in {n_flagged} of {len(gaps)} window(s): the store holds '
                   f"fewer predictions than the SDK kept, so the stored volume below is short of the real one. Worst "
                   f"window ({worst_gap.window_end:%Y-%m-%d %H:%M}): {esc(completeness.describe(worst_gap))}.</p>")
    if gaps:
        gends = [r.window_end for r in gaps]
        out.append('<div class="plots">' + svg_lines(gends, {
            "kept (SDK counter)": [r.details.get("kept") for r in gaps],
            "dropped in the SDK": [r.details.get("sdk_dropped") for r in gaps],
            "stored": [r.details.get("stored") for r in gaps]}, "kept vs stored predictions per window") + "</div>")
    if d.volume:
        times = sorted({v[0] for v in d.volume})
        reasons = sorted({v[1] for v in d.volume}, key=lambda x: (x != "random", x))
        idx_t = {t: i for i, t in enumerate(times)}
        layers = {r: [0.0] * len(times) for r in reasons}
        est = [0.0] * len(times)
        for t, reason, n, w in d.volume:
            layers[reason][idx_t[t]] += n
            est[idx_t[t]] += w
        out.append('<div class="plots">' + svg_stacked(times, layers, "stored predictions by sampling reason", d.bucket))
        out.append(svg_lines(times, {"≈ made (sum of weights)": est, "stored": [sum(l[i] for l in layers.values())
                                                                               for i in range(len(times))]},
                             "predictions made vs stored", width=760) + "</div>")
        tot = {r: sum(layers[r]) for r in reasons}
        out.append("<table><tr><th>reason</th><th>stored</th><th>share of stored</th></tr>" + "".join(
            f'<tr><td>{esc(r or "(none)")}</td><td class="n">{tot[r]:,.0f}</td><td class="n">{tot[r] / max(stored, 1):.1%}</td></tr>'
            for r in reasons) + "</table>")
    else:
        out.append('<p class="muted">No stored predictions in this range.</p>')

    # alerts
    out.append(f'<h3 id="{p}-alerts">Alerts</h3>')
    if d.alerts:
        out.append("<table><tr><th>fired (UTC)</th><th>severity</th><th>rule</th><th>message</th><th>route</th>"
                   "<th>delivery</th><th>traces</th></tr>")
        for a in d.alerts:
            fi = names.index(a.feature) if a.feature in names else None
            msg = esc(a.message)
            if fi is not None:
                msg += f' <a href="#{p}-f{fi}">→ feature</a>'
            state = ("delivered" if a.delivered else
                     f'<span class="flag">failed ×{a.attempts}: {esc(a.last_error[:120])}</span>' if a.last_error else
                     "no route" if not a.route else "pending")
            ids = [t for t in (a.payload.get("trace_ids", []) if isinstance(a.payload, dict) else []) if isinstance(t, str)]
            out.append(f"<tr><td>{a.fired_at:%Y-%m-%d %H:%M}</td><td>{_sev(a.severity)}</td><td>{esc(a.rule)}</td>"
                       f"<td>{msg}</td><td>{esc(a.route or '–')}</td><td>{state}</td>"
                       f"<td>{' '.join(_trace_link(t, p, trace_url) for t in ids[:3])}"
                       f"{' …' if len(ids) > 3 else ''}</td></tr>")
        out.append("</table>")
    else:
        out.append('<p class="muted">No alerts in this range.</p>')

    # evidence
    out.append(f'<h3 id="{p}-evidence">Sampled predictions behind drift and alerts</h3>')
    if d.evidence:
        out.append("<table><tr><th>trace id</th><th>time (UTC)</th><th>reason</th><th>weight</th><th>prediction</th>"
                   "<th>score</th><th>features</th></tr>")
        for tid, e in sorted(d.evidence.items(), key=lambda kv: kv[1]["time"] or datetime.min.replace(tzinfo=timezone.utc)):
            feats = ", ".join(f"{k}={_fmt(v) if isinstance(v, float) else v}" for k, v in sorted(e["features"].items()))
            ext = f' <a class="muted" href="{esc(trace_url.replace("{trace_id}", tid))}">↗</a>' if trace_url else ""
            out.append(f'<tr id="{p}-t-{tid}"><td class="mono">{tid}{ext}</td><td>{e["time"]:%Y-%m-%d %H:%M:%S}</td>'
                       f'<td>{esc(e["reason"])}</td><td class="n">{e["weight"]:g}</td><td>{esc(e["prediction"])}</td>'
                       f'<td class="n">{_fmt(e["score"])}</td><td class="mono">{esc(feats)}</td></tr>')
        out.append("</table>")
    else:
        out.append('<p class="muted">No sampled predictions referenced by drift results or alerts in this range.</p>')
    out.append("</section>")
    return "".join(out)


def _pipeline(rows: Iterable[Result]) -> Result | None:
    return next((r for r in rows if r.method == completeness.METHOD and r.feature == completeness.FEATURE), None)


def evidence_where(details: dict[str, Any]) -> str:
    """The bin or category the evidence trace ids come from, readable ('' when none)."""
    if details.get("evidence_category") is not None:
        cat = str(details["evidence_category"])
        return f"= {cat!r} (new)" if cat in (details.get("unseen") or []) else f"= {cat!r}"
    b = details.get("evidence_bin")
    if isinstance(b, list) and len(b) == 2:
        lo, hi = (x if isinstance(x, (int, float)) and math.isfinite(x) else None for x in b)
        if lo is None and hi is not None:
            return f"≤ {hi:,.4g}"
        if hi is None and lo is not None:
            return f"> {lo:,.4g}"
        if lo is not None and hi is not None:
            return f"in ({lo:,.4g}, {hi:,.4g}]"
    return ""


def feature_label(feature: str, where: str) -> str:
    return f"{feature} {where}".strip()


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def _distribution(feature: str, r: Result, latest: Sequence[Result]) -> str | None:
    """The latest window against the reference: PSI bins (numeric) or the largest category shifts."""
    det = r.details
    if "bin_edges" not in det:
        det = next((x.details for x in latest if x.feature == feature and "bin_edges" in x.details), det)
    if "bin_edges" in det and "reference" in det and "current" in det:
        edges = [float(e) for e in det["bin_edges"]]
        labels = ([f"≤ {_short(edges[0])}"] + [f"{_short(a)}–{_short(b)}" for a, b in zip(edges, edges[1:])]
                  + [f"> {_short(edges[-1])}"]) if edges else ["all"]
        return svg_bars(labels, det["reference"], det["current"], f"{feature}: share per reference-decile bin")
    shifts = det.get("largest_shifts")
    if not isinstance(shifts, dict):
        shifts = next((x.details.get("largest_shifts") for x in latest if x.feature == feature
                       and isinstance(x.details.get("largest_shifts"), dict)), None)
    if isinstance(shifts, dict) and shifts:
        cats = sorted(shifts, key=lambda k: -max(shifts[k].get("reference", 0), shifts[k].get("current", 0)))
        unseen = [str(u) for u in det.get("unseen") or []]
        labels = [("new: " + ", ".join(unseen[:2]) if unseen else "other") if c == OTHER else c for c in cats]
        return svg_bars(labels, [float(shifts[c].get("reference", 0)) for c in cats],
                        [float(shifts[c].get("current", 0)) for c in cats], f"{feature}: share per category")
    return None


def _cost_section(store: Store, model: str | None) -> str:
    from modelwatch_analyzer.report import status

    try:
        c = status.cost(store, model)
    except Exception as exc:  # the report stays useful without it
        return f'<h2 id="cost">Monitoring cost</h2><p class="muted">unavailable: {esc(exc)}</p>'
    out = ['<h2 id="cost">Monitoring cost</h2><p class="muted">Everything the store retains. Predictions made come from '
           "the SDK's full-population counter <code>ml.predictions</code> (or, without metrics, the sum of sampling "
           "weights).</p><table><tr><th>model</th><th>made</th><th>stored</th><th>rate</th><th>kept by reason "
           "(share of all made)</th><th>dropped</th></tr>"]
    for m in c.models:
        reasons = ", ".join(f"{esc(k)} {v:,.0f} ({v / max(m.seen, 1):.1%})" for k, v in
                            sorted(m.kept_by_reason.items(), key=lambda kv: -kv[1]))
        out.append(f'<tr><td>{esc(m.model)}</td><td class="n">{m.seen:,.0f}</td><td class="n">{m.stored:,}</td>'
                   f'<td class="n">{m.rate:.1%}</td><td>{reasons}</td><td class="n">{m.dropped:,.0f}</td></tr>')
    out.append("</table><table><tr><th>table</th><th>rows</th><th>on disk</th><th>uncompressed</th></tr>")
    for t, v in sorted(c.tables.items(), key=lambda kv: -kv[1]["bytes"]):
        out.append(f'<tr><td>{esc(t)}</td><td class="n">{v["rows"]:,.0f}</td><td class="n">{status._bytes(v["bytes"])}</td>'
                   f'<td class="n">{status._bytes(v["uncompressed"])}</td></tr>')
    out.append("</table>")
    if c.stored and c.seen:
        now = c.bytes_per_prediction * c.stored
        out.append(f"<p>{c.bytes_per_prediction:,.0f} bytes on disk per stored prediction (typed row + its share of "
                   f"<code>otel_traces</code>). Logging all {c.seen:,.0f} predictions would take ≈ "
                   f"<b>{status._bytes(c.full_logging_bytes)}</b> instead of {status._bytes(now)} "
                   f"({c.full_logging_bytes / max(now, 1):.1f}×).</p>")
    return "".join(out)


def render(store: Store, models: Sequence[str], since: datetime | None = None, until: datetime | None = None,
           trace_url: str | None = None) -> str:
    """The whole report as one HTML string."""
    data = [gather(store, m, since, until) for m in models]
    now = datetime.now(timezone.utc)
    rng = (f"{since:%Y-%m-%d %H:%M}" if since else "the beginning") + " → " + (f"{until:%Y-%m-%d %H:%M}" if until else "now")
    head = ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "img-src data:\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>modelwatch report: {esc(', '.join(models) or 'no models')}</title><style>{CSS}</style></head><body><main>")
    out = [head, f"<h1>modelwatch report</h1><p class=\"muted\">store {esc(store.location)} (database "
           f"{esc(store.database)}) · range {esc(rng)} UTC · generated {now:%Y-%m-%d %H:%M} UTC</p>"]
    if not data:
        out.append("<p>No models in this store yet. Send predictions with the SDK to <code>modelwatch serve</code>, "
                   "or run <code>modelwatch demo</code>.</p>")
    else:
        out.append("<table><tr><th>model</th><th>latest verdict</th><th>drifted features</th><th>alerts</th></tr>")
        for i, d in enumerate(data):
            s = next((r for r in d.latest() if r.method == "drift_share"), None)
            verdict = _sev(s.severity) if s is not None and s.status != INSUFFICIENT else '<span class="muted">n/a</span>'
            gap = _pipeline(d.latest())
            if gap is not None and gap.drifted:
                verdict += f' <span class="flag">pipeline gap {_pct(gap.statistic)}</span>'
            drifted = ", ".join(s.details.get("drifted_features", [])) if s is not None else ""
            out.append(f'<tr><td><a href="#m{i}">{esc(d.model)}</a></td><td>{verdict}</td><td>{esc(drifted) or "–"}</td>'
                       f'<td class="n">{len({a.alert_id.split(":")[0] for a in d.alerts})}</td></tr>')
        out.append('</table><p><a href="#cost">monitoring cost</a></p>')
    for i, d in enumerate(data):
        out.append(_model_section(d, i, trace_url))
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
    from modelwatch_analyzer.cli.analysis_commands import parse_time
    from modelwatch_analyzer.errors import ConfigError

    now = datetime.now(timezone.utc)
    if args.last and args.since:
        raise ConfigError("give --last or --since, not both")
    since = parse_time(args.last or args.since, now, "--last" if args.last else "--since") if (args.last or args.since) else None
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
            print(f"modelwatch: the store {escape(store.location)} (database {store.database}) holds no modelwatch tables; "
                  "nothing to report. Try `modelwatch demo`.", file=sys.stderr)
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

