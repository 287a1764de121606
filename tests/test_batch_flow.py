"""Several calls in one deferral, each decided on its own; and editing arguments, then
approving them. End to end: signed requests to the bot's endpoint, the Slack and Mistral
stand-ins, a real Redis.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from tests import agent_tools
from tests.helpers import (
    MANAGER,
    OTHER_MANAGER,
    BotUnderTest,
    all_text,
    button_block,
    button_value,
)
from tests.standins.mistral import Entry, ModelTurn, function_call, message
from tests.test_approval_flow import card_ts
from tests.test_policy_flow import (  # _people: S0FINANCE is FIN1 and FIN2
    FIN1,
    _people,  # noqa: F401
    answer,
    audit_events,
    function_results,
)

BATCH_CONFIG = """\
model: mistral-medium-latest
approvals:
  channel: C0APPROVALS
policy:
  defaults: {allow_edit: true, grant_durations: []}
  rules:
    - name: purchases
      tools: [buy]
      approvers: {usergroups: [S0FINANCE]}
    - name: deletions
      tools: [delete_note]
      allow_edit: false
    - name: seats
      tools: [book_seats]
      quorum: 2
tools:
  functions:
    - {ref: "tests.agent_tools:send_note", requires_confirmation: true}
    - {ref: "tests.agent_tools:book_flight", requires_confirmation: true}
    - {ref: "tests.agent_tools:delete_note"}
    - {ref: "tests.agent_tools:buy"}
    - {ref: "tests.agent_tools:book_seats"}
"""

OFFSITE = [
    ("send_note", {"text": "Offsite on Friday"}),
    ("book_flight", {"destination": "Paris", "date": "2026-12-01"}),
    ("delete_note", {"note_id": "N7"}),
]


@pytest.fixture
def bot_config() -> str:
    return BATCH_CONFIG


def batch_script(turn: ModelTurn) -> list[Entry]:
    """The model: results -> "Done: r1 | r2 | …"; else the calls the message asks for."""
    results = turn.function_results()
    if results:
        return [message("Done: " + " | ".join(str(r.get("result")) for r in results))]
    text = turn.last_user_text() or ""
    if "plan the offsite" in text:
        return [function_call(name, arguments) for name, arguments in OFFSITE]
    if "chairs" in text:
        return [
            function_call("buy", {"item": "chairs", "price": 300}),
            function_call("send_note", {"text": "Chairs are coming"}),
        ]
    if "seats" in text:
        return [function_call("book_seats", {"flight": "AF12", "seats": 2})]
    return [message("You said: " + text)]


@pytest.fixture(autouse=True)
def _model(bot: BotUnderTest) -> None:
    bot.mistral.script = batch_script


def current_card(bot: BotUnderTest) -> dict[str, Any]:
    return bot.slack.messages[("C0APPROVALS", card_ts(bot))]


async def click(
    bot: BotUnderTest, action_id: str, call: int | None, *, user: str, block_id: str | None = None
) -> None:
    """Click ``action_id`` of call ``call`` (None: the Approve all row) on the card as it is."""
    card = current_card(bot)
    await bot.send.click(
        action_id,
        button_value(card, action_id),
        user=user,
        block_id=block_id or button_block(card, action_id, call),
    )


async def open_edit(bot: BotUnderTest, call: int, *, user: str) -> dict[str, Any]:
    """Click Edit on call ``call``; the modal Slack was asked to open."""
    before = len(bot.slack.modals_shown())
    await click(bot, "approval_edit", call, user=user)
    await bot.slack.wait_for_modal(lambda _: len(bot.slack.modals_shown()) > before)
    return dict(bot.slack.modals_shown()[-1]["view"])


def text_input(value: str) -> dict[str, Any]:
    return {"value": {"type": "plain_text_input", "value": value}}


def number_input(value: str) -> dict[str, Any]:
    return {"value": {"type": "number_input", "value": value}}


def resumes(bot: BotUnderTest) -> int:
    """Requests that sent the decided calls' results back to Mistral."""
    return sum(
        1
        for request in bot.mistral.requests
        if any(
            isinstance(entry, dict) and entry.get("type") == "function.result"
            for entry in (request.body or {}).get("inputs") or []
        )
    )


