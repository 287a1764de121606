"""Slack's AI assistant threads: ``assistant_thread_started`` (someone opened the bot in the
AI side panel, or a new thread in its DM) and ``assistant_thread_context_changed`` (they
moved to another channel with the panel open).

A started thread is shown natively from then on (bot.flow.agent_view): status, streamed
steps and answer, and the configured suggested prompts. The messages people write in it are
ordinary DM messages, taken by ``bot.slack.listeners.messages`` as before.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from bot.core.approval import ThreadRef
from bot.flow.agent_view import AgentView
from bot.slack.background import Background

logger = logging.getLogger(__name__)


def started_thread(event: dict[str, Any], team_id: str) -> tuple[ThreadRef, str] | None:
    """The thread and its user from an ``assistant_thread_started`` event (Slack's shape:
    ``assistant_thread: {user_id, channel_id, thread_ts, context}``); None if malformed."""
    found = event.get("assistant_thread")
    if not isinstance(found, dict):
        return None
    user, channel, thread_ts = (found.get(k) for k in ("user_id", "channel_id", "thread_ts"))
    if not all(isinstance(v, str) and v for v in (user, channel, thread_ts, team_id)):
        return None
    return ThreadRef(team_id, str(channel), str(thread_ts)), str(user)


def register(app: AsyncApp, view: AgentView, background: Background) -> None:
    @app.event("assistant_thread_started")
    @background.after_ack
    async def on_thread_started(event: dict[str, Any], context: AsyncBoltContext) -> None:
        team = context.team_id or str(event.get("team") or "")
        started = started_thread(event, team)
        if started is None:
            logger.warning("ignoring a malformed assistant_thread_started: %r", event)
            return
        thread, user = started
        logger.info("assistant thread %s started by %s", thread.key, user)
        await view.thread_started(thread, user)

    @app.event("assistant_thread_context_changed")
    @background.after_ack
    async def on_context_changed(event: dict[str, Any]) -> None:
        # The channel the person looks at is not used: the bot answers from its own
        # conversation and tools, and reads no channel on anyone's behalf.
        found = event.get("assistant_thread") or {}
        logger.info("assistant thread context changed: %r", found.get("context"))
