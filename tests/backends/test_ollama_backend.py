"""OllamaBackend against recorded-shape Ollama responses (respx) and a real slow local server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import httpx
import pytest
import respx

from app.backends.base import Backend, LoadedModel
from app.backends.ollama import OllamaBackend
from app.backends.transport import HttpxTransport
from app.core.errors import BackendTimeout, BackendUnavailable, BadBackendResponse, ModelNotFound

if TYPE_CHECKING:
    from tests.backends.conftest import SlowServer

pytestmark = pytest.mark.anyio

BASE = "http://ollama.test:11434"
TS = "2024-06-04T14:38:31.83753Z"
FINAL_METRICS = {
    "total_duration": 10_706_818_083,
    "load_duration": 6_338_219_291,
    "prompt_eval_count": 26,
    "prompt_eval_duration": 130_079_000,
    "eval_count": 259,
    "eval_duration": 4_232_710_000,
}
CHAT_FINAL = {
    "model": "llama3.2",
    "created_at": TS,
    "message": {"role": "assistant", "content": "Hello there."},
    "done": True,
    "done_reason": "stop",
    **FINAL_METRICS,
}
TAGS = {
    "models": [
        {
            "name": "llama3.2:latest",
            "model": "llama3.2:latest",
            "modified_at": "2025-05-04T17:37:44.706015396-07:00",
            "size": 2019393189,
            "digest": "a80c4f17acd5",
            "details": {"format": "gguf", "family": "llama", "parameter_size": "3.2B"},
        }
    ]
}
PS = {
    "models": [
        {
            "name": "mistral:latest",
            "model": "mistral:latest",
            "size": 5137025024,
            "digest": "2ae6f6dd7a3d",
            "details": {"format": "gguf", "family": "llama"},
            "expires_at": "2024-06-04T14:38:31.83753-07:00",
            "size_vram": 4137025024,
            "context_length": 4096,
        }
    ]
}


def ndjson(*objs: dict[str, object]) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objs)


def chat_chunks() -> list[dict[str, object]]:
    parts = [
        {"model": "llama3.2", "created_at": TS, "message": {"role": "assistant", "content": t}, "done": False}
        for t in ("Hel", "lo", ".")
    ]
    final = {**CHAT_FINAL, "message": {"role": "assistant", "content": ""}}
    return [*parts, final]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


@pytest.fixture
def backend(client: httpx.AsyncClient) -> OllamaBackend:
    return OllamaBackend(HttpxTransport(client, BASE, deadline_s=5))


def sent(route: respx.Route, index: int = -1) -> dict[str, object]:
    body: dict[str, object] = json.loads(route.calls[index].request.content)
    return body


async def test_satisfies_protocol(backend: OllamaBackend) -> None:
    assert isinstance(backend, Backend)
    assert backend.name == BASE


@respx.mock
async def test_chat_non_stream_returns_final_object_and_injects_keep_alive(backend: OllamaBackend) -> None:
    route = respx.post(f"{BASE}/api/chat").respond(json=CHAT_FINAL)
    out = await backend.chat({"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]})
    assert out["message"]["content"] == "Hello there."
    body = sent(route)
    assert body["stream"] is False
    assert body["keep_alive"] == "10m"


@respx.mock
async def test_keep_alive_from_request_is_kept(backend: OllamaBackend) -> None:
    route = respx.post(f"{BASE}/api/generate").respond(json={**CHAT_FINAL, "response": "x"})
    await backend.generate({"model": "m", "prompt": "p", "keep_alive": -1})
    assert sent(route)["keep_alive"] == -1


@respx.mock
async def test_chat_stream_yields_chunks_then_done(backend: OllamaBackend) -> None:
    route = respx.post(f"{BASE}/api/chat").respond(
        content=ndjson(*chat_chunks()), headers={"content-type": "application/x-ndjson"}
    )
    chunks = [c async for c in backend.chat_stream({"model": "llama3.2", "messages": []})]
    assert "".join(c["message"]["content"] for c in chunks) == "Hello."
    assert chunks[-1]["done"] is True and chunks[-1]["eval_count"] == 259
    assert sent(route)["stream"] is True


@respx.mock
async def test_generate_stream_and_non_stream(backend: OllamaBackend) -> None:
    parts = [{"model": "m", "created_at": TS, "response": t, "done": False} for t in ("a", "b")]
    final = {"model": "m", "created_at": TS, "response": "", "done": True, "context": [1, 2], **FINAL_METRICS}
    respx.post(f"{BASE}/api/generate").mock(
        side_effect=lambda req: httpx.Response(
            200,
            content=ndjson(*parts, final)
            if json.loads(req.content)["stream"]
            else json.dumps({**final, "response": "ab"}).encode(),
        )
    )
    streamed = [c async for c in backend.generate_stream({"model": "m", "prompt": "p"})]
    assert [c["response"] for c in streamed] == ["a", "b", ""]
    whole = await backend.generate({"model": "m", "prompt": "p"})
    assert whole["response"] == "ab" and whole["context"] == [1, 2]


@respx.mock
async def test_tags_ps_show_version(backend: OllamaBackend) -> None:
    respx.get(f"{BASE}/api/tags").respond(json=TAGS)
    respx.get(f"{BASE}/api/ps").respond(json=PS)
    show = respx.post(f"{BASE}/api/show").respond(json={"model_info": {"llama.context_length": 131072}})
    respx.get(f"{BASE}/api/version").respond(json={"version": "0.33.0"})
    assert [m["name"] for m in await backend.installed()] == ["llama3.2:latest"]
    loaded = await backend.loaded()
    assert loaded == [LoadedModel("mistral:latest", 5137025024, 4137025024, "2024-06-04T14:38:31.83753-07:00")]
    assert (await backend.show("llama3.2"))["model_info"]["llama.context_length"] == 131072
    assert sent(show) == {"model": "llama3.2"}
    assert await backend.version() == "0.33.0"


@respx.mock
async def test_empty_ps_is_empty_list(backend: OllamaBackend) -> None:
    respx.get(f"{BASE}/api/ps").respond(json={"models": []})
    assert await backend.loaded() == []


@respx.mock
async def test_404_model_not_found(backend: OllamaBackend) -> None:
    respx.post(f"{BASE}/api/chat").respond(404, json={"error": "model 'llama9' not found"})
    with pytest.raises(ModelNotFound) as info:
        await backend.chat({"model": "llama9", "messages": []})
    assert info.value.model == "llama9"
    assert info.value.message == "model 'llama9' not found"


@respx.mock
async def test_404_model_not_found_in_stream(backend: OllamaBackend) -> None:
    respx.post(f"{BASE}/api/chat").respond(404, json={"error": "model 'llama9' not found"})
    with pytest.raises(ModelNotFound):
        _ = [c async for c in backend.chat_stream({"model": "llama9", "messages": []})]


@respx.mock
async def test_plain_text_404_is_bad_response_not_missing_model(backend: OllamaBackend) -> None:
    respx.get(f"{BASE}/api/ps").respond(404, text="404 page not found")
    with pytest.raises(BadBackendResponse, match="404"):
        await backend.loaded()


@respx.mock
async def test_500_carries_status_and_ollama_error(backend: OllamaBackend) -> None:
    respx.post(f"{BASE}/api/generate").respond(500, json={"error": "timed out waiting for llama runner to start"})
    with pytest.raises(BadBackendResponse) as info:
        await backend.generate({"model": "m", "prompt": "p"})
    assert "500" in info.value.message and "timed out waiting for llama runner" in info.value.message


@respx.mock
async def test_invalid_json_is_bad_response(backend: OllamaBackend) -> None:
    respx.post(f"{BASE}/api/chat").respond(200, text="<html>proxy error</html>")
    with pytest.raises(BadBackendResponse, match="invalid JSON"):
        await backend.chat({"model": "m", "messages": []})


class BrokenStream(httpx.AsyncByteStream):
    """Sends two chunks, then the connection drops."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in chat_chunks()[:2]:
            yield json.dumps(chunk).encode() + b"\n"
        raise httpx.ReadError("connection reset by peer")


