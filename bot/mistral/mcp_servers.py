"""MCP servers: started once per process, lent to every run, restarted when they die.

The SDK's ``RunContext.register_mcp_client`` initializes a client on the run's exit stack
and closes it when the run ends, which would start a server process per message. A
:class:`SharedMCPClient` keeps one session instead: a dedicated task opens it (the MCP
client's task groups must be closed by the task that opened them) and holds it until the
server dies or the bot shuts down; runs borrow it, and its ``aclose`` is a no-op.

A server that fails to start is logged with its name and the reason, and retried at most
every ``RETRY_START_S``; the bot meanwhile serves every other tool.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Final

from mcp import StdioServerParameters
from mcp.client.stdio import get_default_environment
from mcp.shared.exceptions import MCPError
from mcp.types import ListPromptsResult
from mistralai.client.models import FunctionTool, TextChunkTypedDict
from mistralai.extra.mcp.base import MCPClientBase, MCPSystemPrompt
from mistralai.extra.mcp.sse import MCPClientSSE, SSEServerParams
from mistralai.extra.mcp.stdio import MCPClientSTDIO
from mistralai.extra.mcp.streamable_http import (
    MCPClientStreamableHTTP,
    StreamableHTTPServerParams,
)

from bot.core.config import BotConfig, MCPServerConfig, describe, read_yaml
from bot.errors import ConfigError
from bot.mistral.tools import claim_call, run_once

logger = logging.getLogger(__name__)

START_TIMEOUT_S: Final = 30.0
RETRY_START_S: Final = 60.0


class MCPServerDown(RuntimeError):
    """The server is not running (it failed to start, or died)."""


class SharedMCPClient:
    """One MCP server's session for the whole process (the SDK's ``MCPClientProtocol``)."""

    def __init__(self, config: MCPServerConfig, headers: Mapping[str, str]) -> None:
        self.config = config
        self.name = config.name
        self._name = config.name  # the SDK's MCPClientProtocol names clients by this
        self._headers = dict(headers)
        self._client: MCPClientBase | None = None
        self._owner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()
        self._failed_at: float | None = None
        self.last_error: str | None = None

    def _new_client(self) -> MCPClientBase:
        config = self.config
        if config.command is not None:
            env = {**get_default_environment(), **config.env}
            params = StdioServerParameters(command=config.command, args=config.args, env=env)
            return MCPClientSTDIO(params, name=config.name)
        assert config.url is not None
        if config.transport == "sse":
            return MCPClientSSE(SSEServerParams(url=config.url, headers=self._headers), config.name)
        return MCPClientStreamableHTTP(
            StreamableHTTPServerParams(url=config.url, headers=self._headers), config.name
        )

    @property
    def running(self) -> bool:
        return self._client is not None and self._owner is not None and not self._owner.done()

    async def start(self) -> bool:
        """Start the server if it is not running; False if it cannot be started now."""
        async with self._lock:
            if self.running:
                return True
            if self._failed_at is not None and time.monotonic() - self._failed_at < RETRY_START_S:
                return False
            ready: asyncio.Future[MCPClientBase] = asyncio.get_running_loop().create_future()
            self._stop = asyncio.Event()
            self._owner = asyncio.create_task(self._own(ready), name=f"mcp {self.name}")
            try:
                self._client = await asyncio.wait_for(asyncio.shield(ready), START_TIMEOUT_S)
            except Exception as error:  # any failure to start: report it, serve the rest
                self._failed(error)
                self._stop.set()
                return False
            self._failed_at = None
            self.last_error = None
            logger.info("MCP server %s started", self.name)
            return True

    def _failed(self, error: BaseException) -> None:
        self._client = None
        self._failed_at = time.monotonic()
        self.last_error = f"{type(error).__name__}: {error}"
        logger.error(
            "MCP server %s could not start (%s); its tools are unavailable, retrying in %.0f s",
            self.name,
            self.last_error,
            RETRY_START_S,
        )

    async def _own(self, ready: asyncio.Future[MCPClientBase]) -> None:
        """Open the session, hold it until told to stop, close it (all in this one task)."""
        client = self._new_client()
        async with AsyncExitStack() as stack:
            try:
                await client.initialize(exit_stack=stack)
            except BaseException as error:
                if not ready.done():
                    ready.set_exception(error)
                if not isinstance(error, Exception):
                    raise
                return
            ready.set_result(client)
            await self._stop.wait()

    async def _drop(self, error: BaseException) -> None:
        """The server stopped answering: close what is left; the next run restarts it."""
        logger.warning(
            "MCP server %s stopped answering (%s: %s); it restarts on the next run",
            self.name,
            type(error).__name__,
            error,
        )
        await self.shutdown()

    def _session(self) -> MCPClientBase:
        if self._client is None or not self.running:
            raise MCPServerDown(f"MCP server {self.name} is not running")
        return self._client

    # -- MCPClientProtocol -------------------------------------------------------------------
    async def initialize(self, exit_stack: AsyncExitStack | None = None) -> None:
        """Called by each run: the shared session must already be up (see ``start``)."""
        self._session()

    async def aclose(self) -> None:
        """Called when each run ends: the server stays up for the next one."""

    async def live_tools(self) -> list[FunctionTool]:
        """The server's tools; a server that died is restarted once, here."""
        try:
            return await self.get_tools()
        except Exception as error:  # whatever broke, a fresh process is the way back
            await self._drop(error)
        if not await self.start():
            raise MCPServerDown(f"MCP server {self.name} could not be restarted")
        return await self.get_tools()

    async def get_tools(self) -> list[FunctionTool]:
        client = self._session()
        try:
            return await client.get_tools()
        except MCPError:
            raise
        except Exception as error:
            await self._drop(error)
            raise

    async def execute_tool(self, name: str, arguments: dict[str, Any]) -> list[TextChunkTypedDict]:
        client = self._session()

        async def execute() -> Any:
            try:
                return await client.execute_tool(name, arguments)
            except MCPError:
                raise
            except Exception as error:
                await self._drop(error)
                raise

        # an approved call that ran before (a retried resume) is not sent again; the stored
        # result comes back as the text the SDK would have made of the chunks
        claim = claim_call(name, arguments)
        result = await run_once(claim, name, execute)
        if isinstance(result, str):
            try:
                chunks = json.loads(result)
            except ValueError:
                chunks = None
            if not isinstance(chunks, list):
                chunks = [{"type": "text", "text": result}]
        else:
            chunks = list(result)
        note = claim.note if claim else None
        return [{"type": "text", "text": note}, *chunks] if note else chunks

    async def get_system_prompt(self, name: str, arguments: dict[str, Any]) -> MCPSystemPrompt:
        return await self._session().get_system_prompt(name, arguments)

    async def list_system_prompts(self) -> ListPromptsResult:
        return await self._session().list_system_prompts()

    async def shutdown(self) -> None:
        """Close the session and stop the server process."""
        self._stop.set()
        owner, self._owner, self._client = self._owner, None, None
        if owner is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(owner, 10)


