"""What the real Slack refuses, and how the bot copes: triggers that expire after 3 seconds,
rate limits (per method tier, and per channel for chat.postMessage), messages whose blocks
hold too much text, and the Events API's own requests (url_verification, ssl_check, retries
of an event), all through the bot's real endpoint and the Slack stand-in."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocks
from bot.storage import keys
from tests.helpers import APPROVALS, BotUnderTest, all_text, button_value
from tests.slack_sender import TEAM
from tests.standins.mistral import message
from tests.standins.slack import RateLimits

BOOK = "book a flight to Rodez"
NEWCOMER = "UNEWBIE"


def is_card(args: dict[str, Any]) -> bool:
    return args.get("channel") == APPROVALS and bool(args.get("blocks"))


# -- 1. a modal opens when authorization is slow -----------------------------------------------
async def test_a_modal_opens_when_authorization_is_slow(bot: BotUnderTest) -> None:
    await bot.send.mention(BOOK)
    approval_id = await bot.approval_id()
    # a new manager joins the approvals channel: the bot forgets who its members are
    bot.slack.members[APPROVALS].append(NEWCOMER)
    joined = {"type": "member_joined_channel", "user": NEWCOMER, "channel": APPROVALS}
    event = {**joined, "channel_type": "C", "team": TEAM, "event_ts": bot.send.next_ts()}
    assert (await bot.send.event(event)).status == 200
    await bot.settled()
    bot.slack.slowness["conversations.members"] = 3.5  # longer than a trigger lives

    reply = await bot.send.click(blocks.DENY, approval_id, user=NEWCOMER)

    assert reply.status == 200
    form = await bot.slack.wait_for_modal(
        lambda m: m["view"]["callback_id"] == blocks.DENY_MODAL, timeout=15
    )
    assert "book_flight" in all_text(form["view"])
    [opened] = [c for c in bot.slack.calls if c.method == "views.open"]
    assert opened.ok, "the Loading… modal opened while the trigger was fresh"
    assert form["view_id"] == opened.response["view"]["id"]
    assert bot.slack.count("conversations.members") == 1

    # Had the bot checked who may decide before opening (looked the channel's members up,
    # 3.5 s, then views.open), Slack would have refused its trigger, as it does now: no
    # modal, and this test would time out waiting for the Deny form.
    client = AsyncWebClient(token=bot.slack.token, base_url=bot.slack.api_url)
    with pytest.raises(SlackApiError) as refused:
        await client.views_open(trigger_id=opened.args["trigger_id"], view=form["view"])
    assert refused.value.response["error"] == "expired_trigger_id"


# -- 2. rate limits ----------------------------------------------------------------------------
@pytest.mark.timeout(240)
@pytest.mark.parametrize("settings_overrides", [{"slack_posts_per_s": 10.0}])
async def test_a_burst_of_200_cards_arrives_paced_each_once(bot: BotUnderTest) -> None:
    # Slack's limits ten times faster (Slack: about one message a second in a channel, so
    # 200 cards take over three minutes), and the bot paced to match. Not faster: Retry-After
    # is in whole seconds, and at fifty times Slack's pace a second is enough for slack_sdk's
    # three retries to get every post through, paced or not; at ten times, they are not.
    bot.slack.rate_limits = RateLimits(speed=10)
    requests = 200

    for first in range(0, requests, 20):
        await asyncio.gather(*(bot.send.mention(f"{BOOK} #{n}") for n in range(first, first + 20)))
    await bot.slack.wait_for(
        "chat.postMessage",
        lambda _: sum(1 for c in bot.slack.calls if c.ok and is_card(c.args)) >= requests,
        timeout=180,
    )
    await bot.settled()

    posted = Counter(
        button_value(c.args, blocks.APPROVE)
        for c in bot.slack.calls
        if c.method == "chat.postMessage" and c.ok and is_card(c.args)
    )
    assert len(posted) == requests
    assert set(posted.values()) == {1}, "a card posted twice"
    for approval_id in posted:
        card = json.loads(await bot.redis.hget(keys.approval(approval_id), "card"))
        shown = bot.slack.messages[(APPROVALS, card["ts"])]
        assert button_value(shown, blocks.APPROVE) == approval_id
    assert await bot.redis.zcard(keys.PENDING_ZSET) == requests
    # every requester was told, in their thread, that the request waits
    waiting = {a["ts"] for a in bot.slack.calls_to("chat.update") if "needs approval" in str(a)}
    assert len(waiting) == requests


async def test_posts_refused_longer_than_three_retries_still_arrive_once(
    bot: BotUnderTest,
) -> None:
    # slack_sdk's own handler retries a 429 three times, then gives up; the bot keeps a
    # refused post (Slack posted nothing) and tries it again in its channel's turn
    bot.slack.fail_next("chat.postMessage", status=429, count=5, retry_after=1)

    ts = await bot.send.mention(BOOK)
    await bot.slack.wait_for("chat.postMessage", is_card, timeout=30)
    await bot.settled()

    assert len([c for c in bot.slack.calls if c.status == 429]) == 5
    posted = [c.args for c in bot.slack.calls if c.method == "chat.postMessage" and c.ok]
    assert len([a for a in posted if a.get("thread_ts") == ts and "Working" in a["text"]]) == 1
    assert len([m for m in bot.slack.messages_in("C0GENERAL") if m.get("thread_ts") == ts]) == 1
    assert len(bot.slack.messages_in(APPROVALS)) == 1


# -- 3. long answers ---------------------------------------------------------------------------
_TOKEN = re.compile(r"\b[wc]\d{3}x\d{3}\b")


def long_markdown(parts: int) -> str:
    """Markdown with headings, very long lines and long code blocks; every word unique."""
    sections = []
    for i in range(parts):
        prose = " ".join(f"w{i:03d}x{j:03d}" for j in range(120))  # one 1 200-character line
        code = "\n".join(
            "    " + " ".join(f"c{i:03d}x{line * 40 + k:03d}" for k in range(40))
            for line in range(10)
        )
        sections.append(f"## Part {i}\n\n**Note:** {prose}\n\n```python\n{code}\n```")
    return "\n\n".join(sections)


async def test_a_60000_character_answer_is_posted_whole_and_in_order(bot: BotUnderTest) -> None:
    answer = long_markdown(13)
    assert len(answer) >= 60_000
    last = _TOKEN.findall(answer)[-1]
    bot.mistral.script = lambda turn: [message(answer)]

    ts = await bot.send.message("tell me everything")
    await bot.slack.wait_for("chat.postMessage", lambda a: last in all_text(a), timeout=20)
    await bot.settled()

    parts = [m for m in bot.slack.messages_in("D0DM") if m.get("thread_ts") == ts and m["ts"] != ts]
    shown = "\n".join(all_text({"blocks": m["blocks"]}) for m in parts)
    assert _TOKEN.findall(shown) == _TOKEN.findall(answer)  # every word, once, in order
    assert len(parts) >= 6  # 60 000 characters cannot go in fewer messages of under 13 000
    answered = [c for c in bot.slack.calls if c.method in ("chat.postMessage", "chat.update")]
    assert all(c.ok for c in answered)


# -- 4. the Events API's own requests ----------------------------------------------------------
async def test_url_verification_answers_the_challenge(bot: BotUnderTest) -> None:
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    body = json.dumps({"token": "legacy", "challenge": challenge, "type": "url_verification"})

    reply = await bot.send.post(body, "application/json")
    forged = await bot.send.post(
        body, "application/json", {**bot.send.headers(body), "X-Slack-Signature": "v0=00"}
    )

    assert reply.status == 200
    assert json.loads(reply.text) == {"challenge": challenge}
    assert forged.status == 401 and challenge not in forged.text
    await bot.settled()
    assert bot.mistral.requests == []
    assert await bot.state_keys() == []


async def test_ssl_check_is_answered_and_does_nothing(bot: BotUnderTest) -> None:
    body = urlencode({"ssl_check": "1", "token": "legacy"})

    reply = await bot.send.post(body, "application/x-www-form-urlencoded")

    assert reply.status == 200
    await asyncio.sleep(0.3)
    await bot.settled()
    assert [c.method for c in bot.slack.calls if c.method != "auth.test"] == []
    assert bot.mistral.requests == []
    assert await bot.state_keys() == []


def dm_event(bot: BotUnderTest, text: str) -> tuple[str, str]:
    """A DM's event body, and the message's ts (the message exists in the workspace)."""
    ts = bot.send.next_ts()
    event = {
        "type": "message",
        "user": "UREQ",
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "channel": "D0DM",
        "channel_type": "im",
        "team": TEAM,
    }
    bot.slack.messages[("D0DM", ts)] = {"user": "UREQ", "text": text, "ts": ts}
    envelope = {
        "token": "legacy",
        "team_id": TEAM,
        "api_app_id": "A0APP",
        "type": "event_callback",
        "event_id": f"Ev{ts.replace('.', '')}",
        "event_time": int(time.time()),
        "event": event,
        "authorizations": [{"team_id": TEAM, "user_id": "UBOT", "is_bot": True}],
    }
    return json.dumps(envelope), ts


async def test_a_retry_whose_first_delivery_never_arrived_is_processed_once(
    bot: BotUnderTest,
) -> None:
    # the first delivery timed out before it reached the bot (a load balancer, a network
    # fault): the retry is the first the bot sees of the event, and must not be dropped
    body, ts = dm_event(bot, "are you there?")
    replies = []
    for attempt in (1, 2):
        retry = {"X-Slack-Retry-Num": str(attempt), "X-Slack-Retry-Reason": "http_timeout"}
        headers = {**bot.send.headers(body), **retry}
        replies.append(await bot.send.post(body, "application/json", headers))

    assert [r.status for r in replies] == [200, 200]
    await bot.slack.wait_for("chat.update", lambda a: "You said: are you there?" in all_text(a))
    await asyncio.sleep(0.3)
    await bot.settled()
    assert len(bot.mistral.requests) == 1
    in_thread = [m for m in bot.slack.messages_in("D0DM") if m.get("thread_ts") == ts]
    assert [all_text(m) for m in in_thread][-1].endswith("You said: are you there?")
    assert len(in_thread) == 1  # one placeholder, replaced by the answer
