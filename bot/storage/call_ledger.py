"""The at-most-once ledger of approved calls (bot.mistral.tools.CallLedger): a call is marked
"executing" (set-if-absent) before it runs and its result kept by ``tool_call_id``."""

from __future__ import annotations

import time

from bot.storage import keys
from bot.storage.connections import RedisClient, decoded


class CallLedgerStore:
    """Results of approved calls, and which are running."""

    def __init__(self, client: RedisClient) -> None:
        self.redis = client

    # -- approved call results (tools.CallLedger) --------------------------------------------
    async def stored_result(self, tool_call_id: str) -> str | None:
        value = await self.redis.get(keys.call_result(tool_call_id))
        return None if value is None else decoded(value)

    async def store_result(self, tool_call_id: str, result: str) -> None:
        await self.redis.set(keys.call_result(tool_call_id), result, ex=keys.CALL_RESULT_TTL_S)

    async def begin_execution(self, tool_call_id: str) -> bool:
        """Mark the approved call as running; False if some process marked it before."""
        marked = await self.redis.set(
            keys.call_executing(tool_call_id), str(time.time()), nx=True, ex=keys.CALL_RESULT_TTL_S
        )
        return bool(marked)
