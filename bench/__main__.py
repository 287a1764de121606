"""``python -m bench``: the benchmark. Writes ``results.json`` and ``results.md``.

Phases, each against the same bot process and, where it applies, the floor:

1. click-to-acknowledgement latency with 1 (one after another), 50 and 200 clicks arriving
   at once on distinct cards;
2. sustained throughput: N full approval cycles (message -> card -> click -> resumed
   conversation -> answer posted -> card updated), clicks sent 50 at a time; Redis
   commands per cycle from ``INFO commandstats``;
3. Redis bytes per pending approval with small and 10 KB arguments;
4. with 10 000 pending approvals: ``/approvals pending``, the App Home, one expiry sweep.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import measure
from bench.measure import Load, approve_body, card_id, create_pending, run_load, summary
from bench.report import markdown
from bench.stack import APPROVALS, MANAGER, Stack, running
from bot.core.approval import new_approval_id
from bot.core.config import load_config
from bot.mistral.tools import load_tools
from bot.ops.services import open_services
from bot.ops.settings import Settings
from bot.storage import keys
from bot.storage.store import Store
from tests.processes import wait_until

TEN_KB = 10 * 1024


async def latency(stack: Stack, concurrency: int, rounds: int) -> dict[str, Any]:
    """Bursts of ``concurrency`` clicks on distinct cards (one after another when 1)."""
    bot: list[Load] = []
    floor: list[Load] = []
    for _ in range(rounds):
        count = concurrency if concurrency > 1 else 30
        found = await create_pending(stack, count)
        bodies = [approve_body(card) for card in found]
        bot.append(await run_load(stack.bot.url, bodies, concurrency))
        print(f"  bot: {summary(bot[-1])}", file=sys.stderr)
        await measure.wait_resumed(stack, [card_id(c) for c in found])
        floor.append(await run_load(stack.floor_url, bodies, concurrency))
    return {"bot": summary(_joined(bot)), "floor": summary(_joined(floor))}


def _joined(loads: list[Load]) -> Load:
    statuses: dict[str, int] = {}
    for load in loads:
        for status, n in load.statuses.items():
            statuses[status] = statuses.get(status, 0) + n
    return Load(
        [v for load in loads for v in load.latencies_ms],
        statuses,
        sum(load.elapsed_s for load in loads),
    )


async def throughput(stack: Stack, cycles: int, concurrency: int = 50) -> dict[str, Any]:
    """``cycles`` full approval cycles; decisions/s of the click phase; the floor's rate
    with the same clicks; Redis commands per cycle."""
    before = await measure.command_stats(stack)
    answered = measure.answers(stack)
    started = time.perf_counter()
    found = await create_pending(stack, cycles, concurrency=concurrency)
    carded = time.perf_counter()
    bodies = [approve_body(card) for card in found]
    clicks = await run_load(stack.bot.url, bodies, concurrency)
    # waits on the stand-in, so that the benchmark adds no Redis commands of its own
    await wait_until(
        lambda: measure.answers(stack) >= answered + cycles, 600, f"{cycles} answers posted"
    )
    finished = time.perf_counter()
    after = await measure.command_stats(stack)
    await measure.wait_resumed(stack, [card_id(card) for card in found])
    floor = await run_load(stack.floor_url, bodies, concurrency)
    commands = measure.delta(after, before)
    total = sum(commands.values())
    top = sorted(commands.items(), key=lambda kv: -kv[1])[:12]
    return {
        "cycles": cycles,
        "concurrency": concurrency,
        "cards_per_s": round(cycles / (carded - started), 1),
        "decisions_per_s": round(clicks.per_second, 1),
        "click_latency": summary(clicks),
        "cycles_per_s": round(cycles / (finished - started), 1),
        "floor_per_s": round(floor.per_second, 1),
        "ratio": round(clicks.per_second / floor.per_second, 3) if floor.per_second else None,
        "redis_commands_per_cycle": round(total / cycles, 1),
        "redis_top_commands_per_cycle": {k: round(v / cycles, 2) for k, v in top},
    }


async def memory(stack: Stack, count: int = 100) -> dict[str, Any]:
    """Redis bytes per pending approval, with small and with 10 KB arguments."""
    results: dict[str, Any] = {}
    for label, notes in (("small", 0), ("10kb", TEN_KB)):
        used_before = await measure.keys_memory(stack)
        found = await create_pending(stack, count, notes)
        used_after = await measure.keys_memory(stack)
        ids = [card_id(card) for card in found]
        usage = [await measure.memory_usage(stack, i) for i in ids]
        arguments = len(json.dumps({"destination": "Rodez", "date": "2026-12-01", "notes": ""}))
        arguments += notes
        record = sum(usage) / len(usage)
        results[label] = {
            "arguments_bytes": arguments,
            "approval_key_bytes": round(record),
            "approval_key_bytes_besides_arguments": round(record - arguments),
            "all_keys_per_request": round((used_after - used_before) / count),
            "all_keys_besides_arguments": round((used_after - used_before) / count - arguments),
        }
    return results


async def ten_thousand(stack: Stack, pending: int, repeats: int = 5) -> dict[str, Any]:
    """Top pending up to ``pending`` with copies of a real request, then time the views."""
    template_card = (await create_pending(stack, 1))[0]
    store = Store(stack.redis)
    template = await store.get_approval(card_id(template_card))
    missing = pending - await store.pending_count()
    for start in range(0, missing, 50):
        await asyncio.gather(
            *(
                store.create_approval(dataclasses.replace(template, id=new_approval_id()))
                for _ in range(min(50, missing - start))
            )
        )
    total = await store.pending_count()

    command_s = []
    for _ in range(repeats):
        url = stack.slack.new_response_url()
        token = url.rsplit("/", 1)[1]
        started = time.perf_counter()
        reply = await stack.send.command(
            "/approvals", "pending", user=MANAGER, channel=APPROVALS, response_url=url
        )
        assert reply.status == 200, reply
        await stack.slack.wait_for_response(lambda r, t=token: r["response_token"] == t, 60)
        command_s.append(time.perf_counter() - started)

    home_s = []
    for _ in range(repeats):
        published = stack.slack.count("views.publish")
        started = time.perf_counter()
        await stack.send.home_opened(MANAGER)
        await wait_until(
            lambda p=published: stack.slack.count("views.publish") > p, 60, "the App Home"
        )
        home_s.append(time.perf_counter() - started)

    sweeps = await _sweep(stack)
    return {
        "pending": total,
        "approvals_pending_s": _seconds(command_s),
        "app_home_s": _seconds(home_s),
        **sweeps,
    }


async def _sweep(stack: Stack) -> dict[str, Any]:
    """One sweep with nothing due, then one with every request past its expiry (a sweep
    expires up to its batch; the rest wait for the next), run by the bot's own Sweeper."""
    config_path = stack.directory / "bot.yml"
    config = load_config(config_path)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        slack_bot_token=stack.slack.token,
        slack_signing_secret="unused",
        slack_api_url=stack.slack.api_url,
        mistral_api_key="bench-key",
        mistral_server_url=stack.mistral.url,
        redis_url=stack.redis_url,
        bot_config=config_path,
        # each expiry updates its card: unpaced, as the stand-in limits no rate
        slack_posts_per_s=1000.0,
    )
    tools = load_tools(config, config_path)
    async with open_services(settings, config, tools, start_background=False) as services:
        started = time.perf_counter()
        idle = await services.sweeper.sweep()
        idle_s = time.perf_counter() - started
        due = await stack.redis.zrange(keys.EXPIRING_ZSET, 0, -1)
        past = time.time() - 1
        for start in range(0, len(due), 1000):
            await stack.redis.zadd(
                keys.EXPIRING_ZSET, dict.fromkeys(due[start : start + 1000], past)
            )
        started = time.perf_counter()
        swept = await services.sweeper.sweep()
        busy_s = time.perf_counter() - started
    return {
        "sweep_nothing_due_s": round(idle_s, 4),
        "sweep_expiring_s": round(busy_s, 3),
        "sweep_expired": len(swept.expired),
        "sweep_expired_per_s": round(len(swept.expired) / busy_s, 1) if busy_s else None,
        "sweep_locked": idle.locked or swept.locked,
    }


