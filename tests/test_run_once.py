"""Each approved call runs exactly once, as its own call, against the real Mistral SDK and
the Mistral stand-in, through the bot's signed HTTP endpoint and a real Redis."""

from __future__ import annotations

from typing import Any

import pytest

from tests import agent_tools
from tests.helpers import MANAGER, REQUESTER, BotUnderTest, all_text, button_value
from tests.standins.mistral import Entry, ModelTurn, function_call, message


def two_identical_notes(turn: ModelTurn) -> list[Entry]:
    """The model sends the same note twice in one turn (say, to two rounds of a game)."""
    results = turn.function_results()
    if results:
        return [
            message(f"Done: {len(results)} results: " + "; ".join(r["result"] for r in results))
        ]
    return [
        function_call("send_note", {"text": "standup in 5"}),
        function_call("send_note", {"text": "standup in 5"}),
    ]


def function_results(bot: BotUnderTest) -> list[dict[str, Any]]:
    return [
        entry
        for request in bot.mistral.requests
        for entry in (request.body or {}).get("inputs") or []
        if isinstance(entry, dict) and entry.get("type") == "function.result"
    ]


async def test_two_identical_approved_calls_both_run_once(bot: BotUnderTest) -> None:
    bot.mistral.script = two_identical_notes
    await bot.send.mention("send the standup note twice")
    card = await bot.card()
    await bot.send.click(
        "approval_approve_all", button_value(card, "approval_approve_all"), user=MANAGER
    )
    await bot.slack.wait_for("chat.postMessage", lambda a: "Done: 2 results" in all_text(a))
    await bot.settled()

    assert agent_tools.runs_of("send_note") == [{"text": "standup in 5"}] * 2
    results = function_results(bot)
    assert [r["result"] for r in results] == ["sent", "sent"]
    # each call has its own result, under its own id
    assert len({r["tool_call_id"] for r in results}) == 2


def invents_a_tool(turn: ModelTurn) -> list[Entry]:
    results = turn.function_results()
    if results:
        return [message("Done: " + results[0]["result"])]
    return [function_call("launch_rockets", {"count": 3})]


async def test_a_tool_the_run_cannot_execute_gets_a_result_saying_so(bot: BotUnderTest) -> None:
    bot.mistral.script = invents_a_tool
    await bot.send.mention("launch the rockets")
    await bot.slack.wait_for("chat.update", lambda a: "is not available right now" in all_text(a))
    await bot.settled()
    [result] = function_results(bot)
    assert "'launch_rockets' is not available" in result["result"]
    assert "Do not retry it" in result["result"]


def answers_with_references(turn: ModelTurn) -> list[Entry]:
    entry = message("")
    entry["content"] = [
        {"type": "text", "text": "Rodez has a small airport."},
        {
            "type": "tool_reference",
            "tool": "web_search",
            "title": "Rodez-Aveyron Airport [official]",
            "url": "https://www.aeroport-rodez.fr/",
        },
        {"type": "tool_file", "tool": "code_interpreter", "file_id": "f1", "file_name": "map.png"},
    ]
    return [entry]


async def test_an_answer_in_chunks_reads_as_text_with_links(bot: BotUnderTest) -> None:
    bot.mistral.script = answers_with_references
    await bot.send.mention("tell me about Rodez")
    shown = await bot.slack.wait_for("chat.update", lambda a: "small airport" in all_text(a))
    text = all_text(shown)
    assert "Rodez has a small airport." in text
    assert "Rodez-Aveyron Airport (official) (<https://www.aeroport-rodez.fr/>)" in text
    assert "(file: map.png)" in text
    assert "Reference title=" not in text


# -- lost responses: what reached Mistral is never sent again -----------------------------------
@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """The SDK's retries on, as in production (the other tests turn them off)."""
    return {"mistral_retry_for_ms": 3_000}


def appends_with(bot: BotUnderTest, kind: str) -> list[dict[str, Any]]:
    """The appends that carried an input entry of ``kind`` (answered or not)."""
    return [
        request.body or {}
        for request in bot.mistral.requests
        if request.method == "POST"
        and request.path.startswith("/v1/conversations/")
        and any(
            isinstance(e, dict) and e.get("type", "message.input") == kind
            for e in (request.body or {}).get("inputs") or []
        )
    ]


async def test_a_lost_resume_response_never_sends_the_result_twice(bot: BotUnderTest) -> None:
    await bot.send.mention("book a flight to Rodez")
    approval_id = await bot.approval_id()
    bot.mistral.lose_next_response()  # Mistral takes the result, the answer is lost
    await bot.send.click("approval_approve", approval_id, user=MANAGER)
    failed = await bot.slack.wait_for(
        "chat.postMessage", lambda a: "approval_retry_resume" in str(a.get("blocks"))
    )
    await bot.settled()
    assert len(appends_with(bot, "function.result")) == 1  # not resent by the SDK's retries

    await bot.send.click(
        "approval_retry_resume", button_value(failed, "approval_retry_resume"), user=MANAGER
    )
    await bot.slack.wait_for("chat.postMessage", lambda a: "Done: Booked" in all_text(a))
    await bot.settled()
    assert len(appends_with(bot, "function.result")) == 1  # the retry read the history
    assert len(agent_tools.runs_of("book_flight")) == 1
    [conversation] = bot.mistral.conversation_ids
    history = bot.mistral.conversation_history(conversation)
    assert len([e for e in history if e.get("type") == "function.result"]) == 1


async def test_a_lost_answer_to_a_message_never_sends_the_message_twice(
    bot: BotUnderTest,
) -> None:
    ts = await bot.send.message("first")
    await bot.slack.wait_for("chat.update", lambda a: "You said: first" in all_text(a))
    await bot.settled()
    bot.mistral.lose_next_response()
    await bot.send.message("second", thread_ts=ts)
    failure = await bot.slack.wait_for("chat.update", lambda a: "could not answer" in all_text(a))
    await bot.settled()
    assert len(appends_with(bot, "message.input")) == 1

    await bot.send.click(
        "turn_retry", button_value(failure, "turn_retry"), user=REQUESTER, channel="D0DM"
    )
    await bot.slack.wait_for("chat.update", lambda a: "You said: second" in all_text(a), timeout=10)
    await bot.settled()
    assert len(appends_with(bot, "message.input")) == 1
    [conversation] = bot.mistral.conversation_ids
    said = [
        e.get("content")
        for e in bot.mistral.conversation_history(conversation)
        if e.get("type") == "message.input"
    ]
    assert said == ["first", "second"]
