"""Simulated GPU backend: capacity, per-model VRAM/load time/tokens-per-s, Ollama eviction, seeded outputs."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.backends.base import DEFAULT_KEEP_ALIVE, JSON, LoadedModel, RawReply, Usage, ndjson_line
from app.backends.residency import GpuMemory, MemoryEvent, RunBackedInference, chunk
from app.backends.schema_sample import SchemaSampler
from app.backends.sim_pull import model_of, pull_lines
from app.backends.sim_tools import sim_tool_calls
from app.core.errors import BadRequest, ModelNotFound
from app.domain.models import Agent

_FILLER = (
    *("the", "result", "follows", "from", "the", "given", "constraints", "and", "the", "steps"),
    *("above", "so", "we", "conclude", "with", "the", "value", "computed", "here", "after"),
    *("checking", "each", "case", "carefully", "against", "the", "original", "question"),
)
_EMBED_DIM = 64
# Prefill runs much faster than decode on a GPU; 8x is a typical ratio for small models.
_PREFILL_SPEEDUP = 8.0
# Aggregate decode speed of k parallel requests on one model: tokens_per_s * k ** PARALLEL_EXPONENT.
PARALLEL_EXPONENT = 0.7


@dataclass(frozen=True)
class _Expected:
    substring: str
    expected: Any
    task_type: str


class SimBackend(RunBackedInference):
    """A fake GPU that behaves like Ollama for routing purposes. Deterministic for a given seed.

    `time_scale` multiplies the simulated load and decode times into real sleeps (0 = instant).
    Keep-alive expiry always uses the real wall clock, as the HTTP-served sim must behave like Ollama.

    Like Ollama's scheduler: each model serves at most `num_parallel` requests at once (OLLAMA_NUM_PARALLEL); more
    wait in arrival order (FIFO). Parallel requests share the model's decode throughput: with k running, the
    aggregate is tokens_per_s * k ** PARALLEL_EXPONENT (sublinear), each request getting 1/k of it. Loads are
    serialised and only idle models are evicted (GpuMemory); `events` counts every load and eviction.
    """

    def __init__(
        self,
        agents: list[Agent],
        gpu_vram_gb: float,
        *,
        seed: int = 0,
        time_scale: float = 0.0,
        true_quality: dict[str, dict[str, float]] | None = None,
        default_keep_alive: str | int = "5m",
        name: str = "sim",
        num_parallel: int = 4,
        installed: Collection[str] | None = None,
    ) -> None:
        if num_parallel < 1:
            raise ValueError("num_parallel must be at least 1")
        self.name = name
        self.num_parallel = num_parallel
        self._running: dict[str, int] = {}
        self._lanes: dict[str, asyncio.Semaphore] = {}
        self.agents = {a.name: a for a in agents}
        self.seed = seed
        self.time_scale = time_scale
        self.true_quality = true_quality or {}
        self.memory = GpuMemory(gpu_vram_gb, default_keep_alive=default_keep_alive)
        self._expected: list[_Expected] = []
        # Models on "disk": every catalog model unless a subset is given (the rest must be pulled first).
        self.installed_names = set(self.agents) if installed is None else {self._agent_of(n).name for n in installed}

    # ---- test / study hooks ----------------------------------------------------------------------

    @property
    def peak_vram_gb(self) -> float:
        return self.memory.peak_gb

    @property
    def events(self) -> list[MemoryEvent]:
        return self.memory.events

    def register_expected(self, prompt_substring: str, expected: Any, task_type: str) -> None:
        """Answer prompts containing `prompt_substring` with `expected`, right with the true quality."""
        self._expected.append(_Expected(prompt_substring, expected, task_type))

    def quality(self, model: str, task_type: str) -> float:
        table = self.true_quality.get(model)
        if table is not None and task_type in table:
            return float(table[task_type])
        return self.agents[model].capability(task_type)

    # ---- inference -------------------------------------------------------------------------------

    async def embed(self, request: JSON) -> JSON:
        model = self._agent(str(request.get("model", ""))).name
        raw = request.get("input")
        inputs = [raw] if isinstance(raw, str) and raw else list(raw or [])
        loaded, load_ms = await self._acquire(model, request.get("keep_alive"))
        try:
            vectors = [self._vector(model, str(text)) for text in inputs]
        finally:
            await self.memory.release(model)
        return {
            "model": model,
            "embeddings": vectors,
            "total_duration": int(load_ms * 1e6),
            "load_duration": int(load_ms * 1e6) if loaded else 0,
            "prompt_eval_count": sum(_tokens(str(t)) for t in inputs),
        }

    # ---- model management ------------------------------------------------------------------------

    async def installed(self) -> list[JSON]:
        return [
            {
                "name": a.name,
                "model": a.name,
                "modified_at": "2025-01-01T00:00:00Z",
                "size": int(a.vram_gb * 1e9),
                "digest": hashlib.sha256(a.name.encode()).hexdigest(),
                "details": _details(),
            }
            for a in self.agents.values()
            if a.name in self.installed_names
        ]

    async def loaded(self) -> list[LoadedModel]:
        return await self.memory.snapshot()

    async def manage(self, method: str, path: str, body: bytes) -> RawReply:
        """/api/pull installs a catalog model (progress lines like Ollama's), /api/delete removes one; an unknown
        model fails like Ollama."""
        if path not in ("/api/pull", "/api/delete"):
            return await super().manage(method, path, body)
        request, model = model_of(body)
        try:
            agent = self._agent_of(model)
        except ModelNotFound:
            if path == "/api/delete":
                return _reply(404, "application/json", ndjson_line({"error": f"model '{model}' not found"}))
            return _reply(500, "application/json", b'{"error":"pull model manifest: file does not exist"}')
        if path == "/api/delete":
            if agent.name not in self.installed_names:
                return _reply(404, "application/json", ndjson_line({"error": f"model '{model}' not found"}))
            self.installed_names.discard(agent.name)
            await self.memory.unload(agent.name)
            return _reply(200, "application/json", b"")
        self.installed_names.add(agent.name)
        if request.get("stream", True) is False:
            return _reply(200, "application/json", b'{"status":"success"}')
        return _reply(
            200, "application/x-ndjson", b"".join(ndjson_line(c) for c in pull_lines(agent.name, agent.vram_gb))
        )

    async def show(self, model: str) -> JSON:
        agent = self._agent(model)
        return {
            "modelfile": f"FROM {agent.name}",
            "parameters": "",
            "template": "{{ .Prompt }}",
            "details": _details(),
            "model_info": {"general.architecture": "sim", "sim.context_length": agent.max_ctx},
            "capabilities": ["completion", "tools"] if agent.tools else ["completion"],
            "modified_at": "2025-01-01T00:00:00Z",
        }

    async def version(self) -> str:
        return "0.0.0-sim"

    async def load(self, model: str, keep_alive: str | int = DEFAULT_KEEP_ALIVE) -> Usage:
        return await self._load(self._agent(model).name, keep_alive)

    async def unload(self, model: str) -> None:
        await self.memory.unload(self._agent(model).name)

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    # ---- internals -------------------------------------------------------------------------------

    def _agent(self, model: str) -> Agent:
        """An installed model (what inference, show and load accept), else ModelNotFound like Ollama."""
        agent = self._agent_of(model)
        if agent.name not in self.installed_names:
            raise ModelNotFound(model)
        return agent

    def _agent_of(self, model: str) -> Agent:
        for candidate in (model, f"{model}:latest", model.removesuffix(":latest")):
            if candidate in self.agents:
                return self.agents[candidate]
        raise ModelNotFound(model)

    async def _acquire(self, model: str, keep_alive: Any) -> tuple[bool, float]:
        agent = self.agents[model]

        async def load() -> float:
            await self._sleep(agent.load_time_ms / 1e3)
            return agent.load_time_ms

        return await self.memory.acquire(model, agent.vram_gb, keep_alive, load)

    async def _load(self, model: str, keep_alive: Any) -> Usage:
        loaded, load_ms = await self._acquire(model, keep_alive)
        await self.memory.release(model)
        return Usage(load_ms=load_ms, total_ms=load_ms) if loaded else Usage()

    async def _sleep(self, simulated_s: float) -> None:
        if self.time_scale > 0 and simulated_s > 0:
            await asyncio.sleep(simulated_s * self.time_scale)

    async def _run(self, request: JSON, *, chat: bool, stream: bool) -> AsyncIterator[JSON]:
        agent = self._agent(str(request.get("model", "")))
        prompt, full_prompt = _prompts(request, chat)
        keep_alive = request.get("keep_alive")
        if not prompt:  # Ollama's empty-prompt load / unload request
            yield await self._load_or_unload(agent, request, chat, keep_alive)
            return
        if chat and request.get("tools") and not agent.tools:
            raise BadRequest(f"{agent.name} does not support tools", "tools")  # Ollama's 400 for such a model
        loaded, load_ms = await self._acquire(agent.name, keep_alive)
        lane = self._lanes.setdefault(agent.name, asyncio.Semaphore(self.num_parallel))
        try:
            await lane.acquire()  # FIFO beyond num_parallel, as Ollama queues requests for a busy model
        except BaseException:
            await self.memory.release(agent.name)
            raise
        self._running[agent.name] = self._running.get(agent.name, 0) + 1
        try:
            calls = sim_tool_calls(request, random.Random(_digest(self.seed, agent.name, prompt))) if chat else []
            text, reason = ("", "stop") if calls else self._answer(agent, prompt, request)
            n_prompt, n_eval = _tokens(full_prompt), _tokens(text or json.dumps(calls))
            share = self._share(agent.name)
            prefill_s = n_prompt / (agent.tokens_per_s * _PREFILL_SPEEDUP * share)
            decode_s = n_eval / (agent.tokens_per_s * share)
            await self._sleep(prefill_s)
            pieces = _split(text, 6) if stream else [text]
            for piece in pieces:
                await self._sleep(decode_s / len(pieces))
                if stream and not calls:
                    yield chunk(agent.name, piece, chat, done=False)
            if stream and calls:
                yield {**chunk(agent.name, "", chat, done=False), "message": _calls_message(calls)}
            final = chunk(agent.name, "" if stream else text, chat, done=True)
            if calls and not stream:
                final["message"] = _calls_message(calls)
            final.update(
                done_reason=reason,
                total_duration=int((load_ms if loaded else 0.0) * 1e6 + (prefill_s + decode_s) * 1e9),
                load_duration=int(load_ms * 1e6) if loaded else 0,
                prompt_eval_count=n_prompt,
                prompt_eval_duration=int(prefill_s * 1e9),
                eval_count=n_eval,
                eval_duration=int(decode_s * 1e9),
            )
            if not chat:
                final["context"] = list(range(1, min(n_prompt + n_eval, 32) + 1))
            yield final
        finally:
            self._running[agent.name] -= 1
            lane.release()
            await self.memory.release(agent.name)

    def _share(self, model: str) -> float:
        """This request's fraction of the model's single-stream speed while k requests run on it."""
        k = max(1, self._running.get(model, 1))
        return float(k**PARALLEL_EXPONENT / k)

    def stats(self) -> JSON:
        """Load and eviction counts and the event log (what a benchmark counts loads with)."""
        kinds = [e.kind for e in self.memory.events]
        return {
            "loads": kinds.count("load"),
            "evictions": sum(kinds.count(k) for k in ("evict", "expire", "unload")),
            "load_ms": round(sum(e.load_ms for e in self.memory.events if e.kind == "load"), 3),
            "peak_vram_gb": round(self.memory.peak_gb, 4),
            "running": {m: n for m, n in self._running.items() if n},
            "events": [
                {"kind": e.kind, "model": e.model, "at": e.at, "resident_gb": round(e.resident_gb, 4)}
                for e in self.memory.events[-1000:]
            ],
        }

    async def _load_or_unload(self, agent: Agent, request: JSON, chat: bool, keep_alive: Any) -> JSON:
        if keep_alive is not None and (keep_alive == 0 or keep_alive == "0"):
            await self.memory.unload(agent.name)
            reason, load_ns = "unload", 0
        else:
            usage = await self._load(agent.name, keep_alive)
            reason, load_ns = "load", int(usage.load_ms * 1e6)
        out = chunk(agent.name, "", chat, done=True)
        out["done_reason"] = reason
        if load_ns:
            out["load_duration"] = out["total_duration"] = load_ns
        return out

    def _answer(self, agent: Agent, prompt: str, request: JSON) -> tuple[str, str]:
        """Deterministic output text and done_reason for (seed, model, prompt)."""
        rng = random.Random(_digest(self.seed, agent.name, prompt))
        fmt = request.get("format")
        hits = [e for e in self._expected if e.substring in prompt]
        match = max(hits, key=lambda e: len(e.substring), default=None)
        if match is not None:
            if rng.random() < self.quality(agent.name, match.task_type):
                return _as_text(match.expected), "stop"
            if not isinstance(fmt, dict):
                return _wrong(match.expected, rng), "stop"
        if isinstance(fmt, dict):
            sampler = SchemaSampler(rng, hints={"model": sorted(self.agents)})
            return json.dumps(sampler.sample(fmt)), "stop"
        if fmt == "json":
            return json.dumps({"answer": " ".join(rng.choices(_FILLER, k=4))}), "stop"
        n_words = int(rng.randint(12, 60) * agent.token_multiplier)
        words = [rng.choice(_FILLER) for _ in range(n_words)]
        limit = int((request.get("options") or {}).get("num_predict", -1))
        if 0 < limit < len(words):
            return " ".join(words[:limit]), "length"
        return " ".join(words), "stop"

    def _vector(self, model: str, text: str) -> list[float]:
        v = np.random.default_rng(_digest(self.seed, model, text)).standard_normal(_EMBED_DIM)
        return [float(x) for x in v / np.linalg.norm(v)]


def _digest(*parts: object) -> int:
    joined = "\x00".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(joined).digest()[:8], "big")


def _prompts(request: JSON, chat: bool) -> tuple[str, str]:
    """(text the answer key matches on, whole prompt for token counting)."""
    if not chat:
        prompt = str(request.get("prompt") or "")
        return prompt, str(request.get("system") or "") + prompt
    messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
    users = [str(m.get("content") or "") for m in messages if m.get("role") == "user"]
    return (users[-1] if users else ""), "\n".join(str(m.get("content") or "") for m in messages)


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4)) if text else 0


def _split(text: str, parts: int) -> list[str]:
    words = text.split(" ")
    step = max(1, math.ceil(len(words) / parts))
    groups = [" ".join(words[i : i + step]) for i in range(0, len(words), step)]
    return [g if i == len(groups) - 1 else g + " " for i, g in enumerate(groups)]


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _wrong(expected: Any, rng: random.Random) -> str:
    """A plausible but wrong answer of the same kind as the expected one."""
    if isinstance(expected, bool):
        return json.dumps(not expected)
    text = _as_text(expected).strip()
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None:
        off = number + rng.choice([-1, 1]) * rng.randint(1, 9)
        return str(int(off)) if number.is_integer() else f"{off:g}"
    if isinstance(expected, dict | list):
        return json.dumps({"answer": "unknown"})
    return "I think the answer is " + " ".join(rng.choices(_FILLER, k=3))


def _calls_message(calls: list[JSON]) -> JSON:
    return {"role": "assistant", "content": "", "tool_calls": calls}


def _details() -> JSON:
    return {"parent_model": "", "format": "gguf", "family": "sim", "families": ["sim"]}


def _reply(status: int, media_type: str, data: bytes) -> RawReply:
    async def body() -> AsyncIterator[bytes]:
        yield data

    return RawReply(status, media_type, body())
