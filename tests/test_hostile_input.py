"""Hostile input, end to end: forged, stale, replayed and tampered Slack requests, payloads
for another workspace, oversized and malformed arguments, text that tries to ping or phish.

Each test drives the bot's real signed HTTP endpoint and asserts what a person would see
(the Slack stand-in's calls and messages), what Mistral received, what Redis holds and how
many times a tool ran.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any
from urllib.parse import urlencode

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
from tests.slack_sender import TEAM, SlackSender, button_actions
from tests.standins.mistral import function_call, message, scripted

FORM = "application/x-www-form-urlencoded"
BOOK = "book a flight to Rodez"
FOREIGN_TEAM = "T0ELSEWHERE"
#: Sequences that would notify everyone, mention someone or disguise a link, if sent raw.
HOSTILE = ("<!channel>", "<!here>", "<@U12345>", "<https://evil.example|bank>")
#: Every Slack method through which the bot shows people text.
SHOWN = ("chat.postMessage", "chat.update", "chat.postEphemeral", "views.open", "views.update")


# -- helpers ---------------------------------------------------------------------------------
class BadlySigned(SlackSender):
    """Sends what SlackSender sends, with a forged signature or a stale timestamp."""

    def __init__(self, bot: BotUnderTest, how: str) -> None:
        forged = how == "forged"
        super().__init__(bot.url, "not-the-signing-secret" if forged else SIGNING_SECRET, bot.slack)
        self.how = how

    def headers(self, body: str, *, timestamp: int | None = None) -> dict[str, str]:
        if self.how == "stale":
            timestamp = int(time.time()) - 6 * 60  # Slack's window is 5 minutes
        return super().headers(body, timestamp=timestamp)


def side_effects(bot: BotUnderTest) -> tuple[list[str], int]:
    """The Slack methods the bot called (auth.test aside) and the requests Mistral got."""
    slack_calls = [c.method for c in bot.slack.calls if c.method != "auth.test"]
    return slack_calls, len(bot.mistral.requests)


async def quiet(bot: BotUnderTest) -> None:
    """Give a request that should change nothing the time to change something, if it would."""
    await asyncio.sleep(0.5)
    await bot.settled()


def card_ts(bot: BotUnderTest, index: int = 0) -> str:
    posted = [
        c.response["ts"]
        for c in bot.slack.calls
        if c.method == "chat.postMessage" and c.args.get("channel") == APPROVALS and c.ok
    ]
    return str(posted[index])


def click_body(
    action_id: str,
    value: str,
    *,
    user: str,
    block_id: str,
    message_ts: str,
    team: str = TEAM,
) -> str:
    """A block_actions request body for one button of a card in the approvals channel."""
    payload = {
        **button_actions(action_id, value, user=user, block_id=block_id),
        "container": {"type": "message", "message_ts": message_ts, "channel_id": APPROVALS},
        "channel": {"id": APPROVALS},
        "message": {"ts": message_ts, "type": "message"},
    }
    payload["team"] = {"id": team, "domain": "elsewhere" if team != TEAM else "example"}
    payload["user"] = {"id": user, "team_id": team}
    return urlencode({"payload": json.dumps(payload)})


def event_body(event: dict[str, Any], *, event_id: str, team: str = TEAM) -> str:
    """An Events API request body, as Slack sends it for workspace ``team``."""
    return json.dumps(
        {
            "token": "legacy",
            "team_id": team,
            "api_app_id": "A0APP",
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "event": {"event_ts": event["ts"], **event},
            "authorizations": [{"team_id": team, "user_id": "UBOT", "is_bot": True}],
        }
    )


def mention_event(text: str, ts: str, *, team: str = TEAM) -> dict[str, Any]:
    return {
        "type": "app_mention",
        "user": "UREQ",
        "text": f"<@UBOT> {text}",
        "ts": ts,
        "channel": "C0GENERAL",
        "team": team,
    }


async def stored(bot: BotUnderTest, approval_id: str) -> dict[str, str]:
    return dict(await bot.redis.hgetall(keys.approval(approval_id)))


def resumes(bot: BotUnderTest) -> list[dict[str, Any]]:
    """The requests that sent decided calls' results back to Mistral."""
    return [
        r.body
        for r in bot.mistral.requests
        if r.body and any(i.get("type") == "function.result" for i in r.body.get("inputs") or [])
    ]


