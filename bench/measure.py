"""Measurements over a running :class:`bench.stack.Stack`: cards created through the real
flow, clicks sent from the load process, and what Redis says about itself."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.stack import APPROVALS, DM, MANAGER, REQUESTER, Stack, cards
from bot.slack import blocks
from bot.storage import keys
from tests.helpers import all_text, button_block
from tests.processes import ROOT, wait_until
from tests.slack_sender import button_actions


@dataclass
class Load:
    """What the load process saw."""

    latencies_ms: list[float]
    statuses: dict[str, int]
    elapsed_s: float

    @property
    def per_second(self) -> float:
        return len(self.latencies_ms) / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def failed(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != "200")


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile ``p`` (0-100) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


def summary(load: Load) -> dict[str, Any]:
    values = load.latencies_ms
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50), 2),
        "p95_ms": round(percentile(values, 95), 2),
        "p99_ms": round(percentile(values, 99), 2),
        "max_ms": round(max(values), 2) if values else None,
        "per_s": round(load.per_second, 1),
        "failed": load.failed,
        "over_3s": sum(1 for v in values if v >= 3000),
    }


async def run_load(url: str, bodies: list[str], concurrency: int, *, warm: bool = True) -> Load:
    """Send ``bodies`` (form-encoded interactions) from the load process."""
    with tempfile.TemporaryDirectory() as scratch:
        spec, out = Path(scratch) / "spec.json", Path(scratch) / "out.json"
        spec.write_text(
            json.dumps(
                {
                    "url": url + "/slack/events",
                    "secret": _secret(),
                    "concurrency": concurrency,
                    "warm": warm,
                    "requests": [
                        {"body": b, "content_type": "application/x-www-form-urlencoded"}
                        for b in bodies
                    ],
                }
            )
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.load", str(spec), str(out), cwd=ROOT
        )
        if await process.wait() != 0:
            raise RuntimeError("the load process failed")
        result = json.loads(out.read_text())
    return Load(result["latencies_ms"], result["statuses"], result["elapsed_s"])


def _secret() -> str:
    from bench.stack import SIGNING_SECRET

    return SIGNING_SECRET


async def create_pending(
    stack: Stack, count: int, notes_bytes: int = 0, concurrency: int = 32
) -> list[dict[str, Any]]:
    """``count`` requests through the real flow (a DM each, the model asks for a tool that
    needs approval); returns their cards once all are posted."""
    _, since = cards(stack.slack)
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await stack.send.message(f"book {notes_bytes}", user=REQUESTER, channel=DM)

    await asyncio.gather(*(one() for _ in range(count)))
    await wait_until(
        lambda: len(cards(stack.slack, since)[0]) >= count,
        60 + count / 10,
        f"{count} cards",
    )
    return cards(stack.slack, since)[0][:count]


def approve_body(card: dict[str, Any]) -> str:
    """The signed-to-be body of a click on the card's Approve button, as Slack sends it."""
    value = card_id(card)
    payload = {
        **button_actions(
            blocks.APPROVE, value, user=MANAGER, block_id=button_block(card, blocks.APPROVE)
        ),
        "container": {"type": "message", "message_ts": card["ts"], "channel_id": APPROVALS},
        "channel": {"id": APPROVALS},
        "message": {"ts": card["ts"], "type": "message"},
    }
    return urlencode({"payload": json.dumps(payload)})


def card_id(card: dict[str, Any]) -> str:
    for block in card.get("blocks", []):
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == blocks.APPROVE:
                return str(element["value"])
    raise AssertionError("a card without an Approve button")


async def wait_resumed(stack: Stack, ids: list[str], timeout: float = 300.0) -> None:
    """Until every request's conversation was resumed and answered (resume done)."""

    async def done() -> bool:
        async with stack.redis.pipeline(transaction=False) as pipe:
            for approval_id in ids:
                pipe.hget(keys.approval(approval_id), "resume")
            states = await pipe.execute()
        return all(state == "done" for state in states)

    try:
        await wait_until(done, timeout, f"{len(ids)} conversations resumed")
    except AssertionError:
        states = [await stack.redis.hget(keys.approval(i), "resume") for i in ids]
        counts = {s: states.count(s) for s in set(states)}
        stuck = [i for i, s in zip(ids, states, strict=True) if s != "done"][:5]
        raise AssertionError(f"resume states: {counts}; e.g. {stuck}") from None


def answers(stack: Stack) -> int:
    """The agent's answers ("Done: ...") posted to the requester."""
    return sum(
        1
        for (channel, _), message in list(stack.slack.messages.items())
        if channel == DM and "Done: Booked" in all_text(message)
    )


async def command_stats(stack: Stack) -> dict[str, int]:
    """Calls per Redis command so far (``INFO commandstats``)."""
    info = await stack.redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in info.items()}


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


async def keys_memory(stack: Stack) -> int:
    """The bytes every key takes (``MEMORY USAGE`` of each, summed; not the allocator's
    totals, which move with fragmentation)."""
    total = 0
    batch: list[str] = []
    async for key in stack.redis.scan_iter(count=1000):
        batch.append(key)
        if len(batch) == 500:
            total += await _usage(stack, batch)
            batch = []
    return total + (await _usage(stack, batch) if batch else 0)


async def _usage(stack: Stack, names: list[str]) -> int:
    async with stack.redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.memory_usage(name, samples=0)
        return sum(int(n or 0) for n in await pipe.execute())


async def memory_usage(stack: Stack, approval_id: str) -> int:
    used = await stack.redis.memory_usage(keys.approval(approval_id), samples=0)
    return int(used or 0)


async def timed(what: Any) -> float:
    started = time.perf_counter()
    await what
    return time.perf_counter() - started
