"""`make demo`: start the service on a free loopback port, run a real job over HTTP, print plan and answers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx
from rich.console import Console

from app.core.paths import config_file
from app.routing.registry import DEFAULT_MODE

console = Console()

JOB: dict[str, Any] = {
    "subtasks": [
        {
            "id": "facts",
            "task_type": "extraction",
            "description": "List three facts about the planet Mars as short bullet points.",
            "estimated_tokens": 80,
            "difficulty": 0.2,
        },
        {
            "id": "summary",
            "task_type": "summarize",
            "description": "Summarize the facts above in one sentence for a ten-year-old.",
            "estimated_tokens": 60,
            "difficulty": 0.3,
            "deps": ["facts"],
        },
    ],
    "routing": DEFAULT_MODE,
    "horizon_depth": 1,
}


def demo_agents() -> list[dict[str, Any]]:
    """The embedded catalog with demo priors: SmolLM2 for facts, Gemma for summaries, so the job needs both."""
    path = config_file("agents_local.json")
    agents: list[dict[str, Any]] = json.loads(path.read_text())["agents"]
    focus = {"smollm2:135m": "extraction", "gemma3:270m": "summarize"}
    for agent in agents:
        agent["capabilities"] = {t: (0.8 if t == focus.get(agent["name"]) else 0.2) for t in agent["capabilities"]}
    return agents


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"service exited early with code {proc.returncode}")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise SystemExit("service did not become healthy in time")


def show(job: dict[str, Any]) -> None:
    console.rule(f"routing plan ({job['routing']}, job {job['id']})")
    for step in job["plan"]:
        assigned = ", ".join(f"{a['subtask_id']}→{a['model']}" for a in step["assignments"] if a["step"] == 0)
        evicts = ",".join(e["model"] for e in step["evictions"] if e["step"] == 0) or "-"
        loads = ",".join(e["model"] for e in step["loads"] if e["step"] == 0) or "-"
        console.print(
            f"step {step['step_index']}: ready={','.join(step['ready'])}  run: {assigned}  evict: {evicts}  "
            f"load: {loads}  [{step['solver_name']} {step['solver_status']} {step['solve_time_ms'] or 0:.2f} ms, "
            f"objective {step['objective']:.3f}]"
        )
    for sub in job["subtasks"]:
        console.rule(f"{sub['subtask_id']} ({sub['task_type']}) on {sub['model']} — {sub['status']}")
        console.print((sub["output"] or sub["error"] or "").strip()[:800])
    if job.get("final_answer") and len(job["subtasks"]) > 1:
        console.rule("final answer")
        console.print(job["final_answer"].strip()[:800])
    s = job["summary"] or {}
    console.rule("summary")
    console.print(
        f"status={job['status']}  wall={job['wall_ms']:.0f} ms  models swapped in={s.get('models_swapped_in')}  "
        f"measured load ms={s.get('measured_switch_ms')}  VRAM peak={s.get('vram_peak_gb')} GB"
    )


def main() -> int:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    backend = os.environ.get("SWARM_BACKEND", "auto")
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SWARM_DATABASE_URL": f"sqlite:///{tmp}/demo.db", "SWARM_BACKEND": backend}
        cmd = [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--log_level", "warning"]
        console.print(f"[bold]starting[/] the router on {base} (backend={backend})")
        proc = subprocess.Popen(cmd, env=env)
        try:
            wait_ready(base, proc)
            ready = httpx.get(base + "/readyz", timeout=10).json()
            console.print(f"readyz: {json.dumps(ready['components'])}")
            job = JOB
            if ready["components"]["backend"].get("kind") == "local":
                # A budget that holds one embedded model but not both, so the job shows a real swap.
                job = {**JOB, "agents": demo_agents(), "gpu_vram_gb": 0.45}
            resp = httpx.post(base + "/jobs", params={"wait": "true"}, json=job, timeout=600)
            if resp.status_code != 200:
                console.print(f"[red]job failed: {resp.status_code} {resp.text}[/]")
                return 1
            show(resp.json())
            return 0 if resp.json()["status"] == "succeeded" else 1
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    raise SystemExit(main())
