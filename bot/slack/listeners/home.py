"""The App Home tab: each person's queue of requests to decide, and their own requests."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.errors import UpstreamError
from bot.flow.console import Console
from bot.slack import console_blocks
from bot.slack.adapter import SlackChat
from bot.slack.background import Background

logger = logging.getLogger(__name__)


#: The farthest a page button may point into the pending list (a tampered value beyond it
#: shows the first page).
_MAX_START = 10_000_000


async def publish_home(console: Console, chat: SlackChat, user_id: str, start: int = 0) -> None:
    """Build and publish ``user_id``'s App Home (their queue from position ``start`` of the
    pending list); a Slack failure is logged, not raised."""
    view = console_blocks.home_view(
        user_id,
        await console.actionable(user_id, start),
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

    @app.action(re.compile(rf"^{console_blocks.HOME_PAGE}(_first)?$"))
    @background.after_ack
    async def on_page(ack: AsyncAck, body: dict[str, Any]) -> None:
        """Next page / First page on the App Home: the button's value is where it starts."""
        await ack()
        user = (body.get("user") or {}).get("id")
        actions = body.get("actions") or [{}]
        value = actions[0].get("value") if isinstance(actions[0], dict) else None
        if not isinstance(user, str):
            return
        start = int(value) if isinstance(value, str) and value.isdigit() else 0
        await publish_home(console, chat, user, start if start <= _MAX_START else 0)
