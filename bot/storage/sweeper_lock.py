"""The sweeper's lock: one process sweeps at a time (bot.flow.sweeper). It expires on its own
(a process that dies holding it frees it after ``ttl_ms``), and only its holder extends or
deletes it, each in one script."""

from __future__ import annotations

import secrets
from typing import Final

from bot.storage import keys
from bot.storage.connections import RedisClient

#: Deletes the lock only if this sweeper still holds it.
_RELEASE: Final = """
-- KEYS[1]: the sweeper lock
-- ARGV[1]: this sweeper's owner token
-- returns 1 if the lock was deleted, 0 if this sweeper did not hold it
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

#: Extends the lock only if this sweeper still holds it.
_RENEW: Final = """
-- KEYS[1]: the sweeper lock
-- ARGV[1]: this sweeper's owner token
-- ARGV[2]: the lock's new time to live, in milliseconds
-- returns 1 if the lock was extended, 0 if another process holds it (or nobody does)
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class SweeperLock:
    """``keys.SWEEPER_LOCK``, held under a token of this process's own."""

    def __init__(self, client: RedisClient, ttl_ms: int = keys.SWEEPER_LOCK_TTL_MS) -> None:
        self.redis = client
        self.ttl_ms = ttl_ms
        self.owner = secrets.token_hex(8)
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)

    async def acquire(self) -> bool:
        """Take the lock; False if another process holds it."""
        return bool(await self.redis.set(keys.SWEEPER_LOCK, self.owner, nx=True, px=self.ttl_ms))

    async def renew(self) -> bool:
        """Extend the lock for another ``ttl_ms``; False if this process lost it."""
        return bool(await self._renew(keys=[keys.SWEEPER_LOCK], args=[self.owner, self.ttl_ms]))

    async def release(self) -> None:
        """Free the lock, if this process still holds it."""
        await self._release(keys=[keys.SWEEPER_LOCK], args=[self.owner])
