"""Durable work: jobs in a Redis stream, read through a consumer group by every bot process.

A decision, an expiry or a person's message becomes a job in the same Redis step that
records it, before Slack is answered. Any bot process may run the job. A process holds a
job by renewing its lease while it runs it; a process that dies stops renewing, and another
claims the job once the lease has lapsed (``XAUTOCLAIM``). A job is deleted when it is done.

The runner keeps the acknowledgement path free: jobs run in their own tasks, at most
``concurrency`` at a time, and a click never waits for one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from redis.exceptions import RedisError, ResponseError

from bot.metrics import Metrics
from bot.storage import keys
from bot.storage.connections import RedisClient, decoded

logger = logging.getLogger(__name__)

#: A job delivered this many times without finishing is given up (a bug, not a fault).
MAX_DELIVERIES: Final = 5


class Kind(StrEnum):
    RESUME = "resume"  # target: an approval id; resume its conversation with the decision
    THREAD = "thread"  # target: a thread key; run the thread's queued messages
    ANNOUNCE = "announce"  # target: an approval id; audit and show a decision (its fields)
    WEBHOOK = "webhook"  # target: an approval id made over the HTTP API; POST its callback


@dataclass(frozen=True)
class Job:
    id: str  # the stream entry id
    kind: Kind
    target: str
    deliveries: int = 1  # 1 the first time; more when claimed from a process that died
    fields: Mapping[str, str] = field(default_factory=dict)  # the entry's other fields

    @property
    def reclaimed(self) -> bool:
        return self.deliveries > 1


#: What runs a job. Returning normally finishes it; raising leaves it to be retried.
Handler = Callable[[Job], Awaitable[None]]
#: Told of a job given up after ``MAX_DELIVERIES`` (to tell the people waiting on it).
GiveUp = Callable[[Job], Awaitable[None]]


def consumer_name() -> str:
    """This process's name in the consumer group: host, pid and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def job_fields(kind: Kind, target: str) -> dict[str, str]:
    """A job's stream fields (the Lua scripts that enqueue jobs write the same)."""
    return {"kind": kind.value, "target": target, "at": repr(time.time())}


