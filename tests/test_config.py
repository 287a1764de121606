"""The config file: every loading error names the file, the field, the line and a fix.

Each broken file is also run through ``approval-bot check``, which must stop with exit
code 2 and print the same problems on stderr.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import pytest

from bot.core.config import BotConfig, load_config
from bot.errors import ConfigError
from bot.mistral.tools import load_tools
from bot.ops.cli import EXIT_CONFIG, main
from bot.ops.settings import Settings

GOOD = """\
model: mistral-medium-latest
approvals:
  channel: C0APPROVALS
tools:
  functions:
    - ref: tests.agent_tools:get_weather
"""


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No bot variable and no .env from outside the test reaches the settings."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, text: str, name: str = "bot.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_all(path: Path) -> None:
    """What start-up does: read the config, then import its tools."""
    config = load_config(path)
    load_tools(config, path)


def config_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_all(path)
    return caught.value


def assert_start_up_stops(path: Path, capsys: pytest.CaptureFixture[str], *fragments: str) -> None:
    assert main(["check", str(path)]) == EXIT_CONFIG
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"Configuration error in {path}:" in captured.err
    for fragment in fragments:
        assert fragment in captured.err


def test_a_good_file_loads(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    config = load_config(path)
    assert isinstance(config, BotConfig)
    assert config.approvals.channel == "C0APPROVALS"
    assert config.approvals.allow_self_approval is False
    assert [tool.name for tool in load_tools(config, path)] == ["get_weather"]


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nowhere.yml"
    error = config_error(path)
    assert error.source == str(path)
    assert len(error.problems) == 1
    assert "does not exist" in error.problems[0]
    assert "bot.example.yml" in error.problems[0]  # the fix
    assert "BOT_CONFIG" in error.problems[0]
    assert_start_up_stops(path, capsys, "does not exist")


def test_invalid_yaml_names_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "model: m\napprovals:\n  channel: C0APPROVALS\n   extra: : x\n")
    error = config_error(path)
    assert error.source == str(path)
    [problem] = error.problems
    assert problem.startswith("line 4, column ")
    assert "invalid YAML" in problem
    assert_start_up_stops(path, capsys, "line 4, column", "invalid YAML")


@pytest.mark.parametrize(
    "text",
    ["- model: m\n- approvals: {}\n", "just a string\n", ""],
    ids=["list", "scalar", "empty"],
)
def test_document_that_is_not_a_mapping(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    path = write(tmp_path, text)
    error = config_error(path)
    assert error.source == str(path)
    assert error.problems == ["the file must be a YAML mapping; see bot.example.yml"]
    assert_start_up_stops(path, capsys, "must be a YAML mapping")


def test_unknown_key_is_reported_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        "model: m\n"
        "approvals:\n"
        "  channel: C0APPROVALS\n"
        "  allow_self_aproval: true\n",  # misspelt on line 4
    )
    error = config_error(path)
    [problem] = error.problems
    assert problem.startswith("approvals.allow_self_aproval (line 4): ")
    assert "fix: remove it or fix its spelling" in problem
    assert_start_up_stops(path, capsys, "approvals.allow_self_aproval (line 4)")


def test_missing_approvals_channel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "model: m\ninstructions: Be brief.\n")
    error = config_error(path)
    [problem] = error.problems
    assert "no approvals channel" in problem
    assert "fix: add approvals: {channel: C…}" in problem
    assert_start_up_stops(path, capsys, "no approvals channel")


def test_missing_required_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "instructions: Be brief.\napprovals: {channel: C0APPROVALS}\n")
    error = config_error(path)
    [problem] = error.problems
    assert "no model and no agent_id" in problem
    assert "fix: add model" in problem
    assert_start_up_stops(path, capsys, "no model and no agent_id")


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        ("model: m\nagent_id: ag_123\n", "both model and agent_id are given"),
        (
            "agent_id: ag_123\ninstructions: Be brief.\n",
            "instructions cannot be given with agent_id",
        ),
        (
            "agent_id: ag_123\ntools:\n  builtins:\n    - type: web_search\n",
            "tools.builtins cannot be given with agent_id",
        ),
    ],
)
def test_agent_id_or_model_but_not_both(tmp_path: Path, head: str, expected: str) -> None:
    path = write(tmp_path, head + "approvals: {channel: C0APPROVALS}\n")
    [problem] = config_error(path).problems
    assert expected in problem and "fix: " in problem


def test_an_agent_id_alone_is_valid(tmp_path: Path) -> None:
    path = write(tmp_path, "agent_id: ag_0123\napprovals: {channel: C0APPROVALS}\n")
    config = load_config(path)
    assert (config.agent_id, config.model) == ("ag_0123", None)


def test_missing_nested_field_points_at_its_section(tmp_path: Path) -> None:
    path = write(tmp_path, "model: m\napprovals:\n  allow_self_approval: true\n")
    [problem] = config_error(path).problems
    assert problem.startswith("approvals.channel (line 3): Field required")


@pytest.mark.parametrize("channel", ["general", "'#general'", "c0lower", "U0USER"])
def test_bad_channel_id(tmp_path: Path, capsys: pytest.CaptureFixture[str], channel: str) -> None:
    path = write(tmp_path, f"model: m\napprovals:\n  channel: {channel}\n")
    [problem] = config_error(path).problems
    assert problem.startswith("approvals.channel (line 3): ")
    assert "C0123456789" in problem  # what a channel id looks like
    assert "channel details" in problem  # where to find it
    assert_start_up_stops(path, capsys, "approvals.channel (line 3)")


def functions(*refs: str) -> str:
    lines = "".join(f"    - ref: {ref}\n" for ref in refs)
    return f"model: m\napprovals:\n  channel: C0APPROVALS\ntools:\n  functions:\n{lines}"


#: The first ref of ``functions(...)`` is on this line, the next one below it.
FIRST_REF_LINE = 6


def test_ref_whose_module_does_not_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, functions("nope.module:fn"))
    error = config_error(path)
    assert error.source == str(path)
    [problem] = error.problems
    assert problem.startswith(f"tools.functions.0.ref (line {FIRST_REF_LINE}): ")
    assert "cannot import module 'nope.module'" in problem
    assert "PYTHONPATH" in problem
    assert_start_up_stops(path, capsys, "cannot import module 'nope.module'")


def test_ref_to_a_missing_attribute(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, functions("tests.agent_tools:get_weather", "tests.agent_tools:nope"))
    [problem] = config_error(path).problems
    assert problem.startswith(f"tools.functions.1.ref (line {FIRST_REF_LINE + 1}): ")
    assert "module 'tests.agent_tools' has no 'nope'" in problem
    assert "fix: check the function name" in problem
    assert_start_up_stops(path, capsys, "has no 'nope'")


def test_ref_to_something_that_is_not_a_function(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, functions("tests.agent_tools:NOT_A_FUNCTION"))
    [problem] = config_error(path).problems
    assert problem.startswith(f"tools.functions.0.ref (line {FIRST_REF_LINE}): ")
    assert "tests.agent_tools:NOT_A_FUNCTION is a int, not a function" in problem
    assert "fix: point ref at a plain `def` or `async def` function" in problem
    assert_start_up_stops(path, capsys, "not a function")


def test_two_refs_with_the_same_function_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        functions("tests.agent_tools:get_weather", "bot.examples.tools:get_weather"),
    )
    [problem] = config_error(path).problems
    assert problem.startswith(f"tools.functions.1.ref (line {FIRST_REF_LINE + 1}): ")
    assert "a second tool named 'get_weather' (also tests.agent_tools:get_weather)" in problem
    assert "rename one" in problem
    assert_start_up_stops(path, capsys, "a second tool named 'get_weather'")


def test_several_schema_problems_are_reported_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        "model: ''\n"  # 1: empty
        "approvals:\n"  # 2
        "  channel: general\n"  # 3: not an id
        "  allow_self_approval: maybe\n"  # 4: not a boolean
        "colour: blue\n"  # 5: unknown
        "tools:\n"  # 6
        "  functions:\n"  # 7
        "    - ref: not a ref\n",  # 8: not module:function
    )
    error = config_error(path)
    assert error.source == str(path)
    starts = sorted(problem.split(":", 1)[0] for problem in error.problems)
    assert starts == [
        "approvals.allow_self_approval (line 4)",
        "approvals.channel (line 3)",
        "colour (line 5)",
        "model (line 1)",
        "tools.functions.0.ref (line 8)",
    ]
    assert all("fix: " in problem for problem in error.problems)
    rendered = error.render().splitlines()
    assert rendered[0] == f"Configuration error in {path}:"
    assert len(rendered) == 1 + len(error.problems)
    assert_start_up_stops(path, capsys, *(f"  - {problem}" for problem in error.problems))


def test_several_tool_problems_are_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        functions(
            "nope.module:fn",
            "tests.agent_tools:nope",
            "tests.agent_tools:NOT_A_FUNCTION",
            "tests.agent_tools:send_note",
            "tests.agent_tools:send_note",
        ),
    )
    error = config_error(path)
    lines = [problem.split(":", 1)[0] for problem in error.problems]
    assert lines == [f"tools.functions.{i}.ref (line {FIRST_REF_LINE + i})" for i in (0, 1, 2, 4)]


def test_the_shipped_example_loads_and_its_tools_import() -> None:
    example = importlib.resources.files("bot") / "bot.example.yml"
    with importlib.resources.as_file(example) as path:
        assert path.is_file(), "bot.example.yml is not shipped in the package"
        config = load_config(path)
        tools = load_tools(config, path)
    assert [(tool.name, tool.requires_confirmation) for tool in tools] == [
        ("get_weather", False),
        ("book_flight", True),
    ]
    assert config.approvals.allow_self_approval is False


# -- admins and policy ------------------------------------------------------------------------

#: Lines 1-3: model and approvals; the policy starts on line 4.
HEAD = "model: m\napprovals:\n  channel: C0APPROVALS\n"


def rules(*lines: str) -> str:
    """``policy.rules`` whose first rule's ``tools`` is on line 6 and the next lines below."""
    body = "".join(f"{line}\n" for line in lines)
    return f"{HEAD}policy:\n  rules:\n    - tools: [book_flight]\n{body}"


