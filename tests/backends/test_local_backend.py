"""LocalBackend with real llama.cpp models under a memory budget (slow: loads real GGUF files)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.backends.base import Backend, Usage
from app.core.errors import BackendUnavailable, BadRequest, ModelNotFound
from app.routing.agents import load_agents

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "agents_local.json"
SMOL, GEMMA = "smollm2:135m", "gemma3:270m"

pytestmark = pytest.mark.anyio


def ask(model: str, text: str, **extra: object) -> dict[str, object]:
    opts = {"temperature": 0, "num_predict": 24}
    return {"model": model, "messages": [{"role": "user", "content": text}], "options": opts, **extra}


def test_missing_llama_cpp_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.backends.local import LocalBackend

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` raise ImportError
    with pytest.raises(BackendUnavailable, match=r"pip install \.\[local\]"):
        LocalBackend(load_agents(CONFIG), 1.0)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("swarm-data")


@pytest.fixture
async def one_model_budget(data_dir: Path) -> AsyncIterator[Backend]:
    pytest.importorskip("llama_cpp")
    from app.backends.local import LocalBackend

    agents = load_agents(CONFIG)
    budget = max(a.vram_gb for a in agents) * 1.1  # fits either model, never both
    assert budget < sum(a.vram_gb for a in agents)
    backend = LocalBackend(agents, budget, data_dir=data_dir)
    yield backend
    await backend.aclose()


@pytest.mark.slow
async def test_one_model_budget_swaps_with_a_real_eviction_and_load(one_model_budget: Backend) -> None:
    from app.backends.local import LocalBackend

    backend = one_model_budget
    assert isinstance(backend, LocalBackend)
    first = await backend.chat(ask(SMOL, "Name a colour."))
    assert first["message"]["content"].strip() and first["eval_count"] > 0
    assert Usage.from_response(first).load_ms > 0
    assert [m.name for m in await backend.loaded()] == [SMOL]

    second = await backend.chat(ask(GEMMA, "The capital of France is"))
    usage = Usage.from_response(second)
    assert usage.load_ms > 0 and usage.eval_tokens > 0
    assert [(e.kind, e.model) for e in backend.events] == [("load", SMOL), ("evict", SMOL), ("load", GEMMA)]
    assert all(e.load_ms > 0 for e in backend.events if e.kind == "load")
    loaded = await backend.loaded()
    assert [m.name for m in loaded] == [GEMMA]
    assert loaded[0].size == int(0.355e9)
    assert list(backend._llms) == [GEMMA]  # the evicted Llama object is really gone

    again = await backend.chat(ask(GEMMA, "The capital of Italy is"))
    assert Usage.from_response(again).load_ms == 0.0
    assert backend.memory.peak_gb <= backend.memory.capacity_gb


@pytest.mark.slow
async def test_json_schema_constrained_chat_returns_valid_json(one_model_budget: Backend) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}, "unit": {"type": "string", "enum": ["apples", "pears"]}},
        "required": ["answer", "unit"],
    }
    out = await one_model_budget.chat(
        ask(SMOL, "I have 2 apples and buy 3 more. How many apples? Reply in JSON.", format=schema)
        | {"options": {"temperature": 0, "num_predict": 96}}
    )
    data = json.loads(out["message"]["content"])
    assert isinstance(data["answer"], int) and data["unit"] in {"apples", "pears"}
    plain = await one_model_budget.generate(
        {"model": SMOL, "prompt": "A JSON object:", "format": "json", "options": {"temperature": 0, "num_predict": 128}}
    )
    assert isinstance(json.loads(plain["response"]), dict)


@pytest.mark.slow
async def test_stream_concurrency_unload_and_unknown_model(one_model_budget: Backend) -> None:
    backend = one_model_budget
    chunks = [
        c async for c in backend.generate_stream({"model": SMOL, "prompt": "1, 2, 3,", "options": {"num_predict": 8}})
    ]
    assert len(chunks) >= 3 and chunks[-1]["done"] is True and chunks[-1]["response"] == ""
    # Two calls on one model are serialised by its lock, both complete.
    outs = await asyncio.gather(backend.chat(ask(SMOL, "Hi")), backend.chat(ask(SMOL, "Hello")))
    assert all(o["done"] for o in outs)
    await backend.unload(SMOL)
    assert await backend.loaded() == []
    with pytest.raises(ModelNotFound, match="model 'llama9' not found"):
        await backend.chat(ask("llama9", "x"))


async def _body(reply: object) -> bytes:
    return b"".join([piece async for piece in reply.body])  # type: ignore[attr-defined]


@pytest.mark.slow
async def test_compatible_calls_are_translated_for_the_real_models(one_model_budget: Backend) -> None:
    """No /v1 endpoints of its own: OpenAI, Responses and Anthropic calls go through the native ones."""
    ask_ = {"model": SMOL, "messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 8}
    whole = json.loads(
        await _body(await one_model_budget.relay_compat("/v1/chat/completions", json.dumps(ask_).encode()))
    )
    assert whole["choices"][0]["message"]["content"] and whole["usage"]["completion_tokens"] > 0
    streamed = await _body(
        await one_model_budget.relay_compat("/v1/messages", json.dumps({**ask_, "stream": True}).encode())
    )
    kinds = [line[7:] for line in streamed.decode().splitlines() if line.startswith("event: ")]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    body = {"model": SMOL, "input": "Name a colour.", "max_output_tokens": 8}
    response = json.loads(await _body(await one_model_budget.relay_compat("/v1/responses", json.dumps(body).encode())))
    assert response["object"] == "response" and response["output"][0]["content"][0]["text"]
    tools = {**ask_, "tools": [{"type": "function", "function": {"name": "f"}}]}
    with pytest.raises(BadRequest, match="does not support tools"):
        await one_model_budget.relay_compat("/v1/chat/completions", json.dumps(tools).encode())
