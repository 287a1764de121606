"""The bot on a Redis that Sentinel names (``REDIS_URL=redis+sentinel://host:port/service``):
a real primary and a real Sentinel (``redis-server --sentinel``) monitoring it. The URL names
only the Sentinel, so the bot reaches Redis only by asking it."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from bot.ops.http_server import SERVICES
from bot.storage.embedded_redis import find_redis_server, free_port, redis_server_command
from tests import agent_tools
from tests.helpers import (
    MANAGER,
    SIGNING_SECRET,
    BotUnderTest,
    all_text,
    button_value,
    make_settings,
    served,
)
from tests.slack_sender import SlackSender
from tests.standins.mistral import MistralStandIn
from tests.standins.slack import SlackStandIn

SERVICE = "approvals"


def wait_until(ready: Callable[[redis.Redis], object], port: int) -> None:
    client = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    try:
        for _ in range(400):
            try:
                if ready(client):
                    return
            except redis.RedisError:
                pass
            time.sleep(0.025)
        raise RuntimeError(f"nothing ready on port {port} within 10 s")
    finally:
        client.close()


@pytest.fixture(scope="module")
def sentinel_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A Sentinel monitoring a primary of its own; the Sentinel's port."""
    directory = tmp_path_factory.mktemp("sentinel")
    primary_port, port = free_port(), free_port()
    primary = subprocess.Popen(
        redis_server_command(directory, primary_port, persistent=False),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    config = directory / "sentinel.conf"  # Sentinel rewrites its config file: one of its own
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 1\n"
    )
    sentinel = subprocess.Popen(
        [find_redis_server(), str(config), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda c: c.ping(), primary_port)
        wait_until(
            lambda c: (
                c.execute_command("SENTINEL", "get-master-addr-by-name", SERVICE)
                == ["127.0.0.1", str(primary_port)]
            ),
            port,
        )
        yield port
    finally:
        for process in (sentinel, primary):
            process.terminate()
            process.wait(timeout=10)


async def test_a_click_through_sentinel_runs_the_tool_once_and_the_answer_is_posted(
    sentinel_port: int,
    slack: SlackStandIn,
    mistral: MistralStandIn,
    config_path: Path,
) -> None:
    url = f"redis+sentinel://127.0.0.1:{sentinel_port}/{SERVICE}/0"
    settings = make_settings(slack, mistral, url, config_path)
    async with served(settings, config_path) as (bot_url, app):
        bot = BotUnderTest(
            bot_url, SlackSender(bot_url, SIGNING_SECRET, slack), app[SERVICES], slack, mistral,
            app[SERVICES].store.redis,  # type: ignore[arg-type]
        )  # fmt: skip
        thread_ts = await bot.send.mention("book a flight to Rodez")
        approval_id = button_value(await bot.card(), "approval_approve")
        assert (await bot.send.click("approval_approve", approval_id, user=MANAGER)).status == 200
        answer = await slack.wait_for(
            "chat.postMessage", lambda a: "Done: Booked Rodez" in all_text(a)
        )
        await bot.settled()
    assert answer.get("thread_ts") == thread_ts
    assert agent_tools.runs_of("book_flight") == [{"destination": "Rodez", "date": "2026-12-01"}]
