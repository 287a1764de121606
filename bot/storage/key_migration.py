"""The start-up migration of key names, from ``approval-bot:…`` to ``{approval-bot}:…``.

The hash tag (see ``bot.storage.keys``) changed every key's name. A deployment upgrading keeps its
pending requests, grants, audit trail and queued jobs: at start-up the bot renames every
key still named the old way. RENAME keeps a key's TTL, and a stream keeps its consumer
groups and their pending entries, so a renamed job is taken over like any other.

Several processes may start at once: one renames under a lock (``keys.MIGRATION_LOCK``),
the others wait for it, then find nothing left to rename. A process that dies mid-way
leaves each key either renamed or not, and the next start renames the rest. A key whose new
name is taken already (an old process wrote it after a new one had started) is never
overwritten: it is left under its old name, with a warning.

Not run on a Redis Cluster: the bot did not run on one before the hash tag, and a cluster
refuses to rename a key into another hash slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any, Final

import redis.asyncio as redis
from redis.exceptions import RedisError, ResponseError

from bot.storage import keys
from bot.storage.connections import decoded

logger = logging.getLogger(__name__)

#: Keys renamed per round trip (the lock is renewed with each batch).
BATCH: Final = 500

RELEASE_SCRIPT: Final = """
-- KEYS[1]: the migration lock
-- ARGV[1]: this process's token
-- returns 1 if the lock was released, 0 if this process no longer held it
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass
class Migrated:
    """What a migration did: how many keys it renamed, and the old names it left because
    their new name was taken."""

    renamed: int = 0
    kept: list[str] = field(default_factory=list)


def new_name(legacy: str) -> str:
    """The name a key of the old namespace has now."""
    return keys.PREFIX + legacy.removeprefix(keys.LEGACY_PREFIX)


async def migrate_key_names(client: redis.Redis, *, poll_s: float = 0.05) -> Migrated:
    """Rename every ``approval-bot:…`` key to its ``{approval-bot}:…`` name, under the
    migration lock; wait while another process holds it."""
    token = secrets.token_hex(8)
    while not await client.set(keys.MIGRATION_LOCK, token, nx=True, px=keys.MIGRATION_LOCK_TTL_MS):
        await asyncio.sleep(poll_s)  # another process migrates; its TTL bounds the wait
    try:
        migrated = await _rename_all(client)
    finally:
        with contextlib.suppress(RedisError, OSError):
            await client.register_script(RELEASE_SCRIPT)(keys=[keys.MIGRATION_LOCK], args=[token])
    if migrated.renamed:
        logger.info(
            "renamed %d Redis keys from %s:… to %s:…",
            migrated.renamed,
            keys.LEGACY_PREFIX,
            keys.PREFIX,
        )
    for legacy in migrated.kept:
        logger.warning(
            "Redis key %s not renamed: %s exists already (was an older bot still running?); "
            "it is left as it is",
            legacy,
            new_name(legacy),
        )
    return migrated


async def _rename_all(client: redis.Redis) -> Migrated:
    migrated = Migrated()
    cursor: Any = 0
    while True:
        cursor, found = await client.scan(cursor, match=f"{keys.LEGACY_PREFIX}:*", count=BATCH)
        names = [decoded(name) for name in found]
        if names:
            async with client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.renamenx(name, new_name(name))
                # still ours: a migration of many keys outlives one TTL
                pipe.pexpire(keys.MIGRATION_LOCK, keys.MIGRATION_LOCK_TTL_MS)
                results = await pipe.execute(raise_on_error=False)
            for name, result in zip(names, results, strict=False):
                if isinstance(result, ResponseError) and "no such key" in str(result):
                    continue  # gone meanwhile (expired), or listed twice by SCAN
                if isinstance(result, Exception):
                    raise result
                if result:
                    migrated.renamed += 1
                else:
                    migrated.kept.append(name)
        if int(cursor) == 0:
            return migrated