def _seconds(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": round(ordered[len(ordered) // 2], 4), "max": round(ordered[-1], 4)}


def round_trips(metrics: str, kind: str = "block_actions") -> dict[str, float] | None:
    """Redis round trips before the acknowledgement of ``kind`` requests, from the bot's
    own histogram (``approval_bot_ack_redis_round_trips``)."""
    label = f'kind="{kind}"'
    found: dict[str, float] = {}
    buckets: list[tuple[float, float]] = []
    for line in metrics.splitlines():
        if not line.startswith("approval_bot_ack_redis_round_trips") or label not in line:
            continue
        name, value = line.rsplit(" ", 1)
        if name.startswith("approval_bot_ack_redis_round_trips_bucket"):
            le = re.search(r'le="([^"]+)"', name)
            if le is not None:
                buckets.append((float(le[1]), float(value)))
        elif name.startswith("approval_bot_ack_redis_round_trips_sum"):
            found["sum"] = float(value)
        elif name.startswith("approval_bot_ack_redis_round_trips_count"):
            found["count"] = float(value)
    if "count" not in found or not found["count"]:
        return None
    most = min(le for le, n in buckets if n >= found["count"])
    return {
        "clicks": found["count"],
        "mean": round(found["sum"] / found["count"], 2),
        "max": most,
    }


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


class Profiler:
    """py-spy sampling the bot process while a phase runs (``--profile``)."""

    def __init__(self, pid: int, out: Path) -> None:
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid),
             "--format", "raw", "--rate", "200", "--output", str(out), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "machine": machine(),
        "started": time.strftime("%Y-%m-%d %H:%M"),
        "workers": args.workers,
    }
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    if True:
        async with running(work, workers=args.workers) as stack:
            try:
                await _phases(stack, args, results, out)
            except BaseException:
                print(f"bot log (end):\n{stack.bot.log()[-6000:]}", file=sys.stderr)
                raise
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(markdown(results))
    return results


