"""One model's section of the report: summary, features, data quality, performance, volume, alerts, evidence.

Every string from the data passes through :func:`.charts.esc`; element ids
are generated (``m<model index>-f<feature index>``, ``...-t-<trace id>``
for a trace id that is 32 hex digits), never taken from the data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from modelwatch_analyzer.analysis import completeness
from modelwatch_analyzer.analysis.results import INSUFFICIENT, Result, severity_rank
from modelwatch_analyzer.report.charts import SEV_COLOR, bars, bin_labels, esc, fmt, lines, number, stacked
from modelwatch_analyzer.report.data import TRACE_ID, ModelData

OTHER = "__other__"  # the analyzer's catch-all category bucket (analyze.OTHER)


def model_section(d: ModelData, idx: int, trace_url: str | None) -> str:
    """One model's section of the page (anchors ``m<idx>-...``)."""
    p = f"m{idx}"
    latest = d.latest()
    features, names = _features(d, p, latest, trace_url)
    return "".join([f'<section class="model" id="{p}"><h2>{esc(d.model)}</h2>', _summary(d, p, latest), features,
                    _quality(d, p, latest), _segments(d, p), _performance(d, p), _volume(d, p),
                    _alerts(d, p, names, trace_url),
                    _evidence(d, p, trace_url), "</section>"])


def _summary(d: ModelData, p: str, latest: Sequence[Result]) -> str:
    """The summary table and the section's navigation."""
    out: list[str] = []
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
    gap = pipeline(latest)
    if gap is not None and gap.drifted:
        out.append(f'<tr><th>pipeline</th><td><span class="flag">pipeline gap</span> in the latest window: '
                   f"{esc(completeness.describe(gap))}. Stored volume and drift cover only what arrived: not low "
                   f'traffic, and a possibly biased sample (<a href="#{p}-volume">kept vs stored</a>).</td></tr>')
    elif gap is not None:
        out.append(f"<tr><th>pipeline</th><td>complete in the latest window: {gap.details.get('kept', 0):,.0f} kept by "
                   f"the SDK, {gap.details.get('stored', 0):,.0f} stored</td></tr>")
    if s is not None and s.status != INSUFFICIENT:
        drifted = s.details.get("drifted_features", [])
        out.append(f"<tr><th>latest window</th><td>{sev(s.severity)} {len(drifted)} of {s.details.get('features', 0)} "
                   f"features drifted" + (f": {esc(', '.join(drifted))}" if drifted else "") + "</td></tr>")
    elif s is not None:
        out.append(f"<tr><th>latest window</th><td>insufficient data: {esc(s.details.get('reason', ''))}</td></tr>")
    acc = [(r.window_end, r.statistic) for r in d.results
           if r.kind == "performance" and r.method == "accuracy" and r.statistic is not None]
    if acc:
        out.append(f"<tr><th>accuracy</th><td>{acc[0][1]:.1%} in the first labelled window, {acc[-1][1]:.1%} in the "
                   f"last ({(acc[-1][1] - acc[0][1]) * 100:+.1f} points)</td></tr>")
    out.append(f"<tr><th>alerts</th><td>{len({a.alert_id.split(':')[0] for a in d.alerts})} fired in range"
               + (f' (<a href="#{p}-alerts">list</a>)' if d.alerts else "") + "</td></tr></table>")
    out.append(f'<nav><a href="#{p}-features">features</a><a href="#{p}-quality">data quality</a>'
               + (f'<a href="#{p}-segments">segments</a>' if d.segments else "")
               + f'<a href="#{p}-performance">performance</a><a href="#{p}-volume">volume and sampling</a>'
               f'<a href="#{p}-alerts">alerts</a><a href="#{p}-evidence">sampled predictions</a></nav>')
    return "".join(out)


