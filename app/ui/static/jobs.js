// Jobs: the list with status, and one job's DAG, plan steps (decision view), subtask outputs and scores, live.
import { api, badge, errorBox, fmt, h, streamEvents, table, when } from "./dom.js";
import { dagView } from "./charts.js";
import { decisionView } from "./matrix.js";

const FINISHED = new Set(["succeeded", "failed", "cancelled", "interrupted"]);

function listView(data) {
  const rows = data.items.map((j) => ({
    attrs: { "data-job": j.id, class: `st-row-${j.status}` },
    cells: [h("a", { href: `#/jobs/${j.id}` }, j.id), badge(j.status), j.tenant_id, j.routing, (j.query || "(subtasks)").slice(0, 80), when(j.created_at), when(j.finished_at)],
  }));
  return [
    h("h2", {}, "Jobs"),
    h("p", { class: "muted small" }, `${data.total} job(s); newest first; refreshes every 2 s.`),
    rows.length ? table(["job", "status", "tenant", "routing", "query", "created", "finished"], rows, { class: "jobs" }) : h("p", { class: "muted" }, "No jobs yet: submit one with POST /jobs."),
  ];
}

export async function jobsPage(page) {
  const load = async () => page.show(...listView(await api("/jobs?limit=100")));
  await load();
  page.every(2000, load);
}

// A plan_step SSE entry (or a stored plan row) in the decision view's shape.
function stepPlan(entry, row) {
  if (entry) {
    return {
      mode: entry.routing_mode,
      routing_source: entry.routing_source,
      fallback_reason: entry.fallback_reason,
      solver: entry.solver,
      objective: entry.objective,
      model_task_estimates: entry.model_task_estimates,
      assignments: entry.planned_assignments,
      resident_per_step: entry.resident_planned,
      loads: entry.loads_planned,
      evictions: entry.evictions_planned,
      vram_peak_gb: entry.vram_planned_peak_gb,
      vram_violation_gb: entry.vram_violation_gb,
    };
  }
  const solver = row.solver_name ? { name: row.solver_name, status: row.solver_status, solve_time_ms: row.solve_time_ms } : null;
  return { mode: row.mode, routing_source: row.routing_source, solver, objective: row.objective, model_task_estimates: [], assignments: row.assignments, resident_per_step: row.resident, loads: row.loads, evictions: row.evictions, vram_peak_gb: row.vram_peak_gb };
}

function stepSection(index, entry, row) {
  const observed = entry
    ? h(
        "p",
        { class: "small" },
        `ran ${entry.ready_now_nodes.join(", ")} · resident before: ${entry.resident_before.join(", ") || "none"} · after: ${entry.resident_after.join(", ") || "none"}`
          + ` · loaded: ${entry.models_swapped_in.join(", ") || "none"} (${fmt(entry.measured_switch_ms, 1)} ms measured)`
          + ` · evicted: ${entry.evictions_done.join(", ") || "none"} · VRAM peak ${fmt(entry.vram_peak_gb, 2)} GB`,
      )
    : null;
  return h("section", { class: "card step", "data-step": index }, h("h3", {}, `Plan step ${index}`), observed, decisionView(stepPlan(entry, row)));
}

function subtaskTable(subtasks) {
  return table(
    ["subtask", "type", "deps", "status", "model", "step", "est. quality", "score", "latency ms", "tokens", "output"],
    subtasks.map((t) => ({
      attrs: { "data-subtask": t.subtask_id },
      cells: [
        t.subtask_id, t.task_type, (t.deps || []).join(", ") || "–", badge(t.status), t.model || "–", fmt(t.step), fmt(t.estimated_quality),
        fmt(t.score), fmt(t.latency_ms, 1), fmt((t.prompt_tokens || 0) + (t.eval_tokens || 0)),
        t.error ? h("span", { class: "error" }, t.error) : h("details", {}, h("summary", {}, (t.output || "").slice(0, 60) || "–"), h("pre", {}, t.output || "")),
      ],
    })),
    { class: "subtasks" },
  );
}

function jobView(job, steps, live) {
  const stepIds = [...new Set([...steps.keys(), ...job.plan.map((p) => p.step_index)])].sort((a, b) => a - b);
  const facts = [
    ["status", badge(job.status)], ["tenant", job.tenant_id], ["routing", `${job.routing}${job.plan_source ? ` (${job.plan_source})` : ""}`],
    ["created", when(job.created_at)], ["finished", when(job.finished_at)], ["wall", job.wall_ms ? `${fmt(job.wall_ms, 0)} ms` : "–"],
    ["tokens", fmt(job.total_tokens)],
  ];
  return [
    h("p", {}, h("a", { href: "#/jobs" }, "← all jobs")),
    h("h2", {}, `Job ${job.id} `, live ? h("span", { class: "live" }, "● live") : null),
    h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    job.query ? h("p", {}, h("strong", {}, "Query: "), job.query) : null,
    job.error ? h("p", { class: "error" }, job.error) : null,
    job.final_answer ? h("section", { class: "card" }, h("h3", {}, "Answer"), h("pre", { class: "answer" }, job.final_answer)) : null,
    h("section", { class: "card" }, h("h3", {}, "DAG"), h("div", { class: "scroll" }, dagView(job.subtasks))),
    h("section", { class: "card" }, h("h3", {}, "Subtasks"), h("div", { class: "scroll" }, subtaskTable(job.subtasks))),
    stepIds.map((i) => stepSection(i, steps.get(i), job.plan.find((p) => p.step_index === i))),
  ];
}

export async function jobPage(page, id) {
  let job = await api(`/jobs/${encodeURIComponent(id)}`);
  const steps = new Map();
  const render = (live) => page.show(...jobView(job, steps, live));
  render(!FINISHED.has(job.status));
  const onEvent = (name, data) => {
    if (name === "plan_step") steps.set(data.step, data);
    else if (name === "subtask") {
      const t = job.subtasks.find((x) => x.subtask_id === data.subtask_id);
      if (t) Object.assign(t, data);
    } else if (name === "job") job.status = data.status;
    else if (name === "end") job = data;
    else if (name === "dag_structure" && !job.subtasks.length) {
      // a query job: the decomposer just produced the subtasks; read their rows once
      api(`/jobs/${encodeURIComponent(id)}`)
        .then((fresh) => {
          if (!FINISHED.has(job.status)) job = { ...fresh, status: job.status };
          render(!FINISHED.has(job.status));
        })
        .catch((err) => console.warn("could not read the job:", err.message));
    }
    if (!FINISHED.has(job.status) || name === "end") render(name !== "end");
  };
  try {
    await streamEvents(`/jobs/${encodeURIComponent(id)}/events`, onEvent, page.controller().signal);
  } catch (err) {
    if (err.name !== "AbortError" && page.alive) page.root.append(errorBox(err));
    return;
  }
  render(false);
}
