"""The Redis client every part of the bot shares, and a count of its round trips.

The pool is a blocking one of a fixed size: under a burst (200 clicks at once) a request
waits a moment for a free connection instead of failing with "too many connections", and
Redis sees a bounded number of clients per process.

With ``REDIS_CLUSTER=true`` the client is redis-py's cluster client instead
(:class:`RedisClient` names both). Every key of the bot shares one hash slot (see
``bot.storage.keys``), so all of its commands go to the one node that owns that slot. redis-py's
cluster client has no blocking pool (a node out of connections fails at once), so
:class:`WaitingCluster` waits for a free connection itself.

:func:`counting` counts the round trips the current task (and the tasks it starts) makes:
each command sent, and each pipeline as one. The Slack listeners use it to report how many
Redis round trips a click costs before it is acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final, TypeAlias
from urllib.parse import parse_qsl, unquote, urlparse

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT

from bot.storage import keys

#: The client every part of the bot shares: one Redis server (standalone, or the primary
#: Sentinel names), or a Redis Cluster.
RedisClient: TypeAlias = redis.Redis | RedisCluster

#: What a Redis failure raises (a command refused, the server down or unreachable). Code
#: outside bot.storage catches these instead of importing redis itself.
STORAGE_ERRORS: Final[tuple[type[Exception], ...]] = (RedisError, OSError)


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


async def fill_pool(client: RedisClient, connections: int) -> None:
    """Open ``connections`` connections now: a connection opened during a burst costs its
    handshake (four or five round trips) to the request that opened it. On a cluster, to
    the node that owns the bot's hash slot (the only one it sends commands to)."""
    if isinstance(client, RedisCluster):
        await client.initialize()
        node = client.get_node_from_key(keys.PREFIX)
        if node is None:  # the slot is not served yet: connections open on first use
            return
        held = []
        for _ in range(min(connections, node.max_connections)):
            connection = node.acquire_connection()
            held.append(connection)
            await connection.connect()  # type: ignore[no-untyped-call]
        for connection in held:
            node.release(connection)
        return
    pool = client.connection_pool
    opened = [await pool.get_connection() for _ in range(connections)]  # type: ignore[no-untyped-call]
    for connection in opened:
        await pool.release(connection)


def reconnecting() -> Retry:
    """How a command that met a dead connection is sent again: on a fresh connection, up to
    three times over about a second (a Redis restart leaves every pooled connection dead).

    Sending again is safe for every command the bot sends: the vote script counts one vote
    per person and call, so a vote sent twice counts once; a set-if-absent sent twice finds
    its own key and answers "not set", which the bot reads as "someone else has it" (an
    executing call is then reported as of unknown outcome, never run twice); a job enqueued
    twice is run once (its resume is guarded by the request's state).
    """
    return Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3)


def open_redis(
    url: str, *, max_connections: int, wait_s: float = 5.0, cluster: bool = False
) -> RedisClient:
    """A client for ``url`` on a blocking pool of ``max_connections`` connections; a command
    that finds none free within ``wait_s`` fails with a ConnectionError. Connections that
    died (a Redis restart) are replaced transparently (:func:`reconnecting`).

    ``cluster``: ``url`` names any node of a Redis Cluster; the client finds the others."""
    if cluster:
        return open_cluster(url, max_connections=max_connections, wait_s=wait_s)
    if urlparse(url).scheme in SENTINEL_SCHEMES:
        return open_sentinel(url, max_connections=max_connections, wait_s=wait_s)
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=wait_s,
        health_check_interval=30,
        socket_timeout=10,
        retry=reconnecting(),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    base: Any = pool.connection_class  # Connection, SSLConnection or a Unix socket's
    pool.connection_class = type(f"Counted{base.__name__}", (_Counted, base), {})
    return redis.Redis.from_pool(pool)


