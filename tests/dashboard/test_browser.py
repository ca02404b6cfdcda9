"""The dashboard and the API docs in headless Chromium against a live sim-backed service: every page loads with no
failed or outside request and no console error, and shows live data. Screenshots go to screenshots/ (git-ignored)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from tests.dashboard.conftest import ADMIN_KEY, TWO_STEP_JOB, Service, serve, service_settings, wait_job

CHROMIUM = os.environ.get("SWARM_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("SWARM_SCREENSHOTS_DIR", Path(__file__).resolve().parents[2] / "screenshots"))
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync"]

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e .[dev])"
)
if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
    pytest.skip(
        f"no Chromium at {CHROMIUM}: install Debian's chromium (.ci/run does as root) or set SWARM_CHROMIUM",
        allow_module_level=True,
    )


class Watch:
    """Everything that went wrong on a page: failed or outside requests, HTTP errors, console errors."""

    def __init__(self, page: Any, base: str) -> None:
        self.problems: list[str] = []
        self.base = base
        page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url} {r.failure}"))
        page.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status}: {r.url}"))
        page.on("console", lambda m: m.type == "error" and self.problems.append(f"console error: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.route("**/*", self._only_local)

    def _only_local(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(self.base) or url.startswith("data:"):
            route.continue_()
        else:
            self.problems.append(f"request leaving the machine: {url}")
            route.abort()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def open_page(browser: Any, service: Service) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    watches: list[Watch] = []

    def make(path: str, key: str | None = None, base: str | None = None) -> Any:
        page = context.new_page()
        watches.append(Watch(page, base or service.url))
        if key is not None:  # as if typed into the key form earlier (the page keeps it in localStorage)
            page.add_init_script(f"localStorage.setItem('swarm.apiKey', {key!r})")
        page.goto((base or service.url) + path)
        return page

    make.watches = watches  # type: ignore[attr-defined]
    yield make
    context.close()
    problems = [p for w in watches for p in w.problems]
    assert problems == []


def test_key_form_stores_the_key(service: Service, open_page: Any) -> None:
    page = open_page("/ui#/jobs")
    page.wait_for_selector("#whoami:has-text('key rejected')")  # keyed tenants exist: the open tenant is gone
    page.wait_for_selector("#view .error:has-text('missing API key')")
    open_page.watches[-1].problems.clear()  # those 401s were the point; from here on nothing may fail
    page.fill("#apikey", service.tenant_key)
    page.click("#keyform button")
    page.wait_for_selector("#whoami:has-text('tenant alice')")
    page.wait_for_selector("h2:has-text('Jobs')")
    page.reload()
    page.wait_for_selector("#whoami:has-text('tenant alice')")
    assert page.input_value("#apikey") == service.tenant_key


def shot(page: Any, name: str, full_page: bool = True) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def test_gpu_view_shows_the_resident_model(service: Service, open_page: Any) -> None:
    with service.client(service.tenant_key) as c:
        job = c.post("/jobs", json=TWO_STEP_JOB).json()
        done = wait_job(c, job["id"])
    models = {t["model"] for t in done["subtasks"]}  # type: ignore[union-attr]
    page = open_page("/ui#/gpus", service.tenant_key)
    page.wait_for_selector("#whoami:has-text('tenant alice')")
    resident = page.locator("table.resident tr[data-model]")
    resident.first.wait_for()
    assert set(resident.evaluate_all("rows => rows.map(r => r.dataset.model)")) & models
    page.locator("table.events tr.ev-load").first.wait_for()
    assert job["id"] in page.locator("table.events").inner_text()
    shot(page, "gpus")


def test_a_submitted_job_appears_runs_live_and_completes(service: Service, open_page: Any) -> None:
    page = open_page("/ui#/jobs", service.tenant_key)
    page.wait_for_selector("h2:has-text('Jobs')")
    with service.client(service.tenant_key) as c:
        job_id = c.post("/jobs", json=TWO_STEP_JOB).json()["id"]
    row = page.locator(f"tr[data-job='{job_id}']")
    row.wait_for(timeout=10_000)
    row.locator(".badge.st-succeeded").wait_for(timeout=30_000)
    shot(page, "jobs")

    with service.client(service.tenant_key) as c:
        job_id = c.post("/jobs", json=TWO_STEP_JOB).json()["id"]
    page.goto(f"{service.url}/ui#/jobs/{job_id}")
    page.wait_for_selector(f"h2:has-text('{job_id}')")
    page.locator(".facts .badge.st-succeeded").wait_for(timeout=30_000)
    page.wait_for_selector("text=● live", state="detached")
    assert page.locator("svg.dag g.node").count() == 3
    assert page.locator("section.step").count() >= 1
    chosen = page.locator("section.step table.matrix td.chosen")
    assert chosen.count() >= 3  # every subtask has its chosen (model, subtask) cell highlighted across the steps
    assert "solver" in page.locator("section.step .facts").first.inner_text()
    assert page.locator("table.subtasks tr[data-subtask] .badge.st-done").count() == 3
    shot(page, "job")


@pytest.fixture
def paced_url(tmp_path: Path) -> Iterator[str]:
    """A second service whose simulator takes half of real model time: a job runs for a few seconds."""
    with serve(create_app(service_settings(tmp_path, 0.5))) as url:
        yield url


def test_job_page_updates_live_while_the_job_runs(paced_url: str, open_page: Any) -> None:
    with httpx.Client(base_url=paced_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as admin:
        job_id = admin.post("/jobs", json=TWO_STEP_JOB).json()["id"]
    page = open_page(f"/ui#/jobs/{job_id}", ADMIN_KEY, base=paced_url)
    page.wait_for_selector("h2 .live", timeout=5_000)
    done_at_open = page.locator("table.subtasks .badge.st-done").count()
    assert done_at_open < 3
    # The page reads the job once, then only the SSE stream: more subtasks turn done while it is still live.
    more_done_while_live = (
        "n => document.querySelector('h2 .live') && document.querySelectorAll('table.subtasks .st-done').length > n"
    )
    page.wait_for_function(
        more_done_while_live,
        arg=done_at_open,
        timeout=20_000,
    )
    page.locator(".facts .badge.st-succeeded").wait_for(timeout=30_000)
    page.wait_for_selector("h2 .live", state="detached")
    assert page.locator("table.subtasks .badge.st-done").count() == 3
    assert page.locator("section.step").count() == 3


def test_route_playground_shows_the_decision_and_how_knobs_change_it(service: Service, open_page: Any) -> None:
    page = open_page("/ui#/route", service.tenant_key)
    page.click("#rp-submit")
    page.wait_for_selector("#rp-result table.matrix td.chosen")
    assert page.locator("#rp-result table.matrix td.chosen").count() == 3
    before = page.locator("#rp-result table.matrix td.chosen").evaluate_all("cs => cs.map(c => c.dataset.model)")
    assert len(set(before)) == 2  # at λ_switch 0.2 the coder model is worth its load for the code subtask
    page.fill("#rp-lambda-switch", "1")
    page.click("#rp-submit")
    page.wait_for_selector("#rp-result .diff")
    after = page.locator("#rp-result table.matrix td.chosen").evaluate_all("cs => cs.map(c => c.dataset.model)")
    assert len(set(after)) == 1 and "→" in page.locator("#rp-result .diff").inner_text()  # one model, no swap
    shot(page, "route")
    page.fill("#rp-gpu", "2.5")
    page.click("#rp-submit")
    page.wait_for_selector("#rp-result h3:has-text('G = 2.5 GB')")
    assert page.locator("#rp-result td.infeasible").count() == 9  # only gemma2:2b fits: 3 models x 3 subtasks out
    page.fill("#rp-subtasks", "[not json")
    page.click("#rp-submit")
    page.wait_for_selector("#rp-result .error:has-text('not valid JSON')")


def test_benchmark_runs_and_report(service: Service, open_page: Any) -> None:
    with service.client(service.tenant_key) as c:
        run = c.post(
            "/bench",
            json={
                "benchmarks": ["workflowbench"], "compare": "all", "limit": 3, "seed": 3, "dry_run": True,
                "gpu_vram_gb": 12,
            },
        )  # fmt: skip
        run_id = run.json()["id"]
        deadline = time.monotonic() + 120
        while c.get(f"/bench/{run_id}").json()["status"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
    page = open_page("/ui#/bench", service.tenant_key)
    page.locator(f"tr[data-run='{run_id}'] .badge.st-succeeded").wait_for()
    assert "100%" in page.locator(f"tr[data-run='{run_id}'] .progress").inner_text()
    shot(page, "bench")
    page.goto(f"{service.url}/ui#/bench/{run_id}")
    page.wait_for_selector("table.modes tr[data-mode='lp']")
    assert page.locator("table.modes tr[data-mode]").count() == 5
    assert page.locator("svg.chart").count() == 3
    assert page.locator("svg.chart line.budget").count() == 1
    assert page.locator("svg.chart line.errbar").count() > 0
    # lp_relaxed (the original tool's rounding) plans over G = 12 GB on this seed (qwen2.5-coder:7b beside
    # llama3.1:8b in one step): its row and its points are flagged
    assert page.locator("table.modes tr.violation-row").evaluate_all("rs => rs.map(r => r.dataset.mode)") == [
        "lp_relaxed"
    ]
    assert page.locator("svg.chart circle.pt.violation").count() == 3
    assert "planned or used more than G" in page.locator("ul.legend").inner_text()
    shot(page, "bench_report")


def test_tenants_page_for_the_admin_and_for_a_tenant(service: Service, open_page: Any) -> None:
    page = open_page("/ui#/tenants", ADMIN_KEY)
    page.wait_for_selector("table.tenants tr[data-tenant='alice']")
    assert page.locator("table.tenants tr[data-tenant='bob']").count() == 1
    shot(page, "tenants")
    own = open_page("/ui#/tenants", service.other_key)
    own.wait_for_selector("h2:has-text('Tenant')")
    assert "bob" in own.locator("table").inner_text() and "alice" not in own.locator("table").inner_text()


def test_api_docs_render_offline(service: Service, open_page: Any) -> None:
    page = open_page("/docs")
    page.locator(".opblock").first.wait_for()
    assert page.locator(".opblock").count() > 20
    assert page.locator(".opblock-summary-path:has-text('/gpus')").count() == 1
    shot(page, "docs", full_page=False)
    redoc = open_page("/redoc")
    redoc.locator("h2:has-text('/route'), [data-section-id]").first.wait_for()
    shot(redoc, "redoc", full_page=False)
