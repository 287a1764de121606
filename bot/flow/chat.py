"""The port through which the core talks to people. The Slack adapter implements it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from bot.core.approval import ApprovalRequest, MessageRef, ThreadRef
from bot.core.steps import Step


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

    async def show_working(
        self, thread: ThreadRef, message: IncomingMessage | None = None
    ) -> MessageRef | None:
        """Show that the agent works on ``message``: a placeholder that the answer replaces,
        or None where the thread shows a native status instead (no placeholder)."""

    async def show_step(
        self, thread: ThreadRef, step: Step, request: ApprovalRequest | None = None
    ) -> None:
        """Show one step of the run (a tool call) where the thread shows steps; ``request``:
        the decided request a resumed run carries out."""

    async def show_decisions(self, request: ApprovalRequest) -> None:
        """Where the thread shows steps: each call as decided, as the conversation resumes."""

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


class AgentSurface(Protocol):
    """Slack's methods for AI apps (the Slack adapter implements them). Each raises
    UpstreamError, with Slack's error as its ``code``, when Slack refuses."""

    async def set_status(self, thread: ThreadRef, status: str) -> None:
        """The thread's native status ("is thinking…"); "" clears it."""

    async def channel_name(self, channel_id: str) -> str | None:
        """A channel's name (without ``#``), for plain-text statuses; None if unknown."""

    async def set_title(self, thread: ThreadRef, title: str) -> None:
        """The assistant thread's title (untrusted text, shown inert)."""

    async def set_suggested_prompts(
        self, thread: ThreadRef, title: str, prompts: Sequence[tuple[str, str]]
    ) -> None:
        """Prompts offered in an assistant thread: (what the button says, what it sends)."""

    async def start_stream(
        self, thread: ThreadRef, recipient: str, steps: Sequence[Step], display: str
    ) -> str:
        """Start a streamed reply in the thread for ``recipient`` (a user id), with
        ``steps`` as tasks shown as a ``plan`` or a ``timeline``; its ts."""

    async def append_stream(
        self, thread: ThreadRef, ts: str, steps: Sequence[Step], markdown: str = ""
    ) -> None:
        """Add steps (new tasks or updates of shown ones) and Markdown to a stream."""

    async def stop_stream(
        self, thread: ThreadRef, ts: str, steps: Sequence[Step], markdown: str = ""
    ) -> None:
        """End the stream with its last steps and Markdown."""

    async def post_thread_card(self, request: ApprovalRequest) -> MessageRef:
        """The request's buttons, in the requester's thread (the card's own block ids)."""

    async def update_thread_card(self, message: MessageRef, request: ApprovalRequest) -> None:
        """Show the request as it stands in that message (no buttons once decided)."""
