"""Bolt listeners, one module per Slack surface; each has ``register(app, ...)``."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.flow.agent_view import AgentView
from bot.flow.assistant import Assistant
from bot.flow.console import Console
from bot.slack.adapter import SlackChat
from bot.slack.background import Background
from bot.slack.listeners import (
    actions,
    assistant_threads,
    commands,
    home,
    membership,
    messages,
    views,
)


def register(
    app: AsyncApp,
    assistant: Assistant,
    console: Console,
    chat: SlackChat,
    background: Background,
    agent_view: AgentView | None = None,
) -> None:
    """Every listener goes through ``background.after_ack``: answered at its ack."""

    async def refresh_home(user_id: str) -> None:
        await home.publish_home(console, chat, user_id)

    messages.register(app, assistant, background)
    actions.register(app, assistant, chat, refresh_home, background)
    views.register(app, assistant, chat, background)
    commands.register(app, console, background)
    home.register(app, console, chat, background)
    membership.register(app, assistant, background)
    if agent_view is not None:
        assistant_threads.register(app, agent_view, background)
