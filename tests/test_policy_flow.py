"""The approval policy end to end: rules, quorum, grants, overrides, `/approvals`, App Home.

Everything goes through the bot's real HTTP endpoint with signed requests, the Slack and
Mistral stand-ins, and a real Redis.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from bot.core.approval import Status
from bot.storage import keys
from tests import agent_tools
from tests.helpers import (
    APPROVALS,
    MANAGER,
    OUTSIDER,
    REQUESTER,
    BotUnderTest,
    all_text,
    button_value,
)
from tests.standins.mistral import (
    Entry,
    ModelTurn,
    function_call,
    message,
    travel_agent_script,
)
from tests.standins.slack import SlackStandIn

ADMIN = "UADMIN"
CFO = "UCFO"
FIN1 = "UFIN1"
FIN2 = "UFIN2"
DENY_REASON = "Deleting from Slack is not allowed; open a ticket."

POLICY_CONFIG = f"""\
model: mistral-medium-latest
approvals:
  channel: {APPROVALS}
admins: {{users: [{ADMIN}]}}
policy:
  defaults: {{grant_durations: ["1h"]}}
  rules:
    - name: big purchases
      tools: ["buy"]
      when: "args.price > 500"
      approvers: {{usergroups: [S0FINANCE], users: [{CFO}]}}
      quorum: 2
    - tools: ["get_*"]
      decision: allow
    - tools: ["delete_*"]
      decision: deny
      reason: "{DENY_REASON}"
tools:
  functions:
    - ref: tests.agent_tools:get_weather
      requires_confirmation: true
    - ref: tests.agent_tools:buy
    - ref: tests.agent_tools:send_note
      requires_confirmation: true
    - ref: tests.agent_tools:delete_note