async def card_shows(bot: BotUnderTest, text: str) -> None:
    await bot.slack.wait_for(
        "chat.update", lambda a: a.get("channel") == "C0APPROVALS" and text in all_text(a)
    )


# -- several calls, each decided on its own ------------------------------------------------------
async def test_a_batch_of_three_is_approved_denied_and_edited_then_resumes_once(
    bot: BotUnderTest,
) -> None:
    await bot.send.mention("plan the offsite")
    card = await bot.card()
    approval_id = button_value(card, "approval_approve")
    rows = [block["block_id"] for block in card["blocks"] if block["type"] == "actions"]
    assert rows == [f"{approval_id}.{n}.r0" for n in (0, 1, 2)] + [f"{approval_id}.all.r0"]
    text = all_text(card)
    for name, _ in OFFSITE:
        assert f"`{name}`" in text
    assert "Approve all" in text and "Deny all" in text
    button_block(card, "approval_edit", 1)  # book_flight may be edited …
    with pytest.raises(AssertionError):
        button_block(card, "approval_edit", 2)  # … delete_note may not (allow_edit: false)

    # 1. approve send_note: the card says so, nothing resumes yet
    await click(bot, "approval_approve", 0, user=MANAGER)
    await card_shows(bot, f"*Approved* by <@{MANAGER}>")
    # 2. deny delete_note, with a reason, through its own modal
    await click(bot, "approval_deny", 2, user=OTHER_MANAGER)
    modal = await bot.slack.wait_for_modal()
    assert modal["view"]["private_metadata"] == f"{approval_id}:2"
    assert "`delete_note`" in all_text(modal["view"]) and "`send_note`" not in all_text(
        modal["view"]
    )
    await bot.send.submit_view(
        "approval_deny_modal",
        modal["view"]["private_metadata"],
        user=OTHER_MANAGER,
        values={"deny_reason": {"reason": {"type": "plain_text_input", "value": "Keep N7"}}},
    )
    await card_shows(bot, "Keep N7")
    await bot.settled()
    assert resumes(bot) == 0 and agent_tools.CALLS == []

    # 3. edit book_flight: the form is the tool's schema, filled with the model's arguments
    view = await open_edit(bot, 1, user=MANAGER)
    inputs = {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}
    assert set(inputs) == {"arg:destination", "arg:date"}
    assert inputs["arg:date"]["element"]["initial_value"] == "2026-12-01"
    assert inputs["arg:date"]["hint"]["text"] == "The date, YYYY-MM-DD."
    reply = await bot.send.submit_view(
        "approval_edit_modal",
        view["private_metadata"],
        user=MANAGER,
        values={"arg:destination": text_input("Paris"), "arg:date": text_input("2026-12-02")},
    )
    assert reply.status == 200 and "errors" not in reply.text

    await answer(bot, "Done:")
    assert resumes(bot) == 1
    # the SDK runs approved calls concurrently: any order, each once
    assert sorted(agent_tools.CALLS) == [
        ("book_flight", {"destination": "Paris", "date": "2026-12-02"}),
        ("send_note", {"text": "Offsite on Friday"}),
    ]
    by_call = {r["tool_call_id"]: r["result"] for r in function_results(bot)}
    calls = {
        entry["name"]: entry["tool_call_id"]
        for conversation_id in bot.mistral.conversation_ids
        for entry in bot.mistral.conversation_history(conversation_id)
        if entry.get("type") == "function.call"
    }
    assert by_call[calls["send_note"]] == "sent"
    assert by_call[calls["delete_note"]] == "Keep N7"
    flight = by_call[calls["book_flight"]]
    assert "a person changed the arguments" in flight
    assert '"date": "2026-12-02"' in flight and '"date": "2026-12-01"' in flight
    assert flight.endswith("Booked Paris on 2026-12-02: FL-1")

    final = all_text(current_card(bot))
    assert "*Asked for*" in final and "*Edited*" in final
    assert "2 approved, 1 denied" in final
    thread = await bot.slack.wait_for(
        "chat.update", lambda a: "with changed arguments" in all_text(a)
    )
    note = all_text(thread)
    assert f"`send_note` approved by <@{MANAGER}>" in note
    assert f"`delete_note` denied by <@{OTHER_MANAGER}>: Keep N7" in note
    assert "*Ran with*" in note and "2026-12-02" in note

    events = await audit_events(bot)
    [edited] = [e for e in events if e["event"] == "edited_approved"]
    assert edited["actor"] == MANAGER and edited["tool"] == "book_flight"
    assert json.loads(edited["arguments"])["date"] == "2026-12-01"
    assert json.loads(edited["edited_arguments"])["date"] == "2026-12-02"
    assert [e["tool"] for e in events if e["event"] == "denied"] == ["delete_note"]


