"""What the tests share: the people and channel they use, the default bot.yml, the running
bot (`BotUnderTest`) and ways to read what Slack was sent. Fixtures live in conftest.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from mistralai.client.models import FunctionCallEntry
from mistralai.extra.exceptions import DeferredToolCallEntry, DeferredToolCallsException

from bot.core.approval import ApprovalRequest
from bot.core.config import load_config
from bot.mistral.tools import load_tools
from bot.ops.http_server import build_web_app
from bot.ops.services import Services, open_services
from bot.ops.settings import Settings
from bot.storage import keys
from bot.storage.embedded_redis import free_port
from tests.slack_sender import SlackSender
from tests.standins.mistral import MistralStandIn
from tests.standins.slack import SlackStandIn

SIGNING_SECRET = "test-signing-secret"
APPROVALS = "C0APPROVALS"
REQUESTER = "UREQ"
MANAGER = "UMANAGER"
OTHER_MANAGER = "UBOSS"
OUTSIDER = "UOUTSIDER"
#: The requester's DM with the bot, where Slack's AI panel opens its assistant threads.
DM = "D0DM"

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

    async def request(self, approval_id: str) -> ApprovalRequest:
        """The request as the bot reads it back from Redis."""
        return await self.services.store.get_approval(approval_id)

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
        # the webhook receivers of the tests listen on 127.0.0.1
        "api_webhook_private_addresses": True,
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


def write_config(directory: Path, text: str) -> Path:
    """``text`` as ``bot.yml`` in ``directory``."""
    path = directory / "bot.yml"
    path.write_text(text)
    return path


async def start_thread(send: SlackSender, user: str = REQUESTER) -> str:
    """Slack's ``assistant_thread_started``: someone opened the bot in the AI panel."""
    thread_ts = send.next_ts()
    event = {
        "type": "assistant_thread_started",
        "assistant_thread": {
            "user_id": user,
            "channel_id": DM,
            "thread_ts": thread_ts,
            "context": {"channel_id": "C0GENERAL", "team_id": "T0TEAM"},
        },
        "event_ts": thread_ts,
    }
    reply = await send.event(event)
    assert reply.status == 200
    return thread_ts


# -- the HTTP API (bot.api) ------------------------------------------------------------------
#: The keys of the API clients the API tests configure (read from these variables).
API_KEY = "test-api-key-billing-0123456789abcdef"
OTHER_API_KEY = "test-api-key-other-0123456789abcdef"
API_ENV = {"TEST_API_KEY_BILLING": API_KEY, "TEST_API_KEY_OTHER": OTHER_API_KEY}


def api_deferral(
    *calls: tuple[str, dict[str, Any]], conversation_id: str = "conv_0123456789"
) -> dict[str, Any]:
    """``DeferredToolCallsException.to_dict()`` of a deferral of ``calls`` (tool, arguments),
    made with the SDK's own classes, as a backend would send it."""
    entries = [
        DeferredToolCallEntry(
            FunctionCallEntry(
                tool_call_id=f"call_{index}_{name}",
                name=name,
                arguments=json.dumps(arguments),
            )
        )
        for index, (name, arguments) in enumerate(calls)
    ]
    return dict(DeferredToolCallsException(conversation_id, entries).to_dict())


@dataclass
class Delivery:
    """One POST a webhook receiver got."""

    body: bytes
    headers: dict[str, str]


class WebhookReceiver:
    """A real HTTP server receiving the bot's webhooks; it answers 500 to the first
    ``fail_first`` deliveries, then 200, and keeps every delivery."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.deliveries: list[Delivery] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _receive(self, request: web.Request) -> web.Response:
        self.deliveries.append(Delivery(await request.read(), dict(request.headers)))
        if len(self.deliveries) <= self.fail_first:
            return web.Response(status=500, text="receiver down")
        return web.Response(status=204)

    async def __aenter__(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/hook", self._receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[Delivery]:
        for _ in range(int(timeout / 0.05)):
            if len(self.deliveries) >= count:
                return self.deliveries
            await asyncio.sleep(0.05)
        raise AssertionError(f"{len(self.deliveries)} deliveries, wanted {count}")
