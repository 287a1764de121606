"""A request as the HTTP API shows it: the JSON that ``GET /api/v1/approvals/{id}`` answers
and that webhooks carry (the OpenAPI document, bot.api.openapi, describes the same shape)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.core.approval import ApprovalRequest, Auto, Status

#: ``decided_by`` of a call the policy (a rule, an override or a grant) decided.
POLICY = "policy"


def request_status(request: ApprovalRequest) -> str:
    """``pending``, ``decided`` or ``expired`` (some call expired undecided)."""
    if request.status is Status.PENDING:
        return "pending"
    return "expired" if request.status is Status.EXPIRED else "decided"


def approval_view(request: ApprovalRequest) -> dict[str, Any]:
    """The request's JSON: its status and each call's decision, as decided so far."""
    return {
        "id": request.id,
        "status": request_status(request),
        "client": request.origin,
        "requester": request.requester.user_id,
        "summary": request.requester.text_excerpt,
        "created_at": _iso(request.created_at),
        "expires_at": _iso(request.expires_at) if request.expires_at else None,
        "calls": [_call(request, index) for index in range(len(request.calls))],
        "card_url": request.card_link,
        "outcome": request.outcome,  # the card's line on what happened after the decision
    }


def _call(request: ApprovalRequest, index: int) -> dict[str, Any]:
    call, decision = request.calls[index], request.decisions[index]
    decided = decision.status is not Status.PENDING
    by_policy = call.auto is not None
    edit = decision.edit
    approved = decision.status is Status.APPROVED
    if by_policy:
        decided_by: str | None = POLICY
        decided_at: float | None = request.created_at
    else:
        decided_by = decision.user_id or None
        decided_at = decision.at or None
    return {
        "tool_call_id": call.tool_call_id,
        "tool_name": call.name,
        "arguments": call.arguments,
        "decision": decision.status.value if decided else None,
        "override_args": edit.override if approved and edit and edit.override else None,
        # what the model reads for a call that does not run (a person's reason, the
        # policy's, or that nobody decided in time): the client passes it on as is
        "reason": None if approved or not decided else request.rejection_message(index),
        "decided_by": decided_by if decided else None,
        "decided_at": _iso(decided_at) if decided and decided_at else None,
        "rule": call.rule or None,
        "granted": call.auto is Auto.GRANT,
    }


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
