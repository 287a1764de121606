"""Builds approval requests for unit tests the way the bot does: one gate for every call a
person decides, and (for decided requests) every such call decided the same way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from bot.core.approval import ApprovalRequest, CallDecision, Decision, Status, ToolCall, Vote
from bot.core.policy import Gate

_UNSET: Any = object()


def build(
    *,
    calls: Sequence[ToolCall],
    gate: Gate | None = None,
    votes: Sequence[Vote] = (),
    status: Status = Status.PENDING,
    decision: Decision | None = None,
    **fields: Any,
) -> ApprovalRequest:
    """An ApprovalRequest whose asked calls (no ``auto``) wait behind ``gate``; with a
    person's ``decision``, each of them decided so (``votes`` as its approvals)."""
    gated = tuple(
        replace(call, gate=gate) if call.auto is None and call.gate is None else call
        for call in calls
    )
    request = ApprovalRequest(calls=gated, **fields)
    return outcome(request, status, decision, votes)


def outcome(
    request: ApprovalRequest,
    status: Status,
    decision: Decision | None,
    votes: Sequence[Vote] = (),
) -> ApprovalRequest:
    """``request`` with every asked call decided as ``decision`` says (or holding ``votes``)."""
    decisions = list(request.decisions)
    for index in request.asked:
        if decision is not None and decision.user_id and status is not Status.PENDING:
            decisions[index] = CallDecision(
                decision.status,
                tuple(votes),
                decision.user_id,
                decision.at,
                decision.reason,
            )
        else:
            decisions[index] = CallDecision(votes=tuple(votes))
    return replace(request, decisions=tuple(decisions), status=status, decision=decision)
