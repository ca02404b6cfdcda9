"""Orchestrator on the simulated GPU and on a faulty Ollama: data flow, VRAM safety, failures, telemetry."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.backends.base import JSON
from app.backends.ollama import OllamaBackend
from app.backends.sim import SimBackend
from app.backends.transport import HttpxTransport
from app.domain.models import Agent, Subtask
from app.execution.dag import TaskDAG
from app.execution.orchestrator import Orchestrator
from app.execution.results import JobSpec
from app.execution.state import GpuState
from app.execution.telemetry import Recorder
from app.routing import Estimator, load_agents
from app.storage import db
from app.storage.models import Job
from app.storage.repo import Repo

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
pytestmark = pytest.mark.anyio


def heavy() -> list[Agent]:
    return load_agents(CONFIGS / "agents_heavy.json")


def chain() -> list[Subtask]:
    return [
        Subtask(id="a", task_type="extraction", description="Extract the numbers from: 3 apples, 4 pears."),
        Subtask(id="b", task_type="math", description="Add the numbers.", deps=["a"]),
        Subtask(id="c", task_type="code", description="Write a function returning the sum.", deps=["b"]),
    ]


class Recording(SimBackend):
    """The sim, remembering every chat request it served."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requests: list[JSON] = []

    async def chat(self, request: JSON) -> JSON:
        self.requests.append(request)
        return await super().chat(request)


def orchestrator(backend: Any, capacity: float, recorder: Recorder | None = None) -> Orchestrator:
    return Orchestrator(GpuState(backend, capacity), Estimator(), recorder or Recorder(None, "default"))


async def test_children_receive_parents_outputs() -> None:
    sim = Recording(heavy(), 8.0, seed=3)
    spec = JobSpec(job_id="j", agents=heavy(), subtasks=chain(), query="How many fruits, as code?")
    result = await orchestrator(sim, 8.0).run(spec)
    assert result.status == "succeeded"
    prompts = {r["messages"][-1]["content"].split("\n")[0]: r["messages"][-1]["content"] for r in sim.requests}
    child = prompts["Add the numbers."]
    grandchild = prompts["Write a function returning the sum."]
    out_a, out_b = result.subtasks["a"].output, result.subtasks["b"].output
    assert out_a and out_a[:200] in child
    assert out_b and out_b[:200] in grandchild
    assert out_a[:200] not in grandchild  # only direct parents are fed
    # a multi-subtask job with a question gets a synthesised final answer ...
    assert result.final_answer and len(sim.requests) == 4
    assert "How many fruits, as code?" in sim.requests[-1]["messages"][-1]["content"]
    # ... without one, the answer is what the final subtask said
    bare = await orchestrator(sim, 8.0).run(JobSpec(job_id="k", agents=heavy(), subtasks=chain()))
    assert bare.final_answer == bare.subtasks["c"].output and len(sim.requests) == 7


async def test_horizon_excludes_finished_nodes_and_depth_zero_is_layer_by_layer() -> None:
    sim = SimBackend(heavy(), 8.0)
    for depth, expected in ((0, [["a"], ["b"], ["c"]]), (1, [["a", "b"], ["b", "c"], ["c"]])):
        result = await orchestrator(sim, 8.0).run(
            JobSpec(job_id=f"d{depth}", agents=heavy(), subtasks=chain(), horizon_depth=depth)
        )
        assert [s["horizon_nodes"] for s in result.steps] == expected
        assert [s["ready_now_nodes"] for s in result.steps] == [["a"], ["b"], ["c"]]


async def test_concurrent_jobs_never_exceed_g() -> None:
    # The simulated device is far larger than G, so only the router's own discipline keeps the peak under G:
    # plan-and-load under the GPU lock, evictions carried out, helper-LLM models (decomposer, planner,
    # synthesiser) given room like any other model.
    agents = heavy()
    sim = SimBackend(agents, 24.0, seed=1)
    gpu = GpuState(sim, 8.0)
    specs = [
        JobSpec(job_id=f"j{i}", agents=agents, subtasks=chain(), mode=mode, seed=i)
        for i, mode in enumerate(("lp", "greedy", "random", "llm", "lp_relaxed"))
    ]
    specs[-1] = JobSpec(job_id="q", agents=agents, query="Write a Python function that sums a list.")
    runs = [Orchestrator(gpu, Estimator(), Recorder(None, "t")).run(s) for s in specs]
    results = await asyncio.gather(*runs)
    assert all(r.status == "succeeded" for r in results), [r.error for r in results]
    assert sim.peak_vram_gb <= 8.0 + 1e-9
    assert max(r.summary["vram_peak_gb"] for r in results) <= 8.0 + 1e-9


async def test_loads_reported_only_when_the_backend_loaded() -> None:
    agents = heavy()
    sim = SimBackend(agents, 24.0)
    orch = orchestrator(sim, 24.0)
    one = [Subtask(id="s", task_type="code", description="write code")]
    first = await orch.run(JobSpec(job_id="1", agents=agents, subtasks=one, gpu_vram_gb=24.0))
    second = await orch.run(JobSpec(job_id="2", agents=agents, subtasks=one, gpu_vram_gb=24.0))
    assert first.summary["models_swapped_in"] == 1
    assert second.summary["models_swapped_in"] == 0  # the model stayed resident: no phantom load
    assert second.steps[0]["resident_before"] == [first.subtasks["s"].model]


