"""The Redis store: approvals, threads and their queues, caches.

Every multi-key transition is one Lua script, so that two bot processes (or two clicks)
racing on the same request see one outcome.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Final

from redis.exceptions import RedisError, ResponseError
from redis.typing import EncodableT, FieldT

from bot import keys
from bot.approval import (
    ApprovalRequest,
    CallDecision,
    Decision,
    Edit,
    MessageRef,
    Resume,
    Status,
    ThreadRef,
)
from bot.connections import RedisClient
from bot.errors import AlreadyDecided, ApprovalNotFound, StaleCard, UpstreamError

#: A thread marked running for longer than this was left by a dead process.
RUN_LEASE_S: Final = 15 * 60

CAST_SCRIPT: Final = """
-- KEYS[1]: the approval hash
-- KEYS[2]: the pending sorted set
-- KEYS[3], KEYS[4], KEYS[5]: the expiring, reminders and cards-due sorted sets
-- KEYS[6]: the jobs stream: a vote that changed something enqueues its announcement (the
--          audit, the card), and the vote that completes the request its resume
-- ARGV[1]: approval id
-- ARGV[2]: what the vote does: 'approve' (one approval towards each call's quorum),
--          'deny' (a veto: decides each call at once) or 'edit' (new arguments for one
--          call, and the editor's approval of them; earlier approvals of that call lapse)
-- ARGV[3]: the vote, JSON {user_id, at, reason}; ``at`` is text, which cjson keeps exact
-- ARGV[4]: the calls voted on, JSON [[index (0-based), quorum], ...]
-- ARGV[5]: the revision the voter saw, or '' when it does not matter: a veto only (an
--          approval or an edit without one is refused as stale: nobody approves arguments
--          they may not have seen)
-- ARGV[6]: with 'edit', the edit as JSON text (stored as is: cjson would round its numbers)
-- ARGV[7]: the calls' decisions as the caller read them, used when the hash has none yet
--          (a request stored by a bot version before per-call decisions)
-- ARGV[8]: the announcement's data, JSON (who, why, the audit events; see
--          Assistant.announce_job), or '' to announce nothing
-- returns {'missing'} | {'decided', status, decision JSON} (the request was decided before)
--       | {'stale', revision} (someone edited the arguments since the voter looked)
--       | {'cast', outcomes JSON, decisions JSON, request status}
--   outcomes, one per call voted on: 'counted' (short of its quorum), 'decided' (this vote
--   decided the call), 'voted' (this person had approved it already), 'closed' (decided before)
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'missing'}
end
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'pending' then
  return {'decided', status, redis.call('HGET', KEYS[1], 'decision') or ''}
end
local revision = redis.call('HGET', KEYS[1], 'revision') or '0'
if (ARGV[5] == '' and ARGV[2] ~= 'deny') or (ARGV[5] ~= '' and ARGV[5] ~= revision) then
  return {'stale', revision}
end
local decisions = cjson.decode(redis.call('HGET', KEYS[1], 'decisions') or ARGV[7])
local vote = cjson.decode(ARGV[3])
local outcomes = {}
local changed = false
for i, target in ipairs(cjson.decode(ARGV[4])) do
  local call = decisions[target[1] + 1]
  local outcome = 'closed'
  if call ~= nil and call.status == 'pending' then
    if ARGV[2] == 'deny' then
      call.status, call.user_id, call.at, call.reason = 'denied', vote.user_id, vote.at, vote.reason
      outcome = 'decided'
    else
      local votes = call.votes
      if ARGV[2] == 'edit' then
        call.edit = ARGV[6]
        votes = {}
        redis.call('HINCRBY', KEYS[1], 'revision', 1)
      end
      outcome = 'counted'
      for _, earlier in ipairs(votes) do
        if earlier.user_id == vote.user_id then
          outcome = 'voted'
        end
      end
      if outcome == 'counted' then
        table.insert(votes, {user_id = vote.user_id, at = vote.at})
        call.votes = votes
        if #votes >= target[2] then
          call.status, call.user_id, call.at = 'approved', vote.user_id, vote.at
          outcome = 'decided'
        end
      end
    end
    changed = changed or outcome ~= 'voted'
  end
  outcomes[i] = outcome
