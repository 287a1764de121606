"""Long-term audit: the shipper copies the audit stream to day files and to an HTTPS webhook
(here a real aiohttp receiver on the loopback), each entry once, and ``audit export`` reads
the files and Redis together. Real Redis throughout."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from bot.errors import ConfigError
from bot.metrics import Metrics
from bot.ops.cli import main
from bot.ops.settings import load_settings
from bot.storage import keys
from bot.storage.audit_shipper import AuditShipper
from bot.storage.audit_sinks import SIGNATURE_HEADER, FileSink
from bot.storage.embedded_redis import free_port
from tests.helpers import MANAGER, BotUnderTest, all_text

SECRET = "webhook-secret"
BOOK = "book a flight to Rodez"


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1000)


async def add_entry(client: aioredis.Redis, iso: str, event: str, **fields: str) -> str:
    """An audit entry appended at ``iso`` (its stream id and ``at`` that time)."""
    at = ms(iso)
    entry_id = f"{at}-0"
    await client.xadd(
        keys.AUDIT_STREAM, {"event": event, "at": f"{at / 1000:.3f}", **fields}, id=entry_id
    )
    return entry_id


async def until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.05)


def file_lines(directory: Path) -> dict[str, list[dict[str, Any]]]:
    """Each day file's entries, by file name."""
    return {
        path.name: [json.loads(line) for line in path.read_text().splitlines()]
        for path in sorted(directory.glob("audit-*.jsonl"))
    }


def whole_lines(directory: Path) -> int:
    return sum(path.read_text().count("\n") for path in directory.glob("audit-*.jsonl"))


# -- the webhook receiver --------------------------------------------------------------------
@dataclass
class Receiver:
    """A SIEM's HTTP collector: refuses the first ``failures`` requests, then takes them."""

    url: str = ""
    failures: int = 2
    requests: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    signatures_ok: list[bool] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests += 1
        if self.requests <= self.failures:
            # a collector that is restarting, then one that is rate limiting
            status = 503 if self.requests % 2 else 429
            return web.Response(status=status, headers={"Retry-After": "0"})
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        self.signatures_ok.append(
            hmac.compare_digest(request.headers.get(SIGNATURE_HEADER, ""), expected)
        )
        self.received.extend(json.loads(body)["entries"])
        return web.json_response({"ok": True})

    @property
    def ids(self) -> list[str]:
        return [entry["id"] for entry in self.received]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/audit", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    found.url = f"http://127.0.0.1:{port}/audit"
    yield found
    await runner.cleanup()


@pytest.fixture
def settings_overrides(receiver: Receiver) -> dict[str, Any]:
    return {
        "audit_sinks": "webhook",
        "audit_webhook_url": receiver.url,
        "audit_webhook_secret": SECRET,
    }


async def stream_ids(client: aioredis.Redis) -> list[str]:
    return [entry_id for entry_id, _fields in await client.xrange(keys.AUDIT_STREAM)]


async def approved_and_answered(bot: BotUnderTest) -> None:
    await bot.send.mention(BOOK)
    approval_id = await bot.approval_id()
    await bot.send.click("approval_approve", approval_id, user=MANAGER)
    await bot.slack.wait_for("chat.postMessage", lambda a: "Done: Booked" in all_text(a))
    await bot.settled()


async def test_a_webhook_that_fails_twice_gets_every_entry_once_signed(
    bot: BotUnderTest, receiver: Receiver
) -> None:
    await approved_and_answered(bot)
    written = await stream_ids(bot.redis)
    assert len(written) == 4  # requested, approved, executing, executed

    await until(lambda: len(receiver.ids) >= len(written))
    await asyncio.sleep(1.5)  # a shipper poll or so: nothing more arrives

    assert receiver.requests > 2  # it was refused twice, then taken
    assert receiver.ids == written  # each entry once, oldest first
    assert [e["event"] for e in receiver.received] == [
        "requested",
        "approved",
        "executing",
        "executed",
    ]
    assert receiver.received[1]["actor"] == MANAGER
    assert isinstance(receiver.received[1]["at"], float)  # as `audit export` writes it
    assert receiver.signatures_ok and all(receiver.signatures_ok)


