"""GET /metrics on the bot's real HTTP server, after real flows: signed Slack requests, the
Slack and Mistral stand-ins, a real Redis. Values are read back with Prometheus's own parser."""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import Metrics
from bot.ops.http_server import SERVICES
from bot.storage import keys
from bot.storage.embedded_redis import free_port, redis_server_command
from bot.storage.store import Backlog, Store
from tests import agent_tools
from tests.helpers import (
    APPROVALS,
    MANAGER,
    SIGNING_SECRET,
    BotUnderTest,
    all_text,
    make_settings,
    served,
)
from tests.slack_sender import SlackSender
from tests.standins.mistral import (
    Entry,
    MistralStandIn,
    ModelTurn,
    function_call,
    travel_agent_script,
)
from tests.standins.slack import SlackStandIn

#: book_flight waits for a person; delete_note is denied by a rule; get_weather is held while
#: its rule's condition is evaluated, and allowed when it does not hold (a tool a rule allows
#: unconditionally is never held, so never decided).
METRICS_CONFIG = f"""\
model: mistral-medium-latest
approvals:
  channel: {APPROVALS}
policy:
  rules:
    - tools: ["get_weather"]
      when: 'args.city == "Atlantis"'
      decision: deny
    - tools: ["delete_*"]
      decision: deny
      reason: Notes are kept.
tools:
  functions:
    - ref: tests.agent_tools:get_weather
    - ref: tests.agent_tools:book_flight
      requires_confirmation: true
    - ref: tests.agent_tools:delete_note
"""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def office_script(turn: ModelTurn) -> list[Entry]:
    """The travel agent, and "delete note N" calls delete_note."""
    found = re.search(r"delete note (\w+)", turn.last_user_text() or "")
    if found and not turn.function_results():
        return [function_call("delete_note", {"note_id": found.group(1)})]
    return travel_agent_script(turn)


@pytest.fixture
def bot_config() -> str:
    return METRICS_CONFIG


@pytest.fixture(autouse=True)
def _model(mistral: MistralStandIn) -> None:
    mistral.script = office_script


