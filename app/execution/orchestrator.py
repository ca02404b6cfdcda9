"""The MPC loop: plan over the horizon -> carry out evictions/loads -> run ready nodes -> observe -> replan."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from app.backends.base import Usage
from app.core.errors import BackendError
from app.domain.models import Plan, RoutingProblem, Subtask
from app.domain.status import FINISHED_SUBTASK, JobStatus, SubtaskStatus
from app.execution.budget import HelperMeter, cut_estimate, ledger_key
from app.execution.calls import JobCalls, helper_candidates
from app.execution.cpu import run_cpu
from app.execution.dag import TaskDAG
from app.execution.decomposer import decompose
from app.execution.lifecycle import JobLifecycle
from app.execution.llm import bind_chat
from app.execution.prompts import PARENT_CHARS, subtask_messages, synthesis_messages
from app.execution.results import JobResult, JobSpec, SubtaskResult
from app.execution.scheduler import Lease
from app.execution.state import GpuState
from app.execution.steps import StepLog, StepObservation, StepRecord, job_costs, job_start, summarize
from app.execution.tasks import finish_anyway, run_all
from app.execution.telemetry import Recorder
from app.routing import ChatFn, Estimator, route, route_sync
from app.routing.registry import RouteContext, needs_chat
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
        self.results: dict[str, SubtaskResult] = {}  # the running job's subtasks (what a cancel charges)
        # the decomposer, planner and synthesiser calls: counted, and each reported as a `helper_call` event
        self.helpers = HelperMeter(gpu.backend, self._helper_call)
        self.job_id = ""

    async def run(self, spec: JobSpec) -> JobResult:
        """The job stays `queued` until its first model call is dispatched by the GPU's scheduler."""
        started = time.perf_counter()
        life = JobLifecycle(self.rec, spec.job_id)
        self.calls = JobCalls(self.gpu, self.rec, life, spec.job_id, spec.agents)
        results: dict[str, SubtaskResult] = {}
        log = StepLog()
        plan_source = spec.plan_source
        loaded_before = list(self.gpu.loaded_names)  # as last read from the backend (no extra call here)
        self.job_id, self.results, self.helpers.tokens = spec.job_id, results, 0
        try:  # a cancel at any await below (the first included) finishes the job as cancelled
            await self.rec.event("job_start", spec.job_id, job_start(spec, loaded_before))
            subtasks, plan_source = await self._subtasks(spec, log)
            dag = TaskDAG(subtasks)
            results = {s.id: SubtaskResult(s.id, s.task_type) for s in subtasks}
            self.results = results
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
            result = await self._finish(life, spec, results, log, JobStatus.FAILED, msg, None, started, plan_source)
        else:
            result = await self._finish(life, spec, results, log, status, error, final, started, plan_source)
        await self.rec.event("job_costs", spec.job_id, job_costs(spec, result.summary, loaded_before))
        return result

    async def _helper_call(self, tokens: int, final: bool) -> None:
        """A helper call finished: its event (the job's meter charges it, and stops the job if the budget is spent)."""
        payload = {"tokens": tokens, "helper_tokens": self.helpers.tokens, "final": final}
        await self.rec.event("helper_call", self.job_id, payload)

    async def _helper(self, spec: JobSpec, label: str, explicit: str | None, preferred: str | None = None) -> Lease:
        """A helper call (decomposer, planner, synthesiser) leases whichever capable model the scheduler binds:
        preferably one already resident. Its VRAM counts in the measured peak like any other."""
        budget = spec.gpu_vram_gb or self.gpu.capacity_gb
        candidates = helper_candidates(spec.agents, "reasoning", preferred, explicit, fits_gb=budget)
        return await self.calls.lease(candidates, kind="helper", label=label)

    async def _helper_done(self, log: StepLog) -> None:
        await self.gpu.refresh()
        log.observe_peak(self.gpu.resident_gb)

    async def _subtasks(self, spec: JobSpec, log: StepLog) -> tuple[list[Subtask], str]:
        if spec.subtasks:
            return list(spec.subtasks), spec.plan_source
        query = spec.query or ""
        async with await self._helper(spec, "decomposer", spec.decomposer_model) as lease:
            chat = bind_chat(self.helpers, lease.model, self.keep_alive)
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
            async with await self._helper(spec, "planner", spec.planner_model) as lease:
                model = lease.model
                chat = bind_chat(self.helpers, model, self.keep_alive)
                plan = await route(
                    problem, self.estimator, spec.mode, ctx=route_context(spec, chat=chat, planner=model)
                )
                await self._helper_done(log)
            return plan
        # HiGHS and the exact DP are CPU work: keep the event loop free.
        return await run_cpu(route_sync, problem, self.estimator, spec.mode, ctx=route_context(spec))

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
        # No GPU-wide lock: the plan says which model runs each ready subtask; the scheduler decides when, and
        # loads / evicts for every job and proxied call at once.
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
        mark = self.gpu.scheduler.emitted
        loads = await self._run_ready(spec, dag, plan, ready, results)
        after = await self.gpu.refresh()
        evicted = self.gpu.scheduler.evictions_since(mark)  # what the GPU's scheduler evicted meanwhile
        mid = max(self.gpu.scheduler.max_resident_gb if loads else 0.0, self.gpu.resident_gb)
        obs = StepObservation(step_index, horizon, ready, plan, loads, evicted, before, after, mid)
        entry = log.add(obs, spec, results)
        await self._persist_step(spec, plan, entry, horizon, ready)

    async def _run_ready(
        self, spec: JobSpec, dag: TaskDAG, plan: Plan, ready: list[str], results: dict[str, SubtaskResult]
    ) -> dict[str, float]:
        """Run the ready subtasks, each on its planned model once the scheduler dispatches it; returns the loads
        the scheduler made for them (model -> ms)."""
        sem = asyncio.Semaphore(self.max_concurrency)
        by_id = {a.subtask_id: a for a in plan.assignments}
        loads: dict[str, float] = {}

        stopped: list[BaseException] = []  # a sibling failed (a spent budget): start no further call

        async def one(sid: str) -> None:
            a = by_id[sid]
            tokens = dag.nodes[sid].estimated_tokens
            async with sem:
                if stopped:
                    return
                try:
                    lease = await self.calls.lease({a.model: a.utility}, kind="job", label=sid, est_tokens=tokens)
                except BackendError as exc:  # its model could not be loaded: the subtask fails, not the job
                    await self._run_subtask(spec, dag, sid, a, results, failed=exc)
                    return
                async with lease:
                    if not stopped:
                        await self._run_subtask(spec, dag, sid, a, results, lease=lease)

        async def guarded(sid: str) -> None:
            try:
                await one(sid)
            except Exception as exc:
                stopped.append(exc)
                raise

        await run_all([guarded(sid) for sid in ready])
        for sid in ready:
            if results[sid].status == SubtaskStatus.FAILED:
                for child in dag.descendants(sid):
                    if results[child].status == SubtaskStatus.PENDING:
                        results[child].move(SubtaskStatus.SKIPPED)
                        results[child].error = f"skipped: upstream subtask {sid!r} failed"
                        fields = {"status": results[child].status, "error": results[child].error}
                        await self.rec.update_subtask(spec.job_id, child, **fields)
        return loads

    async def _run_subtask(
        self,
        spec: JobSpec,
        dag: TaskDAG,
        sid: str,
        assignment: Any,
        results: dict[str, SubtaskResult],
        failed: BackendError | None = None,
        lease: Lease | None = None,
    ) -> None:
        """Run one subtask on its model (`failed`: the scheduler could not give it one) and record the outcome. The
        model's slot is given back as soon as the model answers, before scoring and recording (which run in worker
        threads): the next queued call does not wait for them, and the order of dispatches stays the same run to
        run."""
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
            if failed is not None:
                raise failed
            try:
                body = await self.gpu.backend.chat(request)
            except asyncio.CancelledError:
                await self._cut(spec, sid, res, cut_estimate(request, sub.estimated_tokens))
                raise
            finally:
                if lease is not None:
                    lease.release()
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
            observe_usage(self.estimator, res.model, usage)
        # The call is over: its outcome is scored and recorded even if the job is cancelled meanwhile (its row and
        # its charge then agree); the cancel goes on right after.
        await finish_anyway(self._conclude(spec, sub, res, t0))

    async def _conclude(self, spec: JobSpec, sub: Subtask, res: SubtaskResult, t0: float) -> None:
        if spec.score_fn is not None and res.status == SubtaskStatus.DONE:
            # scorers may run a sandboxed subprocess (code_eval): keep the event loop free
            res.score = await asyncio.to_thread(spec.score_fn, sub, res.output or "")
            if res.score is not None and res.model is not None:
                self.estimator.observe_score(res.model, sub.task_type, res.score, difficulty=sub.difficulty)
        res.latency_ms = (time.perf_counter() - t0) * 1000
        fields = {k: v for k, v in res.to_dict().items() if k not in ("id", "task_type")}
        await self.rec.update_subtask(spec.job_id, sub.id, **fields)
        await self.rec.event("subtask", spec.job_id, {"subtask_id": sub.id, **fields})

    async def _cut(self, spec: JobSpec, sid: str, res: SubtaskResult, estimate: tuple[int, int]) -> None:
        """The job was cancelled during this subtask's model call, which answers nothing: the call counts its
        estimate (charged to the tenant with the job's other tokens) and the subtask fails saying so."""
        res.prompt_tokens, res.eval_tokens = estimate
        res.move(SubtaskStatus.FAILED)
        res.error = f"cancelled during its model call; charged its estimate of {sum(estimate)} tokens"
        fields = {k: v for k, v in res.to_dict().items() if k not in ("id", "task_type")}
        with contextlib.suppress(Exception):  # the charge does not depend on this row; the cancel goes on
            await self.rec.update_subtask(spec.job_id, sid, **fields)

    def ledger(self) -> dict[str, int]:
        """The running job's tokens per charge key (JobMeter): each subtask's call (a call cut by a cancel counts
        its estimate) and its helper calls together."""
        out = {ledger_key(self.job_id, sid): r.prompt_tokens + r.eval_tokens for sid, r in self.results.items()}
        out[ledger_key(self.job_id)] = self.helpers.tokens
        return out

    def tokens_spent(self) -> int:
        """Tokens the job's model calls used so far, its helper calls' too (a call cut by a cancel counts its
        estimate): what the tenant is charged."""
        return sum(r.prompt_tokens + r.eval_tokens for r in self.results.values()) + self.helpers.tokens

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
        request = {
            "messages": synthesis_messages(spec.query or "the job", done),
            "stream": False,
            "keep_alive": self.keep_alive,
            # The answer is about as long as the final subtasks' outputs together.
            "options": {"num_predict": max(64, min(1024, 2 * sum(s.estimated_tokens for s in sinks)))},
        }
        async with await self._helper(spec, "synthesizer", spec.synth_model, preferred=last) as lease:
            body = await self.helpers.chat({**request, "model": lease.model}, final=True)
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
        summary["helper_tokens"] = self.helpers.tokens  # charged with total_tokens (the subtasks' calls)
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


def observe_usage(estimator: Estimator, model: str, usage: Usage) -> None:
    """Every measured call teaches the estimator the model's load time and speed."""
    estimator.observe_call(
        model,
        load_ms=usage.load_ms,
        prompt_tokens=usage.prompt_tokens,
        prompt_ms=usage.prompt_eval_ms,
        eval_tokens=usage.eval_tokens,
        eval_ms=usage.eval_ms,
    )


def route_context(spec: JobSpec, *, chat: ChatFn | None = None, planner: str | None = None) -> RouteContext:
    """What the job's router needs beyond the problem (the registry's RouteContext), from the job spec."""
    return RouteContext(
        chat=chat,
        planner_model=planner,
        seed=spec.seed,
        planner_timeout_s=spec.planner_timeout_s,
        router_model=spec.router_model,
        router_tau=spec.router_tau,
    )
