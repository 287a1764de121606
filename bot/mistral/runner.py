"""The Mistral side: runs a thread's conversation with the configured tools.

An adapter around ``client.beta.conversations.run_async``: it turns the SDK's outcomes into
:class:`Answer` or :class:`Deferral`, and every failure into :class:`UpstreamError`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx2
from mistralai.client import Mistral
from mistralai.client.errors import MistralError
from mistralai.client.models import (
    FunctionCallEntry,
    FunctionResultEntry,
    MessageInputEntry,
    MessageOutputEntry,
    TextChunk,
    ToolFileChunk,
    ToolReferenceChunk,
)
from mistralai.client.utils import BackoffStrategy, RetryConfig
from mistralai.extra.exceptions import (
    DeferredToolCallsException,
    MistralClientException,
)
from mistralai.extra.run.context import RunContext
from mistralai.extra.run.tools import create_tool_call

from bot.core.approval import ApprovalRequest, MessageRef, Requester, ThreadRef, ToolCall
from bot.core.arguments import canonical_arguments
from bot.core.config import BotConfig, MCPServerConfig
from bot.core.policy import Holds
from bot.errors import UpstreamError
from bot.metrics import Metrics
from bot.mistral.connector_tools import ConnectorTools
from bot.mistral.deferral import calls_of, new_request, responses
from bot.mistral.mcp_servers import MCPServers
from bot.mistral.run_context import AgentRunContext, BotRunContext, StepObserver
from bot.mistral.server_tools import ServerTool
from bot.mistral.tools import (
    ApprovedCalls,
    CallLedger,
    Report,
    Tool,
    approving,
    stop_approving,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """The model answered; nothing waits for a person."""

    conversation_id: str
    text: str


@dataclass(frozen=True)
class Deferral:
    """The model called tools that need a person's decision."""

    conversation_id: str
    deferred: DeferredToolCallsException

    @property
    def calls(self) -> tuple[ToolCall, ...]:
        """The deferred calls, as approvers see them."""
        return calls_of(self.deferred)

    def new_request(
        self,
        *,
        thread: ThreadRef,
        requester: Requester,
        approvals_channel: str,
        calls: Sequence[ToolCall],
        placeholder: MessageRef | None,
    ) -> ApprovalRequest:
        """The approval request for this deferral (``calls`` as the policy screened them)."""
        return new_request(
            self.deferred,
            thread=thread,
            requester=requester,
            approvals_channel=approvals_channel,
            calls=calls,
            placeholder=placeholder,
        )


Outcome = Answer | Deferral


#: How often a request whose connection could not even be opened is tried again (httpx's
#: transport retries only connection failures: such a request provably never reached Mistral).
CONNECT_RETRIES = 3


class MistralClient(Mistral):
    """The SDK's client on an HTTP client of the bot's own, closed with it."""

    async def __aexit__(self, *exc_info: Any) -> None:
        http = self.sdk_configuration.async_client
        await super().__aexit__(*exc_info)  # type: ignore[no-untyped-call]
        if http is not None:
            await http.aclose()


def make_client(
    api_key: str, server_url: str | None, *, timeout_ms: int, retry_for_ms: int
) -> MistralClient:
    """The Mistral client: a timeout per request; reads (GET) retried on 429, 5xx and dropped
    connections for ``MISTRAL_RETRY_FOR_MS``; every request retried when its connection
    could not be opened. What a run sends (POST: a conversation's start, an append) follows
    :data:`SENT_ONCE` instead, since it is not idempotent."""
    budget_ms = retry_for_ms
    retries = RetryConfig("backoff", _backoff(budget_ms), retry_connection_errors=True)
    http = httpx2.AsyncClient(
        follow_redirects=True, transport=httpx2.AsyncHTTPTransport(retries=CONNECT_RETRIES)
    )
    return MistralClient(
        api_key=api_key,
        server_url=server_url,
        timeout_ms=timeout_ms,
        async_client=http,
        retry_config=retries if budget_ms > 0 else RetryConfig("none", retries.backoff, False),
    )


