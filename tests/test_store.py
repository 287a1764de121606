"""The Redis store against a real redis-server: atomic decisions, thread queues, leases.

The store gets a client without ``decode_responses``, as the bot builds it, so every value
comes back as bytes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.core.approval import (
    ApprovalRequest,
    Auto,
    Decision,
    Edit,
    MessageRef,
    Requester,
    Resume,
    Status,
    ThreadRef,
    ToolCall,
    new_approval_id,
)
from bot.core.policy import Approvers, Gate
from bot.errors import AlreadyDecided, ApprovalNotFound, StaleCard
from bot.storage import keys, record
from bot.storage.store import Action, Cast, Store
from bot.storage.thread_store import RUN_LEASE_S
from tests.approvals import build

THREAD = ThreadRef("T1", "D1", "1700000000.000100")


@pytest.fixture
async def store(redis_client: aioredis.Redis, redis_url: str) -> AsyncIterator[Store]:
    """A Store on the flushed database (``redis_client`` flushes it)."""
    client = aioredis.Redis.from_url(redis_url)
    yield Store(client)
    await client.aclose()


def approval(**changes: Any) -> ApprovalRequest:
    request = build(
        gate=changes.pop("gate", Gate((Approvers(channel="C0APPROVALS"),))),
        id=new_approval_id(),
        thread=THREAD,
        requester=Requester("UREQ", "Book me a flight to Zürich ✈", "https://x.slack.com/p1"),
        conversation_id="conv_1",
        calls=(
            ToolCall("call_1", "book_flight", '{"destination": "Zürich", "date": "2025-01-01"}'),
            ToolCall("call_2", "web_search", "not json", server_side=True),
        ),
        deferral={"conversation_id": "conv_1", "deferred_calls": [{"id": "call_1"}], "n": 1.5},
        approvals_channel="C0APPROVALS",
        created_at=1_700_000_000.25,
        placeholder=MessageRef("D1", "1700000000.000200"),
    )
    return replace(request, **changes)


async def test_an_approval_round_trips_unchanged(store: Store) -> None:
    request = approval()
    await store.create_approval(request)
    assert await store.get_approval(request.id) == request
    assert await store.pending_ids() == [request.id]


async def test_a_decided_approval_round_trips_unchanged(store: Store) -> None:
    request = approval(
        status=Status.DENIED,
        decision=Decision(Status.DENIED, "UMANAGER", 1_700_000_100.5, "not <!here> today"),
        card=MessageRef("C0APPROVALS", "1700000000.000300"),
        resume=Resume.DEFERRED,
        outcome="The model asked again.",
        follow_up_id="f" * 24,
        extra={"note": "ünïcode", "n": [1, 2]},
    )
    await store.create_approval(request)
    assert await store.get_approval(request.id) == request


async def test_get_a_missing_approval(store: Store) -> None:
    with pytest.raises(ApprovalNotFound) as caught:
        await store.get_approval("nope")
    assert caught.value.approval_id == "nope"


async def vote(
    store: Store, request: ApprovalRequest, decision: Decision, calls: list[int] | None = None
) -> Cast:
    """One person's approval or veto of ``calls`` (default: every call a person decides)."""
    action = Action.APPROVE if decision.status is Status.APPROVED else Action.DENY
    revision = request.revision if action is Action.APPROVE else None  # a veto needs none
    return await store.cast(
        request, action, decision, request.asked if calls is None else calls, revision=revision
    )


async def test_an_approval_that_names_no_revision_is_refused(store: Store) -> None:
    request = approval()
    await store.create_approval(request)
    with pytest.raises(StaleCard):
        await store.cast(request, Action.APPROVE, Decision(Status.APPROVED, "UA", 1.0), [0])
    stored = await store.get_approval(request.id)
    assert stored.status is Status.PENDING and stored.voters == set()
    denied = await store.cast(request, Action.DENY, Decision(Status.DENIED, "UA", 2.0, "no"), [0])
    assert denied.calls("decided") == [0]


