"""Faults, with real bot processes on a real Redis: processes killed mid-work, Redis
restarted, clicks raced, events delivered again. Whatever happens, an approved action runs
at most once, a denied one never, and no request or message is lost.

The bots are ``python -m bot serve`` processes (tests.processes); the Slack and Mistral
stand-ins run in the test's event loop and the bots reach them by URL. Tools run in the bot
processes and record each run in a file (tests.fault_tools).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.mistral.tools import OUTCOME_UNKNOWN
from bot.storage import keys
from tests import fault_tools
from tests.helpers import (
    APPROVALS,
    DM,
    MANAGER,
    OTHER_MANAGER,
    REQUESTER,
    SIGNING_SECRET,
    all_text,
    button_block,
    button_value,
    start_thread,
)
from tests.processes import BotProcess, Fleet, RedisProcess, wait_until
from tests.standins.mistral import (
    MistralStandIn,
    ModelTurn,
    RecordedRequest,
    ScriptResult,
    travel_agent_script,
)
from tests.standins.slack import SlackStandIn

#: Short, so that a dead process's job is taken over within seconds (the minimum is 5).
LEASE_S = 5

CONFIG = f"""\
model: mistral-medium-latest
instructions: You are a test assistant.
approvals:
  channel: {APPROVALS}
  allow_self_approval: false
tools:
  functions:
    - ref: tests.fault_tools:book_flight
      requires_confirmation: true
"""

BOOK = "book a flight to Rodez"
BOOKED = "Done: Booked Rodez on 2026-12-01: FL-1"


@pytest.fixture
def tool_log(tmp_path: Path) -> Path:
    return tmp_path / "tool-runs.jsonl"


@pytest.fixture
def hold(tmp_path: Path) -> Path:
    """While this file exists, a tool that started waits (so a test can kill it mid-call)."""
    return tmp_path / "hold"


@pytest.fixture
async def fleet(
    tmp_path: Path,
    redis_client: aioredis.Redis,
    redis_url: str,
    slack: SlackStandIn,
    mistral: MistralStandIn,
    tool_log: Path,
    hold: Path,
) -> AsyncIterator[Fleet]:
    """Starts bot processes on the session's Redis (flushed); stops them after the test."""
    config = tmp_path / "bot.yml"
    config.write_text(CONFIG)
    directory = tmp_path / "bots"
    directory.mkdir()
    environment = {
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "MISTRAL_API_KEY": "test-key",
        "MISTRAL_SERVER_URL": mistral.url,
        "MISTRAL_RETRY_FOR_MS": "0",
        "MISTRAL_TIMEOUT_MS": "10000",
        "REDIS_URL": redis_url,
        "BOT_CONFIG": str(config),
        "JOB_LEASE_S": str(LEASE_S),
        "SHUTDOWN_GRACE_S": "1",
        "LOG_LEVEL": "INFO",
        fault_tools.LOG_ENV: str(tool_log),
        fault_tools.HOLD_ENV: str(hold),
    }
    fleet = Fleet(directory, environment, SIGNING_SECRET, slack)
    yield fleet
    await fleet.close()


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisProcess]:
    """A persistent Redis of the test's own, which it may kill and start again."""
    server = RedisProcess(tmp_path / "redis")
    await server.start()
    yield server
    server.stop()


# -- what the stand-ins and the tools saw ------------------------------------------------------


def is_card(args: dict[str, Any]) -> bool:
    return args.get("channel") == APPROVALS and bool(args.get("blocks"))


async def card(slack: SlackStandIn, index: int = 0, timeout: float = 20.0) -> dict[str, Any]:
    """The index-th approval card posted (waits for it); with its ``ts``."""
    await slack.wait_for(
        "chat.postMessage", lambda _: slack.count("chat.postMessage", is_card) > index, timeout
    )
    posted = [c for c in slack.calls if c.method == "chat.postMessage" and is_card(c.args)]
    return {**posted[index].args, "ts": posted[index].response["ts"]}


def starts(mistral: MistralStandIn) -> list[RecordedRequest]:
    """Conversation starts (POST /v1/conversations) received."""
    return [r for r in mistral.requests if r.method == "POST" and r.path == "/v1/conversations"]


