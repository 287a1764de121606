"""The audit shipper: copies the audit stream to the long-term sinks, each entry once.

The Redis stream stays the source of truth for recent entries (``AUDIT_RETENTION_DAYS``);
the shipper tails it and delivers every entry to each configured sink (``bot.storage.audit_sinks``).

- **One process at a time per sink**: a Redis lock per sink, renewed while the process ships
  (every third of its TTL); a process that dies lets another take over within the TTL.
- **A position per sink** (``AUDIT_SHIPPED``: the stream id of the last entry the sink took),
  moved only after the sink took a batch, and only by the lock's holder (one script checks
  both), so nothing is skipped and a batch is not shipped by two processes. A file sink also
  knows from its files how far it got, so a crash between writing and moving the position
  does not write an entry twice.
- **A failing sink** is retried with backoff (1 s doubling up to a minute), logged, counted
  (``approval_bot_audit_sink_failures_total``) and shows in its lag
  (``approval_bot_audit_sink_lag_seconds``); it never blocks the bot nor the other sinks.

Entries are trimmed from the stream by age, shipped or not: keep ``AUDIT_RETENTION_DAYS``
well above the longest outage of a sink you would sit out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from redis.exceptions import RedisError

from bot.metrics import Metrics
from bot.storage import keys
from bot.storage.audit import position
from bot.storage.audit_sinks import AuditSink, FileSink, SinkError, WebhookSink
from bot.storage.connections import RedisClient, decoded

logger = logging.getLogger(__name__)

RENEW_SCRIPT: Final = """
-- KEYS[1]: a sink's shipper lock (AUDIT_SHIPPER_LOCK)
-- ARGV[1]: the token of the process holding it
-- ARGV[2]: its TTL, in milliseconds
-- returns 1 when renewed, 0 when this process no longer holds it
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

ADVANCE_SCRIPT: Final = """
-- KEYS[1]: a sink's shipper lock (AUDIT_SHIPPER_LOCK)
-- KEYS[2]: every sink's position (AUDIT_SHIPPED)
-- ARGV[1]: the token of the process holding the lock
-- ARGV[2]: the sink's name
-- ARGV[3]: the stream id of the last entry the sink took
-- returns 1 when the position moved, 0 when this process no longer holds the lock
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
"""

