"""Upgrading from the key names before the hash tag (``approval-bot:…``): every pending
request, grant, audit entry and queued job is still there after the new bot starts."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import redis.asyncio as aioredis

from bot.ops.audit_cli import export
from bot.ops.http_server import SERVICES
from bot.storage import keys
from bot.storage.key_migration import migrate_key_names, new_name
from tests import agent_tools
from tests.helpers import (
    APPROVALS,
    MANAGER,
    REQUESTER,
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
DONE = "Done: Booked Rodez"


async def to_legacy_names(client: aioredis.Redis) -> int:
    """Rename every key of the bot to the name it had before the hash tag."""
    renamed = 0
    async for key in client.scan_iter(match=f"{keys.PREFIX}:*"):
        await client.rename(key, keys.LEGACY_PREFIX + key.removeprefix(keys.PREFIX))
        renamed += 1
    return renamed


def answered_in(bot: BotUnderTest, thread_ts: str) -> int:
    return bot.slack.count(
        "chat.postMessage", lambda a: a.get("thread_ts") == thread_ts and DONE in all_text(a)
    )


def cards_posted(slack: SlackStandIn) -> int:
    return slack.count("chat.postMessage", lambda a: a.get("channel") == APPROVALS)


async def test_an_upgraded_deployment_keeps_its_requests_grants_audit_and_jobs(
    redis_client: aioredis.Redis,
    redis_url: str,
    slack: SlackStandIn,
    mistral: MistralStandIn,
    config_path: Path,
) -> None:
    settings = make_settings(slack, mistral, redis_url, config_path, job_lease_s=5)

    # Before the upgrade: three requests wait; the second is approved for an hour (a grant)
    async with served(settings, config_path) as (url, app):
        before = BotUnderTest(
            url, SlackSender(url, SIGNING_SECRET, slack), app[SERVICES], slack, mistral,
            redis_client,
        )  # fmt: skip
        waiting_ts = await before.send.mention(BOOK)
        granted_ts = await before.send.mention(BOOK)
        decided_ts = await before.send.mention(BOOK)
        waiting, granted, decided = [await before.approval_id(i) for i in range(3)]
        await before.send.click("approval_grant_3600", granted, user=MANAGER)
        await before.slack.wait_for("chat.postMessage", lambda a: answered_in(before, granted_ts))
        await before.settled()
    # ... and the third is approved on a process that runs no jobs, which then stops: its
    # resume stays in the job stream, taken by a consumer that is gone
    async with served(settings, config_path, start_background=False) as (url, app):
        sender = SlackSender(url, SIGNING_SECRET, slack)
        assert (await sender.click("approval_approve", decided, user=MANAGER)).status == 200
        while not app[SERVICES].background.idle():
            await asyncio.sleep(0.01)
    await redis_client.xreadgroup(keys.JOBS_GROUP, "gone", {keys.JOBS: ">"}, count=10)
    assert len(agent_tools.runs_of("book_flight")) == 1
    assert await to_legacy_names(redis_client) > 10
    assert await redis_client.keys(f"{keys.PREFIX}*") == []

    # The upgrade: a new process starts on the same Redis
    async with served(settings, config_path) as (url, app):
        after = BotUnderTest(
            url, SlackSender(url, SIGNING_SECRET, slack), app[SERVICES], slack, mistral,
            redis_client,
        )  # fmt: skip
        assert await redis_client.keys(f"{keys.LEGACY_PREFIX}:*") == []

        # the job taken by the process that is gone is taken over: the decided call runs
        await after.slack.wait_for(
            "chat.postMessage", lambda a: answered_in(after, decided_ts), timeout=20
        )
        # the waiting request's card still works
        await after.send.click("approval_approve", waiting, user=MANAGER)
        await after.slack.wait_for("chat.postMessage", lambda a: answered_in(after, waiting_ts))
        # the grant still holds: the same call runs without a card
        cards_before = cards_posted(slack)
        await after.send.mention(BOOK)
        await after.slack.wait_for(
            "chat.postMessage", lambda a: "Allowed by a grant" in all_text(a)
        )
        await after.settled()
        assert cards_posted(slack) == cards_before

    assert len(agent_tools.runs_of("book_flight")) == 4  # each call ran once
    for thread_ts in (waiting_ts, granted_ts, decided_ts):
        assert answered_in(after, thread_ts) == 1
    # the audit trail written before the upgrade is exported with what came after
    out = io.StringIO()
    await export(settings, None, None, out)
    entries = [json.loads(line) for line in out.getvalue().splitlines()]
    requested = {e["approval_id"] for e in entries if e["event"] == "requested"}
    assert {waiting, granted, decided} <= requested
    assert [e["requester"] for e in entries if e["event"] == "grant_created"] == [REQUESTER]
    assert any(e["event"] == "granted_run" for e in entries)


async def test_processes_starting_at_once_rename_each_key_once_and_keep_ttls(
    redis_client: aioredis.Redis, redis_url: str
) -> None:
    legacy = keys.LEGACY_PREFIX
    await redis_client.set(f"{legacy}:grant:g1", "{}", ex=3600)
    await redis_client.zadd(f"{legacy}:pending_zs", {"a1": 1.0})
    await redis_client.xadd(f"{legacy}:audit", {"event": "requested"})
    for n in range(1200):  # more than one batch
        await redis_client.set(f"{legacy}:event:{n}", "1", ex=3600)

    clients = [aioredis.Redis.from_url(redis_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate_key_names(c) for c in clients))
    finally:
        for client in clients:
            await client.aclose()

    assert sum(r.renamed for r in results) == 1203
    assert [r.kept for r in results] == [[], [], [], []]
    assert await redis_client.keys(f"{legacy}:*") == []
    assert 3500 < await redis_client.ttl(new_name(f"{legacy}:grant:g1")) <= 3600
    assert await redis_client.zscore(keys.PENDING_ZSET, "a1") == 1.0
    assert await redis_client.xlen(keys.AUDIT_STREAM) == 1
    assert await redis_client.get(keys.MIGRATION_LOCK) is None  # released


async def test_a_key_whose_new_name_is_taken_is_left_as_it_is(
    redis_client: aioredis.Redis,
) -> None:
    await redis_client.set(f"{keys.LEGACY_PREFIX}:turn:t1", "old")
    await redis_client.set(keys.turn("t1"), "new")
    migrated = await migrate_key_names(redis_client)
    assert migrated.kept == [f"{keys.LEGACY_PREFIX}:turn:t1"]
    assert await redis_client.get(keys.turn("t1")) == "new"
    assert await redis_client.get(f"{keys.LEGACY_PREFIX}:turn:t1") == "old"
