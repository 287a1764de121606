"""The approval lifecycle: what a request holds, who may decide it, what a decision means.

Pure domain code: no Slack, no HTTP, no Redis.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from mistralai.extra.exceptions import (
    DeferredToolCallResponse,
    DeferredToolCallsException,
)

from bot.errors import NotAllowed


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"


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
    status: Status
    user_id: str
    at: float
    reason: str | None = None


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
    approvals_channel: str
    allow_self_approval: bool
    created_at: float
    status: Status = Status.PENDING
    decision: Decision | None = None
    card: MessageRef | None = None
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
        allow_self_approval: bool,
        placeholder: MessageRef | None = None,
    ) -> ApprovalRequest:
        calls = tuple(
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
        return cls(
            id=new_approval_id(),
            thread=thread,
            requester=requester,
            conversation_id=deferred.conversation_id or "",
            calls=calls,
            deferral=dict(deferred.to_dict()),
            approvals_channel=approvals_channel,
            allow_self_approval=allow_self_approval,
            created_at=time.time(),
            placeholder=placeholder,
        )

    @property
    def tool_names(self) -> list[str]:
        return [call.name for call in self.calls]

    def check_may_decide(self, user_id: str, approvers: set[str]) -> None:
        """Raise NotAllowed unless ``user_id`` may decide this request."""
        if user_id == self.requester.user_id and not self.allow_self_approval:
            raise NotAllowed(
                self.id, user_id, "You asked for this action, so someone else must approve it."
            )
        if user_id not in approvers:
            raise NotAllowed(
                self.id,
                user_id,
                f"Only members of <#{self.approvals_channel}> can decide this request.",
            )

    def responses(self) -> list[Any]:
        """The inputs that resume the conversation: executed results, then each decided call."""
        if self.decision is None:
            raise ValueError(f"approval {self.id} has no decision")
        deferred = DeferredToolCallsException.from_dict(self.deferral)  # type: ignore[arg-type]
        responses: list[DeferredToolCallResponse] = []
        for call in deferred.deferred_calls:
            if self.decision.status is Status.APPROVED:
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

    def decided(self, decision: Decision) -> ApprovalRequest:
        return replace(self, status=decision.status, decision=decision)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

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
            calls=tuple(ToolCall(**call) for call in data["calls"]),
            deferral=data["deferral"],
            approvals_channel=data["approvals_channel"],
            allow_self_approval=data["allow_self_approval"],
            created_at=data["created_at"],
            status=Status(data.get("status", Status.PENDING)),
            decision=Decision(**{**decision, "status": Status(decision["status"])})
            if decision
            else None,
            card=MessageRef(**card) if card else None,
            resume=Resume(data.get("resume", Resume.WAITING)),
            outcome=data.get("outcome"),
            placeholder=MessageRef(**placeholder) if placeholder else None,
            follow_up_id=data.get("follow_up_id"),
            extra=data.get("extra", {}),
        )