@respx.mock
async def test_stream_connection_breaks_mid_way(backend: OllamaBackend) -> None:
    respx.post(f"{BASE}/api/chat").mock(return_value=httpx.Response(200, stream=BrokenStream()))
    got: list[str] = []
    with pytest.raises(BadBackendResponse, match="mid-way"):
        async for chunk in backend.chat_stream({"model": "llama3.2", "messages": []}):
            got.append(chunk["message"]["content"])
    assert got == ["Hel", "lo"]


@respx.mock
async def test_stream_error_line_mid_way(backend: OllamaBackend) -> None:
    body = ndjson(chat_chunks()[0], {"error": "an error was encountered while running the model"})
    respx.post(f"{BASE}/api/chat").respond(200, content=body)
    with pytest.raises(BadBackendResponse, match="error was encountered"):
        _ = [c async for c in backend.chat_stream({"model": "llama3.2", "messages": []})]


@respx.mock
async def test_stream_ending_without_done_is_bad_response(backend: OllamaBackend) -> None:
    respx.post(f"{BASE}/api/chat").respond(200, content=ndjson(*chat_chunks()[:3]))
    with pytest.raises(BadBackendResponse, match="done=true"):
        _ = [c async for c in backend.chat_stream({"model": "llama3.2", "messages": []})]


@respx.mock
async def test_stream_invalid_json_line(backend: OllamaBackend) -> None:
    respx.post(f"{BASE}/api/chat").respond(200, content=b'{"model": "x", "done": fal\n')
    with pytest.raises(BadBackendResponse, match="invalid JSON"):
        _ = [c async for c in backend.chat_stream({"model": "x", "messages": []})]


