"""``approval-bot``: what the operator sees when the config or the environment is wrong.

``main`` runs in-process, in an empty temporary directory (the settings read ``.env`` from the
current directory) and with every variable the settings read removed from the environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.ops.cli import EXIT_CONFIG, main
from bot.ops.settings import Settings

GOOD = """\
model: mistral-medium-latest
approvals:
  channel: C0APPROVALS
tools:
  functions:
    - ref: tests.agent_tools:get_weather
    - ref: tests.agent_tools:book_flight
      requires_confirmation: true
"""

BAD = """\
model: mistral-medium-latest
approvals:
  channel: general
tools:
  functions:
    - ref: nope.module:fn
"""

SERVE_NEEDS = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "MISTRAL_API_KEY")
SOCKET_NEEDS = ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "MISTRAL_API_KEY")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)


def description(variable: str) -> str:
    text = Settings.model_fields[variable.lower()].description
    assert text
    return text


def test_check_a_good_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mine.yml").write_text(GOOD)
    assert main(["check", "mine.yml"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "mine.yml: OK (tools: get_weather, book_flight)"
    assert "error" not in captured.err.lower()


def test_check_without_a_file_uses_bot_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "elsewhere.yml").write_text(GOOD)
    monkeypatch.setenv("BOT_CONFIG", "elsewhere.yml")
    assert main(["check"]) == 0
    assert "elsewhere.yml: OK (tools: get_weather, book_flight)" in capsys.readouterr().out


def test_check_without_a_file_or_bot_config_looks_for_bot_yml(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "Configuration error in bot.yml:" in err
    assert "does not exist" in err


def test_check_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yml").write_text(BAD)
    assert main(["check", "bad.yml"]) == EXIT_CONFIG
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Configuration error in bad.yml:" in captured.err
    assert "approvals.channel (line 3)" in captured.err


def test_check_a_file_whose_tool_does_not_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.yml").write_text(BAD.replace("channel: general", "channel: C0APPROVALS"))
    assert main(["check", "bad.yml"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "tools.functions.0.ref (line 6)" in err
    assert "cannot import module 'nope.module'" in err


def test_serve_lists_every_missing_variable_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve"]) == EXIT_CONFIG
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Configuration error in the environment:" in captured.err
    for variable in SERVE_NEEDS:
        assert f"{variable} is not set: {description(variable)}" in captured.err
    assert "SLACK_APP_TOKEN" not in captured.err  # serve does not need it
    assert ".env" in captured.err  # where to set them


def test_serve_lists_only_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("MISTRAL_API_KEY", "test-key")
    assert main(["serve"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "SLACK_SIGNING_SECRET is not set" in err
    assert "SLACK_BOT_TOKEN" not in err
    assert "MISTRAL_API_KEY" not in err


def test_socket_needs_the_app_token(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["socket"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    for variable in SOCKET_NEEDS:
        assert f"{variable} is not set: {description(variable)}" in err
    assert "SLACK_SIGNING_SECRET" not in err  # Socket Mode does not verify signatures


def test_a_wrongly_typed_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for variable in SERVE_NEEDS:
        monkeypatch.setenv(variable, "set")
    monkeypatch.setenv("PORT", "abc")
    assert main(["serve"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "Configuration error in the environment:" in err
    assert "  - PORT: " in err
    assert "'abc'" in err


def test_dotenv_in_the_current_directory_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bot.yml").write_text(GOOD)
    (tmp_path / ".env").write_text("WORKER_CONCURRENCY=0\n")
    assert main(["check"]) == EXIT_CONFIG
    assert "WORKER_CONCURRENCY" in capsys.readouterr().err


def test_console_script_exits_2_on_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(BAD)
    env = {
        name: value
        for name, value in os.environ.items()
        if name.lower() not in Settings.model_fields
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot", "check", str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert result.returncode == EXIT_CONFIG, result.stderr
    assert result.stdout == ""
    assert f"Configuration error in {path}:" in result.stderr
    assert "approvals.channel (line 3)" in result.stderr
    assert "Traceback" not in result.stderr