async def test_approve_all_decides_every_call_in_one_click_and_resumes_once(
    bot: BotUnderTest,
) -> None:
    await bot.send.mention("plan the offsite")
    card = await bot.card()
    approval_id = button_value(card, "approval_approve_all")
    block_id = button_block(card, "approval_approve_all", None)
    clicks = [
        bot.send.click("approval_approve_all", approval_id, user=user, block_id=block_id)
        for user in (MANAGER, OTHER_MANAGER, MANAGER, OTHER_MANAGER, MANAGER)
    ]
    await asyncio.gather(*clicks)
    await answer(bot, "Done:")
    assert resumes(bot) == 1
    assert sorted(name for name, _ in agent_tools.CALLS) == [
        "book_flight",
        "delete_note",
        "send_note",
    ]
    assert "3 approved, 0 denied" in all_text(current_card(bot))
    stored = await bot.services.store.get_approval(approval_id)
    assert stored.status.value == "approved"
    assert {d.user_id for d in stored.decisions} <= {MANAGER, OTHER_MANAGER}


async def test_each_call_waits_for_its_own_approvers(bot: BotUnderTest) -> None:
    await bot.send.mention("buy chairs and tell the team")
    card = await bot.card()
    text = all_text(card)
    assert text.count("*Waits for:*") == 2
    assert "*Waits for:* <!subteam^S0FINANCE>" in text
    assert "*Waits for:* members of <#C0APPROVALS>" in text

    # a channel member's Approve all covers only the call they may decide
    await click(bot, "approval_approve_all", None, user=MANAGER)
    note = await bot.slack.wait_for("chat.postEphemeral", lambda a: a["user"] == MANAGER)
    assert "applies to 1 call" in note["text"] and "`buy`" in note["text"]
    await card_shows(bot, f"*Approved* by <@{MANAGER}>")
    await bot.settled()
    assert resumes(bot) == 0

    # finance may not decide the note (decided anyway), and decides the purchase
    await click(bot, "approval_approve", 0, user=FIN1)
    await answer(bot, "Done:")
    assert resumes(bot) == 1
    assert agent_tools.runs_of("buy") == [{"item": "chairs", "price": 300}]
    assert agent_tools.runs_of("send_note") == [{"text": "Chairs are coming"}]


async def test_a_click_on_a_call_someone_else_decides_changes_nothing(bot: BotUnderTest) -> None:
    await bot.send.mention("buy chairs and tell the team")
    await bot.card()
    await click(bot, "approval_approve", 0, user=MANAGER)  # buy: finance only
    note = await bot.slack.wait_for("chat.postEphemeral", lambda a: a["user"] == MANAGER)
    assert "<!subteam^S0FINANCE>" in note["text"] and "Nothing was changed" in note["text"]
    await bot.settled()
    approval_id = button_value(current_card(bot), "approval_approve")
    stored = await bot.services.store.get_approval(approval_id)
    assert stored.undecided == [0, 1] and stored.voters == set()


