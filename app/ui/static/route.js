// Route playground: POST /route with editable subtasks and knobs; draws the decision and what changed since the last.
import { api, errorBox, fmt, h } from "./dom.js";
import { decisionView } from "./matrix.js";

const EXAMPLE = [
  { id: "extract", task_type: "extraction", description: "Extract the founding year: the firm was founded in 1998.", estimated_tokens: 40, difficulty: 0.2 },
  { id: "compute", task_type: "math", description: "Add 27 to that year.", deps: ["extract"], estimated_tokens: 60, difficulty: 0.4 },
  { id: "code", task_type: "code", description: "Write a Python function that returns the result.", deps: ["compute"], estimated_tokens: 200, difficulty: 0.7 },
];

let previous = null;

function field(label, input, hint) {
  return h("label", { class: "field" }, h("span", {}, label), input, hint ? h("small", { class: "muted" }, hint) : null);
}

function diff(prev, plan) {
  if (!prev) return null;
  const before = new Map(prev.assignments.map((a) => [a.subtask_id, a.model]));
  const changes = plan.assignments.filter((a) => before.has(a.subtask_id) && before.get(a.subtask_id) !== a.model);
  const text = changes.length
    ? changes.map((a) => `${a.subtask_id}: ${before.get(a.subtask_id)} → ${a.model}`).join("; ")
    : "same assignment as the previous decision";
  return h("p", { class: "diff" }, h("strong", {}, "Compared with the previous decision: "), text, ` (objective ${fmt(prev.objective, 4)} → ${fmt(plan.objective, 4)})`);
}

function num(input) {
  const v = input.value.trim();
  return v === "" ? undefined : Number(v);
}

export async function routePage(page) {
  const subtasks = h("textarea", { id: "rp-subtasks", rows: 12, spellcheck: "false" });
  subtasks.value = JSON.stringify(EXAMPLE, null, 2);
  const mode = h("select", { id: "rp-routing" }, ["lp", "greedy", "lp_relaxed", "random", "llm"].map((m) => h("option", { value: m }, m)));
  const lswitch = h("input", { id: "rp-lambda-switch", type: "number", step: "any", min: "0", value: "0.2" });
  const ltoken = h("input", { id: "rp-lambda-token", type: "number", step: "any", min: "0", value: "0.5" });
  const vram = h("input", { id: "rp-gpu", type: "number", step: "any", min: "0", placeholder: "tenant default" });
  const depth = h("input", { id: "rp-horizon", type: "number", step: "1", min: "0", placeholder: "all layers" });
  const loaded = h("input", { id: "rp-loaded", type: "text", placeholder: "from the GPU now (e.g. gemma2:2b)" });
  const out = h("div", { id: "rp-result" });
  const submit = async (ev) => {
    ev.preventDefault();
    let body;
    try {
      // a what-if: G may exceed the tenant's own (decision only, marked hypothetical in the answer)
      body = { subtasks: JSON.parse(subtasks.value), routing: mode.value, lambda_switch: num(lswitch), lambda_token: num(ltoken), gpu_vram_gb: num(vram), horizon_depth: num(depth), hypothetical: true };
    } catch (err) {
      out.replaceChildren(errorBox(`subtasks: not valid JSON (${err.message})`));
      return;
    }
    if (loaded.value.trim()) body.loaded_models = loaded.value.split(",").map((x) => x.trim()).filter(Boolean);
    out.replaceChildren(h("p", { class: "muted" }, "Routing…"));
    try {
      const res = await api("/route", { method: "POST", body: JSON.stringify(body) });
      const plan = { ...res, mode: res.routing };
      out.replaceChildren(
        h("h3", {}, `Decision (G = ${body.gpu_vram_gb ?? "default"} GB, λ_switch = ${body.lambda_switch ?? "default"}, λ_token = ${body.lambda_token ?? "default"})`),
        diff(previous, plan) || "",
        decisionView(plan),
        res.beyond_horizon && res.beyond_horizon.length ? h("p", { class: "muted" }, `beyond the horizon: ${res.beyond_horizon.join(", ")}`) : "",
      );
      previous = plan;
    } catch (err) {
      out.replaceChildren(errorBox(err));
    }
  };
  const form = h(
    "form",
    { class: "playground", id: "rp-form", onsubmit: submit },
    field("Subtasks (JSON list: id, task_type, description, deps, estimated_tokens, difficulty)", subtasks),
    h(
      "div",
      { class: "knobs" },
      field("router", mode),
      field("λ_switch", lswitch, "weight of model loads"),
      field("λ_token", ltoken, "weight of token cost"),
      field("G (GB)", vram, "VRAM budget"),
      field("horizon depth", depth),
      field("loaded models", loaded, "comma-separated; empty: what the GPU holds"),
    ),
    h("button", { type: "submit", id: "rp-submit" }, "Route"),
  );
  page.show(
    h("h2", {}, "Route playground"),
    h("p", { class: "muted" }, "Decides only (POST /route): nothing runs. Change λ_switch or G and route again to see the winner change."),
    form,
    out,
  );
}