def shown_to_people(bot: BotUnderTest) -> list[str]:
    """Every text the bot asked Slack to show, message and view, with its blocks."""
    texts = []
    for call in bot.slack.calls:
        if call.method in SHOWN:
            shown = call.args.get("view", call.args)
            texts.append(all_text(shown if isinstance(shown, dict) else {}))
    return texts


async def ephemeral_to(bot: BotUnderTest, user: str, since: int) -> dict[str, Any]:
    """The private note after the first ``since`` ones; it is for ``user``."""
    await bot.slack.wait_for(
        "chat.postEphemeral", lambda _: bot.slack.count("chat.postEphemeral") > since
    )
    note = bot.slack.calls_to("chat.postEphemeral")[since]
    assert note["user"] == user
    return note


# -- 1. forged signatures and stale timestamps ----------------------------------------------
@pytest.mark.parametrize("how", ["forged", "stale"])
async def test_a_badly_signed_event_is_refused_and_changes_nothing(
    bot: BotUnderTest, how: str
) -> None:
    reply = await BadlySigned(bot, how).event(mention_event(BOOK, bot.send.next_ts()))

    assert reply.status == 401
    await quiet(bot)
    assert side_effects(bot) == ([], 0)
    assert agent_tools.CALLS == []
    assert await bot.state_keys() == []


@pytest.mark.parametrize("how", ["forged", "stale"])
async def test_a_badly_signed_click_is_refused_and_changes_nothing(
    bot: BotUnderTest, how: str
) -> None:
    card, approval_id, before, state = await pending_card(bot)

    reply = await BadlySigned(bot, how).click(
        "approval_approve",
        approval_id,
        user=MANAGER,
        message_ts=card_ts(bot),
        block_id=button_block(card, "approval_approve", 0),
    )

    assert reply.status == 401
    await quiet(bot)
    assert side_effects(bot) == before
    assert await stored(bot, approval_id) == state
    assert state["status"] == "pending"
    assert agent_tools.CALLS == []


@pytest.mark.parametrize("how", ["forged", "stale"])
async def test_a_badly_signed_slash_command_is_refused_and_answers_nothing(
    bot: BotUnderTest, how: str
) -> None:
    reply = await BadlySigned(bot, how).command("/approvals", "allow book_flight", user=MANAGER)

    assert reply.status == 401
    assert "book_flight" not in reply.text
    await quiet(bot)
    assert bot.slack.responses == []
    assert side_effects(bot) == ([], 0)
    assert await bot.state_keys() == []  # no override was stored


# -- 2. replays --------------------------------------------------------------------------------
async def test_a_replayed_click_decides_once_and_runs_the_tool_once(bot: BotUnderTest) -> None:
    await bot.send.mention(BOOK)
    card = await bot.card()
    approval_id = button_value(card, "approval_approve")
    body = click_body(
        "approval_approve",
        approval_id,
        user=MANAGER,
        block_id=button_block(card, "approval_approve", 0),
        message_ts=card_ts(bot),
    )
    headers = bot.send.headers(body)

    first = await bot.send.post(body, FORM, headers)
    again = await bot.send.post(body, FORM, headers)  # the very same bytes and signature

    assert (first.status, again.status) == (200, 200)
    note = await bot.slack.wait_for("chat.postEphemeral")
    assert note["user"] == MANAGER
    assert "already" in note["text"]
    await bot.slack.wait_for("chat.postMessage", lambda a: "Done: Booked Rodez" in all_text(a))
    await bot.settled()
    assert agent_tools.runs_of("book_flight") == [{"destination": "Rodez", "date": "2026-12-01"}]
    assert len(resumes(bot)) == 1
    assert bot.slack.count("chat.postEphemeral") == 1
    assert (await stored(bot, approval_id))["status"] == "approved"
    decision = json.loads((await stored(bot, approval_id))["decision"])
    assert decision["user_id"] == MANAGER


