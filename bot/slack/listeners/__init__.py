"""Bolt listeners, one module per Slack surface; each has ``register(app, ...)``."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.assistant import Assistant
from bot.console import Console
from bot.slack.adapter import SlackChat
from bot.slack.listeners import actions, commands, home, messages, views


def register(app: AsyncApp, assistant: Assistant, console: Console, chat: SlackChat) -> None:
    async def refresh_home(user_id: str) -> None:
        await home.publish_home(console, chat, user_id)

    messages.register(app, assistant)
    actions.register(app, assistant, chat, refresh_home)
    views.register(app, assistant, chat)
    commands.register(app, console)
    home.register(app, console, chat)