def faulty_ollama(fault: str, failing_model: str, resident: list[str] | None = None) -> httpx.MockTransport:
    """An Ollama that serves every model except `failing_model`, which fails in the given way."""
    resident = [] if resident is None else resident
    size = {"foreign:7b": int(7e9)}

    async def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        body = json.loads(request.content or b"{}")
        if path == "/api/ps":
            models = [
                {"name": m, "model": m, "size": size.get(m, int(2e9)), "size_vram": size.get(m, int(2e9))}
                for m in resident
            ]
            return httpx.Response(200, json={"models": models})
        model = body.get("model")
        if model == failing_model and path in ("/api/chat", "/api/generate"):
            if fault == "404":
                return httpx.Response(404, json={"error": f"model '{model}' not found"})
            if fault == "500":
                return httpx.Response(500, json={"error": "llama runner process has terminated"})
            if fault == "down":
                raise httpx.ConnectError("connection refused", request=request)
            if fault == "timeout":
                await asyncio.sleep(5)
            if fault == "broken" and path == "/api/chat":
                return httpx.Response(200, content=b'{"model": "bad", "message": {"role": "assis')
        if path == "/api/generate":  # load / unload
            if body.get("keep_alive") == 0:
                resident[:] = [m for m in resident if m != model]
            elif model not in resident:
                resident.append(model)
            return httpx.Response(200, json={"model": model, "response": "", "done": True, "load_duration": 5_000_000})
        if path == "/api/chat":
            msg = {"role": "assistant", "content": f"answer from {model}"}
            return httpx.Response(200, json={"model": model, "message": msg, "done": True, "eval_count": 7})
        return httpx.Response(404, json={"error": "not found"})

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    ("fault", "needle"),
    [
        ("404", "not found"),
        ("500", "terminated"),
        ("down", "unavailable"),
        ("timeout", "timeout"),
        ("broken", "badbackendresponse"),
    ],
)
async def test_backend_fault_fails_job_and_keeps_finished_results(tmp_path: Path, fault: str, needle: str) -> None:
    agents = [
        Agent(
            name="good",
            cost_per_token=0.1,
            max_ctx=8192,
            capabilities={"extraction": 0.9, "math": 0.1, "code": 0.1},
            vram_gb=2.0,
            load_time_ms=100,
        ),
        Agent(
            name="bad",
            cost_per_token=0.1,
            max_ctx=8192,
            capabilities={"extraction": 0.1, "math": 0.9, "code": 0.9},
            vram_gb=2.0,
            load_time_ms=100,
        ),
    ]
    repo = Repo(db.make_engine(f"sqlite:///{tmp_path / 'f.db'}"))
    db.upgrade(repo.engine)
    tenant = repo.ensure_default_tenant()
    repo.create_job(Job(id="jf", tenant_id=tenant.id))
    async with httpx.AsyncClient(transport=faulty_ollama(fault, "bad"), base_url="http://ollama") as client:
        backend = OllamaBackend(HttpxTransport(client, "http://ollama", deadline_s=0.5))
        orch = orchestrator(backend, 8.0, Recorder(repo, tenant.id))
        result = await orch.run(JobSpec(job_id="jf", agents=agents, subtasks=chain()))
    assert result.status == "failed"
    assert "subtask 'b' failed on bad" in (result.error or "") and needle in (result.error or "").lower()
    assert "skipped dependents: c" in (result.error or "")
    rows = {r.subtask_id: r for r in repo.subtasks("jf")}
    assert rows["a"].status == "done" and rows["a"].output == "answer from good"
    assert rows["b"].status == "failed" and rows["c"].status == "skipped"
    job = repo.get_job(tenant.id, "jf")
    assert job is not None and job.status == "failed" and job.error == result.error


async def test_foreign_model_is_unloaded_only_when_the_step_needs_the_room() -> None:
    agents = [
        Agent(name="good", cost_per_token=0.1, max_ctx=8192, capabilities={"code": 0.9}, vram_gb=2.0, load_time_ms=100)
    ]
    one = [Subtask(id="s", task_type="code", description="write code")]
    for capacity, expect_unloaded in ((8.0, True), (12.0, False)):
        resident = ["foreign:7b"]
        async with httpx.AsyncClient(transport=faulty_ollama("none", "-", resident), base_url="http://o") as client:
            orch = orchestrator(OllamaBackend(HttpxTransport(client, "http://o")), capacity)
            result = await orch.run(JobSpec(job_id="f", agents=agents, subtasks=one))
        assert result.status == "succeeded"
        assert ("foreign:7b" not in resident) is expect_unloaded
        assert ("foreign:7b" in result.steps[0]["evictions_done"]) is expect_unloaded


def test_parent_outputs_count_against_the_child_context() -> None:
    from app.execution.orchestrator import with_inputs
    from app.execution.results import SubtaskResult

    dag = TaskDAG(chain())
    results = {s.id: SubtaskResult(s.id, s.task_type) for s in chain()}
    child = with_inputs(dag, "b", results)
    assert child.input_tokens == dag.nodes["a"].estimated_tokens  # not run yet: the estimate
    results["a"].status, results["a"].eval_tokens = "done", 5000
    child = with_inputs(dag, "b", results)
    assert child.input_tokens == 1000  # measured, cut like the prompt cuts it (4000 chars)
    assert child.context_tokens == len(child.description) // 4 + 1000 + child.estimated_tokens
    assert with_inputs(dag, "a", results).input_tokens == 0
