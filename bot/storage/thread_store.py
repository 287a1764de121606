"""Conversation threads in Redis: the messages queued on a thread, whose turn it is (one Lua
script per step, so a message is run by one process, in order), the thread's conversation,
its "working" placeholder, and failed turns kept for Retry."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Final

from redis.commands.core import AsyncScript

from bot.core.approval import MessageRef, ThreadRef
from bot.storage import keys, record
from bot.storage.connections import RedisClient, decoded

#: A thread marked running for longer than this was left by a dead process.
RUN_LEASE_S: Final = 15 * 60

ACCEPT_MESSAGE_SCRIPT: Final = """
-- KEYS[1]: the thread hash
-- KEYS[2]: the thread's queue
-- KEYS[3]: the jobs stream
-- KEYS[4]: the event's "seen" key
-- ARGV[1]: the message, JSON
-- ARGV[2]: TTL of the thread's keys, seconds
-- ARGV[3]: now, seconds
-- ARGV[4]: run lease, seconds (a thread running longer was left by a dead process)
-- ARGV[5]: how long to remember the event id, seconds ('' when the event has none)
-- ARGV[6]: '1' when the message counts only in a thread that has a conversation
-- ARGV[7]: the thread key
-- returns {'ignored'} | {'duplicate'} | {'run'} (a thread job was enqueued)
--       | {'queued', state, position} (behind the thread's work or pending approval)
if ARGV[6] == '1' and redis.call('HEXISTS', KEYS[1], 'conversation_id') == 0 then
  return {'ignored'}
end
if ARGV[5] ~= '' and not redis.call('SET', KEYS[4], ARGV[3], 'NX', 'EX', ARGV[5]) then
  return {'duplicate'}
end
local position = redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[2])
local state = redis.call('HGET', KEYS[1], 'state')
local since = tonumber(redis.call('HGET', KEYS[1], 'since') or '0')
local stale = state == 'running' and since + tonumber(ARGV[4]) < tonumber(ARGV[3])
if (not state) or state == 'idle' or stale then
  redis.call('HSET', KEYS[1], 'state', 'running', 'since', ARGV[3])
  redis.call('XADD', KEYS[3], '*', 'kind', 'thread', 'target', ARGV[7], 'at', ARGV[3])
  return {'run'}
end
return {'queued', state, position}
"""

TAKE_MESSAGE_SCRIPT: Final = """
-- KEYS[1]: the thread hash
-- KEYS[2]: the thread's queue
-- ARGV[1]: now, seconds
-- ARGV[2]: 'first' when a thread job starts (a message left in progress runs again)
-- returns {'again', message} (first: a message left in progress, its process died)
--       | {'run', message} | {'idle'} (nothing queued: the thread is idle now)
if ARGV[2] == 'first' then
  local current = redis.call('HGET', KEYS[1], 'current')
  if current then
    return {'again', current}
  end
end
local message = redis.call('LPOP', KEYS[2])
if message then
  redis.call('HSET', KEYS[1], 'state', 'running', 'since', ARGV[1], 'current', message)
  redis.call('HDEL', KEYS[1], 'approval_id', 'placeholder')
  return {'run', message}
end
redis.call('HSET', KEYS[1], 'state', 'idle')
redis.call('HDEL', KEYS[1], 'approval_id', 'since', 'current', 'placeholder')
return {'idle'}
"""

RELEASE_THREAD_SCRIPT: Final = """
-- KEYS[1]: the thread hash
-- KEYS[2]: the thread's queue
-- KEYS[3]: the jobs stream
-- ARGV[1]: now, seconds
-- ARGV[2]: the thread key
-- After a resume: run the messages that queued meanwhile (a thread job), or go idle.
redis.call('HDEL', KEYS[1], 'approval_id', 'current')
if redis.call('LLEN', KEYS[2]) > 0 then
  redis.call('HSET', KEYS[1], 'state', 'running', 'since', ARGV[1])
  redis.call('XADD', KEYS[3], '*', 'kind', 'thread', 'target', ARGV[2], 'at', ARGV[1])
  return 1
end
redis.call('HSET', KEYS[1], 'state', 'idle')
redis.call('HDEL', KEYS[1], 'since')
return 0
"""


@dataclass(frozen=True)
class Accepted:
    """What became of a person's message: ``run`` (a thread job will run it), ``queued``
    behind the thread's work, ``duplicate`` (the event was seen before), or ``ignored``."""

    outcome: str
    busy_state: str | None = None  # "running" or "waiting" when queued
    position: int = 0