def appends(mistral: MistralStandIn) -> list[RecordedRequest]:
    """Appends to a conversation (POST /v1/conversations/{id}) received, answered or not."""
    return [r for r in mistral.requests if r.method == "POST" and r.path.count("/") == 3]


def results_in(mistral: MistralStandIn, conversation_id: str) -> list[str]:
    """The function results the conversation holds (what reached the model)."""
    return [
        str(entry["result"])
        for entry in mistral.conversation_history(conversation_id)
        if entry.get("type") == "function.result"
    ]


def said(slack: SlackStandIn, text: str) -> list[dict[str, Any]]:
    """Messages posted or updated to contain ``text``."""
    return [
        c.args
        for c in slack.calls
        if c.method in ("chat.postMessage", "chat.update") and text in all_text(c.args)
    ]


async def approve(bot: BotProcess, slack: SlackStandIn, user: str = MANAGER) -> str:
    """Click Approve on the first card, through ``bot``; the approval id."""
    posted = await card(slack)
    reply = await click_approve(bot, posted, user)
    assert reply.status == 200, reply
    return button_value(posted, "approval_approve")


async def click_approve(bot: BotProcess, posted: dict[str, Any], user: str = MANAGER) -> Any:
    """Click Approve on the card ``posted``, through ``bot``; Slack's reply."""
    return await bot.send.click(
        "approval_approve",
        button_value(posted, "approval_approve"),
        user=user,
        message_ts=posted["ts"],
        block_id=button_block(posted, "approval_approve"),
    )


async def settled(redis_client: aioredis.Redis, timeout: float = 20.0) -> None:
    """Every job done: the stream is empty."""
    await wait_until(lambda: _no_jobs(redis_client), timeout, "the job stream to be empty")


async def _no_jobs(redis_client: aioredis.Redis) -> bool:
    return int(await redis_client.xlen(keys.JOBS)) == 0


# -- tests -------------------------------------------------------------------------------------


async def test_an_event_delivered_three_times_is_answered_once(
    fleet: Fleet, slack: SlackStandIn, mistral: MistralStandIn, redis_client: aioredis.Redis
) -> None:
    """Slack delivers one event three times at once, to two processes, then once more: one
    conversation start, one answer."""
    a, b = await two_bots(fleet)
    event = {
        "type": "message",
        "user": REQUESTER,
        "text": "hello there",
        "ts": "1710000000.000001",
        "channel": "D0DM",
        "channel_type": "im",
        "team": "T0TEAM",
    }
    # Slack retries an event it thinks was lost, to any process behind the URL
    replies = await asyncio.gather(
        *(bot.send.event(event, event_id="Ev0DUPLICATE") for bot in (a, b, a))
    )
    assert [r.status for r in replies] == [200, 200, 200]
    await slack.wait_for("chat.update", lambda args: "You said: hello there" in all_text(args))
    again = await b.send.event(event, event_id="Ev0DUPLICATE")
    assert again.status == 200
    await settled(redis_client)

    assert len(starts(mistral)) == 1
    assert appends(mistral) == []
    assert len(said(slack, "You said: hello there")) == 1
    assert slack.count("chat.postMessage", lambda args: args.get("channel") == "D0DM") == 1


async def booked_once(slack: SlackStandIn, redis_client: aioredis.Redis, approval_id: str) -> None:
    """Wait for the booking's answer; it was said once, the resume is done, the card says
    who approved."""
    await slack.wait_for("chat.postMessage", lambda args: BOOKED in all_text(args), timeout=20)
    await settled(redis_client)
    assert len(said(slack, BOOKED)) == 1
    assert await redis_client.hget(keys.approval(approval_id), "resume") == "done"
    final = slack.messages[(APPROVALS, (await card(slack))["ts"])]
    assert f"Approved* by <@{MANAGER}>" in all_text(final)