"""


@pytest.fixture
def bot_config() -> str:
    return POLICY_CONFIG


@pytest.fixture(autouse=True)
def _people(slack: SlackStandIn) -> None:
    slack.usergroups["S0FINANCE"] = [FIN1, FIN2]
    slack.usergroup_handles["S0FINANCE"] = "finance"


def office_script(turn: ModelTurn) -> list[Entry]:
    """The model: function results -> "Done: …"; otherwise a call chosen from the text."""
    results = turn.function_results()
    if results:
        return [message("Done: " + "; ".join(str(r.get("result", "")) for r in results))]
    if turn.tool_confirmations:
        return travel_agent_script(turn)  # "Done: <tool> allowed|denied"
    text = turn.last_user_text() or ""
    if found := re.search(r"buy (\w+) for (\d+)", text):
        return [function_call("buy", {"item": found.group(1), "price": int(found.group(2))})]
    if found := re.search(r"delete note (\w+)", text):
        return [function_call("delete_note", {"note_id": found.group(1)})]
    if found := re.search(r"note: (.+)", text):
        return [function_call("send_note", {"text": found.group(1)})]
    if found := re.search(r"(search|delete) mail (\w+)", text):
        name = "gmail_search" if found.group(1) == "search" else "delete_mail"
        return [function_call(name, {"q": found.group(2)}, confirmation_status="pending")]
    if found := re.search(r"weather in (\w+)", text):
        return [function_call("get_weather", {"city": found.group(1)})]
    return [message("You said: " + text)]


@pytest.fixture(autouse=True)
def _model(bot: BotUnderTest) -> None:
    bot.mistral.script = office_script


def cards(bot: BotUnderTest) -> list[dict[str, Any]]:
    return [a for a in bot.slack.calls_to("chat.postMessage") if a.get("channel") == APPROVALS]


async def answer(bot: BotUnderTest, text: str, nth: int = 1) -> dict[str, Any]:
    """The requester's thread once the agent answered with ``text`` (posted or updated) for
    the ``nth`` time: an earlier identical answer must not count as this one."""

    def total() -> int:
        return sum(
            bot.slack.count(method, lambda a: text in all_text(a))
            for method in ("chat.update", "chat.postMessage")
        )

    def answered(args: dict[str, Any]) -> bool:
        return text in all_text(args) and total() >= nth

    done = asyncio.ensure_future(bot.slack.wait_for("chat.update", answered))
    posted = asyncio.ensure_future(bot.slack.wait_for("chat.postMessage", answered))
    finished, pending = await asyncio.wait({done, posted}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    await bot.settled()
    return next(iter(finished)).result()


def function_results(bot: BotUnderTest) -> list[dict[str, Any]]:
    """Every function result the bot sent back to Mistral."""
    found = []
    for request in bot.mistral.requests:
        for entry in (request.body or {}).get("inputs") or []:
            if isinstance(entry, dict) and entry.get("type") == "function.result":
                found.append(entry)
    return found


async def audit_events(bot: BotUnderTest) -> list[dict[str, str]]:
    return await bot.services.assistant.audit.entries()


# -- rules ---------------------------------------------------------------------------------------
async def test_a_conditional_rule_lets_a_small_purchase_run_without_a_card(
    bot: BotUnderTest,
) -> None:
    await bot.send.mention("buy pens for 20")
    await answer(bot, "Done: Bought pens for 20 EUR")

    assert agent_tools.runs_of("buy") == [{"item": "pens", "price": 20}]
    assert cards(bot) == []
    [allowed] = [e for e in await audit_events(bot) if e["event"] == "auto_allowed"]
    assert allowed["tool"] == "buy"
    assert allowed["actor"] == "policy"
    assert allowed["rule"] == "no rule's condition held"
    assert allowed["requester"] == REQUESTER


async def test_a_conditional_rule_sends_a_big_purchase_to_its_approvers(
    bot: BotUnderTest,
) -> None:
    await bot.send.mention("buy laptops for 900")
    card = await bot.card()
    text = all_text(card)
    assert "<!subteam^S0FINANCE>" in text and f"<@{CFO}>" in text
    assert "2 approvals needed" in text
    assert "rule 1 (big purchases)" in text
    assert agent_tools.runs_of("buy") == []

    # a member of the approvals channel is not one of this rule's approvers
    await bot.send.click("approval_approve", button_value(card, "approval_approve"), user=MANAGER)
    note = await bot.slack.wait_for("chat.postEphemeral")
    assert note["user"] == MANAGER
    assert "<!subteam^S0FINANCE>" in note["text"] and "Nothing was changed" in note["text"]
    await bot.settled()
    approval_id = button_value(card, "approval_approve")
    assert (await bot.request(approval_id)).status is Status.PENDING
    stored = await bot.services.store.get_approval(approval_id)
    assert stored.voters == set()


async def test_a_glob_allow_rule_runs_the_tool_without_asking(bot: BotUnderTest) -> None:
    await bot.send.mention("weather in Lyon")
    await answer(bot, "Done: Sunny in Lyon")
    assert agent_tools.runs_of("get_weather") == [{"city": "Lyon"}]
    assert cards(bot) == []


async def test_a_model_that_keeps_calling_a_denied_tool_is_stopped(bot: BotUnderTest) -> None:
    bot.mistral.script = lambda turn: [function_call("delete_note", {"note_id": "N1"})]
    ts = await bot.send.mention("delete note N1")
    stopped = await bot.slack.wait_for("chat.update", lambda a: "8 rounds" in all_text(a))
    assert stopped["channel"] == "C0GENERAL"
    await bot.settled()
    assert agent_tools.runs_of("delete_note") == []
    assert len(function_results(bot)) == 8
    thread = keys.thread(f"T0TEAM:C0GENERAL:{ts}")
    assert await bot.redis.hget(thread, "state") == "idle"


async def test_a_deny_rule_rejects_at_once_and_the_model_reads_the_reason(
    bot: BotUnderTest,
) -> None:
    await bot.send.mention("delete note N1")
    await answer(bot, f"Done: {DENY_REASON}")

    assert agent_tools.runs_of("delete_note") == []
    assert cards(bot) == []
    assert [r["result"] for r in function_results(bot)] == [DENY_REASON]
    note = await bot.slack.wait_for(
        "chat.postMessage", lambda a: "Denied by the policy" in all_text(a)
    )
    assert note["channel"] == "C0GENERAL"
    assert DENY_REASON in all_text(note)
    [denied] = [e for e in await audit_events(bot) if e["event"] == "auto_denied"]
    assert denied["tool"] == "delete_note" and denied["detail"] == DENY_REASON


def confirmations(bot: BotUnderTest) -> list[dict[str, Any]]:
    """Every tool confirmation (server-side calls) the bot sent to Mistral."""
    return [
        confirmation
        for request in bot.mistral.requests
        for confirmation in (request.body or {}).get("tool_confirmations") or []
    ]


async def test_a_server_side_call_no_rule_names_asks_the_default_approvers(
    bot: BotUnderTest,
) -> None:
    await bot.send.mention("search mail invoices")
    card = await bot.card()
    assert "`gmail_search` (server-side tool)" in all_text(card)
    await bot.send.click("approval_approve", button_value(card, "approval_approve"), user=MANAGER)
    await answer(bot, "Done: gmail_search allowed")
    assert [c["confirmation"] for c in confirmations(bot)] == ["allow"]


def model_inputs(bot: BotUnderTest) -> list[str]:
    """Every user-role message the bot sent the model, as text."""
    return [
        str(entry.get("content"))
        for request in bot.mistral.requests
        for entry in (request.body or {}).get("inputs") or []
        if isinstance(entry, dict) and entry.get("type", "message.input") == "message.input"
    ]


async def test_the_reason_a_person_denied_a_server_side_call_reaches_the_model(
    bot: BotUnderTest,
) -> None:
    await bot.send.mention("search mail invoices")
    approval_id = await bot.approval_id()
    await bot.send.click("approval_deny", approval_id, user=MANAGER)
    await bot.slack.wait_for_modal()
    await bot.send.submit_view(
        "approval_deny_modal",
        approval_id,
        user=MANAGER,
        values={"deny_reason": {"reason": {"type": "plain_text_input", "value": "Mail is off"}}},
    )
    await answer(bot, "Done: gmail_search denied")
    assert [c["confirmation"] for c in confirmations(bot)] == ["deny"]
    [note] = [text for text in model_inputs(bot) if "approval system" in text]
    assert "`gmail_search`" in note and "Mail is off" in note
    assert "not from the user" in note
    # the model read it: the conversation holds it, after the confirmation
    conversation = bot.mistral.conversation_ids[0]
    history = bot.mistral.conversation_history(conversation)
    assert any("Mail is off" in str(e.get("content")) for e in history)


async def test_a_deny_rule_rejects_a_server_side_call_without_a_card(bot: BotUnderTest) -> None:
    await bot.send.mention("delete mail everything")
    await answer(bot, "Done: delete_mail denied")
    assert cards(bot) == []
    assert [c["confirmation"] for c in confirmations(bot)] == ["deny"]
    [note] = [text for text in model_inputs(bot) if "approval system" in text]
    assert DENY_REASON in note


# -- quorum ----------------------------------------------------------------------------------
async def test_a_quorum_of_two_counts_concurrent_clicks_once_each_and_resumes_once(
    bot: BotUnderTest,
) -> None:
    await bot.send.mention("buy laptops for 900")
    approval_id = await bot.approval_id()

    replies = await asyncio.gather(
        bot.send.click("approval_approve", approval_id, user=FIN1),
        bot.send.click("approval_approve", approval_id, user=CFO),
    )
    assert [reply.status for reply in replies] == [200, 200]
    await answer(bot, "Done: Bought laptops for 900 EUR")

    assert agent_tools.runs_of("buy") == [{"item": "laptops", "price": 900}]
    assert len(function_results(bot)) == 1
    stored = await bot.services.store.get_approval(approval_id)
    assert sorted(vote.user_id for vote in stored.decisions[0].votes) == sorted([FIN1, CFO])
    final = [m for (channel, _), m in bot.slack.messages.items() if channel == APPROVALS]
    [card] = final
    text = all_text(card)
    assert "*Approved* by" in text and f"<@{FIN1}>" in text and f"<@{CFO}>" in text
    assert not [b for b in card["blocks"] if b["type"] == "actions"]


async def test_the_card_shows_quorum_progress_and_a_second_click_by_the_same_person_is_refused(
    bot: BotUnderTest,
) -> None:
    await bot.send.mention("buy laptops for 900")
    approval_id = await bot.approval_id()

    await bot.send.click("approval_approve", approval_id, user=FIN1)
    progress = await bot.slack.wait_for("chat.update", lambda a: "1 of 2 approvals" in all_text(a))
    assert f"<@{FIN1}>" in all_text(progress)
    assert [b for b in progress["blocks"] if b["type"] == "actions"], "buttons stay"

    await bot.send.click("approval_approve", approval_id, user=FIN1)
    note = await bot.slack.wait_for("chat.postEphemeral", lambda a: a["user"] == FIN1)
    assert "already" in note["text"]
    await bot.settled()
    assert agent_tools.runs_of("buy") == []
    assert (await bot.request(approval_id)).status is Status.PENDING


async def test_one_deny_vetoes_a_quorum(bot: BotUnderTest) -> None:
    await bot.send.mention("buy laptops for 900")
    approval_id = await bot.approval_id()
    await bot.send.click("approval_approve", approval_id, user=FIN1)
    await bot.slack.wait_for("chat.update", lambda a: "1 of 2 approvals" in all_text(a))

    await bot.send.click("approval_deny", approval_id, user=FIN2)
    await bot.slack.wait_for_modal()
    await bot.send.submit_view(
        "approval_deny_modal",
        approval_id,
        user=FIN2,
        values={"deny_reason": {"reason": {"type": "plain_text_input", "value": "Over budget"}}},
    )
    await answer(bot, "Done: Over budget")
    assert agent_tools.runs_of("buy") == []
    assert (await bot.request(approval_id)).status is Status.DENIED


# -- grants ----------------------------------------------------------------------------------
async def grant_for_notes(bot: BotUnderTest) -> str:
    """Ask for a note, approve it for 1 hour; the grant's id."""
    await bot.send.mention("note: lunch at noon")
    card = await bot.card()
    approval_id = button_value(card, "approval_approve")
    assert button_value(card, "approval_grant_3600") == approval_id
    await bot.send.click("approval_grant_3600", approval_id, user=MANAGER)
    await answer(bot, "Done: sent")
    [grant] = await bot.services.console.grants(ADMIN)
    return grant.id


