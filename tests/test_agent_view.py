"""The bot as a native Slack AI app, end to end through its real HTTP endpoint: an assistant
thread started (prompts), status and a streamed answer, tool calls as tasks (a free one, one
waiting for approval then approved, denied, expired), the plain fallback where Slack refuses
the methods, and a resume in another process continuing the thread."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.ops.http_server import SERVICES
from bot.storage import keys
from tests import agent_tools
from tests.helpers import (
    APPROVALS,
    CONFIG,
    DM,
    MANAGER,
    OUTSIDER,
    REQUESTER,
    SIGNING_SECRET,
    BotUnderTest,
    all_text,
    button_value,
    make_settings,
    served,
    start_thread,
)
from tests.slack_sender import SlackSender
from tests.standins.mistral import MistralStandIn, function_call, message, scripted
from tests.standins.slack import SlackStandIn

ASSISTANT = """\
assistant:
  task_display: plan
  prompts_title: Try asking
  suggested_prompts:
    - title: Weather
      message: weather in Paris
"""


@pytest.fixture
def bot_config(self_approval: bool) -> str:
    allowed = "true" if self_approval else "false"
    return CONFIG.format(channel=APPROVALS, self_approval=allowed) + ASSISTANT


async def ask(bot: BotUnderTest, text: str) -> str:
    """A message in a fresh assistant thread; the thread's ts."""
    thread_ts = await start_thread(bot.send)
    await bot.settled()  # the thread is known before its first message
    await bot.send.message(text, channel=DM, thread_ts=thread_ts)
    return thread_ts


async def stopped(slack: SlackStandIn, count: int = 1) -> None:
    await slack.wait_for("chat.stopStream", lambda _: slack.count("chat.stopStream") >= count)


def plain_posts_in(slack: SlackStandIn, thread_ts: str) -> list[str]:
    """What the bot posted in the thread as ordinary messages."""
    return [
        all_text(m)
        for (channel, _), m in slack.messages.items()
        if channel == DM and m.get("thread_ts") == thread_ts and m.get("bot_id")
    ]


WEATHER_THEN_BOOK = (
    [function_call("get_weather", {"city": "Rodez"})],
    [function_call("book_flight", {"destination": "Rodez", "date": "2026-12-01"})],
)


async def test_a_started_thread_gets_prompts_status_title_and_a_streamed_answer(
    bot: BotUnderTest,
) -> None:
    thread_ts = await ask(bot, "weather in Paris")
    await stopped(bot.slack)
    await bot.settled()

    prompts = bot.slack.ai.prompts[(DM, thread_ts)]
    assert prompts == {
        "title": "Try asking",
        "prompts": [{"title": "Weather", "message": "weather in Paris"}],
    }
    assert bot.slack.ai.statuses[(DM, thread_ts)][0] == "is thinking…"
    assert "is running get_weather…" in bot.slack.ai.statuses[(DM, thread_ts)]
    assert bot.slack.ai.titles[(DM, thread_ts)] == "weather in Paris"
    [reply] = bot.slack.ai.thread(DM, thread_ts)
    assert not reply.streaming and reply.display == "plan"
    [task] = reply.task_list()
    assert task["title"] == "get_weather" and task["status"] == "complete"
    assert task["output"] == "Sunny in Paris"
    assert reply.text == "Done: Sunny in Paris"
    assert plain_posts_in(bot.slack, thread_ts) == []  # no placeholder, no plain answer
    assert agent_tools.runs_of("get_weather") == [{"city": "Paris"}]