async def test_fifty_concurrent_decisions_have_one_winner(store: Store) -> None:
    request = approval()
    await store.create_approval(request)
    decisions = [
        Decision(Status.APPROVED if i % 2 else Status.DENIED, f"U{i:02d}", time.time())
        for i in range(50)
    ]
    results = await asyncio.gather(
        *(vote(store, request, decision) for decision in decisions), return_exceptions=True
    )
    winners = [result.request for result in results if isinstance(result, Cast)]
    losers = [result for result in results if isinstance(result, AlreadyDecided)]
    assert len(winners) == 1
    assert len(losers) == 49
    [winner] = winners
    assert winner.decision is not None
    assert {loser.decided_by for loser in losers} == {winner.decision.user_id}
    assert {loser.status for loser in losers} == {winner.status.value}
    stored = await store.get_approval(request.id)
    assert stored.status is winner.status
    assert stored.decision == winner.decision
    assert stored.decisions == winner.decisions
    assert await store.pending_ids() == []


async def test_a_later_decision_is_refused_naming_who_decided(store: Store) -> None:
    request = approval()
    await store.create_approval(request)
    await vote(store, request, Decision(Status.APPROVED, "UMANAGER", time.time()))
    with pytest.raises(AlreadyDecided) as caught:
        await vote(store, request, Decision(Status.DENIED, "UBOSS", time.time(), "no"))
    assert (caught.value.status, caught.value.decided_by) == ("approved", "UMANAGER")
    assert str(caught.value) == "already approved by UMANAGER"
    assert (await store.get_approval(request.id)).status is Status.APPROVED


async def test_deciding_a_missing_approval(store: Store) -> None:
    with pytest.raises(ApprovalNotFound):
        await vote(store, approval(), Decision(Status.APPROVED, "UMANAGER", time.time()))


def quorum_of_two() -> ApprovalRequest:
    return approval(gate=Gate((Approvers(channel="C0APPROVALS"),), quorum=2))


async def test_a_quorum_counts_each_approver_once_and_the_last_vote_decides(
    store: Store,
) -> None:
    request = quorum_of_two()
    await store.create_approval(request)
    first = await vote(store, request, Decision(Status.APPROVED, "UA", time.time()))
    assert not first.complete and first.calls("counted") == [0, 1]
    assert [vote.user_id for vote in first.request.decisions[0].votes] == ["UA"]
    again = await vote(store, request, Decision(Status.APPROVED, "UA", time.time()))
    assert again.calls("voted") == [0, 1] and not again.complete
    assert await store.pending_ids() == [request.id]
    second = await vote(store, request, Decision(Status.APPROVED, "UB", time.time()))
    assert second.complete and second.calls("decided") == [0, 1]
    stored = await store.get_approval(request.id)
    assert stored.status is Status.APPROVED
    assert [vote.user_id for vote in stored.decisions[1].votes] == ["UA", "UB"]
    assert stored.decision is not None and stored.decision.user_id == "UB"
    assert await store.pending_ids() == []


async def test_concurrent_approvals_on_a_quorum_are_each_counted_and_one_decides(
    store: Store,
) -> None:
    request = quorum_of_two()
    await store.create_approval(request)
    results = await asyncio.gather(
        *(
            vote(store, request, Decision(Status.APPROVED, f"U{i:02d}", time.time()))
            for i in range(20)
        ),
        return_exceptions=True,
    )
    casts = [result for result in results if isinstance(result, Cast)]
    assert len(casts) == 2  # the first two counted; the rest find it decided
    assert [cast.complete for cast in casts].count(True) == 1
    assert sum(isinstance(result, AlreadyDecided) for result in results) == 18
    stored = await store.get_approval(request.id)
    assert len(stored.decisions[0].votes) == 2 and len(stored.voters) == 2


