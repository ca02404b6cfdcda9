// Small SVG charts drawn in the page: scatter with error bars (Pareto panels), the job DAG, the swap timeline.
import { fmt, h, s } from "./dom.js";

export const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];

function ticks(lo, hi, n = 5) {
  const span = hi - lo || 1;
  const step = 10 ** Math.floor(Math.log10(span / n));
  const nice = [1, 2, 2.5, 5, 10].map((m) => m * step).find((st) => span / st <= n) || step * 10;
  const out = [];
  for (let v = Math.ceil(lo / nice) * nice; v <= hi + 1e-12; v += nice) out.push(+v.toFixed(10));
  return out;
}

function extent(values, pad) {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (lo === hi) {
    lo -= Math.abs(lo) * 0.1 || 0.5;
    hi += Math.abs(hi) * 0.1 || 0.5;
  }
  const p = (hi - lo) * pad;
  return [lo - p, hi + p];
}

// points: [{x, y, err, label, color, violation}]; budget: {x, label} draws a vertical line (e.g. G on a VRAM axis)
export function scatter({ title, xLabel, yLabel, points, budget }) {
  const W = 380, H = 280, L = 56, R = 14, T = 30, B = 46;
  const xs = points.map((p) => p.x).concat(budget ? [budget.x] : []);
  const ys = points.flatMap((p) => [p.y - (p.err || 0), p.y + (p.err || 0)]);
  const [x0, x1] = extent(xs, 0.12);
  const [y0, y1] = extent(ys, 0.08);
  const X = (v) => L + ((v - x0) / (x1 - x0)) * (W - L - R);
  const Y = (v) => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
  const g = [];
  for (const t of ticks(x0, x1)) {
    g.push(s("line", { x1: X(t), x2: X(t), y1: T, y2: H - B, class: "grid" }));
    g.push(s("text", { x: X(t), y: H - B + 14, class: "tick", "text-anchor": "middle" }, fmt(t, 2)));
  }
  for (const t of ticks(y0, y1)) {
    g.push(s("line", { x1: L, x2: W - R, y1: Y(t), y2: Y(t), class: "grid" }));
    g.push(s("text", { x: L - 6, y: Y(t) + 4, class: "tick", "text-anchor": "end" }, fmt(t, 2)));
  }
  g.push(s("rect", { x: L, y: T, width: W - L - R, height: H - T - B, class: "frame" }));
  if (budget) {
    g.push(s("line", { x1: X(budget.x), x2: X(budget.x), y1: T, y2: H - B, class: "budget" }));
    g.push(s("text", { x: X(budget.x) - 4, y: T + 12, class: "budget-label", "text-anchor": "end" }, budget.label));
  }
  // Points at the same spot (e.g. two modes with identical results) are spread sideways so none hides another.
  const spots = new Map();
  for (const p of points) {
    const key = `${Math.round(X(p.x) / 4)},${Math.round(Y(p.y) / 4)}`;
    if (!spots.has(key)) spots.set(key, []);
    spots.get(key).push(p);
  }
  const dodge = new Map();
  for (const group of spots.values()) group.forEach((p, i) => dodge.set(p, (i - (group.length - 1) / 2) * 9));
  for (const p of points) {
    const cx = X(p.x) + dodge.get(p), cy = Y(p.y);
    if (p.err) {
      g.push(s("line", { x1: cx, x2: cx, y1: Y(p.y - p.err), y2: Y(p.y + p.err), stroke: p.color, class: "errbar" }));
      for (const v of [p.y - p.err, p.y + p.err]) {
        g.push(s("line", { x1: cx - 4, x2: cx + 4, y1: Y(v), y2: Y(v), stroke: p.color, class: "errbar" }));
      }
    }
    const mark = s("circle", { cx, cy, r: 5, fill: p.color, class: p.violation ? "pt violation" : "pt" });
    mark.append(s("title", {}, `${p.label}: ${fmt(p.y)} ± ${fmt(p.err || 0)} at ${fmt(p.x)}${p.violation ? " (VRAM violation)" : ""}`));
    g.push(mark);
    if (p.violation) g.push(s("text", { x: cx + 7, y: cy - 7, class: "violation-label" }, "⚠"));
  }
  g.push(s("text", { x: W / 2, y: 18, class: "title", "text-anchor": "middle" }, title));
  g.push(s("text", { x: (L + W - R) / 2, y: H - 8, class: "axis", "text-anchor": "middle" }, xLabel));
  g.push(s("text", { x: 14, y: (T + H - B) / 2, class: "axis", "text-anchor": "middle", transform: `rotate(-90 14 ${(T + H - B) / 2})` }, yLabel));
  return s("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "chart", role: "img", "aria-label": title }, g);
}

export function legend(entries) {
  return h(
    "ul",
    { class: "legend" },
    entries.map((e) => h("li", {}, s("svg", { width: 12, height: 12 }, s("circle", { cx: 6, cy: 6, r: 5, fill: e.color })), " ", e.label)),
  );
}

export function layers(subtasks) {
  const deps = new Map(subtasks.map((t) => [t.subtask_id || t.id, t.deps || []]));
  const depth = new Map();
  const visit = (id, seen = new Set()) => {
    if (depth.has(id)) return depth.get(id);
    if (seen.has(id)) return 0;
    seen.add(id);
    const d = Math.max(-1, ...(deps.get(id) || []).filter((p) => deps.has(p)).map((p) => visit(p, seen))) + 1;
    depth.set(id, d);
    return d;
  };
  for (const id of deps.keys()) visit(id);
  return depth;
}

// subtasks: [{subtask_id, deps, status, model}]
export function dagView(subtasks) {
  const depth = layers(subtasks);
  const cols = new Map();
  for (const t of subtasks) {
    const d = depth.get(t.subtask_id);
    if (!cols.has(d)) cols.set(d, []);
    cols.get(d).push(t);
  }
  const NW = 150, NH = 44, GX = 60, GY = 18;
  const nCols = Math.max(1, cols.size);
  const nRows = Math.max(1, ...[...cols.values()].map((c) => c.length));
  const W = nCols * (NW + GX) + 20, H = nRows * (NH + GY) + 20;
  const pos = new Map();
  for (const [d, col] of cols) col.forEach((t, i) => pos.set(t.subtask_id, [10 + d * (NW + GX), 10 + i * (NH + GY)]));
  const g = [];
  g.push(s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto" }, s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))));
  for (const t of subtasks) {
    for (const p of t.deps || []) {
      if (!pos.has(p)) continue;
      const [ax, ay] = pos.get(p), [bx, by] = pos.get(t.subtask_id);
      g.push(s("line", { x1: ax + NW, y1: ay + NH / 2, x2: bx, y2: by + NH / 2, class: "edge", "marker-end": "url(#arrow)" }));
    }
  }
  for (const t of subtasks) {
    const [x, y] = pos.get(t.subtask_id);
    g.push(
      s(
        "g",
        { class: `node st-${t.status}`, "data-subtask": t.subtask_id },
        s("rect", { x, y, width: NW, height: NH, rx: 6 }),
        s("text", { x: x + 8, y: y + 17, class: "node-id" }, `${t.subtask_id} · ${t.task_type || ""}`),
        s("text", { x: x + 8, y: y + 34, class: "node-model" }, `${t.model || "unassigned"} · ${t.status}`),
      ),
    );
  }
  return s("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "dag", role: "img", "aria-label": "job DAG" }, g);
}

// events: [{ts, kind, model}] → a strip with one mark per load (up) or eviction (down), newest on the right
export function timelineStrip(events) {
  const W = 900, H = 90, L = 10, R = 10;
  if (!events.length) return h("p", { class: "muted" }, "No loads or evictions recorded yet.");
  const t0 = events[0].ts, t1 = events[events.length - 1].ts;
  const X = (t) => (t1 === t0 ? W / 2 : L + ((t - t0) / (t1 - t0)) * (W - L - R));
  const g = [s("line", { x1: L, x2: W - R, y1: H / 2, y2: H / 2, class: "axisline" })];
  for (const e of events) {
    const up = e.kind === "load";
    const x = X(e.ts);
    const mark = s("path", { d: up ? `M${x - 6},${H / 2 - 4} L${x + 6},${H / 2 - 4} L${x},${H / 2 - 16} z` : `M${x - 6},${H / 2 + 4} L${x + 6},${H / 2 + 4} L${x},${H / 2 + 16} z`, class: up ? "mk-load" : "mk-evict" });
    mark.append(s("title", {}, `${new Date(e.ts * 1000).toLocaleTimeString()} ${e.kind} ${e.model}: ${e.reason}`));
    g.push(mark);
  }
  g.push(s("text", { x: L, y: H - 4, class: "tick" }, new Date(t0 * 1000).toLocaleTimeString()));
  g.push(s("text", { x: W - R, y: H - 4, class: "tick", "text-anchor": "end" }, new Date(t1 * 1000).toLocaleTimeString()));
  g.push(s("text", { x: L, y: 12, class: "tick" }, "▲ load   ▼ eviction (hover for the reason)"));
  return s("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "xMinYMid meet", class: "timeline", role: "img", "aria-label": "loads and evictions over time" }, g);
}
