"""Durable decisions, at-most-once execution, expiry, reminders and upstream faults, end to
end: the bot's signed HTTP endpoint, the Slack and Mistral stand-ins, a real Redis."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.flow.directory import LOCAL_MAX_ENTRIES
from bot.flow.sweeper import Sweeper
from bot.mistral.tools import OUTCOME_UNKNOWN
from bot.ops.http_server import SERVICES
from bot.storage import keys
from bot.storage.audit import BOT
from bot.storage.embedded_redis import free_port
from bot.storage.jobs import Kind
from tests import agent_tools
from tests.helpers import (
    APPROVALS,
    CONFIG,
    MANAGER,
    OUTSIDER,
    SIGNING_SECRET,
    BotUnderTest,
    all_text,
    make_settings,
    served,
)
from tests.slack_sender import SlackSender
from tests.standins.mistral import MistralStandIn
from tests.standins.slack import SlackStandIn

BOOK = "book a flight to Rodez"


def appends(bot: BotUnderTest) -> list[dict[str, Any]]:
    return [r.body for r in bot.mistral.requests if r.path.count("/") == 3 and r.body is not None]


def function_results(bot: BotUnderTest) -> list[str]:
    return [
        str(entry.get("result"))
        for body in appends(bot)
        for entry in body.get("inputs", [])
        if isinstance(entry, dict) and entry.get("type") == "function.result"
    ]


async def audit_events(bot: BotUnderTest, approval_id: str) -> list[str]:
    entries = await bot.services.assistant.audit.entries()
    return [e["event"] for e in entries if e.get("approval_id") == approval_id]


def in_thread(bot: BotUnderTest, channel: str, thread_ts: str) -> list[str]:
    return [
        all_text(a)
        for a in bot.slack.calls_to("chat.postMessage")
        if a.get("channel") == channel and a.get("thread_ts") == thread_ts
    ]


# -- at-most-once, and what people are told --------------------------------------------------
async def test_an_approved_call_is_audited_executing_then_executed(bot: BotUnderTest) -> None:
    await bot.send.mention(BOOK)
    approval_id = await bot.approval_id()
    await bot.send.click("approval_approve", approval_id, user=MANAGER)
    await bot.slack.wait_for("chat.postMessage", lambda a: "Done: Booked" in all_text(a))
    await bot.settled()
    assert await audit_events(bot, approval_id) == [
        "requested",
        "approved",
        "executing",
        "executed",
    ]
    executed = [e for e in await bot.services.assistant.audit.entries() if e["event"] == "executed"]
    assert executed[0]["actor"] == BOT
    assert json.loads(executed[0]["arguments"]) == {"destination": "Rodez", "date": "2026-12-01"}


async def card_ts(bot: BotUnderTest, approval_id: str) -> str:
    for _ in range(200):
        card = (await bot.services.store.get_approval(approval_id)).card
        if card is not None:
            return card.ts
        await asyncio.sleep(0.01)
    raise AssertionError("the card was never stored")


async def test_a_call_left_executing_is_reported_unknown_on_thread_card_and_audit(
    bot: BotUnderTest,
) -> None:
    thread_ts = await bot.send.mention(BOOK)
    approval_id = await bot.approval_id()
    card = {"ts": await card_ts(bot, approval_id)}
    request = await bot.services.store.get_approval(approval_id)
    # a process marked the call as running, then died before storing its result
    await bot.redis.set(keys.call_executing(request.calls[0].tool_call_id), "1700000000.0")

    await bot.send.click("approval_approve", approval_id, user=MANAGER)
    await bot.slack.wait_for("chat.postMessage", lambda a: "outcome is unknown" in all_text(a))
    await bot.settled()

    assert agent_tools.runs_of("book_flight") == []  # not run again
    assert function_results(bot) == [OUTCOME_UNKNOWN]  # the model is told
    assert any("outcome is unknown" in t for t in in_thread(bot, "C0GENERAL", thread_ts))
    assert any("outcome is unknown" in t for t in in_thread(bot, APPROVALS, card["ts"]))
    assert "Outcome unknown for book_flight" in all_text(bot.card_state(card["ts"]))
    assert "outcome_unknown" in await audit_events(bot, approval_id)
    assert "executing" not in await audit_events(bot, approval_id)


async def test_an_interrupted_resume_that_reached_mistral_is_not_sent_again(
    bot: BotUnderTest,
) -> None:
    """The process died after Mistral took the result but before the bot recorded it: the
    job is run again, finds the result in the conversation's history, and sends nothing."""
    await bot.send.mention(BOOK)
    approval_id = await bot.approval_id()
    await bot.send.click("approval_approve", approval_id, user=MANAGER)
    await bot.slack.wait_for("chat.postMessage", lambda a: "Done: Booked" in all_text(a))
    await bot.settled()
    assert len(appends(bot)) == 1
    answers = bot.slack.count("chat.postMessage", lambda a: "Done: Booked" in all_text(a))
    answers += bot.slack.count("chat.update", lambda a: "Done: Booked" in all_text(a))

    # as the dead process left it: resume running, its job back in the stream
    await bot.redis.hset(keys.approval(approval_id), "resume", "running")
    await bot.services.jobs.enqueue(Kind.RESUME, approval_id)
    await bot.settled()

    assert len(appends(bot)) == 1  # nothing sent again
    assert len(agent_tools.runs_of("book_flight")) == 1
    history = [r for r in bot.mistral.requests if r.path.endswith("/history")]
    assert len(history) == 1
    again = bot.slack.count("chat.postMessage", lambda a: "Done: Booked" in all_text(a))
    again += bot.slack.count("chat.update", lambda a: "Done: Booked" in all_text(a))
    assert again == answers + 1  # the answer, recovered from the history, is shown
    stored = await bot.services.store.get_approval(approval_id)
    assert stored.resume.value == "done"


