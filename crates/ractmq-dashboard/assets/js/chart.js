// Rolling time-series charts over uPlot: a fixed window of points (one per second by default), new values
// pushed at the right. Pages compute the values (rates from counters); this only draws them.

import uPlot from "../vendor/uPlot.esm.js";

const PALETTE = ["#1f6feb", "#2da44e", "#cf222e", "#bf8700", "#8250df", "#0a7ea4", "#e16f24", "#57606a", "#d63384"];

/** Seconds since the epoch as the wall clock (HH:MM:SS), the scale operators read a live chart in. */
const clock = (t) => new Date(t * 1000).toLocaleTimeString([], { hour12: false });

export class LiveChart {
  /**
   * @param {HTMLElement} el where to draw
   * @param {{series: string[], points?: number, height?: number, format?: (n: number) => string, integer?: boolean}} options
   *   `points` is also the window in seconds (one point a second); `integer` keeps the y ticks whole (counts).
   */
  constructor(el, { series, points = 120, height = 190, format = (n) => String(n), integer = false }) {
    this.el = el;
    this.points = points;
    this.data = [[], ...series.map(() => [])];
    const opts = {
      width: Math.max(el.clientWidth, 300),
      height,
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
      // The x axis always spans the whole window, ending at the newest point, so time reads the same from the
      // first sample on.
      scales: {
        x: { time: true, range: (_u, _min, max) => [max - points, max] },
        y: { range: (_u, _min, max) => [0, Math.max(integer ? 4 : 1, max * 1.15)] },
      },
      axes: [
        { stroke: "#667085", grid: { stroke: "#eef1f5" }, ticks: { stroke: "#eef1f5" }, space: 70, values: (_u, ticks) => ticks.map(clock) },
        {
          stroke: "#667085", grid: { stroke: "#eef1f5" }, ticks: { stroke: "#eef1f5" }, size: 56,
          values: (_u, ticks) => ticks.map(format),
          incrs: integer ? [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000] : undefined,
        },
      ],
      series: [{}, ...series.map((label, i) => ({
        label,
        stroke: PALETTE[i % PALETTE.length],
        width: 1.8,
        fill: series.length === 1 ? PALETTE[0] + "18" : undefined,
        value: (_u, v) => (v === null || v === undefined ? "–" : format(v)),
        points: { show: false },
      }))],
    };
    this.plot = new uPlot(opts, this.data, el);
    this.resize = () => this.plot.setSize({ width: Math.max(this.el.clientWidth, 300), height });
    window.addEventListener("resize", this.resize);
  }

  /** Add one point per series at time `t` (seconds). */
  push(t, values) {
    this.data[0].push(t);
    values.forEach((v, i) => this.data[i + 1].push(v));
    if (this.data[0].length > this.points) for (const s of this.data) s.shift();
    this.plot.setData(this.data);
    // How many points are drawn, for whoever waits for a chart to have something to show.
    this.el.dataset.points = String(this.data[0].length);
  }

  destroy() {
    window.removeEventListener("resize", this.resize);
    this.plot.destroy();
  }
}

/**
 * Turns counters sampled over time into per-second rates: give it the counters each tick, get back the rate of
 * each since the last tick (null on the first).
 */
export class Rates {
  constructor() {
    this.last = null;
  }

  next(now, counters) {
    const prev = this.last;
    this.last = { now, counters };
    if (!prev) return null;
    const dt = Math.max((now - prev.now) / 1000, 0.001);
    const out = {};
    for (const [k, v] of Object.entries(counters)) {
      // A counter that went down means the node restarted: count from zero again.
      const before = prev.counters[k] ?? 0;
      out[k] = Math.max(v - (v >= before ? before : 0), 0) / dt;
    }
    return out;
  }
}
