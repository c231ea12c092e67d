"""The UI's pages, rendered on the server from the report's own data (:mod:`modelwatch_analyzer.report.data`).

* ``/``: every model's health: volume, sampling, last analysis, open alerts, worst drift, performance.
* ``/model/<model>``: one model: drift over time per feature with its threshold, the latest (or a
  chosen, ``?window=<end>``) window's verdicts, data quality, performance estimated and realized,
  the prediction distribution, segments, alerts.
* ``/model/<model>/feature/<feature>``: the per-window statistic with its threshold and verdict (and
  why: "above the threshold, but the test is not significant"), reference vs current distribution.
* ``/model/<model>/alert/<alert id>``: what fired, the numbers, the sampled predictions behind it with
  their trace ids, each linking out to the trace backend through the configured URL template.

Every string from the store is escaped (:func:`html.escape`); URLs carry names percent-encoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import quote

from modelwatch_analyzer.analysis.results import INSUFFICIENT, Result, severity_rank
from modelwatch_analyzer.report import charts
from modelwatch_analyzer.report import data as report_data
from modelwatch_analyzer.report.charts import fmt
from modelwatch_analyzer.report.data import TRACE_ID, ModelData
from modelwatch_analyzer.report.sections import pct, sev
from modelwatch_analyzer.store.client import Store


class NotFound(Exception):
    """The page names a model, feature, window or alert the store does not have."""


def _e(x: Any) -> str:
    return escape(str(x), quote=True)


def _q(x: str) -> str:
    return quote(x, safe="")


def _page(title: str, body: str, crumbs: Sequence[tuple[str, str]] = ()) -> str:
    nav = " / ".join(f'<a href="{href}">{_e(name)}</a>' for name, href in [("models", "/"), *crumbs])
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)} · modelwatch</title><link rel=\"icon\" href=\"data:,\">"
            "<link rel=\"stylesheet\" href=\"/static/vendor/uPlot.min.css\"><link rel=\"stylesheet\" href=\"/static/ui.css\">"
            "<script src=\"/static/vendor/uPlot.iife.min.js\" defer></script><script src=\"/static/charts.js\" defer></script>"
            f"</head><body><header><nav class=\"crumbs\">{nav}</nav><h1>{_e(title)}</h1></header><main>{body}</main>"
            "</body></html>")


def _t(t: datetime | None) -> str:
    return f"{t:%Y-%m-%d %H:%M}" if t else "–"


def model_url(model: str) -> str:
    return f"/model/{_q(model)}"


def feature_url(model: str, feature: str) -> str:
    return f"/model/{_q(model)}/feature/{_q(feature)}"


def alert_url(model: str, alert_id: str) -> str:
    return f"/model/{_q(model)}/alert/{_q(alert_id)}"


def _scores(rows: Sequence[Result]) -> dict[str, Result]:
    return {r.feature: r for r in rows if r.kind == "drift" and r.details.get("score") and r.feature}


def _open_alerts(d: ModelData) -> list[Any]:
    return [a for a in d.alerts if not a.superseded_by]


def error_page(status: int, message: str) -> str:
    return _page({401: "token required", 404: "not found", 500: "error"}.get(status, "error"),
                 f"<p>{_e(message)}</p><p><a href=\"/\">all models</a></p>")


def unauthorised() -> str:
    return _page("token required", "<p>This UI needs the server's token: open it once as <code>/?token=&lt;token&gt;</code> "
                                   "(the address <code>modelwatch serve</code> printed), or send "
                                   "<code>Authorization: Bearer &lt;token&gt;</code>.</p>")


# -- overview -------------------------------------------------------------------------------------------------


def overview(store: Store) -> str:
    names = report_data.models_in(store)
    if not names:
        return _page("models", "<p class=\"muted\">No model has sent predictions yet: decorate your inference code "
                               "with <code>@modelwatch.monitor</code> and point it at this server.</p>")
    rows = []
    for name in names:
        d = report_data.gather(store, name)
        latest = d.latest()
        s = next((r for r in latest if r.method == "drift_share"), None)
        worst = max(_scores(latest).values(), key=lambda r: (r.drifted or False, severity_rank(r.severity),
                                                              r.statistic or 0), default=None)
        est = next((r for r in latest if r.kind == "estimated_performance" and r.method == "accuracy"), None)
        real = [r for r in d.results if r.kind == "performance" and r.method == "accuracy" and r.statistic is not None]
        stored, made = sum(v[2] for v in d.volume), sum(v[3] for v in d.volume)
        drift = ("–" if s is None else "insufficient data" if s.status == INSUFFICIENT else
                 f"{sev(s.severity)} {len(s.details.get('drifted_features', []))} of {s.details.get('features', 0)}")
        worst_cell = (f'<a href="{feature_url(name, worst.feature or "")}">{_e(worst.feature)}</a> '
                      f"{_e(worst.method)} {fmt(worst.statistic)}" if worst is not None and worst.drifted else "–")
        rows.append(f'<tr><td><a href="{model_url(name)}">{_e(name)}</a></td><td>{_e(", ".join(d.versions) or "–")}</td>'
                    f'<td class="n">{stored:,}</td><td class="n">{made:,.0f}</td>'
                    f'<td class="n">{pct(stored / made if made else None)}</td><td>{_t(d.windows()[-1][1]) if d.windows() else "–"}</td>'
                    f'<td class="n">{len({a.group for a in _open_alerts(d)})}</td><td>{drift}</td><td>{worst_cell}</td>'
                    f'<td class="n">{pct(est.statistic if est else None)}</td>'
                    f'<td class="n">{pct(real[-1].statistic if real else None)}</td></tr>')
    body = ("<table><tr><th>model</th><th>versions</th><th>stored spans</th><th>predictions made</th><th>kept</th>"
            "<th>last window (end, UTC)</th><th>alerts</th><th>drift (latest window)</th><th>worst feature</th>"
            "<th>accuracy, estimated</th><th>accuracy, realized</th></tr>" + "".join(rows) + "</table>"
            "<p class=\"muted\">Predictions made: the sum of the stored spans' sampling weights. Estimated accuracy: "
            "the latest window's, before labels; realized: the latest window with labels.</p>")
    return _page("models", body)


# -- one model ------------------------------------------------------------------------------------------------


def _window(d: ModelData, window: str | None) -> tuple[datetime, datetime] | None:
    windows = d.windows()
    if not windows:
        return None
    if window is None:
        return windows[-1]
    for w in windows:
        if w[1].isoformat() == window or f"{w[1]:%Y-%m-%dT%H:%M}" == window:
            return w
    raise NotFound(f"no analysed window ends at {window}")


def _of_baseline(d: ModelData, baseline: str | None) -> list[str]:
    """The baselines `d`'s results were computed against (newest use last); with `baseline`, only its results."""
    used = list(dict.fromkeys(r.baseline_id for r in sorted(d.results, key=lambda r: r.run_at or datetime.min)
                              if r.baseline_id))
    if baseline is not None:
        if baseline not in used:
            raise NotFound(f"no results against baseline {baseline!r}")
        d.results = [r for r in d.results if r.baseline_id == baseline]
    return used