async def test_one_deny_vetoes_a_quorum_in_progress(store: Store) -> None:
    request = quorum_of_two()
    await store.create_approval(request)
    await vote(store, request, Decision(Status.APPROVED, "UA", time.time()))
    veto = await vote(store, request, Decision(Status.DENIED, "UB", time.time(), "no"))
    assert veto.complete and veto.request.status is Status.DENIED
    stored = await store.get_approval(request.id)
    assert stored.status is Status.DENIED
    assert stored.decisions[0].reason == "no" and stored.decisions[0].user_id == "UB"


async def test_calls_are_decided_one_by_one_and_the_last_completes_a_mixed_request(
    store: Store,
) -> None:
    request = approval()
    await store.create_approval(request)
    first = await vote(store, request, Decision(Status.DENIED, "UA", 1.0, "not that"), [1])
    assert first.calls("decided") == [1] and not first.complete
    assert first.request.status is Status.PENDING and first.request.undecided == [0]
    assert await store.pending_ids() == [request.id]
    again = await vote(store, request, Decision(Status.APPROVED, "UB", 2.0), [1])
    assert again.calls("closed") == [1] and not again.complete
    last = await vote(store, request, Decision(Status.APPROVED, "UB", 3.0), [0])
    assert last.complete and last.request.status is Status.MIXED
    stored = await store.get_approval(request.id)
    assert [d.status for d in stored.decisions] == [Status.APPROVED, Status.DENIED]
    assert stored.status is Status.MIXED and stored.decision == Decision(Status.MIXED, "UB", 3.0)
    assert await store.pending_ids() == []


async def test_an_edit_restarts_the_quorum_bumps_the_revision_and_keeps_numbers_exact(
    store: Store,
) -> None:
    request = quorum_of_two()
    await store.create_approval(request)
    await vote(store, request, Decision(Status.APPROVED, "UA", 1.0), [0])
    arguments = '{"destination": "Zürich", "date": "2025-01-02", "seats": 12345678901234567}'
    edit = Edit(arguments, {"date": "2025-01-02", "seats": 12345678901234567}, "UB", 2.0)
    edited = await store.cast(
        request, Action.EDIT, Decision(Status.APPROVED, "UB", 2.0), [0], revision=0, edit=edit
    )
    assert edited.calls("counted") == [0]
    stored = await store.get_approval(request.id)
    assert stored.revision == 1
    assert stored.decisions[0].edit == edit  # stored as text: no float rounding of 17 digits
    assert [v.user_id for v in stored.decisions[0].votes] == ["UB"]  # UA approved the old ones
    assert stored.arguments_of(0) == arguments
    with pytest.raises(StaleCard):  # a click on the card as it was before the edit
        await store.cast(
            request, Action.APPROVE, Decision(Status.APPROVED, "UC", 3.0), [0], revision=0
        )
    done = await store.cast(
        stored, Action.APPROVE, Decision(Status.APPROVED, "UC", 3.0), [0], revision=1
    )
    assert done.calls("decided") == [0]
    assert (await store.get_approval(request.id)).decisions[0].status is Status.APPROVED


def message(n: int) -> dict[str, object]:
    return {"text": f"message {n}", "user": "UREQ", "ts": f"1700000000.{n:06d}"}


async def thread_jobs(redis_client: aioredis.Redis) -> list[str]:
    """The targets of the thread jobs waiting in the job stream."""
    entries = await redis_client.xrange(keys.JOBS)
    return [fields["target"] for _id, fields in entries if fields["kind"] == "thread"]


async def test_a_busy_thread_queues_messages_and_hands_them_out_in_order(
    store: Store, redis_client: aioredis.Redis
) -> None:
    first = await store.threads.accept_message(THREAD, message(1), "Ev1")
    assert first.outcome == "run"
    assert await thread_jobs(redis_client) == [THREAD.key]  # one job runs the thread
    assert await store.threads.take_message(THREAD.key, first=True) == (False, message(1))
    for n in (2, 3, 4):
        accepted = await store.threads.accept_message(THREAD, message(n), f"Ev{n}")
        assert (accepted.outcome, accepted.busy_state, accepted.position) == (
            "queued",
            "running",
            n - 1,
        )
    assert await thread_jobs(redis_client) == [THREAD.key]  # no second job for a busy thread
    assert await store.threads.queued_messages(THREAD) == [message(2), message(3), message(4)]
    for n in (2, 3, 4):
        assert await store.threads.take_message(THREAD.key, first=False) == (False, message(n))
    assert await store.threads.take_message(THREAD.key, first=False) is None
    # the thread is idle: the next message gets a job at once
    assert (await store.threads.accept_message(THREAD, message(5), "Ev5")).outcome == "run"
    assert await thread_jobs(redis_client) == [THREAD.key, THREAD.key]