async def test_connection_refused_names_url(closed_port: Callable[[], int]) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    async with httpx.AsyncClient() as c:
        backend = OllamaBackend(HttpxTransport(c, url))
        with pytest.raises(BackendUnavailable, match=url.replace(".", r"\.")):
            await backend.chat({"model": "m", "messages": []})
        with pytest.raises(BackendUnavailable):
            _ = [x async for x in backend.chat_stream({"model": "m", "messages": []})]
        with pytest.raises(BackendUnavailable):
            await backend.ping()


async def test_slow_first_byte_within_deadline_succeeds(slow_server: SlowServer) -> None:
    slow_server.delay_s = 0.4
    slow_server.body = CHAT_FINAL
    # The shared client's own read timeout (0.1 s) would fail this call; the backend lifts it.
    async with httpx.AsyncClient(timeout=0.1) as c:
        with pytest.raises(httpx.ReadTimeout):
            await c.post(f"{slow_server.url}/api/chat", json={})
        backend = OllamaBackend(HttpxTransport(c, slow_server.url, deadline_s=5))
        out = await backend.chat({"model": "llama3.2", "messages": []})
    assert out["eval_count"] == 259


async def test_slow_first_byte_beyond_deadline_times_out(slow_server: SlowServer) -> None:
    slow_server.delay_s = 1.0
    slow_server.body = CHAT_FINAL
    async with httpx.AsyncClient(timeout=0.1) as c:
        backend = OllamaBackend(HttpxTransport(c, slow_server.url, deadline_s=0.3))
        with pytest.raises(BackendTimeout, match="deadline"):
            await backend.chat({"model": "llama3.2", "messages": []})
        with pytest.raises(BackendTimeout):
            _ = [x async for x in backend.chat_stream({"model": "llama3.2", "messages": []})]


@respx.mock
async def test_unload_sends_keep_alive_zero_without_prompt(backend: OllamaBackend) -> None:
    route = respx.post(f"{BASE}/api/generate").respond(
        json={"model": "m", "created_at": TS, "response": "", "done": True, "done_reason": "unload"}
    )
    await backend.unload("m")
    assert sent(route) == {"model": "m", "keep_alive": 0}


@respx.mock
async def test_load_reports_load_duration(backend: OllamaBackend) -> None:
    route = respx.post(f"{BASE}/api/generate").respond(
        json={
            "model": "m",
            "response": "",
            "done": True,
            "done_reason": "load",
            "load_duration": 2_500_000_000,
        }
    )
    usage = await backend.load("m", keep_alive="30m")
    assert usage.load_ms == pytest.approx(2500.0)
    body = sent(route)
    assert body["keep_alive"] == "30m" and "prompt" not in body


@respx.mock
async def test_load_without_metrics_falls_back_to_wall_time(backend: OllamaBackend) -> None:
    respx.post(f"{BASE}/api/generate").respond(json={"model": "m", "done": True, "done_reason": "load"})
    usage = await backend.load("m")
    assert usage.load_ms > 0.0


@respx.mock
async def test_a_requests_num_ctx_always_reaches_ollama(backend: OllamaBackend) -> None:
    """The request's own num_ctx wins on every call (Ollama reloads the model at that size if it must)."""
    route = respx.post(f"{BASE}/api/chat").respond(json=CHAT_FINAL)
    respx.get(f"{BASE}/api/ps").respond(json=PS)
    msg = [{"role": "user", "content": "hi"}]
    for ctx in (2048, 8192, 16384):
        await backend.loaded()
        await backend.chat({"model": "llama3.2", "messages": msg, "options": {"num_ctx": ctx, "temperature": 0}})
        assert sent(route)["options"] == {"num_ctx": ctx, "temperature": 0}
    await backend.chat({"model": "llama3.2", "messages": msg, "options": {"num_ctx": 4096}, "_reload": True})
    body = sent(route)
    assert body["options"] == {"num_ctx": 4096} and "_reload" not in body
    await backend.chat({"model": "llama3.2", "messages": msg})
    assert "options" not in sent(route)  # never added either


@respx.mock
async def test_embed_injects_keep_alive(backend: OllamaBackend) -> None:
    route = respx.post(f"{BASE}/api/embed").respond(json={"model": "e", "embeddings": [[0.6, 0.8]]})
    out = await backend.embed({"model": "e", "input": "x"})
    assert out["embeddings"] == [[0.6, 0.8]]
    assert sent(route)["keep_alive"] == "10m"


async def test_own_client_is_closed_shared_client_is_not() -> None:
    async with httpx.AsyncClient() as shared:
        await OllamaBackend(HttpxTransport(shared, BASE)).aclose()
        assert not shared.is_closed
    own = OllamaBackend(HttpxTransport(None, BASE))
    await own.aclose()
    assert own.transport._client.is_closed  # type: ignore[attr-defined]