async def test_an_interrupted_resume_that_never_reached_mistral_is_sent_once(
    bot: BotUnderTest,
) -> None:
    await bot.send.mention(BOOK)
    approval_id = await bot.approval_id()
    await card_ts(bot, approval_id)
    await bot.settled()
    # as if an attempt had begun and died before sending anything
    await bot.redis.hset(keys.approval(approval_id), "resume", "running")
    await bot.send.click("approval_approve", approval_id, user=MANAGER)
    await bot.slack.wait_for("chat.postMessage", lambda a: "Done: Booked" in all_text(a))
    await bot.settled()
    assert len(agent_tools.runs_of("book_flight")) == 1
    assert len(appends(bot)) == 1
    assert len([r for r in bot.mistral.requests if r.path.endswith("/history")]) == 1


# -- expiry ------------------------------------------------------------------------------------
async def test_an_undecided_request_expires_and_the_conversation_resumes(
    bot: BotUnderTest,
) -> None:
    thread_ts = await bot.send.mention(BOOK)
    card = await bot.card()
    approval_id = await bot.approval_id()
    card["ts"] = await card_ts(bot, approval_id)
    request = await bot.services.store.get_approval(approval_id)
    assert request.expires_at == pytest.approx(request.created_at + 24 * 3600)
    assert "Expires" in all_text(card)

    early = await bot.services.sweeper.sweep(now=request.created_at + 3600)
    assert early.expired == []
    swept = await bot.services.sweeper.sweep(now=request.expires_at + 1)
    assert swept.expired == [approval_id]
    await bot.settled()

    # the model reads that nobody decided, which is not a denial; the tool never ran
    [result] = function_results(bot)
    assert "expired after 24 hours without a decision" in result
    assert "not a denial" in result
    assert agent_tools.runs_of("book_flight") == []
    # the card says so and has no buttons left
    shown = bot.card_state(card["ts"])
    assert "Expired, no decision" in all_text(shown)
    assert not [b for b in shown["blocks"] if b["type"] == "actions"]
    # the requester is told in their thread
    told = [t for t in in_thread(bot, "C0GENERAL", thread_ts) if "expired" in t]
    told += [
        all_text(a) for a in bot.slack.calls_to("chat.update") if "not a denial" in all_text(a)
    ]
    assert any("not a denial" in t for t in told)
    assert "expired" in await audit_events(bot, approval_id)
    stored = await bot.services.store.get_approval(approval_id)
    assert stored.status.value == "expired"
    assert await bot.redis.zscore(keys.EXPIRING_ZSET, approval_id) is None
    assert await bot.redis.zscore(keys.PENDING_ZSET, approval_id) is None

    # a click on the expired card changes nothing and gets a private note
    await bot.send.click("approval_approve", approval_id, user=MANAGER)
    note = await bot.slack.wait_for("chat.postEphemeral")
    assert "expired without a decision" in note["text"]
    await bot.settled()
    assert agent_tools.runs_of("book_flight") == []
    assert len(appends(bot)) == 1
    # a second sweep finds nothing more to do
    assert (await bot.services.sweeper.sweep(now=request.expires_at + 10)).expired == []


async def test_a_decided_request_never_expires(bot: BotUnderTest) -> None:
    await bot.send.mention(BOOK)
    approval_id = await bot.approval_id()
    request = await bot.services.store.get_approval(approval_id)
    await bot.send.click("approval_approve", approval_id, user=MANAGER)
    await bot.slack.wait_for("chat.postMessage", lambda a: "Done: Booked" in all_text(a))
    await bot.settled()
    assert request.expires_at is not None
    assert (await bot.services.sweeper.sweep(now=request.expires_at + 1)).expired == []
    assert (await bot.services.store.get_approval(approval_id)).status.value == "approved"


