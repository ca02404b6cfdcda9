"""Client disconnects: cancel the upstream work of a client that hung up, and close streams that will not be read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request

from app.core.errors import ClientGone

T = TypeVar("T")


async def close_stream(stream: AsyncIterator[Any]) -> None:
    """Close a backend stream (its finally blocks close the upstream HTTP response)."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await `work`; if the client hangs up first, cancel it (and the upstream call inside) and raise ClientGone."""
    watch = DisconnectWatch(request.receive)
    try:
        return await work
    except asyncio.CancelledError:
        if watch.absorb():
            raise ClientGone("client disconnected; upstream request cancelled") from None
        raise
    finally:
        watch.stop()


class DisconnectWatch:
    """Cancels the current task when the client disconnects (one task reading `receive`)."""

    def __init__(self, receive: Callable[[], Awaitable[Any]]) -> None:
        self.me = asyncio.current_task()
        self.gone = False
        self._task = asyncio.create_task(self._watch(receive))

    async def _watch(self, receive: Callable[[], Awaitable[Any]]) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        if self.me is not None:
            self.me.cancel()

    def absorb(self) -> bool:
        """Inside `except CancelledError`: True, with the cancellation undone, when it came from a disconnect."""
        if self.gone and self.me is not None:
            self.me.uncancel()
            return True
        return False

    def stop(self) -> None:
        self._task.cancel()
