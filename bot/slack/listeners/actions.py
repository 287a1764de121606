"""Buttons: Approve, Approve for…, Edit, Deny (per call), Approve all, Deny all, Show full
arguments, Retry.

A decision is recorded in Redis before Slack is answered, with an announce job (the audit
and the card, run by whichever process takes it) and, when it completes the request, its
resume job: an answered click is never lost, and nothing slow stands between the click and
its answer. Buttons that open a modal answer first (their trigger expires in 3
seconds). A button's value is only the request id; the call and the card's revision are in
its block id.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.models.views import View

from bot.core.approval import Status
from bot.core.editing import NotEditable, edit_form
from bot.core.policy import Gate
from bot.errors import (
    AlreadyDecided,
    ApprovalError,
    ApprovalNotFound,
    NotAllowed,
    StaleCard,
    UpstreamError,
)
from bot.flow.assistant import Assistant
from bot.flow.decisions import Decided
from bot.slack import blocks, modals
from bot.slack.adapter import SlackChat
from bot.slack.background import Background
from bot.slack.edit_modal import edit_modal
from bot.storage.connections import STORAGE_ERRORS

logger = logging.getLogger(__name__)

#: what a listener or service reports to a person instead of raising
_FAILURES: tuple[type[Exception], ...] = (UpstreamError, *STORAGE_ERRORS)

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
    block_id: str = ""
    #: the modal opened at once for this click ("Loading…"), to be filled in or refused
    view_id: str | None = None

    @property
    def target(self) -> blocks.BlockTarget:
        """The call (None: every call) and card revision the button belongs to."""
        target = blocks.parse_block_id(self.block_id, self.target_id)
        if target is None:
            raise BadPayload(f"block {self.block_id!r} names no call of {self.target_id}")
        return target


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
        block_id=str(actions[0].get("block_id") or ""),
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
    if isinstance(error, AlreadyDecided) and error.status == Status.EXPIRED.value:
        return (
            ":hourglass: This request expired without a decision; nothing was changed. The "
            "requester can ask the agent again."
        )
    if isinstance(error, AlreadyDecided):
        who = f" by <@{error.decided_by}>" if error.decided_by else ""
        return f":information_source: This was already {error.status}{who}."
    if isinstance(error, StaleCard):
        return (
            ":arrows_counterclockwise: Someone edited the arguments since this card was shown; "
            "it shows them now. Look again and decide. Nothing was changed."
        )
    return f":warning: {error}"


def summary(decided: Decided) -> str | None:
    """The note for a click that left some calls it named to other approvers."""
    if not decided.others:
        return None
    request = decided.request
    done = len(decided.decided) + len(decided.counted)
    names = ", ".join(f"`{request.calls[i].name[:100]}`" for i in decided.others[:5])
    return (
        f":information_source: Your decision applies to {done} call{'s' if done != 1 else ''}. "
        f"Others decide {names}: the card says who."
    )


async def tell(chat: SlackChat, user: str, channel: str | None, text: str) -> None:
    try:
        await chat.tell_user(user, text, channel)
    except UpstreamError as error:
        logger.error("could not tell %s %r: %r", user, text, error)


#: Does what a button asks; a decision it recorded is returned (to note, after the ack, the
#: calls it left to others; its announce job audits and shows it).
Handler = Callable[[Assistant, SlackChat, Click], Awaitable[Decided | None]]


async def approve(assistant: Assistant, chat: SlackChat, click: Click) -> Decided:
    target = click.target
    return await assistant.decisions.approve(
        click.target_id, click.user_id, call=target.call, revision=target.revision
    )


async def approve_all(assistant: Assistant, chat: SlackChat, click: Click) -> Decided:
    return await assistant.decisions.approve(
        click.target_id, click.user_id, call=None, revision=click.target.revision
    )


async def approve_for(assistant: Assistant, chat: SlackChat, click: Click) -> Decided:
    """Approve, and stop asking for the same tool and requester for a while (a grant)."""
    seconds = click.action_id.removeprefix(blocks.GRANT_PREFIX)
    if not seconds.isdigit():
        raise BadPayload(f"action {click.action_id!r} names no duration")
    target = click.target
    return await assistant.decisions.approve(
        click.target_id,
        click.user_id,
        call=target.call,
        revision=target.revision,
        grant_s=int(seconds),
    )


async def deny(assistant: Assistant, chat: SlackChat, click: Click) -> None:
    """Deny asks for a reason first; the modal's submission decides (listeners.views)."""
    call = click.target.call
    choice = await assistant.decisions.may_decide(
        click.target_id, click.user_id, call, voting=False
    )
    await show(chat, click, modals.deny_modal(choice.request, choice.calls, call))


async def deny_all(assistant: Assistant, chat: SlackChat, click: Click) -> None:
    choice = await assistant.decisions.may_decide(
        click.target_id, click.user_id, None, voting=False
    )
    await show(chat, click, modals.deny_modal(choice.request, choice.calls, None))


async def edit(assistant: Assistant, chat: SlackChat, click: Click) -> None:
    """Open the edit modal, pre-filled with the arguments as they stand; its submission
    approves the call with the person's arguments (listeners.views)."""
    target = click.target
    if target.call is None:
        raise BadPayload("Edit names no call")
    choice = await assistant.decisions.may_decide(
        click.target_id, click.user_id, target.call, voting=False
    )
    request = choice.request
    call = request.calls[target.call]
    if not call.editable:
        raise NotAllowed(request.id, click.user_id, "The arguments of this call cannot be edited.")
    if target.revision != request.revision:  # a card from before revisions names none
        raise StaleCard(request.id, click.user_id)
    try:
        form = edit_form(call.parameters, request.arguments_of(target.call))
    except NotEditable as error:
        raise NotAllowed(request.id, click.user_id, str(error)) from error
    view = edit_modal(
        form,
        tool_name=call.name,
        requester_id=request.requester.user_id,
        private_metadata=modals.edit_metadata(request.id, target.call, request.revision),
    )
    await show(chat, click, view)