async def test_a_free_call_and_one_waiting_for_approval_are_tasks_then_the_answer(
    bot: BotUnderTest,
) -> None:
    bot.mistral.script = scripted(*WEATHER_THEN_BOOK, [message("Booked, and sunny.")])
    thread_ts = await ask(bot, "weather in Rodez, then book it")
    card = await bot.card()
    await stopped(bot.slack)
    await bot.settled()

    [waiting] = bot.slack.ai.thread(DM, thread_ts)
    assert not waiting.streaming  # no stream is kept open while a person decides
    weather, booking = waiting.task_list()
    assert (weather["title"], weather["status"]) == ("get_weather", "complete")
    assert (booking["title"], booking["status"]) == ("book_flight", "pending")
    assert booking["details"] == f"Waiting for approval in <#{APPROVALS}>"
    link = (await bot.services.store.get_approval(button_value(card, "approval_approve"))).card_link
    assert booking["sources"] == [{"type": "url", "url": link, "text": "Approval request"}]
    # the channel's name (a status is plain text: no <#C…> there), from conversations.info
    assert "is waiting for approval in #c0approvals…" in bot.slack.ai.statuses[(DM, thread_ts)]
    assert agent_tools.runs_of("book_flight") == []

    await bot.send.click("approval_approve", button_value(card, "approval_approve"), user=MANAGER)
    await stopped(bot.slack, 2)
    await bot.settled()

    first, second = bot.slack.ai.thread(DM, thread_ts)
    [approved] = second.task_list()  # the weather step is not shown again
    assert approved["id"] == booking["id"]
    assert approved["status"] == "complete"
    assert approved["details"] == f"Approved by <@{MANAGER}>; done"
    assert approved["output"] == "Booked Rodez on 2026-12-01: FL-1"
    assert second.text == "Booked, and sunny."
    assert agent_tools.runs_of("book_flight") == [{"destination": "Rodez", "date": "2026-12-01"}]
    assert f"Approved* by <@{MANAGER}>" in all_text(bot.card_state(_card_ts(bot)))
    assert plain_posts_in(bot.slack, thread_ts) == []


def _card_ts(bot: BotUnderTest) -> str:
    for call in bot.slack.calls:
        if call.method == "chat.postMessage" and call.args.get("channel") == APPROVALS:
            return str(call.response["ts"])
    raise AssertionError("no card")


async def test_a_denial_is_a_failed_task_with_the_reason(bot: BotUnderTest) -> None:
    thread_ts = await ask(bot, "book a flight to Rodez")
    approval_id = await bot.approval_id()
    await stopped(bot.slack)

    await bot.send.click("approval_deny", approval_id, user=MANAGER, block_id="approval_actions")
    await bot.slack.wait_for_modal()
    await bot.send.submit_view(
        "approval_deny_modal",
        approval_id,
        user=MANAGER,
        values={"deny_reason": {"reason": {"type": "plain_text_input", "value": "<!here> no"}}},
    )
    await stopped(bot.slack, 2)
    await bot.settled()

    denied = bot.slack.ai.tasks(DM, thread_ts)
    [task] = denied.values()
    assert task["status"] == "error"
    assert task["details"].startswith(f"Denied by <@{MANAGER}>: ")
    assert "<!here>" not in task["details"] and "here> no" in task["details"]  # inert
    assert agent_tools.runs_of("book_flight") == []
    assert bot.slack.ai.thread(DM, thread_ts)[-1].text.startswith("Done: ")


async def test_an_expiry_is_a_failed_task_that_says_nobody_decided(bot: BotUnderTest) -> None:
    thread_ts = await ask(bot, "book a flight to Rodez")
    approval_id = await bot.approval_id()
    await stopped(bot.slack)
    request = await bot.services.store.get_approval(approval_id)
    assert request.expires_at is not None

    swept = await bot.services.sweeper.sweep(now=request.expires_at + 1)
    assert swept.expired == [approval_id]
    await stopped(bot.slack, 2)
    await bot.settled()

    [task] = bot.slack.ai.tasks(DM, thread_ts).values()
    assert task["status"] == "error"
    assert task["details"].startswith("Expired: nobody decided in time (not a denial)")
    assert agent_tools.runs_of("book_flight") == []
    assert plain_posts_in(bot.slack, thread_ts) == []


@pytest.mark.parametrize("error", ["not_allowed_token_type", "feature_not_enabled"])
async def test_a_workspace_without_the_methods_gets_todays_messages_decided_once(
    bot: BotUnderTest, error: str
) -> None:
    for method in ("assistant.threads.setStatus", "chat.startStream"):
        bot.slack.ai.unavailable[method] = error
    thread_ts = await start_thread(bot.send)
    await bot.send.message("hello there", channel=DM, thread_ts=thread_ts)
    await bot.slack.wait_for("chat.update", lambda a: "You said: hello there" in all_text(a))
    await bot.settled()
    assert await bot.redis.get(keys.native_off("T0TEAM")) == error

    # the next message, even in a new assistant thread, asks Slack no AI-app method again
    thread_ts = await start_thread(bot.send)
    await bot.send.message("again", channel=DM, thread_ts=thread_ts)
    await bot.slack.wait_for("chat.update", lambda a: "You said: again" in all_text(a))
    await bot.settled()
    assert bot.slack.count("assistant.threads.setStatus") == 1
    assert bot.slack.count("chat.startStream") == 0
    assert bot.slack.ai.replies == {}
    placeholders = [t for t in plain_posts_in(bot.slack, thread_ts) if "You said: again" in t]
    assert len(placeholders) == 1


