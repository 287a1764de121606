"""``approval-bot audit export``: the audit trail as JSON Lines, one entry a line.

It reads the same Redis as the bot (``REDIS_URL``; without it, the embedded Redis in
``DATA_DIR``, which must not be in use by a running bot). Entries come oldest first, in
pages, so a year of audit never sits in memory at once.

With the file sink on (``AUDIT_SINKS`` has ``file``), it also reads the day files in
``AUDIT_DIR`` and merges them with the stream by stream id: entries Redis trimmed come from
the files, entries the files do not hold yet from Redis, and an entry in both is written
once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import IO, Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from bot.ops.settings import Settings
from bot.storage.audit import AuditLog, entry_line, position
from bot.storage.audit_sinks import read_day_files
from bot.storage.connections import RedisClient, open_cluster
from bot.storage.embedded_redis import EmbeddedRedis

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


async def merged(
    from_redis: AsyncIterator[dict[str, str]], from_files: Iterator[dict[str, Any]]
) -> AsyncIterator[str]:
    """The lines of both sources, oldest first by stream id, each entry once: an entry both
    hold is written from Redis (the same fields), and files fill in what Redis no longer
    holds (trimmed) while Redis fills in what the file sink has not written yet."""
    last: tuple[int, int] | None = None
    waiting = next(from_files, None)

    def fresh(at: tuple[int, int]) -> bool:
        return last is None or at > last

    async for entry in from_redis:
        at = position(entry["id"])
        while waiting is not None and position(str(waiting["id"])) <= at:
            older = position(str(waiting["id"]))
            if older < at and fresh(older):
                last = older
                yield json.dumps(waiting, ensure_ascii=False, sort_keys=True)
            waiting = next(from_files, None)
        if fresh(at):
            last = at
            yield entry_line(entry)
    while waiting is not None:
        older = position(str(waiting["id"]))
        if fresh(older):
            last = older
            yield json.dumps(waiting, ensure_ascii=False, sort_keys=True)
        waiting = next(from_files, None)


async def export(settings: Settings, since: float | None, until: float | None, out: IO[str]) -> int:
    """Write the entries; the number written."""
    async with AsyncExitStack() as stack:
        url = settings.redis_url
        if url is None:
            url = await stack.enter_async_context(EmbeddedRedis(settings.data_dir))
        client: RedisClient = (
            open_cluster(url, max_connections=4)
            if settings.redis_cluster
            else redis.Redis.from_url(url, socket_timeout=30)
        )
        stack.push_async_callback(client.aclose)
        audit = AuditLog(client, settings.audit_retention_days)
        from_files: Iterator[dict[str, Any]] = iter(())
        if "file" in settings.audit_sink_names:
            from_files = read_day_files(settings.audit_directory, since, until)
        written = 0
        async for line in merged(audit.iterate(since, until), from_files):
            out.write(line + "\n")
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