async def test_a_card_posted_by_one_process_is_decided_through_another(
    fleet: Fleet,
    slack: SlackStandIn,
    mistral: MistralStandIn,
    redis_client: aioredis.Redis,
    tool_log: Path,
) -> None:
    """The message reaches one process, the click another: the tool runs once, one answer."""
    a, b = await two_bots(fleet)
    await a.send.mention(BOOK)
    approval_id = await approve(b, slack)

    await booked_once(slack, redis_client, approval_id)
    assert len(fault_tools.runs(tool_log, "book_flight")) == 1
    assert len(starts(mistral)) == 1 and len(appends(mistral)) == 1
    [conversation] = mistral.conversation_ids
    assert results_in(mistral, conversation) == ["Booked Rodez on 2026-12-01: FL-1"]


async def test_a_process_that_only_answers_slack_leaves_every_job_to_the_worker(
    fleet: Fleet,
    slack: SlackStandIn,
    mistral: MistralStandIn,
    redis_client: aioredis.Redis,
    tool_log: Path,
) -> None:
    """``serve`` with RUN_JOBS=false records the message and the click; the worker runs the
    conversation, posts the card, announces the decision and runs the tool."""
    front = await fleet.start("front", RUN_JOBS="false")
    worker = await fleet.start("worker", "worker")
    await front.send.mention(BOOK)
    approval_id = await approve(front, slack)

    await booked_once(slack, redis_client, approval_id)
    assert [run["pid"] for run in fault_tools.runs(tool_log, "book_flight")] == [worker.pid]
    assert "runs queued work" in worker.log()
    assert "leaves queued work to workers" in front.log()
    assert "audit approved" not in front.log() and "audit approved" in worker.log()


@pytest.mark.parametrize("same_person", [False, True], ids=["50-approvers", "one-approver"])
async def test_fifty_concurrent_clicks_on_two_processes_decide_and_resume_once(
    fleet: Fleet,
    slack: SlackStandIn,
    mistral: MistralStandIn,
    redis_client: aioredis.Redis,
    tool_log: Path,
    same_person: bool,
) -> None:
    """50 Approve clicks at once, half to each process: one decision, one resume sent to
    Mistral, the tool runs once; every other click is told who decided."""
    approvers = [MANAGER] * 50 if same_person else [f"UAPPROVER{i:02d}" for i in range(50)]
    slack.members[APPROVALS] = [*sorted(set(approvers)), REQUESTER]
    a, b = await two_bots(fleet)
    await a.send.mention(BOOK)
    posted = await card(slack)
    approval_id = button_value(posted, "approval_approve")
    block_id = button_block(posted, "approval_approve")

    replies = await asyncio.gather(
        *(
            (a, b)[i % 2].send.click(
                "approval_approve",
                approval_id,
                user=user,
                message_ts=posted["ts"],
                block_id=block_id,
            )
            for i, user in enumerate(approvers)
        )
    )
    assert {r.status for r in replies} == {200}
    await slack.wait_for("chat.postMessage", lambda args: BOOKED in all_text(args), timeout=20)
    await settled(redis_client)
    await wait_until(
        lambda: slack.count("chat.postEphemeral") >= 49, 10, "a note to every later click"
    )

    assert len(fault_tools.runs(tool_log, "book_flight")) == 1
    [conversation] = mistral.conversation_ids
    resumes = [r for r in appends(mistral) if r.path == f"/v1/conversations/{conversation}"]
    assert len(resumes) == 1
    assert results_in(mistral, conversation) == ["Booked Rodez on 2026-12-01: FL-1"]
    assert len(said(slack, BOOKED)) == 1
    decision = json.loads(await redis_client.hget(keys.approval(approval_id), "decision"))
    assert decision["status"] == "approved" and decision["user_id"] in approvers
    notes = slack.calls_to("chat.postEphemeral")
    assert len(notes) == 49
    assert all(f"already approved by <@{decision['user_id']}>" in n["text"] for n in notes)


def holder_of_the_call(fleet: Fleet, tool_log: Path) -> tuple[BotProcess, BotProcess]:
    """(the process that ran the approved call, another one)."""
    [run] = fault_tools.runs(tool_log, "book_flight")
    return split(fleet, int(run["pid"]))