def model(store: Store, name: str, window: str | None = None, baseline: str | None = None) -> str:
    if name not in report_data.models_in(store):
        raise NotFound(f"no model {name!r}")
    d = report_data.gather(store, name)
    used = _of_baseline(d, baseline)
    w = _window(d, window)
    rows = [r for r in d.results if w and (r.window_start, r.window_end) == w]
    body = [_model_summary(d, rows, w)]
    body.append(_drift_over_time(d))
    body.append(_verdicts(name, rows))
    body.append(_quality(rows))
    body.append(_performance(d))
    body.append(_prediction_distribution(rows))
    body.append(_segments(d, w))
    body.append(_alerts(name, d))
    body.append(_windows(name, d, w))
    if len(used) > 1:
        links = [f'<a href="{model_url(name)}?baseline={_q(b)}"' + (' class="current"' if b == baseline else "")
                 + f"><code>{_e(b)}</code></a>" for b in reversed(used)]
        body.append("<h2>Baselines</h2><p class=\"windows\">Results against: " + " ".join(links)
                    + f' <a href="{model_url(name)}">(all)</a></p>')
    return _page(name, "".join(body), [(name, model_url(name))])


def _model_summary(d: ModelData, rows: Sequence[Result], w: tuple[datetime, datetime] | None) -> str:
    s = next((r for r in rows if r.method == "drift_share"), None)
    stored, made = sum(v[2] for v in d.volume), sum(v[3] for v in d.volume)
    out = ["<table class=\"summary\">",
           f"<tr><th>window</th><td>{_t(w[0]) if w else '–'} → {_t(w[1]) if w else '–'} UTC</td></tr>"]
    if d.baseline is not None:
        b = d.baseline
        out.append(f"<tr><th>baseline</th><td><code>{_e(b.id)}</code> version {_e(b.version)}, from {_e(b.source)}, "
                   f"{b.rows:,.0f} rows</td></tr>")
    out.append(f"<tr><th>predictions</th><td>{stored:,} stored as spans, standing for ≈ {made:,.0f} made</td></tr>")
    if s is not None and s.status != INSUFFICIENT:
        drifted = s.details.get("drifted_features", [])
        out.append(f"<tr><th>drift</th><td>{sev(s.severity)} {len(drifted)} of {s.details.get('features', 0)} features"
                   + (f": {_e(', '.join(drifted))}" if drifted else "") + "</td></tr>")
    elif s is not None:
        out.append(f"<tr><th>drift</th><td>insufficient data: {_e(s.details.get('reason', ''))}</td></tr>")
    return "".join(out) + "</table>"


