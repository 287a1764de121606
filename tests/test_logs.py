"""Log lines: JSON with the bound context, secrets masked, plain text on request; and the
context the assistant binds while it handles a real approval."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import logs
from bot.errors import ConfigError
from bot.logs import bind, configure_logging, current_context, log_context, make_handler
from bot.ops.settings import load_settings
from tests.helpers import MANAGER, REQUESTER, BotUnderTest, all_text
from tests.slack_sender import TEAM

BOT_TOKEN = "xoxb-1234-5678-AbCdEf"
USER_TOKEN = "xoxp-1111-2222-GhIjKl"
APP_TOKEN = "xapp-1-A0APP-3333-MnOpQr"
ROTATED_TOKEN = "xoxe.xoxp-1-StUvWx"
SIGNING_SECRET = "8f14e45fceea167a5a36dedd4bea2543"
MISTRAL_KEY = "mk-Qw3rTy-secret"
SECRETS = [SIGNING_SECRET, MISTRAL_KEY, None]


class Captured:
    """A logger whose lines go through the bot's handler into a buffer."""

    def __init__(self, fmt: logs.LogFormat, name: str) -> None:
        self.stream = io.StringIO()
        self.handler = make_handler(fmt, SECRETS, self.stream)
        self.logger = logging.getLogger(name)
        self.logger.addHandler(self.handler)
        self.logger.setLevel(logging.DEBUG)
        self.logger.propagate = False  # the test reads only this buffer

    def close(self) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.propagate = True
        self.logger.setLevel(logging.NOTSET)

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines()]


@pytest.fixture
def json_log() -> Iterator[Captured]:
    captured = Captured("json", "tests.logs.json")
    yield captured
    captured.close()


@pytest.fixture
def text_log() -> Iterator[Captured]:
    captured = Captured("text", "tests.logs.text")
    yield captured
    captured.close()


def test_a_json_line_carries_the_bound_fields_and_only_those(json_log: Captured) -> None:
    log = json_log.logger
    log.info("before")
    with log_context(approval_id="a1", team="T1", channel="C1", user="U1"):
        log.warning("deciding %s", "now")
        with log_context(user="U2", conversation_id=None):
            log.info("inner")
    log.info("after")

    before, deciding, inner, after = json_log.lines()
    assert set(before) == {"time", "level", "logger", "message"}
    assert before["message"] == "before" and before["level"] == "INFO"
    assert before["logger"] == "tests.logs.json"
    assert before["time"].endswith("+00:00")  # ISO 8601, UTC
    assert deciding == {
        "time": deciding["time"],
        "level": "WARNING",
        "logger": "tests.logs.json",
        "message": "deciding now",
        "approval_id": "a1",
        "team": "T1",
        "channel": "C1",
        "user": "U1",
    }
    assert list(deciding)[0] == "time"
    assert inner["user"] == "U2" and inner["approval_id"] == "a1"
    assert "conversation_id" not in inner  # None binds nothing
    assert set(after) == set(before)


async def test_a_binding_stays_in_its_task_and_the_tasks_it_starts(json_log: Captured) -> None:
    log = json_log.logger
    started = asyncio.Event()
    bound = asyncio.Event()

    async def handling(approval_id: str) -> None:
        bind(approval_id=approval_id)
        bound.set()
        await started.wait()
        log.info("handled")
        await asyncio.create_task(child())

    async def child() -> None:
        log.info("child")

    async def other() -> None:
        await bound.wait()
        log.info("other")
        started.set()

    await asyncio.gather(handling("a7"), other())
    log.info("caller")

    by_message = {line["message"]: line.get("approval_id") for line in json_log.lines()}
    assert by_message == {"other": None, "handled": "a7", "child": "a7", "caller": None}
    assert current_context() == {}


def test_tokens_and_secrets_are_masked_in_messages(json_log: Captured) -> None:
    json_log.logger.info(
        "calling with %s and %s (%s, %s), Authorization: Bearer %s; signing %s; key=%s",
        BOT_TOKEN,
        USER_TOKEN,
        APP_TOKEN,
        ROTATED_TOKEN,
        "eyJhbGciOi.payload.sig",
        SIGNING_SECRET,
        MISTRAL_KEY,
    )
    [line] = json_log.lines()
    message = line["message"]
    for secret in (BOT_TOKEN, USER_TOKEN, APP_TOKEN, ROTATED_TOKEN, SIGNING_SECRET, MISTRAL_KEY):
        assert secret not in json_log.text
    assert "eyJhbGciOi" not in json_log.text
    assert message.startswith("calling with [redacted] and [redacted] ([redacted], [redacted])")
    assert "Authorization: Bearer [redacted]; signing [redacted]; key=[redacted]" in message


