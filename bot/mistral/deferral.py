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