async def test_an_event_delivered_three_times_is_answered_once(bot: BotUnderTest) -> None:
    ts = bot.send.next_ts()
    event = mention_event("hello there", ts)
    bot.slack.messages[("C0GENERAL", ts)] = {"user": "UREQ", "text": event["text"], "ts": ts}
    body = event_body(event, event_id="Ev0REPLAYED")
    headers = bot.send.headers(body)

    replies = [await bot.send.post(body, "application/json", headers)]
    for attempt in (1, 2):  # Slack's retries carry the same event, and say they are retries
        retry = {**headers, "X-Slack-Retry-Num": str(attempt), "X-Slack-Retry-Reason": "timeout"}
        replies.append(await bot.send.post(body, "application/json", retry))

    assert [r.status for r in replies] == [200, 200, 200]
    await bot.slack.wait_for("chat.update", lambda a: "You said: hello there" in all_text(a))
    await quiet(bot)
    assert len(bot.mistral.requests) == 1
    in_thread = [
        a
        for a in bot.slack.calls_to("chat.postMessage")
        if a.get("channel") == "C0GENERAL" and a.get("thread_ts") == ts
    ]
    assert len(in_thread) == 1  # one placeholder, then the answer replaces it
    answers = [a for a in bot.slack.calls_to("chat.update") if "You said:" in all_text(a)]
    assert len(answers) == 1


# -- 3. tampered buttons ---------------------------------------------------------------------
async def test_a_button_value_that_is_not_an_id_gets_a_note(bot: BotUnderTest) -> None:
    await bot.send.mention(BOOK)
    card = await bot.card()
    approval_id = button_value(card, "approval_approve")
    await bot.settled()
    state = await stored(bot, approval_id)

    for tampered in ["not-an-id", approval_id + "0", approval_id.upper(), "", "*"]:
        since = bot.slack.count("chat.postEphemeral")
        await bot.send.click(
            "approval_approve",
            tampered,
            user=MANAGER,
            message_ts=card_ts(bot),
            block_id=button_block(card, "approval_approve", 0),
        )
        note = await ephemeral_to(bot, MANAGER, since)
        assert note["text"] == ":warning: That button carried no valid request."

    await bot.settled()
    assert await stored(bot, approval_id) == state
    assert agent_tools.CALLS == [] and resumes(bot) == []


async def test_a_button_naming_an_unknown_request_gets_a_note(bot: BotUnderTest) -> None:
    unknown = "0123456789abcdef01234567"
    reply = await bot.send.click(
        "approval_approve", unknown, user=MANAGER, block_id=f"{unknown}.0.r0"
    )

    assert reply.status == 200
    note = await bot.slack.wait_for("chat.postEphemeral")
    assert note["user"] == MANAGER
    assert "no longer exists" in note["text"]
    await bot.settled()
    assert await bot.redis.exists(keys.approval(unknown)) == 0
    assert bot.mistral.requests == [] and agent_tools.CALLS == []


