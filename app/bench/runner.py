"""Benchmark runner: every routing mode on the same examples, from the same GPU state and estimator snapshot."""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.backends.base import Backend
from app.backends.sim import SimBackend
from app.bench.config import BenchConfig, ProgressFn
from app.bench.judging import judge_rows, output_rows
from app.bench.mtbench_report import BENCH, mtbench_pairwise, write_judgements
from app.bench.registry import get_benchmark, load_examples
from app.bench.report import build_report
from app.bench.report_io import write_report
from app.bench.sandbox import network_isolation
from app.bench.simkeys import register_examples
from app.bench.types import Example, JobRecord, ScoreResult
from app.core.errors import InfeasibleError, ValidationFailed
from app.domain.models import Agent, Plan, RoutingProblem, Subtask
from app.execution.cpu import run_cpu
from app.execution.orchestrator import Orchestrator
from app.execution.results import JobResult, JobSpec
from app.execution.state import GpuState
from app.execution.telemetry import Recorder
from app.routing import Estimator
from app.routing.registry import EXACT
from app.routing.router import route_exact
from app.storage.repo import Repo

__all__ = ["BenchConfig", "BenchResult", "JobRecord", "ProgressFn", "run_bench"]


class OracleTap(Estimator):
    """The mode's estimator, which also re-solves each routing problem exactly under the estimates it hands out.

    The orchestrator asks for estimates once per plan step, so `optima[k]` is step k's exact optimum (None when
    infeasible): the oracle gap compares like with like, same problem, same estimates.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.optima: list[float | None] = []

    def estimates(self, problem: RoutingProblem) -> Any:
        est = super().estimates(problem)
        try:
            self.optima.append(_exact(problem, est))
        except Exception:  # infeasible or solver failure: no oracle for this step
            self.optima.append(None)
        return est


def _tap(snapshot: dict[str, Any], frozen: bool) -> OracleTap:
    tap = OracleTap.from_dict(snapshot, frozen=frozen)
    assert isinstance(tap, OracleTap)
    return tap


class _Fixed(Estimator):
    def __init__(self, est: Any) -> None:
        super().__init__(frozen=True)
        self._est = est

    def estimates(self, problem: RoutingProblem) -> Any:
        return self._est


def _exact(problem: RoutingProblem, est: Any) -> float:
    plan: Plan = route_exact(problem, _Fixed(est))
    return float(plan.objective)


@dataclass
class BenchResult:
    config: BenchConfig
    output_dir: Path
    report: dict[str, Any]
    jobs: list[JobRecord] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    estimators: dict[str, Estimator] = field(default_factory=dict)  # each mode's estimator after the run

    def trained(self) -> Estimator:
        """The estimator to save after a run: the exact router's, else the first mode's."""
        return self.estimators.get(EXACT) or self.estimators[self.config.modes[0]]


def mode_schedule(modes: list[str], n_examples: int, block_size: int) -> list[tuple[int, list[str], range]]:
    """(block, mode order, example index range): rotate the order each block so no mode always runs first."""
    out = []
    for b, start in enumerate(range(0, n_examples, block_size)):
        k = b % len(modes)
        out.append((b, modes[k:] + modes[:k], range(start, min(n_examples, start + block_size))))
    return out


async def reset_backend(backend: Backend, warm: list[str], keep_alive: str) -> list[str]:
    """Unload everything, then load the warm set: the state every mode starts from. Returns what is loaded."""
    for m in await backend.loaded():
        await backend.unload(m.name)
    for name in warm:
        await backend.load(name, keep_alive)
    return sorted(m.name for m in await backend.loaded())


async def _start_state(gpu: GpuState, backend: Backend, config: BenchConfig, shared: bool) -> list[str]:
    """The resident set a mode starts from. A private GPU is reset to the warm set; the service's GPU is shared
    with other tenants' calls, so it is left as its scheduler keeps it (the report records what was resident)."""
    if not shared:
        return await reset_backend(backend, config.warm, config.keep_alive)
    await gpu.refresh()
    return sorted(gpu.loaded_names)


