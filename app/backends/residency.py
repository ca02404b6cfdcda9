"""GPU memory bookkeeping shared by the sim and local backends: Ollama's keep-alive and eviction rules."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from app.backends.base import JSON, LineBlock, LoadedModel, RawReply, chunk_lines
from app.backends.compat import translate
from app.core.errors import BadBackendResponse, Unsupported

EventKind = Literal["load", "evict", "expire", "unload"]
_EPS = 1e-9
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_keep_alive(value: str | float | None) -> float | None:
    """Ollama's keep_alive → seconds (inf = forever, None = absent). Numbers are seconds; strings are
    Go durations ("5m", "1h30m", "0"); a negative value means forever."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return math.inf if value < 0 else float(value)
    text = value.strip()
    if text == "0":
        return 0.0
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if not body or _DURATION.sub("", body):
        raise BadBackendResponse(f'time: invalid duration "{value}" (HTTP 400)')
    seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(body))
    return math.inf if sign < 0 else seconds


@dataclass
class MemoryEvent:
    kind: EventKind
    model: str
    at: float  # wall clock, seconds
    resident_gb: float  # memory in use right after the event
    load_ms: float = 0.0


@dataclass
class _Slot:
    size_gb: float
    keep_alive_s: float
    refs: int = 0
    loading: bool = True
    last_used: float = 0.0
    expires_at: float | None = None  # set when the slot becomes idle


def iso(ts: float) -> str:
    return datetime.fromtimestamp(min(ts, 253402300799.0), UTC).isoformat().replace("+00:00", "Z")


class GpuMemory:
    """Which models are resident on one device, under a hard capacity.

    Eviction follows Ollama's scheduler: among *idle* models, the one with the shortest keep-alive goes
    first (ties: least recently used, then name); a model with in-flight requests is never evicted, so
    a load that does not fit waits until one becomes idle. Only one load runs at a time (Ollama's
    single pending-request loop), which also keeps concurrent loads from overcommitting memory.
    """

    def __init__(
        self,
        capacity_gb: float,
        *,
        default_keep_alive: str | float = "5m",
        clock: Callable[[], float] = time.time,
        on_evict: Callable[[str], None] | None = None,
    ) -> None:
        self.capacity_gb = capacity_gb
        # Frees the model's real memory (local backend); runs under the lock, so it must be quick.
        self.on_evict = on_evict
        self.default_keep_alive_s = parse_keep_alive(default_keep_alive) or 0.0
        self.clock = clock
        self.events: list[MemoryEvent] = []
        self.peak_gb = 0.0
        self._slots: dict[str, _Slot] = {}
        self._cond = asyncio.Condition()
        self._load_lock = asyncio.Lock()

    @property
    def used_gb(self) -> float:
        return sum(s.size_gb for s in self._slots.values())

    def resident(self) -> list[str]:
        return [m for m, s in self._slots.items() if not s.loading]

    def in_flight(self) -> dict[str, int]:
        """Requests running (or waiting on the load) per resident model, right now."""
        return {m: s.refs for m, s in self._slots.items()}

    async def acquire(
        self,
        model: str,
        size_gb: float,
        keep_alive: str | float | None,
        load: Callable[[], Awaitable[float]],
    ) -> tuple[bool, float]:
        """Mark `model` busy, loading it first if needed (evicting idle models to make room).
        Returns (loaded_now, load_ms) where load_ms is what `load()` reported."""
        if size_gb > self.capacity_gb + _EPS:
            raise BadBackendResponse(
                f"model '{model}' needs {size_gb:.2f} GB but the device has {self.capacity_gb:.2f} GB (HTTP 500)"
            )
        ka = parse_keep_alive(keep_alive)
        async with self._cond:
            if self._use_resident(model, ka):
                return False, 0.0
        async with self._load_lock:
            async with self._cond:
                if self._use_resident(model, ka):
                    return False, 0.0
                await self._make_room(size_gb)
                slot = _Slot(size_gb, self.default_keep_alive_s if ka is None else ka, refs=1)
                self._slots[model] = slot
                self.peak_gb = max(self.peak_gb, self.used_gb)
                # The invariant the whole router relies on: never more resident than the device holds.
                assert self.used_gb <= self.capacity_gb + _EPS, (self.used_gb, self.capacity_gb)
            try:
                load_ms = await load()
            except BaseException:
                async with self._cond:
                    self._slots.pop(model, None)
                    self._cond.notify_all()
                raise
            async with self._cond:
                slot.loading = False
                self.events.append(MemoryEvent("load", model, self.clock(), self.used_gb, load_ms))
                self._cond.notify_all()
            return True, load_ms

    async def release(self, model: str) -> None:
        async with self._cond:
            slot = self._slots.get(model)
            if slot is None:
                return
            slot.refs -= 1
            slot.last_used = self.clock()
            if slot.refs == 0:
                if slot.keep_alive_s == 0:
                    self._evict(model, "unload")
                else:
                    slot.expires_at = slot.last_used + slot.keep_alive_s
            self._cond.notify_all()

    async def unload(self, model: str) -> None:
        """Evict now if idle; if busy, expire as soon as its last request finishes (Ollama does the same)."""
        async with self._cond:
            slot = self._slots.get(model)
            if slot is None:
                return
            if slot.refs == 0:
                self._evict(model, "unload")
            else:
                slot.keep_alive_s = 0.0
            self._cond.notify_all()

    async def snapshot(self) -> list[LoadedModel]:
        """What /api/ps would say now, latest expiry first."""
        async with self._cond:
            self._purge_expired()
            now = self.clock()
            rows = []
            for name, s in self._slots.items():
                expires = s.expires_at if s.refs == 0 and s.expires_at is not None else now + s.keep_alive_s
                size = int(s.size_gb * 1e9)
                rows.append((expires, LoadedModel(name, size, size, iso(expires))))
            return [m for _, m in sorted(rows, key=lambda r: -r[0])]

    def _use_resident(self, model: str, keep_alive_s: float | None) -> bool:
        self._purge_expired()
        slot = self._slots.get(model)
        if slot is None or slot.loading:
            return False
        slot.refs += 1
        slot.expires_at = None
        if keep_alive_s is not None:
            slot.keep_alive_s = keep_alive_s  # a request's keep_alive overwrites the session duration
        return True

    async def _make_room(self, need_gb: float) -> None:
        while self.used_gb + need_gb > self.capacity_gb + _EPS:
            self._purge_expired()
            if self.used_gb + need_gb <= self.capacity_gb + _EPS:
                return
            idle = [(s.keep_alive_s, s.last_used, m) for m, s in self._slots.items() if s.refs == 0]
            if idle:
                self._evict(min(idle)[2], "evict")
            else:
                await self._cond.wait()  # every resident model is busy: wait like Ollama's queue

    def _purge_expired(self) -> None:
        now = self.clock()
        for model, s in list(self._slots.items()):
            if s.refs == 0 and s.expires_at is not None and s.expires_at <= now:
                self._evict(model, "expire")

    def _evict(self, model: str, kind: EventKind) -> None:
        self._slots.pop(model)
        if self.on_evict is not None:
            self.on_evict(model)
        self.events.append(MemoryEvent(kind, model, self.clock(), self.used_gb))