def split(fleet: Fleet, pid: int) -> tuple[BotProcess, BotProcess]:
    """(the process with this pid, another one)."""
    [holder] = [bot for bot in fleet.bots if bot.pid == pid]
    [other] = [bot for bot in fleet.bots if bot is not holder]
    return holder, other


async def two_bots(fleet: Fleet) -> tuple[BotProcess, BotProcess]:
    """Start processes "a" and "b" on the same Redis."""
    a, b = await asyncio.gather(fleet.start("a"), fleet.start("b"))
    return a, b


async def test_a_process_killed_before_mistral_took_the_result_the_other_resends_it(
    fleet: Fleet,
    slack: SlackStandIn,
    mistral: MistralStandIn,
    redis_client: aioredis.Redis,
    tool_log: Path,
) -> None:
    """SIGKILL after the tool ran, while the resume's request to Mistral is in flight and is
    never processed: the other process takes the job over after the lease, sends the stored
    result (the tool does not run again), and the thread gets the answer once."""
    await two_bots(fleet)
    await fleet.bots[0].send.mention(BOOK)
    await card(slack)
    # the resume's append (the next request to Mistral) hangs until the stand-in closes
    mistral.delay_next(600)
    await approve(fleet.bots[0], slack)
    await wait_until(lambda: len(appends(mistral)) == 1, 15, "the resume's append")
    victim, survivor = holder_of_the_call(fleet, tool_log)
    victim.kill()

    await slack.wait_for("chat.postMessage", lambda args: BOOKED in all_text(args), timeout=25)
    await settled(redis_client)
    assert "reclaimed from a process that stopped" in survivor.log()
    assert len(fault_tools.runs(tool_log, "book_flight")) == 1
    [conversation] = mistral.conversation_ids
    assert results_in(mistral, conversation) == ["Booked Rodez on 2026-12-01: FL-1"]
    assert [r.status for r in appends(mistral)] == [None, 200]  # the first never answered
    assert len(said(slack, BOOKED)) == 1


async def test_a_process_killed_after_mistral_took_the_result_the_other_reads_the_history(
    fleet: Fleet,
    slack: SlackStandIn,
    mistral: MistralStandIn,
    redis_client: aioredis.Redis,
    tool_log: Path,
) -> None:
    """SIGKILL while Mistral processes the resume's request, which it completes after the
    process died: the other process reads the conversation's history, posts the answer from
    there and sends nothing again."""
    reply_now = asyncio.Event()

    async def slow_resume(turn: ModelTurn) -> ScriptResult:
        if turn.function_results():
            await reply_now.wait()
        return travel_agent_script(turn)

    mistral.script = slow_resume
    await two_bots(fleet)
    await fleet.bots[0].send.mention(BOOK)
    await approve(fleet.bots[1], slack)
    await wait_until(lambda: len(appends(mistral)) == 1, 15, "the resume's append")
    victim, survivor = holder_of_the_call(fleet, tool_log)
    victim.kill()
    reply_now.set()
    [conversation] = mistral.conversation_ids
    await wait_until(lambda: results_in(mistral, conversation) != [], 5, "Mistral to take it")

    await slack.wait_for("chat.postMessage", lambda args: BOOKED in all_text(args), timeout=25)
    await settled(redis_client)
    assert "reclaimed from a process that stopped" in survivor.log()
    assert len(fault_tools.runs(tool_log, "book_flight")) == 1
    assert len(appends(mistral)) == 1
    history_reads = [r for r in mistral.requests if r.path.endswith("/history")]
    assert len(history_reads) == 1
    assert results_in(mistral, conversation) == ["Booked Rodez on 2026-12-01: FL-1"]
    assert len(said(slack, BOOKED)) == 1


