"""A hostile fake Ollama on raw asyncio sockets (endless header lines, CRLF-framed SSE, huge and hostile usage
counts, non-object answers): the request's model name picks the behaviour, `default` applies to any other name."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

USAGE: dict[str, Any] = {
    "bigint": (10**30, 10**30),
    "floatusage": (1e300, 1.5),
    "strusage": ("lots", "lots"),
    "nanusage": (float("nan"), float("inf")),
    "negusage": (-5, -100_000),
    "nousage": None,
}
MODES = (*USAGE, "ok", "manyheaders", "hugeheader", "invalid", "nonobj", "deep", "crlf")
WORDS = 5  # content chunks of a stream, "w0 " .. "w4 "
TEXT = "hello world, " * 20  # the text of a whole answer (260 characters)


def _whole(model: str, path: str, usage: Any) -> dict[str, Any]:
    """A non-streamed answer of `path`'s API carrying `usage` = (prompt, completion) or none."""
    if path.startswith("/api/"):
        out: dict[str, Any] = {"model": model, "created_at": "2026-01-01T00:00:00Z", "done": True}
        out |= {"message": {"role": "assistant", "content": TEXT}} if path == "/api/chat" else {"response": TEXT}
        return out | ({"prompt_eval_count": usage[0], "eval_count": usage[1]} if usage else {})
    if path == "/v1/messages":
        content: dict[str, Any] = {"type": "message", "role": "assistant", "content": [{"type": "text", "text": TEXT}]}
        return content | ({"usage": {"input_tokens": usage[0], "output_tokens": usage[1]}} if usage else {})
    if path == "/v1/responses":
        item = {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": TEXT}]}
        body: dict[str, Any] = {"object": "response", "status": "completed", "output": [item]}
        return body | ({"usage": {"input_tokens": usage[0], "output_tokens": usage[1]}} if usage else {})
    text = {"text": TEXT} if path == "/v1/completions" else {"message": {"role": "assistant", "content": TEXT}}
    choice = {"index": 0, **text, "finish_reason": "stop"}
    body = {"id": "c", "object": "chat.completion", "choices": [choice]}
    return body | ({"usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]}} if usage else {})


def _stream(model: str, path: str, usage: Any, sep: bytes) -> list[bytes]:
    """A stream of `path`'s API: NDJSON lines for /api/*, SSE events (separated by `sep`) for OpenAI chat."""
    if path.startswith("/api/"):
        lines = []
        for i in range(WORDS):
            part = {"message": {"role": "assistant", "content": f"w{i} "}} if path == "/api/chat" else {"response": "w"}
            lines.append(json.dumps({"model": model, "done": False, **part}).encode() + b"\n")
        final = _whole(model, path, usage) | {"message": {"role": "assistant", "content": ""}, "response": ""}
        return [*lines, json.dumps(final).encode() + b"\n"]
    events = [{"id": "c", "choices": [{"index": 0, "delta": {"content": f"w{i} "}}]} for i in range(WORDS)]
    if usage:
        events.append({"id": "c", "choices": [], "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]}})
    return [b"data: " + json.dumps(e).encode() + sep for e in events] + [b"data: [DONE]" + sep]


class HostileOllama:
    def __init__(self) -> None:
        self.default = "ok"
        self.tags: list[Any] = [{"name": "gemma2:2b", "model": "gemma2:2b", "size": 1_600_000_000}]
        self.requests: list[tuple[str, bytes]] = []
        self.head_bytes_sent = 0

    @contextmanager
    def serve(self) -> Iterator[str]:
        loop = asyncio.new_event_loop()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = loop.run_until_complete(asyncio.start_server(self._handle, sock=sock))
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            loop.call_soon_threadsafe(server.close)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        _method, path, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        headers = dict(line.split(":", 1) for line in head.decode().split("\r\n")[1:] if ":" in line)
        length = int(next((v for k, v in headers.items() if k.lower() == "content-length"), "0"))
        body = await reader.readexactly(length) if length else b""
        self.requests.append((path, body))
        if path == "/api/tags":
            return await _send(writer, 200, json.dumps({"models": self.tags}).encode())
        if path in ("/api/ps", "/api/version"):
            return await _send(writer, 200, b'{"models": [], "version": "0.12.0"}')
        if path in ("/api/pull", "/api/copy", "/api/create", "/api/push", "/api/delete"):
            return await _send(writer, 200, b'{"status": "success"}')
        request = json.loads(body or b"{}")
        model = str(request.get("model", ""))
        mode = model if model in MODES else self.default
        stream = request.get("stream", path.startswith("/api/")) is not False
        if mode in ("manyheaders", "hugeheader"):
            await self._endless_head(writer, many=mode == "manyheaders")
            return False
        if mode == "nonobj" or (mode in ("invalid", "deep") and not stream):  # [1,2,3] to a stream request too
            bad = {"invalid": b"{not json", "nonobj": b"[1,2,3]", "deep": b"[" * 100_000 + b"]" * 100_000}
            return await _send(writer, 200, bad[mode])
        usage = USAGE.get(mode, (3, 2))
        if not stream:
            return await _send(writer, 200, json.dumps(_whole(model, path, usage)).encode())
        sep = b"\r\n\r\n" if mode == "crlf" else b"\n\n"
        ctype = b"application/x-ndjson" if path.startswith("/api/") else b"text/event-stream"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in _stream(model, path, usage, sep):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    async def _endless_head(self, writer: asyncio.StreamWriter, *, many: bool) -> None:
        """Header lines (or one header value) without end (for at most 20 s), until the client hangs up."""
        writer.write(b"HTTP/1.1 200 OK\r\n" if many else b"HTTP/1.1 200 OK\r\nX-Big: ")
        started, n = time.monotonic(), 0
        while time.monotonic() - started < 20:
            block = b"".join(b"X-%d: v\r\n" % (n + k) for k in range(1000)) if many else b"a" * 8000
            n += 1000
            self.head_bytes_sent += len(block)
            writer.write(block)
            await writer.drain()


async def _send(writer: asyncio.StreamWriter, status: int, body: bytes) -> bool:
    head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    writer.write(head.encode() + body)
    await writer.drain()
    return True