def _drift_over_time(d: ModelData) -> str:
    windows = d.windows()
    if not windows:
        return "<p class=\"muted\">No analysis yet.</p>"
    ends = [w[1] for w in windows]
    per: dict[str, dict[datetime, float | None]] = {}
    threshold: float | None = None
    for r in d.results:
        if r.kind == "drift" and r.details.get("score") and r.feature and r.window_end and not r.feature.startswith("__"):
            per.setdefault(r.feature, {})[r.window_end] = r.statistic
            threshold = r.threshold if r.threshold is not None else threshold
    method = next((r.method for r in d.results if r.kind == "drift" and r.details.get("score") and r.feature
                   and not r.feature.startswith("__")), "psi")
    series = {f: [per[f].get(t) for t in ends] for f in sorted(per)}
    return charts.lines(ends, series, f"Drift over time: {method} per feature", threshold=threshold, y_label=method,
                        note="One point per analysed window, at its end (UTC). Hover for values; drag to zoom, "
                             "double-click to reset.")


def _verdicts(name: str, rows: Sequence[Result]) -> str:
    scores = sorted((r for r in _scores(rows).values() if not (r.feature or "").startswith("__")),
                    key=lambda r: (not r.drifted, -severity_rank(r.severity), -(r.statistic or 0)))
    if not scores:
        return ""
    together = [r for r in rows if r.feature == "__multivariate__" and r.kind == "drift" and r.status != INSUFFICIENT]
    multivariate = "".join(f"<li>{_e(r.method)} {fmt(r.statistic)} (drifted from {fmt(r.threshold)}): "
                           f"{sev(r.severity) if r.drifted else 'no drift'}</li>" for r in together)
    tests = {r.feature: r for r in rows if r.kind == "drift" and r.method in ("ks", "chi_square")}
    out = ["<h2>Features</h2><table><tr><th>feature</th><th>score</th><th>method</th><th>threshold</th><th>severity</th>"
           "<th>test p (adjusted)</th><th>verdict</th></tr>"]
    for r in scores:
        t = tests.get(r.feature)
        verdict = ("drifted" if r.drifted else "insufficient data" if r.status == INSUFFICIENT else
                   "above the threshold, but the test is not significant" if r.details.get("gated") else "stable")
        adj = t.details.get("adjusted_pvalue") if t is not None else None
        out.append(f'<tr><td><a href="{feature_url(name, r.feature or "")}">{_e(r.feature)}</a></td>'
                   f'<td class="n">{fmt(r.statistic)}</td><td>{_e(r.method)}</td><td class="n">{fmt(r.threshold)}</td>'
                   f'<td>{sev(r.severity)}</td><td class="n">{fmt(adj)}</td><td>{_e(verdict)}</td></tr>')
    out.append("</table>")
    if multivariate:
        out.append(f"<h3>How the features move together</h3><ul>{multivariate}</ul>")
    return "".join(out)