def _features(d: ModelData, p: str, latest: Sequence[Result], trace_url: str | None) -> tuple[str, list[str]]:
    """Every feature's verdict, then per feature its distribution and its drift score over time; and the features'
    order (worst first), by which the alerts link to them."""
    scores = _score_rows(latest)
    history: dict[str, list[Result]] = {}
    for r in d.results:
        if r.kind == "drift" and r.details.get("score") and r.feature:
            history.setdefault(r.feature, []).append(r)
    names = sorted(set(history) | set(scores), key=lambda f: (
        -severity_rank(scores[f].severity) if f in scores else 0, -(scores[f].statistic or 0) if f in scores else 0, f))
    out = [f'<h3 id="{p}-features">Features: reference vs current, drift over time</h3>']
    if not names:
        out.append('<p class="muted">No analysis results in this range: run <code>modelwatch analyze</code>.</p>')
    out.append("<table><tr><th>feature</th><th>latest verdict</th><th>score</th><th>threshold</th>"
               "<th>windows drifted</th></tr>")
    for i, f in enumerate(names):
        r = scores.get(f)
        hist = history.get(f, [])
        windows = {h.window_end for h in hist}  # a window counts once, however many verdict methods it has
        n_drift = len({h.window_end for h in hist if h.drifted})
        verdict = sev(r.severity) if r is not None and r.status != INSUFFICIENT else '<span class="muted">n/a</span>'
        out.append(f'<tr><td><a href="#{p}-f{i}">{esc(f)}</a></td><td>{verdict}</td>'
                   f'<td class="n">{esc(r.method) + " " + fmt(r.statistic) if r else "–"}</td>'
                   f'<td class="n">{fmt(r.threshold) if r else "–"}</td>'
                   f'<td class="n">{n_drift} / {len(windows)}</td></tr>')
    out.append("</table>")
    for i, f in enumerate(names):
        hist = sorted(history.get(f, []), key=lambda h: h.window_end)
        out.append(_feature(f, f"{p}-f{i}", scores.get(f), hist, p, latest, trace_url))
    return "".join(out), names


def _feature(f: str, anchor: str, r: Result | None, hist: Sequence[Result], p: str, latest: Sequence[Result],
             trace_url: str | None) -> str:
    """One feature: its latest verdict, distribution, score over time and the sampled predictions behind it."""
    out = [f'<div class="feature" id="{anchor}"><h3>{esc(f)} ']
    if r is not None and r.status != INSUFFICIENT:
        out.append(f'{sev(r.severity)} <span class="muted">{esc(r.method)} {fmt(r.statistic)} '
                   f'(threshold {fmt(r.threshold)})</span>')
    elif r is not None:
        out.append(f'<span class="muted">insufficient data: {esc(r.details.get("reason", ""))}</span>')
    out.append("</h3><div class=\"plots\">")
    if r is not None:
        dist = _distribution(f, r, latest)
        if dist:
            out.append(dist)
    if hist:
        thr = next((h.threshold for h in reversed(hist) if h.threshold is not None), None)
        out.append(lines([h.window_end for h in hist], {hist[-1].method: [h.statistic for h in hist]},
                         f"{f}: {hist[-1].method} per window", threshold=thr, y_label=hist[-1].method))
    out.append("</div>")
    ids = [t for t in (r.details.get("trace_ids", []) if r is not None else []) if isinstance(t, str)]
    if ids:
        where = evidence_where(r.details) if r is not None else ""
        out.append(f"<p>Sampled predictions behind the drift ({esc(feature_label(f, where))}): "
                   + ", ".join(_trace_link(t, p, trace_url) for t in ids) + "</p>")
    out.append("</div>")
    return "".join(out)


def _quality(d: ModelData, p: str, latest: Sequence[Result]) -> str:
    """Data-quality checks of the latest window, with how many windows each was flagged in."""
    out: list[str] = []
    windows = d.windows()
    out.append(f'<h3 id="{p}-quality">Data quality (latest window)</h3>')
    dq = [r for r in latest if r.kind == "data_quality"]
    if dq:
        out.append("<table><tr><th>feature</th><th>check</th><th>rate</th><th>ceiling</th><th></th>"
                   "<th>windows flagged</th></tr>")
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
                       f'<td class="n">{pct(r.statistic)}</td><td class="n">{pct(r.threshold)}</td>'
                       f"<td>{'<span class=flag>flagged</span>' if r.drifted else 'ok'}{ex}</td>"
                       f'<td class="n">{flagged_hist.get((r.feature or "", r.method), 0)} / {len(windows)}</td></tr>')
        out.append("</table><p class=\"muted\">Checks with a zero rate in every window are not listed.</p>")
    else:
        out.append('<p class="muted">No data-quality results.</p>')
    return "".join(out)


