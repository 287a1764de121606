"""Messages to the agent: DMs, @mentions, and replies in threads the bot is part of."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.response import BoltResponse

from bot.core.approval import ThreadRef
from bot.errors import UpstreamError
from bot.flow.assistant import Assistant
from bot.flow.chat import IncomingMessage
from bot.slack.background import Background

logger = logging.getLogger(__name__)

#: Message subtypes that are a person writing; others (edits, joins, bot posts) are ignored.
_PERSON_SUBTYPES = {None, "file_share", "thread_broadcast"}


def _incoming(event: dict[str, Any], context: AsyncBoltContext) -> IncomingMessage | None:
    user, text, ts, channel = (event.get(k) for k in ("user", "text", "ts", "channel"))
    if not (isinstance(user, str) and isinstance(ts, str) and isinstance(channel, str)):
        logger.warning("ignoring a message event without user, ts or channel: %r", event)
        return None
    if event.get("bot_id") or event.get("subtype") not in _PERSON_SUBTYPES:
        return None  # other bots and our own posts: never answer them (no loops)
    if context.bot_user_id and user == context.bot_user_id:
        return None
    team = context.team_id or event.get("team") or ""
    text = str(text or "")
    if context.bot_user_id:
        text = re.sub(rf"<@{re.escape(context.bot_user_id)}>\s*", "", text).strip()
    thread = ThreadRef(str(team), channel, str(event.get("thread_ts") or ts))
    return IncomingMessage(thread=thread, user_id=user, text=text, ts=ts)


def _wanted(
    event: dict[str, Any], context: AsyncBoltContext
) -> tuple[IncomingMessage, bool] | None:
    """The message the bot must take from a message or app_mention event, and whether it
    counts only in a thread that already is a conversation; None when it is not for the bot."""
    message = _incoming(event, context)
    if message is None:
        return None
    if event.get("type") == "app_mention" or event.get("channel_type") == "im":
        return message, False
    # In channels the bot answers @mentions (their own event) and replies in its threads.
    mentioned = context.bot_user_id and f"<@{context.bot_user_id}>" in str(event.get("text"))
    if mentioned or "thread_ts" not in event:
        return None
    return message, True


def register(app: AsyncApp, assistant: Assistant, background: Background) -> None:
    @app.middleware
    async def accept_messages(
        body: dict[str, Any], context: AsyncBoltContext, next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        """Keep a message in Redis before Slack gets its answer: if Redis cannot take it,
        Slack gets a 503 and delivers the event again later; nothing is lost."""
        event = body.get("event") if body.get("type") == "event_callback" else None
        if isinstance(event, dict) and event.get("type") in ("message", "app_mention"):
            wanted = _wanted(event, context)
            if wanted is not None:
                message, needs_conversation = wanted
                event_id = body.get("event_id")
                try:
                    accepted = await assistant.accept(
                        message,
                        event_id if isinstance(event_id, str) else None,
                        needs_conversation=needs_conversation,
                    )
                except UpstreamError as error:
                    logger.error("message %s not taken, Slack will retry: %r", message.ts, error)
                    return BoltResponse(status=503, body="storage unavailable; retry later")
                context[_ACCEPTED] = (message, accepted)
        await next()
        return None

    @app.event("app_mention")
    @background.after_ack
    async def on_mention(context: AsyncBoltContext) -> None:
        await _acknowledge(assistant, context)

    @app.event("message")
    @background.after_ack
    async def on_message(context: AsyncBoltContext) -> None:
        await _acknowledge(assistant, context)


#: Where the middleware leaves the accepted message for its listener.
_ACCEPTED = "approval_bot_accepted"


async def _acknowledge(assistant: Assistant, context: AsyncBoltContext) -> None:
    accepted = context.get(_ACCEPTED)
    if accepted is not None:
        message, outcome = accepted
        await assistant.acknowledge(message, outcome)