async def scrape(url: str) -> Samples:
    """GET /metrics, checked to be Prometheus text, as {(sample name, labels): value}."""
    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 for a labelled series not yet seen (counters start there)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def changes(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def answered(bot: BotUnderTest, text: str) -> None:
    """Wait until the agent's answer containing ``text`` is shown, and the bot is idle."""

    def shown() -> bool:
        return any(
            bot.slack.count(method, lambda a: text in all_text(a))
            for method in ("chat.update", "chat.postMessage")
        )

    async with asyncio.timeout(20):
        while not shown():
            await asyncio.sleep(0.02)
    await bot.settled()


async def test_decisions_are_counted_by_outcome_and_timed(bot: BotUnderTest) -> None:
    before = await scrape(bot.url)
    assert value(before, "approval_bot_requests_total", outcome="approved") == 0  # shown at 0

    # a person approves
    await bot.send.mention("book a flight to Rodez")
    approved_id = await bot.approval_id(0)
    await bot.send.click("approval_approve", approved_id, user=MANAGER)
    await answered(bot, "Done: Booked Rodez")
    # a person denies (the Deny button opens a form for the reason)
    await bot.send.mention("book a flight to Oslo")
    denied_id = await bot.approval_id(1)
    await bot.send.click("approval_deny", denied_id, user=MANAGER)
    await bot.slack.wait_for_modal()
    await bot.send.submit_view(
        "approval_deny_modal",
        denied_id,
        user=MANAGER,
        values={"deny_reason": {"reason": {"type": "plain_text_input", "value": "Too pricey"}}},
    )
    await answered(bot, "Done: Too pricey")
    # the policy allows one call and denies another
    await bot.send.mention("weather in Lyon")
    await answered(bot, "Done: Sunny in Lyon")
    await bot.send.mention("delete note N1")
    await answered(bot, "Done: Notes are kept.")
    # one request stays pending
    await bot.send.mention("book a flight to Rome")
    await bot.approval_id(2)
    await bot.settled()

    after = await scrape(bot.url)
    requests = "approval_bot_requests_total"
    assert changes(before, after, requests, outcome="approved") == 1
    assert changes(before, after, requests, outcome="denied") == 1
    assert changes(before, after, requests, outcome="auto_allowed") == 1
    assert changes(before, after, requests, outcome="auto_denied") == 1
    assert changes(before, after, requests, outcome="expired") == 0
    assert agent_tools.runs_of("book_flight") == [{"destination": "Rodez", "date": "2026-12-01"}]

    # the two people's decisions, each observed once
    assert changes(before, after, "approval_bot_decision_seconds_count") == 2
    assert changes(before, after, "approval_bot_decision_seconds_bucket", le="+Inf") == 2
    # four conversations resumed: two decided by people, two by the policy
    assert changes(before, after, "approval_bot_resume_seconds_count", result="ok") == 4
    assert changes(before, after, "approval_bot_resume_seconds_count", result="failed") == 0

    # the gauges are Redis's state at scrape time
    assert await bot.redis.zcard(keys.PENDING_ZSET) == 1
    assert value(after, "approval_bot_pending_requests") == 1
    assert value(after, "approval_bot_job_queue_depth") == 0
    assert value(after, "approval_bot_jobs_in_flight") == 0

    # 5 mentions, 2 clicks and 1 form submitted; the first scrape is counted by the second
    http = "approval_bot_http_requests_total"
    assert changes(before, after, http, path="/slack/events", status="200") == 8
    assert value(after, http, path="/metrics", status="200") == 1
    assert value(after, "approval_bot_upstream_errors_total", service="mistral", status="500") == 0


async def test_a_click_waits_for_two_redis_round_trips_once_its_approvers_are_known(
    bot: BotUnderTest,
) -> None:
    """Read the request, record the vote with its jobs (one script): the answer to Slack
    waits for nothing else once the process knows who may decide (a cold cache costs a
    lookup and a write, and another process's cache one read)."""
    await bot.send.mention("book a flight to Rodez")
    rodez = await bot.approval_id(0)
    await bot.send.mention("book a flight to Oslo")
    oslo = await bot.approval_id(1)
    before = await scrape(bot.url)
    await bot.send.click("approval_approve", rodez, user=MANAGER)  # approvers cached in Redis
    await answered(bot, "Done: Booked Rodez")
    middle = await scrape(bot.url)
    await bot.send.click("approval_approve", oslo, user=MANAGER)  # known in the process
    await answered(bot, "Done: Booked Oslo")
    after = await scrape(bot.url)

    trips = "approval_bot_ack_redis_round_trips"
    kind = {"kind": "block_actions"}
    assert changes(before, middle, f"{trips}_count", **kind) == 1
    # the first click also asked Slack who is in the approvals channel, and cached the answer
    assert changes(before, middle, f"{trips}_sum", **kind) == 4
    # the second: read the request, record the vote (the approvers are known in the process)
    assert changes(middle, after, f"{trips}_sum", **kind) == 2
    assert changes(before, after, "approval_bot_ack_seconds_count", **kind) == 2


async def test_an_expiry_counts_each_asked_call_as_expired(bot: BotUnderTest) -> None:
    await bot.send.mention("book a flight to Rodez")
    approval_id = await bot.approval_id()
    await bot.settled()
    assert value(await scrape(bot.url), "approval_bot_pending_requests") == 1
    request = await bot.services.store.get_approval(approval_id)
    assert request.expires_at is not None
    before = await scrape(bot.url)

    swept = await bot.services.sweeper.sweep(now=request.expires_at + 1)
    assert swept.expired == [approval_id]
    await answered(bot, "Done: The request for approval expired")

    after = await scrape(bot.url)
    assert changes(before, after, "approval_bot_requests_total", outcome="expired") == 1
    assert changes(before, after, "approval_bot_decision_seconds_count") == 0  # nobody decided
    assert value(after, "approval_bot_pending_requests") == 0


async def test_upstream_failures_are_counted_by_service_and_status(bot: BotUnderTest) -> None:
    before = await scrape(bot.url)
    bot.mistral.fail_next(500)
    # the "working…" placeholder is refused: the failure is posted instead of it
    bot.slack.fail_next("chat.postMessage", error="channel_not_found")
    await bot.send.mention("weather in Lyon")
    await answered(bot, "The model service (Mistral) failed (HTTP 500)")

    after = await scrape(bot.url)
    errors = "approval_bot_upstream_errors_total"
    assert changes(before, after, errors, service="mistral", status="500") == 1
    # Slack answers API errors with HTTP 200 and ok: false
    assert changes(before, after, errors, service="slack", status="200") == 1
    assert changes(before, after, errors, service="redis", status="none") == 0


async def test_a_resume_that_fails_upstream_is_timed_as_failed(bot: BotUnderTest) -> None:
    await bot.send.mention("book a flight to Rodez")
    approval_id = await bot.approval_id()
    await bot.settled()
    before = await scrape(bot.url)

    bot.mistral.fail_next(503)
    await bot.send.click("approval_approve", approval_id, user=MANAGER)
    await bot.slack.wait_for("chat.postMessage", lambda a: "could not continue" in all_text(a))
    await bot.settled()

    after = await scrape(bot.url)
    assert changes(before, after, "approval_bot_resume_seconds_count", result="failed") == 1
    assert changes(before, after, "approval_bot_resume_seconds_count", result="ok") == 0
    assert changes(before, after, "approval_bot_requests_total", outcome="approved") == 1
    errors = "approval_bot_upstream_errors_total"
    assert changes(before, after, errors, service="mistral", status="503") == 1


def test_each_metrics_object_counts_on_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.decided("approved", waited_s=12.0)
    sample = "approval_bot_requests_total"
    assert first.registry.get_sample_value(sample, {"outcome": "approved"}) == 1
    assert second.registry.get_sample_value(sample, {"outcome": "approved"}) == 0
    rendered = first.render().decode()
    assert 'approval_bot_decision_seconds_bucket{le="15.0"} 1.0' in rendered
    assert 'approval_bot_decision_seconds_bucket{le="5.0"} 0.0' in rendered


async def test_the_backlog_is_read_before_and_after_a_process_reads_jobs(
    redis_client: aioredis.Redis,
) -> None:
    store = Store(redis_client)
    assert await store.backlog() == Backlog(0, 0, 0)  # no stream, no group yet
    await redis_client.xadd(keys.JOBS, {"kind": "thread", "target": "T1:C1:1.0", "at": "0"})
    await redis_client.xadd(keys.JOBS, {"kind": "thread", "target": "T1:C1:2.0", "at": "0"})
    await redis_client.zadd(keys.PENDING_ZSET, {"a" * 24: 1.0})
    assert await store.backlog() == Backlog(1, 2, 0)  # a stream without its group
    await redis_client.xgroup_create(keys.JOBS, keys.JOBS_GROUP, id="0")
    await redis_client.xreadgroup(keys.JOBS_GROUP, "someone", {keys.JOBS: ">"}, count=1)
    assert await store.backlog() == Backlog(1, 2, 1)


# -- Redis gone at scrape time ---------------------------------------------------------------
@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own, which the test may stop."""
    port = free_port()
    process = subprocess.Popen(
        redis_server_command(tmp_path, port, persistent=False),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield f"redis://127.0.0.1:{port}/0", process
    if process.poll() is None:
        process.terminate()
    process.wait(timeout=10)


@pytest.fixture
async def bot_on_own_redis(
    own_redis: tuple[str, subprocess.Popen[bytes]],
    slack: SlackStandIn,
    mistral: MistralStandIn,
    config_path: Path,
) -> AsyncIterator[tuple[str, web.Application]]:
    url, _process = own_redis
    client = aioredis.Redis.from_url(url)
    async with asyncio.timeout(10):
        while True:
            try:
                await client.ping()
                break
            except (aioredis.ConnectionError, OSError):
                await asyncio.sleep(0.025)
    await client.aclose()
    async with served(make_settings(slack, mistral, url, config_path), config_path) as bot:
        yield bot


async def test_a_scrape_with_redis_down_succeeds_and_keeps_the_last_gauges(
    bot_on_own_redis: tuple[str, web.Application],
    own_redis: tuple[str, subprocess.Popen[bytes]],
    slack: SlackStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, app = bot_on_own_redis
    send = SlackSender(url, SIGNING_SECRET, slack)
    await send.mention("book a flight to Rodez")
    await slack.wait_for("chat.postMessage", lambda a: a.get("channel") == APPROVALS)
    await app[SERVICES].jobs.idle()
    assert value(await scrape(url), "approval_bot_pending_requests") == 1

    _url, redis_process = own_redis
    redis_process.terminate()
    redis_process.wait(timeout=10)
    caplog.set_level(logging.WARNING, logger="bot.ops.http_server")
    samples = await scrape(url)

    assert value(samples, "approval_bot_pending_requests") == 1  # as it was
    assert "backlog gauges keep their last values" in caplog.text

    # an event Redis cannot take is answered 503 (Slack sends it again), and counted
    mention = {
        "type": "app_mention",
        "user": "UREQ",
        "text": "<@UBOT> hello",
        "ts": "1700000000.000200",
        "channel": "C0GENERAL",
    }
    reply = await send.event(mention)
    assert reply.status == 503
    after = await scrape(url)
    errors = "approval_bot_upstream_errors_total"
    assert changes(samples, after, errors, service="redis", status="none") == 1
    http = "approval_bot_http_requests_total"
    assert changes(samples, after, http, path="/slack/events", status="503") == 1
