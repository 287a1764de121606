"""The bot on a real three-node Redis Cluster (``REDIS_CLUSTER=true``), through its HTTP endpoint.

A cluster refuses any script or transaction whose keys span hash slots (CROSSSLOT), and the
client refuses to send one: every flow here fails if some key lacks the bot's hash tag.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster

from bot.metrics import Metrics
from bot.ops.cli import EXIT_CONFIG, main
from bot.ops.http_server import SERVICES
from bot.ops.settings import Settings
from bot.storage import keys
from bot.storage.connections import open_cluster
from bot.storage.jobs import Job, JobQueue
from tests import agent_tools
from tests.helpers import (
    APPROVALS,
    CONFIG,
    MANAGER,
    SIGNING_SECRET,
    BotUnderTest,
    all_text,
    button_value,
    make_settings,
    served,
)
from tests.redis_cluster import RedisClusterProcesses
from tests.slack_sender import SlackSender
from tests.standins.mistral import MistralStandIn
from tests.standins.slack import SlackStandIn

ADMIN = "UADMIN"
BOOK = "book a flight to Rodez"


@pytest.fixture(scope="session")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A URL naming one node of a real three-node cluster, for the session."""
    cluster = RedisClusterProcesses(tmp_path_factory.mktemp("cluster"))
    cluster.start()
    yield cluster.url
    cluster.stop()


@pytest.fixture
async def cluster_client(cluster_url: str) -> AsyncIterator[RedisCluster]:
    """A cluster client on a freshly flushed cluster (every primary)."""
    client = RedisCluster.from_url(cluster_url, decode_responses=True)
    await client.flushall(target_nodes=RedisCluster.PRIMARIES)
    yield client
    await client.aclose()


@pytest.fixture
def bot_config() -> str:
    config = CONFIG.format(channel=APPROVALS, self_approval="false")
    return config + f"admins: {{users: [{ADMIN}]}}\n"


@pytest.fixture
async def bot(
    cluster_client: RedisCluster,
    cluster_url: str,
    slack: SlackStandIn,
    mistral: MistralStandIn,
    config_path: Path,
) -> AsyncIterator[BotUnderTest]:
    """The bot's real HTTP server with REDIS_CLUSTER=true and REDIS_URL naming one node."""
    settings = make_settings(slack, mistral, cluster_url, config_path, redis_cluster=True)
    async with served(settings, config_path) as (url, app):
        under_test = BotUnderTest(
            url, SlackSender(url, SIGNING_SECRET, slack), app[SERVICES], slack, mistral,
            cluster_client,  # type: ignore[arg-type]
        )  # fmt: skip
        yield under_test
        await under_test.settled()


async def stored_slots(client: RedisCluster) -> dict[int, list[str]]:
    """Every key in the cluster, by hash slot."""
    found: dict[int, list[str]] = {}
    for key in await client.keys(target_nodes=RedisCluster.PRIMARIES):
        found.setdefault(client.keyslot(key), []).append(key)
    return found


async def test_a_click_on_a_cluster_runs_the_tool_once_and_the_answer_is_posted(
    bot: BotUnderTest, cluster_client: RedisCluster
) -> None:
    thread_ts = await bot.send.mention(BOOK)
    card = await bot.card()
    approval_id = button_value(card, "approval_approve")
    assert agent_tools.runs_of("book_flight") == []

    reply = await bot.send.click("approval_approve", approval_id, user=MANAGER)
    assert reply.status == 200
    answer = await bot.slack.wait_for(
        "chat.postMessage", lambda a: "Done: Booked Rodez" in all_text(a)
    )
    await bot.settled()

    assert answer["channel"] == "C0GENERAL"
    assert answer.get("thread_ts") == thread_ts
    assert agent_tools.runs_of("book_flight") == [{"destination": "Rodez", "date": "2026-12-01"}]
    shown = [
        all_text(bot.slack.messages[key])
        for key in bot.slack.messages
        if key[0] == APPROVALS and f"Approved* by <@{MANAGER}>" in all_text(bot.slack.messages[key])
    ]
    assert shown, "the card shows who approved"
    assert await cluster_client.zscore(keys.PENDING_ZSET, approval_id) is None
    # every key the bot wrote is in one hash slot: the one its hash tag names
    slots = await stored_slots(cluster_client)
    assert list(slots) == [cluster_client.keyslot(keys.PREFIX)], slots
    assert keys.approval(approval_id) in slots[cluster_client.keyslot(keys.PREFIX)]


