"""Real processes for the fault tests: bot processes (``python -m bot serve``) and Redis
servers, which a test starts, kills and restarts.

Each bot process writes its log to a file; :class:`Fleet` prints every log when it stops
them, which pytest shows with a failing test's teardown output.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import redis
import redis.asyncio as aioredis

from bot.ops.settings import Settings
from bot.storage.embedded_redis import free_port, redis_server_command
from tests.slack_sender import SlackSender
from tests.standins.slack import SlackStandIn

#: The checkout, put on the bot processes' PYTHONPATH so that ``tests.fault_tools`` imports.
ROOT = Path(__file__).resolve().parent.parent

#: Variables the bot reads; a bot process gets only those a test gives it.
_SETTINGS = {name.upper() for name in Settings.model_fields}


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float, what: str
) -> None:
    """Poll ``condition()`` (sync or async) every 50 ms until it is true."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class BotProcess:
    """One ``python -m bot serve`` process, and a sender of Slack's requests to it."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    send: SlackSender

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def readyz(self) -> int | None:
        """The status of GET /readyz, None if the process does not answer."""
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
                session.get(self.url + "/readyz") as response,
            ):
                return response.status
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def wait_ready(self, timeout: float = 30.0) -> None:
        async def ready() -> bool:
            if not self.alive:
                raise AssertionError(f"bot {self.name} exited:\n{self.log()[-3000:]}")
            return await self.readyz() == 200

        await wait_until(ready, timeout, f"bot {self.name} to be ready")

    def kill(self) -> None:
        """SIGKILL: the process stops at once, in the middle of whatever it does."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (a graceful shutdown), then SIGKILL if it takes longer than ``timeout``."""
        if not self.alive:
            return
        self.process.terminate()
        try:
            await wait_until(lambda: not self.alive, timeout, f"bot {self.name} to stop")
        except AssertionError:
            self.kill()


@dataclass
class Fleet:
    """Starts bot processes sharing one environment; stops them all in :meth:`close`."""

    directory: Path
    environment: Mapping[str, str]
    signing_secret: str
    workspace: SlackStandIn | None = None
    bots: list[BotProcess] = field(default_factory=list)

    async def start(self, name: str, command: str = "serve", **overrides: str) -> BotProcess:
        """Start a bot process and wait until it is ready (its /readyz answers 200)."""
        bot = self.spawn(name, command, **overrides)
        await bot.wait_ready()
        return bot

    def spawn(self, name: str, command: str = "serve", **overrides: str) -> BotProcess:
        """Start a bot process (``python -m bot <command>``) without waiting for it."""
        port = free_port()
        inherited = {k: v for k, v in os.environ.items() if k not in _SETTINGS}
        environment = {
            **inherited,
            **self.environment,
            **overrides,
            "PORT": str(port),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
        }
        log_path = self.directory / f"bot-{name}.log"
        with log_path.open("ab") as log:
            # cwd: an empty directory, so that no .env of a developer's checkout is read
            process = subprocess.Popen(
                [sys.executable, "-m", "bot", command],
                cwd=self.directory,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        bot = BotProcess(
            name, url, process, log_path, SlackSender(url, self.signing_secret, self.workspace)
        )
        self.bots.append(bot)
        return bot

    async def close(self) -> None:
        await asyncio.gather(*(bot.stop() for bot in self.bots))
        for bot in self.bots:
            print(f"----- log of bot {bot.name} (pid {bot.pid}) -----\n{bot.log()}")


class RedisProcess:
    """A redis-server of its own, persistent (append-only file, fsync on every write), on a
    fixed port and directory so that it can be killed and started again with its data."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        command = redis_server_command(self.data_dir, self.port, persistent=True)
        # every write reaches the disk before Redis answers: a kill loses nothing
        return [("always" if part == "everysec" else part) for part in command]

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        try:
            await wait_until(answers, 10, "redis-server to answer")
        finally:
            client.close()

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[aioredis.Redis]:
        """A client for a while (one kept across a restart would hold dead connections)."""
        client = aioredis.Redis.from_url(self.url, decode_responses=True)
        try:
            yield client
        finally:
            await client.aclose()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last save; only what was fsynced survives."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
