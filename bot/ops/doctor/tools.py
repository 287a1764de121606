"""The tools: local functions import, connectors' credentials are set, MCP servers start."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.core.config import BotConfig
from bot.core.policy import Holds
from bot.errors import ConfigError
from bot.mistral.mcp_servers import SharedMCPClient, load_mcp_servers
from bot.mistral.server_tools import load_server_tools
from bot.mistral.tools import Tool, load_tools
from bot.ops.doctor.report import Check, failed, from_problem, ok


def check_functions(config: BotConfig, config_path: Path) -> tuple[list[Check], list[Tool]]:
    """Import every local function; each one that does not import is a failed check."""
    if not config.tools.functions:
        return [], []
    try:
        tools = load_tools(config, config_path)
    except ConfigError as error:
        return [from_problem("tools.functions", problem) for problem in error.problems], []
    names = ", ".join(tool.name for tool in tools)
    return [ok("tools.functions", f"{len(tools)} functions import: {names}")], tools


def check_credentials(config: BotConfig, config_path: Path) -> list[Check]:
    """The environment variables holding connectors' and MCP servers' credentials are set."""
    checks: list[Check] = []
    for load in (load_server_tools, load_mcp_servers):
        try:
            load(config, config_path)
        except ConfigError as error:
            checks += [from_problem("tools.credentials", problem) for problem in error.problems]
    return checks


async def check_mcp_servers(config: BotConfig, config_path: Path, holds: Holds) -> list[Check]:
    """Start each MCP server, list its tools (and those the policy holds), stop it."""
    try:
        servers = load_mcp_servers(config, config_path)
    except ConfigError:
        return []  # reported by check_credentials
    try:
        return list(await asyncio.gather(*(_check_server(s, holds) for s in servers.servers)))
    finally:
        await servers.aclose()


async def _check_server(server: SharedMCPClient, holds: Holds) -> Check:
    check = f"mcp {server.name}"
    if not await server.start():
        how = server.config.command or server.config.url
        return failed(
            check,
            f"does not start: {server.last_error}",
            f"check tools.mcp_servers {server.name} in bot.yml ({how}); run the command by hand "
            "to see its error, or check the URL and its headers",
        )
    try:
        tools = [tool.function.name for tool in await server.get_tools()]
    except Exception as error:  # any failure of a started server is its check's result
        return failed(
            check,
            f"started, but its tools could not be listed ({type(error).__name__}: {error})",
            "check the server's own log",
        )
    configuration = server.config.tool_configuration
    offered = [
        tool
        for tool in tools
        if (configuration.include is None or tool in configuration.include)
        and tool not in (configuration.exclude or ())
    ]
    held = [t for t in offered if t in configuration.requires_confirmation or holds(t)]
    return ok(
        check,
        f"{len(tools)} tools, {len(offered)} offered to the model; held for a decision: "
        f"{', '.join(held) or 'none'}",
    )
