"""``approval-bot doctor``: each failure a user can meet, as the stand-ins answer it.

``main`` runs in-process (in a thread: it runs its own event loop, while the stand-ins serve
on the test's), in an empty directory and with only the variables a test gives it; once as a
real process. Redis is a real ``redis-server`` started per test with the settings the test
is about (persistence, eviction policy, CONFIG disabled as managed Redis does).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from bot.ops.cli import EXIT_CONFIG, main
from bot.ops.doctor.redis import version_check
from bot.ops.doctor.scopes import BOT_SCOPES
from bot.ops.settings import Settings
from bot.storage.embedded_redis import free_port, redis_server_command
from tests.helpers import APPROVALS, make_settings, served
from tests.standins.mistral import DEFAULT_MODEL, MistralStandIn
from tests.standins.slack import SlackStandIn, manifest_bot_scopes

ROOT = Path(__file__).resolve().parent.parent
SIGNING_SECRET = "0123456789abcdef0123456789abcdef"

CONFIG = f"""\
model: mistral-medium-latest
approvals:
  channel: {APPROVALS}
admins: {{users: [U0ADMIN], usergroups: [S0ADMINS]}}
policy:
  rules:
    - tools: [gmail_send]
      approvers: {{channel: C0FINANCE, usergroups: [S0FINANCE], users: [U0CFO]}}
    - tools: [refund_order]
tools:
  functions:
    - ref: tests.agent_tools:get_weather
    - ref: tests.agent_tools:book_flight
      requires_confirmation: true
  connectors:
    - connector_id: gmail
  mcp_servers:
    - name: orders
      command: {json.dumps(sys.executable)}
      args: ["-m", "tests.mcp_server"]
      env: {{PYTHONPATH: {json.dumps(str(ROOT))}}}
"""


@contextlib.contextmanager
def redis_server(directory: Path, *options: str, persistent: bool = True) -> Iterator[str]:
    """A real redis-server with ``options`` added to its command line; its URL."""
    port = free_port()
    process = subprocess.Popen(
        [*redis_server_command(directory, port, persistent=persistent), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.025)
        else:
            raise RuntimeError("redis-server did not start")
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def good_redis(tmp_path: Path) -> Iterator[str]:
    """AOF on, noeviction (Redis's default): what the bot needs."""
    folder = tmp_path / "redis"
    folder.mkdir()
    with redis_server(folder) as url:
        yield url


@pytest.fixture
async def workspace(slack: SlackStandIn, mistral: MistralStandIn) -> SlackStandIn:
    """Everything CONFIG names exists, and the bot is in its channels."""
    slack.usergroups.update({"S0ADMINS": ["U0ADMIN"], "S0FINANCE": ["U0CFO", "U0ACCOUNTANT"]})
    slack.usergroup_handles.update({"S0ADMINS": "admins", "S0FINANCE": "finance"})
    slack.channels[APPROVALS] = {"name": "approvals"}
    slack.channels["C0FINANCE"] = {"name": "finance"}
    slack.socket_url = "wss://127.0.0.1:9/link"
    mistral.create_connector("gmail", ["gmail_search", "gmail_send"])
    return slack


@pytest.fixture
def environment(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    workspace: SlackStandIn,
    mistral: MistralStandIn,
    good_redis: str,
) -> dict[str, str]:
    """The variables of a healthy install, pointing at the stand-ins; a test may change
    them (``monkeypatch.setenv``) before running the doctor."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bot.yml").write_text(CONFIG)
    values = {
        "SLACK_BOT_TOKEN": workspace.token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_APP_TOKEN": workspace.app_token,
        "SLACK_API_URL": workspace.api_url,
        "MISTRAL_API_KEY": "test-key",
        "MISTRAL_SERVER_URL": mistral.url,
        "REDIS_URL": good_redis,
        "LOG_FORMAT": "text",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


async def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run ``approval-bot doctor ARGS`` in-process: its exit status and what it printed."""
    code = await asyncio.to_thread(main, ["doctor", *args])
    return code, capsys.readouterr().out


async def doctor_json(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, dict[str, str]]]:
    """``doctor --json``: the exit status and the rows by check (a name may repeat: the last)."""
    code, out = await doctor(capsys, "--json")
    rows = json.loads(out)
    assert all(set(row) == {"check", "status", "detail", "fix"} for row in rows)
    return code, {row["check"]: row for row in rows}


def row_of(rows: dict[str, dict[str, str]], check: str, status: str) -> dict[str, str]:
    row = rows[check]
    assert row["status"] == status, row
    return row


