"""Connection hygiene under `swarm serve`'s uvicorn options: silent and slow request heads are cut, stalled or
dribbling request bodies get 408 and are closed, a caller without a valid key is refused before its body is read,
the number of connections is capped (503 beyond it), and ordinary keep-alive clients are served."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from app.api.hygiene import uvicorn_options
from app.main import create_app
from tests.api.conftest import ADMIN_KEY, router_settings, sim_backend

SHORT = {"http_head_timeout_s": 0.5, "http_body_idle_s": 0.5, "http_body_min_rate": 1000}


@contextmanager
def _serve(root: Path, **over: object) -> Iterator[tuple[str, int]]:
    cfg = router_settings(root, **{**SHORT, **over})
    app = create_app(cfg, backend=sim_backend())
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", **uvicorn_options(cfg))
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(srv.serve(sockets=[sock])), daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.01)
    try:
        yield "127.0.0.1", port
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    with _serve(Path(tmp_path_factory.mktemp("hygiene")), http_max_connections=4) as addr:
        yield addr


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[tuple[str, int], str]]:
    """A server with a keyed tenant (keys required), and that tenant's key."""
    with _serve(Path(tmp_path_factory.mktemp("hygiene_keyed")), admin_key=ADMIN_KEY) as addr:
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        resp = httpx.post(f"http://{addr[0]}:{addr[1]}/admin/tenants", headers=admin, json={"name": "t"})
        assert resp.status_code == 201, resp.text
        yield addr, resp.json()["api_key"]


def _closed_within(conn: socket.socket, seconds: float) -> bool:
    conn.settimeout(seconds)
    try:
        return conn.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_silent_connection_is_closed(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as conn:
        assert _closed_within(conn, 5)


def test_slow_request_head_is_closed(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for _ in range(3):  # a byte now and then, never the end of the head
            time.sleep(0.2)
            try:
                conn.sendall(b"X")
            except OSError:
                break
        assert _closed_within(conn, 5)


def test_keep_alive_client_is_served_and_idle_slot_freed(server: tuple[str, int]) -> None:
    with httpx.Client(base_url=f"http://{server[0]}:{server[1]}") as c:
        assert c.get("/healthz").status_code == 200
        time.sleep(0.1)
        assert c.get("/healthz").status_code == 200  # same connection, within the keep-alive window


def test_connection_cap(server: tuple[str, int]) -> None:
    held = [socket.create_connection(server) for _ in range(4)]
    try:
        time.sleep(0.1)
        with socket.create_connection(server) as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            conn.settimeout(5)
            assert conn.recv(1024).startswith(b"HTTP/1.1 503")
    finally:
        for conn in held:
            conn.close()
    time.sleep(0.2)
    assert httpx.get(f"http://{server[0]}:{server[1]}/healthz").status_code == 200


def _head(path: str, length: int, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}Content-Length: {length}\r\n\r\n"
    ).encode()


def _answer(conn: socket.socket, seconds: float) -> bytes:
    """Everything the server sends until it closes the connection (or `seconds` pass)."""
    conn.settimeout(seconds)
    data = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = conn.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
    return data


def _dribble(conn: socket.socket, gap_s: float, count: int) -> int:
    """Send one body byte every `gap_s` (a slow-body attack); how many the server accepted before closing."""
    sent = 0
    for _ in range(count):
        try:
            conn.sendall(b" ")
        except OSError:
            break
        sent += 1
        time.sleep(gap_s)
    return sent


def test_dribbled_body_gets_408_and_is_closed(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as conn:
        conn.sendall(_head("/v1/chat/completions", 100_000))
        started = time.monotonic()
        _dribble(conn, 0.2, 15)  # 5 bytes/s: far under the 1,000 bytes/s minimum
        answer = _answer(conn, 5)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert time.monotonic() - started < 6
        body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert body["error"]["type"] == "request_timeout" or body["error"]["code"] == "request_timeout"


@pytest.mark.parametrize("path", ["/route", "/api/chat"])
def test_stalled_body_gets_408_in_the_callers_shape(server: tuple[str, int], path: str) -> None:
    with socket.create_connection(server) as conn:
        conn.sendall(_head(path, 1000) + b'{"model": ')  # then nothing
        answer = _answer(conn, 5)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    if path.startswith("/api/"):  # Ollama's shape
        assert isinstance(body["error"], str) and "request body" in body["error"]
    else:
        assert body["error"]["code"] == "request_timeout"


def test_body_sent_at_a_fair_pace_is_served(server: tuple[str, int]) -> None:
    """Slower than the idle gap in total, but above the minimum rate: not cut."""
    payload = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}).encode()
    payload = payload[:-1] + b" " * 6000 + b"}"
    with socket.create_connection(server) as conn:
        conn.sendall(_head("/v1/chat/completions", len(payload)))
        for i in range(0, len(payload), 200):  # about 4,000 bytes/s for 1.5 s
            conn.sendall(payload[i : i + 200])
            time.sleep(0.05)
        answer = _answer(conn, 5)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]


def test_slow_bodies_do_not_hold_the_connection_cap(server: tuple[str, int]) -> None:
    """Dribbling bodies (one short of the cap): all are cut, after which the service answers again."""
    conns = [socket.create_connection(server) for _ in range(3)]
    try:
        for conn in conns:
            conn.sendall(_head("/v1/chat/completions", 100_000) + b"{")
        threads = [threading.Thread(target=_dribble, args=(c, 0.3, 10)) for c in conns]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        answers = [_answer(c, 2) for c in conns]
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers), [a[:40] for a in answers]
    finally:
        for conn in conns:
            conn.close()
    assert httpx.get(f"http://{server[0]}:{server[1]}/healthz").status_code == 200


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v1/chat/completions", ""),
        ("/v1/messages", "x-api-key: wrong\r\n"),
        ("/jobs", "Authorization: Bearer wrong\r\n"),
        ("/admin/tenants", "Authorization: Bearer wrong\r\n"),
    ],
)
def test_caller_without_a_valid_key_is_refused_before_its_body(
    keyed: tuple[tuple[str, int], str], path: str, headers: str
) -> None:
    addr, _ = keyed
    with socket.create_connection(addr) as conn:
        conn.sendall(_head(path, 100_000, headers))  # no body byte sent at all
        answer = _answer(conn, 3)  # ends when the server closes the connection
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]  # not the body pace's 408: refused before the body
    assert b"connection: close" in answer.lower()


def test_caller_with_a_valid_key_still_sends_its_body(keyed: tuple[tuple[str, int], str]) -> None:
    addr, key = keyed
    payload = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}).encode()
    with socket.create_connection(addr) as conn:
        conn.sendall(_head("/v1/chat/completions", len(payload), f"Authorization: Bearer {key}\r\n"))
        time.sleep(0.2)
        conn.sendall(payload)
        answer = _answer(conn, 5)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