class ThreadStore:
    """Threads and their queued messages."""

    redis: RedisClient

    def __init__(self, client: RedisClient) -> None:
        self.redis = client
        self._accept = client.register_script(ACCEPT_MESSAGE_SCRIPT)
        self._take = client.register_script(TAKE_MESSAGE_SCRIPT)
        self._release = client.register_script(RELEASE_THREAD_SCRIPT)

    @property
    def thread_scripts(self) -> tuple[AsyncScript, ...]:
        return (self._accept, self._take, self._release)

    # -- threads -----------------------------------------------------------------------------
    async def accept_message(
        self,
        thread: ThreadRef,
        message: dict[str, Any],
        event_id: str | None,
        *,
        needs_conversation: bool = False,
    ) -> Accepted:
        """Queue a person's message on its thread, in one step with the event's de-duplication;
        a thread that was idle gets a job to run it. ``needs_conversation``: keep the message
        only if the thread already is a conversation (a reply in a channel thread)."""
        result = await self._accept(
            keys=[
                keys.thread(thread.key),
                keys.thread_queue(thread.key),
                keys.JOBS,
                keys.event_seen(event_id or "-"),
            ],
            args=[
                json.dumps(message),
                keys.THREAD_TTL_S,
                int(time.time()),
                RUN_LEASE_S,
                keys.EVENT_SEEN_TTL_S if event_id else "",
                "1" if needs_conversation else "",
                thread.key,
            ],
        )
        outcome = decoded(result[0])
        if outcome == "queued":
            return Accepted(outcome, decoded(result[1]), int(result[2]))
        return Accepted(outcome)

    async def take_message(
        self, thread_key: str, *, first: bool
    ) -> tuple[bool, dict[str, Any]] | None:
        """The thread's next message to run, and whether it ran before (its job was reclaimed
        from a process that died); None when the queue is empty and the thread went idle."""
        result = await self._take(
            keys=[keys.thread(thread_key), keys.thread_queue(thread_key)],
            args=[int(time.time()), "first" if first else ""],
        )
        if decoded(result[0]) == "idle":
            return None
        return decoded(result[0]) == "again", dict(json.loads(decoded(result[1])))

    async def release_thread(self, thread: ThreadRef) -> bool:
        """A resume is done: a job for the messages queued meanwhile (True), or idle."""
        queued = await self._release(
            keys=[keys.thread(thread.key), keys.thread_queue(thread.key), keys.JOBS],
            args=[int(time.time()), thread.key],
        )
        return bool(queued)

    async def park_thread(self, thread: ThreadRef, approval_id: str) -> None:
        """The thread waits for a decision: new messages queue until the resume is done."""
        key = keys.thread(thread.key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"state": "waiting", "approval_id": approval_id})
            pipe.hdel(key, "current")
            await pipe.execute()

    async def set_placeholder(self, thread: ThreadRef, ref: MessageRef) -> None:
        """The "working" message of the thread's current message (reused if it runs again)."""
        await self.redis.hset(keys.thread(thread.key), "placeholder", record.ref_json(ref))

    async def placeholder(self, thread: ThreadRef) -> MessageRef | None:
        value = await self.redis.hget(keys.thread(thread.key), "placeholder")
        return MessageRef(**json.loads(decoded(value))) if value else None

    async def conversation_id(self, thread: ThreadRef) -> str | None:
        value = await self.redis.hget(keys.thread(thread.key), "conversation_id")
        return None if value is None else decoded(value)

    async def set_conversation_id(self, thread: ThreadRef, conversation_id: str) -> None:
        key = keys.thread(thread.key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, "conversation_id", conversation_id)
            pipe.expire(key, keys.THREAD_TTL_S)
            await pipe.execute()

    async def queued_messages(self, thread: ThreadRef) -> list[dict[str, Any]]:
        items = await self.redis.lrange(keys.thread_queue(thread.key), 0, -1)
        return [json.loads(decoded(item)) for item in items]

    # -- failed turns (Retry) ----------------------------------------------------------------
    async def save_turn(self, turn_id: str, message: dict[str, Any]) -> None:
        await self.redis.set(keys.turn(turn_id), json.dumps(message), ex=keys.TURN_TTL_S)

    async def peek_turn(self, turn_id: str) -> dict[str, Any] | None:
        """A failed turn, left in place (see :meth:`take_turn`)."""
        value = await self.redis.get(keys.turn(turn_id))
        return None if value is None else dict(json.loads(decoded(value)))

    async def take_turn(self, turn_id: str) -> dict[str, Any] | None:
        """Remove and return a failed turn, so that one Retry click retries it once."""
        value = await self.redis.getdel(keys.turn(turn_id))
        return None if value is None else dict(json.loads(decoded(value)))