async def test_a_healthy_install_passes_every_check(
    environment: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, rows = await doctor_json(capsys)
    assert {check: row["status"] for check, row in rows.items()} == {
        "slack.token": "ok",
        "slack.scopes": "ok",
        f"slack.channel {APPROVALS}": "ok",
        "slack.channel C0FINANCE": "ok",
        "slack.usergroup S0FINANCE": "ok",
        "slack.usergroup S0ADMINS": "ok",
        "slack.user U0CFO": "ok",
        "slack.user U0ADMIN": "ok",
        "slack.signing_secret": "ok",
        "slack.app_token": "ok",
        "mistral.key": "ok",
        "mistral.model": "ok",
        "mistral.connector gmail": "ok",
        "tools.functions": "ok",
        "mcp orders": "ok",
        "redis.reachable": "ok",
        "redis.version": "ok",
        "redis.persistence": "ok",
        "redis.maxmemory_policy": "ok",
    }
    assert code == 0
    assert "the workspace Stand-in Team (T0TEAM" in rows["slack.token"]["detail"]
    assert "#approvals: the bot is a member" in rows[f"slack.channel {APPROVALS}"]["detail"]
    # what the policy holds: a rule names gmail_send and refund_order
    assert "held for a decision: gmail_send" in rows["mistral.connector gmail"]["detail"]
    assert "held for a decision: refund_order" in rows["mcp orders"]["detail"]
    assert rows["tools.functions"]["detail"] == "2 functions import: get_weather, book_flight"
    assert all(row["fix"] == "" for row in rows.values())

    code, table = await doctor(capsys)
    assert code == 0
    assert table.splitlines()[0].split() == ["status", "check", "detail"]
    assert table.rstrip().endswith("19 checks: 19 ok, 0 warning(s), 0 failed")
    assert "fix:" not in table


@pytest.mark.parametrize(
    ("given", "detail", "fix"),
    [
        ("xoxb-wrong", "the token is not valid (invalid_auth)", "copy the Bot User OAuth Token"),
        ("", "SLACK_BOT_TOKEN is not set", "copy the Bot User OAuth Token"),
        ("xapp-test", "not a bot token (not_allowed_token_type)", "use the Bot User OAuth Token"),
    ],
)
async def test_a_wrong_bot_token(
    environment: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    given: str,
    detail: str,
    fix: str,
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", given)
    code, table = await doctor(capsys)
    assert code == 1
    line = next(line for line in table.splitlines() if "slack.token" in line)
    assert line.startswith("failed") and detail in line
    assert fix in table.splitlines()[table.splitlines().index(line) + 1]
    assert "slack.channel" not in table  # nothing more to learn with that token
    assert "mistral.key" in table  # the other services are still checked


async def test_an_uninstalled_app(
    environment: dict[str, str], workspace: SlackStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace.token_error = "account_inactive"
    code, rows = await doctor_json(capsys)
    row = row_of(rows, "slack.token", "failed")
    assert "uninstalled" in row["detail"] and "account_inactive" in row["detail"]
    assert "reinstall the app" in row["fix"]
    assert code == 1


async def test_missing_scopes_are_named_and_what_they_break(
    environment: dict[str, str], workspace: SlackStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace.scopes = [s for s in manifest_bot_scopes() if s not in ("channels:read", "commands")]
    code, rows = await doctor_json(capsys)
    scopes = row_of(rows, "slack.scopes", "failed")
    assert scopes["detail"].startswith("missing scopes: channels:read, commands")
    assert "reinstall the app" in scopes["fix"]
    channel = row_of(rows, f"slack.channel {APPROVALS}", "failed")
    assert "lacks the channels:read scope (missing_scope)" in channel["detail"]
    assert channel["fix"].startswith("add channels:read to the Bot Token Scopes")
    assert code == 1


async def test_without_the_scopes_header_the_scopes_are_a_warning(
    environment: dict[str, str], workspace: SlackStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace.scopes = None
    code, rows = await doctor_json(capsys)
    assert "no x-oauth-scopes header" in row_of(rows, "slack.scopes", "warning")["detail"]
    assert code == 0  # a warning is not a failure


async def test_approvals_channels_missing_archived_or_without_the_bot(
    environment: dict[str, str], workspace: SlackStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace.unknown_channels.add(APPROVALS)
    workspace.channels["C0FINANCE"] = {"name": "finance", "is_member": False}
    workspace.scopes = [s for s in manifest_bot_scopes() if s != "channels:join"]
    code, rows = await doctor_json(capsys)
    missing = row_of(rows, f"slack.channel {APPROVALS}", "failed")
    assert missing["detail"].startswith("not found (named in approvals.channel)")
    assert "Channel ID" in missing["fix"] and "/invite @approval-bot" in missing["fix"]
    outside = row_of(rows, "slack.channel C0FINANCE", "failed")
    assert outside["detail"] == "the bot is not a member of #finance: it cannot post cards there"
    assert outside["fix"] == "/invite @approval-bot in #finance"
    assert code == 1

    # a public channel the bot may join itself (channels:join): it does when it posts there
    workspace.unknown_channels.clear()
    workspace.scopes = [*manifest_bot_scopes(), "channels:join"]
    code, rows = await doctor_json(capsys)
    joinable = row_of(rows, "slack.channel C0FINANCE", "warning")
    assert joinable["detail"].startswith("the bot is not in #finance yet: it joins it by itself")
    assert (
        joinable["fix"]
        == "nothing to do; or /invite @approval-bot in #finance to have it there now"
    )
    assert code == 0

    workspace.channels[APPROVALS] = {"name": "approvals", "is_archived": True}
    workspace.channels["C0FINANCE"] = {"name": "finance", "is_private": True, "is_member": False}
    code, rows = await doctor_json(capsys)
    archived = row_of(rows, f"slack.channel {APPROVALS}", "failed")
    assert archived["detail"] == "#approvals is archived: cards cannot be posted there"
    assert archived["fix"] == "unarchive it, or put another channel's id in bot.yml"
    hidden = row_of(rows, "slack.channel C0FINANCE", "failed")  # Slack hides private ones
    assert "a private one the bot is not in" in hidden["detail"]
    assert code == 1


async def test_user_groups_and_people_that_do_not_resolve(
    environment: dict[str, str], workspace: SlackStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    del workspace.usergroups["S0FINANCE"]
    workspace.usergroups["S0ADMINS"] = []
    workspace.unknown_users.add("U0CFO")
    workspace.users["U0ADMIN"] = {"deleted": True, "name": "old.admin"}
    code, rows = await doctor_json(capsys)
    group = row_of(rows, "slack.usergroup S0FINANCE", "failed")
    assert group["detail"] == "no such user group (named in policy.rules.0.approvers)"
    assert "usergroups.list" in group["fix"]
    empty = row_of(rows, "slack.usergroup S0ADMINS", "warning")
    assert empty["detail"] == "@admins has no members: nobody approves through it"
    cfo = row_of(rows, "slack.user U0CFO", "failed")
    assert cfo["detail"] == "no such user (named in policy.rules.0.approvers)"
    assert "Copy member ID" in cfo["fix"]
    admin = row_of(rows, "slack.user U0ADMIN", "failed")
    assert admin["detail"] == "@old.admin is deactivated (named in admins)"
    assert code == 1


async def test_socket_mode_token_and_signing_secret(
    environment: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-revoked")
    monkeypatch.delenv("SLACK_SIGNING_SECRET")
    code, rows = await doctor_json(capsys)
    app = row_of(rows, "slack.app_token", "failed")
    assert (
        app["detail"] == "the app-level token cannot open a Socket Mode connection (invalid_auth)"
    )
    assert "connections:write" in app["fix"] and "SLACK_APP_TOKEN" in app["fix"]
    # with an app token, Socket Mode is the way in: no signing secret needed
    assert "Socket Mode does not need it" in row_of(rows, "slack.signing_secret", "ok")["detail"]
    assert code == 1

    monkeypatch.delenv("SLACK_APP_TOKEN")
    code, rows = await doctor_json(capsys)
    secret = row_of(rows, "slack.signing_secret", "failed")
    assert secret["detail"].startswith("SLACK_SIGNING_SECRET is not set")
    assert "Basic Information" in secret["fix"]
    assert "only `socket` needs it" in row_of(rows, "slack.app_token", "ok")["detail"]
    assert code == 1


async def test_a_refused_mistral_key(
    environment: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with MistralStandIn(api_key="the-right-key") as mistral:
        monkeypatch.setenv("MISTRAL_SERVER_URL", mistral.url)
        code, rows = await doctor_json(capsys)
        assert [r.status for r in mistral.requests] == [401]  # nothing more asked with it
        assert all("Authorization" in error for error in mistral.errors)
    row = row_of(rows, "mistral.key", "failed")
    assert row["detail"].startswith("the key was refused (HTTP 401")
    assert "MISTRAL_API_KEY" in row["fix"]
    assert "mistral.model" not in rows
    assert code == 1


async def test_an_unknown_model_agent_or_connector(
    environment: dict[str, str],
    mistral: MistralStandIn,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "bot.yml"
    config.write_text(
        CONFIG.replace("model: mistral-medium-latest", "model: mistral-huge-latest").replace(
            "    - connector_id: gmail\n",
            "    - connector_id: gmail\n"
            "      tool_configuration: {requires_confirmation: [gmail_sned]}\n"
            "    - connector_id: drive\n"
            "    - connector_id: calendar\n",
        )
    )
    mistral.create_connector("calendar", tools_failure=502)
    code, rows = await doctor_json(capsys)
    model = row_of(rows, "mistral.model", "failed")
    assert model["detail"].startswith("no model 'mistral-huge-latest' for this key (HTTP 404")
    assert "mistral-medium-latest" in model["fix"]
    gmail = row_of(rows, "mistral.connector gmail", "warning")
    assert "names tools it does not have: gmail_sned" in gmail["detail"]
    drive = row_of(rows, "mistral.connector drive", "failed")
    assert drive["detail"].startswith("no connector 'drive' (HTTP 404")
    assert "connector_id" in drive["fix"]
    calendar = row_of(rows, "mistral.connector calendar", "warning")
    assert calendar["detail"].startswith("its tools could not be listed (HTTP 502")
    assert code == 1

    config.write_text(
        CONFIG.replace("model: mistral-medium-latest", "agent_id: ag_gone").replace(
            "  connectors:\n    - connector_id: gmail\n", ""
        )
    )
    code, rows = await doctor_json(capsys)
    agent = row_of(rows, "mistral.agent", "failed")
    assert agent["detail"].startswith("no agent ag_gone for this key (HTTP 404")
    assert "agent_id" in agent["fix"]
    assert code == 1

    agent_id = mistral.create_agent(name="Helper")
    config.write_text(config.read_text().replace("ag_gone", agent_id))
    code, rows = await doctor_json(capsys)
    assert row_of(rows, "mistral.agent", "ok")["detail"] == f"{agent_id}: Helper on {DEFAULT_MODEL}"
    assert code == 0


async def test_tools_that_do_not_import_or_start(
    environment: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "bot.yml").write_text(
        CONFIG.replace("tests.agent_tools:get_weather", "nope.module:fn")
        .replace(json.dumps(sys.executable), '"/nonexistent/mcp-server"')
        .replace(
            "    - connector_id: gmail\n",
            "    - connector_id: gmail\n      authorization: {type: api-key, env: GMAIL_KEY}\n",
        )
    )
    monkeypatch.delenv("GMAIL_KEY", raising=False)
    code, rows = await doctor_json(capsys)
    functions = row_of(rows, "tools.functions", "failed")
    assert functions["detail"].startswith("tools.functions.0.ref (line ")
    assert "cannot import module 'nope.module'" in functions["detail"]
    assert functions["fix"] == "install it or add its folder to PYTHONPATH"
    credentials = row_of(rows, "tools.credentials", "failed")
    assert "the environment variable GMAIL_KEY is not set" in credentials["detail"]
    assert "set it to the connector's api-key" in credentials["fix"]
    server = row_of(rows, "mcp orders", "failed")
    assert server["detail"].startswith("does not start:")
    assert "/nonexistent/mcp-server" in server["fix"]
    assert code == 1  # not 2: the file itself is valid


async def test_a_config_mistake_exits_2(
    environment: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bot.yml").write_text(CONFIG.replace(f"channel: {APPROVALS}", "channel: general"))
    code = await asyncio.to_thread(main, ["doctor"])
    captured = capsys.readouterr()
    assert code == EXIT_CONFIG
    assert captured.out == ""
    assert "approvals.channel (line 3)" in captured.err


@pytest.mark.parametrize(
    ("options", "settings", "check", "status", "words"),
    [
        ((), {}, "redis.persistence", "failed", "CONFIG SET appendonly yes"),
        ((), {"save": "3600 1"}, "redis.persistence", "ok", "RDB snapshots (save 3600 1)"),
        (
            (),
            {"appendonly": "yes", "maxmemory-policy": "allkeys-lru"},
            "redis.maxmemory_policy",
            "failed",
            "CONFIG SET maxmemory-policy noeviction",
        ),
        (
            ("--rename-command", "CONFIG", ""),
            {},
            "redis.persistence",
            "warning",
            "your provider's settings",
        ),
    ],
)
async def test_redis_settings(
    environment: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    options: tuple[str, ...],
    settings: dict[str, str],
    check: str,
    status: str,
    words: str,
) -> None:
    """A Redis started without persistence, then set as the case says (``--rename-command
    CONFIG ""`` is how managed Redis disables CONFIG)."""
    folder = tmp_path / "other-redis"
    folder.mkdir()
    with redis_server(folder, *options, persistent=False) as url:
        with redis.Redis.from_url(url) as client:
            for name, value in settings.items():
                client.config_set(name, value)
        monkeypatch.setenv("REDIS_URL", url)
        code, rows = await doctor_json(capsys)
    row = row_of(rows, check, status)
    assert words in row["detail"] + row["fix"]
    assert code == (1 if status == "failed" else 0)
    if "CONFIG" in options:  # INFO still tells the eviction policy
        assert rows["redis.maxmemory_policy"]["status"] == "ok"


async def test_redis_unreachable_or_embedded(
    environment: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    code, rows = await doctor_json(capsys)
    row = row_of(rows, "redis.reachable", "failed")
    assert "does not answer" in row["detail"] and "hunter2" not in row["detail"]
    assert row["fix"].startswith("start Redis, or fix REDIS_URL")
    assert code == 1

    monkeypatch.delenv("REDIS_URL")
    code, rows = await doctor_json(capsys)
    assert "REDIS_URL is unset" in row_of(rows, "redis.embedded", "ok")["detail"]
    assert rows["redis.version"]["status"] == "ok"
    assert code == 0


def test_a_redis_older_than_6_2_fails() -> None:
    old = version_check("6.0.16", "redis://old:6379/0")
    assert old.status == "failed"
    assert "lacks XAUTOCLAIM, GETDEL" in old.detail
    assert old.fix == "upgrade to Redis 6.2 or later"
    assert version_check("6.2.0", "x").status == "ok"
    assert version_check("7.2.4", "x").status == "ok"


def test_the_scopes_kept_in_code_are_the_manifests() -> None:
    """Where manifest.yml is not installed (the Docker image), the list in code is used."""
    assert sorted(BOT_SCOPES) == sorted(manifest_bot_scopes())


async def test_the_console_script_prints_json_and_exits_1_on_a_failure(
    environment: dict[str, str], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env.update(environment)
    env["SLACK_BOT_TOKEN"] = "xoxb-wrong"
    env["PYTHONPATH"] = str(ROOT)
    result = await asyncio.to_thread(  # the stand-ins answer on this test's event loop
        subprocess.run,
        [sys.executable, "-m", "bot", "doctor", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    rows = {row["check"]: row for row in json.loads(result.stdout)}
    assert rows["slack.token"]["status"] == "failed"
    assert rows["mistral.key"]["status"] == "ok"
    assert "Traceback" not in result.stderr


async def _ready_state(url: str) -> tuple[int, dict[str, Any]]:
    """/readyz once its preflight has finished."""
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            async with session.get(url + "/readyz") as response:
                body = await response.json()
            if body["preflight"]["status"] != "running":
                return response.status, body
            await asyncio.sleep(0.05)
    raise AssertionError(f"the preflight never finished: {body}")


async def test_readyz_reports_the_preflight_without_failing_for_it(
    slack: SlackStandIn,
    mistral: MistralStandIn,
    redis_url: str,
    config_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    slack.channels[APPROVALS] = {"name": "approvals", "is_private": True, "is_member": False}
    settings = make_settings(slack, mistral, redis_url, config_path, preflight=True)
    async with served(settings, config_path) as (url, _):
        status, body = await _ready_state(url)
    assert status == 200  # reported, not a reason to take the bot out of rotation
    preflight = body["preflight"]
    assert preflight["status"] == "failed"
    failed = {row["check"]: row for row in preflight["failed"]}
    # the suite's Redis runs without persistence; the bot is not in the private approvals
    # channel (Slack answers channel_not_found)
    assert set(failed) == {"redis.persistence", f"slack.channel {APPROVALS}"}
    assert "/invite @approval-bot" in failed[f"slack.channel {APPROVALS}"]["fix"]
    assert body["loops"] and body["redis"] == "ok"
    logged = [r.getMessage() for r in caplog.records if r.name == "bot.ops.doctor.preflight"]
    assert any(
        m.startswith(f"preflight: slack.channel {APPROVALS} failed") and "fix: check the id" in m
        for m in logged
    )


async def test_readyz_says_when_the_preflight_is_off(bot: Any) -> None:
    async with aiohttp.ClientSession() as session, session.get(bot.url + "/readyz") as response:
        assert (await response.json())["preflight"] == {"status": "off"}