end
local approved, denied, pending = 0, 0, 0
for _, call in ipairs(decisions) do
  if call.status == 'approved' then
    approved = approved + 1
  elseif call.status == 'denied' then
    denied = denied + 1
  else
    pending = pending + 1
  end
end
local final = 'pending'
if pending == 0 then
  final = 'mixed'
  if denied == 0 then
    final = 'approved'
  elseif approved == 0 then
    final = 'denied'
  end
end
local encoded = cjson.encode(decisions)
if changed then
  redis.call('HSET', KEYS[1], 'decisions', encoded)
end
if changed and ARGV[8] ~= '' then
  local complete = '0'
  if final ~= 'pending' then
    complete = '1'
  end
  redis.call('XADD', KEYS[6], '*', 'kind', 'announce', 'target', ARGV[1], 'at', vote.at,
    'data', ARGV[8], 'outcomes', cjson.encode(outcomes), 'complete', complete)
end
if final ~= 'pending' then
  local decision = cjson.encode({status = final, user_id = vote.user_id, at = vote.at})
  redis.call('HSET', KEYS[1], 'status', final, 'decision', decision)
  for k = 2, 5 do
    redis.call('ZREM', KEYS[k], ARGV[1])
  end
  redis.call('XADD', KEYS[6], '*', 'kind', 'resume', 'target', ARGV[1], 'at', vote.at)
end
return {'cast', cjson.encode(outcomes), encoded, final}
"""

EXPIRE_SCRIPT: Final = """
-- KEYS[1]: the approval hash
-- KEYS[2..5]: the pending, expiring, reminders and cards-due sorted sets
-- KEYS[6]: the jobs stream
-- ARGV[1]: approval id
-- ARGV[2]: now, text (kept exact)
-- returns {'expired', decisions JSON} | {'gone'} (missing or decided: only unlisted)
local function unlist()
  for k = 2, 5 do
    redis.call('ZREM', KEYS[k], ARGV[1])
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HGET', KEYS[1], 'status') ~= 'pending' then
  unlist()
  return {'gone'}
end
local raw = redis.call('HGET', KEYS[1], 'decisions')
if not raw then
  return {'gone'}
end
local decisions = cjson.decode(raw)
for _, call in ipairs(decisions) do
  if call.status == 'pending' then
    call.status, call.at = 'expired', ARGV[2]
  end
end
local encoded = cjson.encode(decisions)
local decision = cjson.encode({status = 'expired', user_id = '', at = ARGV[2]})
redis.call('HSET', KEYS[1], 'status', 'expired', 'decision', decision, 'decisions', encoded)
unlist()
redis.call('XADD', KEYS[6], '*', 'kind', 'resume', 'target', ARGV[1], 'at', ARGV[2])
return {'expired', encoded}
"""

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

REQUEUE_RESUME_SCRIPT: Final = """
-- KEYS[1]: the approval hash
-- KEYS[2]: the jobs stream
-- ARGV[1]: approval id
-- ARGV[2]: now
-- A failed resume, retried: marked 'running', with a job, so that the retry reads the
-- conversation's history before sending anything (the failure may have come after Mistral
-- applied the decision: an append is not sent twice). Returns 0 if it was not failed.
if redis.call('HGET', KEYS[1], 'resume') ~= 'failed' then
  return 0
end
redis.call('HSET', KEYS[1], 'resume', 'running')
redis.call('XADD', KEYS[2], '*', 'kind', 'resume', 'target', ARGV[1], 'at', ARGV[2])
return 1
"""

BEGIN_RESUME_SCRIPT: Final = """
-- KEYS[1]: the approval hash
-- returns the resume state found; 'waiting' or 'running' (an attempt that died) become
-- 'running', any other state is left alone (the resume is done, or failed and not retried)
local found = redis.call('HGET', KEYS[1], 'resume')
if found == 'waiting' or found == 'running' then
  redis.call('HSET', KEYS[1], 'resume', 'running')