def _backoff(budget_ms: int) -> BackoffStrategy:
    return BackoffStrategy(
        initial_interval=min(500, budget_ms // 4 or 1),
        max_interval=8_000,
        exponent=2.0,
        max_elapsed_time=budget_ms,
    )


def sent_once(budget_ms: int) -> RetryConfig:
    """Retries for what a run POSTs. An append is not idempotent: sent twice, it would add
    the user's turn, a function result or a tool confirmation twice (a connector could run
    twice). So only a 429 (Mistral refused it: nothing was applied) is retried by the SDK;
    a connection that could not be opened is retried below it (CONNECT_RETRIES). A read
    timeout, a dropped response or a 5xx may come after Mistral applied the request: it is
    not sent again; the conversation's history tells what happened (AgentRunner.recover,
    AgentRunner.recover_turn)."""
    if budget_ms <= 0:
        return RetryConfig("none", _backoff(1), False)
    return RetryConfig(
        "backoff", _backoff(budget_ms), retry_connection_errors=False, status_codes_override=["429"]
    )


class AgentRunner:
    """Runs conversations for the bot: a new message, or a resume after a decision."""

    def __init__(
        self,
        client: Mistral,
        config: BotConfig,
        tools: Sequence[Tool],
        server_tools: Sequence[ServerTool] = (),
        mcp_servers: MCPServers | None = None,
        *,
        metrics: Metrics,
        run_timeout_s: float = 600.0,
        retry_for_ms: int = 0,
    ) -> None:
        self.client = client
        self.metrics = metrics
        #: what a run sends is retried only where it provably was not applied (sent_once)
        self.sent_once = sent_once(retry_for_ms)
        self.run_timeout_s = run_timeout_s
        self.config = config
        self.tools = tuple(tools)
        self.server_tools = tuple(server_tools)
        self.mcp_servers = mcp_servers
        #: each connector's tools, as the API lists them (a glob rule holds them by name)
        self.connector_tools = ConnectorTools(
            client, [t.connector_id for t in self.server_tools if t.connector_id is not None]
        )
        self._parameters = {
            tool.name: dict(create_tool_call(tool.function).function.parameters)
            for tool in self.tools
        }

    async def send(
        self,
        conversation_id: str | None,
        text: str,
        holds: Holds | None = None,
        observer: StepObserver | None = None,
    ) -> Outcome:
        """Send a user message into the thread's conversation (a new one if None).

        ``holds(tool)``: whether the SDK must hold that tool's calls for a decision
        (default: as the config marks each tool); ``observer`` hears each call it runs.
        """
        inputs = [{"role": "user", "content": text}]
        return await self._run(conversation_id, inputs, holds, observer)

    async def resume(
        self,
        request: ApprovalRequest,
        ledger: CallLedger,
        holds: Holds | None = None,
        report: Report | None = None,
        observer: StepObserver | None = None,
    ) -> Outcome:
        """Resume a deferred conversation with the request's decision.

        Approved local calls run through the ledger: a call whose result was stored by an
        earlier attempt is not run again. ``report`` hears when each one runs.
        """
        local = [i for i, call in enumerate(request.calls) if not call.server_side]
        tool_call_ids: dict[tuple[str, str], list[str]] = {}
        for i in local:  # two identical calls are two calls: each keeps its own id
            key = (request.calls[i].name, canonical_arguments(request.arguments_of(i)))
            tool_call_ids.setdefault(key, []).append(request.calls[i].tool_call_id)
        approved = ApprovedCalls(
            ledger=ledger,
            tool_call_ids=tool_call_ids,
            notes={
                request.calls[i].tool_call_id: note
                for i in local
                if (note := request.edit_note(i)) is not None
            },
            report=report,
        )
        token = approving(approved)
        try:
            return await self._run(request.conversation_id, responses(request), holds, observer)
        finally:
            stop_approving(token)

    async def recover(self, request: ApprovalRequest) -> Answer | None:
        """After an attempt at resuming died: the conversation's answer if the decision reached
        it (read from its history), else None and the decision must be sent.

        A decision reached the conversation when one of its calls has a result there, or a
        server-side call is no longer pending confirmation. Sending it again would run an
        approved server-side call twice, or be refused.
        """
        entries = await self._history(request.conversation_id)
        ids = {call.tool_call_id for call in request.calls}
        reached = -1
        for index, entry in enumerate(entries):
            answered = isinstance(entry, FunctionResultEntry) and entry.tool_call_id in ids
            confirmed = (
                isinstance(entry, FunctionCallEntry)
                and entry.tool_call_id in ids
                and entry.confirmation_status in ("allowed", "denied")
            )
            if answered or confirmed:
                reached = index
        if reached < 0:
            return None
        texts = [
            _entry_text(entry)
            for entry in entries[reached + 1 :]
            if isinstance(entry, MessageOutputEntry)
        ]
        text = "\n".join(t for t in texts if t) or _INTERRUPTED
        return Answer(request.conversation_id, text)

    async def recover_turn(self, conversation_id: str, text: str) -> Answer | None:
        """Before sending a person's message again (its first sending failed in a way that
        may have come after Mistral applied it, or its process died): the conversation's
        answer if the message reached it, else None and the message must be sent.

        The spec does not say which entries a lost append leaves; this reads what cannot run
        anything twice: the message reached the conversation if the newest user input there
        is this very text. Then it is never sent again: the answer is the messages after it,
        or a note asking for a new message when there are none (the model's calls, if it
        made any, were not run by the bot and are left alone)."""
        history = await self._history(conversation_id)
        inputs = [
            (index, entry)
            for index, entry in enumerate(history)
            if isinstance(entry, MessageInputEntry) and entry.role == "user"
        ]
        if not inputs or _input_text(inputs[-1][1]) != text:
            return None
        index = inputs[-1][0]
        texts = [_entry_text(e) for e in history[index + 1 :] if isinstance(e, MessageOutputEntry)]
        answer = "\n".join(t for t in texts if t) or _INTERRUPTED
        logger.warning(
            "conversation %s already had this message; its answer is taken from the history, "
            "nothing is sent again",
            conversation_id,
        )
        return Answer(conversation_id, answer)

    async def _history(self, conversation_id: str) -> list[Any]:
        try:
            history = await self.client.beta.conversations.get_history_async(
                conversation_id=conversation_id
            )
        except (MistralError, httpx2.HTTPError) as error:
            raise self._failure(error, conversation_id) from error
        return list(history.entries)

    async def parameters_of(self, name: str) -> dict[str, Any] | None:
        """The parameter JSON schema the model sees for a local or MCP tool, if any."""
        if name in self._parameters:
            return self._parameters[name]
        for server in await self.mcp_servers.available() if self.mcp_servers else []:
            try:
                tools = await server.live_tools()
            except Exception as error:  # the server died: no schema, so no edit this time
                logger.warning("MCP server %s: no tool schemas: %r", server.name, error)
                continue
            for tool in tools:
                if tool.function.name == name:
                    return dict(tool.function.parameters)
        return None

    async def _server_tools(self, holds: Holds | None) -> dict[str, Any]:
        """``tools=[…]`` for the connectors and built-ins, when there are any. A connector
        whose tools could not be listed is left out (bot.mistral.connector_tools: fail closed)."""
        if not self.server_tools:
            return {}
        local = [tool.name for tool in self.tools]
        overrides = holds.overrides if holds is not None else ()
        listed = await self.connector_tools.listed(overrides)
        declared: list[dict[str, Any]] = []
        for tool in self.server_tools:
            if tool.connector_id is None:
                declared.append(tool.declaration(holds, local))
            elif tool.connector_id in listed:
                declared.append(tool.declaration(holds, local, listed[tool.connector_id]))
        return {"tools": declared} if declared else {}

    async def _register_mcp_servers(self, run_ctx: RunContext, holds: Holds | None) -> None:
        """Lend every running MCP server to the run; one that fails is left out, and logged."""
        if self.mcp_servers is None:
            return
        for server in await self.mcp_servers.available():
            try:
                names = [tool.function.name for tool in await server.live_tools()]
                configuration = mcp_tool_configuration(server.config, names, holds)
                await run_ctx.register_mcp_client(server, tool_configuration=configuration)
            except Exception as error:  # the server died: run without its tools this time
                logger.error("MCP server %s left out of this run: %r", server.name, error)

    async def _run(
        self,
        conversation_id: str | None,
        inputs: list[Any],
        holds: Holds | None,
        observer: StepObserver | None = None,
    ) -> Outcome:
        run_ctx: BotRunContext
        if self.config.agent_id is not None:
            run_ctx = AgentRunContext(agent_id=self.config.agent_id, continue_on_fn_error=True)
        else:
            run_ctx = BotRunContext(model=self.config.model, continue_on_fn_error=True)
        run_ctx.observer = observer
        async with run_ctx:
            run_ctx.conversation_id = conversation_id
            for tool in self.tools:
                tool.register(run_ctx, requires_confirmation=holds(tool.name) if holds else None)
            await self._register_mcp_servers(run_ctx, holds)
            try:
                # A bound on the whole run: the SDK loops while the model keeps calling tools.
                async with asyncio.timeout(self.run_timeout_s):
                    result = await self.client.beta.conversations.run_async(
                        run_ctx=run_ctx,
                        inputs=inputs,
                        instructions=self.config.instructions,
                        retries=self.sent_once,
                        **await self._server_tools(holds),
                    )
            except DeferredToolCallsException as deferred:
                return Deferral(deferred.conversation_id or run_ctx.conversation_id or "", deferred)
            except (
                MistralError,
                httpx2.HTTPError,
                TimeoutError,
                MistralClientException,
            ) as error:
                raise self._failure(error, run_ctx.conversation_id) from error
        await run_ctx.observe_server_runs(result.output_entries)
        texts = [
            _entry_text(entry)
            for entry in result.output_entries
            if isinstance(entry, MessageOutputEntry)
        ]
        text = "\n".join(t for t in texts if t)
        return Answer(result.conversation_id or run_ctx.conversation_id or "", text)

    def _failure(self, error: Exception, conversation_id: str | None) -> UpstreamError:
        """The UpstreamError for a failed Mistral call (counted: every Mistral failure
        passes here)."""
        status: int | None = None
        if isinstance(error, MistralError):
            status = error.status_code
            message = f"Mistral answered {error.status_code}: {_short(error.body)}"
        elif isinstance(error, httpx2.HTTPError):
            message = f"Mistral could not be reached: {type(error).__name__}: {error}"
        elif isinstance(error, TimeoutError):
            message = f"the run took longer than {self.run_timeout_s:.0f} s"
        else:
            message = f"the conversation run failed: {error}"
        return self.metrics.upstream_failed(
            UpstreamError("mistral", message, status=status, conversation_id=conversation_id)
        )


def mcp_tool_configuration(
    config: MCPServerConfig, names: Sequence[str], holds: Holds | None
) -> dict[str, list[str]]:
    """``register_mcp_client``'s filter, and which of the server's tools wait for a decision."""
    filters = config.tool_configuration
    configuration: dict[str, list[str]] = {}
    if filters.include is not None:
        configuration["include"] = list(filters.include)
    if filters.exclude is not None:
        configuration["exclude"] = list(filters.exclude)
    marked = set(filters.requires_confirmation)
    configuration["requires_confirmation"] = [
        name for name in names if (holds(name) if holds else name in marked)
    ]
    return configuration


#: The answer when the history shows the conversation got the input but holds no reply.
_INTERRUPTED = (
    "Your request reached the agent, but its reply was interrupted. Send a message in this "
    "thread to continue."
)


def _input_text(entry: MessageInputEntry) -> str:
    content = entry.content
    if isinstance(content, str):
        return content
    return "".join(str(getattr(chunk, "text", "") or "") for chunk in content)


def _entry_text(entry: MessageOutputEntry) -> str:
    """A message's text as Markdown, the same on the live and the recovery paths.

    Content may come as chunks: text, and what tools add (a web search's references, a
    code run's files). A reference becomes a Markdown link (shown in Slack as
    ``title (<url>)``), a file its name; the SDK's own ``output_as_text`` would write them
    as ``<Reference title=…>``, which Slack shows as noise."""
    content = entry.content
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for chunk in content:
        if isinstance(chunk, TextChunk):
            parts.append(chunk.text)
        elif isinstance(chunk, ToolReferenceChunk):
            title = chunk.title.replace("[", "(").replace("]", ")") or "source"
            parts.append(f" [{title}]({chunk.url})" if chunk.url else f" ({title})")
        elif isinstance(chunk, ToolFileChunk):
            parts.append(f" (file: {chunk.file_name or chunk.file_id})")
    return "".join(parts)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
