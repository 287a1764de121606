"""The Redis client every part of the bot shares, and a count of its round trips.

The pool is a blocking one of a fixed size: under a burst (200 clicks at once) a request
waits a moment for a free connection instead of failing with "too many connections", and
Redis sees a bounded number of clients per process.

:func:`counting` counts the round trips the current task (and the tasks it starts) makes:
each command sent, and each pipeline as one. The Slack listeners use it to report how many
Redis round trips a click costs before it is acknowledged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from redis.asyncio.connection import AbstractConnection


@dataclass
class RoundTrips:
    count: int = 0


_COUNTER: ContextVar[RoundTrips | None] = ContextVar("redis_round_trips", default=None)


@contextlib.contextmanager
def counting() -> Iterator[RoundTrips]:
    """Count the Redis round trips made in this block (by this task and those it starts)."""
    trips = RoundTrips()
    token = _COUNTER.set(trips)
    try:
        yield trips
    finally:
        _COUNTER.reset(token)


def stop_counting() -> None:
    """Round trips from here on, in this task, are not counted (work after the answer)."""
    _COUNTER.set(None)


class _Counted(AbstractConnection):
    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        trips = _COUNTER.get()
        if trips is not None:
            trips.count += 1
        await super().send_packed_command(command, check_health)


async def fill_pool(client: redis.Redis, connections: int) -> None:
    """Open ``connections`` connections now: a connection opened during a burst costs its
    handshake (four or five round trips) to the request that opened it."""
    pool = client.connection_pool
    opened = [await pool.get_connection() for _ in range(connections)]  # type: ignore[no-untyped-call]
    for connection in opened:
        await pool.release(connection)


def open_redis(url: str, *, max_connections: int, wait_s: float = 5.0) -> redis.Redis:
    """A client for ``url`` on a blocking pool of ``max_connections`` connections; a command
    that finds none free within ``wait_s`` fails with a ConnectionError."""
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=wait_s,
        health_check_interval=30,
        socket_timeout=10,
    )
    base: Any = pool.connection_class  # Connection, SSLConnection or a Unix socket's
    pool.connection_class = type(f"Counted{base.__name__}", (_Counted, base), {})
    return redis.Redis.from_pool(pool)