async def test_an_answer_slack_will_not_stream_is_posted_instead(bot: BotUnderTest) -> None:
    bot.slack.ai.unavailable["chat.startStream"] = "unknown_method"
    thread_ts = await ask(bot, "hello there")
    posted = await bot.slack.wait_for("chat.postMessage", lambda a: "You said" in all_text(a))
    await bot.settled()
    assert posted["thread_ts"] == thread_ts
    assert await bot.redis.get(keys.native_off("T0TEAM")) == "unknown_method"


async def test_a_stream_slack_ended_is_replaced_in_the_same_thread(bot: BotUnderTest) -> None:
    gate = asyncio.Event()

    async def slow_answer(turn: Any) -> list[Any]:
        await gate.wait()
        return [message("Done, later.")]

    bot.mistral.script = scripted([function_call("get_weather", {"city": "Oslo"})], slow_answer)
    thread_ts = await ask(bot, "weather in Oslo")
    await bot.slack.wait_for("chat.startStream")
    [first] = bot.slack.ai.thread(DM, thread_ts)
    bot.slack.ai.end_stream(DM, first.ts)  # Slack timed it out
    gate.set()
    await bot.slack.wait_for("chat.stopStream")
    await bot.settled()

    replies = bot.slack.ai.thread(DM, thread_ts)
    assert len(replies) == 2 and replies[1].text == "Done, later."
    [weather] = first.task_list()
    assert weather["status"] == "in_progress"  # as the ended stream last showed it
    assert replies[1].tasks[weather["id"]]["status"] == "complete"


async def test_untrusted_text_in_tasks_and_answer_is_inert(bot: BotUnderTest) -> None:
    bot.mistral.script = scripted(
        [function_call("get_weather", {"city": "<!channel> Paris"})],
        [message("See [your bank](https://evil.example/login) @here <@UBOSS>")],
    )
    thread_ts = await ask(bot, "weather please")
    await stopped(bot.slack)
    await bot.settled()
    [reply] = bot.slack.ai.thread(DM, thread_ts)
    assert "your bank (https://evil.example/login)" in reply.text
    assert "@here" not in reply.text and "<@UBOSS>" not in reply.text
    assert "<!channel>" not in reply.task_list()[0]["output"]
    # the stand-in reports any channel-wide mention as an error (checked at teardown)


ANYWHERE = (
    CONFIG.format(channel=APPROVALS, self_approval="false") + "assistant:\n  native: everywhere\n"
)


@pytest.mark.parametrize("config_path", [ANYWHERE], indirect=True)
async def test_everywhere_a_mention_in_a_channel_streams_to_its_requester(
    bot: BotUnderTest,
) -> None:
    ts = await bot.send.mention("weather in Lyon")
    await stopped(bot.slack)
    await bot.settled()
    [reply] = bot.slack.ai.thread("C0GENERAL", ts)
    assert reply.recipient == ("T0TEAM", REQUESTER)
    assert reply.text == "Done: Sunny in Lyon"
    assert ("C0GENERAL", ts) not in bot.slack.ai.titles  # only assistant threads get titles

    # someone else replies in the thread: their answer streams to them
    await bot.send.message(
        "weather in Nice", user=MANAGER, channel="C0GENERAL", channel_type="channel", thread_ts=ts
    )
    await stopped(bot.slack, 2)
    await bot.settled()
    second = bot.slack.ai.thread("C0GENERAL", ts)[1]
    assert second.recipient == ("T0TEAM", MANAGER)
    assert second.text == "Done: Sunny in Nice"


async def test_a_resume_in_another_process_continues_the_thread(
    redis_client: Any,
    redis_url: str,
    slack: SlackStandIn,
    mistral: MistralStandIn,
    config_path: Path,
) -> None:
    mistral.script = scripted(*WEATHER_THEN_BOOK, [message("Booked in the end.")])
    settings = make_settings(slack, mistral, redis_url, config_path)
    async with served(settings, config_path) as (url, app):
        send = SlackSender(url, SIGNING_SECRET, slack)
        thread_ts = await start_thread(send)
        await send.message("weather in Rodez, then book it", channel=DM, thread_ts=thread_ts)
        await stopped(slack)
        await _settled(app)
    approval_id = next(
        button_value(c, "approval_approve")
        for c in slack.calls_to("chat.postMessage")
        if c.get("channel") == APPROVALS
    )
    # the first process is gone; another one, on the same Redis, takes the click and resumes
    async with served(settings, config_path) as (url, app):
        send = SlackSender(url, SIGNING_SECRET, slack)
        await send.click("approval_approve", approval_id, user=MANAGER)
        await stopped(slack, 2)
        await _settled(app)

    first, second = slack.ai.thread(DM, thread_ts)
    assert [t["title"] for t in first.task_list()] == ["get_weather", "book_flight"]
    assert [t["title"] for t in second.task_list()] == ["book_flight"]
    assert second.task_list()[0]["status"] == "complete"
    assert second.text == "Booked in the end."
    assert len(agent_tools.runs_of("book_flight")) == 1
    assert not any(r.streaming for r in slack.ai.replies.values())


