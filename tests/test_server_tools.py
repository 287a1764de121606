"""Connectors and built-in tools: declared on each run, decided through the policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.config import BotConfig, load_config
from bot.errors import ConfigError
from bot.policy import Effect, Holds, Override, Policy
from bot.server_tools import ServerTool, load_server_tools
from tests.conftest import APPROVALS, MANAGER, BotUnderTest, all_text, button_value
from tests.standins.mistral import Entry, ModelTurn, function_call, message

TOKEN = "ya29.secret-token"

SERVER_CONFIG = f"""\
model: mistral-medium-latest
approvals: {{channel: {APPROVALS}}}
policy:
  rules:
    - tools: ["gmail_send"]
      decision: deny
      reason: "Sending mail from Slack is not allowed."
    - tools: ["web_*"]
      decision: allow
tools:
  connectors:
    - connector_id: gmail
      authorization: {{type: oauth2-token, env: GMAIL_TOKEN}}
      tool_configuration:
        requires_confirmation: [gmail_search]
  builtins:
    - type: web_search_premium
      tool_configuration:
        requires_confirmation: [web_search, news_search]
    - type: document_library
      library_ids: [lib_1]
"""


def config_from(text: str, tmp_path: Path) -> tuple[BotConfig, Path]:
    path = tmp_path / "bot.yml"
    path.write_text(text)
    return load_config(path), path


# -- declarations ------------------------------------------------------------------------------
def test_declarations_follow_the_api_and_take_the_credential_from_the_environment(
    tmp_path: Path,
) -> None:
    config, path = config_from(SERVER_CONFIG, tmp_path)
    tools = load_server_tools(config, path, {"GMAIL_TOKEN": TOKEN})
    policy = Policy(config, marked=["gmail_search", "web_search", "news_search"])
    gmail, web, library = (tool.declaration(Holds(policy)) for tool in tools)

    assert gmail == {
        "type": "connector",
        "connector_id": "gmail",
        "authorization": {"type": "oauth2-token", "value": TOKEN},
        # gmail_send: a rule denies it, so Mistral must hold it for the bot
        "tool_configuration": {"requires_confirmation": ["gmail_search", "gmail_send"]},
    }
    # web_*: an allow rule lets web_search run without asking; news_search still waits
    assert web == {
        "type": "web_search_premium",
        "tool_configuration": {"requires_confirmation": ["news_search"]},
    }
    assert library == {"type": "document_library", "library_ids": ["lib_1"]}
    assert TOKEN not in repr(tools[0])


def test_local_function_names_never_go_to_a_connector(tmp_path: Path) -> None:
    config, path = config_from(SERVER_CONFIG, tmp_path)
    [gmail, *_] = load_server_tools(config, path, {"GMAIL_TOKEN": TOKEN})
    policy = Policy(config, marked=["gmail_search", "send_note"])
    confirmations = gmail.confirmations(Holds(policy), local=["send_note"])
    assert confirmations == ["gmail_search", "gmail_send"]


def test_include_limits_what_the_policy_adds_and_overrides_count(tmp_path: Path) -> None:
    tool = ServerTool("connector", connector_id="crm", include=("crm_read", "crm_write"))
    config, _ = config_from(
        f"model: m\napprovals: {{channel: {APPROVALS}}}\n"
        "policy:\n  rules:\n    - tools: [crm_write, other_tool]\n",
        tmp_path,
    )
    holds = Holds(Policy(config), (Override("crm_read", Effect.ASK, "UADMIN", 0.0),))
    assert tool.declaration(holds)["tool_configuration"] == {
        "include": ["crm_read", "crm_write"],
        "requires_confirmation": ["crm_read", "crm_write"],
    }
    assert tool.declaration(None) == {
        "type": "connector",
        "connector_id": "crm",
        "tool_configuration": {"include": ["crm_read", "crm_write"]},
    }


def test_a_missing_credential_stops_start_up_naming_the_variable(tmp_path: Path) -> None:
    config, path = config_from(SERVER_CONFIG, tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_server_tools(config, path, {})
    [problem] = caught.value.problems
    assert problem.startswith("tools.connectors.0.authorization.env (line 13)")
    assert "GMAIL_TOKEN is not set" in problem and "fix:" in problem


@pytest.mark.parametrize(
    ("tools", "field", "expected"),
    [
        (
            "  connectors:\n    - connector_id: gmail\n      tool_configuration:\n"
            "        include: [a]\n        exclude: [b]\n",
            "tools.connectors.0.tool_configuration",
            "include and exclude are mutually exclusive",
        ),
        (
            "  builtins:\n    - type: document_library\n",
            "tools.builtins.0",
            "document_library needs library_ids",
        ),
        (
            "  builtins:\n    - type: web_search\n      library_ids: [x]\n",
            "tools.builtins.0",
            "library_ids is only read by document_library",
        ),
        (
            "  builtins:\n    - type: web_browse\n",
            "tools.builtins.0.type",
            "web_search",
        ),
        (
            "  connectors:\n    - connector_id: gmail\n"
            "      authorization: {type: oauth2-token, env: GMAIL_TOKEN, value: oops}\n",
            "tools.connectors.0.authorization.value",
            "remove it or fix its spelling",
        ),
    ],
)
def test_server_tool_config_errors(tmp_path: Path, tools: str, field: str, expected: str) -> None:
    path = tmp_path / "bot.yml"
    path.write_text(f"model: m\napprovals: {{channel: {APPROVALS}}}\ntools:\n{tools}")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [problem] = caught.value.problems
    assert problem.startswith(field + " (line ")
    assert expected in problem


# -- through the bot -----------------------------------------------------------------------------
@pytest.fixture
def config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GMAIL_TOKEN", TOKEN)
    path = tmp_path / "bot.yml"
    path.write_text(SERVER_CONFIG)
    return path


def mail_script(turn: ModelTurn) -> list[Entry]:
    if turn.tool_confirmations:
        verdicts = [str(c.get("confirmation")) for c in turn.tool_confirmations]
        return [message("Done: " + ", ".join(verdicts))]
    text = turn.last_user_text() or ""
    name = "gmail_send" if "send" in text else "gmail_search"
    return [function_call(name, {"q": text}, confirmation_status="pending")]


def start_tools(bot: BotUnderTest) -> list[dict[str, Any]]:
    starts = [
        r for r in bot.mistral.requests if r.method == "POST" and r.path == "/v1/conversations"
    ]
    return list((starts[0].body or {}).get("tools") or [])


async def test_a_connector_call_is_asked_for_and_confirmed_on_resume(bot: BotUnderTest) -> None:
    bot.mistral.script = mail_script
    await bot.send.mention("search my mail for invoices")
    card = await bot.card()
    assert "`gmail_search` (server-side tool)" in all_text(card)
    declared = {tool["type"]: tool for tool in start_tools(bot)}
    assert declared["connector"]["authorization"] == {"type": "oauth2-token", "value": TOKEN}
    assert "gmail_send" in declared["connector"]["tool_configuration"]["requires_confirmation"]

    await bot.send.click("approval_approve", button_value(card, "approval_approve"), user=MANAGER)
    await bot.slack.wait_for("chat.postMessage", lambda a: "Done: allow" in all_text(a))
    await bot.settled()
    confirmations = [
        c for r in bot.mistral.requests for c in (r.body or {}).get("tool_confirmations") or []
    ]
    assert [c["confirmation"] for c in confirmations] == ["allow"]
    assert all(not (r.body or {}).get("inputs") for r in bot.mistral.requests[1:] if r.body)


async def test_a_connector_call_a_rule_denies_is_rejected_without_a_card(
    bot: BotUnderTest,
) -> None:
    bot.mistral.script = mail_script
    await bot.send.mention("send a mail to everyone")
    await bot.slack.wait_for("chat.update", lambda a: "Done: deny" in all_text(a))
    await bot.settled()
    assert [
        a for a in bot.slack.calls_to("chat.postMessage") if a.get("channel") == APPROVALS
    ] == []
    note = await bot.slack.wait_for(
        "chat.postMessage", lambda a: "Denied by the policy" in all_text(a)
    )
    assert "Sending mail from Slack is not allowed." in all_text(note)
