"""Modal submissions: the Deny reason, and edited arguments (approved on submit)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.core.approval import ApprovalRequest
from bot.core.editing import EditedArguments, NotEditable, edit_form, read_form
from bot.errors import ApprovalError, EditRefused, NotAllowed, UpstreamError
from bot.flow.assistant import Assistant
from bot.flow.decisions import Decided
from bot.slack import blocks, modals
from bot.slack.adapter import SlackChat
from bot.slack.background import Background
from bot.slack.edit_modal import EDIT_MODAL, field_errors, submitted_values
from bot.slack.listeners.actions import explain, summary, tell
from bot.storage.connections import STORAGE_ERRORS

logger = logging.getLogger(__name__)

#: what a listener or service reports to a person instead of raising
_FAILURES: tuple[type[Exception], ...] = (UpstreamError, *STORAGE_ERRORS)

_OUTDATED = (
    "Someone else edited or decided this call while the form was open. Cancel, and open "
    "Edit again from the card."
)


def deny_reason(view: dict[str, Any]) -> str | None:
    values = (view.get("state") or {}).get("values") or {}
    field = (values.get(blocks.DENY_REASON_BLOCK) or {}).get(blocks.DENY_REASON_INPUT) or {}
    value = field.get("value")
    return value if isinstance(value, str) else None


def _user(body: dict[str, Any]) -> str:
    return str((body.get("user") or {}).get("id") or "")


async def _channel_of(assistant: Assistant, approval_id: str) -> str | None:
    """Where to answer privately: the card's channel, or None (a DM) if the request is gone."""
    try:
        return (await assistant.decisions.request(approval_id)).approvals_channel
    except (ApprovalError, UpstreamError):
        return None


def read_edit(
    request: ApprovalRequest, call: int, revision: int, view: dict[str, Any]
) -> EditedArguments | dict[str, str]:
    """The edited arguments, or errors by field name ("" when no field is to blame)."""
    if not 0 <= call < len(request.calls) or not request.calls[call].editable:
        raise NotAllowed(request.id, "", "The arguments of this call cannot be edited.")
    parameters = request.calls[call].parameters
    original = request.arguments_of(call)
    try:
        form = edit_form(parameters, original)
    except NotEditable as error:
        raise NotAllowed(request.id, "", str(error)) from error
    if revision != request.revision:
        first = form.fields[0].name if form.fields else ""
        return {first: _OUTDATED}
    return read_form(form, parameters, original, submitted_values(view))


def register(app: AsyncApp, assistant: Assistant, chat: SlackChat, background: Background) -> None:
    @app.view(blocks.DENY_MODAL)
    @background.after_ack
    async def on_deny_submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        await deny_submitted(assistant, chat, ack, body, view)

    @app.view(EDIT_MODAL)
    @background.after_ack
    async def on_edit_submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        await edit_submitted(assistant, chat, ack, body, view)


async def _refuse_form(
    ack: AsyncAck, chat: SlackChat, user: str, modal: str, view: dict[str, Any]
) -> None:
    """A submitted form whose metadata names no request (tampered, or from an old version):
    close it, log it, tell the person."""
    await ack()
    logger.warning(
        "%s modal from %s with bad metadata %r", modal, user, view.get("private_metadata")
    )
    await tell(chat, user, None, ":warning: That form carried no valid request.")


async def deny_submitted(
    assistant: Assistant, chat: SlackChat, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]
) -> None:
    # The denial is recorded before Slack gets its answer (one Redis script), so a closed
    # modal means a recorded decision.
    user = _user(body)
    target = modals.parse_deny_metadata(str(view.get("private_metadata") or ""))
    if target is None:
        await _refuse_form(ack, chat, user, "deny", view)
        return
    approval_id, call = target
    decided = await _record(
        ack,
        chat,
        user,
        f"deny {approval_id}",
        assistant.decisions.deny(approval_id, user, deny_reason(view), call=call),
        lambda: _channel_of(assistant, approval_id),
    )
    if decided is None:
        return
    logger.info("approval %s: %s denied by %s", approval_id, decided.decided, user)
    left = summary(decided)
    if left:
        await tell(chat, user, decided.request.approvals_channel, left)


async def edit_submitted(
    assistant: Assistant, chat: SlackChat, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]
) -> None:
    # Validation answers inside the modal, so it comes before the acknowledgement; it
    # reads one Redis hash and checks a schema, well within Slack's 3 seconds.
    user = _user(body)
    target = modals.parse_edit_metadata(str(view.get("private_metadata") or ""))
    if target is None:
        await _refuse_form(ack, chat, user, "edit", view)
        return
    approval_id, call, revision = target
    try:
        request = await assistant.decisions.request(approval_id)
        result = read_edit(request, call, revision, view)
    except (ApprovalError, UpstreamError) as error:
        await ack()
        logger.info("edit of %s by %s refused: %r", approval_id, user, error)
        text = explain(error) if isinstance(error, ApprovalError) else ":warning: Please try again."
        await tell(chat, user, await _channel_of(assistant, approval_id), text)
        return
    if isinstance(result, dict):
        await ack(response_action="errors", errors=field_errors(result))
        return
    if result.override:
        deciding = assistant.decisions.edit(approval_id, user, call, result, revision)
    else:  # nothing changed: an approval of the arguments as they are
        deciding = assistant.decisions.approve(approval_id, user, call=call, revision=revision)
    await _record(
        ack,
        chat,
        user,
        f"edit of {approval_id}",
        deciding,
        lambda: _known(request.approvals_channel),
    )


async def _record(
    ack: AsyncAck,
    chat: SlackChat,
    user: str,
    what: str,
    deciding: Awaitable[Decided],
    channel: Callable[[], Awaitable[str | None]],
) -> Decided | None:
    """Record a decision, then answer Slack (so a closed modal means a recorded decision);
    on refusal or failure answer too, and tell the person privately in ``channel``."""
    try:
        decided = await deciding
    except EditRefused as error:  # shown under the field; the form stays open
        logger.info("%s by %s refused: %r", what, user, error)
        await ack(response_action="errors", errors=field_errors({error.field: error.reason}))
        return None
    except ApprovalError as error:
        await ack()
        logger.info("%s by %s refused: %r", what, user, error)
        await tell(chat, user, await channel(), explain(error))
        return None
    except _FAILURES as error:
        await ack()
        logger.error("%s by %s failed: %r", what, user, error)
        note = ":warning: Something went wrong on our side; nothing was changed. Please try again."
        await tell(chat, user, await channel(), note)
        return None
    await ack()
    return decided


async def _known(channel: str) -> str | None:
    return channel
