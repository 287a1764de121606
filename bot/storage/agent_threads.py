"""Threads shown the way Slack shows AI apps, in Redis: the stream open in each thread, the
steps shown there, and the workspaces where Slack refuses the methods.

Kept here, not in a process, so that a resume run by another process (after a restart, or
on a worker) continues the same thread and shows no step twice."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from redis.commands.core import AsyncScript

from bot.core.approval import MessageRef, ThreadRef
from bot.core.steps import Step, StepState
from bot.storage import keys
from bot.storage.connections import RedisClient, decoded

SHOW_STEP_SCRIPT: Final = """
-- KEYS[1]: the thread's steps hash
-- ARGV[1]: the step's tool_call_id
-- ARGV[2]: the step: its rank (one digit), '|', its JSON
-- ARGV[3]: TTL of the hash, seconds
-- returns 1 when the step is new or changed (and is now recorded as shown), else 0: the
--   same step, or one of a lower rank (a late "in progress" never hides "complete")
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old == ARGV[2] then
  return 0
end
if old and tonumber(string.sub(old, 1, 1)) > tonumber(string.sub(ARGV[2], 1, 1)) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

#: A step's rank: a step is never shown going back (see SHOW_STEP_SCRIPT).
_RANK: Final = {
    StepState.PENDING: 0,
    StepState.IN_PROGRESS: 1,
    StepState.COMPLETE: 2,
    StepState.ERROR: 2,
}


@dataclass(frozen=True)
class AgentThread:
    """A thread shown natively: whom its stream is for, and the stream open now."""

    requester: str
    team: str
    stream_ts: str | None
    titled: bool


class AgentThreadStore:
    """Each thread's stream and shown steps; each workspace's refusal, for a while."""

    def __init__(self, client: RedisClient) -> None:
        self.redis = client
        self._show_step: AsyncScript = client.register_script(SHOW_STEP_SCRIPT)

    async def native_off(self, team_id: str) -> str | None:
        """Why Slack refused the AI-app methods in this workspace lately, or None."""
        value = await self.redis.get(keys.native_off(team_id))
        return decoded(value) if value is not None else None

    async def set_native_off(self, team_id: str, error: str) -> None:
        await self.redis.set(keys.native_off(team_id), error, ex=keys.NATIVE_OFF_TTL_S)

    async def begin(self, thread: ThreadRef, requester: str, team: str) -> None:
        """The thread is shown natively from now on, for ``requester`` (of ``team``)."""
        key = keys.agent_thread(thread.key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"requester": requester, "team": team})
            pipe.expire(key, keys.THREAD_TTL_S)
            await pipe.execute()

    async def get(self, thread: ThreadRef) -> AgentThread | None:
        """The thread's state, or None when it is shown with plain messages."""
        found = await self.redis.hgetall(keys.agent_thread(thread.key))
        fields = {decoded(k): decoded(v) for k, v in found.items()}
        if "requester" not in fields:
            return None
        return AgentThread(
            requester=fields["requester"],
            team=fields.get("team", ""),
            stream_ts=fields.get("ts") or None,
            titled=fields.get("titled") == "1",
        )

    async def end(self, thread: ThreadRef) -> None:
        """The thread goes back to plain messages (Slack refused a method mid-way)."""
        await self.redis.delete(keys.agent_thread(thread.key))

    async def set_stream(self, thread: ThreadRef, ts: str | None) -> None:
        """The stream open in the thread now (None: none; the next run starts one)."""
        key = keys.agent_thread(thread.key)
        if ts is None:
            await self.redis.hdel(key, "ts")
        else:
            await self.redis.hset(key, "ts", ts)

    async def set_titled(self, thread: ThreadRef) -> bool:
        """Mark the thread titled; False when it was already (only the first message titles)."""
        return bool(await self.redis.hsetnx(keys.agent_thread(thread.key), "titled", "1"))

    async def set_thread_card(self, approval_id: str, ref: MessageRef) -> None:
        """The message with the request's buttons in its requester's thread."""
        value = json.dumps({"channel_id": ref.channel_id, "ts": ref.ts})
        await self.redis.set(keys.thread_card(approval_id), value, ex=keys.DECIDED_APPROVAL_TTL_S)

    async def thread_card(self, approval_id: str) -> MessageRef | None:
        value = await self.redis.get(keys.thread_card(approval_id))
        return MessageRef(**json.loads(decoded(value))) if value is not None else None

    async def claim_step(self, thread: ThreadRef, step: Step) -> bool:
        """Record ``step`` as shown in the thread; False when it was shown as it is already
        (by this process or another), so it must not be shown again."""
        shown = f"{_RANK[step.state]}|{json.dumps(step.to_dict(), sort_keys=True)}"
        key = keys.agent_steps(thread.key)
        return bool(
            await self._show_step(keys=[key], args=[step.tool_call_id, shown, keys.THREAD_TTL_S])
        )

    async def steps(self, thread: ThreadRef) -> dict[str, Step]:
        """Every step shown in the thread, by tool_call_id."""
        found = await self.redis.hgetall(keys.agent_steps(thread.key))
        return {
            decoded(k): Step.from_dict(json.loads(decoded(v).split("|", 1)[1]))
            for k, v in found.items()
        }
