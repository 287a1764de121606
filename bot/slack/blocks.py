"""Block Kit builders: pure functions from domain objects to ``slack_sdk.models`` blocks.

Everything that came from the model, from tool arguments or from a person's message is
escaped (``mrkdwn.escape``) and shown with ``verbatim`` text, so it cannot mention anyone or
forge a link. Builders keep within Block Kit's limits: 50 blocks a message, 100 a modal,
3000 characters a section.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.approval import ApprovalRequest, Auto, Resume, Status, ToolCall
from bot.mrkdwn import escape, markdown_to_mrkdwn, split_mrkdwn
from bot.policy import Approvers, Gate

# Action and callback ids: what the listeners are wired to.
APPROVE: Final = "approval_approve"
#: "Approve for <duration>": the duration in seconds follows, e.g. ``approval_grant_3600``.
GRANT_PREFIX: Final = "approval_grant_"
DENY: Final = "approval_deny"
SHOW_ARGUMENTS: Final = "approval_show_arguments"
RETRY_RESUME: Final = "approval_retry_resume"
RETRY_TURN: Final = "turn_retry"
DENY_MODAL: Final = "approval_deny_modal"
DENY_REASON_BLOCK: Final = "deny_reason"
DENY_REASON_INPUT: Final = "reason"

MAX_MESSAGE_BLOCKS: Final = 50
MAX_MODAL_BLOCKS: Final = 100
SECTION_LIMIT: Final = 3000
#: Room left in a section for the code fence and escaping growth.
_CODE_ROOM: Final = SECTION_LIMIT - 100
#: How much of all calls' arguments a card shows; the rest is behind "Show full arguments".
CARD_ARGUMENTS_BUDGET: Final = 2400
#: Calls listed on one card; more are behind "Show full arguments".
CARD_MAX_CALLS: Final = 10
#: Approvers (channel, user groups, people) a card names; the rest are counted.
MAX_NAMED_APPROVERS: Final = 20
WORKING_TEXT: Final = ":hourglass_flowing_sand: _Working on it…_"


def _md(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=text, verbatim=True)


def section(text: str) -> SectionBlock:
    return SectionBlock(text=_md(text))


def code_block(text: str) -> str:
    """Untrusted text in a code block: escaped, and unable to close the fence early."""
    # A zero-width space after every backtick that another follows: no run can close the fence.
    return "```" + re.sub(r"`(?=`)", "`\u200b", escape(text)) + "```"


def slack_date(timestamp: float) -> str:
    """A date Slack shows in the reader's time zone, with a UTC fallback."""
    fallback = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(timestamp)}^{{date_short_pretty}} at {{time}}|{fallback}>"


