"""Fixtures: a real Redis server, the Slack and Mistral stand-ins, and the bot's HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
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
from bot.ops.services import Services, open_services
from bot.ops.settings import Settings
from bot.storage import keys
from bot.storage.embedded_redis import free_port, redis_server_command
from tests import agent_tools
from tests.slack_sender import SlackSender
from tests.standins.mistral import MistralStandIn
from tests.standins.slack import SlackStandIn

SIGNING_SECRET = "test-signing-secret"
APPROVALS = "C0APPROVALS"
REQUESTER = "UREQ"
MANAGER = "UMANAGER"
OTHER_MANAGER = "UBOSS"
OUTSIDER = "UOUTSIDER"

CONFIG = """\
model: mistral-medium-latest
instructions: You are a test assistant.
approvals:
  channel: {channel}
  allow_self_approval: {self_approval}
tools:
  functions:
    - ref: tests.agent_tools:get_weather
    - ref: tests.agent_tools:book_flight
      requires_confirmation: true
    - ref: tests.agent_tools:send_note
      requires_confirmation: true
"""


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
def config_path(tmp_path: Path, self_approval: bool) -> Path:
    path = tmp_path / "bot.yml"
    path.write_text(
        CONFIG.format(channel=APPROVALS, self_approval="true" if self_approval else "false")
    )
    return path


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {}


@dataclass
class BotUnderTest:
    """The running bot, what it talks to, and shortcuts to act as Slack users."""

    url: str
    send: SlackSender
    services: Services
    slack: SlackStandIn
    mistral: MistralStandIn
    redis: aioredis.Redis

    async def card(self, index: int = 0) -> dict[str, Any]:
        """The index-th approval card posted (waits for it)."""

        def is_card(args: dict[str, Any]) -> bool:
            return args.get("channel") == APPROVALS and bool(args.get("blocks"))

        await self.slack.wait_for(
            "chat.postMessage", lambda a: self.slack.count("chat.postMessage", is_card) > index
        )
        cards = [a for a in self.slack.calls_to("chat.postMessage") if is_card(a)]
        return cards[index]

    async def approval_id(self, index: int = 0) -> str:
        return button_value(await self.card(index), "approval_approve")

    def card_state(self, card_ts: str) -> dict[str, Any]:
        return self.slack.messages[(APPROVALS, card_ts)]

    def notes(self) -> list[str]:
        """Every private note the bot gave, oldest first: ephemeral messages, and the notices
        shown in the modal a button opened (Deny, Edit, Show full arguments open theirs at
        once, then fill them in or say why not)."""
        found: list[str] = []
        for call in self.slack.calls:
            view = call.args.get("view")
            if call.method == "chat.postEphemeral":
                found.append(str(call.args.get("text", "")))
            elif call.method == "views.update" and isinstance(view, dict):
                title = (view.get("title") or {}).get("text")
                if "callback_id" not in view and title != "Full arguments":
                    found.append(all_text(view))
        return found

    async def note(self, since: int = 0, timeout: float = 10.0) -> str:
        """The first note after the ``since`` first ones (waits for it)."""
        for _ in range(int(timeout / 0.02)):
            notes = self.notes()
            if len(notes) > since:
                return notes[since]
            await asyncio.sleep(0.02)
        raise AssertionError(f"no note after the first {since}: {self.notes()}")

    async def settled(self) -> None:
        """Until no listener works after its ack and no job is queued or running."""
        while not self.services.background.idle():
            await asyncio.sleep(0.01)
        await self.services.jobs.idle()

    async def state_keys(self) -> list[str]:
        """Every key the bot stored, but its job stream (which exists, empty, from start)."""
        found = [k.decode() if isinstance(k, bytes) else str(k) for k in await self.redis.keys()]
        return sorted(k for k in found if k != keys.JOBS)


def button_value(message: dict[str, Any], action_id: str) -> str:
    for block in message.get("blocks", []):
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == action_id:
                return str(element["value"])
    raise AssertionError(f"no {action_id} button in {message}")


def button_block(message: dict[str, Any], action_id: str, call: int | None = 0) -> str:
    """The block id of the ``action_id`` button of call ``call`` (None: Approve/Deny all)."""
    scope = "all" if call is None else str(call)
    for block in message.get("blocks", []):
        if block.get("type") != "actions" or block.get("block_id", "").split(".")[1:2] != [scope]:
            continue
        if any(e.get("action_id") == action_id for e in block.get("elements", [])):
            return str(block["block_id"])
    raise AssertionError(f"no {action_id} button for call {scope} in {message}")


def all_text(message: dict[str, Any]) -> str:
    """Every text of a message and its blocks, joined (what a person reads)."""
    parts = [str(message.get("text", ""))]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    parts.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(message.get("blocks", []))
    return "\n".join(parts)


def make_settings(
    slack: SlackStandIn,
    mistral: MistralStandIn,
    redis_url: str,
    config_path: Path,
    **overrides: Any,
) -> Settings:
    # no audit sink unless a test wants one (the file sink would write into the cwd)
    # preflight off: its calls to Slack and Mistral would mix with the calls a test counts
    # posts unpaced: the stand-in applies no rate limits unless a test turns them on
    values: dict[str, Any] = {
        "mistral_retry_for_ms": 0,
        "audit_sinks": "none",
        "preflight": False,
        "slack_posts_per_s": 1000.0,
        **overrides,
    }
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        slack_bot_token=slack.token,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=slack.api_url,
        mistral_api_key="test-key",
        mistral_server_url=mistral.url,
        mistral_timeout_ms=5_000,
        redis_url=redis_url,
        bot_config=config_path,
        **values,
    )


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


@contextlib.asynccontextmanager
async def served(
    settings: Settings, config_path: Path, *, start_background: bool = True
) -> AsyncIterator[tuple[str, web.Application]]:
    """The bot's real HTTP server on a free port, with ``settings``: its URL and app.
    ``start_background=False``: it runs no jobs and no sweeps (as with RUN_JOBS=false)."""
    config = load_config(config_path)
    tools = load_tools(config, config_path)
    app = build_web_app(
        lambda: open_services(settings, config, tools, start_background=start_background)
    )
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        await runner.cleanup()