def test_tokens_and_secrets_are_masked_in_exception_text(json_log: Captured) -> None:
    try:
        raise RuntimeError(f"Slack refused {BOT_TOKEN} for key {MISTRAL_KEY}")
    except RuntimeError:
        json_log.logger.exception("request failed")
    [line] = json_log.lines()
    assert line["message"] == "request failed"
    assert "Traceback (most recent call last)" in line["exception"]
    assert "RuntimeError: Slack refused [redacted] for key [redacted]" in line["exception"]
    assert BOT_TOKEN not in json_log.text and MISTRAL_KEY not in json_log.text


def test_a_log_call_with_arguments_that_do_not_fit_is_masked_not_raised(
    json_log: Captured,
) -> None:
    json_log.logger.info("two %s %s", BOT_TOKEN)  # a bug in a log call must not raise
    [line] = json_log.lines()
    assert "two %s %s" in line["message"] and "[redacted]" in line["message"]
    assert BOT_TOKEN not in json_log.text


def test_the_text_format_is_plain_with_the_context_at_the_end(text_log: Captured) -> None:
    log = text_log.logger
    log.info("plain")
    with log_context(approval_id="a2", user="U3"):
        log.error("token %s leaked", BOT_TOKEN)
    plain, bound = text_log.text.splitlines()
    assert plain.endswith(" INFO tests.logs.text: plain")
    assert bound.endswith(
        " ERROR tests.logs.text: token [redacted] leaked [approval_id=a2 user=U3]"
    )
    with pytest.raises(json.JSONDecodeError):
        json.loads(plain)


def test_configure_logging_writes_json_lines_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", "json", [SIGNING_SECRET])
    configure_logging("info", "json", [SIGNING_SECRET])  # replaces, does not add
    log = logging.getLogger("bot.test_logs")
    log.debug("not shown")
    with log_context(team="T9"):
        log.info("up with %s", SIGNING_SECRET)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["message"], line["team"]) for line in lines] == [("up with [redacted]", "T9")]


def test_log_format_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert load_settings("check", env_file=None).log_format == "json"
    monkeypatch.setenv("LOG_FORMAT", "text")
    assert load_settings("check", env_file=None).log_format == "text"
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ConfigError) as raised:
        load_settings("check", env_file=None)
    assert any(problem.startswith("LOG_FORMAT:") for problem in raised.value.problems)


def test_the_settings_name_their_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("MISTRAL_API_KEY", MISTRAL_KEY)
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)
    settings = load_settings("check", env_file=None)
    assert settings.secrets == [BOT_TOKEN, SIGNING_SECRET, MISTRAL_KEY]


# -- the context the assistant binds ---------------------------------------------------------
@pytest.fixture
def bot_log() -> Iterator[Captured]:
    """The bot's own loggers, through the bot's handler (they still reach pytest too)."""
    captured = Captured("json", "bot")
    captured.logger.propagate = True
    captured.logger.setLevel(logging.INFO)
    yield captured
    captured.close()


async def test_the_assistant_binds_what_each_line_is_about(
    bot: BotUnderTest, bot_log: Captured
) -> None:
    await bot.send.mention("book a flight to Rodez")
    approval_id = await bot.approval_id()
    await bot.settled()
    conversation_id = (await bot.services.store.get_approval(approval_id)).conversation_id
    await bot.send.click("approval_approve", approval_id, user=MANAGER)
    await bot.slack.wait_for("chat.postMessage", lambda a: "Done: Booked" in all_text(a))
    await bot.settled()

    lines = bot_log.lines()

    def line(starting: str) -> dict[str, Any]:
        found = [entry for entry in lines if entry["message"].startswith(starting)]
        assert found, f"no line starting {starting!r} in {[e['message'] for e in lines]}"
        return found[0]

    about_request = {
        "approval_id": approval_id,
        "conversation_id": conversation_id,
        "team": TEAM,
        "channel": "C0GENERAL",
    }
    requested = line(f"approval {approval_id} requested")
    assert {k: requested.get(k) for k in [*about_request, "user"]} == {
        **about_request,
        "user": REQUESTER,
    }
    decided = line(f"approval {approval_id} approved; resume enqueued")
    assert {k: decided.get(k) for k in [*about_request, "user"]} == {
        **about_request,
        "user": MANAGER,  # the person deciding
    }
