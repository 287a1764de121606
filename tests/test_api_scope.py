"""Clients that name a user group ask for its members only; an edit on an API request is
checked again with the client's name."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import (
    APPROVALS,
    MANAGER,
    OUTSIDER,
    REQUESTER,
    BotUnderTest,
    api_deferral,
    button_block,
)
from tests.test_api import Api

CONFIG = f"""\
model: mistral-medium-latest
instructions: You are a test assistant.
approvals:
  channel: {APPROVALS}
api:
  clients:
    - name: billing-agent
      key_env: TEST_API_KEY_BILLING
      requesters: [S0FINANCE]
policy:
  rules:
    - name: big flights from the billing agent
      tools: ["book_flight"]
      when: 'client.name == "billing-agent" && args.destination == "Tokyo"'
      decision: deny
      reason: "The billing agent may not book Tokyo."
    - name: flights
      tools: ["book_flight"]
      allow_edit: true
tools:
  functions:
    - ref: tests.agent_tools:book_flight
      requires_confirmation: true
"""

SCHEMA = {
    "type": "object",
    "properties": {"destination": {"type": "string"}, "date": {"type": "string"}},
    "required": ["destination", "date"],
}
BOOK = ("book_flight", {"destination": "Rodez", "date": "2026-12-01"})

#: the API clients' keys in the environment, as an operator sets them
pytestmark = pytest.mark.usefixtures("api_keys")


@pytest.fixture
def bot_config() -> str:
    return CONFIG


async def test_members_of_a_listed_group_may_be_requesters_and_no_one_else(
    bot: BotUnderTest,
) -> None:
    bot.slack.usergroups["S0FINANCE"] = [REQUESTER]
    made = await Api(bot).create(BOOK)
    assert made["requester"] == REQUESTER
    body: dict[str, Any] = {"deferral": api_deferral(BOOK), "requester": OUTSIDER, "summary": "x"}
    status, problem, _ = await Api(bot).call("POST", "/api/v1/approvals", body)
    assert (status, problem["field"]) == (403, "/requester")


async def test_an_edit_is_checked_again_with_the_clients_name(bot: BotUnderTest) -> None:
    bot.slack.usergroups["S0FINANCE"] = [REQUESTER]
    made = await Api(bot).create(BOOK, tools=[{"name": "book_flight", "parameters": SCHEMA}])
    card = await bot.card()
    before = len(bot.slack.modals_shown())
    await bot.send.click(
        "approval_edit", made["id"], user=MANAGER, block_id=button_block(card, "approval_edit")
    )
    await bot.slack.wait_for_modal(lambda _: len(bot.slack.modals_shown()) > before)
    view = bot.slack.modals_shown()[-1]["view"]
    reply = await bot.send.submit_view(
        "approval_edit_modal",
        view["private_metadata"],
        user=MANAGER,
        values={
            "arg:destination": {"value": {"type": "plain_text_input", "value": "Tokyo"}},
            "arg:date": {"value": {"type": "plain_text_input", "value": "2026-12-01"}},
        },
    )
    assert "may not book Tokyo" in reply.text  # refused in the form, under the field
    _, seen = await Api(bot).get(made["id"])
    assert seen["status"] == "pending" and seen["calls"][0]["decision"] is None


async def test_the_requester_cannot_approve_what_a_client_asked_on_their_behalf(
    bot: BotUnderTest,
) -> None:
    bot.slack.usergroups["S0FINANCE"] = [REQUESTER]
    made = await Api(bot).create(BOOK)
    await bot.card()
    await bot.send.click("approval_approve", made["id"], user=REQUESTER)
    assert "someone else must approve it" in await bot.note()
    await bot.send.click("approval_approve", made["id"], user=OUTSIDER)
    assert "Nothing was changed" in await bot.note(1)
    _, seen = await Api(bot).get(made["id"])
    assert seen["status"] == "pending"


async def test_a_grant_given_on_an_api_card_lets_the_clients_next_call_run(
    bot: BotUnderTest,
) -> None:
    bot.slack.usergroups["S0FINANCE"] = [REQUESTER]
    first = await Api(bot).create(BOOK)
    await bot.card()
    await bot.send.click("approval_grant_3600", first["id"], user=MANAGER)
    _, decided = await Api(bot).get(first["id"], wait=10)
    assert decided["calls"][0]["decided_by"] == MANAGER
    await bot.settled()

    again = await Api(bot).create(BOOK)
    assert again["status"] == "decided"
    call = again["calls"][0]
    assert (call["decision"], call["decided_by"], call["granted"]) == ("approved", "policy", True)
    # a call the rule denies is not reached by the grant
    tokyo = await Api(bot).create(("book_flight", {"destination": "Tokyo", "date": "2026-12-01"}))
    assert tokyo["calls"][0]["decision"] == "denied"
    assert tokyo["calls"][0]["granted"] is False
    assert bot.slack.count("chat.postMessage", lambda a: a.get("channel") == APPROVALS) == 1


async def test_a_client_cannot_pick_a_notify_channel_the_requester_is_not_in(
    bot: BotUnderTest,
) -> None:
    """Conditions read the notify channel as where the requester asked (channel.id): a
    client must not choose one the policy treats more kindly than the requester's own."""
    bot.slack.usergroups["S0FINANCE"] = [REQUESTER]
    bot.slack.members["C0OPS"] = [MANAGER]
    bot.slack.unknown_channels.add("C0GONE")
    body: dict[str, Any] = {"deferral": api_deferral(BOOK), "requester": REQUESTER, "summary": "x"}
    status, problem, _ = await Api(bot).call(
        "POST", "/api/v1/approvals", {**body, "notify": {"channel": "C0OPS"}}
    )
    assert (status, problem["field"]) == (403, "/notify/channel")
    status, problem, _ = await Api(bot).call(
        "POST", "/api/v1/approvals", {**body, "notify": {"channel": "C0GONE"}}
    )
    assert (status, problem["field"]) == (403, "/notify/channel")  # unknown: nobody's
    assert await bot.services.store.pending_ids() == []
    assert bot.slack.calls_to("chat.postMessage") == []
    # a channel of the requester's is taken
    made = await Api(bot).create(BOOK, notify={"channel": "C0GENERAL"})
    assert made["status"] == "pending"
