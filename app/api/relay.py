"""RelayResponse: the streaming response the proxies relay upstream bytes through."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi.responses import Response

from app.api.disconnect import DisconnectWatch, close_stream


class RelayResponse(Response):
    """A streaming response for relayed upstream bytes, lighter than Starlette's StreamingResponse (which runs an
    anyio task group per response): one watcher task turns the client's disconnect into cancelling the relay,
    and the last block goes out together with the end of the chunked body (one write instead of two).

    `blocks` yields (bytes, is_last); it is closed (aclose) whatever happens, which closes the upstream call.
    `cleanup` runs after it too: closing a generator that never started runs none of its own finally blocks."""

    def __init__(
        self,
        blocks: AsyncIterator[tuple[bytes, bool]],
        headers: dict[str, str],
        media_type: str,
        cleanup: Callable[[], Awaitable[None]] | None = None,
    ):
        super().__init__(None, 200, headers, media_type)
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]  # chunked, not empty
        self.blocks = blocks
        self.cleanup = cleanup

    async def _close(self) -> None:
        try:
            await close_stream(self.blocks)
        finally:
            if self.cleanup is not None:
                await self.cleanup()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        except BaseException:
            await self._close()
            raise
        watch = DisconnectWatch(receive)
        try:
            last = False
            async for data, last in self.blocks:
                await send({"type": "http.response.body", "body": data, "more_body": not last})
                if last:
                    break
            if not last:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not watch.absorb():
                raise  # otherwise the client left: nothing more to send
        finally:
            watch.stop()
            await self._close()