async def show_arguments(assistant: Assistant, chat: SlackChat, click: Click) -> None:
    request = await assistant.decisions.readable(click.target_id, click.user_id)
    await show(chat, click, modals.arguments_modal(request))


async def show(chat: SlackChat, click: Click, view: View) -> None:
    """Fill in the modal opened for the click (or open one, when none could be)."""
    if click.view_id is not None:
        await chat.update_view(click.view_id, view)
    else:
        await chat.open_view(click.trigger_id, view)


async def retry_resume(assistant: Assistant, chat: SlackChat, click: Click) -> None:
    await assistant.retry_resume(click.target_id, click.user_id)


async def retry_turn(assistant: Assistant, chat: SlackChat, click: Click) -> None:
    if not await assistant.retry_turn(click.target_id, click.user_id):
        note = ":information_source: That message was retried already."
        await tell(chat, click.user_id, click.channel_id, note)


HANDLERS: dict[str, Handler] = {
    blocks.APPROVE: approve,
    blocks.APPROVE_ALL: approve_all,
    blocks.DENY: deny,
    blocks.DENY_ALL: deny_all,
    blocks.EDIT: edit,
    blocks.SHOW_ARGUMENTS: show_arguments,
    blocks.RETRY_RESUME: retry_resume,
    blocks.RETRY_TURN: retry_turn,
}


#: Buttons that open a modal: a trigger lasts 3 seconds, so these are answered and a
#: "Loading…" modal opened *before* anything is checked (a slow directory lookup or a
#: rate-limited Slack must not lose the modal); the check then fills the modal in, or
#: replaces it with the refusal.
ANSWER_FIRST = {blocks.DENY, blocks.DENY_ALL, blocks.EDIT, blocks.SHOW_ARGUMENTS}

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
    answer_first = action_id in ANSWER_FIRST

    async def on_click(ack: AsyncAck, body: dict[str, Any]) -> None:
        try:
            click = parse_click(body)
        except BadPayload as error:
            await ack()
            logger.warning("bad %s payload: %s", action_id, error)
            user = (body.get("user") or {}).get("id")
            if isinstance(user, str):
                channel = (body.get("channel") or {}).get("id")
                await tell(chat, user, channel, ":warning: That button carried no valid request.")
            return
        if answer_first:
            await ack()
            click = await _opened(chat, click)
        decided: Decided | None = None
        try:
            decided = await handle(assistant, chat, click)
        except BadPayload as error:
            logger.warning("bad %s payload: %s", action_id, error)
            await _answer(ack, answer_first)
            await _say(chat, click, ":warning: That button is not valid.")
        except ApprovalError as error:
            await _answer(ack, answer_first)
            await _refused(assistant, chat, click, action_id, error)
        except _FAILURES as error:
            logger.error("%s on %s failed: %r", action_id, click.target_id, error)
            await _answer(ack, answer_first)
            failed = (
                ":warning: Something went wrong on our side; nothing was changed. Please try again."
            )
            await _say(chat, click, failed)
        else:
            await _answer(ack, answer_first)
        if decided is not None:  # its audit and card: the announce job it enqueued
            left = summary(decided)
            if left:
                await tell(chat, click.user_id, click.channel_id, left)
        if click.from_home:
            await refresh_home(click.user_id)

    return on_click


async def _refused(
    assistant: Assistant, chat: SlackChat, click: Click, action_id: str, error: ApprovalError
) -> None:
    """Tell the person why their click changed nothing (after the answer)."""
    logger.info("%s on %s by %s refused: %r", action_id, click.target_id, click.user_id, error)
    await _say(chat, click, explain(error))
    if isinstance(error, StaleCard):  # show what there is to decide now
        await assistant.decisions.show_card(click.target_id)


async def _say(chat: SlackChat, click: Click, text: str) -> None:
    """Tell the person: in the modal opened for their click, else privately."""
    if click.view_id is not None:
        try:
            await chat.update_view(click.view_id, modals.notice_modal(text))
            return
        except UpstreamError as failure:
            logger.error("could not show %r in %s: %r", text, click.view_id, failure)
    await tell(chat, click.user_id, click.channel_id, text)


async def _opened(chat: SlackChat, click: Click) -> Click:
    """Open the "Loading…" modal at once, while the trigger is fresh; the click with its
    view id (without one when Slack refused: the work then opens its modal, if it can)."""
    try:
        view_id = await chat.open_view(click.trigger_id, modals.loading_modal())
    except UpstreamError as error:
        logger.warning("could not open a modal for %s: %r", click.action_id, error)
        return click
    return replace(click, view_id=view_id)


async def _answer(ack: AsyncAck, answered: bool) -> None:
    if not answered:
        await ack()


def register(
    app: AsyncApp,
    assistant: Assistant,
    chat: SlackChat,
    refresh_home: HomeRefresh,
    background: Background,
) -> None:
    for action_id, handle in HANDLERS.items():
        listener = _listener(action_id, handle, assistant, chat, refresh_home)
        app.action(action_id)(background.after_ack(listener))
    for pattern, handle in PATTERN_HANDLERS.items():
        listener = _listener(pattern.pattern, handle, assistant, chat, refresh_home)
        app.action(pattern)(background.after_ack(listener))