async def _settled(app: Any) -> None:
    services = app[SERVICES]
    while not services.background.idle():
        await asyncio.sleep(0.01)
    await services.jobs.idle()


async def test_an_outsider_cannot_decide_from_anywhere(bot: BotUnderTest) -> None:
    await ask(bot, "book a flight to Rodez")
    approval_id = await bot.approval_id()
    await bot.send.click("approval_approve", approval_id, user=OUTSIDER)
    await bot.note()
    await bot.settled()
    assert agent_tools.runs_of("book_flight") == []
    assert await bot.redis.hget(keys.approval(approval_id), "status") == "pending"


# -- approvals in the requester's thread ------------------------------------------------------
def thread_card(slack: SlackStandIn, thread_ts: str) -> dict[str, Any]:
    """The message with the request's buttons in the requester's thread, as it is now."""
    [found] = [
        m
        for (channel, _), m in slack.messages.items()
        if channel == DM and m.get("thread_ts") == thread_ts and m.get("bot_id")
    ]
    return found


def approve_block(message: dict[str, Any]) -> str:
    for block in message.get("blocks", []):
        if any(e.get("action_id") == "approval_approve" for e in block.get("elements", [])):
            return str(block["block_id"])
    raise AssertionError(f"no Approve button in {message}")


@pytest.mark.parametrize("self_approval", [True])
async def test_a_requester_who_may_decide_does_so_in_their_thread(bot: BotUnderTest) -> None:
    thread_ts = await ask(bot, "book a flight to Rodez")
    approval_id = await bot.approval_id()
    await bot.slack.wait_for("chat.postMessage", lambda a: a.get("thread_ts") == thread_ts)
    await bot.settled()
    in_thread = thread_card(bot.slack, thread_ts)
    assert button_value(in_thread, "approval_approve") == approval_id
    assert f"<#{APPROVALS}>" in all_text(in_thread)

    await bot.send.click(
        "approval_approve",
        approval_id,
        user=REQUESTER,
        channel=DM,
        message_ts=in_thread["ts"],
        block_id=approve_block(in_thread),
    )
    await stopped(bot.slack, 2)
    await bot.settled()

    assert agent_tools.runs_of("book_flight") == [{"destination": "Rodez", "date": "2026-12-01"}]
    decided = thread_card(bot.slack, thread_ts)  # the same message, its buttons gone
    assert not [b for b in decided["blocks"] if b["type"] == "actions"]
    assert f"approved by <@{REQUESTER}>" in all_text(decided)
    assert f"Approved* by <@{REQUESTER}>" in all_text(bot.card_state(_card_ts(bot)))
    [task] = bot.slack.ai.thread(DM, thread_ts)[-1].task_list()
    assert task["details"] == f"Approved by <@{REQUESTER}>; done"


@pytest.mark.parametrize("self_approval", [True])
async def test_someone_not_allowed_clicking_the_thread_button_changes_nothing(
    bot: BotUnderTest,
) -> None:
    thread_ts = await ask(bot, "book a flight to Rodez")
    approval_id = await bot.approval_id()
    await bot.slack.wait_for("chat.postMessage", lambda a: a.get("thread_ts") == thread_ts)
    await bot.settled()
    in_thread = thread_card(bot.slack, thread_ts)

    reply = await bot.send.click(
        "approval_approve",
        approval_id,
        user=OUTSIDER,
        channel=DM,
        message_ts=in_thread["ts"],
        block_id=approve_block(in_thread),
    )
    assert reply.status == 200
    note = await bot.note()
    assert "Only members of" in note
    await bot.settled()
    assert await bot.redis.hget(keys.approval(approval_id), "status") == "pending"
    assert agent_tools.runs_of("book_flight") == []
    assert len(bot.slack.ai.thread(DM, thread_ts)) == 1  # nothing resumed