async def test_approve_for_an_hour_lets_the_next_call_run_without_a_card(
    bot: BotUnderTest,
) -> None:
    grant_id = await grant_for_notes(bot)
    assert await bot.redis.ttl(keys.grant(grant_id)) > 3500

    await bot.send.mention("note: coffee at four")
    await answer(bot, "Done: sent", nth=2)
    assert [r["text"] for r in agent_tools.runs_of("send_note")] == [
        "lunch at noon",
        "coffee at four",
    ]
    assert len(cards(bot)) == 1
    note = await bot.slack.wait_for(
        "chat.postMessage", lambda a: "Allowed by a grant" in all_text(a)
    )
    assert grant_id in all_text(note)
    events = [e["event"] for e in await audit_events(bot)]
    assert "grant_created" in events and "granted_run" in events


async def test_a_grant_covers_only_its_requester(bot: BotUnderTest) -> None:
    await grant_for_notes(bot)
    await bot.send.mention("note: from someone else", user=OUTSIDER)
    await bot.card(1)
    assert len(agent_tools.runs_of("send_note")) == 1


async def test_an_expired_grant_asks_again(bot: BotUnderTest) -> None:
    grant_id = await grant_for_notes(bot)
    grant = await bot.services.console.policy_store.get_grant(grant_id)
    assert grant is not None
    await bot.redis.pexpire(keys.grant(grant_id), 1)
    await bot.redis.pexpire(keys.grant_for(REQUESTER, grant.gate, "send_note", "*"), 1)
    await asyncio.sleep(0.05)

    await bot.send.mention("note: after the hour")
    await bot.card(1)
    assert len(agent_tools.runs_of("send_note")) == 1
    assert await bot.services.console.grants(ADMIN) == []