def _quality(rows: Sequence[Result]) -> str:
    flagged = [r for r in rows if r.kind == "data_quality" and r.drifted]
    items = "".join(f"<li>{_e(r.feature or '(model)')}: {_e(r.method)} {pct(r.statistic)} "
                    f"(ceiling {pct(r.threshold)})</li>" for r in flagged)
    return "<h2>Data quality</h2>" + (f"<ul>{items}</ul>" if flagged else "<p class=\"muted\">Nothing above its ceiling.</p>")


def _performance(d: ModelData) -> str:
    ends = [w[1] for w in d.windows()]
    real = {r.window_end: r.statistic for r in d.results if r.kind == "performance" and r.method == "accuracy"}
    est = {r.window_end: r for r in d.results if r.kind == "estimated_performance" and r.method == "accuracy"}
    if not real and not est:
        return ""
    series = {"realized (labels)": [real.get(t) for t in ends],
              "estimated": [est[t].statistic if t in est else None for t in ends]}
    if est:
        series["estimate, lower"] = [est[t].details.get("lower") if t in est else None for t in ends]
        series["estimate, upper"] = [est[t].details.get("upper") if t in est else None for t in ends]
    return "<h2>Performance</h2>" + charts.lines(ends, series, "Accuracy: estimated before labels, and realized",
                                                 percent=True, y_label="accuracy",
                                                 note="Realized once the labels arrive; the estimate's interval is "
                                                      "its confidence band.")


def _prediction_distribution(rows: Sequence[Result]) -> str:
    for feature in ("prediction.score", "prediction.value"):
        r = next((r for r in rows if r.feature == feature and r.method == "psi" and r.status != INSUFFICIENT), None)
        if r is not None:
            return "<h2>Predictions</h2>" + _distribution(feature, r)
    return ""


def _distribution(feature: str, r: Result) -> str:
    det = r.details
    if "bin_edges" in det and "reference" in det:
        edges = det["bin_edges"]
        return charts.bars(charts.bin_labels(edges), det["reference"], det["current"],
                           f"{feature}: reference vs current", ("reference", "current"),
                           note="Shares per reference decile bin, sampling weights applied.")
    shifts = det.get("largest_shifts") or {}
    if shifts:
        cats = list(shifts)
        return charts.bars(cats, [shifts[c]["reference"] for c in cats], [shifts[c]["current"] for c in cats],
                           f"{feature}: reference vs current", ("reference", "current"),
                           note="The categories whose share moved most, sampling weights applied.")
    return ""


def _segments(d: ModelData, w: tuple[datetime, datetime] | None) -> str:
    s = next((r for r in d.segments if w and r.window_end == w[1]), None)
    if s is None:
        return ""
    lines = s.details.get("concentrated", [])
    left = s.details.get("insufficient", [])
    return ("<h2>Segments</h2>" + (f"<ul>{''.join(f'<li>{_e(x)}</li>' for x in lines)}</ul>" if lines else
                                   "<p class=\"muted\">No segment drifted.</p>")
            + (f"<p class=\"muted\">Not analysed: {_e(', '.join(left))}</p>" if left else ""))