async def test_only_one_sweeper_runs_at_a_time(bot: BotUnderTest) -> None:
    await bot.redis.set(keys.SWEEPER_LOCK, "another-process", px=keys.SWEEPER_LOCK_TTL_MS)
    assert (await bot.services.sweeper.sweep()).locked
    await bot.redis.delete(keys.SWEEPER_LOCK)
    assert not (await bot.services.sweeper.sweep()).locked
    assert await bot.redis.get(keys.SWEEPER_LOCK) is None  # released after the sweep


async def test_a_long_sweep_keeps_its_lock_so_no_other_process_sweeps_meanwhile(
    bot: BotUnderTest,
) -> None:
    """A sweep that outlives its lock's first lifetime (a slow, rate-limited Slack) renews it:
    a second process's sweeper meanwhile finds it locked, and every request expires once."""
    for destination in ("Rodez", "Albi", "Millau"):
        await bot.send.mention(f"book a flight to {destination}")
    await wait_for_pending(bot, 3)
    await bot.settled()
    pending = await bot.services.store.get_approvals(await bot.services.store.pending_ids())
    later = max(r.expires_at or 0 for r in pending) + 1
    bot.slack.slowness["chat.update"] = 0.4  # each expiry updates its card and the thread

    first = Sweeper(bot.redis, bot.services.assistant, 60, lock_ttl_ms=500)
    other = Sweeper(bot.redis, bot.services.assistant, 60, lock_ttl_ms=500)
    sweeping = asyncio.create_task(first.sweep(now=later))
    await asyncio.sleep(0.1)
    tries = []
    while not sweeping.done():  # well past the lock's first 500 ms
        tries.append(await other.sweep(now=later))
        await asyncio.sleep(0.2)
    assert len(tries) >= 4
    assert all(t.locked for t in tries)
    assert sorted((await sweeping).expired) == sorted(r.id for r in pending)
    await bot.settled()
    assert await bot.redis.get(keys.SWEEPER_LOCK) is None
    for request in pending:
        assert (await bot.services.store.get_approval(request.id)).status.value == "expired"


async def wait_for_pending(bot: BotUnderTest, count: int) -> None:
    for _ in range(400):
        if len(await bot.services.store.pending_ids()) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} requests pending")


REMINDING = CONFIG.format(channel=APPROVALS, self_approval="false") + (
    """\
policy:
  defaults:
    expire_after: 3h
    remind_every: 1h
"""
)


@pytest.mark.parametrize("config_path", [REMINDING], indirect=True)
async def test_reminders_go_to_the_card_thread_until_the_request_expires(
    bot: BotUnderTest,
) -> None:
    await bot.send.mention(BOOK)
    approval_id = await bot.approval_id()
    card = {"ts": await card_ts(bot, approval_id)}
    request = await bot.services.store.get_approval(approval_id)
    assert request.expires_at == pytest.approx(request.created_at + 3 * 3600)
    start = request.created_at

    assert (await bot.services.sweeper.sweep(now=start + 1800)).reminded == []
    assert (await bot.services.sweeper.sweep(now=start + 3601)).reminded == [approval_id]
    assert (await bot.services.sweeper.sweep(now=start + 3700)).reminded == []  # not yet again
    assert (await bot.services.sweeper.sweep(now=start + 7202)).reminded == [approval_id]
    # the next one would come after the expiry: none
    assert (await bot.services.sweeper.sweep(now=start + 10700)).reminded == []
    reminders = [t for t in in_thread(bot, APPROVALS, card["ts"]) if "Reminder" in t]
    assert len(reminders) == 2
    assert f"<#{APPROVALS}>" in reminders[0] or "members of" in reminders[0]
    assert "still wait" in reminders[0]


# -- upstream faults ---------------------------------------------------------------------------
async def test_a_card_slack_refused_is_posted_by_the_sweeper(bot: BotUnderTest) -> None:
    # Slack fails the next two posts, each tried three times (an outage): the "working"
    # placeholder, then the card; the sweeper posts the card later
    bot.slack.fail_next("chat.postMessage", status=503, count=2 * 3)
    thread_ts = await bot.send.mention(BOOK)
    told = await bot.slack.wait_for("chat.postMessage", lambda a: "could not post" in all_text(a))
    assert "keep trying" in all_text(told)
    await bot.settled()
    [approval_id] = await bot.services.store.pending_ids()
    assert (await bot.services.store.get_approval(approval_id)).card is None

    request = await bot.services.store.get_approval(approval_id)
    swept = await bot.services.sweeper.sweep(now=request.created_at + keys.CARD_RETRY_S + 1)
    assert swept.posted == [approval_id]
    card = await bot.card()
    assert (await bot.services.store.get_approval(approval_id)).card is not None
    assert await bot.redis.zscore(keys.CARDS_DUE_ZSET, approval_id) is None
    # the request is decided as usual from the late card
    await bot.send.click("approval_approve", approval_id, user=MANAGER)
    await bot.slack.wait_for("chat.postMessage", lambda a: "Done: Booked" in all_text(a))
    await bot.settled()
    assert len(agent_tools.runs_of("book_flight")) == 1
    assert card["channel"] == APPROVALS
    assert any("could not post" in t for t in in_thread(bot, "C0GENERAL", thread_ts))


