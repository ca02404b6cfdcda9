// The routing decision view: utility matrix (chosen cells highlighted), resident sets, loads, evictions, solver.
import { fmt, h } from "./dom.js";

function chips(names, cls = "chip") {
  if (!names || !names.length) return h("span", { class: "muted" }, "none");
  return names.map((n) => h("span", { class: cls }, n));
}

function byStep(events) {
  const out = new Map();
  for (const e of events || []) {
    if (!out.has(e.step)) out.set(e.step, []);
    out.get(e.step).push(e.model);
  }
  return out;
}

export function matrixTable(rows, assignments) {
  const models = [...new Set(rows.map((r) => r.model))];
  const subtasks = [...new Set(rows.map((r) => r.subtask_id))];
  const cell = new Map(rows.map((r) => [`${r.model}\u0000${r.subtask_id}`, r]));
  const chosen = new Map((assignments || []).map((a) => [a.subtask_id, a.model]));
  const head = h("tr", {}, h("th", { scope: "col" }, "model \\ subtask"), subtasks.map((sid) => h("th", { scope: "col" }, sid)));
  const body = models.map((m) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, m),
      subtasks.map((sid) => {
        const r = cell.get(`${m}\u0000${sid}`);
        if (!r) return h("td", { class: "cell muted" }, "–");
        const picked = chosen.get(sid) === m;
        const cls = ["cell", picked ? "chosen" : "", r.feasible === false ? "infeasible" : ""].join(" ").trim();
        const tip = `quality ${fmt(r.quality)} − λ·token ${fmt(r.token_cost)} − λ·switch ${fmt(r.switch_cost)}`;
        return h(
          "td",
          { class: cls, title: tip, "data-model": m, "data-subtask": sid },
          h("div", { class: "util" }, r.feasible === false ? "✕ too big" : fmt(r.utility)),
          h("div", { class: "parts" }, `q ${fmt(r.quality, 2)} · tok ${fmt(r.token_cost, 2)} · sw ${fmt(r.switch_cost, 2)}`),
          picked ? h("div", { class: "pick" }, "chosen") : null,
        );
      }),
    ),
  );
  return h("table", { class: "matrix" }, h("thead", {}, head), h("tbody", {}, body));
}

function why(rows, assignments) {
  const items = [];
  for (const a of assignments || []) {
    const cands = rows.filter((r) => r.subtask_id === a.subtask_id && r.feasible !== false);
    cands.sort((x, y) => y.utility - x.utility);
    const best = cands[0];
    const chosenRow = cands.find((r) => r.model === a.model);
    let text = `${a.subtask_id} → ${a.model} (step ${a.step})`;
    if (best && chosenRow && best.model !== a.model) {
      text += `: ${best.model} scores higher alone (${fmt(best.utility)} vs ${fmt(chosenRow.utility)}), but the plan as a whole`
        + " (VRAM budget, shared loads across subtasks) is better with this choice";
    } else if (cands.length > 1 && chosenRow) {
      text += `: best utility ${fmt(chosenRow.utility)}, next ${cands[1].model} at ${fmt(cands[1].utility)}`;
    } else if (cands.length === 1) {
      text += ": the only model that fits the VRAM budget and the context";
    }
    items.push(h("li", {}, text));
  }
  return h("ul", { class: "why" }, items);
}

// plan: {model_task_estimates, assignments, resident_per_step, loads, evictions, objective, solver, routing_source,
//        vram_peak_gb, vram_violation_gb, mode}
export function decisionView(plan) {
  const solver = plan.solver;
  const loads = byStep(plan.loads);
  const evictions = byStep(plan.evictions);
  const steps = (plan.resident_per_step || []).map((set, t) =>
    h(
      "tr",
      {},
      h("td", {}, `step ${t}`),
      h("td", {}, chips(set)),
      h("td", {}, chips(loads.get(t), "chip load")),
      h("td", {}, chips(evictions.get(t), "chip evict")),
    ),
  );
  const facts = [
    ["routing", `${plan.mode || "–"}${plan.routing_source ? ` (${plan.routing_source})` : ""}`],
    ["objective", fmt(plan.objective, 4)],
    ["solver", solver ? `${solver.name} · ${solver.status} · ${fmt(solver.solve_time_ms, 2)} ms` : "– (no solver)"],
    ["planned VRAM peak", `${fmt(plan.vram_peak_gb, 2)} GB`],
  ];
  if (plan.vram_violation_gb > 0) facts.push(["VRAM violation", `${fmt(plan.vram_violation_gb, 2)} GB over budget`]);
  if (plan.fallback_reason) facts.push(["fallback", plan.fallback_reason]);
  return h(
    "div",
    { class: "decision" },
    h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", { class: k === "VRAM violation" ? "bad" : "" }, v)])),
    h("h4", {}, "Utility matrix (chosen cells highlighted)"),
    h("p", { class: "muted small" }, "utility = quality − λ_token·token cost − λ_switch·switch cost (switch cost 0 when resident)"),
    h("div", { class: "scroll" }, matrixTable(plan.model_task_estimates || [], plan.assignments)),
    h("h4", {}, "Why each subtask went where it did"),
    why(plan.model_task_estimates || [], plan.assignments),
    h("h4", {}, "Resident set per step"),
    h(
      "table",
      { class: "steps" },
      h("thead", {}, h("tr", {}, h("th", {}, "step"), h("th", {}, "resident"), h("th", {}, "loads"), h("th", {}, "evictions"))),
      h("tbody", {}, steps),
    ),
  );
}
