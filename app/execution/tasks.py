"""Groups of a job's tasks that end together: siblings stopped at the first failure, work finished despite a cancel."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any


async def run_all(coros: list[Coroutine[Any, Any, None]]) -> None:
    """Run the coroutines as tasks. The first to fail (a spent budget, a bug) cancels the others, and a cancel of
    the caller cancels them all; either way every task has ended (a call cut mid-way recorded as such) before
    this returns or raises, so nothing of the job runs on, or is charged, after it settles."""
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if not task.cancelled() and (exc := task.exception()) is not None:
            raise exc


async def finish_anyway(work: Coroutine[Any, Any, None]) -> None:
    """Await `work` to its end even when the caller is cancelled meanwhile; the cancel is raised after it."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):  # e.g. the budget's stop: the cancel wins
            await task
        raise