def private_sim(config: BenchConfig, agents: list[Agent]) -> SimBackend:
    device = config.sim_device_gb or max(config.gpu_vram_gb, sum(a.vram_gb for a in agents))
    return SimBackend(agents, device, seed=config.seed, time_scale=config.time_scale, name="sim-bench")


def _job_seed(seed: int, example_id: str) -> int:
    return zlib.crc32(f"{seed}:{example_id}".encode()) & 0x7FFFFFFF


def _score_fn(
    config: BenchConfig, example: Example, scores: dict[str, ScoreResult]
) -> Callable[[Subtask, str], float | None]:
    bench = get_benchmark(example.benchmark)

    def score(sub: Subtask, output: str) -> float | None:
        result = bench.score(example, {sub.id: output}, code_eval=config.code_eval)[sub.id]
        scores[sub.id] = result
        # The estimator learns only from real scores: never from the unexecuted-code heuristic.
        return None if result.method == "heuristic" else result.score

    return score


async def _run_job(
    config: BenchConfig, orch: Orchestrator, tap: OracleTap, agents: list[Agent], mode: str, ex: Example
) -> tuple[JobResult, dict[str, ScoreResult], list[float | None]]:
    scores: dict[str, ScoreResult] = {}
    tap.optima = []
    spec = JobSpec(
        job_id=f"{mode}-{ex.id}",
        agents=agents,
        subtasks=ex.plain_subtasks(),
        mode=mode,
        params=config.params,
        horizon_depth=config.horizon_depth,
        gpu_vram_gb=config.gpu_vram_gb,
        # A benchmark pins the planner (default: the smallest agent, as the original tool did) instead of letting
        # the scheduler bind whichever model is resident: the llm mode's plans stay the same run to run.
        planner_model=config.planner_model or min(agents, key=lambda a: a.vram_gb).name,
        planner_timeout_s=config.planner_timeout_s,
        router_model=config.router_model,
        router_tau=config.router_tau,
        seed=_job_seed(config.seed, ex.id),
        synthesize=False,  # the benchmark scores subtasks; a synthesis call would only perturb GPU state
        score_fn=_score_fn(config, ex, scores),
    )
    result = await orch.run(spec)
    return result, scores, list(tap.optima)


def preflight(config: BenchConfig, agents: list[Agent]) -> list[Example]:
    """Everything that can be checked before a run starts (an HTTP run answers 422 instead of failing later)."""
    smallest = min(agents, key=lambda a: a.vram_gb)
    if config.gpu_vram_gb < smallest.vram_gb:
        raise InfeasibleError(
            f"gpu_vram_gb: {config.gpu_vram_gb:g} GB is smaller than every model "
            f"(the smallest, {smallest.name}, needs {smallest.vram_gb:g} GB)"
        )
    if config.code_eval:
        network_isolation()  # no real isolation (and no unsafe opt-in): refuse now, naming why
    names = {a.name for a in agents}
    for model in config.warm:
        if model not in names:
            raise ValidationFailed(f"warm: {model!r} is not in the agent catalog ({', '.join(sorted(names))})")
    opts = {"data_dir": config.data_dir} if config.data_dir else {}
    return load_examples(config.benchmarks, config.limit, config.seed, config.mix, **opts)


