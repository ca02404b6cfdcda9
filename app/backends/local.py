"""Embedded llama.cpp backend: real GGUF models in-process under a memory budget that stands in for VRAM."""

from __future__ import annotations

import asyncio
import gc
import importlib
import importlib.util
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from app.backends.base import DEFAULT_KEEP_ALIVE, JSON, LoadedModel, Usage
from app.backends.local_models import build_grammar, completion_prompt, resolve_model_path
from app.backends.residency import GpuMemory, MemoryEvent, RunBackedInference, chunk
from app.core.errors import BackendUnavailable, BadBackendResponse, BadRequest, ModelNotFound
from app.domain.models import Agent

# Defaults when a request sets no num_predict: Ollama's is unlimited, which makes a 135M model ramble
# until the context is full; 512 keeps answers bounded.
_DEFAULT_MAX_TOKENS = 512
# Used only for models missing from the agents list (configs/agents_local.json has measured values).
_FALLBACK_FOOTPRINT_GB = {"smollm2:135m": 0.175, "gemma3:270m": 0.355}


class LocalBackend(RunBackedInference):
    """llama-cpp-python models, one llama.cpp call per model at a time, in worker threads.

    A load reserves the model's measured footprint in a `GpuMemory` of `budget_gb` (Ollama's eviction
    rules), then constructs `Llama(...)`; an eviction drops the object and runs the GC, which frees
    the weights and KV cache. `loaded()` lists exactly the `Llama` objects alive in this process.
    """

    def __init__(
        self,
        agents: list[Agent],
        budget_gb: float,
        *,
        n_ctx: int = 2048,
        n_threads: int = 2,
        data_dir: str | Path | None = None,
        default_keep_alive: str | int = "5m",
        extra_buffers: bool | None = None,
        name: str = "local",
    ) -> None:
        try:
            self._llama_cpp = importlib.import_module("llama_cpp")
        except ImportError as exc:
            raise BackendUnavailable("the local backend needs llama-cpp-python: pip install .[local]") from exc
        if extra_buffers is False or (extra_buffers is None and _cpu_has_amx()):
            _disable_extra_buffer_types()
        _quiet_llama_logs(self._llama_cpp)
        self.name = name
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.data_dir = Path(data_dir or os.environ.get("SWARM_DATA_DIR") or _default_data_dir())
        self.agents = {a.name: a for a in agents}
        self.memory = GpuMemory(budget_gb, default_keep_alive=default_keep_alive, on_evict=self._free)
        names = dict.fromkeys([*self.agents, *_FALLBACK_FOOTPRINT_GB])
        self._available = [m for m in names if resolve_model_path(m, None) is not None]
        self._llms: dict[str, Any] = {}
        self._call_locks: dict[str, asyncio.Lock] = {}

    @property
    def events(self) -> list[MemoryEvent]:
        return self.memory.events

    # ---- inference -------------------------------------------------------------------------------

    async def embed(self, request: JSON) -> JSON:
        raise BadBackendResponse("the local backend serves no embedding model (HTTP 400)")

    # ---- model management ------------------------------------------------------------------------

    async def installed(self) -> list[JSON]:
        rows = []
        for model in self._available:
            footprint = self._footprint(model)
            rows.append({"name": model, "model": model, "size": int(footprint * 1e9), "details": _details()})
        return rows

    async def loaded(self) -> list[LoadedModel]:
        return await self.memory.snapshot()

    async def show(self, model: str) -> JSON:
        model = self._check(model)
        return {
            "details": _details(),
            "model_info": {"general.architecture": "llama.cpp", "llama.context_length": self.n_ctx},
            "capabilities": ["completion"],
            "parameters": f"num_ctx {self.n_ctx}",
        }

    async def version(self) -> str:
        return f"llama-cpp-python {getattr(self._llama_cpp, '__version__', '?')}"

    async def load(self, model: str, keep_alive: str | int = DEFAULT_KEEP_ALIVE) -> Usage:
        return await self._load(self._check(model), keep_alive)

    async def unload(self, model: str) -> None:
        await self.memory.unload(self._check(model))

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        for model in self.memory.resident():
            await self.memory.unload(model)

    # ---- internals -------------------------------------------------------------------------------

    def _check(self, model: str) -> str:
        if model in self._available:
            return model
        raise ModelNotFound(model)

    def _footprint(self, model: str) -> float:
        agent = self.agents.get(model)
        return agent.vram_gb if agent is not None else _FALLBACK_FOOTPRINT_GB.get(model, 0.5)

    async def _load(self, model: str, keep_alive: Any) -> Usage:
        loaded, load_ms = await self._acquire(model, keep_alive)
        await self.memory.release(model)
        return Usage(load_ms=load_ms, total_ms=load_ms) if loaded else Usage()

    async def _acquire(self, model: str, keep_alive: Any) -> tuple[bool, float]:
        async def load() -> float:
            return await asyncio.to_thread(self._load_blocking, model)

        return await self.memory.acquire(model, self._footprint(model), keep_alive, load)

    def _load_blocking(self, model: str) -> float:
        path = resolve_model_path(model, self.data_dir)
        if path is None:
            raise ModelNotFound(model)
        started = time.perf_counter()
        llm = self._llama_cpp.Llama(model_path=str(path), n_ctx=self.n_ctx, n_threads=self.n_threads, verbose=False)
        self._llms[model] = llm
        return (time.perf_counter() - started) * 1e3

    def _free(self, model: str) -> None:
        llm = self._llms.pop(model, None)
        if llm is not None:
            llm.close()
            del llm
            gc.collect()

    async def _run(self, request: JSON, *, chat: bool, stream: bool) -> AsyncIterator[JSON]:
        model = self._check(str(request.get("model", "")))
        keep_alive = request.get("keep_alive")
        if chat and request.get("tools"):
            raise BadRequest(f"{model} does not support tools", "tools")  # as Ollama answers for such a model
        if not _has_prompt(request, chat):
            yield await self._load_or_unload(model, keep_alive, chat)
            return
        started = time.perf_counter()
        loaded, load_ms = await self._acquire(model, keep_alive)
        try:
            async with self._call_locks.setdefault(model, asyncio.Lock()):
                llm = self._llms[model]
                call = self._completion_call(llm, request, chat)
                pieces: list[str] = []
                finish = "stop"
                async for text, reason in _threaded_iter(call):
                    pieces.append(text)
                    finish = reason or finish
                    if stream and text:
                        yield chunk(model, text, chat, done=False)
                perf = _perf(self._llama_cpp, llm)
            final = chunk(model, "" if stream else "".join(pieces), chat, done=True)
            final.update(done_reason=finish, load_duration=int(load_ms * 1e6) if loaded else 0, **perf)
            final["total_duration"] = int((time.perf_counter() - started) * 1e9)
            yield final
        finally:
            await self.memory.release(model)

    def _completion_call(self, llm: Any, request: JSON, chat: bool) -> Callable[[], Iterator[Any]]:
        """A blocking generator factory of (text, finish_reason) pieces, run in a worker thread."""
        options = request.get("options") or {}
        kwargs: dict[str, Any] = {
            "max_tokens": int(options.get("num_predict") or _DEFAULT_MAX_TOKENS),
            "temperature": float(options.get("temperature", 0.8)),
            "top_p": float(options.get("top_p", 0.9)),
            "top_k": int(options.get("top_k", 40)),
            "repeat_penalty": float(options.get("repeat_penalty", 1.1)),
            "stream": True,
        }
        if kwargs["max_tokens"] < 0:
            kwargs["max_tokens"] = self.n_ctx  # Ollama's -1: until the context is full
        if "seed" in options:
            kwargs["seed"] = int(options["seed"])
        if options.get("stop"):
            kwargs["stop"] = list(options["stop"])
        grammar = build_grammar(self._llama_cpp, request.get("format"))
        if grammar is not None:
            kwargs["grammar"] = grammar
        messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
        has_template = bool(llm.metadata.get("tokenizer.chat_template"))
        llama_perf_reset = getattr(self._llama_cpp, "llama_perf_context_reset", None)

        def run() -> Iterator[Any]:
            if llama_perf_reset is not None:
                llama_perf_reset(llm.ctx)
            if chat and has_template:
                msgs = [{"role": m.get("role", "user"), "content": m.get("content", "")} for m in messages]
                for part in llm.create_chat_completion(messages=msgs, **kwargs):
                    choice = part["choices"][0]
                    yield choice["delta"].get("content") or "", choice.get("finish_reason")
                return
            prompt = completion_prompt(messages) if chat else _generate_prompt(request)
            if chat:
                kwargs["stop"] = [*kwargs.get("stop", []), "\nUser:"]
            for part in llm.create_completion(prompt=prompt, **kwargs):
                choice = part["choices"][0]
                yield choice.get("text") or "", choice.get("finish_reason")

        return run

    async def _load_or_unload(self, model: str, keep_alive: Any, chat: bool) -> JSON:
        if keep_alive == 0 or keep_alive == "0":
            await self.memory.unload(model)
            out = chunk(model, "", chat, done=True)
            out["done_reason"] = "unload"
            return out
        usage = await self._load(model, keep_alive)
        out = chunk(model, "", chat, done=True)
        out.update(done_reason="load", load_duration=int(usage.load_ms * 1e6))
        return out


