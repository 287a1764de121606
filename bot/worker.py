"""Background work with bounded concurrency, kept off the path that acknowledges Slack."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

logger = logging.getLogger(__name__)


class Worker:
    """Runs submitted coroutines, at most ``concurrency`` at a time; tracks them for shutdown."""

    def __init__(self, concurrency: int) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def busy(self) -> int:
        return len(self._tasks)

    def submit(self, work: Coroutine[Any, Any, Any], *, name: str) -> None:
        if self._closing:
            work.close()
            raise RuntimeError("the worker is shutting down")
        task = asyncio.create_task(self._run(work, name), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, work: Coroutine[Any, Any, Any], name: str) -> None:
        async with self._slots:
            try:
                await work
            except asyncio.CancelledError:
                logger.warning("work %s cancelled at shutdown; its state stays in Redis", name)
                raise
            except Exception:
                # The work's own handlers tell the user; reaching here is a bug. Log it whole
                # and keep the process serving.
                logger.exception("work %s failed unexpectedly", name)

    async def idle(self) -> None:
        """Wait until no work is running (tests and benchmarks)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, timeout_s: float = 30.0) -> None:
        """Stop taking work; let running work finish for ``timeout_s``, then cancel it."""
        self._closing = True
        if not self._tasks:
            return
        done, pending = await asyncio.wait(list(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
