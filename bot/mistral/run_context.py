"""The Mistral SDK's ``RunContext``, as the bot uses it: the one module that touches the
SDK's private attributes.

The SDK has no public way to register a tool whose schema was built once (``register_func``
rebuilds it with pydantic on every run), so :func:`register_function` writes the two private
dicts ``register_func`` itself writes. :func:`check_sdk` verifies at start-up that they are
still there (``tests/test_run_context.py`` fails loudly on an SDK that changed them), and
pyproject.toml keeps the SDK below its next major version.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from enum import Enum
from typing import Any

from mistralai.client.beta import Beta
from mistralai.client.models import (
    FunctionCallEntry,
    FunctionResultEntry,
    FunctionTool,
    ToolExecutionEntry,
    UnknownAgentTool,
)
from mistralai.extra.exceptions import RunException
from mistralai.extra.run.context import AgentRequestKwargs, RunContext
from mistralai.extra.run.tools import RunCoroutine

from bot.core.steps import Step, ran, ran_on_mistrals_side
from bot.errors import ConfigError

logger = logging.getLogger(__name__)

#: What the model reads for a call of a tool this run cannot execute.
UNAVAILABLE = (
    "The tool {name!r} is not available right now (it does not exist, or its server is "
    "down), so this call did not run. Do not retry it; tell the user what could not be done."
)

#: Hears each step of a run (see ``BotRunContext``).
StepObserver = Callable[[Step], Awaitable[None]]

_PRIVATE = ("_callable_tools", "_tool_configurations")


def check_sdk() -> None:
    """Raise ConfigError if the installed SDK's RunContext lacks what the bot writes."""
    probe = RunContext(model="probe")
    missing = [name for name in _PRIVATE if not isinstance(getattr(probe, name, None), dict)]
    if missing:
        raise ConfigError(
            "the installed mistralai SDK",
            [
                f"RunContext has no {', '.join(missing)}; this bot needs a mistralai 3.x "
                "release: fix: pip install 'mistralai[agents]>=3.0,<4'"
            ],
        )


def register_function(
    run_ctx: RunContext,
    name: str,
    run: Callable[..., Awaitable[Any]],
    described: FunctionTool,
    *,
    requires_confirmation: bool,
) -> None:
    """What ``RunContext.register_func`` does, with a schema built once by the caller."""
    run_ctx._callable_tools[name] = RunCoroutine(name=name, awaitable=run, tool=described)
    run_ctx._tool_configurations[name] = {"requires_confirmation": requires_confirmation}


class BotRunContext(RunContext):
    """A RunContext where a call of a tool the run cannot execute gets a function result
    saying so. The SDK instead returns no result for the whole batch, then appends an empty
    input (a request the API refuses) or, for a confirmed call, raises; either way the
    model never learns what happened.

    ``observer`` (when set) hears each local or MCP call as a step: in progress before it
    runs, then complete or failed with its result, by ``tool_call_id``."""

    observer: StepObserver | None = None

    async def execute_function_calls(
        self, function_calls: list[FunctionCallEntry]
    ) -> list[FunctionResultEntry]:
        runnable = [c for c in function_calls if c.name in self._callable_tools]
        for call in runnable:
            await self._observe(ran(call.tool_call_id, call.name, None))
        done = await super().execute_function_calls(runnable) if runnable else []
        for call, result in zip(runnable, done, strict=False):
            await self._observe(ran(call.tool_call_id, call.name, str(result.result)))
        results_of = iter(done)
        results: list[FunctionResultEntry] = []
        for call in function_calls:
            if call.name in self._callable_tools:
                results.append(next(results_of))
                continue
            logger.warning("the model called %r, which this run cannot execute", call.name)
            results.append(
                FunctionResultEntry(
                    tool_call_id=call.tool_call_id, result=UNAVAILABLE.format(name=call.name)
                )
            )
        return results

    async def observe_server_runs(self, entries: Sequence[Any]) -> None:
        """Show the calls Mistral ran on its side in the run (``tool.execution`` entries:
        connectors' and built-ins' that no hold kept) as steps, done."""
        for index, entry in enumerate(entries):
            if isinstance(entry, ToolExecutionEntry):
                name = entry.name.value if isinstance(entry.name, Enum) else str(entry.name)
                await self._observe(ran_on_mistrals_side(entry.id or f"server-{index}", name))

    async def _observe(self, step: Step) -> None:
        if self.observer is None:
            return
        try:
            await self.observer(step)
        except Exception:  # showing a step must never change what the tools did
            logger.exception("could not show step %s of %s", step.state, step.tool)


class AgentRunContext(BotRunContext):
    """A run for a Mistral agent that never blocks the event loop.

    The SDK's ``prepare_agent_request`` registers the local functions on the agent with the
    *synchronous* ``agents.update``, which would stall every other request of this process
    (Slack's 3-second acknowledgements included) for a round trip on each run. This is the
    same request, made with ``update_async``.
    """

    async def prepare_agent_request(self, beta_client: Beta) -> AgentRequestKwargs:
        if self.agent_id is None:
            raise RunException("Can't prepare an agent request, if no agent_id is provided")
        agent = await beta_client.agents.get_async(agent_id=self.agent_id)
        local = {tool.function.name for tool in self.get_tools()}
        kept: list[Any] = [
            tool
            for tool in agent.tools or []
            if not isinstance(tool, UnknownAgentTool)
            and not (isinstance(tool, FunctionTool) and tool.function.name in local)
        ]
        await beta_client.agents.update_async(
            agent_id=self.agent_id, tools=[*kept, *self.get_tools()]
        )
        return AgentRequestKwargs(agent_id=self.agent_id)
