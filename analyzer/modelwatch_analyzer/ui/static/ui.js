// modelwatch UI: draws the charts whose data each page carries as JSON (see ui/charts.py), with uPlot.
"use strict";
(function () {
  const palette = ["#1f6fb4", "#d0432a", "#2b9a48", "#e08a12", "#7e57c2", "#8c564b", "#d6529f", "#5f6b75",
                   "#a9a21f", "#1aa3b8"];
  const utc = (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");
  const num = (v) => (v == null || !isFinite(v) ? "–" : Math.abs(v) >= 1e4 ? v.toExponential(3) : +v.toPrecision(4) + "");

  function lines(el, spec, width) {
    const series = [{ label: "window end (UTC)" }];
    const data = [spec.x];
    spec.series.forEach((s, i) => {
      series.push({
        label: s.label, stroke: s.dash ? "#777" : palette[i % palette.length], width: s.dash ? 1 : 2,
        dash: s.dash ? [6, 4] : undefined, spanGaps: true, points: { show: !s.dash && spec.x.length <= 60 },
        value: (u, v) => num(v),
      });
      data.push(s.values);
    });
    return new uPlot({
      width, height: 300, series, tzDate: utc,
      scales: { x: { time: true } },
      axes: [{}, { label: spec.y, size: 60 }],
      cursor: { drag: { x: true, y: false } },  // drag to zoom on time; double-click resets
    }, data, el);
  }

  function bars(el, spec, width) {
    const n = spec.labels.length;
    const x = spec.labels.map((_, i) => i);
    const series = [{ label: "bin", value: (u, v) => (v == null ? "–" : spec.labels[Math.round(v)] || "") }];
    const k = spec.series.length;
    spec.series.forEach((s, i) => {
      series.push({
        label: s.label, fill: palette[i % palette.length] + "cc", stroke: palette[i % palette.length], width: 1,
        paths: uPlot.paths.bars({ size: [0.8 / k, 60], align: k === 1 ? 0 : (i === 0 ? -1 : 1) }),
        points: { show: false }, value: (u, v) => (v == null ? "–" : (v * 100).toFixed(1) + "%"),
      });
    });
    const long = spec.labels.some((l) => l.length > 8);
    return new uPlot({
      width, height: long ? 340 : 300, series,
      scales: { x: { time: false, range: [-0.5, n - 0.5] }, y: { range: (u, lo, hi) => [0, Math.max(hi * 1.1, 0.01)] } },
      axes: [
        { splits: () => x, values: (u, splits) => splits.map((i) => spec.labels[Math.round(i)] || ""),
          rotate: long ? -35 : 0, size: long ? 90 : 40, gap: 4 },
        { label: spec.y, size: 60, values: (u, splits) => splits.map((v) => (v * 100).toFixed(0) + "%") },
      ],
      cursor: { drag: { x: false, y: false } },
    }, [x, ...spec.series.map((s) => s.values)], el);
  }

  function draw(el) {
    const holder = document.getElementById(el.dataset.spec);
    if (!holder) return;
    const spec = JSON.parse(holder.textContent);
    const width = Math.max(Math.min(el.clientWidth || 900, 1100), 320);
    el.chart = spec.kind === "bars" ? bars(el, spec, width) : lines(el, spec, width);
    el.dataset.drawn = "true";
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("div.chart[data-spec]").forEach(draw);
    document.body.dataset.charts = "drawn";
  });
})();
