"""Tests for ``SlackSender``: what it posts, checked by a tiny aiohttp server in its place."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp import web
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.slack_sender import SlackSender
from tests.standins.slack import SlackStandIn

SECRET = "sender-test-secret"


@dataclass
class Received:
    """One request the fake bot endpoint received."""

    content_type: str
    body: str
    headers: dict[str, str]

    def form(self) -> dict[str, str]:
        assert self.content_type == "application/x-www-form-urlencoded"
        return dict(parse_qsl(self.body, keep_blank_values=True, strict_parsing=True))

    def payload(self) -> dict[str, Any]:
        """The JSON of an interaction (``payload=`` form field) or of an event (the body)."""
        raw = self.form()["payload"] if "payload=" in self.body else self.body
        decoded: dict[str, Any] = json.loads(raw)
        return decoded


@dataclass
class FakeBot:
    """Stands in for the bot's ``/slack/events``: records requests, checks signatures."""

    url: str
    received: list[Received] = field(default_factory=list)
    on_request: Callable[[Received], Awaitable[None]] | None = None

    @property
    def last(self) -> Received:
        return self.received[-1]


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


@pytest.fixture
async def bot() -> AsyncIterator[FakeBot]:
    fake = FakeBot(url="")
    verifier = SignatureVerifier(SECRET)

    async def events(request: web.Request) -> web.Response:
        body = await request.text()
        headers = dict(request.headers)
        if not verifier.is_valid_request(body, headers):
            return web.Response(status=401, text="invalid signature")
        received = Received(request.content_type, body, headers)
        fake.received.append(received)
        if fake.on_request is not None:
            await fake.on_request(received)
        return web.Response(text="")

    app = web.Application()
    app.router.add_post("/slack/events", events)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    fake.url = f"http://{host}:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


@pytest.fixture
def send(bot: FakeBot, slack: SlackStandIn) -> SlackSender:
    return SlackSender(bot.url, SECRET, slack)


async def test_wrong_secret_is_rejected(bot: FakeBot) -> None:
    reply = await SlackSender(bot.url, "another-secret").command("/approvals", "", user="UALICE")
    assert reply.status == 401
    assert bot.received == []


async def test_command_is_form_encoded_and_signed(
    bot: FakeBot, send: SlackSender, slack: SlackStandIn
) -> None:
    reply = await send.command("/approvals", "list pending & mine", user="UALICE", channel="C0OPS")
    assert reply.status == 200
    form = bot.last.form()
    response_url = form.pop("response_url")
    trigger_id = form.pop("trigger_id")
    assert form == {
        "token": "legacy",
        "team_id": "T0TEAM",
        "team_domain": "example",
        "channel_id": "C0OPS",
        "channel_name": "c0ops",
        "user_id": "UALICE",
        "user_name": "ualice",
        "command": "/approvals",
        "text": "list pending & mine",
        "api_app_id": "A0APP",
        "is_enterprise_install": "false",
    }
    assert trigger_id
    assert response_url == send.last_response_url
    assert response_url.startswith(slack.url + "response/")

    await send.command("/approvals", "", user="UALICE", channel="DALICE")
    assert bot.last.form()["channel_name"] == "directmessage"
    assert bot.last.form()["text"] == ""
    assert send.last_response_url != response_url


async def test_command_explicit_and_placeholder_response_url(bot: FakeBot) -> None:
    plain = SlackSender(bot.url, SECRET)
    await plain.command("/approvals", "help", user="UALICE")
    assert bot.last.form()["response_url"].startswith("https://hooks.slack.com/commands/T0TEAM/")
    assert plain.last_response_url == bot.last.form()["response_url"]
    await plain.command("/approvals", "help", user="UALICE", response_url="http://x/r/1")
    assert bot.last.form()["response_url"] == "http://x/r/1" == plain.last_response_url


async def test_command_reply_through_response_url(
    bot: FakeBot, send: SlackSender, slack: SlackStandIn
) -> None:
    async def answer(received: Received) -> None:
        webhook = AsyncWebhookClient(received.form()["response_url"])
        response = await webhook.send(text=f"You asked: {received.form()['text']}")
        assert (response.status_code, response.body) == (200, "ok")

    bot.on_request = answer
    await send.command("/approvals", "status", user="UALICE")
    found = await slack.wait_for_response(lambda r: r["text"] == "You asked: status")
    assert send.last_response_url is not None
    assert send.last_response_url.endswith("/" + found["response_token"])
    assert slack.errors == []


async def test_home_opened(bot: FakeBot, send: SlackSender, slack: SlackStandIn) -> None:
    reply = await send.home_opened("UALICE", event_id="Ev0HOME")
    assert reply.status == 200
    envelope = bot.last.payload()
    assert bot.last.content_type == "application/json"
    assert envelope["type"] == "event_callback"
    assert envelope["event_id"] == "Ev0HOME"
    event = envelope["event"]
    assert event == {
        "type": "app_home_opened",
        "user": "UALICE",
        "channel": slack.dm_channel("UALICE"),
        "tab": "home",
        "event_ts": event["event_ts"],
    }
    assert float(event["event_ts"]) > 0

    # Once a Home view is published, the event carries it, as Slack's does.
    home = {
        "type": "home",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}],
    }
    slack.home_views["UALICE"] = "V1"
    slack.views["V1"] = {"id": "V1", **home}
    await send.home_opened("UALICE")
    assert bot.last.payload()["event"]["view"]["id"] == "V1"


async def test_home_click(bot: FakeBot, send: SlackSender) -> None:
    reply = await send.home_click("approve", "req-1", user="UMANAGER", view_id="V0TAB")
    assert reply.status == 200
    payload = bot.last.payload()
    assert payload["type"] == "block_actions"
    assert payload["user"]["id"] == "UMANAGER"
    assert payload["container"] == {"type": "view", "view_id": "V0TAB"}
    assert payload["view"] == {
        "id": "V0TAB",
        "type": "home",
        "callback_id": "",
        "private_metadata": "",
        "state": {"values": {}},
    }
    assert "channel" not in payload and "message" not in payload
    [action] = payload["actions"]
    assert (action["action_id"], action["value"], action["type"]) == ("approve", "req-1", "button")


async def test_click_payload_unchanged(bot: FakeBot, send: SlackSender) -> None:
    await send.click("deny", "req-2", user="UMANAGER", message_ts="1700000000.000200")
    payload = bot.last.payload()
    assert payload["container"] == {
        "type": "message",
        "message_ts": "1700000000.000200",
        "channel_id": "C0APPROVALS",
    }
    assert payload["channel"] == {"id": "C0APPROVALS"}
    assert payload["message"] == {"ts": "1700000000.000200", "type": "message"}
    [action] = payload["actions"]
    assert action["block_id"] == "approval_actions"
    assert (action["action_id"], action["value"]) == ("deny", "req-2")
