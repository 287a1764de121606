"""Buttons: Approve, Deny, Show full arguments, Retry.

Every button is acknowledged first; the work and any note to the clicker come after.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.assistant import Assistant
from bot.errors import AlreadyDecided, ApprovalError, ApprovalNotFound, NotAllowed, UpstreamError
from bot.policy import Gate
from bot.slack import blocks
from bot.slack.adapter import SlackChat

logger = logging.getLogger(__name__)

_ID = re.compile(r"^[0-9a-f]{24}$")


class BadPayload(ValueError):
    """A Slack payload lacks what the action needs."""


@dataclass(frozen=True)
class Click:
    """A button click: the id the button carries, who clicked, where, and the modal trigger."""

    target_id: str
    user_id: str
    channel_id: str | None
    trigger_id: str
    action_id: str = ""
    from_home: bool = False  # clicked on the App Home tab (no channel to answer in)


def parse_click(body: dict[str, Any]) -> Click:
    """The click in a block_actions payload, or BadPayload."""
    actions = body.get("actions")
    user = (body.get("user") or {}).get("id")
    if not isinstance(actions, list) or not actions or not isinstance(user, str):
        raise BadPayload("no action or no user in the payload")
    value = actions[0].get("value") if isinstance(actions[0], dict) else None
    if not isinstance(value, str) or not _ID.match(value):
        raise BadPayload(f"button value {value!r} is not an id")
    channel = (body.get("channel") or {}).get("id")
    return Click(
        value,
        user,
        channel if isinstance(channel, str) else None,
        str(body.get("trigger_id")),
        str(actions[0].get("action_id") or ""),
        from_home=(body.get("view") or {}).get("type") == "home",
    )


def explain(error: ApprovalError) -> str:
    """The short note a person sees when their click changed nothing."""
    if isinstance(error, ApprovalNotFound):
        return ":grey_question: This approval request no longer exists. Nothing was changed."
    if isinstance(error, NotAllowed):
        if isinstance(error.approvers, Gate):
            who = blocks.who_may_decide(error.approvers)
            return f":no_entry_sign: Only {who} can decide this request. Nothing was changed."
        return f":no_entry_sign: {error.reason} Nothing was changed."
    if isinstance(error, AlreadyDecided):
        who = f" by <@{error.decided_by}>" if error.decided_by else ""
        return f":information_source: This request was already {error.status}{who}."
    return f":warning: {error}"


async def tell(chat: SlackChat, user: str, channel: str | None, text: str) -> None:
    try:
        await chat.tell_user(user, text, channel)
    except UpstreamError as error:
        logger.error("could not tell %s %r: %r", user, text, error)


Handler = Callable[[Assistant, SlackChat, Click], Awaitable[None]]


async def approve(assistant: Assistant, chat: SlackChat, click: Click) -> None:
    await assistant.approve(click.target_id, click.user_id)


async def approve_for(assistant: Assistant, chat: SlackChat, click: Click) -> None:
    """Approve, and stop asking for the same tool and requester for a while (a grant)."""
    seconds = click.action_id.removeprefix(blocks.GRANT_PREFIX)
    if not seconds.isdigit():
        raise BadPayload(f"action {click.action_id!r} names no duration")
    await assistant.approve(click.target_id, click.user_id, grant_s=int(seconds))


async def deny(assistant: Assistant, chat: SlackChat, click: Click) -> None:
    """Deny asks for a reason first; the modal's submission decides (listeners.views)."""
    request = await assistant.check_may_decide(click.target_id, click.user_id)
    await chat.open_view(click.trigger_id, blocks.deny_modal(request))


async def show_arguments(assistant: Assistant, chat: SlackChat, click: Click) -> None:
    request = await assistant.store.get_approval(click.target_id)
    await chat.open_view(click.trigger_id, blocks.arguments_modal(request))


async def retry_resume(assistant: Assistant, chat: SlackChat, click: Click) -> None:
    await assistant.retry_resume(click.target_id, click.user_id)


async def retry_turn(assistant: Assistant, chat: SlackChat, click: Click) -> None:
    if not await assistant.retry_turn(click.target_id):
        note = ":information_source: That message was retried already."
        await tell(chat, click.user_id, click.channel_id, note)


HANDLERS: dict[str, Handler] = {
    blocks.APPROVE: approve,
    blocks.DENY: deny,
    blocks.SHOW_ARGUMENTS: show_arguments,
    blocks.RETRY_RESUME: retry_resume,
    blocks.RETRY_TURN: retry_turn,
}


#: Buttons whose action id carries a parameter, matched by pattern.
PATTERN_HANDLERS: dict[re.Pattern[str], Handler] = {
    re.compile(rf"^{blocks.GRANT_PREFIX}\d+$"): approve_for,
}

#: Called after a click on the App Home, to show the person their queue as it is now.
HomeRefresh = Callable[[str], Awaitable[None]]


def _listener(
    action_id: str,
    handle: Handler,
    assistant: Assistant,
    chat: SlackChat,
    refresh_home: HomeRefresh,
) -> Callable[[AsyncAck, dict[str, Any]], Awaitable[None]]:
    async def on_click(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        try:
            click = parse_click(body)
        except BadPayload as error:
            logger.warning("bad %s payload: %s", action_id, error)
            user = (body.get("user") or {}).get("id")
            if isinstance(user, str):
                channel = (body.get("channel") or {}).get("id")
                await tell(chat, user, channel, ":warning: That button carried no valid request.")
            return
        try:
            await handle(assistant, chat, click)
        except BadPayload as error:
            logger.warning("bad %s payload: %s", action_id, error)
            await tell(chat, click.user_id, click.channel_id, ":warning: That button is not valid.")
        except ApprovalError as error:
            logger.info(
                "%s on %s by %s refused: %r", action_id, click.target_id, click.user_id, error
            )
            await tell(chat, click.user_id, click.channel_id, explain(error))
        except UpstreamError as error:
            logger.error("%s on %s failed: %r", action_id, click.target_id, error)
            note = ":warning: Something went wrong on our side; please try again."
            await tell(chat, click.user_id, click.channel_id, note)
        if click.from_home:
            await refresh_home(click.user_id)

    return on_click


def register(
    app: AsyncApp, assistant: Assistant, chat: SlackChat, refresh_home: HomeRefresh
) -> None:
    for action_id, handle in HANDLERS.items():
        app.action(action_id)(_listener(action_id, handle, assistant, chat, refresh_home))
    for pattern, handle in PATTERN_HANDLERS.items():
        app.action(pattern)(_listener(pattern.pattern, handle, assistant, chat, refresh_home))
