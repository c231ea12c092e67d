"""The report's plots: inline SVG drawn in Python (no script, nothing loaded), and the number formats they share.

Every string from the data passes through :func:`esc` (:func:`html.escape`);
element ids are generated, never taken from the data.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

REF_COLOR, CUR_COLOR = "#7f8c9a", "#d9480f"
SEV_COLOR = {"none": "#2b8a3e", "info": "#1971c2", "warning": "#e67700", "critical": "#c92a2a"}
REASON_COLOR = {"random": "#7f8c9a", "low_confidence": "#1971c2", "high_risk": "#c92a2a", "error": "#000000",
                "edge_case": "#862e9c"}
PALETTE = ("#1971c2", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#5c940d")


def esc(x: Any) -> str:
    """Text from the data, safe in element content and quoted attributes."""
    return html.escape(str(x), quote=True)


def _num(x: float) -> str:
    return f"{x:.1f}"


def fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if x != 0 and abs(x) < 10 ** -digits:
        return f"{x:.1e}"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def short(x: float) -> str:
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
    parts = [_svg_open(width, height, title)]
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

    parts = [_svg_open(width, height, title)]
    for frac in (0, 0.5, 1):
        v = ymin + span * frac
        y = top + plot_h * (1 - frac)
        label = f"{v:.0%}" if percent else short(v)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{_num(y)}" y2="{_num(y)}" class="grid"/>'
                     f'<text x="{left - 4}" y="{_num(y + 4)}" class="ax" text-anchor="end">{label}</text>')
    parts += _time_labels(times, lambda t: xy(t, ymin)[0], height)
    if threshold is not None and math.isfinite(threshold):
        _, y = xy(times[0] if times else datetime.now(timezone.utc), threshold)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{_num(y)}" y2="{_num(y)}" class="thr">'
                     f'<title>threshold {threshold:g}</title></line>'
                     f'<text x="{width - right}" y="{_num(y - 3)}" class="ax" text-anchor="end">'
                     f'threshold {threshold:g}</text>')
    legend_x = left
    for k, (name, vals) in enumerate(series.items()):
        color = colors[k % len(colors)]
        fills = point_colors if point_colors is not None and len(series) == 1 else None
        parts += _line(times, vals, name, color, fills, percent, xy)
        if len(series) > 1:
            parts.append(f'<rect x="{legend_x}" y="5" width="10" height="10" fill="{color}"/>'
                         f'<text x="{legend_x + 13}" y="14" class="ax">{esc(name)}</text>')
            legend_x += 20 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)


def _svg_open(width: int, height: int, title: str) -> str:
    return (f'<svg class="plot" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{esc(title)}</title>')


def _time_labels(times: Sequence[datetime], x_of: Callable[[datetime], float], height: int) -> list[str]:
    """About seven window-end labels along the x axis, the last one always."""
    out = []
    step = max(1, math.ceil(len(times) / 7))
    for i, t in enumerate(times):
        if (i % step == 0 and len(times) - 1 - i >= step / 2) or i == len(times) - 1:
            several = len(times) > 1
            anchor = "start" if i == 0 and several else "end" if i == len(times) - 1 and several else "middle"
            out.append(f'<text x="{_num(x_of(t))}" y="{height - 18}" class="ax" text-anchor="{anchor}">'
                       f'{t:%m-%d %H:%M}</text>')
    return out


def _line(times: Sequence[datetime], vals: Sequence[float | None], name: str, color: str,
          fills: Sequence[str] | None, percent: bool,
          xy: Callable[[datetime, float], tuple[float, float]]) -> list[str]:
    """One series: its path through the finite values and a point (with a tooltip) per value."""
    out = []
    pts = [(t, v) for t, v in zip(times, vals, strict=False) if v is not None and math.isfinite(v)]
    if len(pts) > 1:
        path = " ".join(f"{'M' if i == 0 else 'L'}{_num(xy(t, v)[0])},{_num(xy(t, v)[1])}"
                        for i, (t, v) in enumerate(pts))
        out.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
    for i, (t, v) in enumerate(zip(times, vals, strict=False)):
        if v is None or not math.isfinite(v):
            continue
        x, y = xy(t, v)
        fill = fills[i] if fills is not None else color
        label = f"{v:.1%}" if percent else fmt(v)
        out.append(f'<circle cx="{_num(x)}" cy="{_num(y)}" r="3.5" fill="{fill}">'
                   f'<title>{esc(name)} {label} (window ending {t:%Y-%m-%d %H:%M} UTC)</title></circle>')
    return out


def svg_stacked(times: Sequence[datetime], layers: dict[str, Sequence[float]], title: str, bucket: timedelta,
                width: int = 760, height: int = 220) -> str:
    """Stacked bars per time bucket (stored predictions by sampling reason)."""
    left, bottom, top, right = 52, 34, 24, 12
    plot_w, plot_h = width - left - right, height - bottom - top
    totals = [sum(layer[i] for layer in layers.values()) for i in range(len(times))]
    ymax = max(totals + [1.0]) * 1.1
    slot = plot_w / max(len(times), 1)
    parts = [_svg_open(width, height, title)]
    for frac in (0, 0.5, 1):
        y = top + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{_num(y)}" y2="{_num(y)}" class="grid"/>'
                     f'<text x="{left - 4}" y="{_num(y + 4)}" class="ax" text-anchor="end">{short(frac * ymax)}</text>')
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
                         f'height="{_num(h)}" fill="{color}">'
                         f'<title>{t:%Y-%m-%d %H:%M} {esc(name)}: {v:,.0f}</title></rect>')
    step = max(1, math.ceil(len(times) / 8))
    stamp = "%m-%d" if bucket >= timedelta(days=1) else "%m-%d %H:%M"
    for i, t in enumerate(times):
        if i % step == 0:
            parts.append(f'<text x="{_num(left + (i + 0.5) * slot)}" y="{height - 18}" class="ax" '
                         f'text-anchor="middle">{t:{stamp}}</text>')
    x = left
    for k, name in enumerate(names):
        color = REASON_COLOR.get(name, PALETTE[k % len(PALETTE)])
        parts.append(f'<rect x="{x}" y="5" width="10" height="10" fill="{color}"/>'
                     f'<text x="{x + 13}" y="14" class="ax">{esc(name)}</text>')
        x += 24 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)
