"""Slack's documented errors each get a deliberate answer: permanent ones are reported
once and not retried, a public approvals channel is joined, and a refused person is always
told why. Through the bot's signed endpoint, the Slack stand-in and a real Redis."""

from __future__ import annotations

import aiohttp
import pytest

from bot.storage import keys
from tests import agent_tools
from tests.helpers import (
    APPROVALS,
    MANAGER,
    BotUnderTest,
    all_text,
    button_value,
)

BOOK = "book a flight to Rodez"
PRIVATE = "G0PRIVATE"


async def readiness(bot: BotUnderTest) -> dict[str, object]:
    async with aiohttp.ClientSession() as session, session.get(bot.url + "/readyz") as reply:
        assert reply.status == 200  # a refused card does not take the bot out of rotation
        body: dict[str, object] = await reply.json()
        return body


async def test_a_public_approvals_channel_the_bot_is_not_in_is_joined(bot: BotUnderTest) -> None:
    bot.slack.channels[APPROVALS] = {"is_member": False}
    await bot.send.mention(BOOK)
    card = await bot.card(1)  # the first was refused: not_in_channel
    posts = [c for c in bot.slack.calls if c.method == "chat.postMessage"]
    assert [c.response.get("error") for c in posts if c.args["channel"] == APPROVALS] == [
        "not_in_channel",
        None,
    ]
    assert [c["channel"] for c in bot.slack.calls_to("conversations.join")] == [APPROVALS]
    await bot.send.click("approval_approve", button_value(card, "approval_approve"), user=MANAGER)
    await bot.slack.wait_for("chat.postMessage", lambda a: "Done: Booked" in all_text(a))
    await bot.settled()
    assert len(agent_tools.runs_of("book_flight")) == 1


PRIVATE_CONFIG = f"""\
model: mistral-medium-latest
approvals:
  channel: {PRIVATE}
tools:
  functions:
    - ref: tests.agent_tools:book_flight
      requires_confirmation: true
"""


@pytest.mark.parametrize("config_path", [PRIVATE_CONFIG], indirect=True)
async def test_not_in_a_private_channel_is_reported_once_and_not_retried(
    bot: BotUnderTest,
) -> None:
    bot.slack.members[PRIVATE] = [MANAGER]
    bot.slack.channels[PRIVATE] = {"is_member": False, "is_private": True}
    await bot.send.mention(BOOK)
    told = await bot.slack.wait_for(
        "chat.postMessage", lambda a: "could not post the request" in all_text(a)
    )
    await bot.settled()
    text = all_text(told)
    assert told["channel"] == "C0GENERAL"
    assert "/invite @Approval Bot" in text and "Home tab" in text
    assert "keep trying" not in text
    [approval_id] = await bot.services.store.pending_ids()
    # never retried on a timer
    assert await bot.redis.zscore(keys.CARDS_DUE_ZSET, approval_id) is None
    request = await bot.services.store.get_approval(approval_id)
    swept = await bot.services.sweeper.sweep(now=request.created_at + keys.CARD_RETRY_S * 10)
    assert swept.posted == []
    posts = [c for c in bot.slack.calls if c.method == "chat.postMessage"]
    assert [c.response.get("error") for c in posts if c.args["channel"] == PRIVATE] == [
        "not_in_channel"
    ]
    # visible to the operator
    refused = (await readiness(bot))["refused"]
    assert isinstance(refused, list) and refused[0]["error"] == "not_in_channel"
    async with aiohttp.ClientSession() as session, session.get(bot.url + "/metrics") as reply:
        body = await reply.text()
    assert 'approval_bot_permanent_errors_total{error="not_in_channel",service="slack"} 1.0' in body

    # an admin invites the bot: Slack tells it, and the card goes up
    bot.slack.channels[PRIVATE]["is_member"] = True
    await bot.send.event(
        {"type": "member_joined_channel", "user": "UBOT", "channel": PRIVATE, "team": "T0TEAM"}
    )
    card = await bot.slack.wait_for("chat.postMessage", lambda a: a.get("channel") == PRIVATE)
    assert button_value(card, "approval_approve") == approval_id
    await bot.settled()
    assert (await bot.services.store.get_approval(approval_id)).card is not None


async def test_a_refusal_reaches_someone_who_cannot_see_ephemeral_messages_there(
    bot: BotUnderTest,
) -> None:
    await bot.send.mention(BOOK)
    approval_id = await bot.approval_id()
    # a Slack Connect guest or someone from another workspace: not a member Slack knows here
    await bot.send.click("approval_approve", approval_id, user="UEXTERNAL")
    dm = await bot.slack.wait_for("chat.postMessage", lambda a: a.get("channel") == "UEXTERNAL")
    assert "Nothing was changed" in all_text(dm)
    await bot.settled()
    assert (await bot.services.store.get_approval(approval_id)).voters == set()