class JobQueue:
    """Enqueues jobs and runs them, renewing each one's lease until it is done."""

    def __init__(
        self,
        client: RedisClient,
        metrics: Metrics,
        *,
        concurrency: int = 16,
        lease_ms: int = 30_000,
        consumer: str | None = None,
        block_ms: int = 1_000,
    ) -> None:
        self.redis = client
        self.metrics = metrics
        self.concurrency = concurrency
        self.lease_ms = lease_ms
        self.consumer = consumer or consumer_name()
        self.block_ms = block_ms
        self._running: dict[str, asyncio.Task[None]] = {}
        self._loop: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._handler: Handler | None = None
        self._give_up: GiveUp | None = None

    # -- producing ---------------------------------------------------------------------------
    async def enqueue(self, kind: Kind, target: str) -> str:
        entry = await self.redis.xadd(keys.JOBS, job_fields(kind, target))  # type: ignore[arg-type]
        return decoded(entry)

    # -- consuming ---------------------------------------------------------------------------
    @property
    def busy(self) -> int:
        return len(self._running)

    def start(self, handler: Handler, give_up: GiveUp) -> None:
        """Start reading jobs in the background."""
        self._handler, self._give_up = handler, give_up
        self._loop = asyncio.create_task(self._read_loop(), name=f"jobs {self.consumer}")

    async def _ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(keys.JOBS, keys.JOBS_GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def _read_loop(self) -> None:
        pause = 0.1
        next_reclaim = 0.0
        ready = False
        while not self._stopping.is_set():
            try:
                if not ready:
                    await self._ensure_group()
                    ready = True
                free = self.concurrency - len(self._running)
                if free <= 0:
                    await asyncio.sleep(0.02)
                    continue
                if time.monotonic() >= next_reclaim:
                    next_reclaim = time.monotonic() + self.lease_ms / 3000
                    free -= await self._reclaim(free)
                if free > 0:
                    await self._read(free)
                pause = 0.1
            except ResponseError as error:
                if "NOGROUP" in str(error):  # the stream was deleted (Redis lost its data)
                    ready = False
                    continue
                logger.error("job queue: Redis refused: %s", error)
                await self._sleep(pause)
                pause = min(pause * 2, 5.0)
            except (RedisError, OSError) as error:
                logger.warning(
                    "job queue: Redis unreachable (%s); retrying in %.1f s", error, pause
                )
                await self._sleep(pause)
                pause = min(pause * 2, 5.0)
            except Exception:  # a bug: the loop must not die silently; log it whole, go on
                logger.exception("job queue: reading jobs failed; retrying in %.1f s", pause)
                await self._sleep(pause)
                pause = min(pause * 2, 5.0)

    @property
    def reading(self) -> bool | None:
        """Whether the loop that reads jobs runs (None: this process runs no jobs)."""
        if self._loop is None:
            return None
        return not self._loop.done()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _read(self, count: int) -> None:
        response: Any = await self.redis.xreadgroup(
            keys.JOBS_GROUP, self.consumer, {keys.JOBS: ">"}, count=count, block=self.block_ms
        )
        for _stream, entries in response or []:
            for entry_id, fields in entries:
                job = await self._parse(entry_id, fields, 1)
                if job is not None:
                    self._spawn(job)

    async def _parse(self, entry_id: Any, fields: dict[Any, Any], deliveries: int) -> Job | None:
        """The job in a stream entry; an entry that is no job is logged and dropped."""
        try:
            return _job(entry_id, fields, deliveries)
        except (KeyError, ValueError) as error:
            logger.error("job queue: dropping malformed entry %s %r: %r", entry_id, fields, error)
            await self.redis.xack(keys.JOBS, keys.JOBS_GROUP, entry_id)
            await self.redis.xdel(keys.JOBS, entry_id)
            return None

    async def _reclaim(self, count: int) -> int:
        """Claim jobs whose process stopped renewing their lease; how many were claimed."""
        claimed: Any = await self.redis.xautoclaim(
            keys.JOBS,
            keys.JOBS_GROUP,
            self.consumer,
            min_idle_time=self.lease_ms,
            start_id="0-0",
            count=count,
        )
        entries = claimed[1] if len(claimed) > 1 else []
        taken = 0
        for entry_id, fields in entries:
            if fields is None:  # deleted while pending
                await self.redis.xack(keys.JOBS, keys.JOBS_GROUP, entry_id)
                continue
            if decoded(entry_id) in self._running:
                continue
            info = await self.redis.xpending_range(
                keys.JOBS, keys.JOBS_GROUP, min=entry_id, max=entry_id, count=1
            )
            deliveries = int(info[0]["times_delivered"]) if info else 2
            job = await self._parse(entry_id, fields, max(deliveries, 2))
            if job is None:
                continue
            logger.warning("job %s (%s %s) reclaimed from a process that stopped", *_about(job))
            self._spawn(job)
            taken += 1
        return taken

    def _spawn(self, job: Job) -> None:
        if job.reclaimed:
            self.metrics.jobs_reclaimed.inc()
        task = asyncio.create_task(self._run(job), name=f"job {job.kind} {job.target}")
        self._running[job.id] = task
        task.add_done_callback(lambda _t: self._running.pop(job.id, None))

    async def _run(self, job: Job) -> None:
        assert self._handler is not None and self._give_up is not None
        if job.deliveries > MAX_DELIVERIES:
            logger.error("job %s (%s %s) failed %d times; giving up", *_about(job), MAX_DELIVERIES)
            self.metrics.jobs_given_up.inc()
            with contextlib.suppress(Exception):
                await self._give_up(job)
            await self._finish(job)
            return
        renewing = asyncio.create_task(self._renew(job))
        try:
            await self._handler(job)
        except asyncio.CancelledError:
            await self._hand_back(job)
            raise
        except Exception:
            # Left pending: another attempt claims it once the lease lapses.
            logger.exception("job %s (%s %s) failed; it will be retried", *_about(job))
            return
        finally:
            renewing.cancel()
        await self._finish(job)

    async def _renew(self, job: Job) -> None:
        """Keep the job's lease while it runs (a claim by its owner resets its idle time)."""
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            try:
                await self.redis.xclaim(
                    keys.JOBS, keys.JOBS_GROUP, self.consumer, 0, [job.id], justid=True
                )
            except (RedisError, OSError) as error:
                logger.warning("job %s: lease not renewed: %s", job.id, error)

    async def _finish(self, job: Job) -> None:
        for attempt in range(5):
            try:
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.xack(keys.JOBS, keys.JOBS_GROUP, job.id)
                    pipe.xdel(keys.JOBS, job.id)
                    await pipe.execute()
                return
            except (RedisError, OSError) as error:
                logger.warning("job %s done but not acknowledged (%s); retrying", job.id, error)
                await asyncio.sleep(0.2 * 2**attempt)
        logger.error("job %s done but never acknowledged; another process may repeat it", job.id)

    async def _hand_back(self, job: Job) -> None:
        """Shutting down mid-job: mark it idle for long so that another process claims it now."""
        try:
            await self.redis.xclaim(
                keys.JOBS,
                keys.JOBS_GROUP,
                self.consumer,
                0,
                [job.id],
                idle=self.lease_ms * 10,
                justid=True,
            )
            logger.warning("job %s (%s %s) handed back at shutdown", *_about(job))
        except (RedisError, OSError) as error:
            logger.warning(
                "job %s not handed back (%s); it is claimed after its lease", job.id, error
            )

    async def idle(self) -> None:
        """Wait until no job is queued or running (tests and benchmarks)."""
        while True:
            if not self._running and not await self.redis.xlen(keys.JOBS):
                await asyncio.sleep(0.01)
                if not self._running and not await self.redis.xlen(keys.JOBS):
                    return
            await asyncio.sleep(0.01)

    async def close(self, timeout_s: float = 30.0) -> None:
        """Stop taking jobs; let running ones finish for ``timeout_s``, then hand them back."""
        self._stopping.set()
        if self._loop is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._loop
        running = list(self._running.values())
        if not running:
            return
        logger.info("waiting up to %.0f s for %d jobs in flight", timeout_s, len(running))
        _done, pending = await asyncio.wait(running, timeout=timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def _job(entry_id: Any, fields: dict[Any, Any], deliveries: int) -> Job:
    data = {decoded(k): decoded(v) for k, v in fields.items()}
    kind, target = Kind(data.pop("kind")), data.pop("target")
    return Job(decoded(entry_id), kind, target, deliveries, data)


def _about(job: Job) -> tuple[str, str, str]:
    return job.id, job.kind.value, job.target
