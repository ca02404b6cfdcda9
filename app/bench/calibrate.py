"""`swarm calibrate`: measure each installed model on a backend (VRAM, cold load time, prefill and decode speed,
quality per task type on seeded benchmark items) and write an agents file saying what is measured and what is prior."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.backends.base import Backend, Usage
from app.backends.sim import SimBackend
from app.bench.registry import get_benchmark, load_examples
from app.bench.simkeys import register_examples
from app.bench.types import Example
from app.core.errors import BackendError
from app.domain.models import TASK_TYPES, Agent
from app.execution.prompts import subtask_messages
from app.routing.estimator import capability_from_score

BENCHMARK = "code_math_mix"  # single-subtask items of five task types, each with its own scorer
SPEED_PROMPT = "Write three sentences about the history of the bicycle."
Z95 = 1.96
ProgressFn = Callable[[str, str], None]  # (model, what is being measured)


@dataclass(frozen=True)
class CalibrationConfig:
    loads: int = 3  # cold loads per model; the median is the load time
    items: int = 8  # scored items per task type
    seed: int = 0
    code_eval: bool = False  # code items score only when executed (sandbox); otherwise code keeps its prior
    keep_alive: str = "5m"
    max_tokens: int = 256


def wilson(mean: float, n: int) -> tuple[float, float]:
    """95% Wilson interval of a mean of n scores in [0, 1]."""
    if n == 0:
        return 0.0, 1.0
    denom = 1 + Z95**2 / n
    centre = (mean + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(mean * (1 - mean) / n + Z95**2 / (4 * n * n)) / denom
    return round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)


def _measured(value: float, **extra: Any) -> dict[str, Any]:
    return {"value": value, "source": "measured", **extra}


def _prior(value: float, why: str) -> dict[str, Any]:
    return {"value": value, "source": "prior", "why": why}


async def _unload_all(backend: Backend) -> None:
    for m in await backend.loaded():
        await backend.unload(m.name)


async def measure_footprint(backend: Backend, agent: Agent, cfg: CalibrationConfig) -> dict[str, dict[str, Any]]:
    """Cold load time (median of cfg.loads loads from an empty GPU) and VRAM (/api/ps size_vram after a load)."""
    samples: list[float] = []
    for _ in range(cfg.loads):
        await _unload_all(backend)
        usage = await backend.load(agent.name, cfg.keep_alive)
        if usage.load_ms > 0:
            samples.append(round(usage.load_ms, 3))
    resident = {m.name: m for m in await backend.loaded()}
    entry = resident.get(agent.name) or resident.get(f"{agent.name}:latest")
    out: dict[str, dict[str, Any]] = {}
    if samples:
        out["load_time_ms"] = _measured(round(statistics.median(samples), 3), samples=samples)
    else:
        out["load_time_ms"] = _prior(agent.load_time_ms, "no load reported a duration")
    if entry is not None and (entry.size_vram or entry.size) > 0:
        on_gpu = entry.size_vram > 0
        vram = (entry.size_vram if on_gpu else entry.size) / 1e9
        out["vram_gb"] = _measured(round(vram, 3), field="size_vram" if on_gpu else "size (no VRAM reported)")
    else:
        out["vram_gb"] = _prior(agent.vram_gb, "the model was not listed by /api/ps after loading")
    return out


async def measure_speed(backend: Backend, agent: Agent, cfg: CalibrationConfig) -> dict[str, dict[str, Any]]:
    """Prefill and decode tokens per second from one warm chat call's own durations."""
    body = await backend.chat(
        {
            "model": agent.name,
            "messages": [{"role": "user", "content": SPEED_PROMPT}],
            "stream": False,
            "keep_alive": cfg.keep_alive,
            "options": {"num_predict": 64, "temperature": 0, "seed": cfg.seed},
        }
    )
    usage = Usage.from_response(body)
    out: dict[str, dict[str, Any]] = {}
    if usage.eval_ms > 0 and usage.eval_tokens > 0:
        out["tokens_per_s"] = _measured(round(usage.eval_tokens / (usage.eval_ms / 1e3), 3), tokens=usage.eval_tokens)
    else:
        out["tokens_per_s"] = _prior(agent.tokens_per_s, "no eval_duration reported")
    if usage.prompt_eval_ms > 0 and usage.prompt_tokens > 0:
        tps = round(usage.prompt_tokens / (usage.prompt_eval_ms / 1e3), 3)
        out["prefill_tokens_per_s"] = _measured(tps, tokens=usage.prompt_tokens)
    return out


