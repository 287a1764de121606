"""What the HTTP API keeps in Redis besides the requests themselves: idempotency keys, each
client's rate-limit window, and the schedule of webhook deliveries."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Final

from bot.storage import keys
from bot.storage.connections import RedisClient, decoded

#: Counts a request in the client's window and says how many it made there.
_HIT: Final = """
-- KEYS[1]: the client's counter for this window
-- ARGV[1]: the counter's time to live, in seconds
-- returns the count, this request included
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
"""

#: Deletes a lock only if its owner still holds it.
_UNLOCK: Final = """
-- KEYS[1]: the lock
-- ARGV[1]: the owner's token
-- returns 1 if the lock was deleted, 0 if another owner held it (or nobody did)
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class Claimed:
    """An idempotency key's request: its id, the fingerprint of the body it was made with,
    and whether this call made the claim (False: the key was used before)."""

    approval_id: str
    fingerprint: str
    new: bool


@dataclass(frozen=True)
class Delivery:
    """A webhook's delivery so far."""

    attempts: int
    first_at: float


class ApiStore:
    """Idempotency keys, rate-limit windows and webhook schedules."""

    def __init__(self, client: RedisClient) -> None:
        self.redis = client
        self._hit = client.register_script(_HIT)
        self._unlock = client.register_script(_UNLOCK)

    async def claim(
        self, client: str, idempotency_key: str, approval_id: str, fingerprint: str
    ) -> Claimed:
        """Claim ``idempotency_key`` for a new request ``approval_id``; the claim made
        before, if the key was used already (set-if-absent: two racing calls get one id).
        The claim lives ``API_IDEMPOTENCY_CLAIM_TTL_S`` until :meth:`keep` (the request is
        stored): a process that died while making it does not hold the key for a day."""
        key = keys.api_idempotency(client, _digest(idempotency_key))
        value = f"{approval_id}:{fingerprint}"
        if await self.redis.set(key, value, nx=True, ex=keys.API_IDEMPOTENCY_CLAIM_TTL_S):
            return Claimed(approval_id, fingerprint, True)
        found = decoded(await self.redis.get(key) or "")
        earlier_id, _, earlier_fingerprint = found.partition(":")
        return Claimed(earlier_id, earlier_fingerprint, False)

    async def keep(self, client: str, idempotency_key: str) -> None:
        """The key's request is stored: keep the key ``API_IDEMPOTENCY_TTL_S``."""
        key = keys.api_idempotency(client, _digest(idempotency_key))
        await self.redis.expire(key, keys.API_IDEMPOTENCY_TTL_S)

    async def release(self, client: str, idempotency_key: str) -> None:
        """Free a key whose request could not be made (the client may send it again)."""
        await self.redis.delete(keys.api_idempotency(client, _digest(idempotency_key)))

    async def hit(self, client: str, limit: int, now: float | None = None) -> float | None:
        """Count one request of ``client``; None when within ``limit`` a window, else the
        seconds until the window ends (the ``Retry-After``)."""
        now = time.time() if now is None else now
        window = int(now // keys.API_RATE_WINDOW_S)
        count = int(
            await self._hit(keys=[keys.api_rate(client, window)], args=[keys.API_RATE_WINDOW_S + 1])
        )
        if count <= limit:
            return None
        return (window + 1) * keys.API_RATE_WINDOW_S - now

    # -- webhooks ----------------------------------------------------------------------------
    async def schedule_webhook(self, approval_id: str, at: float) -> None:
        await self.redis.zadd(keys.WEBHOOKS_DUE_ZSET, {approval_id: at})

    async def webhooks_due(self, now: float, limit: int) -> list[str]:
        """Deliveries due by ``now``, each moved ``WEBHOOK_IN_FLIGHT_S`` on (so that the next
        sweep does not offer it again while a job delivers it)."""
        members = await self.redis.zrangebyscore(
            keys.WEBHOOKS_DUE_ZSET, "-inf", now, start=0, num=limit
        )
        due = [decoded(member) for member in members]
        if due:
            later = now + keys.WEBHOOK_IN_FLIGHT_S
            await self.redis.zadd(keys.WEBHOOKS_DUE_ZSET, dict.fromkeys(due, later), xx=True)
        return due

    async def attempt(self, approval_id: str, now: float) -> Delivery:
        """Count one delivery attempt; the attempts so far and when the first was made."""
        key = keys.webhook_state(approval_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "first_at", repr(now))
            pipe.hincrby(key, "attempts", 1)
            pipe.hget(key, "first_at")
            pipe.expire(key, keys.WEBHOOK_STATE_TTL_S)
            _, attempts, first_at, _ = await pipe.execute()
        return Delivery(int(attempts), float(decoded(first_at)))

    async def webhook_finished(self, approval_id: str) -> None:
        """Delivered, or given up: no more attempts."""
        await self.redis.zrem(keys.WEBHOOKS_DUE_ZSET, approval_id)

    async def lock_webhook(self, approval_id: str, owner: str) -> bool:
        """Take the delivery of ``approval_id`` (False: another job is delivering it)."""
        key = keys.webhook_lock(approval_id)
        return bool(await self.redis.set(key, owner, nx=True, px=keys.WEBHOOK_LOCK_TTL_MS))

    async def unlock_webhook(self, approval_id: str, owner: str) -> None:
        await self._unlock(keys=[keys.webhook_lock(approval_id)], args=[owner])

    async def webhook_pending(self, approval_id: str) -> bool:
        return await self.redis.zscore(keys.WEBHOOKS_DUE_ZSET, approval_id) is not None


def _digest(idempotency_key: str) -> str:
    """Keys are stored hashed: a client's key text never sits in Redis as it was sent."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()
