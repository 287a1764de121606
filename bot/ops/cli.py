"""``approval-bot``: the operator's commands."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot.core.config import BotConfig, load_config
from bot.errors import ConfigError
from bot.logs import configure_logging
from bot.mistral.mcp_servers import load_mcp_servers
from bot.mistral.run_context import check_sdk
from bot.mistral.server_tools import load_server_tools
from bot.mistral.tools import Tool, load_tools
from bot.ops import audit_cli, policy_cli
from bot.ops.doctor import render_json, render_table, run_doctor
from bot.ops.services import Services, open_services
from bot.ops.settings import Mode, Settings, load_api_clients, load_settings

logger = logging.getLogger("bot")

EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="approval-bot",
        description="A Slack bot that asks people before an AI agent acts.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="HTTP mode: serve POST /slack/events on $PORT")
    commands.add_parser("socket", help="Socket Mode: connect out to Slack (needs SLACK_APP_TOKEN)")
    commands.add_parser(
        "worker",
        help="run queued work (conversations, resumes) and sweeps, for `serve` processes with "
        "RUN_JOBS=false; serves /healthz, /readyz and /metrics on $PORT",
    )
    check = commands.add_parser("check", help="validate the config file and its tools, then exit")
    check.add_argument("file", nargs="?", type=Path, help="config file (default: $BOT_CONFIG)")
    doctor = commands.add_parser(
        "doctor",
        help="check, online, everything the bot depends on (Slack, Mistral, tools, Redis); "
        "exit 0 unless a check failed",
    )
    doctor.add_argument("file", nargs="?", type=Path, help="config file (default: $BOT_CONFIG)")
    doctor.add_argument(
        "--json", action="store_true", help='print [{"check", "status", "detail", "fix"}, …]'
    )
    policy_cli.add_parser(commands)
    audit_cli.add_parser(commands)
    return parser


def load(mode: Mode, config_file: Path | None = None) -> tuple[Settings, BotConfig, list[Tool]]:
    """Settings, config and tools; ConfigError lists every problem."""
    settings = load_settings(mode)
    check_sdk()
    path = config_file or settings.bot_config
    config = load_config(path)
    tools = load_tools(config, path)
    load_server_tools(config, path)  # a missing credential stops start-up here
    load_api_clients(config, path)  # so does an API client's missing key
    load_mcp_servers(config, path)
    return settings, config, tools


def _configure_logging(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format, settings.secrets)


async def _serve(
    settings: Settings, config: BotConfig, tools: list[Tool], *, worker: bool = False
) -> None:
    from bot.ops.http_server import build_web_app

    app = build_web_app(
        lambda: open_services(
            settings, config, tools, start_background=worker or settings.run_jobs
        ),
        answer_slack=not worker,
    )
    # no access log: a line per request costs more than the request (see the metrics)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "0.0.0.0", settings.port)
    await site.start()
    routes = (
        "/healthz, /readyz and /metrics"
        if worker
        else "POST /slack/events, /healthz, /readyz and /metrics"
    )
    work = "runs queued work" if worker or settings.run_jobs else "leaves queued work to workers"
    logger.info("serving %s on port %d; %s", routes, settings.port, work)
    try:
        await _until_signalled()
    finally:
        logger.info("shutting down: finishing work in flight")
        await runner.cleanup()


async def connect_socket_mode(services: Services) -> AsyncSocketModeHandler:
    """Connect the bot to Slack over Socket Mode (the Web API client opens the connection)."""
    handler = AsyncSocketModeHandler(services.bolt, services.settings.slack_app_token)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    return handler


async def _socket(settings: Settings, config: BotConfig, tools: list[Tool]) -> None:
    async with open_services(settings, config, tools, verify_requests=False) as services:
        handler = await connect_socket_mode(services)
        logger.info("connected to Slack over Socket Mode")
        try:
            await _until_signalled()
        finally:
            await handler.close_async()  # type: ignore[no-untyped-call]


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    await stop.wait()


def _policy(args: argparse.Namespace) -> int:
    try:
        return policy_cli.run(args, load)
    except ConfigError as error:
        print(error.render(), file=sys.stderr)
        return EXIT_CONFIG


def _audit(args: argparse.Namespace) -> int:
    try:
        return audit_cli.run(args, lambda: load_settings("check"))
    except ConfigError as error:
        print(error.render(), file=sys.stderr)
        return EXIT_CONFIG


def _doctor(args: argparse.Namespace) -> int:
    """Exit 0 when no check failed (warnings allowed), 1 when one did, 2 for a config error."""
    try:
        settings = load_settings("check")  # a missing token is one of the checks
        path = args.file or settings.bot_config
        config = load_config(path)
    except ConfigError as error:
        print(error.render(), file=sys.stderr)
        return EXIT_CONFIG
    _configure_logging(settings)
    report = asyncio.run(run_doctor(settings, config, path))
    print(render_json(report.checks) if args.json else render_table(report))
    return report.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` names (default: the process's arguments); the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "doctor":
        return _doctor(args)
    if args.command == "policy":
        return _policy(args)
    if args.command == "audit":
        return _audit(args)
    mode: Mode = args.command
    try:
        settings, config, tools = load(mode, getattr(args, "file", None))
    except ConfigError as error:
        print(error.render(), file=sys.stderr)
        return EXIT_CONFIG
    # the API clients' keys are masked in every log line too (none is logged on purpose)
    path = getattr(args, "file", None) or settings.bot_config
    client_keys = [client.key for client in load_api_clients(config, path)]
    configure_logging(settings.log_level, settings.log_format, [*settings.secrets, *client_keys])
    if mode == "check":
        names = ", ".join(tool.name for tool in tools) or "none"
        print(f"{settings.bot_config if args.file is None else args.file}: OK (tools: {names})")
        return 0
    try:
        if mode == "socket":
            asyncio.run(_socket(settings, config, tools))
        else:
            asyncio.run(_serve(settings, config, tools, worker=mode == "worker"))
    except ConfigError as error:
        print(error.render(), file=sys.stderr)
        return EXIT_CONFIG
    return 0


if __name__ == "__main__":
    sys.exit(main())
