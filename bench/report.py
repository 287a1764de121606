"""The results as a Markdown table, with each target and whether it was met."""

from __future__ import annotations

from typing import Any

#: Slack's deadline for an acknowledgement.
SLACK_DEADLINE_MS = 3000


def _check(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for every target of the benchmark."""
    burst = results["latency"]["200"]
    bot, floor = burst["bot"], burst["floor"]
    flow = results["throughput"]
    trips = results.get("ack_redis_round_trips")
    memory = results["memory"]
    besides = max(m["approval_key_bytes_besides_arguments"] for m in memory.values())
    return [
        (
            "200 clicks at once: every one acknowledged within 3 s",
            f"max {bot['max_ms']:.0f} ms, {bot['over_3s']} over 3 s, {bot['failed']} failed",
            bot["over_3s"] == 0 and bot["failed"] == 0,
        ),
        (
            "200 clicks at once: p99 <= 1.5 x the floor's p99",
            f"{bot['p99_ms']:.0f} ms vs {floor['p99_ms']:.0f} ms "
            f"({bot['p99_ms'] / floor['p99_ms']:.2f} x)",
            bot["p99_ms"] <= 1.5 * floor["p99_ms"],
        ),
        (
            "sustained decisions/s >= 1/2 of the floor's",
            f"{flow['decisions_per_s']:.0f}/s vs {flow['floor_per_s']:.0f}/s ({flow['ratio']:.2f})",
            flow["ratio"] is not None and flow["ratio"] >= 0.5,
        ),
        (
            "<= 3 Redis round trips from click to acknowledgement",
            "not measured"
            if trips is None
            else f"mean {trips['mean']}, max {trips['max']:.0f} ({trips['clicks']:.0f} clicks)",
            None if trips is None else trips["max"] <= 3,
        ),
        (
            "< 4 KB of Redis per pending approval besides its arguments",
            f"{besides} bytes (approval record, largest case)",
            besides < 4096,
        ),
    ]


def markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"{results['started']}; {machine['cpu']}, {machine['cores']} cores; "
        f"Python {machine['python']}; Redis {results['redis']}; {machine['platform']}.",
        "",
        "## Targets",
        "",
        "| Target | Measured | |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {measured} | {_check(ok)} |" for name, measured, ok in targets(results)]
    lines += [
        "",
        "## Click to acknowledgement",
        "",
        "| Clicks at once | Bot p50 | p95 | p99 | max | Floor p50 | p95 | p99 | failed |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for concurrency, row in results["latency"].items():
        bot, floor = row["bot"], row["floor"]
        lines.append(
            f"| {concurrency} (n={bot['n']}) | {bot['p50_ms']} ms | {bot['p95_ms']} ms | "
            f"{bot['p99_ms']} ms | {bot['max_ms']} ms | {floor['p50_ms']} ms | "
            f"{floor['p95_ms']} ms | {floor['p99_ms']} ms | {bot['failed']} |"
        )
    flow = results["throughput"]
    lines += [
        "",
        f"## Throughput ({flow['cycles']} cycles, {flow['concurrency']} clicks in flight)",
        "",
        "| Measure | Value |",
        "|---|---:|",
        f"| Decisions/s (clicks acknowledged) | {flow['decisions_per_s']} |",
        f"| Floor requests/s, same clicks | {flow['floor_per_s']} |",
        f"| Bot / floor | {flow['ratio']} |",
        f"| Full approval cycles/s | {flow['cycles_per_s']} |",
        f"| Cards posted/s (message to card) | {flow['cards_per_s']} |",
        f"| Redis commands per cycle | {flow['redis_commands_per_cycle']} |",
        "",
        "Redis commands per cycle, most frequent: "
        + ", ".join(f"{k} {v}" for k, v in flow["redis_top_commands_per_cycle"].items())
        + ".",
        "",
        "## Redis memory per pending approval",
        "",
        "| Arguments | Argument bytes | Approval record | Record besides arguments "
        "| All keys per request (audit, thread, indexes) |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, row in results["memory"].items():
        lines.append(
            f"| {label} | {row['arguments_bytes']} | {row['approval_key_bytes']} | "
            f"{row['approval_key_bytes_besides_arguments']} | "
            f"{row['all_keys_per_request']} |"
        )
    scale = results["at_scale"]
    lines += [
        "",
        f"## With {scale['pending']} pending approvals",
        "",
        "| Measure | Median | Max |",
        "|---|---:|---:|",
        f"| `/approvals pending` (command to reply) | {scale['approvals_pending_s']['median']} s "
        f"| {scale['approvals_pending_s']['max']} s |",
        f"| App Home (opened to published) | {scale['app_home_s']['median']} s "
        f"| {scale['app_home_s']['max']} s |",
        "",
        f"One sweep with nothing due: {scale['sweep_nothing_due_s']} s. One sweep with every "
        f"request past its expiry: {scale['sweep_expired']} expired in "
        f"{scale['sweep_expiring_s']} s ({scale['sweep_expired_per_s']}/s; the rest wait for "
        "the next sweep).",
        "",
    ]
    return "\n".join(lines)
