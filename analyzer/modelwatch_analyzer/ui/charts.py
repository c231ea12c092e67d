"""Chart specifications for the UI: data the page carries as JSON, drawn in the browser by uPlot (``static/ui.js``).

A chart is ``<figure>`` with a title, a ``<div class="chart">`` that ui.js
fills, and its data in a ``<script type="application/json">`` element (data,
never executed: the page's Content-Security-Policy allows no inline script).
Kinds: ``lines`` over time (x in epoch seconds; hover shows every series'
value, drag to zoom, double-click to reset) and ``bars`` over labelled bins.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from html import escape
from itertools import count
from typing import Any

_ids = count()


def _finite(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def _figure(title: str, spec: dict[str, Any], note: str = "") -> str:
    cid = f"chart-{next(_ids)}"
    data = json.dumps(spec, allow_nan=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    caption = f'<figcaption class="muted">{escape(note)}</figcaption>' if note else ""
    return (f'<figure class="chart-box"><h4>{escape(title)}</h4><div class="chart" data-spec="{cid}"></div>'
            f'<script type="application/json" id="{cid}">{data}</script>{caption}</figure>')


def lines(title: str, times: Sequence[datetime], series: Sequence[tuple[str, Sequence[Any]]], y_label: str,
          thresholds: Sequence[tuple[str, float]] = (), note: str = "") -> str:
    """Values over time, one line per series; horizontal dashed lines at `thresholds`."""
    x = [t.timestamp() for t in times]
    out = [{"label": name, "values": [_finite(v) for v in values]} for name, values in series]
    out += [{"label": name, "values": [_finite(v)] * len(x), "dash": True} for name, v in thresholds]
    return _figure(title, {"kind": "lines", "x": x, "series": out, "y": y_label}, note)


def bars(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[Any]]], y_label: str,
         note: str = "") -> str:
    """Values per labelled bin, one bar group per series (reference vs current)."""
    return _figure(title, {"kind": "bars", "labels": [str(s) for s in labels],
                           "series": [{"label": name, "values": [_finite(v) for v in values]} for name, values in series],
                           "y": y_label}, note)


def number(x: float, integer: bool = False) -> str:
    """One notation for every number on a page: integers as integers, the rest to 4 significant digits with k / M."""
    if integer and float(x).is_integer():
        return f"{int(x):,}"
    a = abs(x)
    if a >= 1e6:
        return f"{x / 1e6:.4g}M"
    if a >= 1e4:
        return f"{x / 1e3:.4g}k"
    return f"{x:.4g}"


def bin_labels(edges: Sequence[float], integer: bool = False) -> list[str]:
    """Labels of the bins between `edges` (and the two open ends), in :func:`number`'s one notation."""
    e = [number(v, integer) for v in edges]
    if not e:
        return ["all"]
    return [f"≤ {e[0]}"] + [f"{a} – {b}" for a, b in zip(e[:-1], e[1:])] + [f"> {e[-1]}"]