# -- edit, then approve --------------------------------------------------------------------------
async def test_an_edit_that_fails_validation_is_shown_inline_then_succeeds(
    bot: BotUnderTest,
) -> None:
    await bot.send.mention("book seats on AF12")
    await bot.card()
    view = await open_edit(bot, 0, user=MANAGER)
    seats = next(b for b in view["blocks"] if b.get("block_id") == "arg:seats")
    assert seats["element"]["type"] == "number_input"
    assert seats["element"]["initial_value"] == "2"

    async def submit(value: str) -> dict[str, Any]:
        reply = await bot.send.submit_view(
            "approval_edit_modal",
            view["private_metadata"],
            user=MANAGER,
            values={"arg:flight": text_input("AF12"), "arg:seats": number_input(value)},
        )
        assert reply.status == 200
        return json.loads(reply.text) if reply.text else {}

    assert await submit("12") == {
        "response_action": "errors",
        "errors": {"arg:seats": "Must be at most 9."},
    }
    assert (await submit(""))["errors"] == {"arg:seats": "This cannot be emptied; enter a value."}
    approval_id = button_value(current_card(bot), "approval_approve")
    stored = await bot.services.store.get_approval(approval_id)
    assert stored.revision == 0 and stored.voters == set()  # nothing was recorded

    assert await submit("3") == {}
    # the quorum is two: the edit is one approval, of the new arguments
    await card_shows(bot, f"1 of 2 approvals with arguments edited by <@{MANAGER}>")
    await bot.settled()
    assert agent_tools.CALLS == [] and resumes(bot) == 0

    # an approval clicked on the card as it was before the edit is refused
    stale = f"{approval_id}.0.r0"
    await click(bot, "approval_approve", 0, user=OTHER_MANAGER, block_id=stale)
    note = await bot.slack.wait_for("chat.postEphemeral", lambda a: a["user"] == OTHER_MANAGER)
    assert "edited the arguments" in note["text"]
    await bot.settled()
    assert (await bot.services.store.get_approval(approval_id)).voters == {MANAGER}

    await click(bot, "approval_approve", 0, user=OTHER_MANAGER)
    await answer(bot, "Done:")
    assert agent_tools.runs_of("book_seats") == [{"flight": "AF12", "seats": 3}]
    assert resumes(bot) == 1


async def test_a_call_whose_rule_forbids_editing_cannot_be_edited(bot: BotUnderTest) -> None:
    await bot.send.mention("plan the offsite")
    card = await bot.card()
    approval_id = button_value(card, "approval_approve")
    # a forged Edit click on delete_note (allow_edit: false)
    await bot.send.click("approval_edit", approval_id, user=MANAGER, block_id=f"{approval_id}.2.r0")
    assert "cannot be edited" in await bot.note()
    # and a forged submission of an edit form for it
    reply = await bot.send.submit_view(
        "approval_edit_modal",
        f"{approval_id}:2:0",
        user=MANAGER,
        values={"arg:note_id": text_input("N8")},
    )
    assert reply.status == 200
    await bot.slack.wait_for("chat.postEphemeral")
    await bot.settled()
    assert not [m for m in bot.slack.modals_shown() if "callback_id" in m["view"]], "no form"
    stored = await bot.services.store.get_approval(approval_id)
    assert stored.edited == [] and stored.voters == set()


async def test_server_side_calls_offer_no_edit(bot: BotUnderTest) -> None:
    bot.mistral.script = lambda turn: (
        [message("Done")]
        if turn.tool_confirmations
        else [function_call("web_search", {"query": "x"}, confirmation_status="pending")]
    )
    await bot.send.mention("search the web")
    card = await bot.card()
    assert "(server-side tool)" in all_text(card)
    assert not re.search(r"approval_edit", json.dumps(card["blocks"]))
