"""Fixtures: a real Redis server, the Slack and Mistral stand-ins, and the bot's HTTP server.
What tests share besides fixtures is in tests/helpers.py."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from aiohttp import web

from bot import logs
from bot.core.config import load_config
from bot.mistral.tools import load_tools
from bot.ops.http_server import SERVICES, build_web_app
from bot.ops.services import open_services
from bot.storage.embedded_redis import free_port, redis_server_command
from tests import agent_tools
from tests.helpers import (
    API_ENV,
    APPROVALS,
    CONFIG,
    MANAGER,
    OTHER_MANAGER,
    OUTSIDER,
    REQUESTER,
    SIGNING_SECRET,
    BotUnderTest,
    make_settings,
    write_config,
)
from tests.slack_sender import SlackSender
from tests.standins.mistral import MistralStandIn
from tests.standins.slack import SlackStandIn


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real redis-server for the session (the embedded Redis's own command line)."""
    port = free_port()
    data_dir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        redis_server_command(data_dir, port, persistent=False),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.025)
    else:
        process.kill()
        raise RuntimeError("redis-server did not start")
    client.close()
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client on a freshly flushed database."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture(autouse=True)
def _reset_tool_calls() -> None:
    agent_tools.CALLS.clear()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo what ``approval-bot`` commands run in-process do to the root logger (they install
    a handler on the test's captured stderr, and set the level)."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in list(root.handlers):
        if handler.get_name() == logs.HANDLER_NAME:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        standin.members[APPROVALS] = [MANAGER, OTHER_MANAGER, REQUESTER]
        standin.members["C0GENERAL"] = [REQUESTER, MANAGER, OUTSIDER]
        yield standin
        assert standin.errors == [], "the bot sent Slack something it would reject"


@pytest.fixture
async def mistral() -> AsyncIterator[MistralStandIn]:
    async with MistralStandIn() as standin:
        yield standin
        assert standin.errors == [], "the bot sent Mistral something outside the API spec"


@pytest.fixture
def self_approval() -> bool:
    return False


@pytest.fixture
def bot_config(self_approval: bool) -> str:
    """The text of the bot's ``bot.yml``; a test module overrides this fixture for its own."""
    return CONFIG.format(channel=APPROVALS, self_approval="true" if self_approval else "false")


@pytest.fixture
def config_path(tmp_path: Path, bot_config: str, request: pytest.FixtureRequest) -> Path:
    """``bot.yml``: the ``bot_config`` fixture's text, or a test's indirect parameter."""
    return write_config(tmp_path, getattr(request, "param", None) or bot_config)


@pytest.fixture
def api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The HTTP API clients' keys, in the variables the API tests' configs name."""
    for name, value in API_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
async def bot(
    redis_client: aioredis.Redis,
    redis_url: str,
    slack: SlackStandIn,
    mistral: MistralStandIn,
    config_path: Path,
    settings_overrides: dict[str, Any],
) -> AsyncIterator[BotUnderTest]:
    """The bot's real aiohttp server on a free port, wired to the stand-ins and Redis."""
    settings = make_settings(slack, mistral, redis_url, config_path, **settings_overrides)
    config = load_config(config_path)
    tools = load_tools(config, config_path)
    app = build_web_app(lambda: open_services(settings, config, tools))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    url = f"http://127.0.0.1:{port}"
    under_test = BotUnderTest(
        url, SlackSender(url, SIGNING_SECRET, slack), app[SERVICES], slack, mistral, redis_client
    )
    yield under_test
    await under_test.settled()
    await runner.cleanup()
