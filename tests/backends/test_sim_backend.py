"""SimBackend: Ollama-like residency and eviction under capacity, seeded outputs, answer key, schemas."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from app.backends.base import Backend, Usage
from app.backends.sim import SimBackend
from app.core.errors import BadBackendResponse, ModelNotFound
from app.domain.models import Agent

pytestmark = pytest.mark.anyio


def agent(name: str, vram: float, load_ms: float = 1000.0, tps: float = 50.0, q: float = 0.5) -> Agent:
    caps = dict.fromkeys(("code", "reasoning", "math", "creative", "extraction", "summarize"), q)
    return Agent(
        name=name, cost_per_token=0.0, max_ctx=4096, capabilities=caps,
        vram_gb=vram, load_time_ms=load_ms, tokens_per_s=tps,
    )  # fmt: skip


AGENTS = [agent("a:1b", 3.0, 1000), agent("b:3b", 4.0, 2000), agent("c:7b", 5.0, 3000), agent("d:1b", 2.0, 500)]


def sim(gb: float = 8.0, **kw: object) -> SimBackend:
    return SimBackend(AGENTS, gb, **kw)  # type: ignore[arg-type]


def ask(model: str, text: str = "hello", **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def resident(names: list[str]) -> set[str]:
    return set(names)


async def names(backend: SimBackend) -> set[str]:
    return {m.name for m in await backend.loaded()}


async def test_protocol_and_installed() -> None:
    backend = sim()
    assert isinstance(backend, Backend)
    tags = await backend.installed()
    assert [t["name"] for t in tags] == ["a:1b", "b:3b", "c:7b", "d:1b"]
    assert tags[1]["size"] == 4_000_000_000


async def test_load_duration_only_when_a_load_happened() -> None:
    backend = sim()
    first = Usage.from_response(await backend.chat(ask("a:1b")))
    second = Usage.from_response(await backend.chat(ask("a:1b")))
    assert first.load_ms == 1000.0
    assert second.load_ms == 0.0
    assert [(e.kind, e.model) for e in backend.events] == [("load", "a:1b")]


async def test_loaded_is_truthful_with_sizes_and_expiry() -> None:
    backend = sim()
    await backend.chat(ask("b:3b", keep_alive="10m"))
    [entry] = await backend.loaded()
    assert entry.name == "b:3b" and entry.size == entry.size_vram == 4_000_000_000
    assert entry.expires_at is not None and entry.expires_at.endswith("Z")


async def test_eviction_picks_idle_model_with_shortest_keep_alive() -> None:
    backend = sim(8.0)
    await backend.chat(ask("a:1b", keep_alive="30m"))  # 3 GB
    await backend.chat(ask("b:3b", keep_alive="1m"))  # 4 GB -> 7 GB resident
    await backend.chat(ask("d:1b"))  # 2 GB does not fit: b (shorter keep-alive) goes, though a is older
    assert await names(backend) == {"a:1b", "d:1b"}
    assert [(e.kind, e.model) for e in backend.events][-2:] == [("evict", "b:3b"), ("load", "d:1b")]


async def test_equal_keep_alive_evicts_least_recently_used() -> None:
    backend = sim(8.0)
    await backend.chat(ask("a:1b"))
    await backend.chat(ask("b:3b"))
    await backend.chat(ask("a:1b"))  # a is now the most recently used
    await backend.chat(ask("d:1b"))
    assert await names(backend) == {"a:1b", "d:1b"}


async def test_keep_alive_zero_unloads_after_request_and_explicit_unload() -> None:
    backend = sim()
    await backend.chat(ask("a:1b", keep_alive=0))
    assert await backend.loaded() == []
    usage = await backend.load("c:7b", keep_alive=-1)
    assert usage.load_ms == 3000.0
    [entry] = await backend.loaded()
    assert entry.expires_at is not None and entry.expires_at > "2200"  # "forever"
    await backend.unload("c:7b")
    assert await backend.loaded() == []
    assert [e.kind for e in backend.events] == ["load", "unload", "load", "unload"]


async def test_empty_prompt_generate_loads_and_keep_alive_zero_unloads() -> None:
    backend = sim()
    out = await backend.generate({"model": "d:1b", "prompt": ""})
    assert out["done_reason"] == "load" and out["load_duration"] == 500_000_000
    out = await backend.generate({"model": "d:1b", "keep_alive": 0})
    assert out["done_reason"] == "unload"
    assert await backend.loaded() == []


async def test_keep_alive_expiry_uses_wall_clock() -> None:
    backend = sim()
    now = [time.time()]
    backend.memory.clock = lambda: now[0]
    await backend.chat(ask("a:1b", keep_alive="2s"))
    assert await names(backend) == {"a:1b"}
    now[0] += 3
    assert await backend.loaded() == []
    assert backend.events[-1].kind == "expire"


async def test_unknown_model_and_oversized_model() -> None:
    backend = sim(4.0)
    with pytest.raises(ModelNotFound, match="model 'nope' not found"):
        await backend.chat(ask("nope"))
    with pytest.raises(ModelNotFound):
        await backend.load("nope")
    with pytest.raises(BadBackendResponse, match=r"needs 5\.00 GB"):
        await backend.chat(ask("c:7b"))
    with pytest.raises(BadBackendResponse, match="invalid duration"):
        await backend.chat(ask("a:1b", keep_alive="-1"))


async def test_busy_model_is_not_evicted_the_load_waits() -> None:
    backend = sim(5.0)
    stream = backend.chat_stream(ask("b:3b", "long"))
    first = await anext(stream)  # b (4 GB) is now busy mid-stream
    assert first["done"] is False
    waiter = asyncio.create_task(backend.chat(ask("a:1b")))  # 3 GB: must wait for b
    await asyncio.sleep(0.05)
    assert not waiter.done()
    assert await names(backend) == {"b:3b"}
    async for _ in stream:
        pass
    out = await asyncio.wait_for(waiter, 2)
    assert out["done"] is True
    assert await names(backend) == {"a:1b"}
    assert backend.peak_vram_gb == 4.0


async def test_concurrent_requests_never_exceed_capacity() -> None:
    backend = sim(8.0, time_scale=0.0005)  # small real sleeps so requests overlap
    models = [a.name for a in AGENTS]
    tasks = [backend.chat(ask(models[i % 4], f"q{i}")) for i in range(60)]
    outs = await asyncio.gather(*tasks)
    assert all(o["done"] for o in outs)
    assert 0 < backend.peak_vram_gb <= 8.0
    loads = [e for e in backend.events if e.kind == "load"]
    assert len(loads) > 4  # models really swapped in and out
    assert all(e.resident_gb <= 8.0 for e in backend.events)


async def test_time_scale_sleeps_for_load_and_decode() -> None:
    backend = sim(time_scale=0.01)
    t0 = time.perf_counter()
    out = await backend.chat(ask("c:7b"))  # 3000 ms load -> 30 ms real
    elapsed = time.perf_counter() - t0
    decode_s = out["eval_duration"] / 1e9
    assert elapsed >= 0.03 + decode_s * 0.01 * 0.9
    assert out["eval_duration"] == pytest.approx(out["eval_count"] / 50 * 1e9, rel=1e-6)


async def test_outputs_are_deterministic_per_seed_model_prompt() -> None:
    a, b, c = sim(seed=1), sim(seed=1), sim(seed=2)
    text = [(await x.chat(ask("a:1b", "explain")))["message"]["content"] for x in (a, b, c)]
    assert text[0] == text[1] != text[2]
    other = (await a.chat(ask("b:3b", "explain")))["message"]["content"]
    assert other != text[0]


async def test_streaming_yields_pieces_then_done_with_usage() -> None:
    backend = sim()
    chunks = [c async for c in backend.generate_stream({"model": "a:1b", "prompt": "tell me"})]
    whole = await sim().generate({"model": "a:1b", "prompt": "tell me"})
    assert len(chunks) >= 3 and chunks[-1]["done"] is True and chunks[-1]["response"] == ""
    assert "".join(c["response"] for c in chunks) == whole["response"]
    assert chunks[-1]["eval_count"] == whole["eval_count"] > 0


async def test_answer_key_matches_true_quality_rate() -> None:
    quality = {"a:1b": {"math": 0.8}, "b:3b": {"math": 0.1}}
    backend = sim(true_quality=quality)
    for i in range(200):
        backend.register_expected(f"problem #{i}:", str(i * 7), "math")
    rates = {}
    for model in ("a:1b", "b:3b"):
        hits = 0
        for i in range(200):
            out = await backend.chat(ask(model, f"Solve problem #{i}: what is {i} times 7?"))
            hits += out["message"]["content"] == str(i * 7)
        rates[model] = hits / 200
    assert 0.7 <= rates["a:1b"] <= 0.9
    assert rates["b:3b"] <= 0.2


async def test_answer_key_dict_expected_and_wrong_answers_differ() -> None:
    backend = sim(true_quality={"a:1b": {"extraction": 1.0}, "b:3b": {"extraction": 0.0}})
    backend.register_expected("invoice 42", {"total": 12.5}, "extraction")
    right = await backend.generate({"model": "a:1b", "prompt": "Extract from invoice 42"})
    wrong = await backend.generate({"model": "b:3b", "prompt": "Extract from invoice 42"})
    assert json.loads(right["response"]) == {"total": 12.5}
    assert wrong["response"] != right["response"]
    backend.register_expected("what is 6*7", "42", "math")
    backend.true_quality["b:3b"]["math"] = 0.0
    wrong_num = (await backend.chat(ask("b:3b", "what is 6*7")))["message"]["content"]
    assert wrong_num != "42" and wrong_num.lstrip("-").isdigit()


PLAN_SCHEMA = {
    "type": "object",
    "properties": {
        "assignments": {
            "type": "array",
            "minItems": 2,
            "items": {
                "type": "object",
                "properties": {
                    "subtask_id": {"type": "string", "enum": ["s1", "s2"]},
                    "model": {"type": "string"},
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                    "step": {"type": "integer", "minimum": 0, "maximum": 3},
                    "parallel": {"type": "boolean"},
                    "kind": {"$ref": "#/$defs/kind"},
                },
                "required": ["subtask_id", "model"],
            },
        }
    },
    "required": ["assignments"],
    "$defs": {"kind": {"enum": ["code", "math"]}},
}


async def test_format_schema_returns_schema_valid_object() -> None:
    backend = sim()
    out = await backend.chat(ask("a:1b", "plan it", format=PLAN_SCHEMA))
    plan = json.loads(out["message"]["content"])
    assert len(plan["assignments"]) >= 2
    for row in plan["assignments"]:
        assert row["subtask_id"] in {"s1", "s2"}
        assert row["model"] in {"a:1b", "b:3b", "c:7b", "d:1b"}
        assert 0 <= row["confidence"] <= 1 and isinstance(row["step"], int) and 0 <= row["step"] <= 3
        assert isinstance(row["parallel"], bool) and row["kind"] in {"code", "math"}


async def test_format_json_returns_an_object() -> None:
    out = await sim().generate({"model": "a:1b", "prompt": "x", "format": "json"})
    assert isinstance(json.loads(out["response"]), dict)


async def test_num_predict_truncates_with_length_reason() -> None:
    out = await sim().generate({"model": "a:1b", "prompt": "x", "options": {"num_predict": 3}})
    assert out["done_reason"] == "length" and len(out["response"].split(" ")) == 3


async def test_embed_is_deterministic_and_normalised() -> None:
    backend = sim()
    out = await backend.embed({"model": "a:1b", "input": ["x", "y"]})
    again = await backend.embed({"model": "a:1b", "input": "x"})
    assert out["embeddings"][0] == again["embeddings"][0] != out["embeddings"][1]
    assert sum(v * v for v in out["embeddings"][0]) == pytest.approx(1.0)
