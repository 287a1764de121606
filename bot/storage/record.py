"""An approval request's stored form (the ``record`` field of its Redis hash), and every
older schema read back: 1 (one approvals channel), 2 (gates and votes), 3 (a decision per
call), 4 (arguments stored once, bot.storage.stored_deferral), 5 (the request's origin: the
HTTP API client that asked, "" before).

The codec lives here, not in the domain object: the core knows requests, the storage side
knows how they are written.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from typing import Any

from bot.core.approval import (
    ApprovalRequest,
    Auto,
    CallDecision,
    Decision,
    MessageRef,
    Requester,
    Resume,
    Status,
    ThreadRef,
    ToolCall,
    Vote,
    initial_decision,
)
from bot.core.policy import Approvers, Gate
from bot.storage import stored_deferral


def encode(request: ApprovalRequest) -> str:
    """The request as stored (JSON text; each argument once)."""
    data = asdict(request)
    data["calls"] = [_call_to_dict(call) for call in request.calls]
    data["decisions"] = [d.to_dict() for d in request.decisions]
    texts = {call.tool_call_id: call.arguments for call in request.calls}
    data["deferral"] = stored_deferral.compact(request.deferral, texts)
    return json.dumps(data, ensure_ascii=False)


def decode(text: str) -> ApprovalRequest:
    return from_dict(json.loads(text))


def from_dict(data: dict[str, Any]) -> ApprovalRequest:
    """A request from its stored form, of any schema."""
    decision = data.get("decision")
    card = data.get("card")
    placeholder = data.get("placeholder")
    calls = tuple(_call_from_dict(call) for call in data["calls"])
    if "decisions" not in data:  # schema 1 and 2: one gate and one vote for all calls
        calls, decisions = _from_schema_2(data, calls)
    else:
        decisions = tuple(CallDecision.from_dict(d) for d in data["decisions"])
    return ApprovalRequest(
        id=data["id"],
        thread=ThreadRef(**data["thread"]),
        requester=Requester(**data["requester"]),
        conversation_id=data["conversation_id"],
        calls=calls,
        deferral=stored_deferral.expand(
            data["deferral"], {call.tool_call_id: call.arguments for call in calls}
        ),
        approvals_channel=data["approvals_channel"],
        created_at=data["created_at"],
        decisions=decisions,
        status=Status(data.get("status", Status.PENDING)),
        decision=Decision(
            Status(decision["status"]),
            str(decision.get("user_id") or ""),
            float(decision["at"]),
            decision.get("reason"),
        )
        if decision
        else None,
        revision=int(data.get("revision") or 0),
        card=MessageRef(**card) if card else None,
        card_link=data.get("card_link"),
        resume=Resume(data.get("resume", Resume.WAITING)),
        outcome=data.get("outcome"),
        placeholder=MessageRef(**placeholder) if placeholder else None,
        follow_up_id=data.get("follow_up_id"),
        expires_at=data.get("expires_at"),
        extra=data.get("extra", {}),
        origin=str(data.get("origin") or ""),  # requests stored before the HTTP API: ""
    )


def ref_json(ref: MessageRef | None) -> str:
    """A posted message's reference as stored in a hash field ("" for none)."""
    return json.dumps({"channel_id": ref.channel_id, "ts": ref.ts}) if ref else ""


def _call_to_dict(call: ToolCall) -> dict[str, Any]:
    data = asdict(call)
    data["gate"] = call.gate.to_dict() if call.gate else None
    return data


def _call_from_dict(data: dict[str, Any]) -> ToolCall:
    auto = data.get("auto")
    gate = data.get("gate")
    return ToolCall(
        **{
            **data,
            "auto": Auto(auto) if auto else None,
            "gate": Gate.from_dict(gate) if gate else None,
        }
    )


def _from_schema_2(
    data: dict[str, Any], calls: tuple[ToolCall, ...]
) -> tuple[tuple[ToolCall, ...], tuple[CallDecision, ...]]:
    """Schema 1 and 2 records held one gate, one vote list and one decision for every call
    a person decided; spread them over those calls."""
    if data.get("gate") is not None or "gate" not in data:
        gate = (
            Gate.from_dict(data["gate"])
            if data.get("gate")
            else Gate(
                requirements=(Approvers(channel=data["approvals_channel"]),),
                allow_self_approval=bool(data.get("allow_self_approval", False)),
            )
        )
        calls = tuple(replace(c, gate=gate) if c.auto is None else c for c in calls)
    votes = tuple(Vote(**vote) for vote in data.get("votes") or ())
    decision = data.get("decision")
    decisions: list[CallDecision] = []
    for call in calls:
        if call.auto is not None:
            decisions.append(initial_decision(call))
        elif decision and decision.get("user_id"):
            decisions.append(
                CallDecision(
                    Status(decision["status"]),
                    votes,
                    decision["user_id"],
                    float(decision["at"]),
                    decision.get("reason"),
                )
            )
        else:
            decisions.append(CallDecision(votes=votes))
    return calls, tuple(decisions)
