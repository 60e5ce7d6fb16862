// Time-series charts (uPlot, bundled from npm). The x axis is UTC days; every chart sits
// next to a table holding the exact values.

import uPlot from "uplot";
import { h } from "./dom.js";

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#6b7280"];

const daySeconds = (day) => Date.parse(`${day}T00:00:00Z`) / 1000;

/**
 * A chart of per-day values: `days` are `YYYY-MM-DD`, `series` `[{label, values}]`
 * (numbers, one per day). Returns the element; it sizes itself to its container.
 */
export function dayChart(label, days, series) {
  const box = h("div", { class: "chart", role: "img", "aria-label": label });
  if (days.length === 0) return box;
  const data = [days.map(daySeconds), ...series.map((s) => s.values)];
  const opts = {
    width: 320,
    height: 200,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
    // One day or many: the axis spans the days shown, plus half a day each side.
    scales: { x: { time: true, range: (_u, min, max) => [min - 43200, max + 43200] } },
    axes: [{}, { size: 60 }],
    legend: { live: false },
    series: [
      { label: "day" },
      ...series.map((s, i) => ({
        label: s.label,
        stroke: COLORS[i % COLORS.length],
        width: 2,
        points: { show: true, size: 6 },
      })),
    ],
  };
  let plot = null;
  const draw = () => {
    const width = Math.max(240, Math.floor(box.clientWidth));
    if (!plot) plot = new uPlot(opts, data, box);
    else plot.setSize({ width, height: 200 });
    if (plot.width !== width) plot.setSize({ width, height: 200 });
  };
  // Drawn once the box is in the page (its width is known), redrawn when it resizes.
  new ResizeObserver(() => box.isConnected && draw()).observe(box);
  return box;
}