async def test_with_redis_down_events_get_503_and_readyz_fails(
    slack: SlackStandIn, mistral: MistralStandIn, config_path: Path
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = make_settings(slack, mistral, dead, config_path, sweep_interval_s=0.2)
    async with served(settings, config_path) as (url, app):
        send = SlackSender(url, SIGNING_SECRET, slack)
        reply = await send.event(
            {
                "type": "app_mention",
                "user": "UREQ",
                "text": f"<@UBOT> {BOOK}",
                "ts": "1700000000.000100",
                "channel": "C0GENERAL",
            }
        )
        assert reply.status == 503  # Slack delivers it again later
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/readyz") as ready:
                assert ready.status == 503
                assert (await ready.json())["redis"] == "unreachable"
            async with session.get(f"{url}/healthz") as health:
                assert health.status == 200  # the process is up, and keeps running
        await asyncio.sleep(0.5)  # the job runner and the sweeper retry without crashing
        assert app[SERVICES].jobs.busy == 0
        assert mistral.requests == []


# -- background loops --------------------------------------------------------------------------
async def readiness(bot: BotUnderTest) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(bot.url + "/readyz") as reply:
        return reply.status, await reply.json()


async def test_the_job_reader_outlives_a_broken_stream_and_readyz_reports_the_loops(
    bot: BotUnderTest,
) -> None:
    status, body = await readiness(bot)
    assert status == 200
    assert body["loops"] == {"jobs": "running", "sweeper": "running"}
    # the job stream replaced by something else (an operator's mistake): Redis refuses every
    # read; the loop logs it and goes on
    await bot.redis.delete(keys.JOBS)
    await bot.redis.set(keys.JOBS, "not a stream")
    await asyncio.sleep(1.5)
    status, body = await readiness(bot)
    assert status == 200 and body["loops"]["jobs"] == "running"

    await bot.redis.delete(keys.JOBS)  # repaired: work flows again
    await bot.send.mention(BOOK)
    await bot.card()


async def test_readyz_fails_when_a_background_loop_has_stopped(bot: BotUnderTest) -> None:
    sweeping = bot.services.sweeper._task
    assert sweeping is not None
    await asyncio.sleep(0.2)  # past its first sweep: it waits for the next one
    sweeping.cancel()  # as if it had died
    await asyncio.gather(sweeping, return_exceptions=True)
    status, body = await readiness(bot)
    assert status == 503
    assert body["loops"] == {"jobs": "running", "sweeper": "stopped"}


# -- bounded memory ----------------------------------------------------------------------------
async def test_the_process_keeps_a_bounded_number_of_member_lists(bot: BotUnderTest) -> None:
    directory = bot.services.assistant.directory
    for n in range(LOCAL_MAX_ENTRIES + 40):
        bot.slack.members[f"C{n:06d}"] = [MANAGER]
        assert await directory.channel_members(f"C{n:06d}") == {MANAGER}
    assert len(directory._local) == LOCAL_MAX_ENTRIES
    # the newest are kept
    assert keys.channel_members(f"C{LOCAL_MAX_ENTRIES + 39:06d}") in directory._local


async def test_past_its_limit_of_work_in_flight_the_bot_answers_503(bot: BotUnderTest) -> None:
    bot.services.background.limit = 1
    bot.slack.slowness["chat.postEphemeral"] = 1.0
    await bot.send.mention(BOOK)
    approval_id = await bot.approval_id()
    await bot.settled()
    # a refused click: its private note is still on its way (a slow Slack) after the answer
    first = await bot.send.click("approval_approve", approval_id, user=OUTSIDER)
    assert first.status == 200
    second = await bot.send.click("approval_approve", approval_id, user=MANAGER)
    assert second.status == 503  # Slack's "try again"; nothing was recorded
    await bot.settled()
    assert (await bot.services.store.get_approval(approval_id)).voters == set()
    bot.services.background.limit = 1000
    third = await bot.send.click("approval_approve", approval_id, user=MANAGER)
    assert third.status == 200
