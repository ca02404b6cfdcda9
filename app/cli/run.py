"""`swarm run`: decompose, route, execute one or more queries; loaded models carry across them."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.common import (
    add_backend_flags,
    add_routing_flags,
    check_agents_file,
    check_database,
    check_output_dir,
    check_output_file,
    database_field,
    load_estimator,
    non_empty,
    read_text_file,
    safe_name,
    settings_from,
)
from app.cli.helptext import helped
from app.core.errors import ValidationFailed

if TYPE_CHECKING:  # the execution stack (numpy, the solvers) is imported by the command, not by `swarm --help`
    from rich.console import Console

    from app.execution.results import JobResult
    from app.routing import Estimator


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
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    add_backend_flags(p)
    add_routing_flags(p)
    p.set_defaults(func=cmd_run)


def _queries(args: argparse.Namespace) -> list[str]:
    queries = [q.strip() for q in args.query if q and q.strip()]
    if args.queries_file:
        text = read_text_file(args.queries_file, "--queries_file")
        queries += [line.strip() for line in text.splitlines() if line.strip()]
    if not queries:
        raise ValidationFailed("give at least one --query or a --queries_file")
    return queries


def cmd_run(args: argparse.Namespace) -> int:
    # Every input is checked before the database or the runs folder is touched.
    queries = _queries(args)
    settings = settings_from(args)
    run_id = args.run_id or time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    runs_dir = check_output_dir(args.runs_dir or settings.runs_dir, "--runs_dir" if args.runs_dir else "SWARM_RUNS_DIR")
    run_dir = check_output_dir(runs_dir / run_id, "--run_id")
    if args.estimator_out:
        check_output_file(args.estimator_out, "--estimator_out", create_parents=False)
    estimator = _estimator(args)
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
        (run_dir / "artifacts").mkdir(parents=True, exist_ok=True)
        console.print(f"[bold]run[/] {run_dir}  backend={runtime.backend_kind}  G={settings.gpu_vram_gb} GB")
        results: list[JobResult] = []
        for n, query in enumerate(queries, 1):
            spec = make_spec(
                runtime, query=query, job_id=f"{args.job_id_prefix}-{n}-{run_dir.name}", seed=args.seed or 0
            )
            await create_job_row(runtime, tenant.id, spec)
            with console.status(f"job {n}/{len(queries)}: {query[:60]}"):
                result = await run_job(runtime, gpu, tenant.id, spec, jsonl_path=run_dir / "telemetry.jsonl")
            results.append(result)
            _write_artifact(run_dir, query, result)
            _print_job(console, query, result)
        _write_summary(run_dir, results, settings)
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


def _write_artifact(run_dir: Path, query: str, result: JobResult) -> None:
    estimates = [row for step in result.steps for row in step.get("model_task_estimates", [])]
    artifact = {**result.to_dict(), "query": query, "model_task_estimates": estimates}
    path = run_dir / "artifacts" / f"{result.job_id}.json"
    path.write_text(json.dumps(artifact, indent=2, default=str), encoding="utf-8")


def _write_summary(run_dir: Path, results: list[JobResult], settings: Any) -> None:
    summary = {
        "settings": json.loads(settings.model_dump_json()),
        "jobs": [
            {"job_id": r.job_id, "status": r.status, "error": r.error, "plan_source": r.plan_source, **r.summary}
            for r in results
        ],
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")


def _print_job(console: Console, query: str, result: JobResult) -> None:
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
    if result.error:
        console.print(f"[red]{result.error}[/]")
