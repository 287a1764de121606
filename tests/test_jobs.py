"""The job queue on a real Redis: jobs outlive the process that took them, run once while
their lease is renewed, and are handed back at shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from bot.metrics import Metrics
from bot.storage import keys
from bot.storage.jobs import MAX_DELIVERIES, Job, JobQueue, Kind

Handler = Callable[[Job], Awaitable[None]]


@pytest.fixture
async def queues(redis_client: aioredis.Redis) -> AsyncIterator[list[JobQueue]]:
    made: list[JobQueue] = []
    yield made
    for queue in made:
        await queue.close(timeout_s=0.1)


def start(
    made: list[JobQueue],
    client: aioredis.Redis,
    handler: Handler,
    *,
    lease_ms: int = 300,
    name: str,
    given_up: list[Job] | None = None,
) -> JobQueue:
    queue = JobQueue(client, Metrics(), lease_ms=lease_ms, consumer=name, block_ms=50)

    async def give_up(job: Job) -> None:
        if given_up is not None:
            given_up.append(job)

    queue.start(handler, give_up)
    made.append(queue)
    return queue


def counted(queue: JobQueue, name: str) -> float:
    """A counter's value in the queue's metrics (``name`` without ``_total``)."""
    return queue.metrics.registry.get_sample_value(f"approval_bot_{name}_total") or 0.0


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_job_runs_once_and_is_deleted(
    redis_client: aioredis.Redis, queues: list[JobQueue]
) -> None:
    ran: list[Job] = []

    async def handler(job: Job) -> None:
        ran.append(job)

    first = start(queues, redis_client, handler, name="a")
    start(queues, redis_client, handler, name="b")
    await first.enqueue(Kind.RESUME, "a" * 24)
    await until(lambda: len(ran) == 1)
    await first.idle()
    await asyncio.sleep(0.4)  # past a lease: nobody runs it again
    assert [(j.kind, j.target, j.reclaimed) for j in ran] == [(Kind.RESUME, "a" * 24, False)]
    assert await redis_client.xlen(keys.JOBS) == 0
    assert [counted(q, "jobs_reclaimed") for q in queues] == [0, 0]


async def test_a_job_of_a_dead_process_is_reclaimed_by_another(
    redis_client: aioredis.Redis, queues: list[JobQueue]
) -> None:
    # a process read the job, then died: it stays pending under that process's name
    await redis_client.xgroup_create(keys.JOBS, keys.JOBS_GROUP, id="0", mkstream=True)
    await redis_client.xadd(keys.JOBS, {"kind": "thread", "target": "T1:C1:1.0", "at": "0"})
    await redis_client.xreadgroup(keys.JOBS_GROUP, "dead", {keys.JOBS: ">"}, count=1)
    ran: list[Job] = []

    async def handler(job: Job) -> None:
        ran.append(job)

    survivor = start(queues, redis_client, handler, name="survivor")
    await until(lambda: len(ran) == 1)
    await survivor.idle()
    assert ran[0].target == "T1:C1:1.0"
    assert ran[0].reclaimed
    assert counted(survivor, "jobs_reclaimed") == 1
    assert await redis_client.xlen(keys.JOBS) == 0


async def test_a_long_job_keeps_its_lease_and_is_not_run_twice(
    redis_client: aioredis.Redis, queues: list[JobQueue]
) -> None:
    ran: list[str] = []

    async def slow(job: Job) -> None:
        ran.append(job.id)
        await asyncio.sleep(1.2)  # four leases long

    first = start(queues, redis_client, slow, name="a")
    start(queues, redis_client, slow, name="b")
    await first.enqueue(Kind.RESUME, "b" * 24)
    await until(lambda: len(ran) == 1)
    await first.idle()
    assert len(ran) == 1


async def test_a_failing_job_is_retried_after_its_lease(
    redis_client: aioredis.Redis, queues: list[JobQueue]
) -> None:
    attempts: list[Job] = []

    async def flaky(job: Job) -> None:
        attempts.append(job)
        if len(attempts) == 1:
            raise RuntimeError("Redis blinked")

    queue = start(queues, redis_client, flaky, name="a")
    await queue.enqueue(Kind.RESUME, "c" * 24)
    await until(lambda: len(attempts) == 2)
    await queue.idle()
    assert [a.reclaimed for a in attempts] == [False, True]
    assert counted(queue, "jobs_reclaimed") == 1
    assert counted(queue, "jobs_given_up") == 0


async def test_a_job_failing_every_time_is_given_up(
    redis_client: aioredis.Redis, queues: list[JobQueue]
) -> None:
    attempts: list[Job] = []
    given_up: list[Job] = []

    async def broken(job: Job) -> None:
        attempts.append(job)
        raise RuntimeError("a bug")

    queue = start(queues, redis_client, broken, lease_ms=100, name="a", given_up=given_up)
    await queue.enqueue(Kind.RESUME, "d" * 24)
    await until(lambda: len(given_up) == 1, timeout=10)
    await queue.idle()
    assert len(attempts) == MAX_DELIVERIES
    assert given_up[0].target == "d" * 24
    assert counted(queue, "jobs_given_up") == 1


async def test_shutdown_hands_a_running_job_back_at_once(
    redis_client: aioredis.Redis, queues: list[JobQueue]
) -> None:
    started = asyncio.Event()
    finished: list[str] = []

    async def stuck(job: Job) -> None:
        started.set()
        await asyncio.sleep(60)

    async def quick(job: Job) -> None:
        finished.append(job.target)

    leaving = JobQueue(redis_client, Metrics(), lease_ms=60_000, consumer="leaving", block_ms=50)
    leaving.start(stuck, quick)
    await leaving.enqueue(Kind.RESUME, "e" * 24)
    await started.wait()
    await leaving.close(timeout_s=0.1)  # the job is cancelled and handed back
    # another process takes it at once, although its lease (60 s) has not lapsed
    start(queues, redis_client, quick, lease_ms=60_000, name="staying")
    await until(lambda: finished == ["e" * 24])


async def test_a_malformed_entry_is_dropped(
    redis_client: aioredis.Redis, queues: list[JobQueue]
) -> None:
    ran: list[Job] = []

    async def handler(job: Job) -> None:
        ran.append(job)

    await redis_client.xgroup_create(keys.JOBS, keys.JOBS_GROUP, id="0", mkstream=True)
    await redis_client.xadd(keys.JOBS, {"kind": "nonsense", "target": "x"})
    queue = start(queues, redis_client, handler, name="a")
    await queue.enqueue(Kind.THREAD, "T1:C1:2.0")
    await until(lambda: len(ran) == 1)
    await queue.idle()
    assert ran[0].target == "T1:C1:2.0"
    assert await redis_client.xlen(keys.JOBS) == 0