def _segments(d: ModelData, p: str) -> str:
    """Where drift concentrated among the configured segments, window by window (newest first)."""
    if not d.segments:
        return ""
    out = [f'<h3 id="{p}-segments">Segments</h3><table><tr><th>window end (UTC)</th><th>segments</th>'
           "<th>with drift</th><th>where drift concentrates</th><th>not analysed</th></tr>"]
    for r in sorted(d.segments, key=lambda r: r.window_end or datetime.min.replace(tzinfo=timezone.utc), reverse=True)[:12]:
        det = r.details
        analysed = sum(len(v) for v in det.get("segments", {}).values())
        where = "<br>".join(esc(x) for x in det.get("concentrated", [])) or ("–" if r.status != INSUFFICIENT else
                                                                              esc(det.get("reason", "")))
        left = det.get("insufficient", [])
        out.append(f"<tr><td>{r.window_end:%Y-%m-%d %H:%M}</td><td class=\"n\">{analysed}</td>"
                   f"<td>{sev(r.severity) if r.drifted else ''} {pct(r.statistic)}</td><td>{where}</td>"
                   f"<td>{esc(', '.join(left[:5]) + (' …' if len(left) > 5 else '')) or '–'}</td></tr>")
    out.append("</table><p class=\"muted\">Each segment against the same segment of the reference; one "
               "Benjamini-Hochberg correction across features × segments.</p>")
    return "".join(out)


def _performance(d: ModelData, p: str) -> str:
    """Performance against late labels, and label coverage, per window."""
    out: list[str] = []
    ends = [w[1] for w in d.windows()]
    out.append(f'<h3 id="{p}-performance">Performance against labels, over time</h3>')
    perf_methods = [m for m in ("accuracy", "precision", "recall", "f1", "roc_auc", "mae", "rmse")
                    if any(r.method == m and r.statistic is not None for r in d.results)]
    by_end: dict[tuple[str, datetime], float | None] = {(r.method, r.window_end): r.statistic for r in d.results
                                                         if r.kind == "performance"}
    if perf_methods:
        shares = not any(m in ("mae", "rmse") for m in perf_methods)
        per_method = {m: [by_end.get((m, e)) for e in ends] for m in perf_methods}
        out.append('<div class="plots">' + lines(ends, per_method, "performance per window", percent=shares))
        out.append(lines(ends, {"label coverage": [by_end.get(("label_coverage", e)) for e in ends]},
                         "label coverage per window: the share of predictions with a label", percent=True,
                         y_label="labelled") + "</div>")
        insufficient = [r for r in d.results if r.kind == "performance" and r.method == "performance"
                        and r.status == INSUFFICIENT]
        if insufficient:
            reasons = "; ".join(f"{r.window_end:%m-%d %H:%M}: {r.details.get('reason', '')}" for r in insufficient[-3:])
            out.append(f'<p class="muted">{len(insufficient)} window(s) without enough labels yet '
                       "(labels arrive late): " + esc(reasons)
                       + "</p>")
    else:
        out.append('<p class="muted">No labels joined to predictions yet (<code>modelwatch.record_label</code>).</p>')
    out.append(_estimated(d, ends))
    return "".join(out)


ESTIMATED_HEADLINES = ("accuracy", "roc_auc", "mae", "rmse")
ESTIMATE_COLORS = ("#1971c2", "#a5d8ff", "#a5d8ff", "#d9480f")
"""Estimate, its interval (light, either side), realized."""


