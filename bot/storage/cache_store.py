"""Short caches of what Slack says (channel and user group members), shared by every process;
each key and its TTL is in bot.storage.keys."""

from __future__ import annotations

import json
from typing import Any

from bot.storage.connections import RedisClient, decoded


class CacheStore:
    """JSON values cached under ``keys`` with a TTL."""

    def __init__(self, client: RedisClient) -> None:
        self.redis = client

    # -- Slack caches ------------------------------------------------------------------------
    async def cached(self, key: str) -> Any | None:
        """A JSON value cached under ``key`` (see ``bot.storage.keys``), or None."""
        value = await self.redis.get(key)
        return None if value is None else json.loads(decoded(value))

    async def cache(self, key: str, value: Any, ttl_s: int) -> None:
        await self.redis.set(key, json.dumps(value), ex=ttl_s)

    async def forget(self, *cache_keys: str) -> None:
        """Drop cached values (see ``bot.storage.keys``): the next read looks them up afresh."""
        await self.redis.delete(*cache_keys)
