"""Connection hygiene under `swarm serve`'s uvicorn options: silent and slow request heads are cut, the number of
connections is capped (503 beyond it), and ordinary keep-alive clients are served."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from app.api.hygiene import uvicorn_options
from app.main import create_app
from tests.api.conftest import router_settings, sim_backend


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    cfg = router_settings(Path(tmp_path_factory.mktemp("hygiene")), http_head_timeout_s=0.5, http_max_connections=4)
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
    yield "127.0.0.1", port
    srv.should_exit = True
    thread.join(timeout=10)


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