async def test_no_thread_buttons_where_the_requester_may_not_decide(bot: BotUnderTest) -> None:
    thread_ts = await ask(bot, "book a flight to Rodez")
    await bot.card()
    await stopped(bot.slack)
    await bot.settled()
    assert plain_posts_in(bot.slack, thread_ts) == []


async def test_a_long_run_is_batched_within_slacks_rate_limits(bot: BotUnderTest) -> None:
    from tests.standins.slack import RateLimits

    bot.slack.rate_limits = RateLimits()  # Slack's own tiers: startStream 20 a minute...
    rounds = [
        [function_call("get_weather", {"city": f"City{r}x{c}"}) for c in range(5)] for r in range(4)
    ]
    bot.mistral.script = scripted(*rounds, [message("Twenty forecasts.")])
    thread_ts = await ask(bot, "weather everywhere")
    await stopped(bot.slack)
    await bot.settled()

    tasks = bot.slack.ai.tasks(DM, thread_ts)
    assert len(tasks) == 20 and {t["status"] for t in tasks.values()} == {"complete"}
    assert len(agent_tools.runs_of("get_weather")) == 20
    writes = [c for c in bot.slack.calls if c.method.startswith("chat.") and "Stream" in c.method]
    assert len(writes) <= 12 < 40  # 40 step changes (running, then done), batched
    assert [c for c in bot.slack.calls if c.status == 429] == []
    assert bot.slack.ai.text(DM, thread_ts) == "Twenty forecasts."


RULED = (
    CONFIG.format(channel=APPROVALS, self_approval="false")
    + """\
policy:
  rules:
    - name: big flights
      tools: [book_flight]
      quorum: 2
"""
)


@pytest.mark.parametrize("config_path", [RULED], indirect=True)
async def test_a_waiting_task_says_how_many_approvals_under_which_rule(bot: BotUnderTest) -> None:
    thread_ts = await ask(bot, "book a flight to Rodez")
    await bot.card()
    await stopped(bot.slack)
    await bot.settled()
    [task] = bot.slack.ai.tasks(DM, thread_ts).values()
    assert (
        task["details"] == f"Waiting for 2 approvals in <#{APPROVALS}> under rule 1 (big flights)"
    )


DENYING = (
    CONFIG.format(channel=APPROVALS, self_approval="false")
    + """\
policy:
  rules:
    - name: no flights
      tools: [book_flight]
      decision: deny
      reason: Flights go through the travel desk.
"""
)


@pytest.mark.parametrize("config_path", [DENYING], indirect=True)
async def test_a_call_the_policy_decides_names_its_rule(bot: BotUnderTest) -> None:
    thread_ts = await ask(bot, "book a flight to Rodez")
    await stopped(bot.slack)
    await bot.settled()
    [task] = bot.slack.ai.tasks(DM, thread_ts).values()
    assert task["status"] == "error"
    assert task["details"] == (
        "Denied by the policy under rule 1 (no flights): Flights go through the travel desk."
    )
    assert bot.slack.count("chat.postMessage", lambda a: a.get("channel") == APPROVALS) == 0
    assert agent_tools.runs_of("book_flight") == []
    assert plain_posts_in(bot.slack, thread_ts) == []


async def test_a_run_that_fails_midway_ends_its_reply_and_offers_retry(bot: BotUnderTest) -> None:
    def weather_then_fail(turn: Any) -> list[Any]:
        bot.mistral.fail_next(500)  # the next request, with the tool's result, fails
        return [function_call("get_weather", {"city": "Bergen"})]

    bot.mistral.script = scripted(weather_then_fail)
    thread_ts = await ask(bot, "weather in Bergen")
    failure = await bot.slack.wait_for(
        "chat.postMessage", lambda a: "could not answer" in a["text"]
    )
    await bot.settled()

    assert failure["thread_ts"] == thread_ts
    assert button_value(failure, "turn_retry")  # its author may send it again
    [reply] = bot.slack.ai.thread(DM, thread_ts)
    assert not reply.streaming  # nothing is left "streaming" for ever
    [task] = reply.task_list()
    assert (task["title"], task["status"]) == ("get_weather", "complete")
    assert agent_tools.runs_of("get_weather") == [{"city": "Bergen"}]


IN_THREAD_RULE = ANYWHERE + (
    "policy:\n"
    "  rules:\n"
    "    - name: flights\n"
    "      tools: [book_flight]\n"
    "      approvers: {requester_thread: true}\n"
)


