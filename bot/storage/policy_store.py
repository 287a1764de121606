"""The policy's state in Redis: grants ("don't ask again") and admins' runtime overrides."""

from __future__ import annotations

import json
import math
import secrets
import time
from typing import Final

from bot.core.policy import Effect, Gate, Grant, Override, grant_scope
from bot.storage import keys
from bot.storage.connections import RedisClient, decoded

#: A Lua script rather than WATCH/MULTI: redis-py's asyncio cluster client cannot read a key
#: between WATCH and MULTI (its watched commands are not awaited in order).
DELETE_IF_EQUALS_SCRIPT: Final = """
-- KEYS[1]: a grant lookup (GRANT_FOR)
-- ARGV[1]: the grant id it must still hold to be deleted
-- returns 1 if deleted, 0 if it holds another grant (a newer one, which must stay) or none
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

#: Creates a grant once: a retried announce job finds its marker and creates nothing (not even
#: a grant revoked meanwhile). The ZADD comes first, so that a write Redis refuses leaves
#: nothing behind (a script is not rolled back).
CREATE_GRANT_SCRIPT: Final = """
-- KEYS[1]: the grant's marker (GRANT_MADE)
-- KEYS[2]: the grant (GRANT)
-- KEYS[3]: its lookup (GRANT_FOR)
-- KEYS[4]: grant ids by expiry (GRANTS_ZSET)
-- ARGV[1]: the grant id
-- ARGV[2]: the grant as JSON
-- ARGV[3]: seconds it has left
-- ARGV[4]: when it expires (Unix seconds)
-- ARGV[5]: seconds the marker is kept
-- returns 1 when created now, 0 when it was created before
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[3])
redis.call('SET', KEYS[1], '1', 'EX', ARGV[5])
return 1
"""


class PolicyStore:
    """Grants and overrides. Grants expire with Redis TTLs; overrides stay until reset."""

    def __init__(self, client: RedisClient) -> None:
        self.redis = client
        self._delete_if = client.register_script(DELETE_IF_EQUALS_SCRIPT)
        self._create_grant = client.register_script(CREATE_GRANT_SCRIPT)

    # -- overrides ---------------------------------------------------------------------------
    async def overrides(self) -> list[Override]:
        raw = await self.redis.hgetall(keys.OVERRIDES)
        found = []
        for tool, value in raw.items():
            data = json.loads(decoded(value))
            found.append(Override(decoded(tool), Effect(data["effect"]), data["by"], data["at"]))
        return sorted(found, key=lambda o: o.tool)

    async def set_override(self, override: Override) -> None:
        value = {"effect": override.effect.value, "by": override.by, "at": override.at}
        await self.redis.hset(keys.OVERRIDES, override.tool, json.dumps(value))

    async def reset_override(self, tool: str) -> bool:
        """Remove the override for ``tool``; False if there was none."""
        return bool(await self.redis.hdel(keys.OVERRIDES, tool))

    # -- grants ------------------------------------------------------------------------------
    async def create_grant(
        self,
        *,
        tool: str,
        requester_id: str,
        arguments: str | None,
        created_by: str,
        duration_s: int,
        approval_id: str,
        gate: Gate,
        grant_id: str | None = None,
        created_at: float | None = None,
    ) -> Grant | None:
        """A grant for calls of ``tool`` by ``requester_id`` that ``gate``'s rule governs,
        from ``created_at`` (default: now) for ``duration_s``.

        ``grant_id`` (deterministic, from a job) makes it idempotent: the same id again
        creates nothing and returns the same grant. None when it has expired already."""
        now = time.time()
        created_at = now if created_at is None else created_at
        grant = Grant(
            id=grant_id or secrets.token_hex(6),
            tool=tool,
            requester_id=requester_id,
            arguments=arguments,
            created_by=created_by,
            created_at=created_at,
            expires_at=created_at + duration_s,
            approval_id=approval_id,
            rule=gate.rule,
            gate=gate.fingerprint,
        )
        left_s = math.ceil(grant.expires_at - now)
        if left_s <= 0:
            return None
        await self._create_grant(
            keys=[
                keys.grant_made(grant.id),
                keys.grant(grant.id),
                keys.grant_for(requester_id, grant.gate, tool, grant.scope),
                keys.GRANTS_ZSET,
            ],
            args=[
                grant.id,
                json.dumps(grant.to_dict()),
                left_s,
                grant.expires_at,
                keys.AUDIT_ENTRY_SEEN_TTL_S,
            ],
        )
        return grant

    async def find_grant(
        self, requester_id: str, tool: str, arguments: str, gate: Gate
    ) -> Grant | None:
        """A live grant given under ``gate`` covering this call: one for these exact
        arguments, or for any. Whether its giver may still decide is the caller's check."""
        for scope in (grant_scope(arguments), grant_scope(None)):
            lookup = keys.grant_for(requester_id, gate.fingerprint, tool, scope)
            grant_id = await self.redis.get(lookup)
            if grant_id is not None:
                grant = await self.get_grant(decoded(grant_id))
                if grant is not None:
                    return grant
        return None

    async def get_grant(self, grant_id: str) -> Grant | None:
        value = await self.redis.get(keys.grant(grant_id))
        return None if value is None else Grant.from_dict(json.loads(decoded(value)))

    async def grants(self) -> list[Grant]:
        """Every live grant, soonest to expire first."""
        await self.redis.zremrangebyscore(keys.GRANTS_ZSET, "-inf", time.time())
        ids = [decoded(i) for i in await self.redis.zrange(keys.GRANTS_ZSET, 0, -1)]
        if not ids:
            return []
        values = await self.redis.mget([keys.grant(i) for i in ids])
        return [Grant.from_dict(json.loads(decoded(v))) for v in values if v is not None]

    async def revoke_grant(self, grant_id: str) -> Grant | None:
        """Remove a grant; the grant as it was, or None if there is no such live grant."""
        grant = await self.get_grant(grant_id)
        if grant is None:
            await self.redis.zrem(keys.GRANTS_ZSET, grant_id)
            return None
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.grant(grant.id))
            # only the lookup that still points at this grant (a newer grant may own it)
            pipe.zrem(keys.GRANTS_ZSET, grant.id)
            await pipe.execute()
        lookup = keys.grant_for(grant.requester_id, grant.gate, grant.tool, grant.scope)
        await self._delete_if_equals(lookup, grant.id)
        return grant

    async def _delete_if_equals(self, key: str, value: str) -> None:
        await self._delete_if(keys=[key], args=[value])
