"""Connectors and built-in tools: declared on each run, decided through the policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.core.config import BotConfig, load_config
from bot.core.policy import Effect, Holds, Override, Policy
from bot.errors import ConfigError
from bot.mistral.server_tools import ServerTool, load_server_tools
from tests.helpers import APPROVALS, MANAGER, BotUnderTest, all_text, button_value
from tests.standins.mistral import Entry, MistralStandIn, ModelTurn, function_call, message

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
    policy = Policy(config, held=["gmail_search", "web_search", "news_search"])
    listed = ("gmail_search", "gmail_send", "gmail_read")  # what the API lists for gmail
    gmail, web, library = (tool.declaration(Holds(policy), listed=listed) for tool in tools)

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
    policy = Policy(config, held=["gmail_search", "send_note"])
    listed = ["gmail_search", "gmail_send", "send_note"]
    confirmations = gmail.confirmations(Holds(policy), local=["send_note"], listed=listed)
    assert confirmations == ["gmail_search", "gmail_send"]


def test_a_glob_rule_holds_every_listed_tool_it_matches_and_no_other_connectors(
    tmp_path: Path,
) -> None:
    config, _ = config_from(
        f"model: m\napprovals: {{channel: {APPROVALS}}}\n"
        'policy:\n  rules:\n    - tools: ["gmail_*"]\n    - tools: ["crm_*"]\n',
        tmp_path,
    )
    holds = Holds(Policy(config))
    gmail = ServerTool("connector", connector_id="gmail")
    assert gmail.confirmations(holds, listed=["gmail_send", "gmail_read", "labels"]) == [
        "gmail_read",
        "gmail_send",
    ]
    # a name of another connector's is never put in this one's list
    assert gmail.confirmations(holds, listed=["gmail_send"]) == ["gmail_send"]


def test_include_limits_what_the_policy_adds_and_overrides_count(tmp_path: Path) -> None:
    tool = ServerTool("connector", connector_id="crm", include=("crm_read", "crm_write"))
    listed = ("crm_read", "crm_write", "crm_delete")
    config, _ = config_from(
        f"model: m\napprovals: {{channel: {APPROVALS}}}\n"
        "policy:\n  rules:\n    - tools: [crm_write, other_tool]\n",
        tmp_path,
    )
    holds = Holds(Policy(config), (Override("crm_read", Effect.ASK, "UADMIN", 0.0),))
    assert tool.declaration(holds, listed=listed)["tool_configuration"] == {
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
def bot_config(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("GMAIL_TOKEN", TOKEN)
    return SERVER_CONFIG


@pytest.fixture(autouse=True)
def _gmail_connector(mistral: MistralStandIn) -> None:
    """Mistral's side has the gmail connector the config names, with these tools."""
    mistral.create_connector("gmail", ["gmail_search", "gmail_send", "gmail_read"])


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
    appends = [r for r in bot.mistral.requests if r.path.startswith("/v1/conversations/")]
    assert appends and all(not (r.body or {}).get("inputs") for r in appends)


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


GLOB_CONFIG = f"""\
model: mistral-medium-latest
approvals: {{channel: {APPROVALS}}}
policy:
  rules:
    - name: mail
      tools: ["gmail_*"]
tools:
  connectors:
    - connector_id: gmail
"""


def calls_mail(turn: ModelTurn) -> list[Entry]:
    """The model calls a gmail tool as the real one does: no confirmation status of its own
    (the server decides, from the run's ``requires_confirmation``)."""
    if turn.tool_confirmations:
        return [message("Done: " + str(turn.tool_confirmations[0].get("confirmation")))]
    if turn.function_results():  # not offered: the bot told the model it is not available
        return [message("Done: " + str(turn.function_results()[0].get("result")))]
    return [function_call("gmail_send", {"to": "all@example.com"})]


@pytest.mark.parametrize("config_path", [GLOB_CONFIG], indirect=True)
async def test_a_glob_rule_holds_a_connector_tool_that_no_config_names(bot: BotUnderTest) -> None:
    bot.mistral.script = calls_mail
    await bot.send.mention("mail everyone")
    card = await bot.card()
    assert "`gmail_send` (server-side tool)" in all_text(card)
    [connector] = [t for t in start_tools(bot) if t["type"] == "connector"]
    assert connector["tool_configuration"]["requires_confirmation"] == [
        "gmail_read",
        "gmail_search",
        "gmail_send",
    ]
    await bot.settled()
    assert bot.mistral.server_runs == []  # held: nothing ran on Mistral's side

    await bot.send.click("approval_approve", button_value(card, "approval_approve"), user=MANAGER)
    await bot.slack.wait_for("chat.postMessage", lambda a: "Done: allow" in all_text(a))
    await bot.settled()
    assert [name for _, name, _ in bot.mistral.server_runs] == ["gmail_send"]


@pytest.mark.parametrize("config_path", [GLOB_CONFIG], indirect=True)
async def test_a_connector_whose_tools_cannot_be_listed_is_not_offered(
    bot: BotUnderTest,
) -> None:
    bot.mistral.connectors.clear()
    bot.mistral.create_connector("gmail", ["gmail_send"], tools_failure=502)
    bot.mistral.script = calls_mail
    await bot.send.mention("mail everyone")
    await bot.settled()
    assert [t for t in start_tools(bot) if t["type"] == "connector"] == []
    assert bot.mistral.server_runs == []
    async with aiohttp.ClientSession() as session, session.get(bot.url + "/readyz") as reply:
        left_out = (await reply.json())["connectors_left_out"]
    assert "could not be listed" in left_out["gmail"]
