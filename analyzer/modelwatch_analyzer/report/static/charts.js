// modelwatch: draws the charts whose data a page carries as JSON (report/charts.py), with uPlot.
"use strict";
(function () {
  const palette = ["#1971c2", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#5c940d"];
  const utc = (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");
  const num = (v) => (v == null || !isFinite(v) ? "–" : Math.abs(v) >= 1e4 ? Math.round(v).toLocaleString("en")
                      : +v.toPrecision(4) + "");
  const pct = (v) => (v == null || !isFinite(v) ? "–" : (v * 100).toFixed(1) + "%");
  const stamp = (ts) => (ts == null ? "–" : new Date(ts * 1e3).toISOString().slice(0, 16).replace("T", " ") + " UTC");

  function yAxis(spec) {
    const axis = { label: spec.y || "", size: 62 };
    if (spec.percent) axis.values = (u, splits) => splits.map((v) => +(v * 100).toFixed(1) + "%");
    return axis;
  }

  function lines(el, spec, width) {
    const show = spec.percent ? pct : num;
    const series = [{ label: "window end", value: (u, v) => stamp(v) }];
    spec.series.forEach((s, i) => series.push({
      label: s.label, stroke: s.color || palette[i % palette.length], width: s.dash ? 1.5 : 2,
      dash: s.dash ? [6, 4] : undefined, spanGaps: true, points: { show: !s.dash && spec.x.length <= 60 },
      value: (u, v) => show(v),
    }));
    const opts = {
      width, height: 260, series, tzDate: utc, scales: { x: { time: true } },
      axes: [{ space: 70 }, yAxis(spec)],
      cursor: { drag: { x: true, y: false } },  // drag to zoom on time; double-click resets
    };
    if (spec.percent) opts.scales.y = { range: (u, lo, hi) => [Math.min(0, lo), Math.max(1, hi)] };
    return new uPlot(opts, [spec.x, ...spec.series.map((s) => s.values)], el);
  }

  function bars(el, spec, width) {
    const n = spec.labels.length;
    const x = spec.labels.map((_, i) => i);
    const k = spec.series.length;
    const series = [{ label: "bin", value: (u, v) => (v == null ? "–" : spec.labels[Math.round(v)] || "") }];
    spec.series.forEach((s, i) => series.push({
      label: s.label, fill: (s.color || palette[i]) + "d0", stroke: s.color || palette[i], width: 1,
      paths: uPlot.paths.bars({ size: [0.8 / k, 80], align: k === 1 ? 0 : (i === 0 ? -1 : 1) }),
      points: { show: false }, value: (u, v) => pct(v),
    }));
    const long = spec.labels.some((l) => l.length > 7);
    return new uPlot({
      width, height: long ? 320 : 260, series,
      scales: { x: { time: false, range: [-0.5, n - 0.5] }, y: { range: (u, lo, hi) => [0, Math.max(hi * 1.1, 0.01)] } },
      axes: [
        { splits: () => x, values: (u, splits) => splits.map((i) => spec.labels[Math.round(i)] || ""),
          rotate: long ? -35 : 0, size: long ? 96 : 40, gap: 4, grid: { show: false } },
        yAxis(spec),
      ],
      cursor: { drag: { x: false, y: false } },
    }, [x, ...spec.series.map((s) => s.values)], el);
  }

  function stacked(el, spec, width) {
    // drawn as cumulative layers, the tallest first; the legend shows each layer's own count
    const totals = spec.series.map((_, i) => spec.x.map((_, j) =>
      spec.series.slice(i).reduce((a, s) => a + (s.values[j] || 0), 0)));
    const series = [{ label: "bucket start", value: (u, v) => stamp(v) }];
    spec.series.forEach((s, i) => series.push({
      label: s.label, fill: s.color || palette[i % palette.length], stroke: s.color || palette[i % palette.length],
      width: 0, paths: uPlot.paths.bars({ size: [0.9, 60], align: 1 }), points: { show: false },
      value: (u, v, si, idx) => (idx == null ? "–" : num(spec.series[i].values[idx])),
    }));
    const step = spec.bucket || 3600;
    return new uPlot({
      width, height: 240, series, tzDate: utc,
      scales: { x: { time: true, range: (u, lo, hi) => [lo, hi + step] }, y: { range: (u, lo, hi) => [0, hi * 1.1 || 1] } },
      axes: [{ space: 70 }, yAxis(spec)],
      cursor: { drag: { x: true, y: false } },
    }, [spec.x, ...totals], el);
  }

  function draw(el) {
    const holder = document.getElementById(el.dataset.spec);
    if (!holder) return;
    const spec = JSON.parse(holder.textContent);
    const width = Math.max(Math.min(el.clientWidth || 900, 1100), 320);
    const make = { lines, bars, stacked }[spec.kind] || lines;
    el.chart = make(el, spec, width);
    el.dataset.drawn = "true";
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("div.chart[data-spec]").forEach(draw);
    document.body.dataset.charts = "drawn";
  });
})();
