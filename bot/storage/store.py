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

from redis.commands.core import AsyncScript
from redis.exceptions import RedisError, ResponseError
from redis.typing import EncodableT, FieldT

from bot.core.approval import (
    ApprovalRequest,
    CallDecision,
    Decision,
    Edit,
    Resume,
    Status,
)
from bot.errors import AlreadyDecided, ApprovalNotFound, StaleCard, UpstreamError
from bot.storage import keys, record
from bot.storage.approval_scripts import (
    BEGIN_RESUME_SCRIPT,
    CAST_SCRIPT,
    EXPIRE_SCRIPT,
    REQUEUE_RESUME_SCRIPT,
)
from bot.storage.cache_store import CacheStore
from bot.storage.call_ledger import CallLedgerStore
from bot.storage.connections import RedisClient, decoded
from bot.storage.thread_store import ThreadStore

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


class VoteOutcome(StrEnum):
    """What a vote did to one call it named (the cast script's strings)."""

    COUNTED = "counted"  # one approval towards a quorum not reached yet
    DECIDED = "decided"  # this vote decided the call
    VOTED = "voted"  # this person had approved it already
    CLOSED = "closed"  # decided before


@dataclass(frozen=True)
class Cast:
    """The request after a vote; what the vote did to each call it named; and whether it
    completed the request."""

    request: ApprovalRequest
    outcomes: dict[int, VoteOutcome]
    complete: bool

    def calls(self, outcome: VoteOutcome) -> list[int]:
        return [index for index, what in self.outcomes.items() if what == outcome]


@dataclass(frozen=True)
class Backlog:
    """The work waiting in Redis: undecided requests, jobs in the stream (waiting or being
    run), and jobs some process has taken and not finished."""

    pending_requests: int
    job_queue_depth: int
    jobs_in_flight: int


class ApprovalStore:
    """Approval requests: their records, votes (one Lua script), expiry, schedules and the
    state of their resumes."""

    def __init__(self, client: RedisClient) -> None:
        self.redis = client
        self._cast = client.register_script(CAST_SCRIPT)
        self._expire = client.register_script(EXPIRE_SCRIPT)
        self._requeue = client.register_script(REQUEUE_RESUME_SCRIPT)
        self._begin_resume = client.register_script(BEGIN_RESUME_SCRIPT)

    @property
    def approval_scripts(self) -> tuple[AsyncScript, ...]:
        return (self._cast, self._expire, self._requeue, self._begin_resume)

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
        outcome = [decoded(part) for part in result]
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
        outcomes = {
            call: VoteOutcome(what)
            for call, what in zip(calls, json.loads(outcome[1]), strict=True)
        }
        return Cast(updated, outcomes, complete=status is not Status.PENDING)

    async def recent_requests(self, user_id: str, limit: int = 10) -> list[ApprovalRequest]:
        """``user_id``'s newest requests, newest first."""
        ids = await self.redis.zrevrange(keys.requests_by(user_id), 0, limit - 1)
        return await self.get_approvals([decoded(i) for i in ids])

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
        found = decoded(await self._begin_resume(keys=[keys.approval(approval_id)]))
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
        if decoded(result[0]) != "expired":
            return None
        return await self.get_approval(approval_id)

    async def due(self, schedule: str, now: float, limit: int = 100) -> list[str]:
        """Ids in one of the schedules (``keys.*_ZSET``) due by ``now``, soonest first."""
        members = await self.redis.zrangebyscore(schedule, "-inf", now, start=0, num=limit)
        return [decoded(member) for member in members]

    async def reschedule(self, schedule: str, approval_id: str, at: float | None) -> None:
        """Next due time in ``schedule`` (None: take it off)."""
        if at is None:
            await self.redis.zrem(schedule, approval_id)
        else:
            await self.redis.zadd(schedule, {approval_id: at}, xx=True)

    async def pending_ids(self, start: int = 0, stop: int = -1) -> list[str]:
        """Undecided request ids, oldest first (``start``/``stop`` as in ZRANGE)."""
        members = await self.redis.zrange(keys.PENDING_ZSET, start, stop)
        return [decoded(member) for member in members]


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


def _fields(request: ApprovalRequest) -> dict[FieldT, EncodableT]:
    return {
        "v": keys.SCHEMA_VERSION,
        "record": record.encode(request),
        "status": request.status.value,
        "decision": _decision_json(request.decision) if request.decision else "",
        "decisions": json.dumps([d.to_dict() for d in request.decisions], ensure_ascii=False),
        "revision": request.revision,
        "card": record.ref_json(request.card),
        "card_link": request.card_link or "",
        "resume": request.resume.value,
        "outcome": request.outcome or "",
        "follow_up_id": request.follow_up_id or "",
    }


def _from_fields(raw: dict[Any, Any]) -> ApprovalRequest:
    """The request from its hash: the record, with the fields the scripts own laid over it."""
    fields = {decoded(k): decoded(v) for k, v in raw.items()}
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
    return record.from_dict(data)


def redis_error(error: Exception) -> UpstreamError:
    return UpstreamError("redis", f"Redis failed: {error}")


class Store(ApprovalStore):
    """The approval requests (this class), and beside them the store of each other concern,
    each owning its keys and Lua scripts: ``threads`` (threads and their queued messages),
    ``ledger`` (the at-most-once ledger of approved calls), ``caches`` (Slack lookups)."""

    def __init__(self, client: RedisClient) -> None:
        super().__init__(client)
        self.threads = ThreadStore(client)
        self.ledger = CallLedgerStore(client)
        self.caches = CacheStore(client)

    async def load_scripts(self) -> None:
        """Load the Lua scripts into Redis now, so that the first click does not pay for it
        (a Redis restarted since loads them again on first use, by itself)."""
        for script in (*self.approval_scripts, *self.threads.thread_scripts):
            await self.redis.script_load(script.script)

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (RedisError, OSError):
            return False
