"""The ``/approvals`` slash command: pending requests, the policy, grants, and admins' changes.

Acknowledged at once; the answer goes to the command's response URL, seen only by the person
who typed it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.models.blocks import Block

from bot.core.policy import Effect
from bot.errors import NotAllowed
from bot.flow.console import Console
from bot.slack import console_blocks
from bot.slack.background import Background
from bot.slack.blocks import section
from bot.slack.mrkdwn import escape

logger = logging.getLogger(__name__)

COMMAND = "/approvals"

#: A tool name or glob an admin may type.
_TOOL = re.compile(r"^[A-Za-z0-9_.:*?\[\]-]{1,128}$")
_GRANT_ID = re.compile(r"^[0-9a-f]{12}$")


async def answer(console: Console, user_id: str, text: str) -> list[Block]:
    """The reply to ``/approvals <text>`` typed by ``user_id``."""
    words = text.split()
    verb = words[0].lower() if words else "help"
    argument = words[1] if len(words) > 1 else ""
    if verb == "pending":
        return console_blocks.pending_blocks(await console.pending())
    if verb == "policy":
        return console_blocks.policy_blocks(console.policy, await console.overrides())
    if verb == "grants":
        return console_blocks.grants_blocks(await console.grants(user_id))
    if verb in ("require", "allow", "reset"):
        return await _override(console, user_id, verb, argument)
    if verb == "revoke":
        return await _revoke(console, user_id, argument)
    return console_blocks.text_blocks(console_blocks.HELP)


async def _override(console: Console, user_id: str, verb: str, tool: str) -> list[Block]:
    if not _TOOL.match(tool):
        return [section(f"Usage: `/approvals {verb} <tool name or glob>`")]
    if verb == "reset":
        removed = await console.reset_override(user_id, tool)
        if not removed:
            return [section(f"There was no override for `{escape(tool)}`.")]
        return [section(f":leftwards_arrow_with_hook: `{escape(tool)}` follows the rules again.")]
    effect = Effect.ASK if verb == "require" else Effect.ALLOW
    await console.set_override(user_id, tool, effect)
    what = "now needs approval" if effect is Effect.ASK else "now runs without approval"
    return [section(f":white_check_mark: `{escape(tool)}` {what} (until `/approvals reset`).")]


async def _revoke(console: Console, user_id: str, grant_id: str) -> list[Block]:
    if not _GRANT_ID.match(grant_id):
        return [section("Usage: `/approvals revoke <grant id>` (see `/approvals grants`)")]
    grant = await console.revoke(user_id, grant_id)
    if grant is None:
        return [section(f"No live grant `{grant_id}`; it may have expired.")]
    return [
        section(
            f":wastebasket: Grant `{grant.id}` revoked: `{escape(grant.tool)}` asks again for "
            f"<@{grant.requester_id}>."
        )
    ]


def register(app: AsyncApp, console: Console, background: Background) -> None:
    @app.command(COMMAND)
    @background.after_ack
    async def on_command(ack: AsyncAck, respond: AsyncRespond, body: dict[str, Any]) -> None:
        await ack()
        user = str(body.get("user_id") or "")
        text = str(body.get("text") or "")
        try:
            reply = await answer(console, user, text)
        except NotAllowed as error:
            logger.info("/approvals %r by %s refused: %s", text, user, error.reason)
            reply = [section(f":no_entry_sign: {error.reason} Nothing was changed.")]
        await respond(
            text="Approvals", blocks=[b.to_dict() for b in reply], response_type="ephemeral"
        )