def _estimated(d: ModelData, ends: Sequence[datetime]) -> str:
    """Estimated (label-free) vs realized performance per window, with the interval and the reference band."""
    est = [r for r in d.results if r.kind == "estimated_performance" and r.status != INSUFFICIENT]
    if not est:
        return ""
    out = ["<h4>Estimated before the labels, and realized once they arrived</h4>",
           '<p class="muted">Estimated from the calibrated scores (classifiers) or the loss model (regressors), '
           "weighted by the sampling; the lines either side are its 95% interval, the dashed line the edge of the "
           "reference band (the reference's own chunk-to-chunk variation). Estimation cannot see concept shift: "
           "the realized line can.</p>"]
    by = {(r.method, r.window_end): r for r in est}
    charts = []
    for m in ESTIMATED_HEADLINES:
        rows = [by.get((m, e)) for e in ends]
        if not any(rows):
            continue
        series = {f"estimated {m}": [r.statistic if r else None for r in rows],
                  "interval low": [r.details.get("lower") if r else None for r in rows],
                  "interval high": [r.details.get("upper") if r else None for r in rows],
                  f"realized {m}": [r.details.get("realized") if r else None for r in rows]}
        edge = next((r.threshold for r in reversed(rows) if r is not None and r.threshold is not None), None)
        charts.append(lines(ends, series, f"{m}: estimated vs realized", threshold=edge,
                            percent=m not in ("mae", "rmse"), colors=ESTIMATE_COLORS, y_label=m))
    if charts:
        out.append('<div class="plots">' + "".join(charts) + "</div>")
    last = max(r.window_end for r in est if r.window_end is not None)
    out.append('<table><tr><th>latest window</th><th>estimate</th><th>95% interval</th><th>reference band</th>'
               "<th>realized</th><th>error</th><th>labels</th></tr>")
    for r in (r for r in est if r.window_end == last):
        dd = r.details
        flag = f" {sev('warning')} past the band" if r.drifted else ""
        out.append(f"<tr><td>{esc(r.method)}{flag}</td><td>{fmt(r.statistic)}</td>"
                   f"<td>{fmt(dd.get('lower'))} – {fmt(dd.get('upper'))}</td>"
                   f"<td>{fmt(dd.get('reference_lower'))} – {fmt(dd.get('reference_upper'))}</td>"
                   f"<td>{fmt(dd.get('realized'))}</td><td>{fmt(dd.get('error'))}</td>"
                   f"<td>{pct(dd.get('label_coverage'))}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _volume(d: ModelData, p: str) -> str:
    """Stored predictions by sampling reason, made vs stored, and the pipeline gap (kept vs stored)."""
    out: list[str] = []
    stored = sum(v[2] for v in d.volume)
    out.append(f'<h3 id="{p}-volume">Prediction volume and sampling</h3>')
    gaps = sorted((r for r in d.results if r.method == completeness.METHOD and r.feature == completeness.FEATURE
                   and r.window_end is not None), key=lambda r: r.window_end)
    if any(r.drifted for r in gaps):
        n_flagged = sum(1 for r in gaps if r.drifted)
        worst_gap = max(gaps, key=lambda r: r.statistic or 0)
        out.append(f'<p><span class="flag">pipeline gap</span> in {n_flagged} of {len(gaps)} window(s): '
                   "the store holds fewer predictions than the SDK kept, so the stored volume below is short of the "
                   f"real one. Worst window ({worst_gap.window_end:%Y-%m-%d %H:%M}): "
                   f"{esc(completeness.describe(worst_gap))}.</p>")
    if gaps:
        gends = [r.window_end for r in gaps]
        out.append('<div class="plots">' + lines(gends, {
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
        out.append('<div class="plots">'
                   + stacked(times, layers, "stored predictions by sampling reason", d.bucket))
        kept = [sum(layer[i] for layer in layers.values()) for i in range(len(times))]
        out.append(lines(times, {"≈ made (sum of weights)": est, "stored": kept},
                         "predictions made vs stored", y_label="predictions") + "</div>")
        tot = {r: sum(layers[r]) for r in reasons}
        out.append("<table><tr><th>reason</th><th>stored</th><th>share of stored</th></tr>" + "".join(
            f'<tr><td>{esc(r or "(none)")}</td><td class="n">{tot[r]:,.0f}</td>'
            f'<td class="n">{tot[r] / max(stored, 1):.1%}</td></tr>'
            for r in reasons) + "</table>")
    else:
        out.append('<p class="muted">No stored predictions in this range.</p>')
    return "".join(out)


def _alerts(d: ModelData, p: str, names: Sequence[str], trace_url: str | None) -> str:
    """The alerts fired in the range, each linked to its feature and traces."""
    out: list[str] = []
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
            traces = a.payload.get("trace_ids", []) if isinstance(a.payload, dict) else []
            ids = [t for t in traces if isinstance(t, str)]
            out.append(f"<tr><td>{a.fired_at:%Y-%m-%d %H:%M}</td><td>{sev(a.severity)}</td><td>{esc(a.rule)}</td>"
                       f"<td>{msg}</td><td>{esc(a.route or '–')}</td><td>{state}</td>"
                       f"<td>{' '.join(_trace_link(t, p, trace_url) for t in ids[:3])}"
                       f"{' …' if len(ids) > 3 else ''}</td></tr>")
        out.append("</table>")
    else:
        out.append('<p class="muted">No alerts in this range.</p>')
    return "".join(out)


def _evidence(d: ModelData, p: str, trace_url: str | None) -> str:
    """The sampled predictions that drift results and alerts refer to."""
    out: list[str] = []
    out.append(f'<h3 id="{p}-evidence">Sampled predictions behind drift and alerts</h3>')
    if d.evidence:
        out.append("<table><tr><th>trace id</th><th>time (UTC)</th><th>reason</th><th>weight</th><th>prediction</th>"
                   "<th>score</th><th>features</th></tr>")
        earliest = datetime.min.replace(tzinfo=timezone.utc)
        for tid, e in sorted(d.evidence.items(), key=lambda kv: kv[1]["time"] or earliest):
            feats = ", ".join(f"{k}={fmt(v) if isinstance(v, float) else v}" for k, v in sorted(e["features"].items()))
            ext = f' <a class="muted" href="{esc(trace_url.replace("{trace_id}", tid))}">↗</a>' if trace_url else ""
            out.append(f'<tr id="{p}-t-{tid}"><td class="mono">{tid}{ext}</td><td>{e["time"]:%Y-%m-%d %H:%M:%S}</td>'
                       f'<td>{esc(e["reason"])}</td><td class="n">{e["weight"]:g}</td><td>{esc(e["prediction"])}</td>'
                       f'<td class="n">{fmt(e["score"])}</td><td class="mono">{esc(feats)}</td></tr>')
        out.append("</table>")
    else:
        out.append('<p class="muted">No sampled predictions referenced by drift results or alerts in this range.</p>')
    return "".join(out)


def sev(severity: str) -> str:
    s = severity if severity in SEV_COLOR else "none"
    return f'<span class="sev sev-{s}">{esc(severity)}</span>'


def _trace_link(tid: str, prefix: str, trace_url: str | None) -> str:
    if not TRACE_ID.match(tid):
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



def pipeline(rows: Iterable[Result]) -> Result | None:
    return next((r for r in rows if r.method == completeness.METHOD and r.feature == completeness.FEATURE), None)


def evidence_where(details: dict[str, Any]) -> str:
    """The bin or category the evidence trace ids come from, readable ('' when none)."""
    if details.get("evidence_category") is not None:
        cat = str(details["evidence_category"])
        return f"= {cat!r} (new)" if cat in (details.get("unseen") or []) else f"= {cat!r}"
    b = details.get("evidence_bin")
    if isinstance(b, list) and len(b) == 2:
        lo, hi = (x if isinstance(x, (int, float)) and math.isfinite(x) else None for x in b)
        if lo is None and hi is not None:  # the bin labels' one notation (charts.number)
            return f"≤ {number(hi)}"
        if hi is None and lo is not None:
            return f"> {number(lo)}"
        if lo is not None and hi is not None:
            return f"in ({number(lo)}, {number(hi)}]"
    return ""


def feature_label(feature: str, where: str) -> str:
    return f"{feature} {where}".strip()


def pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def _distribution(feature: str, r: Result, latest: Sequence[Result]) -> str | None:
    """The latest window against the reference: PSI bins (numeric) or the largest category shifts."""
    det = r.details
    if "bin_edges" not in det:
        det = next((x.details for x in latest if x.feature == feature and "bin_edges" in x.details), det)
    if "bin_edges" in det and "reference" in det and "current" in det:
        labels = bin_labels([float(e) for e in det["bin_edges"]])
        return bars(labels, det["reference"], det["current"], f"{feature}: share per reference-decile bin")
    shifts = det.get("largest_shifts")
    if not isinstance(shifts, dict):
        shifts = next((x.details.get("largest_shifts") for x in latest if x.feature == feature
                       and isinstance(x.details.get("largest_shifts"), dict)), None)
    if isinstance(shifts, dict) and shifts:
        cats = sorted(shifts, key=lambda k: -max(shifts[k].get("reference", 0), shifts[k].get("current", 0)))
        unseen = [str(u) for u in det.get("unseen") or []]
        labels = [("new: " + ", ".join(unseen[:2]) if unseen else "other") if c == OTHER else c for c in cats]
        return bars(labels, [float(shifts[c].get("reference", 0)) for c in cats],
                        [float(shifts[c].get("current", 0)) for c in cats], f"{feature}: share per category")
    return None
