"""Approvals end to end: cards, decisions, resumes, through the bot's real HTTP endpoint."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.core.approval import Resume, Status
from bot.mistral.tools import OUTCOME_UNKNOWN
from bot.storage import keys
from tests import agent_tools
from tests.helpers import (
    APPROVALS,
    MANAGER,
    OTHER_MANAGER,
    OUTSIDER,
    REQUESTER,
    BotUnderTest,
    all_text,
    button_value,
)
from tests.standins.mistral import ModelTurn, function_call, message, scripted

BOOK = "book a flight to Rodez"


def appends(bot: BotUnderTest) -> list[dict]:
    return [r.body for r in bot.mistral.requests if r.path.count("/") == 3 and r.body is not None]


async def test_card_is_stored_then_posted_and_the_requester_is_told(bot: BotUnderTest) -> None:
    ts = await bot.send.mention(BOOK)
    card = await bot.card()
    approval_id = button_value(card, "approval_approve")

    stored = await bot.redis.hgetall(keys.approval(approval_id))
    assert stored["status"] == "pending"
    record = json.loads(stored["record"])
    assert record["deferral"]["deferred_calls"][0]["tool_name"] == "book_flight"
    assert await bot.redis.zscore(keys.PENDING_ZSET, approval_id) is not None

    text = all_text(card)
    assert f"<@{REQUESTER}> asked in <https://example.slack.com/archives/C0GENERAL/p" in text
    assert "book a flight to Rodez" in text
    assert '"destination": "Rodez"' in text
    buttons = {
        b["action_id"]: b
        for blk in card["blocks"]
        if blk["type"] == "actions"
        for b in blk["elements"]
    }
    assert buttons["approval_approve"]["style"] == "primary"
    assert buttons["approval_deny"]["style"] == "danger"
    assert {b["value"] for b in buttons.values()} == {approval_id}

    waiting = await bot.slack.wait_for("chat.update", lambda a: "needs approval" in all_text(a))
    assert waiting["channel"] == "C0GENERAL"
    assert f"<#{APPROVALS}>" in all_text(waiting)
    assert "view the request" in all_text(waiting)
    assert bot.slack.messages[("C0GENERAL", waiting["ts"])]["thread_ts"] == ts
    assert agent_tools.runs_of("book_flight") == []


async def test_approve_runs_the_tool_once_answers_and_updates_the_card(bot: BotUnderTest) -> None:
    await bot.send.mention(BOOK)
    card = await bot.card()
    approval_id = button_value(card, "approval_approve")

    reply = await bot.send.click("approval_approve", approval_id, user=MANAGER)
    assert reply.status == 200

    answer = await bot.slack.wait_for(
        "chat.postMessage", lambda a: "Done: Booked Rodez" in all_text(a)
    )
    assert answer["channel"] == "C0GENERAL"
    await bot.settled()
    assert agent_tools.runs_of("book_flight") == [{"destination": "Rodez", "date": "2026-12-01"}]
    final = bot.card_state(card_ts(bot))
    text = all_text(final)
    assert f"Approved* by <@{MANAGER}>" in text
    assert "answered in the requester's thread" in text
    assert not [b for b in final["blocks"] if b["type"] == "actions"]
    assert (await bot.request(approval_id)).resume is Resume.DONE
    assert await bot.redis.zscore(keys.PENDING_ZSET, approval_id) is None


def card_ts(bot: BotUnderTest) -> str:
    for call in bot.slack.calls:
        if call.method == "chat.postMessage" and call.args.get("channel") == APPROVALS:
            return str(call.response["ts"])
    raise AssertionError("no card")


async def test_deny_asks_for_a_reason_which_the_model_receives(bot: BotUnderTest) -> None:
    await bot.send.mention(BOOK)
    approval_id = await bot.approval_id()

    # on a card from before per-call buttons (one actions block): a Deny there is every call
    await bot.send.click("approval_deny", approval_id, user=MANAGER, block_id="approval_actions")
    modal = await bot.slack.wait_for_modal()
    assert modal["view"]["private_metadata"] == f"{approval_id}:all"
    assert agent_tools.CALLS == []

    reply = await bot.send.submit_view(
        "approval_deny_modal",
        approval_id,
        user=MANAGER,
        values={"deny_reason": {"reason": {"type": "plain_text_input", "value": "Too pricey"}}},
    )
    assert reply.status == 200
    await bot.slack.wait_for("chat.postMessage", lambda a: "Done: Too pricey" in all_text(a))
    await bot.settled()

    results = [
        i for body in appends(bot) for i in body["inputs"] if i.get("type") == "function.result"
    ]
    assert [r["result"] for r in results] == ["Too pricey"]
    assert agent_tools.runs_of("book_flight") == []
    text = all_text(bot.card_state(card_ts(bot)))
    assert f"Denied* by <@{MANAGER}>" in text and "Too pricey" in text


async def test_unauthorized_clicker_changes_nothing(bot: BotUnderTest) -> None:
    await bot.send.mention(BOOK)
    approval_id = await bot.approval_id()

    await bot.send.click("approval_approve", approval_id, user=OUTSIDER)
    note = await bot.slack.wait_for("chat.postEphemeral")
    assert note["user"] == OUTSIDER
    assert "Only members of" in note["text"]
    await bot.settled()
    assert (await bot.request(approval_id)).status is Status.PENDING
    assert appends(bot) == []
    # the membership answer is cached in Redis
    assert await bot.redis.get(keys.channel_members(APPROVALS)) is not None


async def test_self_approval_is_refused(bot: BotUnderTest) -> None:
    await bot.send.mention(BOOK)
    approval_id = await bot.approval_id()

    await bot.send.click("approval_approve", approval_id, user=REQUESTER)
    note = await bot.slack.wait_for("chat.postEphemeral")
    assert "someone else must approve" in note["text"]
    await bot.settled()
    assert (await bot.request(approval_id)).status is Status.PENDING
    assert agent_tools.CALLS == []


@pytest.mark.parametrize("self_approval", [True])
async def test_self_approval_when_allowed(bot: BotUnderTest) -> None:
    await bot.send.mention(BOOK)
    approval_id = await bot.approval_id()
    await bot.send.click("approval_approve", approval_id, user=REQUESTER)
    await bot.slack.wait_for("chat.postMessage", lambda a: "Done: Booked" in all_text(a))
    assert len(agent_tools.runs_of("book_flight")) == 1


async def test_an_approved_call_left_executing_by_a_dead_process_is_not_run_again(
    bot: BotUnderTest,
) -> None:
    await bot.send.mention(BOOK)
    approval_id = await bot.approval_id()
    stored = await bot.services.store.get_approval(approval_id)
    tool_call_id = stored.calls[0].tool_call_id
    # a process marked the call as running, then died before storing its result
    await bot.redis.set(keys.call_executing(tool_call_id), "1700000000.0")

    await bot.send.click("approval_approve", approval_id, user=MANAGER)
    await bot.slack.wait_for("chat.postMessage", lambda a: "Done:" in all_text(a))
    await bot.settled()
    assert agent_tools.runs_of("book_flight") == []
    results = [
        entry
        for body in appends(bot)
        for entry in body["inputs"]
        if entry.get("type") == "function.result"
    ]
    assert [r["result"] for r in results] == [OUTCOME_UNKNOWN]


async def test_an_approved_call_is_marked_executing_and_its_result_kept(bot: BotUnderTest) -> None:
    await bot.send.mention(BOOK)
    approval_id = await bot.approval_id()
    await bot.send.click("approval_approve", approval_id, user=MANAGER)
    await bot.slack.wait_for("chat.postMessage", lambda a: "Done:" in all_text(a))
    await bot.settled()
    tool_call_id = (await bot.services.store.get_approval(approval_id)).calls[0].tool_call_id
    assert await bot.redis.exists(keys.call_executing(tool_call_id)) == 1
    assert await bot.redis.get(keys.call_result(tool_call_id)) == "Booked Rodez on 2026-12-01: FL-1"


async def test_concurrent_clicks_decide_once(bot: BotUnderTest) -> None:
    await bot.send.mention(BOOK)
    approval_id = await bot.approval_id()

    replies = await asyncio.gather(
        *[
            bot.send.click("approval_approve", approval_id, user=user)
            for user in [MANAGER, OTHER_MANAGER] * 5
        ]
    )
    assert {r.status for r in replies} == {200}
    await bot.slack.wait_for("chat.postMessage", lambda a: "Done: Booked" in all_text(a))
    await bot.settled()

    assert len(agent_tools.runs_of("book_flight")) == 1
    assert len(appends(bot)) == 1
    notes = bot.slack.calls_to("chat.postEphemeral")
    assert len(notes) == 9
    decision = (await bot.request(approval_id)).decision
    assert decision is not None
    assert all(f"already approved by <@{decision.user_id}>" in n["text"] for n in notes)


async def test_a_click_after_the_decision_says_who_decided(bot: BotUnderTest) -> None:
    await bot.send.mention(BOOK)
    approval_id = await bot.approval_id()
    await bot.send.click("approval_approve", approval_id, user=MANAGER)
    await bot.slack.wait_for("chat.postMessage", lambda a: "Done: Booked" in all_text(a))

    await bot.send.click("approval_deny", approval_id, user=OTHER_MANAGER)
    # Deny opens its modal at once (the trigger lasts 3 s); the modal then says why not
    note = await bot.slack.wait_for_modal()
    assert f"already approved by <@{MANAGER}>" in all_text(note["view"])
    assert "callback_id" not in note["view"], "no Deny form"


async def test_a_resumed_run_that_defers_again_gets_a_new_card(bot: BotUnderTest) -> None:
    def script(turn: ModelTurn) -> list[dict]:
        results = turn.function_results()
        if not results:
            return [function_call("book_flight", {"destination": "Rodez", "date": "2026-12-01"})]
        if "FL-1" in results[0]["result"] and not any(
            e.get("name") == "send_note" for e in turn.history
        ):
            return [function_call("send_note", {"text": "Booked FL-1"})]
        return [message("All done: " + results[0]["result"])]

    bot.mistral.script = script
    await bot.send.mention(BOOK)
    first = await bot.approval_id(0)
    await bot.send.click("approval_approve", first, user=MANAGER)

    second_card = await bot.card(1)
    second = button_value(second_card, "approval_approve")
    assert second != first
    assert "send_note" in all_text(second_card)
    assert agent_tools.runs_of("send_note") == []

    await bot.send.click("approval_approve", second, user=OTHER_MANAGER)
    await bot.slack.wait_for("chat.postMessage", lambda a: "All done: sent" in all_text(a))
    await bot.settled()
    assert len(agent_tools.runs_of("book_flight")) == 1
    assert len(agent_tools.runs_of("send_note")) == 1
    assert (await bot.request(first)).resume is Resume.DEFERRED
    assert (await bot.request(second)).resume is Resume.DONE


async def test_message_during_pending_approval_is_queued_then_answered_in_order(
    bot: BotUnderTest,
) -> None:
    ts = await bot.send.mention(BOOK)
    approval_id = await bot.approval_id()

    await bot.send.message(
        "and a hotel?", channel="C0GENERAL", channel_type="channel", thread_ts=ts
    )
    queued = await bot.slack.wait_for("chat.postMessage", lambda a: "queued" in all_text(a))
    assert queued["thread_ts"] == ts
    assert "approval is pending" in queued["text"]
    assert len(bot.mistral.requests) == 1  # nothing sent out of order

    await bot.send.click("approval_approve", approval_id, user=MANAGER)
    await bot.slack.wait_for("chat.update", lambda a: "You said: and a hotel?" in all_text(a))
    await bot.settled()
    sent = appends(bot)
    assert [i["type"] for i in sent[0]["inputs"]] == ["function.result"]
    assert sent[1]["inputs"][0]["content"] == "and a hotel?"
    assert await bot.redis.hget(keys.thread(f"T0TEAM:C0GENERAL:{ts}"), "state") == "idle"


async def test_messages_while_the_model_works_are_queued(bot: BotUnderTest) -> None:
    bot.mistral.delay_next(0.5)
    ts = await bot.send.message("first")
    await bot.send.message("second", thread_ts=ts)
    await bot.slack.wait_for("chat.postMessage", lambda a: "working on this thread" in all_text(a))
    await bot.slack.wait_for("chat.update", lambda a: "You said: second" in all_text(a))
    users = [r.body["inputs"][0]["content"] for r in bot.mistral.requests if r.body]
    assert users == ["first", "second"]


async def test_mistral_outage_on_start_then_retry(bot: BotUnderTest) -> None:
    bot.mistral.fail_next(503)
    await bot.send.message("are you there?")
    failure = await bot.slack.wait_for("chat.update", lambda a: "could not answer" in all_text(a))
    assert "Mistral" in all_text(failure)
    turn_id = button_value(failure, "turn_retry")
    assert await bot.redis.get(keys.turn(turn_id)) is not None

    await bot.send.click("turn_retry", turn_id, user=REQUESTER, channel="D0DM")
    await bot.slack.wait_for("chat.update", lambda a: "You said: are you there?" in all_text(a))
    await bot.send.click("turn_retry", turn_id, user=REQUESTER, channel="D0DM")
    note = await bot.slack.wait_for("chat.postEphemeral")
    assert "retried already" in note["text"]


async def test_mistral_outage_on_resume_keeps_the_decision_and_retries(bot: BotUnderTest) -> None:
    await bot.send.mention(BOOK)
    approval_id = await bot.approval_id()
    bot.mistral.fail_next(500)
    await bot.send.click("approval_approve", approval_id, user=MANAGER)

    told = await bot.slack.wait_for(
        "chat.postMessage", lambda a: "could not continue" in all_text(a)
    )
    assert button_value(told, "approval_retry_resume") == approval_id
    await bot.settled()
    assert (await bot.request(approval_id)).status is Status.APPROVED
    assert (await bot.request(approval_id)).resume is Resume.FAILED
    assert "Resuming failed" in all_text(bot.card_state(card_ts(bot)))
    assert len(agent_tools.runs_of("book_flight")) == 1

    await bot.send.click("approval_retry_resume", approval_id, user=REQUESTER, channel="C0GENERAL")
    await bot.slack.wait_for("chat.postMessage", lambda a: "Done: Booked" in all_text(a))
    await bot.settled()
    # the approved action ran once, although the conversation was resumed twice
    assert len(agent_tools.runs_of("book_flight")) == 1
    assert (await bot.request(approval_id)).resume is Resume.DONE


async def test_long_arguments_are_truncated_with_a_full_view(bot: BotUnderTest) -> None:
    long_text = "x" * 20_000
    bot.mistral.script = scripted(
        [function_call("send_note", {"text": long_text})], [message("ok")]
    )
    await bot.send.mention("send a long note")
    card = await bot.card()
    assert len(all_text(card)) < 6_000
    approval_id = button_value(card, "approval_show_arguments")

    await bot.send.click("approval_show_arguments", approval_id, user=MANAGER)
    modal = await bot.slack.wait_for_modal()
    shown = all_text({"blocks": modal["view"]["blocks"]})
    assert shown.count("x") >= 20_000


async def test_hostile_text_is_inert(bot: BotUnderTest) -> None:
    bot.mistral.script = scripted(
        [function_call("send_note", {"text": "<!channel> pay <https://evil.example|bank> <@U1>"})],
        [message("<!here> done, see [bank](https://evil.example)")],
    )
    await bot.send.mention("say hi")
    card = await bot.card()
    text = all_text(card)
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "<https://evil.example|bank>" not in text
    await bot.send.click("approval_approve", button_value(card, "approval_approve"), user=MANAGER)
    answer = await bot.slack.wait_for("chat.postMessage", lambda a: "done" in all_text(a))
    assert "<!here>" not in all_text(answer)
    assert "bank (<https://evil.example>)" in all_text(answer)


async def test_unknown_or_malformed_approval_ids(bot: BotUnderTest) -> None:
    await bot.send.click("approval_approve", "0" * 24, user=MANAGER)
    note = await bot.slack.wait_for("chat.postEphemeral")
    assert "no longer exists" in note["text"]
    await bot.send.click("approval_approve", "'; DROP", user=MANAGER)
    await bot.slack.wait_for("chat.postEphemeral", lambda a: "no valid request" in a["text"])


async def test_forged_and_stale_signatures_are_refused(bot: BotUnderTest) -> None:
    body = json.dumps({"type": "event_callback", "event": {"type": "app_mention"}})
    forged = await bot.send.post(
        body, "application/json", {"X-Slack-Request-Timestamp": "1", "X-Slack-Signature": "v0=00"}
    )
    assert forged.status == 401
    stale = await bot.send.post(
        body, "application/json", bot.send.headers(body, timestamp=1_000_000_000)
    )
    assert stale.status == 401
    await bot.settled()
    assert bot.mistral.requests == []
    assert [c for c in bot.slack.calls if c.method != "auth.test"] == []


@pytest.mark.parametrize("settings_overrides", [{"mistral_retry_for_ms": 3_000}])
async def test_a_rate_limited_start_is_retried_but_a_5xx_is_not_sent_twice(
    bot: BotUnderTest,
) -> None:
    # a 429 means Mistral refused the request: nothing was applied, so it is sent again
    bot.mistral.fail_next(429, count=2)
    await bot.send.message("still there?")
    await bot.slack.wait_for("chat.update", lambda a: "You said: still there?" in all_text(a))
    assert [r.status for r in bot.mistral.requests] == [429, 429, 200]

    # a 5xx may come after Mistral applied it: not sent again; the person gets Retry
    bot.mistral.fail_next(503)
    await bot.send.message("and now?")
    failure = await bot.slack.wait_for("chat.update", lambda a: "could not answer" in all_text(a))
    assert button_value(failure, "turn_retry")
    await bot.settled()
    assert [r.status for r in bot.mistral.requests] == [429, 429, 200, 503]


async def test_malformed_bodies_get_400_and_change_nothing(bot: BotUnderTest) -> None:
    for body, content_type in [
        ("payload=%7Bnot-json", "application/x-www-form-urlencoded"),
        ("{not json", "application/json"),
    ]:
        reply = await bot.send.post(body, content_type)
        assert reply.status == 400
    await bot.settled()
    assert bot.mistral.requests == []
    assert await bot.state_keys() == []
