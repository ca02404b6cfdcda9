// Tenants: the admin sees every tenant's token usage against its budget; a tenant sees its own.
import { api, fmt, h, table, when } from "./dom.js";

function usageBar(used, budget) {
  if (budget === null || budget === undefined) return h("span", { class: "muted" }, `${fmt(used)} tokens (no budget)`);
  const frac = budget ? Math.min(1, used / budget) : 1;
  const fill = h("div", { class: frac >= 1 ? "fill over" : frac > 0.8 ? "fill warn" : "fill" });
  fill.style.width = `${Math.round(100 * frac)}%`;
  return h("div", { class: "progress", title: `${used} of ${budget}` }, fill, h("span", {}, `${fmt(used)} / ${fmt(budget)} tokens (${Math.round(100 * frac)}%)`));
}

export async function tenantsPage(page) {
  const me = await api("/tenants/me");
  if (!me.is_admin) {
    page.show(
      h("h2", {}, "Tenant"),
      h("p", { class: "muted" }, "Only the admin key sees every tenant; this is yours."),
      table(["tenant", "usage against budget", "GPU", "G GB", "models"], [[me.name, usageBar(me.usage.tokens_used, me.usage.token_budget), me.gpu.backend, fmt(me.gpu.gpu_vram_gb), me.agents.join(", ")]]),
    );
    return;
  }
  const data = await api("/admin/tenants");
  const rows = data.items.map((t) => ({
    attrs: { "data-tenant": t.name },
    cells: [t.name, t.key_prefix ? `${t.key_prefix}…` : "open", usageBar(t.tokens_used, t.token_budget), t.backend_url || "shared GPU", fmt(t.gpu_vram_gb), when(t.created_at)],
  }));
  page.show(h("h2", {}, "Tenants"), h("p", { class: "muted small" }, "Token usage against budget (proxied calls, jobs and GPU benchmark runs count)."), table(["tenant", "key", "usage against budget", "GPU", "G GB", "created"], rows, { class: "tenants" }));
}