async def test_a_process_killed_while_the_tool_runs_the_call_is_not_run_again(
    fleet: Fleet,
    slack: SlackStandIn,
    mistral: MistralStandIn,
    redis_client: aioredis.Redis,
    tool_log: Path,
    hold: Path,
) -> None:
    """SIGKILL in the middle of the approved call: the other process takes the job over, does
    not run the call again, and the model, the card and the thread hear its outcome is
    unknown."""
    await two_bots(fleet)
    await fleet.bots[0].send.mention(BOOK)
    hold.touch()
    approval_id = await approve(fleet.bots[0], slack)
    await wait_until(lambda: fault_tools.runs(tool_log) != [], 15, "the tool to start")
    victim, survivor = holder_of_the_call(fleet, tool_log)
    victim.kill()
    hold.unlink()  # a second run, if any, would finish and be counted

    unknown = "Done: " + OUTCOME_UNKNOWN[:40]
    await slack.wait_for("chat.postMessage", lambda args: unknown in all_text(args), timeout=25)
    await settled(redis_client)
    assert "reclaimed from a process that stopped" in survivor.log()
    assert len(fault_tools.runs(tool_log, "book_flight")) == 1
    [conversation] = mistral.conversation_ids
    assert results_in(mistral, conversation) == [OUTCOME_UNKNOWN]
    assert len(said(slack, unknown)) == 1
    warnings = said(slack, "did not run it again, so its outcome is unknown")
    assert {w["channel"] for w in warnings} == {"C0GENERAL", APPROVALS}
    assert said(slack, "Booked Rodez") == []
    outcome = await redis_client.hget(keys.approval(approval_id), "outcome")
    assert "Outcome unknown for book_flight" in outcome


async def job_holder(fleet: Fleet, redis_client: aioredis.Redis) -> tuple[BotProcess, BotProcess]:
    """(the process running the one job in flight, another one), by the job's consumer."""
    pending = await redis_client.xpending_range(keys.JOBS, keys.JOBS_GROUP, "-", "+", 10)
    [entry] = pending
    consumer = entry["consumer"]
    pid = int((consumer.decode() if isinstance(consumer, bytes) else consumer).rsplit("-", 2)[1])
    return split(fleet, pid)


async def test_a_denied_call_never_runs_when_its_resume_is_taken_over(
    fleet: Fleet,
    slack: SlackStandIn,
    mistral: MistralStandIn,
    redis_client: aioredis.Redis,
    tool_log: Path,
) -> None:
    """Denied through one process, the resume's process killed mid-request: the process
    that takes it over sends the denial (the reason) again, and the tool never runs."""
    a, b = await two_bots(fleet)
    await a.send.mention(BOOK)
    posted = await card(slack)
    approval_id = button_value(posted, "approval_deny")
    await a.send.click(
        "approval_deny",
        approval_id,
        user=MANAGER,
        message_ts=posted["ts"],
        block_id=button_block(posted, "approval_deny"),
    )
    modal = await slack.wait_for_modal()
    mistral.delay_next(600)  # the resume's append hangs: Mistral never processes it
    reply = await b.send.submit_view(
        "approval_deny_modal",
        modal["view"]["private_metadata"],
        user=MANAGER,
        values={"deny_reason": {"reason": {"type": "plain_text_input", "value": "Too pricey"}}},
    )
    assert reply.status == 200
    await wait_until(lambda: len(appends(mistral)) == 1, 15, "the resume's append")
    victim, survivor = await job_holder(fleet, redis_client)
    victim.kill()

    await slack.wait_for(
        "chat.postMessage", lambda args: "Done: Too pricey" in all_text(args), timeout=25
    )
    await settled(redis_client)
    assert "reclaimed from a process that stopped" in survivor.log()
    assert fault_tools.runs(tool_log) == []
    [conversation] = mistral.conversation_ids
    assert results_in(mistral, conversation) == ["Too pricey"]
    assert len(said(slack, "Done: Too pricey")) == 1
    assert await redis_client.hget(keys.approval(approval_id), "status") == "denied"


async def kill_while_the_model_works(
    fleet: Fleet, mistral: MistralStandIn, redis_client: aioredis.Redis
) -> tuple[str, BotProcess]:
    """Send a message and SIGKILL the process running it while its conversation start is
    in flight (Mistral never processes that request); the message's ts and the survivor."""
    a, _b = await two_bots(fleet)
    mistral.delay_next(600)
    ts = await a.send.mention(BOOK)
    await wait_until(lambda: len(starts(mistral)) == 1, 15, "the conversation start")
    victim, survivor = await job_holder(fleet, redis_client)
    victim.kill()
    return ts, survivor