async def test_an_admin_revokes_a_grant_and_the_tool_asks_again(bot: BotUnderTest) -> None:
    grant_id = await grant_for_notes(bot)

    await bot.send.command("/approvals", f"revoke {grant_id}", user=REQUESTER)
    refused = await bot.slack.wait_for_response(lambda r: "admins" in all_text(r))
    assert "Nothing was changed" in all_text(refused)
    assert await bot.services.console.grants(ADMIN) != []

    await bot.send.command("/approvals", f"revoke {grant_id}", user=ADMIN)
    done = await bot.slack.wait_for_response(lambda r: "revoked" in all_text(r))
    assert done["response_type"] == "ephemeral"
    assert await bot.services.console.grants(ADMIN) == []
    revoked = [e for e in await audit_events(bot) if e["event"] == "grant_revoked"]
    assert [(e["actor"], e["grant_id"]) for e in revoked] == [(ADMIN, grant_id)]

    await bot.send.mention("note: once more")
    await bot.card(1)
    assert len(agent_tools.runs_of("send_note")) == 1


async def test_a_tampered_grant_duration_changes_nothing(bot: BotUnderTest) -> None:
    await bot.send.mention("note: hello")
    approval_id = await bot.approval_id()
    await bot.send.click("approval_grant_999999", approval_id, user=MANAGER)
    note = await bot.slack.wait_for("chat.postEphemeral")
    assert "not offered" in note["text"]
    await bot.settled()
    assert (await bot.request(approval_id)).status is Status.PENDING
    assert await bot.services.console.grants(ADMIN) == []