@pytest.mark.parametrize(
    ("block_suffix", "said"),
    [
        (".7.r0", "names no call of this request"),  # a call index past the last call
        (".999.r0", "names no call of this request"),
        (".-1.r0", "That button is not valid."),
        (".0.rX", "That button is not valid."),
        (".0", "That button is not valid."),
        ("garbage", "That button is not valid."),
    ],
)
async def test_a_block_id_naming_no_call_of_the_request_gets_a_note(
    bot: BotUnderTest, block_suffix: str, said: str
) -> None:
    await bot.send.mention(BOOK)
    card = await bot.card()
    approval_id = button_value(card, "approval_approve")
    await bot.settled()
    state = await stored(bot, approval_id)
    block_id = block_suffix if block_suffix == "garbage" else approval_id + block_suffix

    for action_id in ["approval_approve", "approval_deny", "approval_edit"]:
        since = len(bot.notes())
        await bot.send.click(
            action_id, approval_id, user=MANAGER, message_ts=card_ts(bot), block_id=block_id
        )
        note = await bot.note(since)
        assert said in note, (action_id, note)

    await bot.settled()
    assert await stored(bot, approval_id) == state
    assert not [m for m in bot.slack.modals_shown() if "callback_id" in m["view"]], "no form"
    assert agent_tools.CALLS == [] and resumes(bot) == []


async def test_the_id_of_one_request_on_another_requests_card_changes_neither(
    bot: BotUnderTest,
) -> None:
    await bot.send.mention(BOOK)
    await bot.send.mention("book a flight to Paris")
    first, second = await bot.card(0), await bot.card(1)
    first_id, second_id = (button_value(c, "approval_approve") for c in (first, second))
    assert first_id != second_id
    await bot.settled()
    states = [await stored(bot, first_id), await stored(bot, second_id)]

    # the first request's id, in the button of the second card (its block id names the second)
    await bot.send.click(
        "approval_approve",
        first_id,
        user=MANAGER,
        message_ts=card_ts(bot, 1),
        block_id=button_block(second, "approval_approve", 0),
    )

    note = await bot.slack.wait_for("chat.postEphemeral")
    assert note["user"] == MANAGER
    assert note["text"] == ":warning: That button is not valid."
    await bot.settled()
    assert [await stored(bot, first_id), await stored(bot, second_id)] == states
    assert agent_tools.CALLS == [] and resumes(bot) == []


