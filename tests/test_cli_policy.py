"""``approval-bot policy check|explain``: what an admin sees when reading the policy offline.

Like ``test_cli``: ``main`` runs in-process, in an empty temporary directory, with every
variable the settings read removed from the environment.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.ops.cli import EXIT_CONFIG, main
from bot.ops.settings import Settings

POLICY = """\
model: m
approvals: {channel: C0APPROVALS}
admins: {users: [U0ADMIN]}
policy:
  defaults: {quorum: 1, grant_durations: ["1h", "8h"]}
  rules:
    - tools: ["book_flight"]
      when: "args.price > 500"
      approvers: {usergroups: [S0FINANCE], users: [U0CFO]}
      quorum: 2
    - tools: ["get_*"]
      decision: allow
    - tools: ["delete_*"]
      decision: deny
      reason: "Deleting from Slack is not allowed; open a ticket."
tools:
  functions:
    - ref: tests.agent_tools:book_flight
    - ref: tests.agent_tools:send_note
      requires_confirmation: true
"""

OFFLINE_NOTE = "runtime overrides set in Slack (/approvals require|allow) are not applied"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yml"
    path.write_text(POLICY)
    return path


def explain(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run ``policy explain`` on policy.yml; what it prints (it must succeed)."""
    assert main(["policy", "explain", "--file", "policy.yml", *argv]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def explain_flight(capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    """``policy explain`` for a 900 EUR flight asked by U0REQ, with ``extra`` options."""
    flight = ("--tool", "book_flight", "--args", '{"price": 900}', "--user", "U0REQ")
    return explain(capsys, *flight, *extra)


# -- policy check ---------------------------------------------------------------------------
def test_policy_check_lists_the_rules_in_order(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "check", "policy.yml"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    out = captured.out
    assert out.startswith("policy.yml: OK\n")
    assert "Tools: book_flight, send_note\n" in out
    assert "Requires confirmation: send_note\n" in out
    rule_1 = (
        "  1. tools: book_flight\n"
        "     when: args.price > 500\n"
        "     decision: ask\n"
        "     approvers: user groups S0FINANCE; users U0CFO\n"
        "     card posted in: C0APPROVALS\n"
        "     quorum: 2\n"
        "     self-approval: not allowed\n"
        "     grants: none (a quorum of 2 offers no grants)\n"
        "     editing arguments: not allowed\n"
    )
    rule_2 = "  2. tools: get_*\n     decision: allow\n"
    rule_3 = (
        "  3. tools: delete_*\n"
        "     decision: deny\n"
        "     reason: Deleting from Slack is not allowed; open a ticket.\n"
    )
    assert rule_1 in out and rule_2 in out and rule_3 in out
    assert out.index(rule_1) < out.index(rule_2) < out.index(rule_3)
    defaults = out[out.index("Defaults") :]
    assert "  approvers: channel C0APPROVALS\n" in defaults
    assert "  quorum: 1\n" in defaults
    assert "  grants: 1 hour, 8 hours (any arguments)\n" in defaults
    assert "Admins: users U0ADMIN; user groups none" in out
    assert "*" not in out.replace("get_*", "").replace("delete_*", "")  # no Slack mrkdwn


def test_policy_check_without_a_file_uses_bot_config(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOT_CONFIG", "policy.yml")
    assert main(["policy", "check"]) == 0
    assert capsys.readouterr().out.startswith("policy.yml: OK\n")


def test_policy_check_of_a_config_without_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bare.yml").write_text("model: m\napprovals: {channel: C0APPROVALS}\n")
    assert main(["policy", "check", "bare.yml"]) == 0
    out = capsys.readouterr().out
    assert "Tools: none\nRequires confirmation: none\n" in out
    assert "(the first that matches a call decides):\n  none\n" in out
    assert "  grants: 1 hour (any arguments)\n" in out
    assert "Admins: users none; user groups none" in out


def test_policy_check_names_a_broken_condition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken.yml").write_text(POLICY.replace("args.price > 500", "args.price >"))
    assert main(["policy", "check", "broken.yml"]) == EXIT_CONFIG
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Configuration error in broken.yml:" in captured.err
    assert "policy.rules.0.when (line 8): invalid expression 'args.price >'" in captured.err


def test_policy_check_reports_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.yml").write_text(
        POLICY.replace("args.price > 500", "args.price >").replace("C0APPROVALS", "general")
    )
    assert main(["policy", "check", "bad.yml"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "policy.rules.0.when (line 8)" in err
    assert "approvals.channel (line 2)" in err


def test_policy_check_reports_a_tool_that_does_not_import(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config.write_text(POLICY.replace("tests.agent_tools:send_note", "nope.module:fn"))
    assert main(["policy", "check", "policy.yml"]) == EXIT_CONFIG
    assert "cannot import module 'nope.module'" in capsys.readouterr().err


# -- policy explain -------------------------------------------------------------------------
def test_an_expensive_flight_asks_finance_and_the_cfo(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = explain_flight(capsys, "--channel", "C0CHAT")
    assert 'Call: book_flight {"price": 900}\n' in out
    assert "Requester: U0REQ (admin: no; user groups from --usergroups: none)\n" in out
    assert "Channel: C0CHAT\n" in out
    assert "Held by the SDK: yes" in out
    assert "Rule: rule 1 (book_flight)\nDecision: ask\n" in out
    assert "Approvers: user groups S0FINANCE; users U0CFO\n" in out
    assert "Card posted in: C0APPROVALS\n" in out
    assert "Quorum: 2\n" in out
    assert "Self-approval: not allowed\n" in out
    assert "Grants: none (a quorum of 2 offers no grants)\n" in out
    assert "Condition error" not in out
    assert OFFLINE_NOTE in out


def test_a_cheap_flight_runs(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = explain(capsys, "--tool", "book_flight", "--args", '{"price": 100}', "--user", "U0REQ")
    assert "Rule: no rule's condition held\nDecision: allow\n" in out
    assert "  - rule 1 (book_flight): condition is false\n" in out
    assert "Approvers" not in out and "Quorum" not in out


def test_a_condition_that_cannot_be_evaluated_applies_the_rule(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = explain(capsys, "--tool", "book_flight", "--user", "U0REQ")
    assert "Rule: rule 1 (book_flight)\nDecision: ask\n" in out
    assert "Condition error: " in out
    assert "price" in out.split("Condition error: ")[1].splitlines()[0]
    assert "condition not evaluated" in out and "; applied" in out


def test_an_allow_rule(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = explain(capsys, "--tool", "get_weather", "--args", '{"city": "Oslo"}', "--user", "U0REQ")
    assert "Rule: rule 2 (get_*)\nDecision: allow\n" in out
    assert "Held by the SDK: no" in out
    assert "(no function tool of that name in the config)" in out


def test_a_deny_rule_gives_the_reason(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = explain(capsys, "--tool", "delete_user", "--user", "U0REQ")
    assert "Rule: rule 3 (delete_*)\nDecision: deny\n" in out
    assert "Reason the model receives: Deleting from Slack is not allowed; open a ticket.\n" in out
    assert "Approvers" not in out


def test_a_marked_tool_asks_the_defaults(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = explain(capsys, "--tool", "send_note", "--args", '{"text": "hi"}', "--user", "U0REQ")
    assert "Rule: defaults\nDecision: ask\n" in out
    assert "Approvers: channel C0APPROVALS\n" in out
    assert "Quorum: 1\n" in out
    assert "Grants: 1 hour, 8 hours (any arguments)\n" in out
    assert "no rule matches; the tool requires confirmation" in out
    assert "no function tool of that name" not in out


def test_an_unmarked_unknown_tool_is_not_governed(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = explain(capsys, "--tool", "launch_rocket", "--user", "U0REQ")
    assert "Rule: not governed\nDecision: allow\n" in out
    assert "Held by the SDK: no (the SDK runs calls without asking the bot)\n" in out
    assert "Call: launch_rocket {} (no function tool of that name in the config)\n" in out


def test_admins_and_usergroups_are_shown(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = explain(
        capsys, "--tool", "send_note", "--user", "U0ADMIN", "--usergroups", "S0FINANCE, S0OPS"
    )
    assert "Requester: U0ADMIN (admin: yes; user groups from --usergroups: S0FINANCE, S0OPS)" in out


def test_explain_as_json(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = explain_flight(capsys, "--usergroups", "S0FINANCE", "--json")
    data = json.loads(out)
    assert data["decision"] == "ask"
    assert data["rule"] == "rule 1 (book_flight)"
    assert data["arguments"] == {"price": 900}
    assert data["requester"] == {"id": "U0REQ", "is_admin": False, "usergroups": ["S0FINANCE"]}
    assert data["approvers"] == [{"channel": None, "usergroups": ["S0FINANCE"], "users": ["U0CFO"]}]
    assert data["card_channel"] == "C0APPROVALS"
    assert data["quorum"] == 2
    assert data["allow_self_approval"] is False
    assert data["grant_durations_s"] == []  # a quorum of 2 offers no grants
    assert data["allow_edit"] is False
    assert data["held_by_sdk"] is True
    assert data["configured"] is True
    assert data["condition_error"] is None
    assert OFFLINE_NOTE in data["offline"]


def test_explain_as_json_for_a_deny_and_the_defaults(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    denied = json.loads(explain(capsys, "--tool", "delete_user", "--user", "U0REQ", "--json"))
    assert denied["decision"] == "deny"
    assert denied["reason"] == "Deleting from Slack is not allowed; open a ticket."
    assert denied["approvers"] is None and denied["quorum"] is None
    asked = json.loads(explain(capsys, "--tool", "send_note", "--user", "U0REQ", "--json"))
    assert asked["rule"] == "defaults"
    assert asked["grant_durations_s"] == [3600, 28800]


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [("{price: 900}", "not valid JSON"), ("[900]", "is not a JSON object")],
)
def test_bad_args_exit_2_naming_args(
    config: Path, capsys: pytest.CaptureFixture[str], arguments: str, problem: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(
            [
                "policy",
                "explain",
                "--file",
                "policy.yml",
                "--tool",
                "book_flight",
                "--args",
                arguments,
                "--user",
                "U0REQ",
            ]
        )
    assert exited.value.code == EXIT_CONFIG
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "argument --args: " in captured.err
    assert problem in captured.err


def test_a_user_id_that_is_not_one_is_refused(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["policy", "explain", "--file", "policy.yml", "--tool", "x", "--user", "alice"])
    assert exited.value.code == EXIT_CONFIG
    assert "argument --user: 'alice' is not a Slack user id" in capsys.readouterr().err


def test_explain_with_a_broken_config_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "policy.yml").write_text(POLICY.replace("args.price > 500", "args.price >"))
    assert main(
        ["policy", "explain", "--tool", "x", "--user", "U0REQ", "--file", "policy.yml"]
    ) == (EXIT_CONFIG)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "policy.rules.0.when (line 8)" in captured.err


def test_explain_help_says_what_is_not_done_offline(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["policy", "explain", "--help"])
    assert exited.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "user-group membership is not looked up in Slack" in out
    assert OFFLINE_NOTE in out


def test_explain_reads_the_api_clients_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "policy.yml").write_text(
        POLICY.replace(
            '    - tools: ["get_*"]',
            '    - tools: ["send_note"]\n'
            "      when: 'client.name == \"billing-agent\"'\n"
            "      decision: deny\n"
            '    - tools: ["get_*"]',
        )
    )
    asked = ["--tool", "send_note", "--user", "U0REQ", "--json"]
    assert json.loads(explain(capsys, *asked))["decision"] == "allow"  # named conditionally
    from_client = json.loads(explain(capsys, *asked, "--client", "billing-agent"))
    assert from_client["decision"] == "deny"


def test_explain_for_a_client_asks_about_a_tool_no_rule_names(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An API client's agent held the call: where no rule matches, a person decides."""
    refund = ("--tool", "refund", "--args", "{}", "--user", "U0REQ", "--json")
    plain = json.loads(explain(capsys, *refund))
    assert plain["decision"] == "allow"  # in Slack, a tool nothing holds never reaches the bot
    from_client = json.loads(explain(capsys, *refund, "--client", "billing-agent"))
    assert from_client["decision"] == "ask"
