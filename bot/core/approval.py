"""The approval lifecycle: what a request holds, who may decide it, what a decision means.

Pure domain code: no Slack, no HTTP, no Redis, no Mistral SDK (bot.mistral.deferral turns a request
into the SDK's objects; tests/test_purity.py checks it).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from bot.core.policy import Gate
from bot.errors import AlreadyDecided, NotAllowed

#: What the model reads for an approved call whose arguments are not a JSON object.
NOT_JSON = (
    "This call was approved, but its arguments are not a valid JSON object, so it did not run. "
    "Call the tool again with JSON arguments if it is still needed."
)


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    MIXED = "mixed"  # a request only: some calls approved, others denied
    EXPIRED = "expired"  # nobody decided in time (not a denial)


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
    gate: Gate | None = None  # who decides it, when a person does
    #: the parameter JSON schema the model saw, kept when approvers may edit the arguments
    parameters: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def editable(self) -> bool:
        """Whether an approver may change the arguments (server-side calls cannot be)."""
        return (
            self.auto is None
            and not self.server_side
            and self.gate is not None
            and self.gate.allow_edit
            and self.parameters is not None
        )

    def pretty_arguments(self) -> str:
        """The arguments as indented JSON, or verbatim if the model sent something else."""
        return _pretty(self.arguments)


@dataclass(frozen=True)
class CallAnswer:
    """What the model gets for one deferred call: run it (with ``override`` arguments merged
    over its own, when a person edited them), or a rejection with ``message``."""

    approved: bool
    override: dict[str, Any] | None = None
    message: str = ""


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
        return not self.user_id and self.status is not Status.EXPIRED


@dataclass(frozen=True)
class Vote:
    """One approval towards a quorum."""

    user_id: str
    at: float


@dataclass(frozen=True)
class Edit:
    """A person's change to a call's arguments, made when approving it."""

    arguments: str  # what the call runs with (JSON)
    override: dict[str, Any]  # the changed keys: the SDK's ``override_args``
    user_id: str
    at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Edit:
        return cls(
            str(data["arguments"]),
            dict(data.get("override") or {}),
            str(data["user_id"]),
            float(data["at"]),
        )

    def pretty_arguments(self) -> str:
        return _pretty(self.arguments)


@dataclass(frozen=True)
class CallDecision:
    """Where a person's decision on one call stands."""

    status: Status = Status.PENDING  # pending, approved or denied
    votes: tuple[Vote, ...] = ()
    user_id: str = ""  # who decided: the approval that reached the quorum, or the denier
    at: float = 0.0
    reason: str | None = None  # a denier's reason
    edit: Edit | None = None

    def to_dict(self) -> dict[str, Any]:
        """The stored form; the edit is JSON text, opaque to the Lua scripts (whose JSON
        library would round numbers in the arguments)."""
        return {
            "status": self.status.value,
            "votes": [{"user_id": v.user_id, "at": v.at} for v in self.votes],
            "user_id": self.user_id,
            "at": self.at,
            "reason": self.reason,
            "edit": json.dumps(self.edit.to_dict(), ensure_ascii=False) if self.edit else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallDecision:
        edit = data.get("edit")
        votes = data.get("votes") or []  # Lua's cjson writes an empty list as {}
        return cls(
            status=Status(data.get("status") or Status.PENDING),
            votes=tuple(Vote(str(v["user_id"]), float(v["at"])) for v in votes)
            if isinstance(votes, list)
            else (),
            user_id=str(data.get("user_id") or ""),
            at=float(data.get("at") or 0.0),
            reason=data.get("reason") or None,
            edit=Edit.from_dict(json.loads(edit)) if isinstance(edit, str) and edit else None,
        )


def new_approval_id() -> str:
    return secrets.token_hex(12)


def excerpt(text: str, limit: int = 280) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class ApprovalRequest:
    """A deferral: its calls, each decided by the policy or waiting for (or past) people.

    ``decisions`` runs parallel to ``calls``. A call the policy decided is approved or denied
    from the start; every other waits for its own approvers (``call.gate``). The request is
    decided (``status``/``decision``) when its last call is.
    """

    id: str
    thread: ThreadRef
    requester: Requester
    conversation_id: str
    calls: tuple[ToolCall, ...]
    deferral: dict[str, Any]  # DeferredToolCallsException.to_dict()
    approvals_channel: str  # where the card goes
    created_at: float
    decisions: tuple[CallDecision, ...] = ()
    status: Status = Status.PENDING
    decision: Decision | None = None  # set with the last call's decision
    revision: int = 0  # bumped by every edit: a click on an older card is refused
    card: MessageRef | None = None
    card_link: str | None = None
    resume: Resume = Resume.WAITING
    outcome: str | None = None  # one line on what happened after the decision
    placeholder: MessageRef | None = None  # the requester-thread message to update
    follow_up_id: str | None = None  # the next approval, when the resumed run deferred again
    expires_at: float | None = None  # undecided by then, the request expires
    extra: dict[str, Any] = field(default_factory=dict)
    origin: str = ""  # the HTTP API client that asked ("": a Slack conversation); see bot.api

    def __post_init__(self) -> None:
        if not self.decisions:
            object.__setattr__(
                self, "decisions", tuple(initial_decision(call) for call in self.calls)
            )
        if len(self.decisions) != len(self.calls):
            raise ValueError(f"approval {self.id}: {len(self.calls)} calls, decisions differ")

    @classmethod
    def create(
        cls,
        *,
        conversation_id: str,
        deferral: dict[str, Any],
        calls: Sequence[ToolCall],
        thread: ThreadRef,
        requester: Requester,
        approvals_channel: str,
        placeholder: MessageRef | None = None,
    ) -> ApprovalRequest:
        """A request for a deferral (its stored state, ``DeferredToolCallsException.to_dict()``);
        ``calls`` as screened by the policy. It expires after the shortest ``expire_after``
        of the rules its calls wait under. (bot.mistral.deferral builds one from the SDK's
        exception.)"""
        calls = tuple(calls)
        now = time.time()
        waits = [c.gate.expire_after_s for c in calls if c.auto is None and c.gate is not None]
        return cls(
            id=new_approval_id(),
            thread=thread,
            requester=requester,
            conversation_id=conversation_id,
            calls=calls,
            deferral=dict(deferral),
            approvals_channel=approvals_channel,
            created_at=now,
            expires_at=now + min(waits) if waits else None,
            placeholder=placeholder,
        )

    @property
    def tool_names(self) -> list[str]:
        return [call.name for call in self.calls]

    @property
    def asked(self) -> list[int]:
        """Indices of the calls a person decides (the policy decided the others)."""
        return [index for index, call in enumerate(self.calls) if call.auto is None]

    @property
    def asked_calls(self) -> list[ToolCall]:
        return [self.calls[index] for index in self.asked]

    @property
    def undecided(self) -> list[int]:
        """Indices of the calls still waiting for people."""
        return [i for i in self.asked if self.decisions[i].status is Status.PENDING]

    @property
    def gates(self) -> list[Gate]:
        """The distinct gates of the calls people decide, in call order."""
        found: list[Gate] = []
        for call in self.asked_calls:
            if call.gate is not None and call.gate not in found:
                found.append(call.gate)
        return found

    @property
    def remind_every_s(self) -> int | None:
        """How often to remind the approvers: the shortest interval of the calls' rules."""
        every = [gate.remind_every_s for gate in self.gates if gate.remind_every_s]
        return min(every) if every else None

    @property
    def voters(self) -> set[str]:
        return {vote.user_id for d in self.decisions for vote in d.votes}

    @property
    def edited(self) -> list[int]:
        return [i for i, d in enumerate(self.decisions) if d.edit is not None]

    @property
    def deciders(self) -> list[str]:
        """Everyone who approved or denied a call, in order of first decision."""
        people: list[str] = []
        for d in self.decisions:
            for user in [v.user_id for v in d.votes] + [d.user_id]:
                if user and user not in people:
                    people.append(user)
        return people

    def call_index(self, tool_call_id: str) -> int | None:
        return next((i for i, c in enumerate(self.calls) if c.tool_call_id == tool_call_id), None)

    def arguments_of(self, index: int) -> str:
        """What the call runs with: the edited arguments, else the model's."""
        edit = self.decisions[index].edit
        return edit.arguments if edit else self.calls[index].arguments

    def check_may_decide(
        self, user_id: str, index: int, approvers: set[str], *, voting: bool = True
    ) -> None:
        """Raise NotAllowed (or AlreadyDecided) unless ``user_id`` may decide call ``index``
        now. ``voting``: an approval, which counts once per person (a deny or an edit may
        follow one's own approval)."""
        if not 0 <= index < len(self.calls):
            raise NotAllowed(self.id, user_id, "That button names no call of this request.")
        if index not in self.asked:
            raise NotAllowed(self.id, user_id, "That call is not one a person decides.")
        call, decision = self.calls[index], self.decisions[index]
        if decision.status is not Status.PENDING:
            raise AlreadyDecided(self.id, f"{decision.status.value}", decision.user_id or None)
        gate = call.gate
        if user_id == self.requester.user_id and not (gate and gate.allow_self_approval):
            raise NotAllowed(
                self.id, user_id, "You asked for this action, so someone else must approve it."
            )
        if user_id not in approvers:
            raise NotAllowed(
                self.id, user_id, f"You are not one of the approvers of `{call.name}`.", gate
            )
        if voting and user_id in {vote.user_id for vote in decision.votes}:
            missing = (gate.quorum if gate else 1) - len(decision.votes)
            raise NotAllowed(
                self.id,
                user_id,
                f"You approved `{call.name}` already; it needs {missing} more approval"
                f"{'s' if missing != 1 else ''} from someone else.",
            )

    def answer(self, tool_call_id: str) -> CallAnswer:
        """What goes back to the model for one deferred call, as decided (bot.mistral.deferral turns
        it into the SDK's confirmation or rejection)."""
        if self.status is Status.PENDING:
            raise ValueError(f"approval {self.id} is not decided")
        index = self.call_index(tool_call_id)
        if index is None:  # not in the record: nobody approved it
            return CallAnswer(False, message="Nobody approved this action. Do not retry it.")
        decision = self.decisions[index]
        if decision.status is Status.APPROVED and not self._runnable(index):
            return CallAnswer(False, message=NOT_JSON)
        if decision.status is Status.APPROVED:
            edit = decision.edit
            return CallAnswer(True, override=edit.override if edit and edit.override else None)
        return CallAnswer(False, message=self.rejection_message(index))

    def server_side_note(self) -> str | None:
        """Why server-side calls were rejected, as one message for the model (None: none was).

        A connector's or built-in's rejection goes back as a tool confirmation, which holds
        only allow or deny: the SDK drops the reason. The spec lets an append carry input
        entries beside the confirmations, so the reasons (a person's, the policy's, or "nobody
        decided in time") follow as a user-role message that says where it comes from."""
        lines = [
            f"- `{self.calls[index].name}` (call {self.calls[index].tool_call_id}): "
            f"{self.rejection_message(index)}"
            for index, call in enumerate(self.calls)
            if call.server_side and self.decisions[index].status is not Status.APPROVED
        ]
        if not lines:
            return None
        return (
            "Message from the approval system, not from the user: these tool calls were not "
            "allowed to run.\n" + "\n".join(lines)
        )

    def _runnable(self, index: int) -> bool:
        """Whether an approved call can run: a local call needs a JSON object of arguments
        (the model can send anything; the SDK would fail on it, and so would every retry)."""
        if self.calls[index].server_side:
            return True
        try:
            return isinstance(json.loads(self.arguments_of(index)), dict)
        except ValueError:
            return False

    def rejection_message(self, index: int) -> str:
        """What the model reads when call ``index`` was denied, or expired undecided."""
        call, decision = self.calls[index], self.decisions[index]
        if decision.status is Status.EXPIRED:
            waited = _duration(decision.at - self.created_at)
            return (
                f"The request for approval expired after {waited} without a decision. This is "
                "not a denial: nobody decided. The action did not run. Tell the user; they can "
                "ask again."
            )
        if call.auto is Auto.DENY:
            return call.note or "Denied by the approval policy."
        if decision.reason:
            return decision.reason
        return "A person denied this action without giving a reason. Do not retry it."

    def edit_note(self, index: int) -> str | None:
        """What the model reads before the result of a call a person edited."""
        edit = self.decisions[index].edit
        if edit is None:
            return None
        return (
            "Note: before approving, a person changed the arguments of this call. It ran with "
            f"{edit.arguments} instead of {self.calls[index].arguments}."
        )

    def with_decisions(self, decisions: Sequence[CallDecision]) -> ApprovalRequest:
        return replace(self, decisions=tuple(decisions))

    def decided_by_policy(self, at: float) -> ApprovalRequest:
        """The request with every call decided by the policy alone."""
        return replace(
            self, status=overall(self.decisions), decision=Decision(overall(self.decisions), "", at)
        )


def overall(decisions: Sequence[CallDecision]) -> Status:
    """A request's status from its calls': approved, denied, mixed, or still pending."""
    statuses = {d.status for d in decisions}
    if Status.PENDING in statuses:
        return Status.PENDING
    if Status.EXPIRED in statuses:
        return Status.EXPIRED
    if statuses == {Status.APPROVED}:
        return Status.APPROVED
    if statuses == {Status.DENIED}:
        return Status.DENIED
    return Status.MIXED


def _duration(seconds: float) -> str:
    """``90`` -> "2 minutes", ``86400`` -> "24 hours" (for people and the model)."""
    minutes = max(1, round(seconds / 60))
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = round(minutes / 60)
    return f"{hours} hours" if hours < 72 else f"{round(hours / 24)} days"


def _pretty(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), indent=2, ensure_ascii=False)
    except ValueError:
        return arguments


def initial_decision(call: ToolCall) -> CallDecision:
    """A call's decision before anyone votes: the policy's, or pending."""
    if call.auto is Auto.DENY:
        return CallDecision(Status.DENIED, reason=call.note)
    if call.auto is not None:
        return CallDecision(Status.APPROVED)
    return CallDecision()