async def scrape(url: str) -> dict[tuple[str, str], float]:
    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as response:
        text = await response.text()
    return {
        (sample.name, sample.labels.get("sink", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_a_webhook_that_keeps_failing_shows_on_metrics_and_the_bot_goes_on(
    bot: BotUnderTest, receiver: Receiver
) -> None:
    receiver.failures = 10**6  # down until further notice
    await approved_and_answered(bot)  # the bot works meanwhile

    async def failing() -> bool:
        samples = await scrape(bot.url)
        return samples.get(("approval_bot_audit_sink_failures_total", "webhook"), 0) >= 1

    async with asyncio.timeout(20):
        while not await failing():
            await asyncio.sleep(0.1)
    samples = await scrape(bot.url)
    assert samples[("approval_bot_audit_sink_lag_seconds", "webhook")] > 0
    assert receiver.received == []

    receiver.failures = 0  # back
    written = await stream_ids(bot.redis)
    await until(lambda: len(receiver.ids) >= len(written))
    assert receiver.ids == written
    samples = await scrape(bot.url)
    assert samples[("approval_bot_audit_shipped_total", "webhook")] == len(written)


# -- day files -------------------------------------------------------------------------------
async def ship_files(client: aioredis.Redis, directory: Path, expected: int) -> None:
    """Run a shipper with a file sink until the files hold ``expected`` entries, then stop
    it (cleanly)."""
    shipper = AuditShipper(client, [FileSink(directory)], Metrics(), poll_s=0.05)
    shipper.start()
    try:
        await until(lambda: whole_lines(directory) >= expected)
    finally:
        await shipper.close()


async def test_entries_go_to_one_file_per_utc_day(
    redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    first = await add_entry(redis_client, "2026-11-01T23:59:59.500", "requested", tool="pay")
    second = await add_entry(redis_client, "2026-11-02T00:00:00.250", "approved", actor="UFIN")
    third = await add_entry(redis_client, "2026-11-02T09:00:00", "executed", detail="Zürich")

    await ship_files(redis_client, tmp_path, 3)

    files = file_lines(tmp_path)
    assert list(files) == ["audit-2026-11-01.jsonl", "audit-2026-11-02.jsonl"]
    assert [e["id"] for e in files["audit-2026-11-01.jsonl"]] == [first]
    assert [e["id"] for e in files["audit-2026-11-02.jsonl"]] == [second, third]
    day_two = files["audit-2026-11-02.jsonl"]
    assert day_two[0]["event"] == "approved" and day_two[0]["actor"] == "UFIN"
    assert day_two[1]["detail"] == "Zürich"
    assert day_two[1]["time"] == "2026-11-02T09:00:00.000+00:00"


async def test_a_restart_after_a_crash_writes_no_entry_twice(
    redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    ids = [
        await add_entry(redis_client, f"2026-11-03T10:00:0{n}", "approval_counted", n=str(n))
        for n in range(3)
    ]
    await ship_files(redis_client, tmp_path, 3)
    # a process crashed after fsyncing its next batch, before its position reached Redis,
    # and another one died halfway through a line
    await redis_client.hdel(keys.AUDIT_SHIPPED, FileSink.name)
    with (tmp_path / "audit-2026-11-03.jsonl").open("a") as torn:
        torn.write('{"id": "17')
    ids.append(await add_entry(redis_client, "2026-11-03T11:00:00", "approved"))

    await ship_files(redis_client, tmp_path, 4)

    lines = file_lines(tmp_path)["audit-2026-11-03.jsonl"]
    assert [e["id"] for e in lines] == ids  # each once, the torn line gone


# -- export across files and Redis -----------------------------------------------------------
async def export(*options: str) -> int:
    """``approval-bot audit export`` (its own event loop, so in a thread of its own)."""
    return await asyncio.to_thread(main, ["audit", "export", *options])


async def test_export_reads_files_for_what_redis_trimmed_and_redis_for_the_rest(
    redis_client: aioredis.Redis,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    audit_dir = tmp_path / "audit"
    old = [
        await add_entry(redis_client, "2026-10-01T09:00:00", "requested"),
        await add_entry(redis_client, "2026-10-15T09:00:00", "approved"),
        await add_entry(redis_client, "2026-11-01T09:00:00", "executed"),
    ]
    await ship_files(redis_client, audit_dir, 3)
    # retention trims the first two from Redis; a new entry is not shipped yet
    await redis_client.xtrim(keys.AUDIT_STREAM, minid=ms("2026-10-20T00:00:00"), approximate=False)
    assert await stream_ids(redis_client) == old[2:]
    new = await add_entry(redis_client, "2026-11-02T09:00:00", "denied", detail="<!channel>")

    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("AUDIT_DIR", str(audit_dir))
    assert await export() == 0
    captured = capsys.readouterr()
    exported = [json.loads(line) for line in captured.out.splitlines()]
    assert [e["id"] for e in exported] == [*old, new]  # oldest first, the seam once
    assert [e["event"] for e in exported] == ["requested", "approved", "executed", "denied"]
    assert exported[3]["detail"] == "<!channel>"
    assert "4 audit entries written" in captured.err

    assert await export("--since", "2026-10-15", "--until", "2026-11-01T09:00Z") == 0
    assert [json.loads(x)["id"] for x in capsys.readouterr().out.splitlines()] == old[1:3]

    monkeypatch.setenv("AUDIT_SINKS", "none")  # Redis only: what it still holds
    assert await export() == 0
    assert [json.loads(x)["id"] for x in capsys.readouterr().out.splitlines()] == [old[2], new]


# -- settings --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({"AUDIT_SINKS": "file,siem"}, "AUDIT_SINKS: unknown audit sink siem"),
        ({"AUDIT_SINKS": "webhook"}, "AUDIT_WEBHOOK_URL is not set"),
        (
            {"AUDIT_SINKS": "webhook", "AUDIT_WEBHOOK_URL": "http://siem.example.com/in"},
            "AUDIT_WEBHOOK_URL: the audit webhook must be an https:// URL",
        ),
        (
            {"AUDIT_WEBHOOK_URL": "https://siem.example.com/in"},
            "AUDIT_SINKS does not have webhook: add it",
        ),
    ],
)
def test_wrong_audit_settings_stop_start_up_naming_the_variable(
    environment: dict[str, str],
    named: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as refused:
        load_settings("check", env_file=None)
    assert named in str(refused.value)


def test_audit_settings_default_to_day_files_in_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AUDIT_WEBHOOK_SECRET", "s3cret")
    settings = load_settings("check", env_file=None)
    assert settings.audit_sink_names == ("file",)
    assert settings.audit_directory == tmp_path / "data" / "audit"
    assert "s3cret" in settings.secrets  # masked in logs
    monkeypatch.setenv("AUDIT_SINKS", " webhook , file ")
    monkeypatch.setenv("AUDIT_WEBHOOK_URL", "http://127.0.0.1:9/in")  # loopback may be http
    assert load_settings("check", env_file=None).audit_sink_names == ("file", "webhook")
