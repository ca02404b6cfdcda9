"""BenchConfig: every knob a benchmark run depends on (written verbatim to bench_config.json), and --compare."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from app.bench.registry import list_benchmarks
from app.domain.knobs import GpuVramGb, RoutingKnobs
from app.routing.registry import DEFAULT_COMPARE, CompareName, expand_compare, needs_model_file

ProgressFn = Callable[[str, str, int, int], None]  # (mode, benchmark, done, total)


class BenchConfig(RoutingKnobs):
    """Everything a benchmark run depends on (the routing knobs included); written verbatim to bench_config.json."""

    model_config = ConfigDict(extra="forbid", frozen=False)

    benchmarks: list[str] = Field(min_length=1)
    compare: CompareName = DEFAULT_COMPARE
    limit: int = Field(default=20, ge=1, le=500)
    seed: int = Field(default=0, ge=0)
    gpu_vram_gb: GpuVramGb = 8.0
    mix: Literal["grouped", "interleave"] = "grouped"
    code_eval: bool = False
    judge: bool = False
    judge_model: str | None = None
    planner_model: str | None = None
    planner_timeout_s: float = Field(default=120.0, gt=0, le=86_400)
    dry_run: bool = False
    warm: list[str] = Field(default_factory=list)
    # Jobs per block; the mode order rotates from block to block (A B C, B C A, ...; A B then B A for two modes).
    block_size: int = Field(default=10, ge=1)
    freeze_estimator: bool = False
    # A label for the estimator state the run starts from (e.g. "static", "trained"): recorded in the report as
    # the original tool's quality_estimator_type.
    estimator_tag: str = Field(default="static", min_length=1, max_length=64)
    data_dir: str | None = None
    keep_alive: str = "10m"
    max_concurrency: int = Field(default=4, ge=1, le=64)
    # Sim only: device memory. None = room for every agent at once, so the measured resident VRAM shows what the
    # router decided (the budget G is what routers are told and what violations are measured against).
    sim_device_gb: float | None = Field(default=None, gt=0)
    time_scale: float = Field(default=0.0, ge=0)
    # MT-Bench: judge the modes' answers pairwise (positions swapped) after the run.
    mtbench_judge: bool = False
    mtbench_judge_model: str | None = None
    # pref_router: a trained router file (swarm train-router) and its threshold.
    router_model: str | None = None
    router_tau: float = Field(default=0.5, ge=0.0, le=1.0)
    output_dir: str = "runs/bench"

    @field_validator("benchmarks")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        bad = [n for n in names if n not in list_benchmarks()]
        if bad:
            raise ValueError(f"unknown benchmark {bad[0]!r}; known: {', '.join(list_benchmarks())}")
        return list(dict.fromkeys(names))

    @model_validator(mode="after")
    def _router_model_given(self) -> BenchConfig:
        single = expand_compare(self.compare)
        if len(single) == 1 and needs_model_file(single[0]) and not self.router_model:
            raise ValueError(f"router_model: --compare {self.compare} needs --router_model (swarm train-router)")
        return self

    @property
    def modes(self) -> list[str]:
        """The modes --compare runs; a group (all) leaves out pref_router when no router model is given."""
        return [m for m in expand_compare(self.compare) if self.router_model or not needs_model_file(m)]
