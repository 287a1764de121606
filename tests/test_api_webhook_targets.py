"""Where a webhook may go: an API client must not make the bot POST into its own network
(SSRF). Unless API_WEBHOOK_PRIVATE_ADDRESSES is set, a callback URL on this machine or a
private network is refused when the request is made, and a name that resolves only to such
addresses is not connected to when the webhook is delivered."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.flow.webhooks import HttpWebhookSender
from tests.helpers import REQUESTER, BotUnderTest, WebhookReceiver, api_deferral
from tests.test_api import BOOK, CONFIG, Api

PRIVATE_TARGETS = [
    "http://127.0.0.1:8080/hook",
    "https://127.0.0.1/hook",
    "https://localhost/hook",
    "https://10.0.0.5/hook",
    "https://192.168.1.20/hook",
    "https://169.254.169.254/latest/meta-data",  # a cloud's metadata service
    "https://[::1]/hook",
    "https://[fd00::1]/hook",
]

#: the API clients' keys in the environment, as an operator sets them
pytestmark = pytest.mark.usefixtures("api_keys")


@pytest.fixture
def bot_config() -> str:
    return CONFIG


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"api_webhook_private_addresses": False}  # as in production, by default


@pytest.mark.parametrize("url", PRIVATE_TARGETS)
async def test_a_callback_url_into_a_private_network_is_refused(
    bot: BotUnderTest, url: str
) -> None:
    body = {"deferral": api_deferral(BOOK), "requester": REQUESTER, "summary": "Rodez"}
    status, problem, _ = await Api(bot).call(
        "POST", "/api/v1/approvals", {**body, "callback_url": url}
    )
    assert (status, problem["field"]) == (422, "/callback_url")
    assert "API_WEBHOOK_PRIVATE_ADDRESSES" in problem["detail"]
    assert await bot.services.store.pending_ids() == []  # nothing stored, no card
    assert bot.slack.calls_to("chat.postMessage") == []


async def test_a_public_callback_url_is_taken(bot: BotUnderTest) -> None:
    made = await Api(bot).create(BOOK, callback_url="https://hooks.example.com/approvals")
    assert made["status"] == "pending"


async def test_a_name_resolving_to_this_machine_is_not_posted_to() -> None:
    async with WebhookReceiver() as receiver:
        by_name = receiver.url.replace("127.0.0.1", "localhost")
        sender = HttpWebhookSender(private_ok=False)
        try:
            sent = await sender.post(by_name, "k" * 32, {"id": "a"})
            direct = await sender.post(receiver.url, "k" * 32, {"id": "a"})
        finally:
            await sender.aclose()
        assert not sent.ok and "private network" in sent.error
        assert not direct.ok and "private network" in direct.error
        assert receiver.deliveries == []


async def test_with_the_setting_a_receiver_on_this_machine_gets_it() -> None:
    async with WebhookReceiver() as receiver:
        sender = HttpWebhookSender(private_ok=True)
        try:
            sent = await sender.post(
                receiver.url.replace("127.0.0.1", "localhost"), "k" * 32, {"id": "a"}
            )
        finally:
            await sender.aclose()
        assert sent.ok
        [delivery] = receiver.deliveries
        assert json.loads(delivery.body) == {"id": "a"}