class WaitingCluster(RedisCluster):
    """redis-py's cluster client, but a command that finds its node out of connections waits
    for one (up to ``wait_s``) instead of failing at once, as the standalone blocking pool
    does. Sending again is safe: MaxConnectionsError is raised before anything is sent."""

    wait_s: float = 5.0

    async def execute_command(self, *args: EncodableT, **kwargs: Any) -> Any:
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                return await super().execute_command(*args, **kwargs)
            except MaxConnectionsError:
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.005)


def open_cluster(url: str, *, max_connections: int, wait_s: float = 5.0) -> WaitingCluster:
    """A cluster client for ``url`` (any node; ``rediss://`` for TLS), at most
    ``max_connections`` connections per node, its round trips counted as
    :func:`counting` expects. It connects on first use."""
    client = WaitingCluster.from_url(
        url,
        max_connections=max_connections,
        health_check_interval=30,
        socket_timeout=10,
        retry=reconnecting(),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    assert isinstance(client, WaitingCluster)  # from_url builds its own class
    client.wait_s = wait_s
    # The cluster client takes no connection class; the nodes it discovers later are made
    # from these keyword arguments, the node named in the URL was made already.
    base: Any = client.connection_kwargs["connection_class"]  # Connection or SSLConnection
    counted = type(f"Counted{base.__name__}", (_Counted, base), {})
    client.connection_kwargs["connection_class"] = counted
    for node in client.nodes_manager.startup_nodes.values():
        node.connection_class = counted
    return client


#: ``redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/service[/db]``: the
#: primary that the Sentinels at these addresses name for ``service``; ``rediss+sentinel``
#: reaches it over TLS. Query parameters go to the primary's connections as with
#: ``rediss://`` (``ssl_ca_certs=…``), except ``sentinel_password``, the Sentinels' own.
SENTINEL_SCHEMES: Final = ("redis+sentinel", "rediss+sentinel")
SENTINEL_PORT: Final = 26379


class _BlockingSentinelPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """Sentinel's pool (connections follow the primary through a failover), blocking like
    the standalone one."""


def open_sentinel(url: str, *, max_connections: int, wait_s: float = 5.0) -> redis.Redis:
    """A client for the primary a ``redis+sentinel://`` URL names, on a blocking pool."""
    parsed = urlparse(url)
    credentials, _, hosts = parsed.netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    addresses = []
    for host in hosts.split(","):
        name, _, port = host.rpartition(":") if ":" in host else (host, "", "")
        addresses.append((name, int(port or SENTINEL_PORT)))
    service, _, db = parsed.path.strip("/").partition("/")
    if not service or not addresses or not all(name for name, _port in addresses):
        raise ValueError(f"not a Sentinel URL ({SENTINEL_SCHEMES[0]}://host:port/service): {url}")
    options: dict[str, Any] = dict(parse_qsl(parsed.query))
    sentinel_password = options.pop("sentinel_password", None)
    sentinels = Sentinel(  # type: ignore[no-untyped-call]
        addresses,
        sentinel_kwargs={"password": sentinel_password, "socket_timeout": 5},
        socket_timeout=10,
    )
    pool = _BlockingSentinelPool(  # type: ignore[no-untyped-call]
        service,
        sentinels,
        max_connections=max_connections,
        timeout=wait_s,
        db=int(db or 0),
        username=unquote(username) or None,
        password=unquote(password) or None,
        ssl=parsed.scheme == "rediss+sentinel",
        health_check_interval=30,
        socket_timeout=10,
        retry=reconnecting(),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        **options,
    )
    base: Any = pool.connection_class  # SentinelManagedConnection, or its SSL variant
    pool.connection_class = type(f"Counted{base.__name__}", (_Counted, base), {})
    return redis.Redis.from_pool(pool)


def decoded(value: Any) -> str:
    """A value Redis returned, as text (bytes from a client without ``decode_responses``)."""
    return value.decode() if isinstance(value, bytes) else str(value)
