"""Builds the Bolt app. Listeners live in ``bot.slack.listeners``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.response import BoltResponse

from bot.assistant import Assistant
from bot.console import Console
from bot.slack import listeners
from bot.slack.adapter import SlackChat
from bot.slack.background import Background

logger = logging.getLogger(__name__)


def build_bolt_app(
    assistant: Assistant,
    console: Console,
    chat: SlackChat,
    background: Background,
    *,
    signing_secret: str | None,
) -> AsyncApp:
    """The Bolt app. ``signing_secret=None`` (Socket Mode) turns request signing off."""
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

    @app.middleware
    async def same_workspace(
        context: AsyncBoltContext, next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        """A signed request about another workspace than the token's is ignored (answered
        200, so that Slack does not send it again); it changes nothing."""
        installed = context.authorize_result.team_id if context.authorize_result else None
        if (
            installed
            and context.team_id
            and context.team_id != installed
            and not context.is_enterprise_install
        ):
            logger.warning(
                "ignoring a request for workspace %s; this bot serves %s",
                context.team_id,
                installed,
            )
            return BoltResponse(status=200, body="")
        await next()
        return None

    listeners.register(app, assistant, console, chat, background)
    return app