async def test_a_message_left_running_by_a_dead_process_is_handed_out_again(
    store: Store,
) -> None:
    await store.threads.accept_message(THREAD, message(1), "Ev1")
    assert await store.threads.take_message(THREAD.key, first=True) == (False, message(1))
    # the process dies; the reclaimed job starts over and gets the same message, marked
    assert await store.threads.take_message(THREAD.key, first=True) == (True, message(1))


async def test_an_event_delivered_again_is_accepted_once(store: Store) -> None:
    outcomes = await asyncio.gather(
        *(store.threads.accept_message(THREAD, message(1), "EvSame") for _ in range(20))
    )
    assert sorted(a.outcome for a in outcomes) == ["duplicate"] * 19 + ["run"]
    assert await store.threads.queued_messages(THREAD) == [message(1)]
    # a message without an event id (a Retry) is never taken for a duplicate
    assert (await store.threads.accept_message(THREAD, message(2), None)).outcome == "queued"
    assert (await store.threads.accept_message(THREAD, message(2), None)).outcome == "queued"


async def test_a_reply_counts_only_in_a_thread_that_is_a_conversation(store: Store) -> None:
    ignored = await store.threads.accept_message(THREAD, message(1), "Ev1", needs_conversation=True)
    assert ignored.outcome == "ignored"
    assert await store.threads.queued_messages(THREAD) == []
    # ignored, so the event id stays free: the same event is not a duplicate later
    await store.threads.set_conversation_id(THREAD, "conv_1")
    taken = await store.threads.accept_message(THREAD, message(1), "Ev1", needs_conversation=True)
    assert taken.outcome == "run"


async def test_other_threads_are_not_held_up(store: Store) -> None:
    await store.threads.accept_message(THREAD, message(1), "Ev1")
    other = ThreadRef("T1", "D1", "1700000999.000100")
    assert (await store.threads.accept_message(other, message(2), "Ev2")).outcome == "run"


async def test_a_thread_waiting_for_approval_queues_messages_until_released(
    store: Store, redis_client: aioredis.Redis
) -> None:
    await store.threads.accept_message(THREAD, message(1), "Ev1")
    await store.threads.take_message(THREAD.key, first=True)
    await store.threads.park_thread(THREAD, "a" * 24)
    accepted = await store.threads.accept_message(THREAD, message(2), "Ev2")
    assert (accepted.outcome, accepted.busy_state, accepted.position) == ("queued", "waiting", 1)
    assert await thread_jobs(redis_client) == [THREAD.key]
    assert await store.threads.release_thread(THREAD)  # the resume is done: a job for message 2
    assert await thread_jobs(redis_client) == [THREAD.key, THREAD.key]
    assert await store.threads.take_message(THREAD.key, first=True) == (False, message(2))
    assert await store.threads.take_message(THREAD.key, first=False) is None
    assert not await store.threads.release_thread(THREAD)  # nothing queued: idle, no job


async def set_since(redis_client: aioredis.Redis, seconds_ago: int) -> None:
    await redis_client.hset(keys.thread(THREAD.key), "since", int(time.time()) - seconds_ago)


async def test_a_thread_left_running_past_the_lease_gets_a_new_job(
    store: Store, redis_client: aioredis.Redis
) -> None:
    await store.threads.accept_message(THREAD, message(1), "Ev1")
    await set_since(redis_client, RUN_LEASE_S + 5)
    assert (await store.threads.accept_message(THREAD, message(2), "Ev2")).outcome == "run"
    await set_since(redis_client, RUN_LEASE_S - 60)
    assert (await store.threads.accept_message(THREAD, message(3), "Ev3")).outcome == "queued"


