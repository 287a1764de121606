"""The client's exceptions (under the package's one base, ``bot.errors.BotError``)::

ApprovalClientError
├── ApiProblem        the API refused the request (its problem+json, with the field)
├── ApprovalExpired   nobody decided in time; ``inputs`` still resume the conversation
└── ApprovalTimeout   ``decide()`` waited ``timeout`` seconds; the request still waits
"""

from __future__ import annotations

from typing import Any

from bot.errors import BotError


class ApprovalClientError(BotError):
    """Base of the client's errors."""


class ApiProblem(ApprovalClientError):
    """An answer other than 2xx: ``status``, and the problem's ``detail`` and ``field``."""

    def __init__(self, status: int, detail: str, field: str | None = None) -> None:
        self.status = status
        self.detail = detail
        self.field = field
        where = f" ({field})" if field else ""
        super().__init__(f"HTTP {status}{where}: {detail}")

    def __repr__(self) -> str:
        return f"ApiProblem(status={self.status!r}, field={self.field!r}, detail={self.detail!r})"


class ApprovalExpired(ApprovalClientError):
    """Nobody decided some call in time. ``approval`` is the request as the API shows it;
    ``inputs`` resume the conversation with every undecided call rejected (the model reads
    that nobody decided), should the agent want to tell its user."""

    def __init__(self, approval: dict[str, Any], inputs: list[Any]) -> None:
        self.approval = approval
        self.inputs = inputs
        super().__init__(f"approval request {approval.get('id')} expired without a decision")


class ApprovalTimeout(ApprovalClientError):
    """``decide()`` gave up waiting; the request still waits in Slack (poll it again with
    ``wait_for(approval_id, …)``)."""

    def __init__(self, approval_id: str, waited_s: float) -> None:
        self.approval_id = approval_id
        self.waited_s = waited_s
        super().__init__(f"no decision on {approval_id} after {waited_s:.0f} s")
