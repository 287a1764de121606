"""The embedded Redis: a real redis-server whose data survives a restart, one per directory."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.errors import ConfigError
from bot.storage.embedded_redis import EmbeddedRedis


async def test_data_survives_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with EmbeddedRedis(data_dir) as url:
        assert url.startswith("redis://127.0.0.1:")
        client = aioredis.Redis.from_url(url)
        try:
            await client.set("approval-bot:test", "kept")
            await client.rpush("approval-bot:list", "a", "b")
        finally:
            await client.aclose()
    assert data_dir.is_dir()

    async with EmbeddedRedis(data_dir) as url:
        client = aioredis.Redis.from_url(url, decode_responses=True)
        try:
            assert await client.get("approval-bot:test") == "kept"
            assert await client.lrange("approval-bot:list", 0, -1) == ["a", "b"]
        finally:
            await client.aclose()


async def test_stop_ends_the_server(tmp_path: Path) -> None:
    embedded = EmbeddedRedis(tmp_path / "data")
    await embedded.start()
    client = aioredis.Redis.from_url(embedded.url)
    try:
        assert await client.ping()
        await embedded.stop()
        with pytest.raises((aioredis.ConnectionError, OSError)):
            await client.ping()
    finally:
        await client.aclose()
        await embedded.stop()


async def test_a_second_instance_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with EmbeddedRedis(data_dir) as url:
        second = EmbeddedRedis(data_dir)
        try:
            with pytest.raises(ConfigError) as caught:
                await second.start()
        finally:
            await second.stop()
        assert caught.value.source == str(data_dir.resolve())
        rendered = caught.value.render()
        assert "single instance" in rendered
        assert "REDIS_URL" in rendered  # the fix for several instances
        # the first one is unharmed
        client = aioredis.Redis.from_url(url)
        try:
            assert await client.ping()
        finally:
            await client.aclose()

    # once the first has stopped, the directory is free again
    async with EmbeddedRedis(data_dir) as url:
        client = aioredis.Redis.from_url(url)
        try:
            assert await client.ping()
        finally:
            await client.aclose()


def open_handles(path: Path) -> int:
    """How many of this process's file descriptors are open on ``path``."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
    return count


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
async def test_a_refused_second_instance_releases_what_it_opened(tmp_path: Path) -> None:
    """As services use it: an ``async with`` that fails to enter leaves nothing open."""
    data_dir = tmp_path / "data"
    lock = data_dir.resolve() / "bot.lock"
    async with EmbeddedRedis(data_dir):
        second = EmbeddedRedis(data_dir)
        try:
            with pytest.raises(ConfigError, match="single instance"):
                async with second:
                    pass  # pragma: no cover
            assert open_handles(lock) == 1  # the first instance's own
        finally:
            # keep a leaked handle from surfacing as a warning in some later test
            if second._lock is not None:
                second._lock.close()
