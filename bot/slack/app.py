"""Builds the Bolt app. Listeners live in ``bot.slack.listeners``."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse

from bot.flow.agent_view import AgentView
from bot.flow.assistant import Assistant
from bot.flow.console import Console
from bot.slack import admission, listeners
from bot.slack.adapter import SlackChat
from bot.slack.admission import Admission
from bot.slack.background import Background

logger = logging.getLogger(__name__)


def build_bolt_app(
    assistant: Assistant,
    console: Console,
    chat: SlackChat,
    background: Background,
    *,
    signing_secret: str | None,
    people: Admission | None = None,
    agent_view: AgentView | None = None,
) -> AsyncApp:
    """The Bolt app. ``signing_secret=None`` (Socket Mode) turns request signing off;
    ``people``: whom the bot serves beyond its install's workspace (the defaults of the
    settings when not given)."""
    app = AsyncApp(
        client=chat.client,
        signing_secret=signing_secret or "",
        request_verification_enabled=signing_secret is not None,
        # Each listener runs in a task and the response leaves at its ack() (see
        # bot.slack.background); Bolt's own mode for this polls for the ack every 10 ms.
        process_before_response=True,
        raise_error_for_unhandled_request=False,
    )

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> BoltResponse:
        # A listener failed after its ack (a bug, or Redis gone): log it with what came in;
        # the state it had stored stays in Redis for a retry.
        logger.error(
            "listener failed for %s: %r",
            body.get("type") or "request",
            error,
            exc_info=error,
        )
        return BoltResponse(status=500, body="")

    admission.register(app, chat, background, people or Admission())
    listeners.register(app, assistant, console, chat, background, agent_view)
    return app
