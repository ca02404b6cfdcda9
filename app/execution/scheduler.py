"""One swap-aware, fair queue per GPU: every model call is admitted here, bound to a model and dispatched when that
model is resident with a free slot. The scheduler alone loads and evicts (policy "swap_aware"); "fifo" passes calls
straight to the backend in arrival order, as Ollama alone would.

Which models to keep resident is decided by the exact router's DP (routing/dp.py) over the queue: every queued call
is a subtask whose value on each candidate model is its utility plus what its wait has cost (wait_weight per
second, weighted per tenant), resident models are worth, for hold_s after their last call, the next call their
clients are likely to send; loading a model costs the routing objective's switch cost (λ_switch · C_sw, the
normalisation of /route). A call older than max_wait_s forces its model in. Invariants, held here only: resident
VRAM <= G, a model with calls in flight is never evicted (it is drained first), at most num_parallel calls run on
a model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.core.errors import BackendError, GpuSaturated, InfeasibleError, QueueFull
from app.domain.knobs import RoutingParams
from app.execution.cpu import run_cpu
from app.execution.sched_plan import ModelSpec, QueuedDemand, choose_resident, deadline_plan, fits_beside, to_evict
from app.execution.sched_timing import CallTimes
from app.execution.sched_types import CallRequest, SchedEvent, Waiter, one_spelling, queue_counts

if TYPE_CHECKING:
    from app.backends.base import Backend
    from app.core.settings import SchedulerSettings

log = logging.getLogger("swarm.scheduler")
SWAP_RETRIES = 3  # swaps in a row failing on a backend error before the queue is dispatched as it is
BIG_DECISION = 64  # queued calls from which the swap decision runs on the CPU pool instead of the event loop


@dataclass
class Lease:
    """A dispatched call: run it on `model`, then release (idempotent; `async with` does it)."""

    scheduler: GpuScheduler
    model: str
    tenant: str = ""
    waited_s: float = 0.0
    started: float | None = None  # scheduler clock at dispatch
    cold: bool = False  # dispatched while its model was still to be loaded: its time includes the load
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.scheduler._release(self.model, self.tenant, self.started, self.cold)

    async def __aenter__(self) -> Lease:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class GpuScheduler:
    def __init__(
        self,
        backend: Backend,
        capacity_gb: float,
        settings: SchedulerSettings,
        *,
        keep_alive: str | int = "10m",
        routing: RoutingParams | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        prm = routing or RoutingParams()
        # λ_switch · C_sw with C_sw = load_ms / (3 · switch_t_scale_ms): the objective's cost per second of loading.
        self.switch_per_s = prm.lambda_switch * 1e3 / (3 * prm.switch_t_scale_ms)
        self.backend = backend
        self.capacity_gb = capacity_gb
        self.cfg = settings
        self.keep_alive = keep_alive
        self.clock = clock
        self.queue: list[Waiter] = []
        self.inflight: Counter[str] = Counter()
        self.resident: dict[str, float] = {}  # model -> GB, as the backend reports it
        self.draining: set[str] = set()
        self.loading: set[str] = set()
        self.last_used: dict[str, float] = {}
        self.recent: dict[str, dict[str, float]] = {}  # model -> tenant -> when its last call there ended
        self.running: dict[str, Counter[str]] = {}  # model -> tenant -> calls in flight
        self.held: dict[str, str] = {}  # job -> tenant: admitted jobs whose first call is not dispatched yet
        self.observed: dict[str, float] = {}  # model -> GB the backend reported it using when loaded
        self.failures = 0  # swaps in a row that failed on a backend error
        self.fresh: set[str] = set()  # reserved models whose first call (which loads them) has not returned yet
        self.times = CallTimes(self._spec, float(getattr(backend, "time_scale", 1.0)))
        self.specs: dict[str, ModelSpec] = {}
        self.vtime: dict[str, float] = {}  # tenant -> virtual time (fair queuing)
        self.events: list[SchedEvent] = []
        self.emitted = 0  # events ever emitted (the list keeps the recent ones)
        self.listeners: list[Callable[[SchedEvent], None]] = []
        self.max_resident_gb = 0.0
        self._swap: asyncio.Task[None] | None = None
        self._tick: asyncio.TimerHandle | None = None
        self._drained = asyncio.Event()
        self._known = False
        self._planned: dict[int, str] = {}  # waiter id -> the model the last swap decision chose for it
        self._settled = False  # the last decision was to wait: no new one until something changes

    def try_acquire(self, req: CallRequest) -> Lease | None:
        """The common case without waiting: nothing queued and a candidate resident with a free slot."""
        if not req.candidates:
            raise ValueError("a call needs at least one candidate model")
        if self.cfg.policy == "fifo":  # pass-through: the backend loads and queues as it likes
            return self._grant(req, next(iter(req.candidates)), self.clock())
        self.specs.update(req.specs)
        if any(m not in self.specs for m in req.candidates):
            req.candidates = {self._canon(m): u for m, u in req.candidates.items()}
        if self.queue or not self._known:
            return None
        model = self._bind(req)
        if model is None:
            return None
        return self._grant(req, model, self.clock())

    async def acquire(self, req: CallRequest) -> Lease:
        """Wait until the call is dispatched; cancelling the wait removes it from the queue."""
        lease = self.try_acquire(req)
        if lease is not None:
            return lease
        if req.kind not in ("job", "helper"):
            self.admit(req.tenant)
        for model in req.candidates:
            self.times.expect(model, req.est_tokens)
        too_big = [m for m in req.candidates if self._spec(m).vram_gb > self.capacity_gb + 1e-9]
        if len(too_big) == len(req.candidates):
            need = min(self._spec(m).vram_gb for m in too_big)
            raise InfeasibleError(
                f"{too_big[0]} needs {need:g} GB but this GPU holds {self.capacity_gb:g} GB: it can never be loaded"
            )
        if too_big:  # candidates that can never be loaded here are dropped
            req.candidates = {m: u for m, u in req.candidates.items() if m not in too_big}
        if not self._known:
            await self.refresh()
        waiter = Waiter(req, asyncio.get_running_loop().create_future(), self.clock())
        self.queue.append(waiter)
        self._settled = False
        self._emit(SchedEvent("queued", next(iter(req.candidates)), waiter.arrival, req.kind, req.tenant))
        self._pump()
        try:
            return await waiter.future
        except asyncio.CancelledError:
            self._forget(waiter)
            raise

    def queue_snapshot(self, tenant_id: str | None) -> dict[str, dict[str, int]]:
        """Queued calls by (first-choice) model and by tenant; with `tenant_id`, that tenant's only."""
        return queue_counts(self.queue, tenant_id)

    async def refresh(self) -> None:
        """Read the truth (/api/ps): other clients of the same Ollama may have changed it."""
        loaded = await self.backend.loaded()
        # Reserved models whose first call has not loaded them yet are not in /api/ps: they still hold their room.
        reserved = {m: self._spec(m).vram_gb for m in self.fresh}
        self.resident = {**reserved, **{self._canon(m.name): m.size_vram / 1e9 for m in loaded}}
        self.observed.update({self._canon(m.name): m.size_vram / 1e9 for m in loaded if m.size_vram > 0})
        self._known = True
        self.max_resident_gb = max(self.max_resident_gb, sum(self.resident.values()))

    def close(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
        if self._swap is not None:
            self._swap.cancel()
        for w in self.queue:
            if not w.future.done():
                w.future.cancel()
        self.queue.clear()

    def admit(self, tenant: str, job: str | None = None) -> None:
        """Back-pressure: QueueFull (429) past max_queue_per_tenant calls waiting for the tenant, GpuSaturated (503)
        past max_queue on the GPU. Proxied calls are checked on arrival, jobs on submission; an admitted `job` counts
        as a waiting call until its first call is dispatched (or `unhold`: it ended first)."""
        retry = max(1.0, min(60.0, self.cfg.max_wait_s / 4))
        waiting = len(self.queue) + len(self.held)
        if waiting >= self.cfg.max_queue:
            raise GpuSaturated(f"the GPU's queue is full ({waiting} calls and jobs waiting); retry later", retry)
        mine = sum(1 for w in self.queue if w.req.tenant == tenant) + sum(t == tenant for t in self.held.values())
        if mine >= self.cfg.max_queue_per_tenant:
            raise QueueFull(f"tenant {tenant!r} already has {mine} calls waiting on this GPU; retry later", retry)
        if job is not None:
            self.held[job] = tenant

    def unhold(self, job: str) -> None:
        self.held.pop(job, None)

    def _release(self, model: str, tenant: str = "", started: float | None = None, cold: bool = False) -> None:
        now = self.clock()
        if started is not None:
            self.times.finished(model, now - started, cold)
        if cold:
            self.fresh.discard(model)
        self.recent.setdefault(model, {})[tenant] = now
        self.running.get(model, Counter())[tenant] -= 1
        self._settled = False
        self.inflight[model] -= 1
        if self.inflight[model] <= 0:
            del self.inflight[model]
            self._drained.set()
        self.last_used[model] = self.clock()
        self._pump()

    def _forget(self, waiter: Waiter) -> None:
        self._planned.pop(waiter.id, None)
        if waiter in self.queue:
            self.queue.remove(waiter)
            self._emit(SchedEvent("cancelled", next(iter(waiter.req.candidates)), self.clock(), "", waiter.req.tenant))
        elif waiter.future.done() and not waiter.future.cancelled():
            waiter.future.result().release()  # dispatched just as the caller left

    def _pump(self) -> None:
        now = self.clock()
        if self._known and self._swap is not None and not self._swap.done():
            self._reserve_free()
        urgent = self._urgent(now)
        blocked = self._blocked(urgent, now)
        for waiter in sorted(self.queue, key=lambda w: self._priority(w, urgent)):
            model = self._bind(waiter.req, self._planned.get(waiter.id))
            if model is not None and model not in blocked:
                self._dispatch(waiter, model, now)
        # A swap decision only when some queued call's first choice is not resident: calls that merely wait for a
        # slot on a loaded model (a deep queue on one model) need none, and deciding on every release costs CPU.
        if self.queue and not self._settled and (self._swap is None or self._swap.done()) and self._wants_swap():
            self._swap = asyncio.create_task(self._swap_cycle())
        if self.queue and self._tick is None:
            self._tick = asyncio.get_running_loop().call_later(self.cfg.tick_s, self._on_tick)

    def _blocked(self, urgent: set[str], now: float) -> set[str]:
        """A forced swap is coming: no new call starts on a model it will drop (that would only delay the drain),
        unless the model was just brought in for its calls or holds a call older than any of the forced ones."""
        if not urgent:
            return set()
        due = min(w.arrival for w in self.queue if self._want(w) in urgent)
        older = {m for w in self.queue if w.arrival <= due for m in w.req.candidates}
        load = [m for m in urgent if m not in self.resident]
        drop = to_evict(urgent, load, self.resident, self._resident_values(now), self._spec, self.capacity_gb)
        return {m for m in drop if m not in self.fresh and m not in older}

    def _wants_swap(self) -> bool:
        return any(self._want(w) not in self.resident or self._want(w) in self.draining for w in self.queue)

    def _on_tick(self) -> None:
        self._tick = None
        self._settled = False  # waits have grown: decide again
        self._pump()

    def _priority(self, w: Waiter, urgent: set[str]) -> tuple[int, float, float]:
        return (0 if self._want(w) in urgent else 1, self.vtime.get(w.req.tenant, 0.0), w.arrival)

    @staticmethod
    def _want(w: Waiter) -> str:
        return max(w.req.candidates.items(), key=lambda kv: kv[1])[0]

    def _urgent(self, now: float) -> set[str]:
        """The models to force in now so that no queued call waits past max_wait_s (sched_plan.deadline_plan)."""
        oldest: dict[str, float] = {}
        for w in self.queue:
            if any(m in self.resident and m not in self.draining for m in w.req.candidates):
                continue  # it can run on what is loaded (a slot frees up): no swap is owed to it
            model = self._want(w)
            oldest[model] = min(oldest.get(model, math.inf), w.arrival)
        if not oldest:
            return set()
        start = now + self._drain_s(now) + self.cfg.tick_s
        return deadline_plan(oldest, start, self.cfg.max_wait_s, self.times, self._spec, self.capacity_gb)

    def _drain_s(self, now: float) -> float:
        """How long until every resident model could be dropped: the calls in flight run their course, and a queued
        call that could start on a resident model now would run a whole call."""
        startable = {self._want(w) for w in self.queue}
        out = 0.0
        for model in self.resident:
            loading = model in self.fresh
            if self.inflight[model]:
                out = max(out, self.times.remaining_s(model, now, loading))
            if model in startable and self._free(model):
                out = max(out, self.times.whole_s(model, loading))
        return out

    def _free(self, model: str) -> bool:
        return (
            model in self.resident
            and model not in self.draining
            and model not in self.loading
            and self.inflight[model] < self.cfg.num_parallel
        )

    def _bind(self, req: CallRequest, planned: str | None = None) -> str | None:
        """Late binding: the model the last swap decision chose for the call, else its best candidate net of the
        switch cost a model that is not resident would add (route_single's rule, with the GPU as it is now), so a
        resident model within the switch cost of a better one wins. None: it cannot run yet."""
        if planned is not None and self._free(planned):
            return planned
        if len(req.candidates) == 1:
            model = next(iter(req.candidates))
            return model if self._free(model) else None

        def net(item: tuple[str, float]) -> float:
            model, utility = item
            return utility - (0.0 if model in self.resident else self.switch_per_s * self._spec(model).load_ms / 1e3)

        best = max(req.candidates.items(), key=net)[0]
        return best if self._free(best) else None

    def _dispatch(self, w: Waiter, model: str, now: float) -> None:
        self.queue.remove(w)
        self._planned.pop(w.id, None)
        if not w.future.done():  # else cancelled meanwhile
            w.future.set_result(self._grant(w.req, model, w.arrival))

    def _grant(self, req: CallRequest, model: str, arrival: float) -> Lease:
        now = self.clock()
        self.inflight[model] += 1
        self.running.setdefault(model, Counter())[req.tenant] += 1
        self.last_used[model] = now
        # Fair queuing: a tenant's virtual time advances by its calls' size over its weight; an idle tenant
        # restarts at the queue's floor, so it cannot bank time while away.
        floor = min((self.vtime.get(x.req.tenant, 0.0) for x in self.queue), default=0.0)
        start = max(self.vtime.get(req.tenant, 0.0), floor)
        self.vtime[req.tenant] = start + req.est_tokens / self._weight(req)
        waited = now - arrival
        self.times.started(model, now, req.est_tokens)
        if req.job:
            self.held.pop(req.job, None)
        lease = Lease(self, model, req.tenant, waited_s=waited, started=now, cold=model in self.fresh)
        self._emit(SchedEvent("dispatch", model, now, req.kind, req.tenant, round(waited, 4)))
        return lease

    async def _swap_cycle(self) -> None:
        try:
            await self._swap_once()
            self.failures = 0
        except BackendError as exc:
            # The backend cannot say what is resident or drop a model. A blip is retried at the next tick; when it
            # persists (it is down, or answers garbage) nothing is gained by waiting, so every queued call goes on
            # to its best model and meets the backend's own error.
            self.failures += 1
            if self.failures < SWAP_RETRIES:
                log.warning("scheduler cannot read or change the GPU (%s): retrying", exc.message)
                return
            log.warning("scheduler cannot read or change the GPU (%s): dispatching the queue as it is", exc.message)
            self._release_all(exc.message)
        except Exception:  # never wedge the queue
            log.exception("scheduler swap failed")
            self._release_all("scheduler error")

    def _release_all(self, reason: str) -> None:
        now = self.clock()
        urgent = self._urgent(now)
        for w in sorted(self.queue, key=lambda w: self._priority(w, urgent)):
            model = max(w.req.candidates.items(), key=lambda kv: kv[1])[0]
            self._emit(SchedEvent("unscheduled", model, now, reason, w.req.tenant))
            self._dispatch(w, model, now)

    async def _swap_once(self) -> None:
        now = self.clock()
        demands = self._demands(now)
        if not demands:
            return
        room = fits_beside(demands, self.resident, self.loading, self._spec, self.capacity_gb)
        if room is not None:  # loading into free memory costs no resident model anything: no trade-off to weigh
            load, evict, reason = [room], [], "free memory: serves queued calls without an eviction"
        else:
            waiters = list(self.queue)
            args = (demands, dict(self.resident), self._resident_values(now), self._specs_now(), self.capacity_gb)
            if len(waiters) >= BIG_DECISION:  # a large decision must not stall the event loop
                target, chosen, reason = await run_cpu(choose_resident, *args, self.switch_per_s)
            else:
                target, chosen, reason = choose_resident(*args, self.switch_per_s)
            self._planned = {waiters[i].id: model for i, model in chosen.items() if i < len(waiters)}
            load = [m for m in target if m not in self.resident]
            if not load:  # waiting is worth more than any swap now: bind what the decision placed, then rest
                self._settled = True
                self._pump()
                return
            evict = to_evict(target, load, self.resident, self._resident_values(now), self._spec, self.capacity_gb)
        self.draining.update(evict)
        self.loading.update(load)
        try:
            while any(self.inflight[m] > 0 for m in evict):
                self._drained.clear()
                await self._drained.wait()
            for model in evict:
                await self.backend.unload(model)
                self.fresh.discard(model)
                self._emit(SchedEvent("evict", model, self.clock(), reason))
            await self.refresh()
            load = [m for m in load if m not in self.resident]
            if sum(self.resident.values()) + sum(self._spec(m).vram_gb for m in load) > self.capacity_gb + 1e-9:
                # The GPU is not as the decision saw it (another client loaded something, an unload is still in
                # progress, a model came in beside): decide again at the next tick rather than overcommit.
                log.info("scheduler: the GPU changed during a swap; deciding again")
                load = []
            for model in load:
                # Reserved, not loaded here: the first call dispatched to it loads it (Ollama loads on demand and
                # queues that model's other calls behind the load), and reports the load in its load_duration.
                self.resident[model] = self._spec(model).vram_gb
                self.fresh.add(model)
                self._emit(SchedEvent("load", model, self.clock(), reason))
            self.max_resident_gb = max(self.max_resident_gb, sum(self.resident.values()))
        finally:
            self.draining.difference_update(evict)
            self.loading.clear()
        self._pump()

    def _demands(self, now: float) -> list[QueuedDemand]:
        out = []
        per_tenant = Counter(w.req.tenant for w in self.queue)
        urgent = self._urgent(now)
        for w in self.queue:
            wait = now - w.arrival
            bonus = self.cfg.wait_weight * wait
            forced = self._want(w) in urgent
            fair = self._weight(w.req) / math.sqrt(per_tenant[w.req.tenant])
            # Every call is worth 1 on its best candidate (the caller already weighed the models); a lesser
            # candidate is worth its utility gap less.
            best = max(w.req.candidates.values())
            values = {
                m: (1.0 - (best - u) + bonus) * fair + (1e6 if forced else 0.0) for m, u in w.req.candidates.items()
            }
            out.append(QueuedDemand(values))
        return out

    def _resident_values(self, now: float) -> dict[str, float]:
        """What keeping each resident model is worth beyond the calls queued for it: the likely next call of each
        tenant that used it within hold_s and has nothing queued now (a tenant waiting for another model has moved
        on). Calls in flight are not counted: they finish before an eviction anyway (the model is drained)."""
        waiting = {w.req.tenant for w in self.queue}
        # A returning client is worth as much as everyone now waiting: its model stays until the client stops
        # coming back (hold_s) or a wait reaches max_wait_s, so each model serves a burst instead of one call.
        weight = self.cfg.hold_value * (1 + len(self.queue))
        out = {}
        for m in self.resident:
            hold = 0.0
            if self.cfg.hold_s > 0:
                busy = {t for t, n in self.running.get(m, Counter()).items() if n > 0}
                for tenant in busy | set(self.recent.get(m, {})):
                    if tenant in waiting:
                        continue
                    idle = 0.0 if tenant in busy else now - self.recent[m][tenant]
                    hold += weight * max(0.0, 1.0 - idle / self.cfg.hold_s)
            out[m] = hold
        return out

    def _canon(self, name: str) -> str:
        return one_spelling(name, lambda m: m in self.specs or m in self.resident)

    def _weight(self, req: CallRequest) -> float:
        """The call's weight times its tenant's fair-share weight (settings: tenant_weights)."""
        return max(req.weight * self.cfg.tenant_weights.get(req.tenant, 1.0), 1e-6)

    def _specs_now(self) -> dict[str, ModelSpec]:
        return {m: self._spec(m) for m in {*self.specs, *self.observed, *self.resident}}

    def _reserve_free(self) -> None:
        """While a swap drains, a queued call whose model fits in the memory that nothing holds or awaits is not
        kept waiting for it: the model is reserved now."""
        after = sum(gb for m, gb in self.resident.items() if m not in self.draining)
        after += sum(self._spec(m).vram_gb for m in self.loading)
        free = self.capacity_gb - max(sum(self.resident.values()), after)  # room now and once the swap is done
        for w in self.queue:
            model = self._want(w)
            if any(m in self.resident for m in w.req.candidates) or model in self.loading:
                continue
            if (need := self._spec(model).vram_gb) <= free + 1e-9:
                self.resident[model], free = need, free - need
                self.fresh.add(model)
                self._emit(SchedEvent("load", model, self.clock(), "free memory: serves queued calls during a drain"))

    def _spec(self, model: str) -> ModelSpec:
        """A model's size and load time: the catalog's as the callers sent it, with the size the backend reported
        once it was loaded taking precedence (a caller's catalog cannot misstate it for everyone)."""
        spec = self.specs.get(model) or ModelSpec(vram_gb=self.resident.get(model, 0.0), load_ms=5000.0)
        seen = self.observed.get(model)
        return spec if seen is None else ModelSpec(seen, spec.load_ms, spec.tokens_per_s)

    def evictions_since(self, mark: int) -> list[str]:
        """Models evicted since `emitted` was `mark` (as far as the kept events reach)."""
        recent = self.events[max(0, len(self.events) - (self.emitted - mark)) :]
        return [e.model for e in recent if e.kind == "evict"]

    def _emit(self, event: SchedEvent) -> None:
        self.emitted += 1
        self.events.append(event)
        if len(self.events) > 2000:
            del self.events[:1000]
        for listener in self.listeners:
            with contextlib.suppress(Exception):
                listener(event)