RELEASE_SCRIPT: Final = """
-- KEYS[1]: a sink's shipper lock (AUDIT_SHIPPER_LOCK)
-- ARGV[1]: the token of the process holding it
-- returns 1 when released, 0 when another process (or none) holds it
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

#: Entries read from the stream and delivered at once.
BATCH: Final = 100


def build_sinks(
    names: Sequence[str], directory: Path, webhook_url: str | None, webhook_secret: str | None
) -> list[AuditSink]:
    """The sinks ``AUDIT_SINKS`` names (``file``: day files in ``directory``; ``webhook``)."""
    sinks: list[AuditSink] = []
    for name in names:
        if name == "file":
            sinks.append(FileSink(directory))
        elif name == "webhook" and webhook_url:
            sinks.append(WebhookSink(webhook_url, webhook_secret))
    return sinks


class AuditShipper:
    """Ships the audit stream to ``sinks``, each in a task of its own."""

    def __init__(
        self,
        client: RedisClient,
        sinks: Sequence[AuditSink],
        metrics: Metrics,
        *,
        poll_s: float = 1.0,
        lock_ttl_ms: int = keys.AUDIT_SHIPPER_LOCK_TTL_MS,
        retry_s: tuple[float, float] = (1.0, 60.0),
    ) -> None:
        self.redis = client
        self.sinks = list(sinks)
        self.metrics = metrics
        self.poll_s = poll_s
        self.lock_ttl_ms = lock_ttl_ms
        self.retry_s = retry_s
        self.owner = secrets.token_hex(8)
        self._renew = client.register_script(RENEW_SCRIPT)
        self._advance = client.register_script(ADVANCE_SCRIPT)
        self._release = client.register_script(RELEASE_SCRIPT)
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for sink in self.sinks:
            self.metrics.audit_sink_lag.labels(sink.name).set(0)
            self._tasks.append(asyncio.create_task(self._run(sink), name=f"audit {sink.name}"))

    async def close(self, timeout_s: float = 10.0) -> None:
        """Stop: a delivery in flight may finish for ``timeout_s``, then it is cancelled (its
        position did not move: it is delivered again by the next shipper)."""
        self._stopping.set()
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for sink in self.sinks:
            await sink.aclose()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _run(self, sink: AuditSink) -> None:
        lock = keys.audit_shipper_lock(sink.name)
        pause = self.retry_s[0]
        while not self._stopping.is_set():
            try:
                if await self.redis.set(lock, self.owner, nx=True, px=self.lock_ttl_ms):
                    try:
                        await self._ship_while_held(sink, lock)
                    finally:
                        with contextlib.suppress(RedisError, OSError):
                            await self._release(keys=[lock], args=[self.owner])
                pause = self.retry_s[0]
                await self._sleep(self.poll_s)  # another process ships to it, or we stopped
            except (RedisError, OSError) as error:
                logger.warning(
                    "audit %s: Redis failed (%s); again in %.0f s", sink.name, error, pause
                )
                await self._sleep(pause)
                pause = min(pause * 2, self.retry_s[1])
            except Exception:  # a bug: log it whole, try again later; the bot goes on
                logger.exception("audit %s: shipping failed; again in %.0f s", sink.name, pause)
                await self._sleep(pause)
                pause = min(pause * 2, self.retry_s[1])

    async def _ship_while_held(self, sink: AuditSink, lock: str) -> None:
        lost = asyncio.Event()
        renewing = asyncio.create_task(self._keep(lock, lost), name=f"audit {sink.name} lock")
        try:
            cursor = await self._position(sink)
            failures = 0
            while not self._stopping.is_set() and not lost.is_set():
                rows: Any = await self.redis.xrange(
                    keys.AUDIT_STREAM, f"({cursor}" if cursor else "-", "+", count=BATCH
                )
                if not rows:
                    self.metrics.audit_sink_lag.labels(sink.name).set(0)
                    await self._sleep(self.poll_s)
                    continue
                entries = [
                    {"id": decoded(entry_id), **{decoded(k): decoded(v) for k, v in fields.items()}}
                    for entry_id, fields in rows
                ]
                oldest_ms = position(entries[0]["id"])[0]
                self.metrics.audit_sink_lag.labels(sink.name).set(
                    max(0.0, time.time() - oldest_ms / 1000)
                )
                try:
                    await sink.deliver(entries)
                except SinkError as error:
                    failures += 1
                    self.metrics.audit_sink_failures.labels(sink.name).inc()
                    wait = min(self.retry_s[0] * 2 ** (failures - 1), self.retry_s[1])
                    logger.error(
                        "audit %s: %d entries not delivered (%s), failed %d times in a row; "
                        "again in %.0f s",
                        sink.name,
                        len(entries),
                        error.problem,
                        failures,
                        wait,
                    )
                    await self._sleep(wait)
                    continue
                if failures:
                    logger.info("audit %s: delivered after %d failures", sink.name, failures)
                failures = 0
                last = entries[-1]["id"]
                moved = await self._advance(
                    keys=[lock, keys.AUDIT_SHIPPED], args=[self.owner, sink.name, last]
                )
                self.metrics.audit_shipped.labels(sink.name).inc(len(entries))
                if not moved:
                    logger.warning("audit %s: another process took over shipping", sink.name)
                    return
                cursor = last
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    async def _position(self, sink: AuditSink) -> str | None:
        """Where to go on from: the stored position, or further if the sink holds more."""
        stored = await self.redis.hget(keys.AUDIT_SHIPPED, sink.name)
        cursor = decoded(stored) if stored is not None else None
        held = await sink.delivered_up_to()
        if held is not None and (cursor is None or position(held) > position(cursor)):
            logger.warning(
                "audit %s: it holds entries up to %s, past its stored position %s (a crash "
                "before the position moved); going on after them",
                sink.name,
                held,
                cursor,
            )
            return held
        return cursor

    async def _keep(self, lock: str, lost: asyncio.Event) -> None:
        """Renew the lock every third of its TTL; set ``lost`` once another process has it."""
        while True:
            await asyncio.sleep(self.lock_ttl_ms / 3000)
            try:
                if not await self._renew(keys=[lock], args=[self.owner, self.lock_ttl_ms]):
                    lost.set()
                    return
            except (RedisError, OSError) as error:
                logger.warning("audit shipper: lock %s not renewed: %s", lock, error)
