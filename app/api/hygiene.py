"""Connection hygiene for `swarm serve`: uvicorn's h11 protocol with a request-head read timeout and a request-body
pace (idle gap and minimum rate), and the uvicorn settings (keep-alive, connection cap, head size) built from the
service settings."""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.api.errors import family_error
from app.core.errors import RequestTimeout
from app.core.settings import Settings


class HeadTimeoutH11(H11Protocol):
    """Closes a connection that has not delivered a whole request head within `head_timeout_s` of opening or of
    its previous response (uvicorn alone keeps a silent or slowly-dribbling connection open forever), and answers
    408 and closes one whose request body stalls: no body bytes for `body_idle_s`, or fewer on average than
    `body_min_rate` bytes/s once `body_idle_s` have passed since the head (a byte every few seconds holds a
    connection slot for ever otherwise)."""

    head_timeout_s = 10.0
    body_idle_s = 10.0
    body_min_rate = 8192.0
    _head_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None
    _body_start = 0.0
    _body_last = 0.0
    _body_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timeout)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def data_received(self, data: bytes) -> None:
        if self._body_timer is not None:  # counts chunk framing too: a pace, not an exact size
            self._body_bytes += len(data)
            self._body_last = self.loop.time()
        super().data_received(data)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a new request head was parsed
            self._disarm()
            self._stop_body_timer()
            if self.conn.their_state is h11.SEND_BODY:
                now = self.loop.time()
                self._body_start, self._body_last, self._body_bytes = now, now, 0
                self._body_timer = self.loop.call_later(self.body_idle_s, self._body_check)

    def _stop_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_deadline(self) -> float:
        """When the body is late: the sooner of an idle gap and falling below the minimum average rate."""
        idle = self._body_last + self.body_idle_s
        paced = self._body_start + self.body_idle_s + self._body_bytes / self.body_min_rate
        return min(idle, paced)

    def _body_check(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if cycle is None or self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
            return  # the body arrived, or the connection is gone
        now = self.loop.time()
        if self.flow.read_paused:  # the app is not reading: the client is not the slow one
            self._body_start, self._body_last, self._body_bytes = now, now, 0
        elif now >= self._body_deadline() - 1e-3:
            self._body_timeout()
            return
        self._body_timer = self.loop.call_at(max(self._body_deadline(), now + 0.05), self._body_check)

    def _body_timeout(self) -> None:
        """408 in the caller's API shape (when no response has started yet), then close the connection."""
        cycle = self.cycle
        if not cycle.response_started:
            exc = RequestTimeout(
                f"request body not received in time (a gap over {self.body_idle_s:g} s, or under "
                f"{self.body_min_rate:g} bytes/s on average)"
            )
            answer = family_error(str(self.scope.get("path", "")), exc)
            headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
            headers.append((b"content-length", str(len(answer.body)).encode()))
            try:
                out = self.conn.send(h11.Response(status_code=408, headers=headers, reason=b"Request Timeout"))
                out = (out or b"") + (self.conn.send(h11.Data(data=bytes(answer.body))) or b"")
                out += self.conn.send(h11.EndOfMessage()) or b""
                self.transport.write(out)
            except h11.LocalProtocolError:
                pass
            cycle.response_started = cycle.response_complete = True
        cycle.disconnected = True  # the app's receive() now reports http.disconnect; its sends are dropped
        cycle.message_event.set()
        self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._stop_body_timer()
        super().connection_lost(exc)

    def _head_timeout(self) -> None:
        self._head_timer = None
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for uvicorn.Config/run that bound what one client can hold open."""
    timeouts = {
        "head_timeout_s": settings.http_head_timeout_s,
        "body_idle_s": settings.http_body_idle_s,
        "body_min_rate": float(settings.http_body_min_rate),
    }
    protocol = type("HeadTimeoutH11", (HeadTimeoutH11,), timeouts)
    return {
        "http": protocol,
        "timeout_keep_alive": settings.http_keep_alive_s,
        "limit_concurrency": settings.http_max_connections,
        "h11_max_incomplete_event_size": settings.http_max_head_bytes,
    }
