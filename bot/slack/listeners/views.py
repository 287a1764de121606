"""Modal submissions: the Deny reason."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot.assistant import Assistant
from bot.errors import ApprovalError
from bot.slack import blocks
from bot.slack.adapter import SlackChat
from bot.slack.listeners.actions import explain, tell

logger = logging.getLogger(__name__)


def deny_reason(view: dict[str, Any]) -> str | None:
    values = (view.get("state") or {}).get("values") or {}
    field = (values.get(blocks.DENY_REASON_BLOCK) or {}).get(blocks.DENY_REASON_INPUT) or {}
    value = field.get("value")
    return value if isinstance(value, str) else None


def register(app: AsyncApp, assistant: Assistant, chat: SlackChat) -> None:
    @app.view(blocks.DENY_MODAL)
    async def on_deny_submitted(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        approval_id = str(view.get("private_metadata") or "")
        user = str((body.get("user") or {}).get("id") or "")
        try:
            request = await assistant.deny(approval_id, user, deny_reason(view))
        except ApprovalError as error:
            logger.info("deny %s by %s refused: %r", approval_id, user, error)
            channel = None
            try:
                channel = (await assistant.store.get_approval(approval_id)).approvals_channel
            except ApprovalError:
                pass  # unknown request: the note goes by DM
            await tell(chat, user, channel, explain(error))
            return
        logger.info("approval %s denied by %s", request.id, user)