def _alerts(name: str, d: ModelData) -> str:
    if not d.alerts:
        return "<h2>Alerts</h2><p class=\"muted\">No alerts.</p>"
    out = ["<h2>Alerts</h2><table><tr><th>fired (UTC)</th><th>severity</th><th>rule</th><th>message</th><th>route</th>"
           "<th>delivery</th></tr>"]
    for a in sorted(d.alerts, key=lambda a: a.fired_at, reverse=True):
        state = "delivered" if a.delivered else f"failed ×{a.attempts}" if a.last_error else "no route" if not a.route else "pending"
        out.append(f'<tr><td>{_t(a.fired_at)}</td><td>{sev(a.severity)}</td><td>{_e(a.rule)}</td>'
                   f'<td><a href="{alert_url(name, a.alert_id)}">{_e(a.message)}</a></td><td>{_e(a.route or "–")}</td>'
                   f"<td>{_e(state)}</td></tr>")
    return "".join(out) + "</table>"


def _windows(name: str, d: ModelData, w: tuple[datetime, datetime] | None) -> str:
    links = [f'<a href="{model_url(name)}?window={_q(end.isoformat())}"'
             + (' class="current"' if w and end == w[1] else "") + f">{_t(end)}</a>" for _s, end in d.windows()[-48:]]
    return "<h2>Windows</h2><p class=\"windows\">" + " ".join(reversed(links)) + "</p>" if links else ""


# -- one feature ----------------------------------------------------------------------------------------------


def feature(store: Store, name: str, feature_name: str, window: str | None = None) -> str:
    if name not in report_data.models_in(store):
        raise NotFound(f"no model {name!r}")
    d = report_data.gather(store, name)
    hist = sorted((r for r in d.results if r.feature == feature_name and r.kind == "drift" and r.details.get("score")),
                  key=lambda r: r.window_end or datetime.min)
    if not hist:
        raise NotFound(f"no drift results for feature {feature_name!r} of model {name!r}")
    w = _window(d, window)
    cur = next((r for r in hist if w and r.window_end == w[1]), hist[-1])
    ends = [r.window_end for r in hist if r.window_end]
    body = [charts.lines(ends, {cur.method: [r.statistic for r in hist]}, f"{feature_name}: {cur.method} per window",
                         threshold=cur.threshold, y_label=cur.method, note="At each window's end (UTC).")]
    tests = [r for r in d.results if r.feature == feature_name and r.window_end == cur.window_end and r.kind == "drift"]
    test = next((r for r in tests if r.method in ("ks", "chi_square")), None)
    why = ("drifted: the score reached its threshold and the test is significant" if cur.drifted else
           "not drifted: " + (cur.details.get("gated") or "insufficient data" if cur.status == INSUFFICIENT or
                              cur.details.get("gated") else "the score is below its threshold"))
    body.append(f"<h2>Window ending {_t(cur.window_end)}</h2><table class=\"summary\">"
                f"<tr><th>verdict</th><td>{sev(cur.severity)} {_e(why)}</td></tr>"
                f"<tr><th>{_e(cur.method)}</th><td>{fmt(cur.statistic)} (threshold {fmt(cur.threshold)})</td></tr>"
                + (f"<tr><th>{_e(test.method)}</th><td>statistic {fmt(test.statistic)}, p {fmt(test.pvalue)}, "
                   f"adjusted {fmt(test.details.get('adjusted_pvalue'))}</td></tr>" if test is not None else "")
                + "".join(f"<tr><th>{_e(r.method)}</th><td>{fmt(r.statistic)}</td></tr>" for r in tests
                          if r is not cur and r is not test and r.statistic is not None)
                + f"<tr><th>observations</th><td>reference {cur.n_reference:,.0f}, current {cur.n_current:,.0f} "
                  "(weighted)</td></tr></table>")
    dist = next((r for r in tests if r.method == "psi"), None)
    if dist is not None:
        body.append(_distribution(feature_name, dist))
    ids = [t for t in cur.details.get("trace_ids", []) if isinstance(t, str) and TRACE_ID.match(t)]
    if ids:
        body.append("<h2>Predictions behind the drift</h2>" + _predictions(store, name, ids, None))
    return _page(f"{name} · {feature_name}", "".join(body), [(name, model_url(name)),
                                                             (feature_name, feature_url(name, feature_name))])


