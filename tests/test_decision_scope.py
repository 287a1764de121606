"""No decision reaches beyond its decider: grants, edits, overrides, old cards, the full
arguments and membership changes, probed from the attacker's side.

The setting: rule "big payments" (``pay_invoice`` when ``args.amount > 10000``, approvers:
the CFO) above rule "payments" (``pay_invoice``, approvers: the approvals channel, whose
members include the requester). Everything goes through the bot's signed HTTP endpoint,
with the Slack and Mistral stand-ins and a real Redis.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests import agent_tools
from tests.helpers import (
    APPROVALS,
    MANAGER,
    OTHER_MANAGER,
    OUTSIDER,
    REQUESTER,
    BotUnderTest,
    all_text,
    button_block,
    button_value,
)
from tests.standins.mistral import Entry, ModelTurn, function_call, message
from tests.test_policy_flow import answer

ADMIN = "UADMIN"
CFO = "UCFO"
TREASURY = "S0TREASURY"

PAYMENTS = f"""\
model: mistral-medium-latest
approvals:
  channel: {APPROVALS}
admins: {{users: [{ADMIN}]}}
policy:
  defaults: {{grant_durations: ["1h"]}}
  rules:
    - name: big payments
      tools: ["pay_invoice"]
      when: "args.amount > 10000"
      approvers: {{users: [{CFO}], usergroups: [{TREASURY}]}}
    - name: payments
      tools: ["pay_invoice"]
      allow_edit: true
      allow_self_approval: {{self_approval}}
tools:
  functions:
    - ref: tests.agent_tools:pay_invoice
