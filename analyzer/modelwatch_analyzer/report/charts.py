"""The charts of the report and the web UI, and the number formats they share.

A chart is a ``<figure>``: its title, a ``<div class="chart">`` that
``static/charts.js`` fills with a `uPlot <https://github.com/leeoniya/uPlot>`_
plot in the browser, and its data as JSON in a ``<script
type="application/json">`` element (data, never executed: the pages'
Content-Security-Policy allows no other script than the two files, which the
UI serves and the report inlines with their hashes). Kinds: ``lines`` over
time (x: epoch seconds, shown in UTC at each window's end; hover shows every
series' value, drag zooms, double-click resets), ``bars`` over labelled bins
(reference vs current) and ``stacked`` bars over time.

Every string from the data passes through :func:`esc` (:func:`html.escape`),
and the JSON is written with ``<``, ``>`` and ``&`` escaped, so no name can
close the element it travels in. Element ids are generated, never taken from
the data.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from importlib import resources
from itertools import count
from typing import Any

SEV_COLOR = {"none": "#2b8a3e", "info": "#1971c2", "warning": "#e67700", "critical": "#c92a2a"}
REASON_COLOR = {"random": "#7f8c9a", "low_confidence": "#1971c2", "high_risk": "#c92a2a", "error": "#000000",
                "edge_case": "#862e9c"}
PALETTE = ("#1971c2", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#5c940d")
REF_COLOR, CUR_COLOR = "#7f8c9a", "#d9480f"

_ids = count()


def esc(x: Any) -> str:
    """Text from the data, safe in element content and quoted attributes."""
    return html.escape(str(x), quote=True)


def fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if x != 0 and abs(x) < 10 ** -digits:
        return f"{x:.1e}"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def number(x: float, integer: bool = False) -> str:
    """One notation for every number in a label: integers as integers, the rest to 4 significant digits, k / M
    from ten thousand."""
    if integer and float(x).is_integer():
        return f"{int(x):,}"
    a = abs(x)
    if a >= 1e6:
        return f"{x / 1e6:.4g}M"
    if a >= 1e4:
        return f"{x / 1e3:.4g}k"
    return f"{x:.4g}"


INTEGER_SLACK = 0.06
"""Bin edges that all sit this close above an integer are an integer-valued feature's (the analyzer's grid cuts
just above each value): its bins are labelled by the integers they hold."""


def bin_labels(edges: Sequence[float]) -> list[str]:
    """Labels of the bins between `edges` and the two open ends, in :func:`number`'s one notation; an
    integer-valued feature's bins by the integers they hold (``≤ 2``, ``3``, ``4–6``, ``≥ 7``)."""
    if not edges:
        return ["all"]
    floors = [math.floor(float(v) + 1e-9) for v in edges]
    if len(edges) >= 2 and all(0 <= float(v) - f <= INTEGER_SLACK for v, f in zip(edges, floors)):
        inner = [str(b) if b == a + 1 else f"{a + 1:,}–{b:,}" for a, b in zip(floors[:-1], floors[1:])]
        return [f"≤ {floors[0]:,}"] + inner + [f"≥ {floors[-1] + 1:,}"]
    e = [number(float(v)) for v in edges]
    return [f"≤ {e[0]}"] + [f"{a} – {b}" for a, b in zip(e[:-1], e[1:])] + [f"> {e[-1]}"]


def _finite(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def _figure(title: str, spec: dict[str, Any], note: str = "") -> str:
    cid = f"chart-{next(_ids)}"
    data = json.dumps(spec, allow_nan=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    caption = f'<figcaption class="muted">{esc(note)}</figcaption>' if note else ""
    return (f'<figure class="chart-box"><h4>{esc(title)}</h4><div class="chart" data-spec="{cid}"></div>'
            f'<script type="application/json" id="{cid}">{data}</script>{caption}</figure>')


def lines(times: Sequence[datetime], series: dict[str, Sequence[float | None]], title: str,
          threshold: float | None = None, percent: bool = False, colors: Sequence[str] = PALETTE,
          y_label: str = "", note: str = "") -> str:
    """Values over time (one point per window, at its end), a line per series, an optional dashed threshold."""
    x = [t.timestamp() for t in times]
    out = [{"label": name, "values": [_finite(v) for v in values], "color": colors[k % len(colors)]}
           for k, (name, values) in enumerate(series.items())]
    if threshold is not None and math.isfinite(threshold):
        out.append({"label": f"threshold {threshold:g}", "values": [threshold] * len(x), "dash": True,
                    "color": "#c92a2a"})
    return _figure(title, {"kind": "lines", "x": x, "series": out, "y": y_label, "percent": percent}, note)


def bars(labels: Sequence[str], ref: Sequence[float], cur: Sequence[float], title: str,
         names: tuple[str, str] = ("reference", "current (latest window)"), note: str = "") -> str:
    """Grouped bars: reference and current shares per bin or category."""
    return _figure(title, {"kind": "bars", "labels": [str(s) for s in labels], "percent": True,
                           "series": [{"label": names[0], "values": [_finite(v) for v in ref], "color": REF_COLOR},
                                      {"label": names[1], "values": [_finite(v) for v in cur], "color": CUR_COLOR}],
                           "y": "share"}, note)


def stacked(times: Sequence[datetime], layers: dict[str, Sequence[float]], title: str, bucket: timedelta,
            note: str = "") -> str:
    """Stacked bars per time bucket (stored predictions by sampling reason); hover shows each layer's own value."""
    names = list(layers)
    out = []
    for k, name in enumerate(names):
        raw = [_finite(v) or 0.0 for v in layers[name]]
        out.append({"label": name, "values": raw, "color": REASON_COLOR.get(name, PALETTE[k % len(PALETTE)])})
    return _figure(title, {"kind": "stacked", "x": [t.timestamp() for t in times], "series": out,
                           "bucket": bucket.total_seconds(), "y": "predictions"}, note)


def script_files() -> tuple[str, str, str]:
    """(uPlot's JS, its CSS, charts.js): what a page needs to draw the charts, for the report to inline."""
    root = resources.files("modelwatch_analyzer.report").joinpath("static")
    return (root.joinpath("vendor", "uPlot.iife.min.js").read_text(encoding="utf-8"),
            root.joinpath("vendor", "uPlot.min.css").read_text(encoding="utf-8"),
            root.joinpath("charts.js").read_text(encoding="utf-8"))