end
return found or ''
"""

#: The fields of an approval that ``Store.update_approval`` writes (the scripts own the rest).
_MUTABLE: Final = frozenset({"card", "card_link", "resume", "outcome", "follow_up_id"})

#: The sorted sets an undecided request is listed in; a decision or expiry unlists it.
_SCHEDULES: Final = (
    keys.PENDING_ZSET,
    keys.EXPIRING_ZSET,
    keys.REMINDERS_ZSET,
    keys.CARDS_DUE_ZSET,
)


class Action(StrEnum):
    """What a vote does to the calls it names."""

    APPROVE = "approve"
    DENY = "deny"
    EDIT = "edit"


@dataclass(frozen=True)
class Cast:
    """The request after a vote; what the vote did to each call it named ('counted',
    'decided', 'voted' or 'closed'); and whether it completed the request."""

    request: ApprovalRequest
    outcomes: dict[int, str]
    complete: bool

    def calls(self, outcome: str) -> list[int]:
        return [index for index, what in self.outcomes.items() if what == outcome]


@dataclass(frozen=True)
class Backlog:
    """The work waiting in Redis: undecided requests, jobs in the stream (waiting or being
    run), and jobs some process has taken and not finished."""

    pending_requests: int
    job_queue_depth: int
    jobs_in_flight: int


@dataclass(frozen=True)
class Accepted:
    """What became of a person's message: ``run`` (a thread job will run it), ``queued``
    behind the thread's work, ``duplicate`` (the event was seen before), or ``ignored``."""

    outcome: str
    busy_state: str | None = None  # "running" or "waiting" when queued
    position: int = 0


