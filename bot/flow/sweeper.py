"""The sweeper: expires requests nobody decided, reminds approvers, posts cards Slack refused.

Every bot process runs one; a Redis lock lets one sweep at a time. Each step is itself
atomic (an expiry is one script that also enqueues the resume), so a sweeper that dies
mid-sweep leaves nothing half done: the next sweep goes on from the schedules in Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Final

from bot.flow.assistant import Assistant
from bot.logs import log_context
from bot.storage import keys
from bot.storage.connections import STORAGE_ERRORS, RedisClient
from bot.storage.sweeper_lock import SweeperLock

logger = logging.getLogger(__name__)

#: Requests handled per schedule and sweep; the rest wait for the next sweep.
BATCH: Final = 500


@dataclass
class Swept:
    """What one sweep did (ids), or ``locked`` when another process was sweeping."""

    expired: list[str] = field(default_factory=list)
    reminded: list[str] = field(default_factory=list)
    posted: list[str] = field(default_factory=list)
    locked: bool = False


class Sweeper:
    def __init__(
        self,
        client: RedisClient,
        assistant: Assistant,
        interval_s: float,
        *,
        lock_ttl_ms: int = keys.SWEEPER_LOCK_TTL_MS,
    ) -> None:
        self.assistant = assistant
        self.store = assistant.store
        self.interval_s = interval_s
        self.lock = SweeperLock(client, lock_ttl_ms)
        #: renew the lock this often while a sweep runs (a third of its lifetime)
        self.renew_every_s = lock_ttl_ms / 3000
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="sweeper")

    async def close(self) -> None:
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def running(self) -> bool | None:
        """Whether the sweeping loop runs (None: this process does not sweep)."""
        if self._task is None:
            return None
        return not self._task.done()

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.sweep()
            except STORAGE_ERRORS as error:
                logger.warning("sweep skipped: Redis failed: %s", error)
            except Exception:  # a bug: log it whole, sweep again next time
                logger.exception("sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)

    async def sweep(self, now: float | None = None) -> Swept:
        """One sweep, if no other process is sweeping. ``now``: the time to sweep at."""
        now = time.time() if now is None else now
        if not await self.lock.acquire():
            return Swept(locked=True)
        swept = Swept()
        held = asyncio.Event()
        held.set()
        renewing = asyncio.create_task(self._keep_lock(held), name="sweeper lock")
        try:
            await self._sweep(now, swept, held)
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            with contextlib.suppress(*STORAGE_ERRORS):
                await self.lock.release()
        if swept.expired or swept.reminded or swept.posted:
            logger.info(
                "sweep: %d expired, %d reminded, %d cards posted",
                len(swept.expired),
                len(swept.reminded),
                len(swept.posted),
            )
        return swept

    async def _sweep(self, now: float, swept: Swept, held: asyncio.Event) -> None:
        """Expire, remind and post again, while this process holds the lock: a sweep that
        lost it (Redis failed over, say) stops at the next request, so two processes never
        work through the same schedules at once."""
        for approval_id in await self.store.due(keys.EXPIRING_ZSET, now, BATCH):
            if not held.is_set():
                return
            with log_context(approval_id=approval_id):
                request = await self.store.expire(approval_id, now)
                if request is not None:
                    swept.expired.append(approval_id)
                    await self.assistant.cards.expired(request)
        for approval_id in await self.store.due(keys.REMINDERS_ZSET, now, BATCH):
            if not held.is_set():
                return
            with log_context(approval_id=approval_id):
                if await self.assistant.cards.remind(approval_id, now):
                    swept.reminded.append(approval_id)
        for approval_id in await self.store.due(keys.CARDS_DUE_ZSET, now, BATCH):
            if not held.is_set():
                return
            with log_context(approval_id=approval_id):
                if await self.assistant.cards.post_card_again(approval_id, now):
                    swept.posted.append(approval_id)
        if held.is_set():  # webhooks to API clients whose next attempt is due
            await self.assistant.api.webhooks.deliver_due(now)

    async def _keep_lock(self, held: asyncio.Event) -> None:
        """Extend the lock every ``renew_every_s`` while the sweep runs; clear ``held`` when
        it was lost. A renewal Redis could not take is tried again at the next beat."""
        while held.is_set():
            await asyncio.sleep(self.renew_every_s)
            try:
                extended = await self.lock.renew()
            except STORAGE_ERRORS as error:
                logger.warning("sweeper lock not renewed (Redis failed): %s", error)
                continue
            if not extended:
                logger.warning("sweeper lock lost to another process; this sweep stops")
                held.clear()
