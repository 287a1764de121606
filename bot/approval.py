"""The approval lifecycle: what a request holds, who may decide it, what a decision means.

Pure domain code: no Slack, no HTTP, no Redis.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from mistralai.extra.exceptions import (
    DeferredToolCallResponse,
    DeferredToolCallsException,
)

from bot.errors import NotAllowed
from bot.policy import Approvers, Gate


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"


class Auto(StrEnum):
    """How a call was decided without a person."""

    ALLOW = "allow"  # a policy rule (or an admin's override) allows it
    DENY = "deny"  # a policy rule denies it; the model reads the reason
    GRANT = "grant"  # an approver's "approve for 1 hour" covers it


class Resume(StrEnum):
    """Where the conversation is after the decision."""

    WAITING = "waiting"  # no decision yet
    RUNNING = "running"
    DONE = "done"  # the model answered
    DEFERRED = "deferred"  # the model asked for another approval
    FAILED = "failed"  # upstream failure; retryable


@dataclass(frozen=True)
class ThreadRef:
    """A Slack thread, named without Slack types: workspace, channel, thread timestamp."""

    team_id: str
    channel_id: str
    thread_ts: str

    @property
    def key(self) -> str:
        return f"{self.team_id}:{self.channel_id}:{self.thread_ts}"


@dataclass(frozen=True)
class MessageRef:
    """One posted message."""

    channel_id: str
    ts: str


@dataclass(frozen=True)
class ToolCall:
    """One call the model wants to make, as the approver sees it."""

    tool_call_id: str
    name: str
    arguments: str  # verbatim, as the model sent it (normally JSON)
    server_side: bool = False
    auto: Auto | None = None  # None: a person decides
    rule: str = ""  # the policy rule that decided or routed it
    note: str | None = None  # deny reason, grant id, or a condition that could not be evaluated

    def pretty_arguments(self) -> str:
        """The arguments as indented JSON, or verbatim if the model sent something else."""
        try:
            return json.dumps(json.loads(self.arguments), indent=2, ensure_ascii=False)
        except ValueError:
            return self.arguments


@dataclass(frozen=True)
class Requester:
    user_id: str
    text_excerpt: str
    permalink: str | None = None


@dataclass(frozen=True)
class Decision:
    """The final decision. ``user_id`` is empty when the policy decided every call."""

    status: Status
    user_id: str
    at: float
    reason: str | None = None

    @property
    def by_policy(self) -> bool:
        return not self.user_id


@dataclass(frozen=True)
class Vote:
    """One approval towards a quorum."""

    user_id: str
    at: float


def new_approval_id() -> str:
    return secrets.token_hex(12)


def excerpt(text: str, limit: int = 280) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class ApprovalRequest:
    """A deferral waiting for (or past) a human decision."""

    id: str
    thread: ThreadRef
    requester: Requester
    conversation_id: str
    calls: tuple[ToolCall, ...]
    deferral: dict[str, Any]  # DeferredToolCallsException.to_dict()
    approvals_channel: str  # where the card goes
    gate: Gate | None  # who decides the calls a person must decide; None if none must
    created_at: float
    status: Status = Status.PENDING
    decision: Decision | None = None
    votes: tuple[Vote, ...] = ()
    card: MessageRef | None = None
    card_link: str | None = None
    resume: Resume = Resume.WAITING
    outcome: str | None = None  # one line on what happened after the decision
    placeholder: MessageRef | None = None  # the requester-thread message to update
    follow_up_id: str | None = None  # the next approval, when the resumed run deferred again
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_deferral(
        cls,
        deferred: DeferredToolCallsException,
        *,
        thread: ThreadRef,
        requester: Requester,
        approvals_channel: str,
        gate: Gate | None,
        calls: Sequence[ToolCall] | None = None,
        placeholder: MessageRef | None = None,
    ) -> ApprovalRequest:
        """A request for ``deferred``; ``calls`` as screened by the policy (default: all ask)."""
        return cls(
            id=new_approval_id(),
            thread=thread,
            requester=requester,
            conversation_id=deferred.conversation_id or "",
            calls=tuple(calls) if calls is not None else calls_of(deferred),
            deferral=dict(deferred.to_dict()),
            approvals_channel=approvals_channel,
            gate=gate,
            created_at=time.time(),
            placeholder=placeholder,
        )

    @property
    def tool_names(self) -> list[str]:
        return [call.name for call in self.calls]

    @property
    def asked_calls(self) -> list[ToolCall]:
        """The calls a person decides (the others the policy decided)."""
        return [call for call in self.calls if call.auto is None]

    @property
    def quorum(self) -> int:
        return self.gate.quorum if self.gate else 1

    @property
    def voters(self) -> set[str]:
        return {vote.user_id for vote in self.votes}

    def check_may_decide(self, user_id: str, approvers: set[str]) -> None:
        """Raise NotAllowed unless ``user_id`` may decide this request now."""
        allow_self = self.gate.allow_self_approval if self.gate else False
        if user_id == self.requester.user_id and not allow_self:
            raise NotAllowed(
                self.id, user_id, "You asked for this action, so someone else must approve it."
            )
        if user_id not in approvers:
            raise NotAllowed(
                self.id, user_id, "You are not one of this request's approvers.", self.gate
            )
        if user_id in self.voters:
            missing = self.quorum - len(self.votes)
            raise NotAllowed(
                self.id,
                user_id,
                f"You approved this request already; it needs {missing} more approval"
                f"{'s' if missing != 1 else ''} from someone else.",
            )

    def responses(self) -> list[Any]:
        """The inputs that resume the conversation: executed results, then each decided call."""
        if self.decision is None:
            raise ValueError(f"approval {self.id} has no decision")
        deferred = DeferredToolCallsException.from_dict(self.deferral)  # type: ignore[arg-type]
        screened = {call.tool_call_id: call for call in self.calls}
        responses: list[DeferredToolCallResponse] = []
        for call in deferred.deferred_calls:
            mine = screened.get(call.tool_call_id)
            auto = mine.auto if mine else None
            if auto is Auto.DENY:
                assert mine is not None
                responses.append(call.reject(mine.note or "Denied by the approval policy."))
            elif auto in (Auto.ALLOW, Auto.GRANT) or self.decision.status is Status.APPROVED:
                responses.append(call.confirm())
            else:
                responses.append(call.reject(self.rejection_message()))
        return [*deferred.executed_results, *responses]

    def rejection_message(self) -> str:
        """What the model reads when the call was denied."""
        assert self.decision is not None
        if self.decision.reason:
            return self.decision.reason
        return "A person denied this action without giving a reason. Do not retry it."

    def decided(self, decision: Decision, votes: Sequence[Vote] | None = None) -> ApprovalRequest:
        return replace(
            self,
            status=decision.status,
            decision=decision,
            votes=self.votes if votes is None else tuple(votes),
        )

    def to_json(self) -> str:
        data = asdict(self)
        data["gate"] = self.gate.to_dict() if self.gate else None
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> ApprovalRequest:
        data = json.loads(text)
        decision = data.get("decision")
        card = data.get("card")
        placeholder = data.get("placeholder")
        return cls(
            id=data["id"],
            thread=ThreadRef(**data["thread"]),
            requester=Requester(**data["requester"]),
            conversation_id=data["conversation_id"],
            calls=tuple(_call_from_dict(call) for call in data["calls"]),
            deferral=data["deferral"],
            approvals_channel=data["approvals_channel"],
            gate=_gate_from_dict(data),
            created_at=data["created_at"],
            status=Status(data.get("status", Status.PENDING)),
            decision=Decision(**{**decision, "status": Status(decision["status"])})
            if decision
            else None,
            votes=tuple(Vote(**vote) for vote in data.get("votes") or ()),
            card=MessageRef(**card) if card else None,
            card_link=data.get("card_link"),
            resume=Resume(data.get("resume", Resume.WAITING)),
            outcome=data.get("outcome"),
            placeholder=MessageRef(**placeholder) if placeholder else None,
            follow_up_id=data.get("follow_up_id"),
            extra=data.get("extra", {}),
        )


def calls_of(deferred: DeferredToolCallsException) -> tuple[ToolCall, ...]:
    """The calls of a deferral, as approvers see them."""
    return tuple(
        ToolCall(
            tool_call_id=dc.tool_call_id,
            name=dc.tool_name,
            arguments=dc.arguments
            if isinstance(dc.arguments, str)
            else json.dumps(dc.arguments, ensure_ascii=False),
            server_side=dc.reason.value == "server_side_confirmation_required",
        )
        for dc in deferred.deferred_calls
    )


def _call_from_dict(data: dict[str, Any]) -> ToolCall:
    auto = data.get("auto")
    return ToolCall(**{**data, "auto": Auto(auto) if auto else None})


def _gate_from_dict(data: dict[str, Any]) -> Gate | None:
    """The record's gate; schema 1 records had a channel and a self-approval flag instead."""
    if "gate" in data:
        return Gate.from_dict(data["gate"]) if data["gate"] else None
    return Gate(
        requirements=(Approvers(channel=data["approvals_channel"]),),
        allow_self_approval=bool(data.get("allow_self_approval", False)),
    )
