"""The App Home tab: each person's queue of requests to decide, and their own requests."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.console import Console
from bot.errors import UpstreamError
from bot.slack import console_blocks
from bot.slack.adapter import SlackChat
from bot.slack.background import Background

logger = logging.getLogger(__name__)


async def publish_home(console: Console, chat: SlackChat, user_id: str) -> None:
    """Build and publish ``user_id``'s App Home; a Slack failure is logged, not raised."""
    view = console_blocks.home_view(
        user_id,
        await console.actionable(user_id),
        await console.recent(user_id),
        await console.directory.is_admin(user_id),
    )
    try:
        await chat.publish_home(user_id, view)
    except UpstreamError as error:
        logger.error("App Home of %s not published: %r", user_id, error)


def register(app: AsyncApp, console: Console, chat: SlackChat, background: Background) -> None:
    @app.event("app_home_opened")
    @background.after_ack
    async def on_home_opened(event: dict[str, Any]) -> None:
        user = event.get("user")
        if event.get("tab", "home") != "home" or not isinstance(user, str):
            return
        await publish_home(console, chat, user)
