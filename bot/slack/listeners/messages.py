"""Messages to the agent: DMs, @mentions, and replies in threads the bot is part of."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from bot.approval import ThreadRef
from bot.assistant import Assistant
from bot.chat import IncomingMessage

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


async def _first_delivery(assistant: Assistant, body: dict[str, Any]) -> bool:
    event_id = body.get("event_id")
    if not isinstance(event_id, str):
        return True
    if await assistant.store.first_sighting(event_id):
        return True
    logger.info("event %s delivered again; already handled", event_id)
    return False


def register(app: AsyncApp, assistant: Assistant) -> None:
    @app.event("app_mention")
    async def on_mention(
        event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        message = _incoming(event, context)
        if message is None or not await _first_delivery(assistant, body):
            return
        await assistant.receive(message)

    @app.event("message")
    async def on_message(
        event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        message = _incoming(event, context)
        if message is None:
            return
        if event.get("channel_type") != "im":
            # In channels the bot answers @mentions (handled above) and replies in its threads.
            mentioned = context.bot_user_id and f"<@{context.bot_user_id}>" in str(
                event.get("text")
            )
            if mentioned or "thread_ts" not in event:
                return
            if not await assistant.has_conversation(message.thread):
                return
        if not await _first_delivery(assistant, body):
            return
        await assistant.receive(message)