async def test_a_message_whose_process_died_is_run_by_another(
    fleet: Fleet,
    slack: SlackStandIn,
    mistral: MistralStandIn,
    redis_client: aioredis.Redis,
    tool_log: Path,
) -> None:
    """The message is not lost: another process runs it again; one card, nothing run."""
    ts, survivor = await kill_while_the_model_works(fleet, mistral, redis_client)

    posted = await card(slack)
    await slack.wait_for("chat.update", lambda args: "needs approval" in all_text(args), timeout=25)
    await settled(redis_client)
    assert "reclaimed from a process that stopped" in survivor.log()
    assert [r.status for r in starts(mistral)] == [None, 200]
    assert slack.count("chat.postMessage", is_card) == 1
    link = f"<https://example.slack.com/archives/C0GENERAL/p{ts.replace('.', '')}"
    assert link in all_text(posted)
    assert fault_tools.runs(tool_log) == []


async def test_a_message_whose_process_died_leaves_no_stale_placeholder(
    fleet: Fleet, slack: SlackStandIn, mistral: MistralStandIn, redis_client: aioredis.Redis
) -> None:
    ts, _survivor = await kill_while_the_model_works(fleet, mistral, redis_client)

    await slack.wait_for("chat.update", lambda args: "needs approval" in all_text(args), timeout=25)
    await settled(redis_client)
    in_thread = [m for m in slack.messages_in("C0GENERAL") if m.get("thread_ts") == ts]
    assert [m["text"] for m in in_thread if "Working on it" in all_text(m)] == []


async def readyz_is(bot: BotProcess, status: int) -> bool:
    return await bot.readyz() == status


async def waiting_card(
    fleet: Fleet, own_redis: RedisProcess, slack: SlackStandIn
) -> tuple[BotProcess, dict[str, Any], str]:
    """A bot on ``own_redis`` with one request waiting on its card, every job done: the bot,
    the card as posted, the request's id."""
    bot = await fleet.start("a", REDIS_URL=own_redis.url)
    await bot.send.mention(BOOK)
    posted = await card(slack)
    await slack.wait_for("chat.update", lambda args: "needs approval" in all_text(args))
    async with own_redis.client() as client:
        await settled(client)
    return bot, posted, button_value(posted, "approval_approve")


async def test_redis_killed_and_restarted_loses_no_pending_approval(
    own_redis: RedisProcess,
    fleet: Fleet,
    slack: SlackStandIn,
    mistral: MistralStandIn,
    tool_log: Path,
) -> None:
    """Redis is killed (SIGKILL) while a request waits for its decision, then started again
    on its data: the bot is not ready meanwhile, a click then changes nothing, and after the
    restart the pending request is still there and a click decides it."""
    bot, posted, approval_id = await waiting_card(fleet, own_redis, slack)

    own_redis.kill()
    await wait_until(lambda: readyz_is(bot, 503), 15, "/readyz to fail")
    reply = await click_approve(bot, posted)
    assert reply.status == 200
    await slack.wait_for("chat.postEphemeral", lambda args: "nothing was changed" in args["text"])

    await own_redis.start()
    await wait_until(lambda: readyz_is(bot, 200), 15, "/readyz to recover")
    async with own_redis.client() as client:
        assert await client.hget(keys.approval(approval_id), "status") == "pending"
    assert fault_tools.runs(tool_log) == []

    await approve(bot, slack, user=OTHER_MANAGER)
    await slack.wait_for("chat.postMessage", lambda args: BOOKED in all_text(args), timeout=25)
    async with own_redis.client() as client:
        await settled(client)
        decision = json.loads(await client.hget(keys.approval(approval_id), "decision"))
    assert decision["user_id"] == OTHER_MANAGER
    assert len(fault_tools.runs(tool_log, "book_flight")) == 1
    assert len(said(slack, BOOKED)) == 1
    assert len(appends(mistral)) == 1


