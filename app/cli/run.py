"""`swarm run`: decompose, route, execute one or more queries; loaded models carry across them."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from app.cli.common import add_backend_flags, add_routing_flags, settings_from
from app.core.errors import ValidationFailed
from app.execution.jobs import create_job_row, make_spec, run_job
from app.execution.results import JobResult
from app.execution.runtime import Runtime, open_runtime
from app.routing import Estimator

console = Console(stderr=True)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="run queries through decomposition, routing and execution")
    p.add_argument("--query", action="append", default=[], help="a query (repeatable; state carries across)")
    p.add_argument("--queries_file", help="newline-delimited queries, appended after --query")
    p.add_argument("--runs_dir", help="output root (default ./runs)")
    p.add_argument("--run_id", help="output folder name (default: timestamp-pid)")
    p.add_argument("--job_id_prefix", default="job")
    p.add_argument("--estimator_in", help="load estimator state (JSON)")
    p.add_argument("--estimator_out", help="save estimator state (JSON) after the run")
    p.add_argument("--freeze_estimator", action="store_true", help="never update the estimator")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    add_backend_flags(p)
    add_routing_flags(p)
    p.set_defaults(func=cmd_run)


def _queries(args: argparse.Namespace) -> list[str]:
    queries = [q.strip() for q in args.query if q and q.strip()]
    if args.queries_file:
        path = Path(args.queries_file)
        if not path.is_file():
            raise ValidationFailed(f"--queries_file: file not found: {path}")
        queries += [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not queries:
        raise ValidationFailed("give at least one --query or a --queries_file")
    return queries


def cmd_run(args: argparse.Namespace) -> int:
    queries = _queries(args)
    settings = settings_from(args)
    run_id = args.run_id or time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    run_dir = Path(args.runs_dir or settings.runs_dir) / run_id
    results = asyncio.run(_run_all(args, settings, queries, run_dir))
    if args.json:
        print(json.dumps([r.to_dict() for r in results], default=str, indent=2))
    return 0 if all(r.status == "succeeded" for r in results) else 1


async def _run_all(args: argparse.Namespace, settings: Any, queries: list[str], run_dir: Path) -> list[JobResult]:
    runtime = await open_runtime(settings)
    try:
        _estimator(runtime, args)
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
            _print_job(query, result)
        _write_summary(run_dir, results, settings)
        if args.estimator_out:
            runtime.estimator.save(args.estimator_out)
        return results
    finally:
        await runtime.aclose()


def _estimator(runtime: Runtime, args: argparse.Namespace) -> None:
    if args.estimator_in:
        path = Path(args.estimator_in)
        if not path.is_file():
            raise ValidationFailed(f"--estimator_in: file not found: {path}")
        runtime.estimator = Estimator.load(path, frozen=args.freeze_estimator)
    elif args.freeze_estimator:
        runtime.estimator = Estimator(frozen=True)


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


def _print_job(query: str, result: JobResult) -> None:
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