def quality_items(cfg: CalibrationConfig) -> dict[str, list[Example]]:
    """cfg.items seeded single-subtask items per task type of the benchmark (same items for every model)."""
    types = 5  # code_math_mix cycles through five task types
    examples = load_examples([BENCHMARK], min(500, cfg.items * types), cfg.seed)
    by_type: dict[str, list[Example]] = {}
    for ex in examples:
        items = by_type.setdefault(ex.subtasks[0].task_type, [])
        if len(items) < cfg.items:
            items.append(ex)
    return by_type


async def measure_quality(
    backend: Backend, agent: Agent, items: dict[str, list[Example]], cfg: CalibrationConfig
) -> dict[str, dict[str, Any]]:
    """Per task type: mean score (on the capability scale the router uses), item count and a 95% interval; task
    types without scorable items keep the prior."""
    bench = get_benchmark(BENCHMARK)
    out: dict[str, dict[str, Any]] = {}
    for task in TASK_TYPES:
        values: list[float] = []
        for ex in items.get(task, []):
            sub = ex.plain_subtasks()[0]
            request = {
                "model": agent.name,
                "messages": subtask_messages(sub, []),
                "stream": False,
                "keep_alive": cfg.keep_alive,
                "options": {"num_predict": cfg.max_tokens, "temperature": 0, "seed": cfg.seed},
            }
            try:
                reply = await backend.chat(request)
            except BackendError:
                values.append(0.0)  # a failed call is a wrong answer, not a missing one
                continue
            text = str((reply.get("message") or {}).get("content", ""))
            result = bench.score(ex, {sub.id: text}, code_eval=cfg.code_eval)[sub.id]
            if result.score is None or result.method == "heuristic":
                continue
            values.append(capability_from_score(result.score, sub.difficulty))
        prior = agent.capability(task)
        if values:
            mean = round(statistics.fmean(values), 4)
            out[task] = _measured(mean, n=len(values), ci95=list(wilson(mean, len(values))), prior=prior)
        else:
            out[task] = _prior(
                prior, "no scored items for this task type" + ("" if cfg.code_eval else " (code_eval off)")
            )
    return out


async def calibrate_model(
    backend: Backend, agent: Agent, items: dict[str, list[Example]], cfg: CalibrationConfig, progress: ProgressFn
) -> dict[str, Any]:
    progress(agent.name, "loads and VRAM")
    measured = await measure_footprint(backend, agent, cfg)
    progress(agent.name, "prefill and decode speed")
    measured.update(await measure_speed(backend, agent, cfg))
    progress(agent.name, "quality per task type")
    capabilities = await measure_quality(backend, agent, items, cfg)
    await backend.unload(agent.name)
    return {**measured, "capabilities": capabilities}


def calibrated_agent(agent: Agent, record: dict[str, Any]) -> dict[str, Any]:
    """The agents-file entry: measured values where there are any, the priors elsewhere."""
    entry = agent.model_dump()
    for key in ("vram_gb", "load_time_ms", "tokens_per_s"):
        if key in record:
            entry[key] = record[key]["value"]
    entry["capabilities"] = {t: cell["value"] for t, cell in record["capabilities"].items()}
    return entry


async def calibrate(
    backend: Backend, priors: list[Agent], cfg: CalibrationConfig, progress: ProgressFn | None = None
) -> dict[str, Any]:
    """An agents file (`agents`) with a `calibration` section: per model and value, measured or prior."""
    items = quality_items(cfg)
    if isinstance(backend, SimBackend):  # the simulator answers benchmark items with its configured quality
        register_examples(backend, [ex for group in items.values() for ex in group])
    records: dict[str, Any] = {}
    for agent in priors:
        records[agent.name] = await calibrate_model(backend, agent, items, cfg, progress or (lambda m, w: None))
    return {
        "agents": [calibrated_agent(a, records[a.name]) for a in priors],
        "calibration": {
            "backend": backend.name,
            "benchmark": BENCHMARK,
            "seed": cfg.seed,
            "items_per_task_type": cfg.items,
            "loads": cfg.loads,
            "code_eval": cfg.code_eval,
            "models": records,
        },
    }