# -- overrides and /approvals ---------------------------------------------------------------------
async def test_overrides_are_for_admins_only(bot: BotUnderTest) -> None:
    await bot.send.command("/approvals", "require get_weather", user=REQUESTER)
    reply = await bot.slack.wait_for_response()
    assert "Only admins" in all_text(reply)
    assert await bot.redis.hgetall(keys.OVERRIDES) == {}
    await bot.send.command("/approvals", "reset get_weather", user=OUTSIDER)
    await bot.slack.wait_for_response(lambda r: "Only admins" in all_text(r) and r is not reply)
    assert await bot.redis.hgetall(keys.OVERRIDES) == {}


async def test_an_admin_requires_approval_for_an_allowed_tool_then_resets_it(
    bot: BotUnderTest,
) -> None:
    await bot.send.command("/approvals", "require get_weather", user=ADMIN)
    await bot.slack.wait_for_response(lambda r: "now needs approval" in all_text(r))

    await bot.send.mention("weather in Lyon")
    card = await bot.card()
    assert "override by an admin" in all_text(card)
    assert agent_tools.runs_of("get_weather") == []

    await bot.send.command("/approvals", "policy", user=OUTSIDER)
    policy = await bot.slack.wait_for_response(lambda r: "Approval policy" in all_text(r))
    text = all_text(policy)
    assert "`get_weather` → *require*" in text and f"<@{ADMIN}>" in text
    assert "big purchases" not in text or "`buy`" in text

    await bot.send.command("/approvals", "reset get_weather", user=ADMIN)
    await bot.slack.wait_for_response(lambda r: "follows the rules again" in all_text(r))
    events = [(e["event"], e["actor"]) for e in await audit_events(bot)]
    assert ("override_require", ADMIN) in events and ("override_reset", ADMIN) in events


async def test_an_admin_allows_a_tool_that_asks(bot: BotUnderTest) -> None:
    await bot.send.command("/approvals", "allow send_note", user=ADMIN)
    await bot.slack.wait_for_response(lambda r: "runs without approval" in all_text(r))
    await bot.send.mention("note: no questions")
    await answer(bot, "Done: sent")
    assert cards(bot) == []


async def test_approvals_pending_lists_open_requests_with_links(bot: BotUnderTest) -> None:
    await bot.send.mention("note: first")
    await bot.card()
    await bot.slack.wait_for("chat.update", lambda a: "needs approval" in all_text(a))
    await bot.send.command("/approvals", "pending", user=OUTSIDER)
    reply = await bot.slack.wait_for_response(lambda r: "waiting" in all_text(r))
    text = all_text(reply)
    assert "1 request waiting" in text
    assert "`send_note`" in text and f"<@{REQUESTER}>" in text
    assert "|view>" in text