# -- one alert ------------------------------------------------------------------------------------------------


def alert(store: Store, name: str, alert_id: str, trace_url: str | None) -> str:
    if name not in report_data.models_in(store):
        raise NotFound(f"no model {name!r}")
    d = report_data.gather(store, name)
    a = next((a for a in d.alerts if a.alert_id == alert_id), None)
    if a is None:
        raise NotFound(f"no alert {alert_id!r} of model {name!r}")
    p = a.payload if isinstance(a.payload, dict) else {}
    results = [r for r in p.get("results", []) if isinstance(r, dict)]
    body = ["<table class=\"summary\">",
            f"<tr><th>fired</th><td>{_t(a.fired_at)} UTC</td></tr><tr><th>severity</th><td>{sev(a.severity)}</td></tr>",
            f"<tr><th>rule</th><td>{_e(a.rule)}</td></tr><tr><th>message</th><td>{_e(a.message)}</td></tr>",
            f"<tr><th>route</th><td>{_e(a.route or '–')}: "
            + ("delivered" if a.delivered else _e(a.last_error or "not delivered yet")) + "</td></tr>"]
    if a.feature:
        body.append(f'<tr><th>feature</th><td><a href="{feature_url(name, a.feature.split(" in ")[0])}">'
                    f"{_e(a.feature)}</a></td></tr>")
    body.append("</table><h2>The numbers</h2><table><tr><th>feature</th><th>segment</th><th>method</th>"
                "<th>statistic</th><th>threshold</th><th>p-value</th><th>window</th></tr>")
    for r in results:
        body.append(f"<tr><td>{_e(r.get('feature') or '(model)')}</td><td>{_e(r.get('segment') or '–')}</td>"
                    f"<td>{_e(r.get('method'))}</td><td class=\"n\">{fmt(_num(r.get('statistic')))}</td>"
                    f"<td class=\"n\">{fmt(_num(r.get('threshold')))}</td><td class=\"n\">{fmt(_num(r.get('pvalue')))}</td>"
                    f"<td>{_e(r.get('window_start') or '')} → {_e(r.get('window_end') or '')}</td></tr>")
    body.append("</table>")
    ids = [t for t in p.get("trace_ids", []) if isinstance(t, str) and TRACE_ID.match(t)]
    body.append("<h2>Sampled predictions behind it</h2>" + (_predictions(store, name, ids, trace_url) if ids else
                                                            "<p class=\"muted\">This alert names no predictions.</p>"))
    return _page(f"alert: {a.rule}", "".join(body), [(name, model_url(name)), ("alert", alert_url(name, alert_id))])


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _predictions(store: Store, name: str, ids: list[str], trace_url: str | None) -> str:
    found = report_data.predictions(store, name, ids)
    out = ["<table class=\"predictions\"><tr><th>trace id</th><th>time (UTC)</th><th>reason</th><th>weight</th>"
           "<th>prediction</th><th>score</th><th>features</th></tr>"]
    for tid in ids:
        p = found.get(tid)
        link = (f' <a class="trace" href="{_e(trace_url.replace("{trace_id}", tid))}" rel="noreferrer">open trace ↗</a>'
                if trace_url else "")
        if p is None:
            out.append(f'<tr><td class="mono">{tid}{link}</td><td colspan="6" class="muted">no longer stored</td></tr>')
            continue
        feats = ", ".join(f"{k}={charts.number(v) if isinstance(v, float) else v}" for k, v in sorted(p["features"].items()))
        out.append(f'<tr><td class="mono">{tid}{link}</td><td>{p["time"]:%Y-%m-%d %H:%M:%S}</td><td>{_e(p["reason"])}</td>'
                   f'<td class="n">{p["weight"]:g}</td><td>{_e(p["prediction"])}</td><td class="n">{fmt(p["score"])}</td>'
                   f'<td class="mono">{_e(feats)}</td></tr>')
    return "".join(out) + "</table>"