async def _threaded_iter(factory: Callable[[], Iterator[Any]]) -> AsyncIterator[Any]:
    """Run a blocking generator in a worker thread and hand its items over as they come."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    stop = threading.Event()

    def worker() -> None:
        try:
            for item in factory():
                loop.call_soon_threadsafe(queue.put_nowait, ("item", item))
                if stop.is_set():
                    break
            loop.call_soon_threadsafe(queue.put_nowait, ("end", None))
        except BaseException as exc:  # handed to the event loop, re-raised there
            loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))

    task = asyncio.ensure_future(asyncio.to_thread(worker))
    try:
        while True:
            kind, value = await queue.get()
            if kind == "end":
                break
            if kind == "error":
                raise BadBackendResponse(f"llama.cpp failed: {value!r}") from value
            yield value
    finally:
        stop.set()  # a consumer that stops early ends generation at the next token
        await task


def _perf(llama_cpp: Any, llm: Any) -> dict[str, int]:
    try:
        data = llama_cpp.llama_perf_context(llm.ctx)
    except (AttributeError, TypeError):
        return {}
    return {
        "prompt_eval_count": int(data.n_p_eval),
        "prompt_eval_duration": int(data.t_p_eval_ms * 1e6),
        "eval_count": int(data.n_eval),
        "eval_duration": int(data.t_eval_ms * 1e6),
    }


def _has_prompt(request: JSON, chat: bool) -> bool:
    return bool(request.get("messages")) if chat else bool(request.get("prompt"))


def _generate_prompt(request: JSON) -> str:
    system = str(request.get("system") or "")
    prompt = str(request.get("prompt") or "")
    return f"{system}\n\n{prompt}" if system else prompt


def _details() -> JSON:
    return {"parent_model": "", "format": "gguf", "family": "llama.cpp", "families": ["llama.cpp"]}


def _default_data_dir() -> Path:
    return Path.home() / ".cache" / "ollama-swarm-router"


_LOG_SINK: Any = None  # keeps the ctypes callback alive for as long as llama.cpp may call it


def _quiet_llama_logs(llama_cpp: Any) -> None:
    """llama.cpp logs to stderr even with verbose=False (e.g. "using full-size SWA cache"): drop its logs."""
    global _LOG_SINK
    if _LOG_SINK is None and hasattr(llama_cpp, "llama_log_set"):
        _LOG_SINK = llama_cpp.llama_log_callback(lambda level, text, user_data: None)
        llama_cpp.llama_log_set(_LOG_SINK, None)


def _cpu_has_amx() -> bool:
    try:
        return "amx_tile" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def _disable_extra_buffer_types() -> None:
    """Make llama-cpp-python load weights without extra buffer types (AMX / repacked layouts).

    On VMs that advertise AMX but do not grant the tile state, ggml's AMX matmul faults with SIGSEGV
    (`ldtilecfg`); `Llama()` has no switch for `use_extra_bufts`, so the default params are wrapped.
    """
    module = importlib.import_module("llama_cpp.llama").llama_cpp
    if getattr(module, "_swarm_no_extra_bufts", False):
        return
    original = module.llama_model_default_params

    def default_params() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    module.llama_model_default_params = default_params
    module._swarm_no_extra_bufts = True
