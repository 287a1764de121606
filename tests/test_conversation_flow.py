"""Team members talk to the bot: DMs, mentions, thread replies, tools that just run."""

from __future__ import annotations

from bot.storage import keys
from tests import agent_tools
from tests.helpers import BotUnderTest, all_text


async def test_dm_is_answered_in_its_thread_replacing_the_placeholder(bot: BotUnderTest) -> None:
    ts = await bot.send.message("hello there")

    update = await bot.slack.wait_for("chat.update", lambda a: "You said" in all_text(a))
    placeholder = bot.slack.calls_to("chat.postMessage")[0]
    assert placeholder["thread_ts"] == ts
    assert "Working on it" in placeholder["text"]
    assert update["ts"] == bot.slack.messages[("D0DM", update["ts"])]["ts"]
    assert "You said: hello there" in all_text(update)
    starts = [r for r in bot.mistral.requests if r.path == "/v1/conversations"]
    assert len(starts) == 1
    assert starts[0].body is not None
    assert starts[0].body["instructions"] == "You are a test assistant."
    stored = await bot.redis.hget(keys.thread(f"T0TEAM:D0DM:{ts}"), "conversation_id")
    assert stored == bot.mistral.conversation_ids[0]


async def test_thread_reply_continues_the_same_conversation(bot: BotUnderTest) -> None:
    ts = await bot.send.mention("first message")
    await bot.slack.wait_for("chat.update", lambda a: "first message" in all_text(a))

    await bot.send.message(
        "second message", channel="C0GENERAL", channel_type="channel", thread_ts=ts
    )
    await bot.slack.wait_for("chat.update", lambda a: "second message" in all_text(a))

    conversation_id = bot.mistral.conversation_ids[0]
    assert len(bot.mistral.conversation_ids) == 1
    appended = [r for r in bot.mistral.requests if r.path == f"/v1/conversations/{conversation_id}"]
    assert len(appended) == 1
    assert all(p["thread_ts"] == ts for p in bot.slack.calls_to("chat.postMessage"))


async def test_channel_message_outside_a_bot_thread_is_ignored(bot: BotUnderTest) -> None:
    await bot.send.message("chatter", channel="C0GENERAL", channel_type="channel")
    await bot.send.message(
        "a reply elsewhere", channel="C0GENERAL", channel_type="channel", thread_ts="1.0"
    )
    await bot.settled()
    assert bot.mistral.requests == []


async def test_markdown_answer_is_converted_to_mrkdwn(bot: BotUnderTest) -> None:
    from tests.standins.mistral import message, scripted

    bot.mistral.script = scripted([message("**Done** with [docs](https://example.com/d)")])
    await bot.send.message("format please")
    update = await bot.slack.wait_for("chat.update")
    text = all_text(update)
    assert "*Done*" in text and "**Done**" not in text
    assert "docs (<https://example.com/d>)" in text


async def test_tool_without_confirmation_just_runs(bot: BotUnderTest) -> None:
    await bot.send.message("what is the weather in Paris")
    update = await bot.slack.wait_for("chat.update", lambda a: "Done" in all_text(a))
    assert "Sunny in Paris" in all_text(update)
    assert agent_tools.runs_of("get_weather") == [{"city": "Paris"}]
    assert bot.slack.count("chat.postMessage", lambda a: a.get("channel") == "C0APPROVALS") == 0


async def test_bot_and_own_messages_are_ignored(bot: BotUnderTest) -> None:
    await bot.send.message("from another bot", bot_id="B0OTHER", subtype="bot_message")
    await bot.send.message("from myself", user="UBOT")
    await bot.send.message("edited", subtype="message_changed")
    await bot.settled()
    assert bot.mistral.requests == []


async def test_a_redelivered_event_is_answered_once(bot: BotUnderTest) -> None:
    ts = bot.send.next_ts()
    for _ in range(3):
        await bot.send.mention("only once", ts=ts, event_id="Ev0SAME")
    await bot.slack.wait_for("chat.update", lambda a: "only once" in all_text(a))
    await bot.settled()
    assert len(bot.mistral.requests) == 1
    assert bot.slack.count("chat.update") == 1


async def test_health_and_readiness(bot: BotUnderTest) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(bot.url + "/healthz") as response:
            assert response.status == 200
        async with session.get(bot.url + "/readyz") as response:
            assert response.status == 200
            assert (await response.json())["redis"] == "ok"
