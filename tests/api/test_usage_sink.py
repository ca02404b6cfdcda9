"""UsageSink: batched token writes never make /tenants/me count a token twice or miss one."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from app.execution.usage import UsageSink

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class SlowRepo:
    """The DB increment commits, then the call takes a while to return (session close): the racy window."""

    def __init__(self) -> None:
        self.stored = 0
        self.lock = threading.Lock()

    def add_tokens_used(self, tenant_id: str, tokens: int) -> None:
        with self.lock:
            self.stored += tokens
        time.sleep(0.05)

    def get_tenant(self, tenant_id: str) -> Any:
        with self.lock:
            return SimpleNamespace(id=tenant_id, tokens_used=self.stored)


async def test_usage_is_exact_before_during_and_after_a_batched_write() -> None:
    repo = SlowRepo()
    sink = UsageSink(repo)  # type: ignore[arg-type]
    sink.add_id("t", 100)
    assert sink.task is not None
    sink.task.cancel()  # flush by hand below
    assert (await asyncio.to_thread(sink.tokens_used, "t"))[1] == 100  # pending, not written
    flush = asyncio.create_task(sink.flush())
    seen = []
    for _ in range(8):  # readers all through the write, including between its commit and its return
        seen.append((await asyncio.to_thread(sink.tokens_used, "t"))[1])
        await asyncio.sleep(0.01)
    await flush
    assert set(seen) == {100} and (await asyncio.to_thread(sink.tokens_used, "t"))[1] == 100
    assert repo.stored == 100