@pytest.mark.parametrize(
    ("text", "start", "fragments"),
    [
        pytest.param(
            rules("      when: args.price >"),
            "policy.rules.0.when (line 7): ",
            ("invalid expression 'args.price >'", "Syntax error", "fix: see bot.example.yml"),
            id="when-syntax",
        ),
        pytest.param(
            rules("      when: budget > 1"),
            "policy.rules.0.when (line 7): ",
            ("invalid expression 'budget > 1'", "undeclared reference to 'budget'", "fix: "),
            id="when-unknown-name",
        ),
        pytest.param(
            rules("      when: args.price + 1"),
            "policy.rules.0.when (line 7): ",
            ("invalid expression 'args.price + 1'", "gives an int, not true or false", "fix: "),
            id="when-not-boolean",
        ),
        pytest.param(
            rules("      decision: maybe"),
            "policy.rules.0.decision (line 7): ",
            ("'ask', 'allow' or 'deny'", "fix: use one of the values listed"),
            id="decision-maybe",
        ),
        pytest.param(
            rules("      reason: Not now."),
            "policy.rules.0 (line 6): ",
            ("reason is only read with decision: deny", "fix: remove it or set decision: deny"),
            id="reason-with-ask",
        ),
        pytest.param(
            rules("      decision: allow", "      approvers: {users: [U0ABC]}", "      quorum: 2"),
            "policy.rules.0 (line 6): ",
            ("approvers, quorum only apply to decision: ask", "fix: remove them or set decision"),
            id="approvers-quorum-with-allow",
        ),
        pytest.param(
            rules("      approvers: {}"),
            "policy.rules.0.approvers (line 7): ",
            ("names nobody", "fix: give a channel, usergroups or users"),
            id="empty-approvers",
        ),
        pytest.param(
            f"{HEAD}admins:\n  users: [alice]\n",
            "admins.users.0 (line 5): ",
            ("fix: use the form described in bot.example.yml", "U0123ABCDE", "Copy member ID"),
            id="admin-user-id",
        ),
        pytest.param(
            f"{HEAD}admins:\n  usergroups:\n    - S0GOOD\n    - finance\n",
            "admins.usergroups.1 (line 7): ",
            ("fix: use the form described in bot.example.yml", "S0123ABCDE", "usergroups.list"),
            id="admin-usergroup-id",
        ),
        pytest.param(
            rules("      approvers:", "        users: [U0GOOD, bob]"),
            "policy.rules.0.approvers.users.1 (line 8): ",
            ("fix: use the form described in bot.example.yml", "Copy member ID"),
            id="approver-user-id",
        ),
        pytest.param(
            rules("      approvers:", "        usergroups: [finance]"),
            "policy.rules.0.approvers.usergroups.0 (line 8): ",
            ("fix: use the form described in bot.example.yml", "a user group id"),
            id="approver-usergroup-id",
        ),
        pytest.param(
            rules("      quorum: 0"),
            "policy.rules.0.quorum (line 7): ",
            ("greater than or equal to 1", "fix: use a larger number"),
            id="quorum-0",
        ),
        pytest.param(
            rules("      quorum: 11"),
            "policy.rules.0.quorum (line 7): ",
            ("less than or equal to 10", "fix: use a smaller number"),
            id="quorum-11",
        ),
        pytest.param(
            f"{HEAD}policy:\n  defaults:\n    quorum: 0\n",
            "policy.defaults.quorum (line 6): ",
            ("greater than or equal to 1", "fix: use a larger number"),
            id="defaults-quorum-0",
        ),
        pytest.param(
            rules("      approvers:", "        users: [U0ONE, U0TWO]", "      quorum: 3"),
            "policy (line 5): ",
            (
                "rules.0 needs 3 approvals but names only 2 approver(s)",
                "fix: lower its quorum or add approvers",
            ),
            id="quorum-unreachable",
        ),
        pytest.param(
            rules("      grant_durations: [forever]"),
            "policy.rules.0.grant_durations.0 (line 7): ",
            ("'forever' is not a duration", "fix: write it like 30m, 1h, 8h or 7d"),
            id="duration-forever",
        ),
        pytest.param(
            rules("      grant_durations: [10s]"),
            "policy.rules.0.grant_durations.0 (line 7): ",
            ("'10s' is out of range", "fix: use between 1m and 30d"),
            id="duration-10s",
        ),
        pytest.param(
            rules("      grant_durations: [31d]"),
            "policy.rules.0.grant_durations.0 (line 7): ",
            ("'31d' is out of range", "fix: use between 1m and 30d"),
            id="duration-31d",
        ),
        pytest.param(
            f"{HEAD}policy:\n  defaults:\n    grant_durations:\n      - 1h\n      - 2 weeks\n",
            "policy.defaults.grant_durations.1 (line 8): ",
            ("'2 weeks' is not a duration", "fix: write it like"),
            id="defaults-duration",
        ),
        pytest.param(
            f"{HEAD}policy:\n  rules:\n    - tools: []\n",
            "policy.rules.0.tools (line 6): ",
            ("at least 1 item", "fix: add at least one entry"),
            id="tools-empty",
        ),
        pytest.param(
            f"{HEAD}policy:\n  rules:\n    - decision: deny\n",
            "policy.rules.0.tools (line 6): ",
            ("Field required", "fix: add it"),
            id="tools-missing",
        ),
        pytest.param(
            rules("      wen: args.price > 500"),
            "policy.rules.0.wen (line 7): ",
            ("fix: remove it or fix its spelling",),
            id="misspelt-when",
        ),
    ],
)
def test_policy_problem_names_field_line_and_fix(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    start: str,
    fragments: tuple[str, ...],
) -> None:
    path = write(tmp_path, text)
    error = config_error(path)
    assert error.source == str(path)
    [problem] = error.problems
    assert problem.startswith(start), problem
    for fragment in fragments:
        assert fragment in problem, problem
    assert_start_up_stops(path, capsys, start.rstrip(": "), *fragments)


