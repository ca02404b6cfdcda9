// Benchmarks: runs with progress, and a run's report (per-mode table, Pareto panels with CI bars and the budget line).
import { api, badge, errorBox, fmt, h, table, when } from "./dom.js";
import { legend, PALETTE, scatter } from "./charts.js";

function progressBar(p) {
  const fill = h("div", { class: "fill" });
  fill.style.width = `${Math.round(100 * (p || 0))}%`;
  return h("div", { class: "progress", title: `${Math.round(100 * (p || 0))}%` }, fill, h("span", {}, `${Math.round(100 * (p || 0))}%`));
}

function listView(data) {
  const rows = data.items.map((r) => ({
    attrs: { "data-run": r.id },
    cells: [
      h("a", { href: `#/bench/${r.id}` }, r.id), badge(r.status), progressBar(r.progress), r.tenant_id,
      (r.config.benchmarks || []).join(", "), r.config.compare, fmt(r.config.limit), fmt(r.config.gpu_vram_gb), r.config.dry_run ? "sim" : "GPU",
      when(r.created_at), r.error ? h("span", { class: "error" }, r.error) : "",
    ],
  }));
  return [
    h("h2", {}, "Benchmark runs"),
    h("p", { class: "muted small" }, "Start one with POST /bench (or swarm bench); refreshes every 2 s."),
    rows.length
      ? table(["run", "status", "progress", "tenant", "benchmarks", "compare", "limit", "G GB", "backend", "created", "error"], rows, { class: "runs" })
      : h("p", { class: "muted" }, "No benchmark runs yet."),
  ];
}

export async function benchListPage(page) {
  const load = async () => page.show(...listView(await api("/bench?limit=100")));
  await load();
  page.every(2000, load);
}

const f3 = (v) => (typeof v === "number" ? v.toFixed(3) : "–");

function modeTable(report, G) {
  const rows = report.mode_order.map((m) => {
    const r = report.modes[m];
    const violated = (r.vram_violation_rate || 0) > 0 || (r.planned_vram_violation_rate || 0) > 0 || r.peak_vram_gb > G + 1e-9;
    return {
      attrs: { "data-mode": m, class: violated ? "violation-row" : "" },
      cells: [
        m, `${f3(r.avg_score)} ± ${f3(r.ci95)}`, `[${f3(r.ci95_low)}, ${f3(r.ci95_high)}]`, fmt(r.n), fmt(r.avg_models_swapped_in),
        fmt(r.estimated_switch_ms_mean, 0), `${fmt(r.peak_vram_gb, 2)}${r.peak_vram_gb > G + 1e-9 ? " ⚠" : ""}`, fmt(r.mean_peak_vram_gb, 2),
        h("span", { class: r.vram_violation_rate > 0 ? "bad" : "" }, fmt(r.vram_violation_rate)),
        h("span", { class: r.planned_vram_violation_rate > 0 ? "bad" : "" }, fmt(r.planned_vram_violation_rate)),
        fmt(r.token_cost_mean, 4),
        fmt(r.oracle_gap_per_step_mean), r.planner_steps ? fmt(r.fallback_rate) : "–",
      ],
    };
  });
  return table(
    ["mode", "score ± 95% CI", "CI range", "n scored", "swaps / job", "est. switch ms / job", "peak VRAM GB", "mean peak GB", "VRAM violation rate (measured)", "planned VRAM violation rate", "token cost / job", "oracle gap / step", "planner fallback"],
    rows,
    { class: "modes" },
  );
}

const AXES = [
  ["token_cost", "Score vs token cost", "token cost per job (normalised)"],
  ["switch_ms", "Score vs switch time", "estimated switch time per job (ms)"],
  ["peak_vram_gb", "Score vs peak VRAM", "peak resident VRAM (GB)"],
];

function pareto(report, G, benchmark) {
  const color = new Map(report.mode_order.map((m, i) => [m, PALETTE[i % PALETTE.length]]));
  const pts = (report.pareto_data[benchmark] || []).filter((p) => p.score !== null);
  const violated = (m) => (report.modes[m].vram_violation_rate || 0) > 0 || (report.modes[m].planned_vram_violation_rate || 0) > 0;
  const panels = AXES.map(([key, title, xLabel]) =>
    scatter({
      title: `${title} (${benchmark})`,
      xLabel,
      yLabel: "mean score (95% CI)",
      points: pts.map((p) => ({ x: p[key] || 0, y: p.score, err: p.ci95, label: p.mode, color: color.get(p.mode), violation: violated(p.mode) || (key === "peak_vram_gb" && p.peak_vram_gb > G + 1e-9) })),
      budget: key === "peak_vram_gb" ? { x: G, label: `budget G = ${fmt(G, 2)} GB` } : null,
    }),
  );
  return h(
    "div",
    {},
    h("div", { class: "plots" }, panels),
    legend(report.mode_order.map((m) => ({ label: `${m}${violated(m) ? " (⚠ planned or used more than G)" : ""}`, color: color.get(m) }))),
    h("p", { class: "muted small" }, "Up and left is better. Error bars: 95% confidence interval of the score. ⚠ marks a mode whose plans or runs exceeded the VRAM budget G. Modes with identical results are drawn side by side."),
  );
}

function reportView(run) {
  const head = [
    h("p", {}, h("a", { href: "#/bench" }, "← all runs")),
    h("h2", {}, `Benchmark ${run.id} `, badge(run.status)),
    progressBar(run.progress),
    h("p", { class: "small" }, `benchmarks ${run.config.benchmarks.join(", ")} · compare ${run.config.compare} · limit ${run.config.limit} · seed ${run.config.seed} · G ${run.config.gpu_vram_gb} GB · λ_token ${run.config.lambda_token} · λ_switch ${run.config.lambda_switch}`),
    run.error ? errorBox(run.error) : null,
  ];
  const report = run.report;
  if (!report) return [...head, h("p", { class: "muted" }, "The report appears when the run succeeds.")];
  const G = report.config.gpu_vram_gb;
  const cmp = report.comparison_lp_vs_llm;
  return [
    ...head,
    h("section", { class: "card" }, h("h3", {}, "Per mode"), h("div", { class: "scroll" }, modeTable(report, G))),
    cmp && cmp.jobs_compared
      ? h("p", {}, `lp vs llm: ${cmp.jobs_won} jobs won, ${cmp.jobs_lost} lost, ${cmp.jobs_tied} tied (mean score delta ${fmt(cmp.mean_score_delta)})`)
      : null,
    h("section", { class: "card" }, h("h3", {}, "Pareto plots"), pareto(report, G, "all")),
  ];
}

export async function benchReportPage(page, id) {
  const path = `/bench/${encodeURIComponent(id)}`;
  let run = await api(path);
  page.show(...reportView(run));
  page.every(2000, async () => {
    if (!["queued", "running"].includes(run.status)) return;
    run = await api(path);
    page.show(...reportView(run));
  });
}
