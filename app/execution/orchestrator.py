"""The MPC loop: plan over the horizon -> carry out evictions/loads -> run ready nodes -> observe -> replan."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from app.backends.base import Usage
from app.core.errors import BackendError
from app.domain.models import Plan, RoutingProblem, Subtask
from app.domain.status import FINISHED_SUBTASK, JobStatus, SubtaskStatus
from app.execution.cpu import run_cpu
from app.execution.dag import TaskDAG
from app.execution.decomposer import decompose
from app.execution.lifecycle import JobLifecycle
from app.execution.llm import bind_chat
from app.execution.prompts import PARENT_CHARS, subtask_messages, synthesis_messages
from app.execution.results import JobResult, JobSpec, SubtaskResult
from app.execution.state import GpuState
from app.execution.steps import StepLog, StepObservation, StepRecord, summarize
from app.execution.telemetry import Recorder
from app.routing import Estimator, route, route_sync
from app.routing.registry import needs_chat
from app.storage.models import PlanStepRecord, SubtaskRecord


class Orchestrator:
    def __init__(
        self,
        gpu: GpuState,
        estimator: Estimator,
        recorder: Recorder,
        *,
        keep_alive: str | int = "10m",
        max_concurrency: int = 4,
    ) -> None:
        self.gpu = gpu
        self.estimator = estimator
        self.rec = recorder
        self.keep_alive = keep_alive
        self.max_concurrency = max_concurrency

    def _helper_model(self, spec: JobSpec, explicit: str | None) -> str:
        """Planner / decomposer / synthesiser default: the smallest model of the catalog (cheapest to keep)."""
        return explicit or min(spec.agents, key=lambda a: a.vram_gb).name

    async def run(self, spec: JobSpec) -> JobResult:
        started = time.perf_counter()
        life = JobLifecycle(self.rec, spec.job_id)
        await life.start()
        results: dict[str, SubtaskResult] = {}
        log = StepLog()
        plan_source = spec.plan_source
        try:
            subtasks, plan_source = await self._subtasks(spec, log)
            dag = TaskDAG(subtasks)
            results = {s.id: SubtaskResult(s.id, s.task_type) for s in subtasks}
            await self._record_plan(spec, dag, plan_source)
            await self._loop(spec, dag, results, log)
            final = await self._final_answer(spec, dag, results, log)
            status, error = self._outcome(dag, results)
        except asyncio.CancelledError:
            cancelled = JobStatus.CANCELLED
            await self._finish(life, spec, results, log, cancelled, "cancelled by request", None, started, plan_source)
            raise
        except Exception as exc:
            msg = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            return await self._finish(life, spec, results, log, JobStatus.FAILED, msg, None, started, plan_source)
        return await self._finish(life, spec, results, log, status, error, final, started, plan_source)

    async def _make_room(self, spec: JobSpec, model: str, log: StepLog) -> None:
        """Before a helper call (decomposer, planner, synthesiser), evict what its model would not fit beside.

        Helper models occupy VRAM like any other: their loads count against G and in the measured peak.
        """
        resident = await self.gpu.refresh()
        log.observe_peak(self.gpu.resident_gb)
        if any(m.name == model for m in resident):
            return
        need = next((a.vram_gb for a in spec.agents if a.name == model), 0.0)
        capacity = spec.gpu_vram_gb or self.gpu.capacity_gb
        kept = sorted(resident, key=lambda m: m.size_vram)
        while kept and sum(m.size_vram for m in kept) / 1e9 + need > capacity + 1e-9:
            await self.gpu.backend.unload(kept.pop().name)  # the largest first: fewest evictions

    async def _helper_done(self, log: StepLog) -> None:
        await self.gpu.refresh()
        log.observe_peak(self.gpu.resident_gb)

    async def _subtasks(self, spec: JobSpec, log: StepLog) -> tuple[list[Subtask], str]:
        if spec.subtasks:
            return list(spec.subtasks), spec.plan_source
        query = spec.query or ""
        model = self._helper_model(spec, spec.decomposer_model)
        async with self.gpu.lock:
            await self._make_room(spec, model, log)
            chat = bind_chat(self.gpu.backend, model, self.keep_alive)
            result = await decompose(query, chat)
            await self._helper_done(log)
        if result.reason:
            await self.rec.event("decomposer_fallback", spec.job_id, {"reason": result.reason})
        return result.subtasks, result.plan_source

    async def _record_plan(self, spec: JobSpec, dag: TaskDAG, plan_source: str) -> None:
        rows = [
            SubtaskRecord(
                job_id=spec.job_id,
                subtask_id=s.id,
                task_type=s.task_type,
                description=s.description,
                deps=list(s.deps),
                estimated_tokens=s.estimated_tokens,
                difficulty=s.difficulty,
            )
            for s in dag.nodes.values()
        ]
        await self.rec.subtasks(rows)
        await self.rec.update_job(spec.job_id, plan_source=plan_source)
        await self.rec.event(
            "subtask_plan",
            spec.job_id,
            {"plan_source": plan_source, "subtasks": [s.model_dump() for s in dag.nodes.values()]},
        )
        await self.rec.event(
            "dag_structure",
            spec.job_id,
            {
                "nodes": list(dag.nodes),
                "edges": dag.edges,
                "layers": dag.layers(),
                "mpc": spec.horizon_depth > 0,
                "horizon_depth": spec.horizon_depth,
            },
        )

    async def _loop(self, spec: JobSpec, dag: TaskDAG, results: dict[str, SubtaskResult], log: StepLog) -> None:
        step_index = 0
        while True:
            finished = [sid for sid, r in results.items() if r.status in FINISHED_SUBTASK]
            horizon = dag.horizon(finished, spec.horizon_depth)
            if not horizon:
                return
            await self._step(spec, dag, horizon, results, log, step_index)
            step_index += 1

    async def _route(self, spec: JobSpec, problem: RoutingProblem, log: StepLog) -> Plan:
        if needs_chat(spec.mode):
            model = self._helper_model(spec, spec.planner_model)
            await self._make_room(spec, model, log)
            chat = bind_chat(self.gpu.backend, model, self.keep_alive)
            plan = await route(problem, self.estimator, spec.mode, chat=chat, planner_model=model, seed=spec.seed)
            await self._helper_done(log)
            return plan
        # HiGHS and the exact DP are CPU work: keep the event loop free.
        return await run_cpu(_route_sync, problem, self.estimator, spec.mode, spec.seed)

    async def _step(
        self,
        spec: JobSpec,
        dag: TaskDAG,
        horizon: dict[str, int],
        results: dict[str, SubtaskResult],
        log: StepLog,
        step_index: int,
    ) -> None:
        ready = [sid for sid, t in horizon.items() if t == 0]
        names = {a.name for a in spec.agents}
        async with self.gpu.lock:
            before = await self.gpu.refresh()
            problem = RoutingProblem(
                subtasks=[with_inputs(dag, sid, results) for sid in horizon],
                step_of=horizon,
                agents=spec.agents,
                gpu_vram_gb=spec.gpu_vram_gb or self.gpu.capacity_gb,
                loaded=[m.name for m in before if m.name in names],
                params=spec.params,
            )
            plan = await self._route(spec, problem, log)
            await self.rec.event("orchestration", spec.job_id, decision(step_index, plan, ready))
            evicted = await self._evict(plan, spec)
            loads = await self._load(plan, ready, spec)
            observed_after_load = self.gpu.resident_gb if loads or evicted else sum(m.size_vram for m in before) / 1e9
            await self._run_ready(spec, dag, plan, ready, results)
            after = await self.gpu.refresh()
        obs = StepObservation(step_index, horizon, ready, plan, loads, evicted, before, after, observed_after_load)
        entry = log.add(obs, spec, results)
        await self._persist_step(spec, plan, entry, horizon, ready)

    async def _evict(self, plan: Plan, spec: JobSpec) -> list[str]:
        """Carry out the plan's step-0 evictions on the real backend (only what it really holds).

        Models outside the catalog (loaded by someone else) are not in the plan; they are unloaded only when
        the step's resident set would not fit beside them.
        """
        present = {m.name for m in await self.gpu.refresh()}
        evicted: list[str] = []
        for ev in plan.evictions:
            if ev.step == 0 and ev.model in present:
                await self.gpu.backend.unload(ev.model)
                evicted.append(ev.model)
        # Whatever else is resident (a model outside the catalog, or the planner that just answered) is not in the
        # plan; unload it when the step's resident set would not fit beside it.
        planned = set((plan.resident_per_step or [[]])[0])
        vram = {a.name: a.vram_gb for a in spec.agents}
        extras = [m for m in self.gpu.resident if m.name not in planned and m.name not in evicted]
        needed = sum(vram.get(m, 0.0) for m in planned)
        capacity = spec.gpu_vram_gb or self.gpu.capacity_gb
        for m in sorted(extras, key=lambda x: -x.size_vram):
            if needed + sum(x.size_vram for x in extras if x.name not in evicted) / 1e9 <= capacity + 1e-9:
                break
            await self.gpu.backend.unload(m.name)
            evicted.append(m.name)
        if evicted:
            await self.gpu.refresh()
        return evicted

    async def _load(self, plan: Plan, ready: list[str], spec: JobSpec) -> dict[str, float]:
        """Load the models that step 0 runs on and time it (the measured switch cost)."""
        needed = sorted({plan.model_for(sid) for sid in ready})
        present = set(self.gpu.loaded_names)
        loads: dict[str, float] = {}
        for model in needed:
            if model in present:
                continue
            try:
                usage: Usage = await self.gpu.backend.load(model, self.keep_alive)
            except BackendError:
                continue  # the subtask call will hit the same error and record it against the subtask
            loads[model] = usage.load_ms
        if loads:
            await self.gpu.refresh()
        return loads

    async def _run_ready(
        self, spec: JobSpec, dag: TaskDAG, plan: Plan, ready: list[str], results: dict[str, SubtaskResult]
    ) -> None:
        sem = asyncio.Semaphore(self.max_concurrency)
        by_id = {a.subtask_id: a for a in plan.assignments}

        async def one(sid: str) -> None:
            async with sem:
                await self._run_subtask(spec, dag, sid, by_id[sid], results)

        await asyncio.gather(*(one(sid) for sid in ready))
        for sid in ready:
            if results[sid].status == SubtaskStatus.FAILED:
                for child in dag.descendants(sid):
                    if results[child].status == SubtaskStatus.PENDING:
                        results[child].move(SubtaskStatus.SKIPPED)
                        results[child].error = f"skipped: upstream subtask {sid!r} failed"
                        fields = {"status": results[child].status, "error": results[child].error}
                        await self.rec.update_subtask(spec.job_id, child, **fields)

    async def _run_subtask(
        self, spec: JobSpec, dag: TaskDAG, sid: str, assignment: Any, results: dict[str, SubtaskResult]
    ) -> None:
        sub = dag.nodes[sid]
        res = results[sid]
        res.model, res.step = assignment.model, assignment.step
        res.move(SubtaskStatus.RUNNING)
        res.estimated_quality, res.utility = assignment.estimated_quality, assignment.utility
        parents = [(p, results[p.id].output or "") for p in dag.parents(sid)]
        request = {
            "model": res.model,
            "messages": subtask_messages(sub, parents),
            "stream": False,
            "keep_alive": self.keep_alive,
            "options": {"num_predict": min(max(sub.estimated_tokens * 2, 64), 2048)},
        }
        t0 = time.perf_counter()
        try:
            body = await self.gpu.backend.chat(request)
        except BackendError as exc:
            res.move(SubtaskStatus.FAILED)
            res.error = f"{type(exc).__name__}: {exc.message}"
        else:
            usage = Usage.from_response(body)
            res.move(SubtaskStatus.DONE)
            res.output = str((body.get("message") or {}).get("content", ""))
            res.prompt_tokens, res.eval_tokens, res.load_ms = (
                usage.prompt_tokens,
                usage.eval_tokens,
                usage.load_ms,
            )
            self.estimator.observe_tokens(res.model, sub.estimated_tokens, usage.eval_tokens)
            if spec.score_fn is not None:
                # scorers may run a sandboxed subprocess (code_eval): keep the event loop free
                res.score = await asyncio.to_thread(spec.score_fn, sub, res.output)
                if res.score is not None:
                    self.estimator.observe_score(res.model, sub.task_type, res.score, difficulty=sub.difficulty)
        res.latency_ms = (time.perf_counter() - t0) * 1000
        fields = {k: v for k, v in res.to_dict().items() if k not in ("id", "task_type")}
        await self.rec.update_subtask(spec.job_id, sid, **fields)
        await self.rec.event("subtask", spec.job_id, {"subtask_id": sid, **fields})

    async def _persist_step(
        self, spec: JobSpec, plan: Plan, entry: StepRecord, horizon: dict[str, int], ready: list[str]
    ) -> None:
        solver = plan.solver
        await self.rec.plan_step(
            PlanStepRecord(
                job_id=spec.job_id,
                step_index=entry.step,
                horizon=list(horizon),
                ready=ready,
                mode=plan.mode,
                routing_source=plan.routing_source,
                solver_name=solver.name if solver else None,
                solver_status=solver.status if solver else None,
                solve_time_ms=solver.solve_time_ms if solver else None,
                objective=plan.objective,
                assignments=[a.model_dump() for a in plan.assignments],
                resident=plan.resident_per_step,
                loads=[e.model_dump() for e in plan.loads],
                evictions=[e.model_dump() for e in plan.evictions],
                vram_peak_gb=entry.vram_peak_gb,
            )
        )
        await self.rec.event("plan_step", spec.job_id, entry.model_dump())

    async def _final_answer(
        self, spec: JobSpec, dag: TaskDAG, results: dict[str, SubtaskResult], log: StepLog
    ) -> str | None:
        done = [(dag.nodes[sid], r.output or "") for sid, r in results.items() if r.status == SubtaskStatus.DONE]
        if len(done) != len(dag.nodes):
            return None
        sinks = [s for s in dag.nodes.values() if not dag.children[s.id]]
        if len(dag.nodes) == 1 or not spec.synthesize or spec.query is None:
            # Given subtasks have no question to answer as a whole: the answer is what the final subtasks said.
            return "\n\n".join(results[s.id].output or "" for s in sinks)
        last = results[dag.order[-1]].model
        model = spec.synth_model or last or self._helper_model(spec, None)
        request = {
            "model": model,
            "messages": synthesis_messages(spec.query or "the job", done),
            "stream": False,
            "keep_alive": self.keep_alive,
            # The answer is about as long as the final subtasks' outputs together.
            "options": {"num_predict": max(64, min(1024, 2 * sum(s.estimated_tokens for s in sinks)))},
        }
        async with self.gpu.lock:
            await self._make_room(spec, model, log)
            body = await self.gpu.backend.chat(request)
            await self._helper_done(log)
        return str((body.get("message") or {}).get("content", ""))

    @staticmethod
    def _outcome(dag: TaskDAG, results: dict[str, SubtaskResult]) -> tuple[JobStatus, str | None]:
        failed = [r for r in results.values() if r.status == SubtaskStatus.FAILED]
        if not failed:
            return JobStatus.SUCCEEDED, None
        skipped = sorted(sid for sid, r in results.items() if r.status == SubtaskStatus.SKIPPED)
        first = failed[0]
        reason = f"subtask {first.id!r} failed on {first.model}: {first.error}"
        if skipped:
            reason += f"; skipped dependents: {', '.join(skipped)}"
        return JobStatus.FAILED, reason

    async def _finish(
        self,
        life: JobLifecycle,
        spec: JobSpec,
        results: dict[str, SubtaskResult],
        log: StepLog,
        status: JobStatus,
        error: str | None,
        final: str | None,
        started: float,
        plan_source: str,
    ) -> JobResult:
        wall_ms = (time.perf_counter() - started) * 1000
        summary = summarize(spec, results, log, wall_ms, self.gpu)
        result = JobResult(spec.job_id, status, results, log.dumps(), summary, plan_source, final, error)
        tokens = int(summary["total_tokens"])
        await life.finish(
            status, error=error, final_answer=final, summary=summary, total_tokens=tokens, wall_ms=wall_ms
        )
        await self.rec.event("job_dag_summary", spec.job_id, summary)
        await self.rec.event("job", spec.job_id, {"status": status, "error": error, "final_answer": final, **summary})
        return result


def with_inputs(dag: TaskDAG, sid: str, results: dict[str, SubtaskResult]) -> Subtask:
    """The subtask as routing sees it: its prompt also carries the parents' outputs (cut at PARENT_CHARS each),
    which count against max_ctx — measured when a parent is done, estimated otherwise."""
    cap = PARENT_CHARS // 4
    carried = 0
    for parent in dag.parents(sid):
        done = results[parent.id]
        carried += min(cap, done.eval_tokens if done.status == SubtaskStatus.DONE else parent.estimated_tokens)
    sub = dag.nodes[sid]
    return sub.model_copy(update={"input_tokens": carried}) if carried else sub


def decision(step: int, plan: Plan, ready: list[str]) -> dict[str, Any]:
    """The routing decision as announced before the step runs (clients following SSE see the plan first)."""
    return {
        "step": step,
        "routing_mode": plan.mode,
        "routing_source": plan.routing_source,
        "fallback_reason": plan.fallback_reason,
        "solver": plan.solver.model_dump() if plan.solver else None,
        "planner": plan.planner.model_dump() if plan.planner else None,
        "objective": plan.objective,
        "ready_now_nodes": ready,
        "assignments": [a.model_dump() for a in plan.assignments],
        "resident_planned": plan.resident_per_step,
        "evictions_planned": [e.model_dump() for e in plan.evictions],
    }


def _route_sync(problem: RoutingProblem, estimator: Estimator, mode: str, seed: int) -> Plan:
    return route_sync(problem, estimator, mode, seed=seed)
