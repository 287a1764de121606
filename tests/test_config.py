"""The config file: every loading error names the file, the field, the line and a fix.

Each broken file is also run through ``approval-bot check``, which must stop with exit
code 2 and print the same problems on stderr.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import pytest

from bot.cli import EXIT_CONFIG, main
from bot.config import BotConfig, load_config
from bot.errors import ConfigError
from bot.settings import Settings
from bot.tools import load_tools

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
    assert problem.startswith("model ")
    assert "Field required" in problem
    assert "fix: add it" in problem
    assert_start_up_stops(path, capsys, "model", "Field required")


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