def chunk(model: str, text: str, chat: bool, *, done: bool) -> JSON:
    """One Ollama-native response object (/api/chat `message` or /api/generate `response`)."""
    body: JSON = {"model": model, "created_at": iso(time.time())}
    if chat:
        body["message"] = {"role": "assistant", "content": text}
    else:
        body["response"] = text
    body["done"] = done
    return body


async def collect(stream: AsyncIterator[JSON]) -> JSON:
    """The final (done) object of a stream: what a non-streaming call returns."""
    final: JSON = {}
    async for item in stream:
        final = item
    return final


class RunBackedInference:
    """chat / generate, streaming or not, for in-process backends that implement one `_run` generator."""

    def _run(self, request: JSON, *, chat: bool, stream: bool) -> AsyncIterator[JSON]:
        raise NotImplementedError

    async def embed(self, request: JSON) -> JSON:
        raise NotImplementedError

    async def chat(self, request: JSON) -> JSON:
        return await collect(self._run(request, chat=True, stream=False))

    def chat_stream(self, request: JSON) -> AsyncIterator[JSON]:
        return self._run(request, chat=True, stream=True)

    async def generate(self, request: JSON) -> JSON:
        return await collect(self._run(request, chat=False, stream=False))

    def generate_stream(self, request: JSON) -> AsyncIterator[JSON]:
        return self._run(request, chat=False, stream=True)

    def relay_lines(self, request: JSON, *, chat: bool) -> AsyncGenerator[LineBlock, None]:
        return chunk_lines(self._run(request, chat=chat, stream=True))

    async def relay_compat(self, path: str, body: bytes) -> RawReply:
        return await translate(self, path, body)

    async def manage(self, method: str, path: str, body: bytes) -> RawReply:
        name = getattr(self, "name", type(self).__name__)
        raise Unsupported(f"{path} needs an Ollama backend; this server runs on the {name!r} backend")