async def test_a_resume_found_running_was_interrupted(store: Store) -> None:
    request = approval()
    await store.create_approval(request)
    assert await store.begin_resume(request.id) is Resume.WAITING
    assert await store.begin_resume(request.id) is Resume.RUNNING  # the first attempt died
    await store.update_approval(request, resume=Resume.DONE)
    assert await store.begin_resume(request.id) is Resume.DONE  # left alone
    assert (await store.get_approval(request.id)).resume is Resume.DONE
    assert await store.begin_resume("f" * 24) is None


async def test_a_failed_resume_is_requeued_once(store: Store, redis_client: aioredis.Redis) -> None:
    request = approval()
    await store.create_approval(request)
    assert not await store.requeue_resume(request.id)  # not failed
    await store.update_approval(request, resume=Resume.FAILED, outcome="Mistral failed.")
    requeued = await asyncio.gather(*(store.requeue_resume(request.id) for _ in range(5)))
    assert requeued.count(True) == 1
    # running: the retry reads the conversation's history before sending anything
    assert (await store.get_approval(request.id)).resume is Resume.RUNNING
    assert await redis_client.xlen(keys.JOBS) == 1


# -- schema 1, requests decided by policy, the requester's list ------------------------------
async def write_old_schema(
    redis_client: aioredis.Redis,
    request: ApprovalRequest,
    version: int,
    votes: list[dict[str, Any]] | None = None,
    **record_fields: Any,
) -> None:
    """Store ``request`` as bot versions before per-call decisions did: schema 1 (one
    channel, no gate, votes or verdicts) or 2 (one gate and one vote list for all calls)."""
    old = json.loads(record.encode(request))
    del old["decisions"], old["revision"]
    for call in old["calls"]:
        del call["gate"], call["parameters"]
        if version == 1:
            del call["auto"], call["rule"], call["note"]
    if version == 2:
        old["gate"] = Gate((Approvers(channel="C0APPROVALS"),), quorum=2).to_dict()
        old["votes"] = []
    old.update(record_fields)
    fields: dict[str, Any] = {
        "v": version,
        "record": json.dumps(old),
        "status": "pending",
        "decision": "",
        "card": "",
        "resume": "waiting",
        "outcome": "",
        "follow_up_id": "",
    }
    if version == 2:
        fields["votes"] = json.dumps(votes or [])
    await redis_client.hset(keys.approval(request.id), mapping=fields)
    await redis_client.zadd(keys.PENDING_ZSET, {request.id: request.created_at})


async def test_a_schema_1_approval_is_read_with_a_gate_from_its_channel(
    store: Store, redis_client: aioredis.Redis
) -> None:
    request = approval()
    await write_old_schema(redis_client, request, 1, allow_self_approval=True)
    stored = await store.get_approval(request.id)
    gate = Gate((Approvers(channel="C0APPROVALS"),), allow_self_approval=True)
    assert [call.gate for call in stored.calls] == [gate, gate]
    assert not gate.grantable
    assert stored.voters == set()
    assert stored == approval(id=request.id, gate=gate)
    assert await store.get_approvals(await store.pending_ids()) == [stored]


async def test_a_schema_1_approval_without_the_self_approval_flag_forbids_it(
    store: Store, redis_client: aioredis.Redis
) -> None:
    request = approval()
    await write_old_schema(redis_client, request, 1)
    stored = await store.get_approval(request.id)
    assert stored.gates == [Gate((Approvers(channel="C0APPROVALS"),), allow_self_approval=False)]


async def test_a_schema_1_approval_can_still_be_decided(
    store: Store, redis_client: aioredis.Redis
) -> None:
    request = approval()
    await write_old_schema(redis_client, request, 1)
    stored = await store.get_approval(request.id)
    cast = await vote(store, stored, Decision(Status.APPROVED, "UMANAGER", time.time()))
    assert cast.complete
    assert (await store.get_approval(request.id)).status is Status.APPROVED
    assert await store.pending_ids() == []