async def test_approvals_without_arguments_explains_itself(bot: BotUnderTest) -> None:
    reply = await bot.send.command("/approvals", "", user=OUTSIDER)
    assert reply.status == 200
    help_text = all_text(await bot.slack.wait_for_response())
    assert "/approvals pending" in help_text and "Admins only" in help_text


async def open_home(bot: BotUnderTest, user: str) -> dict[str, Any]:
    """Open ``user``'s App Home tab; the view the bot published."""
    await bot.send.home_opened(user)
    published = await bot.slack.wait_for("views.publish", lambda a: a["user_id"] == user)
    return dict(published["view"])


# -- App Home --------------------------------------------------------------------------------
async def test_app_home_shows_an_approver_what_they_can_decide_with_working_buttons(
    bot: BotUnderTest,
) -> None:
    await bot.send.mention("buy laptops for 900")
    approval_id = await bot.approval_id()

    home = await open_home(bot, CFO)
    assert home["type"] == "home"
    assert "Waiting for your decision* (1 pending in all)" in all_text(home)
    assert button_value(home, "approval_approve") == approval_id

    await bot.send.home_click("approval_approve", approval_id, user=CFO)
    await bot.slack.wait_for("chat.update", lambda a: "1 of 2 approvals" in all_text(a))
    refreshed = await bot.slack.wait_for(
        "views.publish",
        lambda a: a["user_id"] == CFO and "Nothing is waiting" in all_text(a["view"]),
    )
    assert refreshed["view"]["type"] == "home"


async def test_app_home_pages_through_a_long_queue(bot: BotUnderTest) -> None:
    for n in range(23):
        await bot.send.mention(f"buy laptops for {900 + n}")
    await wait_until_pending(bot, 23)

    first = await open_home(bot, CFO)
    approve = [
        b for b in first["blocks"] if b["type"] == "actions" and b["block_id"] != "home_page"
    ]
    assert len(approve) == 20
    pages = next(b for b in first["blocks"] if b.get("block_id") == "home_page")
    assert [(e["text"]["text"], e["value"]) for e in pages["elements"]] == [("Next page ›", "20")]

    published = bot.slack.count("views.publish")
    await bot.send.home_click("home_page", "20", user=CFO, block_id="home_page")
    await bot.slack.wait_for(
        "views.publish", lambda _: bot.slack.count("views.publish") > published
    )
    second = bot.slack.calls_to("views.publish")[-1]["view"]
    shown = [b for b in second["blocks"] if b["type"] == "actions" and b["block_id"] != "home_page"]
    assert len(shown) == 3
    assert {b["block_id"] for b in shown}.isdisjoint({b["block_id"] for b in approve})
    pages = next(b for b in second["blocks"] if b.get("block_id") == "home_page")
    assert [(e["text"]["text"], e["value"]) for e in pages["elements"]] == [("« First page", "0")]


async def wait_until_pending(bot: BotUnderTest, count: int) -> None:
    async def enough() -> bool:
        return int(await bot.redis.zcard(keys.PENDING_ZSET)) >= count

    for _ in range(400):
        if await enough():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} requests pending")


async def test_app_home_shows_a_requester_their_requests_and_outcomes(
    bot: BotUnderTest,
) -> None:
    await bot.send.mention("delete note N1")
    await answer(bot, f"Done: {DENY_REASON}")
    await bot.send.mention("note: pending one")
    await bot.card()

    text = all_text(await open_home(bot, REQUESTER))
    assert "Your recent requests" in text
    assert "`send_note`" in text and "waiting for a decision" in text
    assert "`delete_note`" in text and "denied by the policy" in text


async def test_app_home_for_someone_with_nothing_to_do(bot: BotUnderTest) -> None:
    await bot.send.mention("buy laptops for 900")
    await bot.card()
    text = all_text(await open_home(bot, OUTSIDER))
    assert "Nothing is waiting for your decision" in text
    assert "have not asked" in text
