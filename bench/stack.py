"""What the benchmark runs: a Redis server, the Slack and Mistral stand-ins, one bot process
(``python -m bot serve``, HTTP mode) and the floor process, all on loopback.

The stand-ins run in the benchmark's own process and answer at once; the bot and the floor
are processes of their own, and the load comes from a third (``bench.load``).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from bot.storage.embedded_redis import free_port, redis_server_command
from tests.processes import ROOT, BotProcess, Fleet, RedisProcess, wait_until
from tests.slack_sender import SlackSender
from tests.standins.mistral import Entry, MistralStandIn, ModelTurn, function_call, message
from tests.standins.slack import SlackStandIn

SIGNING_SECRET = "bench-signing-secret"
APPROVALS = "C0APPROVALS"
REQUESTER = "UREQ"
MANAGER = "UMANAGER"
DM = "D0DM"

CONFIG = f"""\
model: mistral-medium-latest
instructions: You are a travel assistant.
approvals:
  channel: {APPROVALS}
  allow_self_approval: false
tools:
  functions:
    - ref: bench.tools:book_flight
      requires_confirmation: true
"""

_BOOK = re.compile(r"^book (\d+)$")


def script(turn: ModelTurn) -> list[Entry]:
    """The model: "book N" asks for ``book_flight`` with N bytes of notes; a tool's result
    (or a refusal) gets "Done: ..." back."""
    results = turn.function_results()
    if results:
        return [message("Done: " + "; ".join(str(r.get("result", "")) for r in results))]
    match = _BOOK.match(turn.last_user_text() or "")
    if match is None:
        return [message("You said: " + (turn.last_user_text() or ""))]
    arguments = {"destination": "Rodez", "date": "2026-12-01", "notes": "n" * int(match[1])}
    return [function_call("book_flight", arguments)]


class BenchRedis(RedisProcess):
    """A Redis as production runs it: append-only file, fsync every second."""

    def command(self) -> list[str]:
        return redis_server_command(self.data_dir, self.port, persistent=True)


@dataclass
class Stack:
    directory: Path
    redis_url: str
    redis: aioredis.Redis
    slack: SlackStandIn
    mistral: MistralStandIn
    bot: BotProcess
    floor_url: str
    send: SlackSender

    async def metrics(self) -> str:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.bot.url + "/metrics") as response,
        ):
            return await response.text() if response.status == 200 else ""


@asynccontextmanager
async def running(directory: Path, *, workers: int = 1) -> AsyncIterator[Stack]:
    """Start everything; stop everything when the block ends. ``workers``: processes that
    run the queued work (``approval-bot worker``) while the bot process only answers Slack;
    0: the bot process does everything."""
    directory.mkdir(parents=True, exist_ok=True)
    server = BenchRedis(directory / "redis")
    await server.start()
    floor: subprocess.Popen[bytes] | None = None
    fleet: Fleet | None = None
    try:
        client = aioredis.Redis.from_url(server.url, decode_responses=True)
        async with SlackStandIn() as slack, MistralStandIn(script) as mistral:
            slack.members[APPROVALS] = [MANAGER]
            config = directory / "bot.yml"
            config.write_text(CONFIG)
            bots = directory / "bot"
            bots.mkdir(exist_ok=True)
            environment = {
                "SLACK_BOT_TOKEN": slack.token,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SLACK_API_URL": slack.api_url,
                "MISTRAL_API_KEY": "bench-key",
                "MISTRAL_SERVER_URL": mistral.url,
                "REDIS_URL": server.url,
                "BOT_CONFIG": str(config),
                # the benchmark sweeps itself, when it measures a sweep
                "SWEEP_INTERVAL_S": "3600",
                "RUN_JOBS": "false" if workers else "true",
                # the stand-in answers at once and limits no rate: the benchmark measures the
                # bot's clicks, not Slack's one post a second per channel
                "SLACK_POSTS_PER_S": "1000",
            }
            fleet = Fleet(bots, environment, SIGNING_SECRET, slack)
            bot = await fleet.start("bench")
            for number in range(workers):
                await fleet.start(f"worker-{number}", "worker")
            floor_port = free_port()
            with (directory / "floor.log").open("ab") as log:
                floor = subprocess.Popen(
                    [sys.executable, "-m", "bench.floor", str(floor_port), server.url,
                     SIGNING_SECRET],
                    cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
            floor_url = f"http://127.0.0.1:{floor_port}"
            await wait_until(lambda: _answers(floor_url), 20, "the floor to answer")
            yield Stack(directory, server.url, client, slack, mistral, bot, floor_url, bot.send)
            await client.aclose()
    finally:
        if floor is not None:
            floor.terminate()
            floor.wait(timeout=10)
        if fleet is not None:
            await asyncio.gather(*(b.stop() for b in fleet.bots))
        server.stop()


async def _answers(url: str) -> bool:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(url + "/healthz") as response,
        ):
            return response.status == 200
    except aiohttp.ClientError:
        return False


def cards(slack: SlackStandIn, since: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Approval cards posted from call ``since`` on (with their ``ts``), and the next index."""
    found = []
    calls = slack.calls
    for call in calls[since:]:
        if call.method == "chat.postMessage" and call.args.get("channel") == APPROVALS:
            if call.args.get("blocks") and call.ok:
                found.append({**call.args, "ts": call.response["ts"]})
    return found, len(calls)
