"""`swarm run`: decompose, route, execute one or more queries; loaded models carry across them."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.bench import check_router_model, unit_float
from app.cli.common import (
    add_backend_flags,
    add_routing_flags,
    check_agents_file,
    check_database,
    check_output_dir,
    check_output_file,
    database_field,
    finite_positive_float,
    load_estimator,
    non_empty,
    read_text_file,
    safe_name,
    settings_from,
)
from app.cli.helptext import helped
from app.cli.models import add_ensure_flag
from app.core.errors import ValidationFailed
from app.routing.registry import needs_model_file

if TYPE_CHECKING:  # the execution stack (numpy, the solvers) is imported by the command, not by `swarm --help`
    from rich.console import Console

    from app.cli.run_judge import Evaluation
    from app.execution.results import JobResult
    from app.routing import Estimator
    from app.storage.models import SubtaskRecord


def _console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="run queries through decomposition, routing and execution")
    p.add_argument("--query", action="append", default=[], help="a query (repeatable; state carries across)")
    p.add_argument("--queries_file", type=non_empty, help="newline-delimited queries, appended after --query")
    p.add_argument("--runs_dir", type=non_empty, help=helped("runs_dir"))
    p.add_argument("--run_id", type=safe_name, help="output folder name (default: timestamp-pid)")
    p.add_argument(
        "--job_id_prefix",
        type=safe_name,
        default="job",
        help="job ids are <prefix>-<n>-<run_id>; letters, digits, '.', '_', '-'",
    )
    p.add_argument("--estimator_in", type=non_empty, help="load estimator state (JSON)")
    p.add_argument("--estimator_out", type=non_empty, help="save estimator state (JSON) after the run")
    p.add_argument("--freeze_estimator", action="store_true", help="never update the estimator")
    p.add_argument("--estimator_tag", default="static", help="label of the estimator state (recorded in summary.json)")
    p.add_argument("--judge", action="store_true", help="score every subtask with an LLM judge (score + rationale)")
    p.add_argument("--judge_model", type=non_empty, help="judge model (default SWARM_MODELS__JUDGE or the smallest)")
    p.add_argument("--router_model", type=non_empty, help="--routing pref_router: trained router file")
    p.add_argument("--router_tau", type=unit_float, default=0.5, help="pref_router: strong when P(strong) >= tau")
    p.add_argument("--planner_timeout_s", type=finite_positive_float, default=120.0, help="per planner call (s)")
    p.add_argument(
        "--write_default_agents", type=non_empty, metavar="PATH", help="write the agents file in force to PATH; exit"
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    add_backend_flags(p)
    add_routing_flags(p)
    add_ensure_flag(p)
    p.set_defaults(func=cmd_run)


def _queries(args: argparse.Namespace) -> list[str]:
    queries = [q.strip() for q in args.query if q and q.strip()]
    if args.queries_file:
        text = read_text_file(args.queries_file, "--queries_file")
        queries += [line.strip() for line in text.splitlines() if line.strip()]
    if not queries:
        raise ValidationFailed("give at least one --query or a --queries_file")
    return queries


def write_default_agents(args: argparse.Namespace) -> int:
    """The original's `--write_default_agents PATH`: the catalog this run would use, written out; nothing else."""
    settings = settings_from(args)
    check_agents_file(settings)
    check_output_file(args.write_default_agents, "--write_default_agents")
    from app.bench.presets import write_catalog

    catalog = json.loads(read_text_file(settings.default_agents_file(), "agents file"))
    _console().print(f"wrote {write_catalog(catalog, args.write_default_agents)}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    if args.write_default_agents:
        return write_default_agents(args)
    # Every input is checked before the database or the runs folder is touched.
    queries = _queries(args)
    settings = settings_from(args)
    run_id = args.run_id or time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    runs_dir = check_output_dir(args.runs_dir or settings.runs_dir, "--runs_dir" if args.runs_dir else "SWARM_RUNS_DIR")
    run_dir = check_output_dir(runs_dir / run_id, "--run_id")
    if args.estimator_out:
        check_output_file(args.estimator_out, "--estimator_out", create_parents=False)
    estimator = _estimator(args)
    check_router_model(args.router_model)
    if needs_model_file(settings.routing.mode) and not args.router_model:
        raise ValidationFailed(f"--router_model: --routing {settings.routing.mode} needs a trained router file")
    check_agents_file(settings)
    check_database(settings.database_url, database_field(args))
    results = asyncio.run(_run_all(args, settings, queries, run_dir, estimator))
    if args.json:
        print(json.dumps([r.to_dict() for r in results], default=str, indent=2))
    return 0 if all(r.status == "succeeded" for r in results) else 1


async def _run_all(
    args: argparse.Namespace, settings: Any, queries: list[str], run_dir: Path, estimator: Estimator | None
) -> list[JobResult]:
    from app.execution.jobs import create_job_row, make_spec, run_job
    from app.execution.runtime import open_runtime

    console = _console()
    runtime = await open_runtime(settings)
    try:
        if estimator is not None:
            runtime.estimator = estimator
        tenant = runtime.repo.ensure_default_tenant()
        gpu = runtime.pool.default
        if runtime.backend_kind == "ollama":  # the sim and the embedded models have their catalog installed
            from app.cli.models import ensure_installed

            runtime.agents = (
                await ensure_installed(gpu.backend, runtime.agents, pull=args.ensure_models, strict=False)
            ).routable
        (run_dir / "artifacts").mkdir(parents=True, exist_ok=True)
        gpu_text = f"G={settings.gpu_vram_gb} GB ({settings.gpu_vram_source})"
        console.print(f"[bold]run[/] {run_dir}  backend={runtime.backend_kind}  {gpu_text}")
        results: list[JobResult] = []
        summaries: list[dict[str, Any]] = []
        for n, query in enumerate(queries, 1):
            spec = make_spec(
                runtime, query=query, job_id=f"{args.job_id_prefix}-{n}-{run_dir.name}", seed=args.seed or 0
            )
            spec.planner_timeout_s = args.planner_timeout_s
            spec.router_model, spec.router_tau = args.router_model, args.router_tau
            await create_job_row(runtime, tenant.id, spec)
            with console.status(f"job {n}/{len(queries)}: {query[:60]}"):
                result = await run_job(runtime, gpu, tenant.id, spec, jsonl_path=run_dir / "telemetry.jsonl")
                plan = await asyncio.to_thread(runtime.repo.subtasks, result.job_id)
                evaluations = await _judge(args, runtime, gpu, tenant.id, result, plan, run_dir) if args.judge else []
            results.append(result)
            _write_artifact(run_dir, query, result, evaluations, plan)
            _print_job(console, query, result, evaluations)
            summaries.append(_job_summary(run_dir, query, result, evaluations, plan))
        _write_summary(run_dir, summaries, settings, args.estimator_tag)
        if args.estimator_out:
            runtime.estimator.save(args.estimator_out)
        return results
    finally:
        await runtime.aclose()


def _estimator(args: argparse.Namespace) -> Estimator | None:
    """The estimator to start from; None = the runtime's fresh one."""
    from app.routing import Estimator

    if args.estimator_in:
        estimator: Estimator = load_estimator(args.estimator_in, "--estimator_in", frozen=args.freeze_estimator)
        return estimator
    if args.freeze_estimator:
        return Estimator(frozen=True)
    return None


async def _judge(
    args: argparse.Namespace,
    runtime: Any,
    gpu: Any,
    tenant_id: str,
    result: JobResult,
    records: list[SubtaskRecord],
    run_dir: Path,
) -> list[Evaluation]:
    from app.cli.run_judge import judge_job
    from app.execution.telemetry import Recorder

    model = args.judge_model or runtime.settings.models.judge or min(runtime.agents, key=lambda a: a.vram_gb).name
    return await judge_job(
        gpu,
        result,
        {r.subtask_id: r.description for r in records},
        model=model,
        agents=runtime.agents,
        recorder=Recorder(runtime.repo, tenant_id, run_dir / "telemetry.jsonl"),
        estimator=runtime.estimator,
        difficulty={r.subtask_id: r.difficulty for r in records},
        keep_alive=runtime.settings.keep_alive,
    )


def _write_artifact(
    run_dir: Path, query: str, result: JobResult, evaluations: list[Evaluation], records: list[SubtaskRecord]
) -> None:
    from app.bench.artifacts import job_artifact, write_json

    artifact = {
        **result.to_dict(),
        **job_artifact(result, run_id=run_dir.name, query=query, routing_mode=str(result.summary["routing_mode"])),
        "subtasks": _plan(records),
        "evaluations": [e.to_dict() for e in evaluations],
    }
    write_json(run_dir / "artifacts" / f"{result.job_id}.json", artifact)


def _job_summary(
    run_dir: Path, query: str, result: JobResult, evaluations: list[Evaluation], records: list[SubtaskRecord]
) -> dict[str, Any]:
    """One job in the original summary layout (summary_<job>.json) plus the new fields."""
    from app.bench.artifacts import write_json

    judged = [e.judge_score for e in evaluations if e.judge_score is not None]
    summary = {
        "run_id": run_dir.name,
        "job_id": result.job_id,
        "status": result.status,
        "error": result.error,
        "plan_source": result.plan_source,
        "query": query,
        "final_answer": result.final_answer,
        "plan": _plan(records),
        "avg_judge_score": sum(judged) / len(judged) if judged else None,
        "evaluations": [e.to_dict() for e in evaluations],
        "vram_used_gb": result.summary["vram_peak_gb"],
        "estimated_switch_cost_ms": result.summary["estimated_switch_ms"],
        "total_latency_ms": result.summary["sum_subtask_latency_ms"],
        "total_prompt_tokens": result.summary["prompt_tokens"],
        "total_completion_tokens": result.summary["eval_tokens"],
        **result.summary,
    }
    write_json(run_dir / f"summary_{result.job_id}.json", summary)
    return summary


def _plan(records: list[SubtaskRecord]) -> list[dict[str, Any]]:
    keys = ("task_type", "description", "estimated_tokens", "difficulty", "deps")
    return [{"id": r.subtask_id, **{k: getattr(r, k) for k in keys}} for r in records]


def _write_summary(run_dir: Path, jobs: list[dict[str, Any]], settings: Any, estimator_tag: str) -> None:
    """The last job's summary at the top level (the original overwrote summary.json with each job), every job
    under `jobs`."""
    from app.bench.artifacts import write_json

    summary = {
        **(jobs[-1] if jobs else {}),
        "settings": settings.public_dump(),
        "estimator_tag": estimator_tag,
        "quality_estimator_type": estimator_tag,
        "jobs": jobs,
    }
    write_json(run_dir / "summary.json", summary)


def _print_job(console: Console, query: str, result: JobResult, evaluations: list[Evaluation]) -> None:
    from rich.table import Table

    table = Table(title=f"{result.job_id} [{result.status}] {query[:70]}")
    for col in ("subtask", "type", "step", "model", "status", "tokens", "ms", "output"):
        table.add_column(col)
    for r in result.subtasks.values():
        out = (r.output or r.error or "").replace("\n", " ")[:60]
        table.add_row(
            r.id, r.task_type, str(r.step), r.model or "-", r.status, str(r.eval_tokens), f"{r.latency_ms:.0f}", out
        )
    console.print(table)
    s = result.summary
    console.print(
        f"swapped in: {s['models_swapped_in']}  switch ms est/measured: {s['estimated_switch_ms']:.0f}/"
        f"{s['measured_switch_ms']:.0f}  VRAM peak: {s['vram_peak_gb']:.2f} GB  sources: {s['routing_sources']}"
    )
    for e in evaluations:
        verdict = f"{e.judge_score:.2f} {e.judge_rationale or ''}" if e.judge_score is not None else e.judge_error
        console.print(f"judge {e.subtask_id}: {verdict}")
    if result.error:
        console.print(f"[red]{result.error}[/]")
