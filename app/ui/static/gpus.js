// GPUs: capacity and resident models per GPU, the queue by model and tenant, the load/eviction timeline.
import { api, fmt, h, table, when } from "./dom.js";
import { timelineStrip } from "./charts.js";

function capacityBar(gpu) {
  const segs = gpu.resident.map((m) => {
    const bar = h("div", { class: "seg", title: `${m.name}: ${fmt(m.size_vram_gb, 2)} GB` }, `${m.name} ${fmt(m.size_vram_gb, 1)} GB`);
    bar.style.width = `${Math.min(100, (100 * m.size_vram_gb) / gpu.capacity_gb)}%`;
    return bar;
  });
  return h(
    "div",
    { class: "capacity" },
    h("div", { class: "bar" }, segs),
    h("p", { class: "small" }, `${fmt(gpu.used_gb, 2)} GB used of ${fmt(gpu.capacity_gb, 2)} GB · ${fmt(gpu.free_gb, 2)} GB free · peak ${fmt(gpu.peak_resident_gb, 2)} GB`),
  );
}

function gpuCard(gpu) {
  const rows = gpu.resident.map((m) => ({
    attrs: { "data-model": m.name },
    cells: [m.name, fmt(m.size_gb, 2), fmt(m.size_vram_gb, 2), gpu.in_flight_tracked ? fmt(m.in_flight) : "not tracked", m.expires_at || "–"],
  }));
  return h(
    "section",
    { class: "card gpu" },
    h("h3", {}, `GPU ${gpu.id}`),
    gpu.error ? h("p", { class: "error" }, `backend unreachable: ${gpu.error}`) : null,
    h("p", { class: "muted small" }, `tenants: ${gpu.tenants.join(", ") || "–"} · read ${when(gpu.refreshed_at)}`),
    capacityBar(gpu),
    rows.length
      ? table(["resident model", "size GB", "VRAM GB", "in-flight calls", "expires"], rows, { class: "resident" })
      : h("p", { class: "muted" }, "No model resident."),
  );
}

function counts(title, obj) {
  const entries = Object.entries(obj || {});
  return h(
    "div",
    {},
    h("h4", {}, title),
    entries.length ? table(["", "waiting"], entries.map(([k, v]) => [k, fmt(v)])) : h("p", { class: "muted" }, "nothing waiting"),
  );
}

function view(data) {
  const q = data.queue;
  const events = data.events.slice().reverse();
  return [
    h("h2", {}, "GPUs"),
    h("div", { class: "cards" }, data.gpus.map(gpuCard)),
    h(
      "section",
      { class: "card" },
      h("h3", {}, "Queue"),
      h("p", { class: "muted small" }, q.source ? `from ${q.source}` : "No GPU scheduler is attached: work waits on each GPU's lock, not in a visible queue."),
      h("div", { class: "cols" }, counts("by model", q.by_model), counts("by tenant", q.by_tenant)),
    ),
    h(
      "section",
      { class: "card" },
      h("h3", {}, "Loads and evictions"),
      timelineStrip(data.events),
      events.length
        ? table(
            ["time", "event", "model", "GPU", "job", "why"],
            events.map((e) => ({
              attrs: { class: `ev-${e.kind}` },
              cells: [new Date(e.ts * 1000).toLocaleTimeString(), e.kind, e.model, e.gpu, e.job_id ? h("a", { href: `#/jobs/${e.job_id}` }, e.job_id) : "–", e.reason],
            })),
            { class: "events" },
          )
        : null,
    ),
  ];
}

export async function gpusPage(page) {
  page.show(...view(await api("/gpus")));
  page.every(2000, async () => page.show(...view(await api("/gpus"))));
}