async def run_bench(
    config: BenchConfig,
    *,
    backend: Backend,
    agents: list[Agent],
    estimator: Estimator,
    progress: ProgressFn | None = None,
    gpu: GpuState | None = None,
    repo: Repo | None = None,
    tenant_id: str = "default",
) -> BenchResult:
    """Run every mode over the same examples; write all outputs into config.output_dir and return the report.
    `gpu`: the service's GPU (its scheduler is shared with all other traffic); None = a private one on `backend`.
    With a repo, every telemetry event also lands in its event log (tagged with bench_id = the output folder name).
    """
    started = time.perf_counter()
    out = Path(config.output_dir)
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    examples = preflight(config, agents)
    if isinstance(backend, SimBackend):
        register_examples(backend, examples)
    _write_inputs(out, config, examples)
    snapshot = estimator.to_dict()
    taps = {m: _tap(snapshot, config.freeze_estimator) for m in config.modes}
    shared = gpu is not None
    if gpu is None:  # the scheduler holds the resident set within G, whatever a router planned
        gpu = GpuState(backend, config.gpu_vram_gb)
        if isinstance(backend, SimBackend) and backend.time_scale == 0:
            # An instant simulator has no time: waits and idle spans are zero, so the scheduler's decisions (and
            # the report) do not depend on how busy the machine running the benchmark is.
            gpu.scheduler.clock = _no_time
    totals = {(m, b): sum(1 for e in examples if e.benchmark == b) for m in config.modes for b in config.benchmarks}
    done = dict.fromkeys(totals, 0)
    jobs: list[JobRecord] = []
    starts: list[dict[str, Any]] = []
    recorders: dict[str, Recorder] = {}
    for block, order, idx in mode_schedule(config.modes, len(examples), config.block_size):
        for mode in order:
            loaded = await _start_state(gpu, backend, config, shared)
            starts.append({"block": block, "mode": mode, "loaded": loaded})
            tap = taps[mode]
            rec = recorders.setdefault(mode, _recorder(out, mode, repo, tenant_id))
            orch = Orchestrator(gpu, tap, rec, keep_alive=config.keep_alive, max_concurrency=config.max_concurrency)
            for i in idx:
                ex = examples[i]
                result, scores, optima = await _run_job(config, orch, tap, agents, mode, ex)
                jobs.append(JobRecord(mode, block, ex, result, scores, optima))
                done[(mode, ex.benchmark)] += 1
                if progress is not None:
                    progress(mode, ex.benchmark, done[(mode, ex.benchmark)], totals[(mode, ex.benchmark)])
    return await _conclude(config, out, backend, agents, jobs, starts, started, recorders, dict(taps))


async def _conclude(
    config: BenchConfig,
    out: Path,
    backend: Backend,
    agents: list[Agent],
    jobs: list[JobRecord],
    starts: list[dict[str, Any]],
    started: float,
    recorders: dict[str, Recorder],
    taps: dict[str, Estimator],
) -> BenchResult:
    """After every mode ran: the optional judges (never during a mode: they would perturb its GPU state), the
    report and every output file."""
    rows = output_rows(jobs)
    if config.judge:
        await judge_rows(rows, jobs, backend, agents, config, dict(taps))
        keys = ("subtask", "model", "score", "judge_score", "judge_rationale", "judge_error")
        for row in rows:  # the verdicts in telemetry too, rationale beside the score
            await recorders[row["mode"]].event("judge", f"{row['mode']}-{row['job']}", {k: row[k] for k in keys})
    elapsed_s = time.perf_counter() - started
    # report building is CPU work: the bounded CPU executor, never the event loop (inline in a dry run's thread)
    report, job_rows = await run_cpu(build_report, config, agents, jobs, rows, starts, elapsed_s, gpu_name=backend.name)
    if config.mtbench_judge and BENCH in config.benchmarks:
        fields, judgements = await mtbench_pairwise(rows, jobs, backend, agents, config)
        report |= fields
        write_judgements(out, judgements)
    await run_cpu(write_report, out, report, rows, jobs, job_rows)
    return BenchResult(config, out, report, jobs, rows, dict(taps))


def _recorder(out: Path, mode: str, repo: Repo | None, tenant_id: str) -> Recorder:
    """A mode's telemetry: its JSONL file and, with a repo, the database's event log (events only: bench jobs
    have no `jobs` rows), every event tagged with the run and the mode."""
    tags = {"bench_id": out.name, "routing_mode": mode}
    return Recorder(repo, tenant_id, out / "runs" / mode / "telemetry.jsonl", events_only=True, tags=tags)


def _write_inputs(out: Path, config: BenchConfig, examples: list[Example]) -> None:
    (out / "bench_config.json").write_text(config.model_dump_json(indent=2) + "\n", encoding="utf-8")
    with (out / "examples.jsonl").open("w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps(ex.model_dump(mode="json"), sort_keys=True) + "\n")


def _no_time() -> float:
    return 0.0
