"""MCP servers: a real stdio server (``tests/mcp_server.py``) behind the approval flow."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.core.config import load_config
from bot.errors import ConfigError
from bot.mistral.mcp_servers import load_mcp_servers
from tests import agent_tools
from tests.helpers import (
    APPROVALS,
    MANAGER,
    BotUnderTest,
    all_text,
    button_block,
    button_value,
)
from tests.standins.mistral import Entry, ModelTurn, function_call, message


def mcp_config(calls_file: Path, command: str = sys.executable) -> str:
    env = {
        "MCP_CALLS_FILE": str(calls_file),
        "MCP_PID_FILE": str(calls_file.with_suffix(".pid")),
        "PYTHONPATH": str(Path.cwd()),
    }
    return f"""\
model: mistral-medium-latest
approvals: {{channel: {APPROVALS}}}
policy:
  rules:
    - tools: ["refund_*"]
      when: "args.amount > 100"
      allow_edit: true
tools:
  functions:
    - ref: tests.agent_tools:get_weather
  mcp_servers:
    - name: orders
      command: {json.dumps(command)}
      args: ["-m", "tests.mcp_server"]
      env: {json.dumps(env)}
      tool_configuration:
        requires_confirmation: [refund_order]
"""


@pytest.fixture
def calls_file(tmp_path: Path) -> Path:
    return tmp_path / "mcp-calls.jsonl"


@pytest.fixture
def bot_config(calls_file: Path) -> str:
    return mcp_config(calls_file)


def executed(calls_file: Path) -> list[dict[str, Any]]:
    if not calls_file.exists():
        return []
    return [json.loads(line) for line in calls_file.read_text().splitlines()]


def orders_script(turn: ModelTurn) -> list[Entry]:
    results = turn.function_results()
    if results:
        return [message("Done: " + "; ".join(str(r.get("result", "")) for r in results))]
    text = turn.last_user_text() or ""
    if "refund" in text:
        amount = 500 if "big" in text else 20
        return [function_call("refund_order", {"order_id": "42", "amount": amount})]
    if "weather" in text:
        return [function_call("get_weather", {"city": "Lyon"})]
    return [function_call("lookup_order", {"order_id": "42"})]


async def test_an_mcp_tool_that_needs_approval_runs_once_after_approval(
    bot: BotUnderTest, calls_file: Path
) -> None:
    bot.mistral.script = orders_script
    await bot.send.mention("big refund for order 42")
    card = await bot.card()
    assert "`refund_order`" in all_text(card)
    assert executed(calls_file) == []
    start = next(r for r in bot.mistral.requests if r.path == "/v1/conversations")
    declared = {t["function"]["name"] for t in (start.body or {}).get("tools", [])}
    assert {"lookup_order", "refund_order", "get_weather"} <= declared

    await bot.send.click("approval_approve", button_value(card, "approval_approve"), user=MANAGER)
    await bot.slack.wait_for(
        "chat.postMessage", lambda a: "Refunded 500 EUR on order 42" in all_text(a)
    )
    await bot.settled()
    assert executed(calls_file) == [
        {"tool": "refund_order", "arguments": {"order_id": "42", "amount": 500.0}}
    ]


async def test_an_mcp_call_edited_before_approval_runs_with_the_new_arguments(
    bot: BotUnderTest, calls_file: Path
) -> None:
    bot.mistral.script = orders_script
    await bot.send.mention("big refund for order 42")
    card = await bot.card()
    approval_id = button_value(card, "approval_edit")
    await bot.send.click(
        "approval_edit", approval_id, user=MANAGER, block_id=button_block(card, "approval_edit")
    )
    opened = await bot.slack.wait_for_modal()
    view = opened["view"]
    # the form is the MCP tool's input schema, as the model saw it
    inputs = {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}
    assert inputs["arg:amount"]["type"] == "number_input"
    assert inputs["arg:amount"]["initial_value"] == "500"
    reply = await bot.send.submit_view(
        "approval_edit_modal",
        view["private_metadata"],
        user=MANAGER,
        values={
            "arg:order_id": {"value": {"type": "plain_text_input", "value": "42"}},
            "arg:amount": {"value": {"type": "number_input", "value": "250"}},
        },
    )
    assert reply.status == 200 and not reply.text
    await bot.slack.wait_for(
        "chat.postMessage", lambda a: "Refunded 250 EUR on order 42" in all_text(a)
    )
    await bot.settled()
    assert executed(calls_file) == [
        {"tool": "refund_order", "arguments": {"order_id": "42", "amount": 250}}
    ]
    results = [
        entry["result"]
        for request in bot.mistral.requests
        for entry in (request.body or {}).get("inputs") or []
        if isinstance(entry, dict) and entry.get("type") == "function.result"
    ]
    assert len(results) == 1 and "a person changed the arguments" in results[0]


async def test_the_policy_lets_a_small_mcp_refund_and_a_read_run_without_a_card(
    bot: BotUnderTest, calls_file: Path
) -> None:
    bot.mistral.script = orders_script
    await bot.send.mention("small refund for order 42")
    await bot.slack.wait_for("chat.update", lambda a: "Refunded 20 EUR" in all_text(a))
    await bot.send.mention("where is order 42")
    await bot.slack.wait_for("chat.update", lambda a: "Order 42: shipped" in all_text(a))
    await bot.settled()
    assert [call["tool"] for call in executed(calls_file)] == ["refund_order", "lookup_order"]
    assert not [a for a in bot.slack.calls_to("chat.postMessage") if a.get("channel") == APPROVALS]


async def test_the_server_starts_once_and_is_reused_across_conversations(
    bot: BotUnderTest, calls_file: Path
) -> None:
    bot.mistral.script = orders_script
    [server] = bot.services.assistant.runner.mcp_servers.servers  # type: ignore[union-attr]
    owner = server._owner

    def answers() -> int:
        return bot.slack.count("chat.update", lambda u: "shipped" in all_text(u))

    for turn in range(1, 4):
        await bot.send.mention("where is order 42")
        await bot.slack.wait_for("chat.update", lambda a, n=turn: answers() >= n)
    await bot.settled()
    assert server.running and server._owner is owner
    assert [call["tool"] for call in executed(calls_file)] == ["lookup_order"] * 3


async def test_a_server_that_died_is_restarted_on_the_next_run(
    bot: BotUnderTest, calls_file: Path
) -> None:
    bot.mistral.script = orders_script
    pid = int(calls_file.with_suffix(".pid").read_text())
    os.kill(pid, signal.SIGKILL)
    await asyncio.sleep(0.2)

    await bot.send.mention("where is order 42")
    await bot.slack.wait_for("chat.update", lambda a: "Order 42: shipped" in all_text(a))
    await bot.settled()
    assert int(calls_file.with_suffix(".pid").read_text()) != pid
    assert [call["tool"] for call in executed(calls_file)] == ["lookup_order"]


class TestAServerThatCannotStart:
    @pytest.fixture
    def bot_config(self, calls_file: Path) -> str:
        return mcp_config(calls_file, command="/nonexistent/mcp-server")

    async def test_is_reported_and_the_bot_serves_its_other_tools(
        self, bot: BotUnderTest, caplog: pytest.LogCaptureFixture
    ) -> None:
        bot.mistral.script = orders_script
        await bot.send.mention("weather please")
        await bot.slack.wait_for("chat.update", lambda a: "Sunny in Lyon" in all_text(a))
        await bot.settled()
        assert agent_tools.runs_of("get_weather") == [{"city": "Lyon"}]
        # reported when the bot started (the fixture's setup), with the name and the reason
        reports = [
            r.getMessage()
            for r in caplog.get_records("setup")
            if r.levelno == logging.ERROR and r.name == "bot.mistral.mcp_servers"
        ]
        assert any(
            "MCP server orders could not start" in m and "/nonexistent/mcp-server" in m
            for m in reports
        )


def test_a_remote_server_header_comes_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "bot.yml"
    path.write_text(
        f"model: m\napprovals: {{channel: {APPROVALS}}}\ntools:\n  mcp_servers:\n"
        "    - name: wiki\n      url: https://mcp.example.com/mcp\n"
        "      headers_from_env: {Authorization: WIKI_TOKEN}\n"
    )
    config = load_config(path)
    with pytest.raises(ConfigError) as caught:
        load_mcp_servers(config, path, {})
    [problem] = caught.value.problems
    assert "tools.mcp_servers.0.headers_from_env.Authorization (line 7)" in problem
    assert "WIKI_TOKEN is not set" in problem
    [server] = load_mcp_servers(config, path, {"WIKI_TOKEN": "Bearer t"}).servers
    assert server._headers == {"Authorization": "Bearer t"}


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("    - name: x\n", "give exactly one of command"),
        ("    - name: x\n      command: a\n      url: https://b\n", "give exactly one of command"),
        ("    - name: x\n      url: https://b\n      args: [c]\n", "args and env are for command"),
        (
            "    - name: x\n      command: a\n"
            "      tool_configuration: {include: [a], exclude: [b]}\n",
            "include and exclude are mutually exclusive",
        ),
        ("    - name: x\n      command: a\n    - name: x\n      command: b\n", "names repeat"),
    ],
)
def test_mcp_server_config_errors(tmp_path: Path, server: str, expected: str) -> None:
    path = tmp_path / "bot.yml"
    path.write_text(
        f"model: m\napprovals: {{channel: {APPROVALS}}}\ntools:\n  mcp_servers:\n{server}"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert any(expected in problem for problem in caught.value.problems)
