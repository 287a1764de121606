"""Who may decide changes: a member leaves or joins an approvals channel, a user group's
members change. The cached lists (Redis and this process) are dropped at once, so a removed
approver's next click is checked against Slack's list as it is now.

When the bot itself joins a channel, the cards Slack refused there because it was not a
member are posted.

What remains: another bot process keeps its in-process copy for at most
``bot.flow.directory.LOCAL_TTL_S`` seconds; an event Slack never delivers (the app not subscribed,
an outage) leaves the Redis copy until its TTL (``keys.CHANNEL_MEMBERS_TTL_S``).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from bot.flow.assistant import Assistant
from bot.slack.background import Background

logger = logging.getLogger(__name__)

CHANNEL_EVENTS = ("member_left_channel", "member_joined_channel")
USERGROUP_EVENTS = ("subteam_members_changed", "subteam_updated")


def changed_usergroup(event: dict[str, Any]) -> str | None:
    """The user group an event is about: ``subteam_id``, or ``subteam.id``."""
    found = event.get("subteam_id")
    if not isinstance(found, str):
        subteam = event.get("subteam")
        found = subteam.get("id") if isinstance(subteam, dict) else None
    return found if isinstance(found, str) and found else None


def register(app: AsyncApp, assistant: Assistant, background: Background) -> None:
    directory = assistant.directory

    async def on_channel_membership(event: dict[str, Any], context: AsyncBoltContext) -> None:
        channel = event.get("channel")
        if not isinstance(channel, str) or not channel:
            logger.warning("ignoring a %s event without a channel", event.get("type"))
            return
        logger.info("%s: %s in %s", event.get("type"), event.get("user"), channel)
        await directory.forget_channel(channel)
        joined = event.get("type") == "member_joined_channel"
        if joined and context.bot_user_id and event.get("user") == context.bot_user_id:
            # invited at last: the cards Slack refused there (not_in_channel) go up now
            posted = await assistant.cards.post_waiting_cards(channel)
            logger.info("joined %s: %d waiting cards posted", channel, len(posted))

    async def on_usergroup_change(event: dict[str, Any]) -> None:
        usergroup = changed_usergroup(event)
        if usergroup is None:
            logger.warning("ignoring a %s event without a user group", event.get("type"))
            return
        logger.info("%s: user group %s", event.get("type"), usergroup)
        await directory.forget_usergroup(usergroup)

    for name in CHANNEL_EVENTS:
        app.event(name)(background.after_ack(on_channel_membership))
    for name in USERGROUP_EVENTS:
        app.event(name)(background.after_ack(on_usergroup_change))
