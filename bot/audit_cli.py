"""``approval-bot audit export``: the audit trail as JSON Lines, one entry a line.

It reads the same Redis as the bot (``REDIS_URL``; without it, the embedded Redis in
``DATA_DIR``, which must not be in use by a running bot). Entries come oldest first, in
pages, so a year of audit never sits in memory at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import IO, Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from bot.audit import AuditLog
from bot.redis_server import EmbeddedRedis
from bot.settings import Settings

#: Exit status when Redis cannot be read.
EXIT_UNAVAILABLE = 3

_TIME_HELP = (
    "a date (2026-11-01), a time (2026-11-01T09:30:00Z, UTC unless an offset is given) "
    "or Unix seconds"
)


def parse_time(text: str) -> float:
    """Unix seconds from a date, an ISO 8601 time or a number; ValueError says what works."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time; use {_TIME_HELP}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _time_argument(text: str) -> float:
    try:
        return parse_time(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``audit`` command group (``export``) to ``commands``."""
    audit = commands.add_parser("audit", help="read the audit trail")
    actions = audit.add_subparsers(dest="audit_command", required=True)
    export = actions.add_parser(
        "export",
        help="write audit entries as JSON Lines (oldest first)",
        description="Write the audit entries between two times as JSON Lines. "
        f"Times are {_TIME_HELP}.",
    )
    export.add_argument("--since", type=_time_argument, metavar="T", help="from this time on")
    export.add_argument("--until", type=_time_argument, metavar="T", help="up to this time")
    export.add_argument(
        "--output", "-o", metavar="FILE", help="write to FILE instead of standard output"
    )


def entry_line(entry: dict[str, str]) -> str:
    """One audit entry as a JSON line: text fields as stored, ``at`` as a number, plus
    ``time`` in ISO 8601 (UTC) for people reading the file."""
    record: dict[str, Any] = dict(entry)
    at = float(entry.get("at") or 0.0)
    record["at"] = at
    record["time"] = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
    return json.dumps(record, ensure_ascii=False, sort_keys=True)


async def export(settings: Settings, since: float | None, until: float | None, out: IO[str]) -> int:
    """Write the entries; the number written."""
    async with AsyncExitStack() as stack:
        url = settings.redis_url
        if url is None:
            url = await stack.enter_async_context(EmbeddedRedis(settings.data_dir))
        client = redis.Redis.from_url(url, socket_timeout=30)
        stack.push_async_callback(client.aclose)
        audit = AuditLog(client, settings.audit_retention_days)
        written = 0
        async for entry in audit.iterate(since, until):
            out.write(entry_line(entry) + "\n")
            written += 1
        return written


def run(args: argparse.Namespace, settings_of: Callable[[], Settings]) -> int:
    """``audit export``: exit 0 (entries written) or 3 (Redis unavailable); ConfigError for
    the caller (exit 2)."""
    settings = settings_of()
    try:
        with (
            open(args.output, "w", encoding="utf-8")
            if args.output
            else contextlib.nullcontext(sys.stdout)
        ) as out:
            written = asyncio.run(export(settings, args.since, args.until, out))
            out.flush()
    except (RedisError, OSError) as error:
        print(f"audit export failed: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    print(f"{written} audit entries written", file=sys.stderr)
    return 0