def test_a_valid_policy_loads(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        rules(
            "      name: expensive flights",
            "      when: \"args.price > 500 && !('S0FIN' in requester.usergroups)\"",
            "      approvers:",
            "        usergroups: [S0FIN]",
            "        users: [U0ONE, W0TWO]",
            "      quorum: 2",
            "      allow_self_approval: false",
            "      grant_durations: [30m, 8h, 30d]",
            "      grant_same_arguments: true",
            "    - tools: ['delete_*']",
            "      decision: deny",
            "      reason: Ask IT.",
            "    - tools: ['get_*']",
            "      decision: allow",
        ),
    )
    config = load_config(path)
    first, second, third = config.policy.rules
    assert first.when == "args.price > 500 && !('S0FIN' in requester.usergroups)"
    assert first.quorum == 2
    assert first.grant_durations == ["30m", "8h", "30d"]
    assert (second.decision, second.reason) == ("deny", "Ask IT.")
    assert third.decision == "allow"
    assert config.policy.defaults.grant_durations == ["1h"]


def test_no_approvals_section_but_a_default_approvers_channel_is_valid(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "model: m\npolicy:\n  defaults:\n    approvers:\n      channel: C0CARDS\n",
    )
    config = load_config(path)
    assert config.approvals is None
    assert config.default_channel == "C0CARDS"


