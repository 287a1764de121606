"""Local Python functions the model may call: loading them from the config, registering them.

Approved calls run through a guard: the result of an approved call is stored by its
``tool_call_id`` before the conversation resumes, so a resume that is retried (after a
Mistral outage, say) appends the stored result instead of running the action again.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mistralai.client.models import FunctionTool
from mistralai.extra.run.context import RunContext
from mistralai.extra.run.tools import create_tool_call

from bot.core.arguments import canonical_arguments
from bot.core.config import BotConfig, describe, read_yaml
from bot.errors import ConfigError
from bot.mistral.run_context import register_function

logger = logging.getLogger(__name__)


class CallLedger(Protocol):
    """Where results of approved calls are kept (the store implements it)."""

    async def stored_result(self, tool_call_id: str) -> str | None: ...

    async def store_result(self, tool_call_id: str, result: str) -> None: ...

    async def begin_execution(self, tool_call_id: str) -> bool: ...


#: Told what happens to an approved call: (event, tool_call_id, detail), event being
#: ``executing``, ``executed``, ``failed`` or ``outcome_unknown`` (for the audit and the card).
Report = Callable[[str, str, str | None], Awaitable[None]]


@dataclass(frozen=True)
class ApprovedCalls:
    """The approved calls a resume is about to run, by (tool name, canonical arguments: the
    edited ones when a person changed them), and what the model must read with a result.

    The SDK runs a confirmed call with its arguments only, not its ``tool_call_id``, so a
    run is matched to an approved call by name and arguments. Two identical calls are two
    calls: each run *claims* the next id of its (name, arguments) (:meth:`claim`), so each
    has its own place in the ledger and each runs once. Which of two identical calls a run
    claims does not matter: they are the same action.
    """

    ledger: CallLedger
    tool_call_ids: Mapping[tuple[str, str], Sequence[str]]
    notes: Mapping[str, str] = field(default_factory=dict)  # by tool_call_id
    report: Report | None = None
    _claimed: dict[tuple[str, str], int] = field(default_factory=dict, compare=False)

    async def tell(self, event: str, tool_call_id: str, detail: str | None = None) -> None:
        if self.report is None:
            return
        try:
            await self.report(event, tool_call_id, detail)
        except Exception:  # reporting must never change what the tool did
            logger.exception("could not report %s of call %s", event, tool_call_id)

    def claim(self, name: str, arguments: Mapping[str, Any]) -> Claim | None:
        """The approved call this run of ``name`` is, or None when it is none (a call the
        SDK runs without a person's approval). No ``await``: a claim is atomic."""
        key = (name, canonical_arguments(arguments))
        ids = self.tool_call_ids.get(key, ())
        taken = self._claimed.get(key, 0)
        if taken >= len(ids):
            return None
        self._claimed[key] = taken + 1
        return Claim(self, ids[taken])


@dataclass(frozen=True)
class Claim:
    """One approved call, as one run of its tool took it."""

    approved: ApprovedCalls
    tool_call_id: str

    @property
    def note(self) -> str | None:
        """What the model must read with the result (a person edited the arguments)."""
        return self.approved.notes.get(self.tool_call_id)


#: What the model reads for an approved call whose earlier run never reported back.
OUTCOME_UNKNOWN = (
    "The outcome of this action is unknown: the bot stopped while it was running and did not "
    "run it again. Tell the user that a person must check whether it happened."
)

#: Set for the duration of one resume; read by the guarded tool wrappers.
_approved_calls: ContextVar[ApprovedCalls | None] = ContextVar("approved_calls", default=None)


def approving(calls: ApprovedCalls | None) -> Any:
    """Context token: ``token = approving(...)`` then ``_approved_calls.reset(token)``."""
    return _approved_calls.set(calls)


def stop_approving(token: Any) -> None:
    _approved_calls.reset(token)


@dataclass(frozen=True)
class Tool:
    """A function the model may call, and whether a person must approve each call."""

    name: str
    function: Callable[..., Any]
    requires_confirmation: bool
    ref: str

    def register(self, run_ctx: RunContext, *, requires_confirmation: bool | None = None) -> None:
        """Register with ``run_ctx``; ``requires_confirmation`` as the policy says (default: as
        the config marks the tool)."""
        held = (
            self.requires_confirmation if requires_confirmation is None else requires_confirmation
        )
        guarded, described = _prepared(self.function)
        # the tool's schema built once: the SDK builds it (pydantic models from the signature
        # and docstring) on every run, a few milliseconds of CPU per tool and run
        register_function(run_ctx, guarded.__name__, guarded, described, requires_confirmation=held)


@functools.cache
def _prepared(function: Callable[..., Any]) -> tuple[Callable[..., Awaitable[Any]], FunctionTool]:
    """The guarded tool and its description for the model, made once per function."""
    guarded = _guarded(function)
    return guarded, create_tool_call(guarded)


def _guarded(function: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """Wrap ``function`` so approved calls run at most once and sync tools leave the loop free.

    ``functools.wraps`` keeps the name, docstring, signature and type hints the SDK reads to
    describe the tool to the model.
    """

    @functools.wraps(function)
    async def run_tool(**arguments: Any) -> Any:
        name = function.__name__
        claim = claim_call(name, arguments)
        result = await run_once(claim, name, lambda: _call(function, arguments))
        note = claim.note if claim else None
        if note is None:
            return result
        return f"{note}\n\n{result if isinstance(result, str) else json.dumps(result, default=str)}"

    return run_tool


def claim_call(name: str, arguments: Mapping[str, Any]) -> Claim | None:
    """During a resume: the approved call this run of a tool is (see ApprovedCalls.claim)."""
    approved = _approved_calls.get()
    return approved.claim(name, arguments) if approved else None


async def run_once(claim: Claim | None, name: str, execute: Callable[[], Awaitable[Any]]) -> Any:
    """Run a tool call; an approved call (``claim``, during a resume) runs at most once.

    The call is marked "executing" before it runs and its result stored before the
    conversation resumes. A retried resume returns the stored result instead of acting again;
    a call marked but without a result (its process died while running it) is not run again,
    and the model reads that its outcome is unknown.
    """
    if claim is None:
        return await execute()
    approved, tool_call_id = claim.approved, claim.tool_call_id
    ledger = approved.ledger
    stored = await ledger.stored_result(tool_call_id)
    if stored is not None:
        logger.info("tool %s call %s ran before; reusing its result", name, tool_call_id)
        return stored
    if not await ledger.begin_execution(tool_call_id):
        logger.error(
            "tool %s call %s was started before and never finished; not running it again",
            name,
            tool_call_id,
        )
        await approved.tell("outcome_unknown", tool_call_id)
        return OUTCOME_UNKNOWN
    await approved.tell("executing", tool_call_id)
    try:
        result = await execute()
    except Exception as error:  # the SDK reports it to the model; a retry must not re-run it
        failure = f"The tool failed: {type(error).__name__}: {error}"
        await ledger.store_result(tool_call_id, failure)
        await approved.tell("failed", tool_call_id, failure)
        raise
    text = result if isinstance(result, str) else json.dumps(result, default=str)
    await ledger.store_result(tool_call_id, text)
    await approved.tell("executed", tool_call_id)
    return text


async def _call(function: Callable[..., Any], arguments: dict[str, Any]) -> Any:
    if inspect.iscoroutinefunction(function):
        return await function(**arguments)
    # A blocking tool must not stall the event loop that acknowledges Slack's requests.
    return await asyncio.to_thread(function, **arguments)


def _import_ref(ref: str) -> Any:
    module_name, _, attribute = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise LookupError(
            f"cannot import module {module_name!r} ({error}); fix: install it or add its "
            "folder to PYTHONPATH"
        ) from error
    except Exception as error:  # the module itself is broken: report it, do not crash
        raise LookupError(
            f"importing {module_name!r} failed: {type(error).__name__}: {error}; "
            "fix: the error is in that module"
        ) from error
    try:
        return getattr(module, attribute)
    except AttributeError as error:
        raise LookupError(
            f"module {module_name!r} has no {attribute!r}; fix: check the function name"
        ) from error


def _load_one(ref: str) -> Callable[..., Any]:
    function = _import_ref(ref)
    if not inspect.isfunction(function):
        raise LookupError(
            f"{ref} is a {type(function).__name__}, not a function; fix: point ref at a "
            "plain `def` or `async def` function"
        )
    try:
        create_tool_call(function)
    except Exception as error:  # the SDK cannot describe it to the model
        raise LookupError(
            f"{ref} cannot be described to the model ({error}); fix: give every parameter a "
            "JSON-compatible type hint"
        ) from error
    return function


def load_tools(config: BotConfig, config_path: Path) -> list[Tool]:
    """Import every function the config names; raise one ConfigError listing every problem."""
    _, lines = read_yaml(config_path) if config_path.exists() else (None, {})
    tools: list[Tool] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for index, entry in enumerate(config.tools.functions):
        loc = ("tools", "functions", index, "ref")
        try:
            function = _load_one(entry.ref)
        except LookupError as error:
            problems.append(describe(config_path, lines, loc, str(error)))
            continue
        name = function.__name__
        if name in seen:
            problems.append(
                describe(
                    config_path,
                    lines,
                    loc,
                    f"a second tool named {name!r} (also {seen[name]}); the model calls tools "
                    "by function name, fix: rename one",
                )
            )
            continue
        seen[name] = entry.ref
        tools.append(Tool(name, function, entry.requires_confirmation, entry.ref))
    if problems:
        raise ConfigError(str(config_path), problems)
    return tools