def channel_thread_card(slack: SlackStandIn, thread_ts: str) -> dict[str, Any]:
    """The message with the request's buttons in a channel thread, as it is now."""
    [found] = [
        m
        for (channel, _), m in slack.messages.items()
        if channel == "C0GENERAL" and m.get("thread_ts") == thread_ts and m.get("blocks")
    ]
    return found


@pytest.mark.parametrize("config_path", [IN_THREAD_RULE], indirect=True)
async def test_a_rule_puts_its_buttons_in_the_requesters_thread_for_its_approvers(
    bot: BotUnderTest,
) -> None:
    ts = await bot.send.mention("book a flight to Rodez")
    approval_id = await bot.approval_id()
    await stopped(bot.slack)
    await bot.settled()
    # the requester may not decide (no self-approval): the rule alone puts the buttons there
    in_thread = channel_thread_card(bot.slack, ts)
    assert button_value(in_thread, "approval_approve") == approval_id

    # someone the rule does not name is refused there, as on the card
    await bot.send.click(
        "approval_approve",
        approval_id,
        user=OUTSIDER,
        channel="C0GENERAL",
        message_ts=in_thread["ts"],
        block_id=approve_block(in_thread),
    )
    assert "Only members of" in await bot.note()
    await bot.settled()
    assert agent_tools.runs_of("book_flight") == []

    # an approver (a member of the approvals channel) decides from the requester's thread
    await bot.send.click(
        "approval_approve",
        approval_id,
        user=MANAGER,
        channel="C0GENERAL",
        message_ts=in_thread["ts"],
        block_id=approve_block(in_thread),
    )
    await stopped(bot.slack, 2)
    await bot.settled()
    assert agent_tools.runs_of("book_flight") == [{"destination": "Rodez", "date": "2026-12-01"}]
    decided = channel_thread_card(bot.slack, ts)
    assert not [b for b in decided["blocks"] if b["type"] == "actions"]
    assert f"Approved* by <@{MANAGER}>" in all_text(bot.card_state(_card_ts(bot)))


@pytest.mark.parametrize("config_path", [ANYWHERE], indirect=True)
async def test_without_the_rule_no_buttons_in_a_channel_thread(bot: BotUnderTest) -> None:
    ts = await bot.send.mention("book a flight to Rodez")
    await bot.card()
    await stopped(bot.slack)
    await bot.settled()
    assert not [
        m
        for (channel, _), m in bot.slack.messages.items()
        if channel == "C0GENERAL" and m.get("thread_ts") == ts and m.get("blocks")
    ]


@pytest.mark.parametrize(
    "config_path",
    [
        CONFIG.format(channel=APPROVALS, self_approval="false")
        + "assistant:\n  statuses:\n    get_weather: is checking the weather…\n"
    ],
    indirect=True,
)
async def test_a_tool_s_status_says_what_the_config_says(bot: BotUnderTest) -> None:
    thread_ts = await ask(bot, "weather in Paris")
    await stopped(bot.slack)
    await bot.settled()
    statuses = bot.slack.ai.statuses[(DM, thread_ts)]
    assert "is checking the weather…" in statuses
    assert not [s for s in statuses if "get_weather" in s]


class TestCallsMistralRunsItself:
    """A connector's tool that no rule holds runs on Mistral's side: the bot hears of it
    only in the run's output (a ``tool.execution`` entry), and shows it done."""

    @pytest.fixture
    def bot_config(self) -> str:
        return (
            CONFIG.format(channel=APPROVALS, self_approval="false")
            + "  connectors:\n    - connector_id: gmail\n"  # under tools:, after functions
            + ASSISTANT
        )

    @pytest.fixture(autouse=True)
    def _gmail(self, mistral: MistralStandIn) -> None:
        mistral.create_connector("gmail", ["gmail_search"])
        mistral.script = lambda turn: [
            function_call("gmail_search", {"q": "invoices"}),
            message("Found 3 mails."),
        ]

    async def test_it_is_a_task_done_before_the_answer(self, bot: BotUnderTest) -> None:
        thread_ts = await ask(bot, "search my mail for invoices")
        await stopped(bot.slack)
        await bot.settled()
        assert [name for _, name, _ in bot.mistral.server_runs] == ["gmail_search"]
        [reply] = bot.slack.ai.thread(DM, thread_ts)
        [task] = reply.task_list()
        assert (task["title"], task["status"]) == ("gmail_search", "complete")
        assert task["details"] == "Done on Mistral's side"
        assert reply.text == "Found 3 mails."