async def test_a_schema_2_approval_keeps_its_votes_and_finishes_its_quorum(
    store: Store, redis_client: aioredis.Redis
) -> None:
    request = approval()
    votes = [{"user_id": "UA", "at": 1.5}]
    await write_old_schema(redis_client, request, 2, votes=votes)
    stored = await store.get_approval(request.id)
    assert [call.gate and call.gate.quorum for call in stored.calls] == [2, 2]
    assert [[v.user_id for v in d.votes] for d in stored.decisions] == [["UA"], ["UA"]]
    cast = await vote(store, stored, Decision(Status.APPROVED, "UB", time.time()))
    assert cast.complete and cast.calls("decided") == [0, 1]
    assert (await store.get_approval(request.id)).status is Status.APPROVED


async def test_a_request_the_policy_decided_is_not_pending_but_is_listed_for_its_requester(
    store: Store,
) -> None:
    request = approval(
        calls=(
            ToolCall("call_1", "delete_file", "{}", auto=Auto.DENY, rule="rule 2", note="no"),
            ToolCall("call_2", "read_file", "{}", auto=Auto.ALLOW, rule="rule 1"),
        ),
        gate=None,
        status=Status.APPROVED,
        decision=Decision(Status.APPROVED, "", 1_700_000_000.5),
    )
    await store.create_approval(request)
    assert await store.pending_ids() == []
    assert await store.pending_count() == 0
    assert await store.recent_requests("UREQ") == [request]
    stored = await store.get_approval(request.id)
    assert stored == request
    assert stored.decision is not None and stored.decision.by_policy
    assert await store.recent_requests("UOTHER") == []


async def test_recent_requests_keeps_the_newest_fifty_newest_first(
    store: Store, redis_client: aioredis.Redis
) -> None:
    requests = [approval(created_at=1_700_000_000.0 + n) for n in range(keys.REQUESTS_BY_KEPT + 5)]
    for request in requests:
        await store.create_approval(request)
    newest_first = requests[::-1]
    assert await store.recent_requests("UREQ") == newest_first[:10]
    assert await store.recent_requests("UREQ", 100) == newest_first[: keys.REQUESTS_BY_KEPT]
    assert await redis_client.zcard(keys.requests_by("UREQ")) == keys.REQUESTS_BY_KEPT
    assert 0 < await redis_client.ttl(keys.requests_by("UREQ")) <= keys.REQUESTS_BY_TTL_S
    # the trimmed ones are still stored (and pending); only the requester's list forgets them
    assert len(await store.pending_ids()) == keys.REQUESTS_BY_KEPT + 5


async def test_recent_requests_are_per_requester(store: Store) -> None:
    mine = approval()
    theirs = approval(requester=Requester("UOTHER", "hi"), created_at=1_700_000_001.0)
    await store.create_approval(mine)
    await store.create_approval(theirs)
    assert await store.recent_requests("UREQ") == [mine]
    assert await store.recent_requests("UOTHER") == [theirs]


async def test_recent_requests_skip_requests_that_expired(
    store: Store, redis_client: aioredis.Redis
) -> None:
    old, new = approval(), approval(created_at=1_700_000_001.0)
    await store.create_approval(old)
    await store.create_approval(new)
    await redis_client.delete(keys.approval(old.id))
    assert await store.recent_requests("UREQ") == [new]


async def test_get_approvals_skips_missing_ids_and_keeps_the_order(store: Store) -> None:
    first, second, third = (approval(created_at=1_700_000_000.0 + n) for n in range(3))
    for request in (first, second, third):
        await store.create_approval(request)
    found = await store.get_approvals([third.id, "missing", first.id, "gone", second.id])
    assert found == [third, first, second]
    assert await store.get_approvals([]) == []
    assert await store.get_approvals(["missing"]) == []
