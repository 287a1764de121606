"""The port through which the core talks to people. The Slack adapter implements it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from bot.core.approval import ApprovalRequest, MessageRef, ThreadRef


@dataclass(frozen=True)
class IncomingMessage:
    """A person's message to the agent, in a thread."""

    thread: ThreadRef
    user_id: str
    text: str
    ts: str
    #: sent before, and that sending failed in a way that may have come after Mistral took
    #: it (a Retry): the conversation's history is read before it is sent again
    resent: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IncomingMessage:
        return cls(
            thread=ThreadRef(**data["thread"]),
            user_id=data["user_id"],
            text=data["text"],
            ts=data["ts"],
            resent=bool(data.get("resent", False)),
        )


class Chat(Protocol):
    """What the core needs from the chat surface. Methods raise UpstreamError on failure."""

    async def show_working(self, thread: ThreadRef) -> MessageRef:
        """Post a placeholder that says the agent is working; the answer replaces it."""

    async def post_answer(
        self, thread: ThreadRef, markdown: str, placeholder: MessageRef | None
    ) -> None:
        """Post the model's answer (Markdown) in the thread, replacing the placeholder."""

    async def post_failure(
        self,
        thread: ThreadRef,
        problem: str,
        placeholder: MessageRef | None,
        retry_turn_id: str | None,
    ) -> None:
        """Say in the thread that a run failed, with a Retry button when it can be retried."""

    async def tell_queued(self, message: IncomingMessage, busy_state: str, position: int) -> None:
        """Say that the message waits behind the thread's running work or pending approval."""

    async def post_card(self, request: ApprovalRequest) -> MessageRef:
        """Post the approval card where the request's approvers will see it."""

    async def update_card(self, request: ApprovalRequest) -> None:
        """Show the request's current state on its card."""

    async def tell_awaiting(self, request: ApprovalRequest) -> None:
        """Say in the requester's thread that the action waits for approval, and where."""

    async def tell_card_failed(
        self, request: ApprovalRequest, problem: str, fix: str | None = None
    ) -> None:
        """Say in the requester's thread that the card could not be posted; ``fix``: what a
        person must do first (a permanent failure, not retried), None: it is retried."""

    async def tell_resume_failed(self, request: ApprovalRequest, problem: str) -> None:
        """Say in the requester's thread that the decision was taken but resuming failed."""

    async def permalink(self, message: MessageRef) -> str | None:
        """A link to a message, or None if it cannot be had."""

    async def channel_members(self, channel_id: str) -> set[str]:
        """Every member of a channel."""

    async def usergroup_members(self, usergroup_id: str) -> set[str]:
        """Every member of a user group."""

    async def usergroups(self) -> dict[str, set[str]]:
        """Every user group of the workspace, with its members."""

    async def tell_decided(self, request: ApprovalRequest) -> None:
        """Say in the requester's thread how people decided each call (edits side by side)."""

    async def remind(self, request: ApprovalRequest) -> None:
        """Remind the approvers, in the card's thread, that the request still waits."""

    async def tell_outcome_unknown(self, request: ApprovalRequest, names: list[str]) -> None:
        """Say in the requester's thread and the card's that these approved calls were
        interrupted and not run again: a person must check what happened."""

    async def tell_policy(self, request: ApprovalRequest) -> None:
        """Say in the requester's thread which calls the policy denied or a grant allowed."""

    async def tell_user(self, user_id: str, text: str, channel_id: str | None = None) -> None:
        """A private note to one person (ephemeral in ``channel_id``, else a DM)."""

    async def user_by_email(self, email: str) -> str | None:
        """The id of the active person with this email (None: nobody); for HTTP API clients
        that name their requester by email."""