class MCPServers:
    """Every configured MCP server."""

    def __init__(self, servers: Sequence[SharedMCPClient]) -> None:
        self.servers = tuple(servers)

    async def start_all(self) -> None:
        await asyncio.gather(*(server.start() for server in self.servers))

    async def available(self) -> list[SharedMCPClient]:
        """The servers that are up (starting those that may be retried)."""
        return [server for server in self.servers if await server.start()]

    async def aclose(self) -> None:
        await asyncio.gather(*(server.shutdown() for server in self.servers))


def load_mcp_servers(
    config: BotConfig, config_path: Path, environ: Mapping[str, str] | None = None
) -> MCPServers:
    """The configured servers (not started); ConfigError if a header's variable is unset."""
    environ = os.environ if environ is None else environ
    _, lines = read_yaml(config_path) if config_path.exists() else (None, {})
    servers: list[SharedMCPClient] = []
    problems: list[str] = []
    for index, server in enumerate(config.tools.mcp_servers):
        headers: dict[str, str] = {}
        for header, variable in server.headers_from_env.items():
            value = environ.get(variable, "")
            if not value:
                loc = ("tools", "mcp_servers", index, "headers_from_env", header)
                problems.append(
                    describe(
                        config_path,
                        lines,
                        loc,
                        f"the environment variable {variable} is not set; fix: set it to the "
                        f"value of the {header} header",
                    )
                )
            headers[header] = value
        servers.append(SharedMCPClient(server, headers))
    if problems:
        raise ConfigError(str(config_path), problems)
    return MCPServers(servers)