def truncate(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    return text[:limit] + "\n…", True


# -- answers -----------------------------------------------------------------------------------
def answer_messages(markdown: str) -> list[list[Block]]:
    """The model's answer as one or more messages of sections, each within Block Kit limits."""
    text = markdown_to_mrkdwn(markdown) or "_(the model returned no text)_"
    chunks = split_mrkdwn(text, SECTION_LIMIT)
    return [
        [section(chunk) for chunk in chunks[start : start + MAX_MESSAGE_BLOCKS]]
        for start in range(0, len(chunks), MAX_MESSAGE_BLOCKS)
    ]


def failure_blocks(problem: str, retry_turn_id: str | None) -> list[Block]:
    blocks: list[Block] = [
        section(f":warning: Sorry, I could not answer: {escape(problem)}"),
    ]
    if retry_turn_id:
        blocks.append(
            ActionsBlock(
                elements=[ButtonElement(text="Retry", action_id=RETRY_TURN, value=retry_turn_id)]
            )
        )
    else:
        blocks.append(ContextBlock(elements=[_md("Send your message again to retry.")]))
    return blocks


def queued_text(busy_state: str, position: int) -> str:
    why = (
        "an approval is pending" if busy_state == "waiting" else "I'm still working on this thread"
    )
    return (
        f":inbox_tray: Got it. {why.capitalize()}, so your message is queued "
        f"(position {position}) and I'll answer it right after."
    )


# -- approval cards ----------------------------------------------------------------------------
def _tools_title(request: ApprovalRequest) -> str:
    # the calls a person decides; those the policy decided are listed on the card below
    names = [call.name for call in request.asked_calls] or request.tool_names
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"Approval needed: {shown}"[:150]


def _call_status(call: ToolCall) -> str:
    """What the policy did with a call, as one short line (empty when a person decides)."""
    rule = escape(call.rule[:200])
    if call.auto is Auto.ALLOW:
        return f":white_check_mark: Allowed by the policy ({rule})"
    if call.auto is Auto.DENY:
        return f":no_entry: Denied by the policy ({rule}): {escape((call.note or '')[:300])}"
    if call.auto is Auto.GRANT:
        return f":stopwatch: Allowed by a grant (`{escape(call.note or '')}`)"
    if call.note:
        return f":grey_question: {escape(call.rule[:200])}: {escape(call.note[:300])}"
    return ""


def _call_blocks(call: ToolCall, budget: int) -> tuple[list[Block], bool]:
    where = " (server-side tool)" if call.server_side else ""
    status = _call_status(call)
    title = f"*Tool:* `{escape(call.name[:200])}`{where}\n" + (f"{status}\n" if status else "")
    arguments, truncated = truncate(call.pretty_arguments(), budget)
    # escaping can grow the text up to 5x: cut further until the escaped section fits
    while len(title) + len(code_block(arguments)) > SECTION_LIMIT:
        budget = budget * 3 // 4
        arguments, truncated = truncate(call.pretty_arguments(), budget)
    return [section(title + code_block(arguments))], truncated


def _requester_block(request: ApprovalRequest) -> SectionBlock:
    asked = f"<@{request.requester.user_id}> asked"
    if request.requester.permalink:
        asked += f" in <{request.requester.permalink}|their thread>"
    quote = escape(request.requester.text_excerpt) or "_(no text)_"
    return section(f"{asked}:\n>{quote}")


def who_decides(approvers: Approvers) -> str:
    """The people ``approvers`` names, as Slack mentions (ids validated at config load)."""
    parts = [f"members of <#{approvers.channel}>"] if approvers.channel else []
    parts += [f"<!subteam^{group}>" for group in approvers.usergroups]
    parts += [f"<@{user}>" for user in approvers.users]
    if len(parts) > MAX_NAMED_APPROVERS:  # keep the card within a section's length
        hidden = len(parts) - MAX_NAMED_APPROVERS
        parts = [*parts[:MAX_NAMED_APPROVERS], f"{hidden} others named in the policy"]
    return _join_or(parts)


def _join_or(parts: Sequence[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " or " + parts[-1]


def who_may_decide(gate: Gate) -> str:
    """Everyone ``gate`` lets decide, as Slack mentions."""
    if len(gate.requirements) == 1:
        return who_decides(gate.requirements[0])
    return " who are also ".join(who_decides(a) for a in gate.requirements)


def gate_text(gate: Gate) -> str:
    """Who may decide, and how many must approve."""
    who = who_may_decide(gate)
    need = f"{gate.quorum} approvals needed" if gate.quorum > 1 else "one approval needed"
    self_note = "" if gate.allow_self_approval else ", not the requester"
    return f"*Who can decide:* {who}{self_note} · {need} · {escape(gate.rule[:200])}"


def _progress_text(request: ApprovalRequest) -> str | None:
    """Quorum progress while undecided: "1 of 2 approvals: @a"."""
    if request.status is not Status.PENDING or request.quorum <= 1 or not request.votes:
        return None
    voters = ", ".join(f"<@{vote.user_id}>" for vote in request.votes)
    missing = request.quorum - len(request.votes)
    return (
        f":ballot_box_with_check: {len(request.votes)} of {request.quorum} approvals: {voters}. "
        f"Waiting for {missing} more from someone else who can decide."
    )


def _decision_text(request: ApprovalRequest) -> str | None:
    decision = request.decision
    if decision is None:
        return _progress_text(request)
    when = slack_date(decision.at)
    if decision.by_policy:
        return f":robot_face: Decided by the approval policy at {when}"
    if decision.status is Status.APPROVED:
        voters = [f"<@{vote.user_id}>" for vote in request.votes] or [f"<@{decision.user_id}>"]
        return f":white_check_mark: *Approved* by {', '.join(voters)} at {when}"
    reason = f": {escape(truncate(decision.reason, 500)[0])}" if decision.reason else ""
    reason = reason or " (no reason given)"
    return f":no_entry: *Denied* by <@{decision.user_id}> at {when}{reason}"


def _outcome_text(request: ApprovalRequest) -> str | None:
    if request.resume is Resume.RUNNING:
        return ":arrows_counterclockwise: Resuming the conversation…"
    if request.outcome:
        icon = ":warning:" if request.resume is Resume.FAILED else ":speech_balloon:"
        return f"{icon} {escape(request.outcome)}"
    return None


def card_text(request: ApprovalRequest) -> str:
    """The notification text of a card (shown in notifications and screen readers)."""
    return escape(_tools_title(request))


def approval_card(request: ApprovalRequest) -> list[Block]:
    """The approval card: who asked, what for, each call's arguments, and the buttons."""
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text=_tools_title(request)))]
    blocks.append(_requester_block(request))
    if request.gate is not None and request.status is Status.PENDING:
        blocks.append(ContextBlock(elements=[_md(gate_text(request.gate))]))
    shown = request.calls[:CARD_MAX_CALLS]
    budget = max(200, CARD_ARGUMENTS_BUDGET // len(shown)) if shown else 0
    any_truncated = len(request.calls) > len(shown)
    for call in shown:
        call_blocks, truncated = _call_blocks(call, budget)
        blocks.extend(call_blocks)
        any_truncated = any_truncated or truncated
    if len(request.calls) > len(shown):
        blocks.append(section(f"_…and {len(request.calls) - len(shown)} more calls._"))
    blocks.append(
        ContextBlock(
            elements=[_md(f"Requested {slack_date(request.created_at)} · id `{request.id}`")]
        )
    )
    decision = _decision_text(request)
    if decision:
        blocks.append(section(decision))
    outcome = _outcome_text(request)
    if outcome:
        blocks.append(ContextBlock(elements=[_md(outcome)]))
    buttons = _card_buttons(request, any_truncated)
    if buttons:
        blocks.append(ActionsBlock(block_id="approval_actions", elements=buttons))
    return blocks


def _card_buttons(request: ApprovalRequest, truncated: bool) -> list[ButtonElement]:
    buttons: list[ButtonElement] = []
    if request.status is Status.PENDING:
        buttons += decision_buttons(request)
    elif request.resume is Resume.FAILED:
        buttons.append(ButtonElement(text="Retry", action_id=RETRY_RESUME, value=request.id))
    if truncated:
        buttons.append(
            ButtonElement(text="Show full arguments", action_id=SHOW_ARGUMENTS, value=request.id)
        )
    return buttons


def decision_buttons(request: ApprovalRequest) -> list[ButtonElement]:
    """Approve, Approve for <duration> (when the rule offers grants), Deny."""
    buttons = [ButtonElement(text="Approve", action_id=APPROVE, value=request.id, style="primary")]
    if request.gate is not None and request.gate.grantable:
        buttons += [
            ButtonElement(
                text=f"Approve for {duration_text(seconds)}",
                action_id=f"{GRANT_PREFIX}{seconds}",
                value=request.id,
            )
            for seconds in request.gate.grant_durations_s
        ]
    buttons.append(ButtonElement(text="Deny", action_id=DENY, value=request.id, style="danger"))
    return buttons


def duration_text(seconds: int) -> str:
    """3600 -> "1 hour", 5400 -> "90 minutes", 172800 -> "2 days"."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def policy_note(request: ApprovalRequest) -> tuple[str, list[Block]]:
    """The requester's thread: which calls the policy denied and which ran under a grant."""
    lines = [
        f"`{escape(call.name[:200])}`: {_call_status(call)}"
        for call in request.calls
        if call.auto in (Auto.DENY, Auto.GRANT)
    ]
    # whole lines only (a cut could fall inside an escape), and say how many are left out
    shown: list[str] = []
    for index, line in enumerate(lines):
        rest = len(lines) - index
        if sum(len(s) + 1 for s in shown) + len(line) > SECTION_LIMIT - 100:
            shown.append(f"_…and {rest} more; see the audit trail._")
            break
        shown.append(line)
    text = "\n".join(shown)
    return "The approval policy decided some of the agent's actions.", [
        ContextBlock(elements=[_md(text)])
    ]


def awaiting_text(request: ApprovalRequest, card_link: str | None) -> str:
    """The requester's thread: what waits, and where."""
    names = ", ".join(f"`{escape(name)}`" for name in request.tool_names)
    where = f"<#{request.approvals_channel}>"
    link = f" (<{card_link}|view the request>)" if card_link else ""
    return (
        f":raised_hand: {names} needs approval before it runs. I've asked in {where}{link} "
        "and will continue here once someone decides."
    )


def resume_failed_blocks(request: ApprovalRequest, problem: str) -> list[Block]:
    status = "approved" if request.status is Status.APPROVED else "denied"
    return [
        section(
            f":warning: The request was {status}, but I could not continue: {escape(problem)} "
            "The decision is saved."
        ),
        ActionsBlock(
            elements=[ButtonElement(text="Retry", action_id=RETRY_RESUME, value=request.id)]
        ),
    ]


# -- modals ------------------------------------------------------------------------------------
def deny_modal(request: ApprovalRequest) -> View:
    """Asks for an optional reason; the model reads it as the tool's result."""
    names = ", ".join(f"`{escape(name)}`" for name in request.tool_names)
    return View(
        type="modal",
        callback_id=DENY_MODAL,
        private_metadata=request.id,
        title=PlainTextObject(text="Deny request"),
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


def arguments_modal(request: ApprovalRequest) -> View:
    """Every call's full arguments, split into sections, within the modal's block limit."""
    blocks: list[Block] = []
    room = MAX_MODAL_BLOCKS - 1
    omitted = False
    for call in request.calls:
        pieces = _code_pieces(call.pretty_arguments())
        needed = 1 + len(pieces)
        if needed > room - len(blocks):
            omitted = True
            pieces = pieces[: max(0, room - len(blocks) - 1)]
            if not pieces:
                break
        blocks.append(section(f"*Tool:* `{escape(call.name)}`"))
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
