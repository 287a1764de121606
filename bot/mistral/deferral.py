"""The Mistral edge of an approval request: from the SDK's ``DeferredToolCallsException`` to
a request, and from a decided request back to the inputs that resume the conversation.

The domain core (bot.core.approval) knows nothing of the SDK; this module is where its objects
are read and built.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mistralai.extra.exceptions import DeferralReason, DeferredToolCallsException

from bot.core.approval import ApprovalRequest, MessageRef, Requester, ThreadRef, ToolCall


def calls_of(deferred: DeferredToolCallsException) -> tuple[ToolCall, ...]:
    """The calls of a deferral, as approvers see them."""
    return tuple(
        ToolCall(
            tool_call_id=dc.tool_call_id,
            name=dc.tool_name,
            arguments=dc.arguments
            if isinstance(dc.arguments, str)
            else json.dumps(dc.arguments, ensure_ascii=False),
            server_side=dc.reason == DeferralReason.SERVER_SIDE_CONFIRMATION_REQUIRED,
        )
        for dc in deferred.deferred_calls
    )


def new_request(
    deferred: DeferredToolCallsException,
    *,
    thread: ThreadRef,
    requester: Requester,
    approvals_channel: str,
    calls: Sequence[ToolCall] | None = None,
    placeholder: MessageRef | None = None,
) -> ApprovalRequest:
    """A request for ``deferred``; ``calls`` as screened by the policy (default: as is)."""
    return ApprovalRequest.create(
        conversation_id=deferred.conversation_id or "",
        deferral=dict(deferred.to_dict()),
        calls=calls_of(deferred) if calls is None else calls,
        thread=thread,
        requester=requester,
        approvals_channel=approvals_channel,
        placeholder=placeholder,
    )


def responses(request: ApprovalRequest) -> list[Any]:
    """The inputs that resume the conversation: the results the SDK already executed, then
    each deferred call confirmed (``override_args`` when edited) or rejected as decided,
    then why server-side calls were rejected (a tool confirmation carries no reason)."""
    deferred = DeferredToolCallsException.from_dict(request.deferral)  # type: ignore[arg-type]
    answered: list[Any] = []
    for call in deferred.deferred_calls:
        answer = request.answer(call.tool_call_id)
        answered.append(
            call.confirm(answer.override) if answer.approved else call.reject(answer.message)
        )
    note = request.server_side_note()
    # a dict: the SDK passes on input entries given as dicts (or function results) only
    why = [{"type": "message.input", "role": "user", "content": note}] if note else []
    return [*deferred.executed_results, *answered, *why]


class DeferralInvalid(ValueError):
    """A deferral sent from outside that the SDK cannot read back; ``where``: a JSON pointer."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")


def parse_deferral(data: object) -> DeferredToolCallsException:
    """A deferral sent by another program (``DeferredToolCallsException.to_dict()``), read by
    the SDK's own ``from_dict()`` before anything is stored; DeferralInvalid says where it
    is wrong. Refused besides what the SDK refuses: no calls, a call id given twice (one
    answer per id: two calls under one id could not be told apart), and no conversation id
    (there would be nothing to resume). What is stored is the SDK's own ``to_dict()`` of it."""
    if not isinstance(data, dict):
        raise DeferralInvalid("/deferral", "must be DeferredToolCallsException.to_dict()")
    calls = data.get("deferred_calls")
    if not isinstance(calls, list) or not calls:
        raise DeferralInvalid("/deferral/deferred_calls", "must list at least one deferred call")
    for index, call in enumerate(calls):
        where = f"/deferral/deferred_calls/{index}"
        if not isinstance(call, dict) or not isinstance(call.get("function_call"), dict):
            raise DeferralInvalid(where, "must be an object with a function_call object")
        for name in ("tool_call_id", "name"):
            value = call["function_call"].get(name)
            if not isinstance(value, str) or not value:
                raise DeferralInvalid(f"{where}/function_call/{name}", "must be a non-empty string")
    conversation_id = data.get("conversation_id")
    if not isinstance(conversation_id, str) or not conversation_id:
        raise DeferralInvalid("/deferral/conversation_id", "must be the conversation's id")
    try:
        deferred = DeferredToolCallsException.from_dict(data)  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        # pydantic's ValidationError is a ValueError; a missing key a KeyError
        raise DeferralInvalid("/deferral", f"not a deferral the SDK can read: {error}") from error
    ids = [call.tool_call_id for call in deferred.deferred_calls]
    if len(set(ids)) != len(ids):
        raise DeferralInvalid("/deferral/deferred_calls", "a tool_call_id appears twice")
    return deferred
