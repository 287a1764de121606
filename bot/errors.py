"""The package's exceptions.

Every exception the bot raises on purpose derives from :class:`BotError`::

    BotError
    ├── ConfigError            a setting or the config file is wrong; start-up stops (exit 2)
    ├── ApprovalError          an approval request cannot take this action
    │   ├── ApprovalNotFound   no request with that id (never existed, or expired)
    │   ├── NotAllowed         the person may not decide this request
    │   ├── AlreadyDecided     somebody decided first
    │   ├── StaleCard          the arguments were edited after the person looked
    │   └── EditRefused        edited arguments fall under another rule, or a deny
    ├── NotEditable            a call's arguments cannot be edited in a form (bot.core.editing)
    ├── InvalidInput           an HTTP API request is malformed; names the field (bot.api)
    │   └── ClientNotAllowed   an API client may not do this (a requester it may not use)
    └── UpstreamError          Mistral, Slack or Redis failed; the state is kept and retryable
"""

from __future__ import annotations

from typing import Any


class BotError(Exception):
    """Base class of every error the bot raises on purpose."""


class ConfigError(BotError):
    """The environment or the config file is wrong. Carries every problem found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"Configuration error in {self.source}:"]
        lines.extend(f"  - {problem}" for problem in self.problems)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"ConfigError(source={self.source!r}, problems={self.problems!r})"


class ApprovalError(BotError):
    """An approval request cannot take the asked action."""

    def __init__(self, approval_id: str, message: str) -> None:
        self.approval_id = approval_id
        super().__init__(message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(approval_id={self.approval_id!r}, message={str(self)!r})"


class ApprovalNotFound(ApprovalError):
    """No approval request with that id."""

    def __init__(self, approval_id: str) -> None:
        super().__init__(approval_id, f"approval request {approval_id!r} not found")


class NotAllowed(ApprovalError):
    """The person may not decide this request; ``reason`` is shown to them."""

    def __init__(self, approval_id: str, user_id: str, reason: str, approvers: Any = None) -> None:
        self.user_id = user_id
        self.reason = reason
        #: who may decide instead (a ``bot.core.policy.Gate``), when that is the reason
        self.approvers = approvers
        super().__init__(approval_id, reason)


class AlreadyDecided(ApprovalError):
    """The request was decided before this decision arrived."""

    def __init__(self, approval_id: str, status: str, decided_by: str | None) -> None:
        self.status = status
        self.decided_by = decided_by
        super().__init__(approval_id, f"already {status} by {decided_by}")


class StaleCard(ApprovalError):
    """The arguments were edited after the person looked at the card; they must look again."""

    def __init__(self, approval_id: str, user_id: str) -> None:
        self.user_id = user_id
        super().__init__(approval_id, "the arguments changed since the card was shown")


class EditRefused(ApprovalError):
    """Edited arguments that the editor may not approve: the policy denies them, or routes
    them to other approvers. ``field`` is the form field to show ``reason`` under."""

    def __init__(self, approval_id: str, user_id: str, reason: str, field: str = "") -> None:
        self.user_id = user_id
        self.reason = reason
        self.field = field
        super().__init__(approval_id, reason)


class InvalidInput(BotError):
    """A request to the HTTP API that cannot be taken as it is: ``field`` names the part
    (a JSON pointer into the body, or a header), ``detail`` says what is wrong and the fix."""

    def __init__(self, field: str, detail: str, status: int = 422) -> None:
        self.field = field
        self.detail = detail
        self.status = status
        super().__init__(f"{field}: {detail}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(field={self.field!r}, detail={self.detail!r})"


class ClientNotAllowed(InvalidInput):
    """The API client may not do this (ask on behalf of that requester): 403."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(field, detail, status=403)


class UpstreamError(BotError):
    """A service the bot depends on failed.

    ``service`` is ``"mistral"``, ``"slack"`` or ``"redis"``; ``status`` the HTTP status if
    there was one. ``conversation_id`` is set when a Mistral conversation had been started
    before the failure, so that the caller can keep it.
    """

    def __init__(
        self,
        service: str,
        message: str,
        *,
        status: int | None = None,
        conversation_id: str | None = None,
        code: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.service = service
        self.status = status
        self.conversation_id = conversation_id
        #: the service's own error code (Slack's ``error`` field: ``not_in_channel``, …)
        self.code = code
        #: for a permanent failure, what a person must change (an invite, a scope) before
        #: trying again can help; None for a failure worth retrying
        self.fix = fix
        super().__init__(message)

    @property
    def permanent(self) -> bool:
        return self.fix is not None

    def __repr__(self) -> str:
        return (
            f"UpstreamError(service={self.service!r}, status={self.status!r}, "
            f"code={self.code!r}, permanent={self.permanent!r}, message={str(self)!r})"
        )
