"""The policy's state in Redis: grants ("don't ask again") and admins' runtime overrides."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import redis.asyncio as redis

from bot import keys
from bot.policy import Effect, Gate, Grant, Override, grant_scope


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class PolicyStore:
    """Grants and overrides. Grants expire with Redis TTLs; overrides stay until reset."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    # -- overrides ---------------------------------------------------------------------------
    async def overrides(self) -> list[Override]:
        raw = await self.redis.hgetall(keys.OVERRIDES)
        found = []
        for tool, value in raw.items():
            data = json.loads(_text(value))
            found.append(Override(_text(tool), Effect(data["effect"]), data["by"], data["at"]))
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
    ) -> Grant:
        """A grant for calls of ``tool`` by ``requester_id`` that ``gate``'s rule governs."""
        now = time.time()
        grant = Grant(
            id=secrets.token_hex(6),
            tool=tool,
            requester_id=requester_id,
            arguments=arguments,
            created_by=created_by,
            created_at=now,
            expires_at=now + duration_s,
            approval_id=approval_id,
            rule=gate.rule,
            gate=gate.fingerprint,
        )
        lookup = keys.grant_for(requester_id, grant.gate, tool, grant.scope)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.grant(grant.id), json.dumps(grant.to_dict()), ex=duration_s)
            pipe.set(lookup, grant.id, ex=duration_s)
            pipe.zadd(keys.GRANTS_ZSET, {grant.id: grant.expires_at})
            await pipe.execute()
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
                grant = await self.get_grant(_text(grant_id))
                if grant is not None:
                    return grant
        return None

    async def get_grant(self, grant_id: str) -> Grant | None:
        value = await self.redis.get(keys.grant(grant_id))
        return None if value is None else Grant.from_dict(json.loads(_text(value)))

    async def grants(self) -> list[Grant]:
        """Every live grant, soonest to expire first."""
        await self.redis.zremrangebyscore(keys.GRANTS_ZSET, "-inf", time.time())
        ids = [_text(i) for i in await self.redis.zrange(keys.GRANTS_ZSET, 0, -1)]
        if not ids:
            return []
        values = await self.redis.mget([keys.grant(i) for i in ids])
        return [Grant.from_dict(json.loads(_text(v))) for v in values if v is not None]

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
        # WATCH/MULTI: delete the key only if it still holds ``value``; a WatchError means a
        # newer grant took the key meanwhile, and that one must stay.
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                current = await pipe.get(key)
                if current is None or _text(current) != value:
                    await pipe.reset()  # type: ignore[no-untyped-call]
                    return
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.delete(key)
                await pipe.execute()
            except redis.WatchError:
                return