class Store:
    """All of the bot's state in Redis."""

    def __init__(self, client: RedisClient) -> None:
        self.redis = client
        self._cast = client.register_script(CAST_SCRIPT)
        self._expire = client.register_script(EXPIRE_SCRIPT)
        self._accept = client.register_script(ACCEPT_MESSAGE_SCRIPT)
        self._take = client.register_script(TAKE_MESSAGE_SCRIPT)
        self._release = client.register_script(RELEASE_THREAD_SCRIPT)
        self._requeue = client.register_script(REQUEUE_RESUME_SCRIPT)
        self._begin_resume = client.register_script(BEGIN_RESUME_SCRIPT)

    async def load_scripts(self) -> None:
        """Load the Lua scripts into Redis now, so that the first click does not pay for it
        (a Redis restarted since loads them again on first use, by itself)."""
        for script in (
            self._cast, self._expire, self._accept, self._take, self._release, self._requeue,
            self._begin_resume,
        ):  # fmt: skip
            await self.redis.script_load(script.script)

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (RedisError, OSError):
            return False

    # -- approvals ---------------------------------------------------------------------------
    async def create_approval(self, request: ApprovalRequest) -> None:
        """Store a new request (before anything about it is posted); list it as pending if a
        person must decide, and among its requester's requests."""
        key = keys.approval(request.id)
        by_requester = keys.requests_by(request.requester.user_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=_fields(request))
            if request.status is Status.PENDING:
                pipe.zadd(keys.PENDING_ZSET, {request.id: request.created_at})
                pipe.zadd(keys.CARDS_DUE_ZSET, {request.id: request.created_at + keys.CARD_RETRY_S})
                if request.expires_at is not None:
                    pipe.zadd(keys.EXPIRING_ZSET, {request.id: request.expires_at})
                every = request.remind_every_s
                if every is not None:
                    pipe.zadd(keys.REMINDERS_ZSET, {request.id: request.created_at + every})
            pipe.zadd(by_requester, {request.id: request.created_at})
            pipe.zremrangebyrank(by_requester, 0, -keys.REQUESTS_BY_KEPT - 1)
            pipe.expire(by_requester, keys.REQUESTS_BY_TTL_S)
            await pipe.execute()

    async def get_approval(self, approval_id: str) -> ApprovalRequest:
        fields = await self.redis.hgetall(keys.approval(approval_id))
        if not fields:
            raise ApprovalNotFound(approval_id)
        return _from_fields(fields)

    async def get_approvals(self, approval_ids: Sequence[str]) -> list[ApprovalRequest]:
        """The requests among ``approval_ids`` that still exist, in the same order."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for approval_id in approval_ids:
                pipe.hgetall(keys.approval(approval_id))
            rows = await pipe.execute()
        return [_from_fields(row) for row in rows if row]

    async def cast(
        self,
        request: ApprovalRequest,
        action: Action,
        vote: Decision,
        calls: Sequence[int],
        *,
        revision: int | None = None,
        edit: Edit | None = None,
        announcement: Mapping[str, Any] | None = None,
    ) -> Cast:
        """One person's approval, veto or edit of ``calls`` (indices into ``request.calls``).

        Atomic however many people click at once: each approver counts once per call, exactly
        one vote decides each call, and exactly one vote completes the request. ``revision``:
        the card the person saw; a vote on arguments edited since is refused (StaleCard).
        ``announcement``: enqueued with the vote, as an announce job, if the vote changed
        anything (so that an answered click is always audited and shown).
        Raises AlreadyDecided, ApprovalNotFound or StaleCard.
        """
        targets = [[index, _quorum(request, index)] for index in calls]
        result = await self._cast(
            keys=[keys.approval(request.id), *_SCHEDULES, keys.JOBS],
            args=[
                request.id,
                action.value,
                json.dumps({"user_id": vote.user_id, "at": repr(vote.at), "reason": vote.reason}),
                json.dumps(targets),
                "" if revision is None else str(revision),
                json.dumps(edit.to_dict(), ensure_ascii=False) if edit else "",
                json.dumps([d.to_dict() for d in request.decisions], ensure_ascii=False),
                json.dumps(announcement, ensure_ascii=False) if announcement else "",
            ],
        )
        outcome = [_text(part) for part in result]
        if outcome[0] == "missing":
            raise ApprovalNotFound(request.id)
        if outcome[0] == "decided":
            earlier = json.loads(outcome[2]) if outcome[2] else {}
            raise AlreadyDecided(request.id, outcome[1], earlier.get("user_id"))
        if outcome[0] == "stale":
            raise StaleCard(request.id, vote.user_id)
        decisions = [CallDecision.from_dict(d) for d in json.loads(outcome[2])]
        status = Status(outcome[3])
        updated = replace(
            request.with_decisions(decisions),
            status=status,
            decision=None if status is Status.PENDING else Decision(status, vote.user_id, vote.at),
            revision=request.revision + (1 if action is Action.EDIT else 0),
        )
        outcomes = dict(zip(calls, json.loads(outcome[1]), strict=True))
        return Cast(updated, outcomes, complete=status is not Status.PENDING)

    async def recent_requests(self, user_id: str, limit: int = 10) -> list[ApprovalRequest]:
        """``user_id``'s newest requests, newest first."""
        ids = await self.redis.zrevrange(keys.requests_by(user_id), 0, limit - 1)
        return await self.get_approvals([_text(i) for i in ids])

    async def pending_count(self) -> int:
        return int(await self.redis.zcard(keys.PENDING_ZSET))

    async def backlog(self) -> Backlog:
        """Undecided requests and the job stream's depth, in one round trip (for /metrics)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.PENDING_ZSET)
            pipe.xlen(keys.JOBS)
            pipe.xpending(keys.JOBS, keys.JOBS_GROUP)
            # not raising: a stream without its group yet (no process reads jobs) is no error
            pending, depth, taken = await pipe.execute(raise_on_error=False)
        for answer in (pending, depth):
            if isinstance(answer, Exception):
                raise answer
        if isinstance(taken, ResponseError) and "NOGROUP" in str(taken):
            taken = {"pending": 0}
        elif isinstance(taken, Exception):
            raise taken
        return Backlog(int(pending), int(depth), int(taken["pending"]))

    async def update_approval(self, request: ApprovalRequest, **changes: Any) -> ApprovalRequest:
        """Store changes to the mutable parts of ``request`` (card, card_link, resume,
        outcome, follow_up_id); only the fields named are written, so a stale copy of the
        request never undoes what another process wrote meanwhile."""
        unknown = set(changes) - _MUTABLE
        if unknown:
            raise ValueError(f"not a mutable approval field: {sorted(unknown)}")
        updated = replace(request, **changes)
        fields: dict[FieldT, EncodableT] = {
            k: v for k, v in _fields(updated).items() if k in changes
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.approval(request.id), mapping=fields)
            if updated.resume in (Resume.DONE, Resume.DEFERRED):
                pipe.expire(keys.approval(request.id), keys.DECIDED_APPROVAL_TTL_S)
            await pipe.execute()
        return updated

    async def begin_resume(self, approval_id: str) -> Resume | None:
        """Mark the request's resume running; the state found (None: the request is gone).
        Found ``running``, an earlier attempt died mid-way."""
        found = _text(await self._begin_resume(keys=[keys.approval(approval_id)]))
        return Resume(found) if found else None

    async def requeue_resume(self, approval_id: str) -> bool:
        """A failed resume, retried: enqueue it again. False if it had not failed."""
        moved = await self._requeue(
            keys=[keys.approval(approval_id), keys.JOBS], args=[approval_id, repr(time.time())]
        )
        return bool(moved)

    async def expire(self, approval_id: str, at: float) -> ApprovalRequest | None:
        """Expire the request's undecided calls and enqueue its resume; None if it was decided
        (or is gone) meanwhile."""
        result = await self._expire(
            keys=[keys.approval(approval_id), *_SCHEDULES, keys.JOBS],
            args=[approval_id, repr(at)],
        )
        if _text(result[0]) != "expired":
            return None
        return await self.get_approval(approval_id)

    async def due(self, schedule: str, now: float, limit: int = 100) -> list[str]:
        """Ids in one of the schedules (``keys.*_ZSET``) due by ``now``, soonest first."""
        members = await self.redis.zrangebyscore(schedule, "-inf", now, start=0, num=limit)
        return [_text(member) for member in members]

    async def reschedule(self, schedule: str, approval_id: str, at: float | None) -> None:
        """Next due time in ``schedule`` (None: take it off)."""
        if at is None:
            await self.redis.zrem(schedule, approval_id)
        else:
            await self.redis.zadd(schedule, {approval_id: at}, xx=True)

    async def pending_ids(self, start: int = 0, stop: int = -1) -> list[str]:
        """Undecided request ids, oldest first (``start``/``stop`` as in ZRANGE)."""
        members = await self.redis.zrange(keys.PENDING_ZSET, start, stop)
        return [_text(member) for member in members]

    # -- approved call results (tools.CallLedger) --------------------------------------------
    async def stored_result(self, tool_call_id: str) -> str | None:
        value = await self.redis.get(keys.call_result(tool_call_id))
        return None if value is None else _text(value)

    async def store_result(self, tool_call_id: str, result: str) -> None:
        await self.redis.set(keys.call_result(tool_call_id), result, ex=keys.CALL_RESULT_TTL_S)

    async def begin_execution(self, tool_call_id: str) -> bool:
        """Mark the approved call as running; False if some process marked it before."""
        marked = await self.redis.set(
            keys.call_executing(tool_call_id), str(time.time()), nx=True, ex=keys.CALL_RESULT_TTL_S
        )
        return bool(marked)

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
        outcome = _text(result[0])
        if outcome == "queued":
            return Accepted(outcome, _text(result[1]), int(result[2]))
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
        if _text(result[0]) == "idle":
            return None
        return _text(result[0]) == "again", dict(json.loads(_text(result[1])))

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
        await self.redis.hset(keys.thread(thread.key), "placeholder", _ref_json(ref))

    async def placeholder(self, thread: ThreadRef) -> MessageRef | None:
        value = await self.redis.hget(keys.thread(thread.key), "placeholder")
        return MessageRef(**json.loads(_text(value))) if value else None

    async def conversation_id(self, thread: ThreadRef) -> str | None:
        value = await self.redis.hget(keys.thread(thread.key), "conversation_id")
        return None if value is None else _text(value)

    async def set_conversation_id(self, thread: ThreadRef, conversation_id: str) -> None:
        key = keys.thread(thread.key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, "conversation_id", conversation_id)
            pipe.expire(key, keys.THREAD_TTL_S)
            await pipe.execute()

    async def queued_messages(self, thread: ThreadRef) -> list[dict[str, Any]]:
        items = await self.redis.lrange(keys.thread_queue(thread.key), 0, -1)
        return [json.loads(_text(item)) for item in items]

    # -- failed turns (Retry) ----------------------------------------------------------------
    async def save_turn(self, turn_id: str, message: dict[str, Any]) -> None:
        await self.redis.set(keys.turn(turn_id), json.dumps(message), ex=keys.TURN_TTL_S)

    async def peek_turn(self, turn_id: str) -> dict[str, Any] | None:
        """A failed turn, left in place (see :meth:`take_turn`)."""
        value = await self.redis.get(keys.turn(turn_id))
        return None if value is None else dict(json.loads(_text(value)))

    async def take_turn(self, turn_id: str) -> dict[str, Any] | None:
        """Remove and return a failed turn, so that one Retry click retries it once."""
        value = await self.redis.getdel(keys.turn(turn_id))
        return None if value is None else dict(json.loads(_text(value)))

    # -- Slack caches ------------------------------------------------------------------------
    async def cached(self, key: str) -> Any | None:
        """A JSON value cached under ``key`` (see ``bot.keys``), or None."""
        value = await self.redis.get(key)
        return None if value is None else json.loads(_text(value))

    async def cache(self, key: str, value: Any, ttl_s: int) -> None:
        await self.redis.set(key, json.dumps(value), ex=ttl_s)

    async def forget(self, *cache_keys: str) -> None:
        """Drop cached values (see ``bot.keys``): the next read looks them up afresh."""
        await self.redis.delete(*cache_keys)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _quorum(request: ApprovalRequest, index: int) -> int:
    gate = request.calls[index].gate
    return gate.quorum if gate else 1


def _decision_json(decision: Decision) -> str:
    return json.dumps(
        {
            "status": decision.status.value,
            "user_id": decision.user_id,
            "at": decision.at,
            "reason": decision.reason,
        }
    )


def _ref_json(ref: MessageRef | None) -> str:
    return json.dumps({"channel_id": ref.channel_id, "ts": ref.ts}) if ref else ""


def _fields(request: ApprovalRequest) -> dict[FieldT, EncodableT]:
    return {
        "v": keys.SCHEMA_VERSION,
        "record": request.to_json(),
        "status": request.status.value,
        "decision": _decision_json(request.decision) if request.decision else "",
        "decisions": json.dumps([d.to_dict() for d in request.decisions], ensure_ascii=False),
        "revision": request.revision,
        "card": _ref_json(request.card),
        "card_link": request.card_link or "",
        "resume": request.resume.value,
        "outcome": request.outcome or "",
        "follow_up_id": request.follow_up_id or "",
    }


def _from_fields(raw: dict[Any, Any]) -> ApprovalRequest:
    """The request from its hash: the record, with the fields the scripts own laid over it."""
    fields = {_text(k): _text(v) for k, v in raw.items()}
    data = json.loads(fields["record"])
    data["status"] = fields["status"]
    data["decision"] = json.loads(fields["decision"]) if fields.get("decision") else None
    if "decisions" in fields:
        data["decisions"] = json.loads(fields["decisions"])
        data["revision"] = int(fields.get("revision") or 0)
    else:  # schema 1 and 2: the votes of every call were one field
        data["votes"] = json.loads(fields["votes"]) if fields.get("votes") else []
    data["card"] = json.loads(fields["card"]) if fields.get("card") else None
    data["card_link"] = fields.get("card_link") or None
    data["resume"] = fields.get("resume") or Resume.WAITING.value
    data["outcome"] = fields.get("outcome") or None
    data["follow_up_id"] = fields.get("follow_up_id") or None
    return ApprovalRequest.from_dict(data)


def redis_error(error: RedisError | OSError) -> UpstreamError:
    return UpstreamError("redis", f"Redis failed: {error}")