# -- 4. another workspace --------------------------------------------------------------------
async def test_an_event_for_another_workspace_is_ignored(
    bot: BotUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    assert bot.slack.team_id == TEAM != FOREIGN_TEAM
    ts = bot.send.next_ts()
    body = event_body(
        mention_event(BOOK, ts, team=FOREIGN_TEAM), event_id="Ev0FOREIGN", team=FOREIGN_TEAM
    )

    reply = await bot.send.post(body, "application/json")

    assert reply.status == 200
    await quiet(bot)
    assert side_effects(bot) == ([], 0)
    assert await bot.state_keys() == []
    assert FOREIGN_TEAM in caplog.text


async def test_a_click_from_another_workspace_changes_nothing_and_says_why(
    bot: BotUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    """Its person is of another organization (see tests/test_grid_and_connect.py): refused,
    never silently."""
    card, approval_id, before, state = await pending_card(bot)

    body = click_body(
        "approval_approve",
        approval_id,
        user=MANAGER,
        block_id=button_block(card, "approval_approve", 0),
        message_ts=card_ts(bot),
        team=FOREIGN_TEAM,
    )
    reply = await bot.send.post(body, FORM)

    assert reply.status == 200
    note = await ephemeral_to(bot, MANAGER, 0)
    assert "not decided by people from other organizations" in note["text"]
    await quiet(bot)
    assert side_effects(bot) == ([*before[0], "chat.postEphemeral"], before[1])
    assert await stored(bot, approval_id) == state
    assert agent_tools.CALLS == []
    assert FOREIGN_TEAM in caplog.text


async def test_a_slash_command_from_another_workspace_answers_nothing(
    bot: BotUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    body = urlencode(
        {
            "token": "legacy",
            "team_id": FOREIGN_TEAM,
            "team_domain": "elsewhere",
            "channel_id": "C0GENERAL",
            "channel_name": "c0general",
            "user_id": MANAGER,
            "user_name": MANAGER.lower(),
            "command": "/approvals",
            "text": "allow book_flight",
            "api_app_id": "A0APP",
            "is_enterprise_install": "false",
            "response_url": bot.slack.new_response_url(),
            "trigger_id": "1.trigger",
        }
    )

    reply = await bot.send.post(body, FORM)

    assert reply.status == 200
    assert "book_flight" not in reply.text
    await quiet(bot)
    assert bot.slack.responses == []
    assert side_effects(bot) == ([], 0)
    assert await bot.state_keys() == []  # no override was stored
    assert FOREIGN_TEAM in caplog.text


# -- 5. oversized arguments ------------------------------------------------------------------
async def test_a_100_kb_argument_gets_a_valid_card_and_runs_whole(bot: BotUnderTest) -> None:
    huge = "".join(f"{n:07d} " for n in range(12_500))  # 100 000 characters, each part unique
    assert len(huge) == 100_000
    bot.mistral.script = scripted([function_call("send_note", {"text": huge})], [message("ok")])

    await bot.send.mention("send the long note")
    card = await bot.card()
    approval_id = button_value(card, "approval_approve")

    assert len(card["blocks"]) <= 50
    for block in card["blocks"]:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
    assert len(card["text"]) <= 40_000
    assert "0000000" in all_text(card)
    assert bot.slack.errors == []  # the stand-in validated the card as Slack would
    request = await bot.services.store.get_approval(approval_id)
    assert json.loads(request.calls[0].arguments) == {"text": huge}

    await bot.send.click("approval_show_arguments", approval_id, user=MANAGER)
    modal = await bot.slack.wait_for_modal()
    shown = all_text(modal["view"]).replace("```", "").replace("\n", "")
    assert huge in shown  # the whole argument, across sections
    assert bot.slack.errors == []  # and the modal is within Slack's limits too

    await bot.send.click(
        "approval_approve",
        approval_id,
        user=MANAGER,
        block_id=button_block(card, "approval_approve", 0),
    )
    await bot.slack.wait_for("chat.postMessage", lambda a: all_text(a).endswith("ok"))
    await bot.settled()
    assert agent_tools.runs_of("send_note") == [{"text": huge}]
    assert (await stored(bot, approval_id))["resume"] == "done"


# -- 6. text that tries to ping, mention or phish --------------------------------------------
async def test_mentions_and_disguised_links_are_inert_everywhere(bot: BotUnderTest) -> None:
    hostile = " ".join(HOSTILE)
    bot.mistral.script = scripted(
        [function_call("send_note", {"text": f"pay now {hostile}"})],
        [message(f"Sent. {hostile} and **bold** [bank](https://evil.example)")],
    )

    await bot.send.mention(f"please {hostile}")
    card = await bot.card()
    for sequence in HOSTILE:
        assert sequence not in all_text(card)
    assert "&lt;!channel&gt;" in all_text(card) and "&lt;@U12345&gt;" in all_text(card)
    await bot.send.click(
        "approval_approve",
        button_value(card, "approval_approve"),
        user=MANAGER,
        block_id=button_block(card, "approval_approve", 0),
    )
    answer = await bot.slack.wait_for("chat.postMessage", lambda a: "Sent." in all_text(a))
    await bot.settled()

    assert "&lt;!here&gt;" in all_text(answer)
    assert "bank (<https://evil.example>)" in all_text(answer)  # the target shows
    for text in shown_to_people(bot):
        for sequence in HOSTILE:
            assert sequence not in text
        assert not re.search(r"<[^>]*evil\.example[^>]*\|", text)  # no label hides it
    # the tool got the model's arguments as they were: escaping is for Slack only
    assert agent_tools.runs_of("send_note") == [{"text": f"pay now {hostile}"}]


# -- 7. arguments that are not JSON ----------------------------------------------------------
NOT_JSON = '{"text": "hi", <!channel>'


async def pending_card(
    bot: BotUnderTest,
) -> tuple[dict[str, Any], str, tuple[list[str], int], dict[str, str]]:
    """A card waiting for a decision: the card, its request id, and the side effects and
    stored state so far (to show that what follows changes neither)."""
    await bot.send.mention(BOOK)
    card = await bot.card()
    approval_id = button_value(card, "approval_approve")
    await bot.settled()
    return card, approval_id, side_effects(bot), await stored(bot, approval_id)


async def not_json_card(bot: BotUnderTest) -> tuple[dict[str, Any], str]:
    """The card for a send_note call whose arguments are not JSON, and its request id."""
    bot.mistral.script = not_json_model()
    await bot.send.mention("send a note")
    card = await bot.card()
    return card, button_value(card, "approval_approve")


def not_json_model() -> Any:
    """A model that calls send_note with broken arguments, then reports what it got back."""
    return scripted(
        [function_call("send_note", NOT_JSON)],
        lambda turn: [message("Result: " + str(turn.function_results()[0]["result"]))],
    )


async def test_arguments_that_are_not_json_are_shown_verbatim_on_the_card(
    bot: BotUnderTest,
) -> None:
    card, approval_id = await not_json_card(bot)
    await bot.settled()

    assert '{"text": "hi", &lt;!channel&gt;' in all_text(card)
    request = await bot.services.store.get_approval(approval_id)
    assert request.calls[0].arguments == NOT_JSON
    assert (await stored(bot, approval_id))["status"] == "pending"
    assert agent_tools.CALLS == [] and len(bot.mistral.requests) == 1


async def test_denying_arguments_that_are_not_json_resumes_the_conversation(
    bot: BotUnderTest,
) -> None:
    card, approval_id = await not_json_card(bot)

    await bot.send.click(
        "approval_deny", approval_id, user=MANAGER, block_id=button_block(card, "approval_deny", 0)
    )
    modal = await bot.slack.wait_for_modal()
    await bot.send.submit_view(
        "approval_deny_modal",
        modal["view"]["private_metadata"],
        user=MANAGER,
        values={"deny_reason": {"reason": {"type": "plain_text_input", "value": "Garbled"}}},
    )

    await bot.slack.wait_for("chat.postMessage", lambda a: "Result: Garbled" in all_text(a))
    await bot.settled()
    assert agent_tools.runs_of("send_note") == []
    assert len(resumes(bot)) == 1
    assert (await stored(bot, approval_id))["status"] == "denied"
    assert (await stored(bot, approval_id))["resume"] == "done"


async def test_approving_arguments_that_are_not_json_tells_the_model_and_runs_nothing(
    bot: BotUnderTest,
) -> None:
    card, approval_id = await not_json_card(bot)

    await bot.send.click(
        "approval_approve",
        approval_id,
        user=MANAGER,
        block_id=button_block(card, "approval_approve", 0),
    )

    answer = await bot.slack.wait_for("chat.postMessage", lambda a: "Result:" in all_text(a))
    await bot.settled()
    assert "not a valid JSON object" in all_text(answer)  # the model was told why
    assert agent_tools.runs_of("send_note") == []
    assert len(resumes(bot)) == 1
    assert (await stored(bot, approval_id))["resume"] == "done"


# -- 8. a very long message ------------------------------------------------------------------
async def test_a_40_000_character_message_reaches_the_model_and_is_answered(
    bot: BotUnderTest,
) -> None:
    text = " ".join(f"w{n:05d}" for n in range(5_715))[:40_000]
    assert len(text) == 40_000

    ts = await bot.send.message(text)

    await bot.slack.wait_for("chat.update", lambda a: "You said:" in all_text(a))
    await bot.settled()
    assert [r.body["inputs"][0]["content"] for r in bot.mistral.requests if r.body] == [text]
    answer = "".join(  # its parts' blocks (each part's notification text aside)
        all_text({"blocks": m["blocks"]})
        for m in bot.slack.messages_in("D0DM")
        if m.get("thread_ts") == ts and m["ts"] != ts  # the bot's, not the person's
    )
    shown = "".join(answer.split())
    assert "".join(text.split()) in shown
