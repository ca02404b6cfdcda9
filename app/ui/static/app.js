// Dashboard shell: the API key form, hash routing (#/page/arg) and the page lifecycle (timers, streams).
import { api, errorBox, getKey, h, setKey } from "./dom.js";
import { benchListPage, benchReportPage } from "./bench.js";
import { gpusPage } from "./gpus.js";
import { jobPage, jobsPage } from "./jobs.js";
import { routePage } from "./route.js";
import { tenantsPage } from "./tenants.js";

const PAGES = {
  gpus: gpusPage,
  jobs: (page, arg) => (arg ? jobPage(page, arg) : jobsPage(page)),
  route: routePage,
  bench: (page, arg) => (arg ? benchReportPage(page, arg) : benchListPage(page)),
  tenants: tenantsPage,
};

let current = null;

class Page {
  constructor(root) {
    this.root = root;
    this.alive = true;
    this.timers = [];
    this.controllers = [];
  }
  every(ms, fn) {
    const tick = async () => {
      if (!this.alive) return;
      try {
        await fn();
      } catch (err) {
        console.warn("refresh failed:", err.message);
      } finally {
        if (this.alive) this.timers.push(setTimeout(tick, ms));
      }
    };
    this.timers.push(setTimeout(tick, ms));
  }
  controller() {
    const c = new AbortController();
    this.controllers.push(c);
    return c;
  }
  show(...nodes) {
    if (this.alive) this.root.replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
  }
  close() {
    this.alive = false;
    this.timers.forEach(clearTimeout);
    this.controllers.forEach((c) => c.abort());
  }
}

async function route() {
  const [, name = "gpus", arg = ""] = (location.hash || "#/gpus").split("/");
  if (current) current.close();
  const root = document.getElementById("view");
  current = new Page(root);
  for (const a of document.querySelectorAll("#nav a[data-page]")) a.classList.toggle("active", a.dataset.page === name);
  const render = PAGES[name];
  if (!render) {
    current.show(h("h2", {}, "Not found"), h("p", {}, `No page "${name}".`));
    return;
  }
  document.title = `${name} · Swarm Router`;
  try {
    await render(current, decodeURIComponent(arg));
  } catch (err) {
    current.show(h("h2", {}, "Could not load this page"), errorBox(err), h("p", { class: "muted" }, "Check the API key above."));
  }
}

async function whoami() {
  const out = document.getElementById("whoami");
  try {
    const me = await api("/tenants/me");
    out.textContent = `tenant ${me.name}${me.is_admin ? " (admin: sees every tenant)" : ""}`;
  } catch (err) {
    out.textContent = `key rejected: ${err.message}`;
  }
}

function init() {
  const form = document.getElementById("keyform");
  const input = document.getElementById("apikey");
  input.value = getKey();
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    setKey(input.value.trim());
    whoami();
    route();
  });
  window.addEventListener("hashchange", route);
  whoami();
  route();
}

init();