async def _phases(
    stack: Stack, args: argparse.Namespace, results: dict[str, Any], out: Path
) -> None:
    if True:
        if True:
            results["redis"] = (await stack.redis.info("server"))["redis_version"]
            warm = await create_pending(stack, 5)
            await run_load(stack.bot.url, [approve_body(c) for c in warm], 5)
            await measure.wait_resumed(stack, [card_id(c) for c in warm])

            profiler = Profiler(stack.bot.pid, out / "profile.txt") if args.profile else None
            results["latency"] = {}
            for concurrency, rounds in ((1, 1), (50, args.rounds), (200, args.rounds)):
                print(f"latency: {concurrency} at once", file=sys.stderr)
                results["latency"][str(concurrency)] = await latency(stack, concurrency, rounds)
            print(f"throughput: {args.cycles} cycles", file=sys.stderr)
            results["throughput"] = await throughput(stack, args.cycles)
            if profiler is not None:
                profiler.stop()
            results["ack_redis_round_trips"] = round_trips(await stack.metrics())
            print("memory", file=sys.stderr)
            results["memory"] = await memory(stack)
            print(f"{args.pending} pending", file=sys.stderr)
            results["at_scale"] = await ten_thousand(stack, args.pending)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--out", default="bench/results", help="where results go")
    parser.add_argument("--cycles", type=int, default=1000, help="approval cycles (phase 2)")
    parser.add_argument("--rounds", type=int, default=2, help="bursts of 50 and of 200")
    parser.add_argument("--pending", type=int, default=10_000, help="pending approvals (4)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes beside the bot process (0: the bot process does everything)",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the bot (phases 1-2)")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    print(markdown(results))


if __name__ == "__main__":
    main()