"""


@pytest.fixture
def bot_config(self_approval: bool) -> str:
    return PAYMENTS.replace("{self_approval}", "true" if self_approval else "false")


def payments_script(turn: ModelTurn) -> list[Entry]:
    """ "pay INV1 50" -> pay_invoice(INV1, 50); a function result -> "Done: <result>"."""
    results = turn.function_results()
    if results:
        return [message("Done: " + "; ".join(str(r.get("result", "")) for r in results))]
    text = turn.last_user_text() or ""
    if found := re.search(r"pay (\w+) (\d+)", text):
        arguments = {"invoice": found.group(1), "amount": int(found.group(2))}
        return [function_call("pay_invoice", arguments)]
    return [message("You said: " + text)]


@pytest.fixture(autouse=True)
def _model(bot: BotUnderTest) -> None:
    bot.mistral.script = payments_script
    bot.slack.usergroups[TREASURY] = ["UTREASURER"]
    bot.slack.usergroup_handles[TREASURY] = "treasury"


def cards(bot: BotUnderTest) -> list[dict[str, Any]]:
    return [a for a in bot.slack.calls_to("chat.postMessage") if a.get("channel") == APPROVALS]


def paid() -> list[object]:
    return [run["amount"] for run in agent_tools.runs_of("pay_invoice")]


async def refusal_to(bot: BotUnderTest, user: str) -> str:
    note = await bot.slack.wait_for("chat.postEphemeral", lambda a: a["user"] == user)
    await bot.settled()
    return str(note["text"])


async def granted_small_payment(bot: BotUnderTest, granter: str) -> dict[str, Any]:
    """The requester pays 50; ``granter`` clicks "Approve for 1 hour"; the card."""
    await bot.send.mention("pay INV1 50")
    card = await bot.card()
    assert "payments" in all_text(card) and "big payments" not in all_text(card)
    approval_id = button_value(card, "approval_grant_3600")
    await bot.send.click("approval_grant_3600", approval_id, user=granter)
    await answer(bot, "Done: Paid INV1: 50 EUR")
    return card


# -- grants ----------------------------------------------------------------------------------
async def test_a_grant_on_a_small_payment_does_not_cover_a_big_one(bot: BotUnderTest) -> None:
    card = await granted_small_payment(bot, MANAGER)
    assert "would send them to the same approvers" in all_text(card)
    assert "rule 2 (payments)" in all_text(card)

    # the grant works where it should: another small payment runs without a card
    await bot.send.mention("pay INV2 60")
    note = await bot.slack.wait_for(
        "chat.postMessage", lambda a: "Allowed by a grant" in all_text(a)
    )
    assert "under rule 2 (payments)" in all_text(note)
    await answer(bot, "Done: Paid INV2: 60 EUR")
    assert paid() == [50, 60]

    # ... and not where the rule would ask someone else
    await bot.send.mention("pay INV3 50000")
    big = await bot.card(1)
    assert f"<@{CFO}>" in all_text(big) and "rule 1 (big payments)" in all_text(big)
    await bot.settled()
    assert paid() == [50, 60]

    await bot.send.click("approval_approve", button_value(big, "approval_approve"), user=MANAGER)
    assert "Nothing was changed" in await refusal_to(bot, MANAGER)
    assert paid() == [50, 60]

    await bot.send.command("/approvals", "grants", user=MANAGER)
    listed = all_text(await bot.slack.wait_for_response(lambda r: "Live grants" in all_text(r)))
    assert "under rule 2 (payments) only" in listed


@pytest.mark.parametrize("self_approval", [True])
async def test_a_requester_who_grants_themselves_cannot_pay_a_big_invoice(
    bot: BotUnderTest,
) -> None:
    await granted_small_payment(bot, REQUESTER)

    await bot.send.mention("pay INV3 50000")
    big = await bot.card(1)
    assert f"<@{CFO}>" in all_text(big)
    await bot.settled()
    assert paid() == [50]
    await bot.send.click("approval_approve", button_value(big, "approval_approve"), user=REQUESTER)
    assert "Nothing was changed" in await refusal_to(bot, REQUESTER)
    assert paid() == [50]

    await bot.send.click("approval_approve", button_value(big, "approval_approve"), user=CFO)
    await answer(bot, "Done: Paid INV3: 50000 EUR")
    assert paid() == [50, 50000]


async def test_a_grant_whose_giver_left_the_approvers_lapses(bot: BotUnderTest) -> None:
    await granted_small_payment(bot, MANAGER)
    bot.slack.members[APPROVALS] = [OTHER_MANAGER, REQUESTER]
    await bot.send.event({"type": "member_left_channel", "user": MANAGER, "channel": APPROVALS})
    await bot.settled()

    await bot.send.mention("pay INV2 60")
    await bot.card(1)
    await bot.settled()
    assert paid() == [50]


# -- edits -----------------------------------------------------------------------------------
async def open_edit(bot: BotUnderTest, card: dict[str, Any], user: str) -> dict[str, Any]:
    before = len(bot.slack.modals_shown())
    await bot.send.click(
        "approval_edit",
        button_value(card, "approval_edit"),
        user=user,
        block_id=button_block(card, "approval_edit"),
    )
    await bot.slack.wait_for_modal(lambda _: len(bot.slack.modals_shown()) > before)
    return dict(bot.slack.modals_shown()[-1]["view"])


async def submit_amount(bot: BotUnderTest, view: dict[str, Any], user: str, amount: str) -> Any:
    reply = await bot.send.submit_view(
        "approval_edit_modal",
        view["private_metadata"],
        user=user,
        values={
            "arg:invoice": {"value": {"type": "plain_text_input", "value": "INV1"}},
            "arg:amount": {"value": {"type": "number_input", "value": amount}},
        },
    )
    assert reply.status == 200
    return json.loads(reply.text) if reply.text else {}


async def test_an_edit_into_a_big_payment_is_refused_inline(bot: BotUnderTest) -> None:
    await bot.send.mention("pay INV1 50")
    card = await bot.card()
    approval_id = button_value(card, "approval_approve")
    view = await open_edit(bot, card, MANAGER)

    refused = await submit_amount(bot, view, MANAGER, "50000")
    assert refused["response_action"] == "errors"
    assert "rule 1 (big payments)" in refused["errors"]["arg:amount"]
    await bot.settled()
    stored = await bot.services.store.get_approval(approval_id)
    assert stored.status == "pending" and stored.revision == 0 and stored.voters == set()
    assert stored.decisions[0].edit is None
    assert paid() == []

    # an edit that stays under the same rule is the editor's approval
    assert await submit_amount(bot, view, MANAGER, "70") == {}
    await answer(bot, "Paid INV1: 70 EUR")
    assert paid() == [70]


# -- overrides -------------------------------------------------------------------------------
async def test_require_keeps_the_cfo_as_the_only_approver_of_big_payments(
    bot: BotUnderTest,
) -> None:
    await bot.send.command("/approvals", "require pay_*", user=ADMIN)
    await bot.slack.wait_for_response(lambda r: "now needs approval" in all_text(r))

    await bot.send.mention("pay INV3 50000")
    big = await bot.card()
    assert f"<@{CFO}>" in all_text(big) and "rule 1 (big payments)" in all_text(big)
    approval_id = button_value(big, "approval_approve")
    await bot.send.click("approval_approve", approval_id, user=MANAGER)
    assert "Nothing was changed" in await refusal_to(bot, MANAGER)
    assert paid() == []

    await bot.send.click("approval_approve", approval_id, user=CFO)
    await answer(bot, "Done: Paid INV3: 50000 EUR")
    assert paid() == [50000]


# -- old cards, full arguments, Retry ----------------------------------------------------------
async def test_an_approval_on_a_card_from_before_revisions_is_refused(bot: BotUnderTest) -> None:
    await bot.send.mention("pay INV1 50")
    approval_id = await bot.approval_id()
    updates = bot.slack.count("chat.update")

    await bot.send.click("approval_approve", approval_id, user=MANAGER, block_id="approval_actions")
    assert "Look again" in await refusal_to(bot, MANAGER)
    stored = await bot.services.store.get_approval(approval_id)
    assert stored.status == "pending" and stored.voters == set()
    # the card is shown again, with buttons that name the revision
    assert bot.slack.count("chat.update") > updates
    assert paid() == []

    await bot.send.click("approval_approve", approval_id, user=MANAGER)
    await answer(bot, "Done: Paid INV1: 50 EUR")
    assert paid() == [50]


async def test_full_arguments_are_shown_only_to_the_requester_and_approvers(
    bot: BotUnderTest,
) -> None:
    await bot.send.mention("pay INV3 50000")
    approval_id = await bot.approval_id()

    def full_arguments() -> list[dict[str, Any]]:
        return [
            m for m in bot.slack.modals_shown() if m["view"]["title"]["text"] == "Full arguments"
        ]

    for seen, stranger in enumerate((OUTSIDER, MANAGER)):  # MANAGER: small payments only
        await bot.send.click("approval_show_arguments", approval_id, user=stranger)
        assert "Only the requester and the approvers" in await bot.note(seen)
    await bot.settled()
    assert full_arguments() == []

    for shown, allowed in enumerate((CFO, REQUESTER), start=1):
        await bot.send.click("approval_show_arguments", approval_id, user=allowed)
        await bot.slack.wait_for_modal(lambda _, n=shown: len(full_arguments()) >= n)
    assert "50000" in all_text(full_arguments()[-1]["view"])


# -- membership ------------------------------------------------------------------------------
async def test_a_member_who_left_the_approvals_channel_cannot_decide_at_once(
    bot: BotUnderTest,
) -> None:
    await bot.send.mention("pay INV1 50")
    approval_id = await bot.approval_id()
    # someone who may not decide clicks: the channel's members are now cached
    await bot.send.click("approval_approve", approval_id, user=OUTSIDER)
    await refusal_to(bot, OUTSIDER)

    bot.slack.members[APPROVALS] = [OTHER_MANAGER, REQUESTER]
    reply = await bot.send.event(
        {"type": "member_left_channel", "user": MANAGER, "channel": APPROVALS, "team": "T0TEAM"}
    )
    assert reply.status == 200
    await bot.settled()

    await bot.send.click("approval_approve", approval_id, user=MANAGER)
    assert "Nothing was changed" in await refusal_to(bot, MANAGER)
    assert (await bot.services.store.get_approval(approval_id)).voters == set()
    assert paid() == []


async def test_a_user_removed_from_an_approving_group_cannot_decide_at_once(
    bot: BotUnderTest,
) -> None:
    await bot.send.mention("pay INV3 50000")
    approval_id = await bot.approval_id()
    await bot.send.click("approval_approve", approval_id, user=OUTSIDER)
    await refusal_to(bot, OUTSIDER)

    bot.slack.usergroups[TREASURY] = []
    await bot.send.event(
        {
            "type": "subteam_members_changed",
            "subteam_id": TREASURY,
            "team_id": "T0TEAM",
            "removed_users": ["UTREASURER"],
            "removed_users_count": 1,
        }
    )
    await bot.settled()

    await bot.send.click("approval_approve", approval_id, user="UTREASURER")
    assert "Nothing was changed" in await refusal_to(bot, "UTREASURER")
    assert paid() == []


async def test_only_its_author_can_retry_a_failed_message(bot: BotUnderTest) -> None:
    bot.mistral.fail_next(503)
    await bot.send.mention("pay INV1 50")
    failure = await bot.slack.wait_for("chat.update", lambda a: "could not answer" in all_text(a))
    turn_id = button_value(failure, "turn_retry")
    sent = len(bot.mistral.requests)

    await bot.send.click("turn_retry", turn_id, user=OUTSIDER, channel="C0GENERAL")
    assert "Only the person who wrote it" in await refusal_to(bot, OUTSIDER)
    assert len(bot.mistral.requests) == sent

    await bot.send.click("turn_retry", turn_id, user=REQUESTER, channel="C0GENERAL")
    await bot.card()
