"""Enterprise Grid and Slack Connect, end to end: clicks, a Deny form and messages from people
of another workspace of the bot's organization and from another organization, in the shapes
Slack sends them (see ``tests.slack_sender.PeopleSender``), through the bot's real signed
endpoint, against the Slack stand-in and a real Redis.

The bot here is an org-wide install in the organization E0ORG, its token's workspace T0TEAM.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bot.storage import keys
from tests import agent_tools
from tests.helpers import (
    APPROVALS,
    MANAGER,
    SIGNING_SECRET,
    BotUnderTest,
    all_text,
    button_block,
    button_value,
)
from tests.slack_sender import TEAM, Install, PeopleSender, Person
from tests.standins.slack import SlackStandIn

ORG = "E0ORG"
#: a member of another workspace of the same organization (Grid user ids are org-wide W ids)
SIBLING = Person("W0SIBLING", "T0SIBLING", ORG, "sibling")
#: an external member of the shared approvals channel: another organization, its own ids
PARTNER = Person("U0PARTNER", "T0PARTNER", "E0PARTNER", "partner")
SHARED = "C0SHARED"  # a Slack Connect channel where the bot is too
BOOK = "book a flight to Rodez"
DENY_VALUES = {"deny_reason": {"reason": {"type": "plain_text_input", "value": "Not ours"}}}


@pytest.fixture(autouse=True)
def on_grid(slack: SlackStandIn) -> None:
    """The bot's token is an org-wide install; the sibling and the partner are members of
    the approvals channel (Slack lists external members in ``conversations.members``)."""
    slack.enterprise_id = ORG
    slack.is_enterprise_install = True
    slack.members[APPROVALS] = [*slack.members[APPROVALS], SIBLING.user_id, PARTNER.user_id]
    slack.members[SHARED] = [MANAGER, PARTNER.user_id]


def people(bot: BotUnderTest) -> PeopleSender:
    return PeopleSender(bot.url, SIGNING_SECRET, bot.slack, Install(TEAM, ORG, True))


async def pending(bot: BotUnderTest) -> tuple[dict[str, Any], str, str, dict[str, str]]:
    """A card waiting for a decision: the card, its request id, its ts and the stored state."""
    await bot.send.mention(BOOK)
    card = await bot.card()
    approval_id = button_value(card, "approval_approve")
    await bot.settled()
    card_ts = next(
        str(c.response["ts"])
        for c in bot.slack.calls
        if c.method == "chat.postMessage" and c.args.get("channel") == APPROVALS and c.ok
    )
    return card, approval_id, card_ts, await stored(bot, approval_id)


async def stored(bot: BotUnderTest, approval_id: str) -> dict[str, str]:
    return dict(await bot.redis.hgetall(keys.approval(approval_id)))


async def approve_as(bot: BotUnderTest, person: Person) -> tuple[str, dict[str, str]]:
    """``person`` clicks Approve on a pending card; the request id and its state before."""
    card, approval_id, card_ts, state = await pending(bot)
    reply = await people(bot).click_as(
        person,
        "approval_approve",
        approval_id,
        channel=APPROVALS,
        message_ts=card_ts,
        block_id=button_block(card, "approval_approve", 0),
    )
    assert reply.status == 200
    return approval_id, state


async def deny_form_as(bot: BotUnderTest, person: Person) -> tuple[str, dict[str, str], Any]:
    """A manager opens Deny; ``person`` submits that form. The request id, its state before
    the submission, and the answer to it."""
    card, approval_id, _, state = await pending(bot)
    await bot.send.click(
        "approval_deny", approval_id, user=MANAGER, block_id=button_block(card, "approval_deny", 0)
    )
    modal = await bot.slack.wait_for_modal(lambda a: a["view"].get("callback_id"))
    await bot.settled()
    reply = await people(bot).submit_view_as(
        person,
        "approval_deny_modal",
        modal["view"]["private_metadata"],
        values=DENY_VALUES,
    )
    assert reply.status == 200
    return approval_id, state, reply


async def unchanged(bot: BotUnderTest, approval_id: str, state: dict[str, str]) -> None:
    await asyncio.sleep(0.3)  # time to change something, if it would
    await bot.settled()
    assert await stored(bot, approval_id) == state
    assert state["status"] == "pending"
    assert agent_tools.CALLS == []
    resumed = [
        r for r in bot.mistral.requests if r.body and "function.result" in json.dumps(r.body)
    ]
    assert resumed == []


# -- another workspace of the same organization ------------------------------------------------
async def test_a_click_from_another_workspace_of_the_org_decides_like_any(
    bot: BotUnderTest,
) -> None:
    approval_id, _ = await approve_as(bot, SIBLING)

    await bot.slack.wait_for("chat.postMessage", lambda a: "Booked Rodez" in all_text(a))
    await bot.settled()
    assert (await stored(bot, approval_id))["status"] == "approved"
    decision = json.loads((await stored(bot, approval_id))["decision"])
    assert decision["user_id"] == SIBLING.user_id
    assert agent_tools.runs_of("book_flight") == [{"destination": "Rodez", "date": "2026-12-01"}]


async def test_a_click_from_another_workspace_of_the_org_who_is_no_approver_is_refused(
    bot: BotUnderTest,
) -> None:
    bot.slack.members[APPROVALS].remove(SIBLING.user_id)

    approval_id, state = await approve_as(bot, SIBLING)

    note = await bot.note()
    assert "Only" in note and "Nothing was changed" in note  # the rule's approvers still hold
    await unchanged(bot, approval_id, state)


@pytest.mark.parametrize("settings_overrides", [{"slack_org_approvers": False}])
async def test_a_click_from_another_workspace_of_the_org_is_refused_when_not_allowed(
    bot: BotUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    approval_id, state = await approve_as(bot, SIBLING)

    note = await bot.slack.wait_for("chat.postEphemeral")
    assert note["user"] == SIBLING.user_id
    assert note["text"] == (
        ":no_entry_sign: Approvals here are not decided by people of other workspaces of "
        "this organization. Nothing was changed."
    )
    await unchanged(bot, approval_id, state)
    assert "T0SIBLING" in caplog.text and ORG in caplog.text


async def test_a_dm_from_another_workspace_of_the_org_is_answered(bot: BotUnderTest) -> None:
    reply, ts = await people(bot).dm_as(SIBLING, "hello from the sibling", channel="D0SIBLING")

    assert reply.status == 200
    await bot.slack.wait_for(
        "chat.update", lambda a: "You said: hello from the sibling" in all_text(a)
    )
    await bot.settled()
    assert [m["thread_ts"] for m in bot.slack.messages_in("D0SIBLING") if "bot_id" in m] == [ts]


@pytest.mark.parametrize("settings_overrides", [{"slack_org_requesters": False}])
async def test_a_dm_from_another_workspace_of_the_org_is_refused_when_not_allowed(
    bot: BotUnderTest,
) -> None:
    reply, _ = await people(bot).dm_as(SIBLING, BOOK, channel="D0SIBLING")

    assert reply.status == 200
    note = await bot.slack.wait_for("chat.postEphemeral")
    assert (note["user"], note["channel"]) == (SIBLING.user_id, "D0SIBLING")
    assert "I do not take requests from people of other workspaces" in note["text"]
    await asyncio.sleep(0.3)
    await bot.settled()
    assert bot.mistral.requests == []
    assert await bot.state_keys() == []


# -- another organization (Slack Connect) ------------------------------------------------------
EXTERNAL_REFUSAL = (
    ":no_entry_sign: Approvals here are not decided by people from other organizations "
    "(Slack Connect). Nothing was changed."
)


async def test_an_external_click_is_refused_with_a_note(
    bot: BotUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    approval_id, state = await approve_as(bot, PARTNER)

    note = await bot.slack.wait_for("chat.postEphemeral")
    assert (note["user"], note["channel"]) == (PARTNER.user_id, APPROVALS)
    assert note["text"] == EXTERNAL_REFUSAL
    await unchanged(bot, approval_id, state)
    assert "T0PARTNER" in caplog.text and "E0PARTNER" in caplog.text


async def test_an_external_note_goes_through_the_response_url_when_slack_refuses_the_others(
    bot: BotUnderTest,
) -> None:
    card, approval_id, card_ts, state = await pending(bot)
    bot.slack.fail_next("chat.postEphemeral", error="user_not_in_channel")
    bot.slack.fail_next("chat.postMessage", error="channel_not_found")

    await people(bot).click_as(
        PARTNER,
        "approval_approve",
        approval_id,
        channel=APPROVALS,
        message_ts=card_ts,
        block_id=button_block(card, "approval_approve", 0),
    )

    answer = await bot.slack.wait_for_response()
    assert answer["text"] == EXTERNAL_REFUSAL
    assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
    await unchanged(bot, approval_id, state)


async def test_an_external_deny_form_is_refused_in_the_form(bot: BotUnderTest) -> None:
    approval_id, state, reply = await deny_form_as(bot, PARTNER)

    answer = json.loads(reply.text)
    assert answer["response_action"] == "update"
    assert EXTERNAL_REFUSAL in all_text(answer["view"])
    await unchanged(bot, approval_id, state)


@pytest.mark.parametrize("settings_overrides", [{"slack_external_approvers": True}])
async def test_an_external_approver_decides_when_allowed(bot: BotUnderTest) -> None:
    approval_id, _ = await approve_as(bot, PARTNER)

    await bot.slack.wait_for("chat.postMessage", lambda a: "Booked Rodez" in all_text(a))
    await bot.settled()
    decision = json.loads((await stored(bot, approval_id))["decision"])
    assert decision["user_id"] == PARTNER.user_id
    assert agent_tools.runs_of("book_flight") == [{"destination": "Rodez", "date": "2026-12-01"}]


@pytest.mark.parametrize("settings_overrides", [{"slack_external_approvers": True}])
async def test_an_external_deny_form_denies_when_allowed(bot: BotUnderTest) -> None:
    approval_id, _, reply = await deny_form_as(bot, PARTNER)

    assert reply.text == ""  # the form closes
    await bot.slack.wait_for("chat.postMessage", lambda a: "Not ours" in all_text(a))
    await bot.settled()
    assert (await stored(bot, approval_id))["status"] == "denied"
    assert agent_tools.CALLS == []


@pytest.mark.parametrize("settings_overrides", [{"slack_external_requesters": False}, {}])
async def test_an_external_mention_and_dm_are_refused_with_a_reply(bot: BotUnderTest) -> None:
    sender = people(bot)
    mention, _ = await sender.mention_as(PARTNER, BOOK, channel=SHARED, ext_shared=True)
    dm, _ = await sender.dm_as(PARTNER, BOOK, channel="D0PARTNER", ext_shared=True)

    assert (mention.status, dm.status) == (200, 200)
    await bot.slack.wait_for(
        "chat.postEphemeral", lambda _: bot.slack.count("chat.postEphemeral") > 1
    )
    notes = [(a["user"], a["channel"], a["text"]) for a in bot.slack.calls_to("chat.postEphemeral")]
    refusal = (
        ":no_entry_sign: I do not take requests from people from other organizations (Slack "
        "Connect): an agent acting on them is not allowed here. Ask someone of this "
        "workspace's team."
    )
    assert notes == [(PARTNER.user_id, SHARED, refusal), (PARTNER.user_id, "D0PARTNER", refusal)]
    await asyncio.sleep(0.3)
    await bot.settled()
    assert bot.mistral.requests == [] and agent_tools.CALLS == []
    assert await bot.state_keys() == []


@pytest.mark.parametrize("settings_overrides", [{"slack_external_requesters": True}])
async def test_an_external_mention_is_answered_when_allowed(bot: BotUnderTest) -> None:
    reply, ts = await people(bot).mention_as(
        PARTNER, "hello from outside", channel=SHARED, ext_shared=True
    )

    assert reply.status == 200
    await bot.slack.wait_for("chat.update", lambda a: "You said: hello from outside" in all_text(a))
    await bot.settled()
    assert bot.slack.count("chat.postEphemeral") == 0


async def test_a_mention_from_the_home_workspace_of_a_grid_install_is_answered(
    bot: BotUnderTest,
) -> None:
    home = Person("W0HOME", TEAM, ORG)
    reply, _ = await people(bot).mention_as(home, "hello at home", channel=SHARED, ext_shared=True)

    assert reply.status == 200
    await bot.slack.wait_for("chat.update", lambda a: "You said: hello at home" in all_text(a))