async def test_a_grant_on_a_cluster_lets_the_next_call_run_until_an_admin_revokes_it(
    bot: BotUnderTest,
) -> None:
    await bot.send.mention(BOOK)
    approval_id = await bot.approval_id()
    await bot.send.click("approval_grant_3600", approval_id, user=MANAGER)
    await bot.slack.wait_for("chat.postMessage", lambda a: "Done: Booked Rodez" in all_text(a))
    await bot.settled()
    [grant] = await bot.services.console.grants(ADMIN)

    await bot.send.mention(BOOK)
    await bot.slack.wait_for("chat.postMessage", lambda a: "Allowed by a grant" in all_text(a))
    await bot.settled()
    assert len(agent_tools.runs_of("book_flight")) == 2
    assert bot.slack.count("chat.postMessage", lambda a: a.get("channel") == APPROVALS) == 1

    await bot.send.command("/approvals", f"revoke {grant.id}", user=ADMIN)
    await bot.slack.wait_for_response(lambda r: "revoked" in all_text(r))
    assert await bot.services.console.grants(ADMIN) == []
    await bot.send.mention(BOOK)
    await bot.card(1)  # asked again
    assert len(agent_tools.runs_of("book_flight")) == 2


async def test_the_sweeper_expires_a_request_on_a_cluster(bot: BotUnderTest) -> None:
    await bot.send.mention(BOOK)
    approval_id = await bot.approval_id()
    request = await bot.services.store.get_approval(approval_id)
    assert request.expires_at is not None

    swept = await bot.services.sweeper.sweep(now=request.expires_at + 1)
    assert swept.expired == [approval_id]
    await bot.settled()
    updated = [
        all_text(a) for a in bot.slack.calls_to("chat.update") if a.get("channel") == APPROVALS
    ]
    assert any("Expired, no decision" in text for text in updated)
    assert agent_tools.runs_of("book_flight") == []
    assert (await bot.services.sweeper.sweep(now=request.expires_at + 10)).expired == []


async def test_a_job_of_a_dead_process_is_reclaimed_on_a_cluster(
    cluster_url: str, cluster_client: RedisCluster
) -> None:
    # a process read the job, then died: it stays pending under that process's name
    await cluster_client.xgroup_create(keys.JOBS, keys.JOBS_GROUP, id="0", mkstream=True)
    await cluster_client.xadd(keys.JOBS, {"kind": "thread", "target": "T1:C1:1.0", "at": "0"})
    await cluster_client.xreadgroup(keys.JOBS_GROUP, "dead", {keys.JOBS: ">"}, count=1)
    ran: list[Job] = []

    async def handler(job: Job) -> None:
        ran.append(job)

    async def give_up(job: Job) -> None:
        raise AssertionError(f"gave up {job}")

    client = open_cluster(cluster_url, max_connections=8)
    queue = JobQueue(client, Metrics(), lease_ms=300, consumer="survivor", block_ms=50)
    queue.start(handler, give_up)
    try:
        async with asyncio.timeout(10):
            while not ran:
                await asyncio.sleep(0.01)
        await queue.idle()
    finally:
        await queue.close(timeout_s=0.1)
        await client.aclose()
    assert [(job.target, job.reclaimed) for job in ran] == [("T1:C1:1.0", True)]
    assert await cluster_client.xlen(keys.JOBS) == 0


def test_redis_cluster_without_redis_url_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    for name, value in {
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": "secret",
        "MISTRAL_API_KEY": "test-key",
        "REDIS_CLUSTER": "true",
    }.items():
        monkeypatch.setenv(name, value)

    assert main(["serve"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "REDIS_CLUSTER is true but REDIS_URL is not set" in err
    assert "set REDIS_URL to any node of the cluster" in err
    assert main(["audit", "export"]) == EXIT_CONFIG
    assert "REDIS_CLUSTER is true but REDIS_URL is not set" in capsys.readouterr().err
