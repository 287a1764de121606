"""What the flow tells the logs and people when something fails on the way: a call whose
failure must not stop the flow (:func:`quietly`), a failure in words (:func:`problem`), and
the log context of a request or a message."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from contextlib import AbstractContextManager
from typing import TypeVar

from bot.core.approval import ApprovalRequest
from bot.errors import UpstreamError
from bot.flow.chat import IncomingMessage
from bot.logs import log_context
from bot.storage.connections import STORAGE_ERRORS

logger = logging.getLogger(__name__)

#: what a listener or service reports to a person instead of raising
_FAILURES: tuple[type[Exception], ...] = (UpstreamError, *STORAGE_ERRORS)

T = TypeVar("T")


async def quietly(call: Awaitable[T]) -> T | None:
    """Run a chat (or audit) call whose failure must not stop the flow; log what failed."""
    try:
        return await call
    except _FAILURES as error:
        logger.error("call failed, continuing: %r", error)
        return None


def request_fields(request: ApprovalRequest, user: str | None = None) -> dict[str, str | None]:
    """The log fields of a request: ``user`` is whoever acts on it (default: its requester)."""
    return {
        "approval_id": request.id,
        "conversation_id": request.conversation_id or None,
        "team": request.thread.team_id,
        "channel": request.thread.channel_id,
        "user": user or request.requester.user_id,
    }


def about_request(
    request: ApprovalRequest, user: str | None = None
) -> AbstractContextManager[None]:
    return log_context(**request_fields(request, user))


def about_message(message: IncomingMessage) -> AbstractContextManager[None]:
    thread = message.thread
    return log_context(team=thread.team_id, channel=thread.channel_id, user=message.user_id)


def problem(error: UpstreamError) -> str:
    if error.service == "mistral":
        status = f" (HTTP {error.status})" if error.status else ""
        return f"The model service (Mistral) failed{status}."
    return f"{error.service.capitalize()} failed."