def test_the_default_approvers_channel_is_preferred_for_cards(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEAD}policy:\n  defaults:\n    approvers:\n      channel: C0CARDS\n")
    assert load_config(path).default_channel == "C0CARDS"
    assert load_config(write(tmp_path, HEAD, "plain.yml")).default_channel == "C0APPROVALS"


def test_neither_approvals_nor_a_default_channel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        "model: m\npolicy:\n  defaults:\n    approvers:\n      users: [U0ONE]\n",
    )
    [problem] = config_error(path).problems
    assert problem.startswith("(top level) (line 1): no approvals channel")
    assert "fix: add approvals: {channel: C…}" in problem
    assert "policy: {defaults: {approvers: {channel: C…}}}" in problem
    assert_start_up_stops(path, capsys, "no approvals channel")


def test_several_policy_problems_are_reported_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        f"{HEAD}"  # 1-3
        "admins:\n"  # 4
        "  users: [alice]\n"  # 5: not a user id
        "policy:\n"  # 6
        "  rules:\n"  # 7
        "    - tools: []\n"  # 8: empty
        "    - tools: [x]\n"  # 9
        "      decision: maybe\n"  # 10: not a decision
        "    - tools: [y]\n"  # 11
        "      quorum: 0\n"  # 12: too small
        "      grant_durations: [forever]\n"  # 13: not a duration
        "    - tools: [z]\n"  # 14
        "      when: nope == 1\n",  # 15: unknown name
    )
    error = config_error(path)
    starts = sorted(problem.split(": ", 1)[0] for problem in error.problems)
    assert starts == [
        "admins.users.0 (line 5)",
        "policy.rules.0.tools (line 8)",
        "policy.rules.1.decision (line 10)",
        "policy.rules.2.grant_durations.0 (line 13)",
        "policy.rules.2.quorum (line 12)",
        "policy.rules.3.when (line 15)",
    ]
    assert all("fix: " in problem for problem in error.problems)
    assert_start_up_stops(path, capsys, *(f"  - {problem}" for problem in error.problems))


def test_an_unreachable_default_quorum_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"{HEAD}policy:\n  defaults:\n    approvers:\n      users: [U0ONE, U0TWO]\n    quorum: 3\n",
    )
    [problem] = config_error(path).problems
    assert "needs 3 approvals but names only 2" in problem
    assert "fix: " in problem


def test_an_unreachable_default_quorum_is_not_blamed_on_a_deny_rule(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"{HEAD}policy:\n"  # 4
        "  defaults:\n"  # 5
        "    approvers:\n"  # 6
        "      users: [U0ONE, U0TWO]\n"  # 7
        "    quorum: 3\n"  # 8
        "  rules:\n"  # 9
        "    - tools: [rm]\n"  # 10
        "      decision: deny\n",  # 11
    )
    [problem] = config_error(path).problems
    assert "rules.0" not in problem
    assert "defaults" in problem
