"""Bolt listeners, one module per Slack surface; each has ``register(app, ...)``."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.assistant import Assistant
from bot.slack.adapter import SlackChat
from bot.slack.listeners import actions, messages, views


def register(app: AsyncApp, assistant: Assistant, chat: SlackChat) -> None:
    messages.register(app, assistant)
    actions.register(app, assistant, chat)
    views.register(app, assistant, chat)
