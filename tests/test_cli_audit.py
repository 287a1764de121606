"""``approval-bot audit export``: the audit stream of a real Redis as JSON Lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from bot.ops.audit_cli import parse_time
from bot.ops.cli import main
from bot.storage import keys


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
def audit_stream(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[redis.Redis]:
    """Three audit entries on three days, in the Redis that REDIS_URL names."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("REDIS_URL", redis_url)
    client = redis.Redis.from_url(redis_url)
    client.delete(keys.AUDIT_STREAM)
    entries = [
        ("2026-11-01T09:00:00", {"event": "requested", "actor": "UREQ", "tool": "pay"}),
        (
            "2026-11-02T09:00:00",
            {
                "event": "edited_approved",
                "actor": "UFIN",
                "tool": "pay",
                "arguments": '{"amount": 500, "to": "Zürich"}',
                "edited_arguments": '{"amount": 250, "to": "Zürich"}',
            },
        ),
        ("2026-11-03T09:00:00", {"event": "denied", "actor": "UBOSS", "detail": "<!channel>"}),
    ]
    for iso, fields in entries:
        at = ms(iso)
        client.xadd(keys.AUDIT_STREAM, {"at": f"{at / 1000:.3f}", **fields}, id=f"{at}-0")
    yield client
    client.delete(keys.AUDIT_STREAM)
    client.close()


def lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_export_writes_every_entry_as_a_json_line_oldest_first(
    audit_stream: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "export"]) == 0
    captured = capsys.readouterr()
    exported = lines(captured.out)
    assert [e["event"] for e in exported] == ["requested", "edited_approved", "denied"]
    edited = exported[1]
    assert edited["arguments"] == '{"amount": 500, "to": "Zürich"}'
    assert edited["edited_arguments"] == '{"amount": 250, "to": "Zürich"}'
    assert edited["at"] == ms("2026-11-02T09:00:00") / 1000
    assert edited["time"] == "2026-11-02T09:00:00.000+00:00"
    assert edited["id"] == f"{ms('2026-11-02T09:00:00')}-0"
    assert exported[2]["detail"] == "<!channel>"  # verbatim: it is data, not a Slack message
    assert "3 audit entries written" in captured.err


def test_since_and_until_bound_the_export_inclusively(
    audit_stream: redis.Redis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "audit.jsonl"
    code = main(
        [
            "audit",
            "export",
            "--since",
            "2026-11-02T09:00:00Z",
            "--until",
            str(ms("2026-11-03T09:00:00") / 1000),
            "-o",
            str(out),
        ]
    )
    assert code == 0
    assert [e["event"] for e in lines(out.read_text())] == ["edited_approved", "denied"]
    assert main(["audit", "export", "--until", "2026-11-01T23:59:59+00:00"]) == 0
    assert [e["event"] for e in lines(capsys.readouterr().out)] == ["requested"]


def test_a_long_audit_is_read_in_pages(
    audit_stream: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    start = ms("2026-11-04T00:00:00")
    for n in range(2500):
        audit_stream.xadd(
            keys.AUDIT_STREAM, {"event": "vote", "at": "1", "n": n}, id=f"{start + n}-0"
        )
    assert main(["audit", "export", "--since", "2026-11-04"]) == 0
    exported = lines(capsys.readouterr().out)
    assert [e["n"] for e in exported] == [str(n) for n in range(2500)]


def test_a_bad_time_is_a_usage_error(
    audit_stream: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["audit", "export", "--since", "last tuesday"])
    assert stopped.value.code == 2
    assert "'last tuesday' is not a time; use a date (2026-11-01)" in capsys.readouterr().err


def test_an_unreachable_redis_exits_3_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["audit", "export"]) == 3
    assert "audit export failed" in capsys.readouterr().err


def test_times_parse_as_dates_times_or_unix_seconds() -> None:
    assert parse_time("1763990000") == 1763990000.0
    assert parse_time("2026-11-01") == ms("2026-11-01T00:00:00") / 1000
    assert parse_time("2026-11-01T10:00:00+01:00") == ms("2026-11-01T09:00:00") / 1000
    with pytest.raises(ValueError, match="is not a time"):
        parse_time("yesterday")
