"""Block Kit builders for modals: Deny (with its reason), the full arguments, and the
"Loading…" and notice modals a button opens before it checks anything. Pure."""

from __future__ import annotations

import re
from collections.abc import Sequence

from slack_sdk.models.blocks import (
    Block,
    InputBlock,
    PlainTextInputElement,
    PlainTextObject,
)
from slack_sdk.models.views import View

from bot.core.approval import ApprovalRequest
from bot.slack.blocks import (
    _CODE_ROOM,
    DENY_MODAL,
    DENY_REASON_BLOCK,
    DENY_REASON_INPUT,
    MAX_MODAL_BLOCKS,
    SECTION_LIMIT,
    code_block,
    section,
)
from bot.slack.mrkdwn import escape


# -- modals ------------------------------------------------------------------------------------
def deny_metadata(approval_id: str, call: int | None) -> str:
    """The deny modal's private metadata: the request, and one call or ``all``."""
    return f"{approval_id}:{'all' if call is None else call}"


def parse_deny_metadata(metadata: str) -> tuple[str, int | None] | None:
    """(approval id, call or None for all) from :func:`deny_metadata`, or None if malformed."""
    approval_id, _, call = metadata.partition(":")
    if not re.fullmatch(r"[0-9a-f]{24}", approval_id):
        return None
    if call in ("", "all"):  # "": a modal opened before per-call decisions
        return approval_id, None
    return (approval_id, int(call)) if call.isdigit() and len(call) <= 3 else None


def edit_metadata(approval_id: str, call: int, revision: int) -> str:
    """The edit modal's private metadata: the request, the call, the revision it showed."""
    return f"{approval_id}:{call}:{revision}"


def parse_edit_metadata(metadata: str) -> tuple[str, int, int] | None:
    match = re.fullmatch(r"([0-9a-f]{24}):(\d{1,3}):(\d{1,9})", metadata)
    return (match[1], int(match[2]), int(match[3])) if match else None


def deny_modal(request: ApprovalRequest, calls: Sequence[int], call: int | None) -> View:
    """Asks for an optional reason; the model reads it as the tool's result. ``calls``: the
    calls the denier may deny; ``call``: the one they clicked (None: Deny all)."""
    shown = [f"`{escape(request.calls[i].name[:200])}`" for i in calls[:10]]
    if len(calls) > len(shown):
        shown.append(f"{len(calls) - len(shown)} more")
    names = ", ".join(shown)
    return View(
        type="modal",
        callback_id=DENY_MODAL,
        private_metadata=deny_metadata(request.id, call),
        title=PlainTextObject(text="Deny request" if call is None else "Deny call"),
        submit=PlainTextObject(text="Deny"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            section(f"Deny {names} requested by <@{request.requester.user_id}>?"),
            InputBlock(
                block_id=DENY_REASON_BLOCK,
                label=PlainTextObject(text="Reason (the agent will read it)"),
                optional=True,
                element=PlainTextInputElement(
                    action_id=DENY_REASON_INPUT, multiline=True, max_length=2000
                ),
            ),
        ],
    )


def loading_modal() -> View:
    """The modal a button opens at once, while its trigger is fresh; filled in after."""
    return View(
        type="modal",
        title=PlainTextObject(text="Approval request"),
        close=PlainTextObject(text="Close"),
        blocks=[section(":hourglass_flowing_sand: Loading…")],
    )


def notice_modal(text: str) -> View:
    """A modal that only says something (why a click changed nothing)."""
    return View(
        type="modal",
        title=PlainTextObject(text="Approval request"),
        close=PlainTextObject(text="Close"),
        blocks=[section(text[:SECTION_LIMIT])],
    )


def arguments_modal(request: ApprovalRequest) -> View:
    """Every call's full arguments, split into sections, within the modal's block limit."""
    blocks: list[Block] = []
    room = MAX_MODAL_BLOCKS - 1
    omitted = False
    for index, call in enumerate(request.calls):
        edit = request.decisions[index].edit
        arguments = edit.pretty_arguments() if edit else call.pretty_arguments()
        pieces = _code_pieces(arguments)
        needed = 1 + len(pieces)
        if needed > room - len(blocks):
            omitted = True
            pieces = pieces[: max(0, room - len(blocks) - 1)]
            if not pieces:
                break
        edited = f" (as edited by <@{edit.user_id}>)" if edit else ""
        blocks.append(section(f"*Tool:* `{escape(call.name[:200])}`{edited}"))
        blocks.extend(section(code_block(piece)) for piece in pieces)
    if omitted:
        blocks.append(section("_The arguments are too long to show in full here._"))
    return View(
        type="modal",
        title=PlainTextObject(text="Full arguments"),
        close=PlainTextObject(text="Close"),
        blocks=blocks,
    )


def _code_pieces(text: str) -> Sequence[str]:
    """Cut text so that each piece, escaped and fenced, fits one section."""
    pieces: list[str] = []
    while text:
        size = _CODE_ROOM
        # escaping can grow text up to 5x (& -> &amp;); shrink until the fenced piece fits
        while len(code_block(text[:size])) > SECTION_LIMIT:
            size = size * 3 // 4
        pieces.append(text[:size])
        text = text[size:]
    return pieces
