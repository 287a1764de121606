"""A decision's audit is never lost nor doubled: when Redis refuses a write of the announce
job, the job is retried, and the retry writes each audit entry (and the grant) once.

Redis really refuses here: the test puts a key of the wrong type where the bot writes (the
audit stream, or the grants' index), so that the write fails with WRONGTYPE, as any refused
write would, then puts things back."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.storage import keys
from tests.helpers import APPROVALS, MANAGER, BotUnderTest, all_text

CONFIG = f"""\
model: mistral-medium-latest
approvals:
  channel: {APPROVALS}
policy:
  defaults: {{grant_durations: ["1h"]}}
  rules:
    - name: two pairs of eyes
      tools: ["book_flight"]
      when: "args.destination == 'Paris'"
      quorum: 2
    - tools: ["book_flight"]
tools:
  functions:
    - ref: tests.agent_tools:book_flight
      requires_confirmation: true
"""

JOB_FAILED = "failed; it will be retried"


@pytest.fixture
def bot_config() -> str:
    return CONFIG


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"job_lease_s": 5}  # a failed job is retried after 5 s


async def job_failed(caplog: pytest.LogCaptureFixture) -> None:
    async with asyncio.timeout(20):
        while not any(JOB_FAILED in record.getMessage() for record in caplog.records):
            await asyncio.sleep(0.02)


async def events_of(bot: BotUnderTest, approval_id: str) -> Counter[str]:
    entries = await bot.services.assistant.audit.entries()
    return Counter(e["event"] for e in entries if e.get("approval_id") == approval_id)


async def approved_on_metrics(bot: BotUnderTest) -> float:
    async with aiohttp.ClientSession() as session, session.get(bot.url + "/metrics") as response:
        text = await response.text()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "approval_bot_requests_total"
        and sample.labels.get("outcome") == "approved"
    )


async def test_an_audit_write_redis_refuses_is_retried_and_written_once(
    bot: BotUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    await bot.send.mention("book a flight to Paris")
    approval_id = await bot.approval_id()
    await bot.settled()
    aside = keys.AUDIT_STREAM + ":aside"
    await bot.redis.rename(keys.AUDIT_STREAM, aside)
    await bot.redis.set(keys.AUDIT_STREAM, "not a stream")  # XADD now fails: WRONGTYPE
    try:
        await bot.send.click("approval_approve", approval_id, user=MANAGER)
        await job_failed(caplog)
        assert bot.slack.count("chat.update", lambda a: "1 of 2 approvals" in all_text(a)) == 0
    finally:
        await bot.redis.delete(keys.AUDIT_STREAM)
        await bot.redis.rename(aside, keys.AUDIT_STREAM)

    await bot.slack.wait_for("chat.update", lambda a: "1 of 2 approvals" in all_text(a))
    await bot.settled()
    assert await events_of(bot, approval_id) == Counter(requested=1, approval_counted=1)


async def test_a_retried_announce_writes_its_entries_and_its_grant_once(
    bot: BotUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    await bot.send.mention("book a flight to Rodez")
    approval_id = await bot.approval_id()
    await bot.settled()
    # the approval's audit entry goes through; the grant after it is refused
    await bot.redis.set(keys.GRANTS_ZSET, "not a sorted set")
    try:
        await bot.send.click("approval_grant_3600", approval_id, user=MANAGER)
        await job_failed(caplog)
        assert (await events_of(bot, approval_id))["approved"] == 1
    finally:
        await bot.redis.delete(keys.GRANTS_ZSET)

    await bot.slack.wait_for("chat.postMessage", lambda a: "Done: Booked" in all_text(a))
    async with asyncio.timeout(20):
        while not (await events_of(bot, approval_id))["grant_created"]:
            await asyncio.sleep(0.05)
    await bot.settled()

    assert await events_of(bot, approval_id) == Counter(
        requested=1, approved=1, grant_created=1, executing=1, executed=1
    )
    grants = await bot.services.console.grants(MANAGER)
    assert [(g.tool, g.approval_id) for g in grants] == [("book_flight", approval_id)]
    assert await approved_on_metrics(bot) == 1  # counted once, not per attempt

    # the grant works: the next booking runs without a card
    await bot.send.mention("book a flight to Rodez")
    await bot.slack.wait_for("chat.postMessage", lambda a: "Allowed by a grant" in all_text(a))
    cards = [a for a in bot.slack.calls_to("chat.postMessage") if a.get("channel") == APPROVALS]
    assert len([c for c in cards if c.get("blocks")]) == 1