async def test_after_a_redis_restart_the_next_click_decides(
    own_redis: RedisProcess,
    fleet: Fleet,
    slack: SlackStandIn,
    mistral: MistralStandIn,
    tool_log: Path,
) -> None:
    """Redis restarts (data kept) between a card and its click, and nothing else happens
    in between: every pooled connection died with the old server, and the click still
    decides (connections are replaced; the vote counts once)."""
    bot, posted, approval_id = await waiting_card(fleet, own_redis, slack)

    own_redis.stop()
    await own_redis.start()
    reply = await click_approve(bot, posted)
    assert reply.status == 200

    await slack.wait_for("chat.postMessage", lambda args: BOOKED in all_text(args), timeout=25)
    assert not [c for c in slack.calls_to("chat.postEphemeral") if "try again" in c.get("text", "")]
    async with own_redis.client() as client:
        await settled(client)
        decision = json.loads(await client.hget(keys.approval(approval_id), "decision"))
    assert decision["user_id"] == MANAGER
    assert len(fault_tools.runs(tool_log, "book_flight")) == 1
    assert len(appends(mistral)) == 1


async def test_an_event_refused_while_redis_is_down_is_taken_when_slack_sends_it_again(
    own_redis: RedisProcess,
    fleet: Fleet,
    slack: SlackStandIn,
    mistral: MistralStandIn,
) -> None:
    """An event arriving while Redis is down gets a 503 (Slack delivers it again); once Redis
    is back, the redelivery is taken and answered once, a further one ignored."""
    bot = await fleet.start("a", REDIS_URL=own_redis.url)
    event = {
        "type": "message",
        "user": REQUESTER,
        "text": "are you there",
        "ts": "1710000000.000001",
        "channel": "D0DM",
        "channel_type": "im",
        "team": "T0TEAM",
    }
    own_redis.kill()
    await wait_until(lambda: readyz_is(bot, 503), 15, "/readyz to fail")
    refused = await bot.send.event(event, event_id="Ev0OUTAGE")
    assert refused.status == 503  # Slack delivers it again later

    await own_redis.start()
    await wait_until(lambda: readyz_is(bot, 200), 15, "/readyz to recover")
    for _ in range(2):  # Slack's retry, and one more
        taken = await bot.send.event(event, event_id="Ev0OUTAGE")
        assert taken.status == 200
    await slack.wait_for("chat.update", lambda args: "You said: are you there" in all_text(args))
    async with own_redis.client() as client:
        await settled(client)
    assert len(starts(mistral)) == 1
    assert len(said(slack, "You said: are you there")) == 1
    assert slack.count("chat.postMessage", lambda args: args.get("channel") == "D0DM") == 1


# -- the native Slack AI app (issue 17) -------------------------------------------------------
async def test_a_native_thread_whose_process_was_killed_is_continued_by_another(
    fleet: Fleet, slack: SlackStandIn, redis_client: aioredis.Redis, tool_log: Path
) -> None:
    """An assistant thread (bot.flow.agent_view): the process that showed the waiting task is
    killed; another takes the click and continues the same thread, showing nothing twice."""
    a = await fleet.start("a")
    b = await fleet.start("b")
    thread_ts = await start_thread(a.send)
    await a.send.message(BOOK, channel=DM, thread_ts=thread_ts)
    posted = await card(slack)
    await wait_until(lambda: slack.count("chat.stopStream") == 1, 20, "the waiting reply")
    a.kill()  # the process that started the thread is gone

    reply = await click_approve(b, posted)
    assert reply.status == 200
    await wait_until(lambda: slack.count("chat.stopStream") == 2, 30, "the answer")
    await settled(redis_client)

    waiting, answered = slack.ai.thread(DM, thread_ts)
    [pending] = waiting.task_list()
    [done] = answered.task_list()
    assert (pending["status"], done["status"]) == ("pending", "complete")
    assert pending["id"] == done["id"]
    assert done["details"].startswith("Approved by <@UMANAGER>")
    assert answered.text == "Done: Booked Rodez on 2026-12-01: FL-1"
    assert not answered.streaming
    assert len(fault_tools.runs(tool_log, "book_flight")) == 1
    # no placeholder, no plain answer in the thread: only the streamed replies
    assert not [m for (c, _), m in slack.messages.items() if c == DM and m.get("bot_id")]
