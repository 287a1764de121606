"""Block Kit builders: pure functions from domain objects to ``slack_sdk.models`` blocks.

Everything that came from the model, from tool arguments or from a person's message is
escaped (``mrkdwn.escape``) and shown with ``verbatim`` text, so it cannot mention anyone or
forge a link. Builders keep within Block Kit's limits: 50 blocks a message, 100 a modal,
3000 characters a section, and about 13 000 characters of text in a message's blocks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.core.approval import ApprovalRequest, Auto, Resume, Status, ToolCall
from bot.core.policy import Approvers, Gate
from bot.slack.mrkdwn import escape

# Action and callback ids: what the listeners are wired to.
APPROVE: Final = "approval_approve"
#: "Approve for <duration>": the duration in seconds follows, e.g. ``approval_grant_3600``.
GRANT_PREFIX: Final = "approval_grant_"
DENY: Final = "approval_deny"
EDIT: Final = "approval_edit"
APPROVE_ALL: Final = "approval_approve_all"
DENY_ALL: Final = "approval_deny_all"
#: The block id of the one actions block cards had before per-call buttons; still clickable.
LEGACY_BLOCK_IDS: Final = frozenset({"approval_actions"})
SHOW_ARGUMENTS: Final = "approval_show_arguments"
RETRY_RESUME: Final = "approval_retry_resume"
RETRY_TURN: Final = "turn_retry"
DENY_MODAL: Final = "approval_deny_modal"
DENY_REASON_BLOCK: Final = "deny_reason"
DENY_REASON_INPUT: Final = "reason"

MAX_MESSAGE_BLOCKS: Final = 50
MAX_MODAL_BLOCKS: Final = 100
SECTION_LIMIT: Final = 3000
#: Characters of text in one message's blocks, all together. Slack refuses more than about
#: 13 000 (``msg_blocks_too_long``: undocumented, observed), whatever the blocks' count.
MESSAGE_TEXT_BUDGET: Final = 12_000
FIELD_LIMIT: Final = 2000  # one of a section's fields
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


# -- approval cards ----------------------------------------------------------------------------
def _tools_title(request: ApprovalRequest) -> str:
    # the calls a person decides; those the policy decided are listed on the card below
    names = [call.name for call in request.asked_calls] or request.tool_names
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"Approval needed: {shown}"[:150]


def call_block_id(request: ApprovalRequest, index: int | None) -> str:
    """The block id of a call's buttons (``index``), or of Approve all / Deny all (None).

    Button values carry only the request id; which call, and which revision of the
    arguments the person saw, ride in the block id: ``<id>.<index|all>.r<revision>``.
    """
    return f"{request.id}.{'all' if index is None else index}.r{request.revision}"


@dataclass(frozen=True)
class BlockTarget:
    """What a button's block id names: one call (or all of them) on a revision of the card."""

    call: int | None
    revision: int | None  # None: a card from before revisions existed; its approvals are refused


_BLOCK_ID = re.compile(r"^(?P<id>[0-9a-f]{24})\.(?P<call>all|\d{1,3})\.r(?P<rev>\d{1,9})$")


def parse_block_id(block_id: str, approval_id: str) -> BlockTarget | None:
    """The target of a click, or None when the block id is not one of ours for that id.

    Cards posted before per-call buttons existed had one actions block for the whole
    request; a click there means every call, as it did then, and names no revision: a Deny
    there still vetoes, an approval is refused and the card shown again as it stands.
    """
    if block_id in LEGACY_BLOCK_IDS:
        return BlockTarget(None, None)
    match = _BLOCK_ID.match(block_id)
    if match is None or match["id"] != approval_id:
        return None
    call = match["call"]
    return BlockTarget(None if call == "all" else int(call), int(match["rev"]))


def _call_status(call: ToolCall) -> str:
    """What the policy did with a call, as one short line (empty when a person decides)."""
    rule = escape(call.rule[:200])
    if call.auto is Auto.ALLOW:
        return f":white_check_mark: Allowed by the policy ({rule})"
    if call.auto is Auto.DENY:
        return f":no_entry: Denied by the policy ({rule}): {escape((call.note or '')[:300])}"
    if call.auto is Auto.GRANT:
        return f":stopwatch: Allowed by a grant (`{escape(call.note or '')}`) under {rule}"
    if call.note:
        return f":grey_question: {escape(call.rule[:200])}: {escape(call.note[:300])}"
    return ""


def _fit_code(text: str, budget: int, room: int) -> tuple[str, bool]:
    """``text`` cut to ``budget`` characters, then further until its code block fits ``room``
    (escaping can grow it up to 5x)."""
    cut, truncated = truncate(text, budget)
    while len(code_block(cut)) > room:
        budget = budget * 3 // 4
        cut, truncated = truncate(text, budget)
    return code_block(cut), truncated


def _call_title(request: ApprovalRequest, index: int, per_call_gates: bool) -> str:
    call = request.calls[index]
    number = f"*{index + 1}.* " if len(request.calls) > 1 else ""
    where = " (server-side tool)" if call.server_side else ""
    lines = [f"{number}*Tool:* `{escape(call.name[:200])}`{where}"]
    status = _call_status(call)
    if status:
        lines.append(status)
    pending = request.decisions[index].status is Status.PENDING
    if per_call_gates and call.gate is not None and call.auto is None and pending:
        lines.append(f"*Waits for:* {_gate_summary(call.gate)}")
    if pending and call.auto is None and call.gate is not None and call.gate.grantable:
        lines.append(grant_scope_text(request, index))
    return "\n".join(lines) + "\n"


def grant_scope_text(request: ApprovalRequest, index: int) -> str:
    """What an "Approve for…" button lets run later: the same tool, for the same requester,
    only where the same rule would send the call to the same approvers."""
    call = request.calls[index]
    assert call.gate is not None
    which = " with these arguments" if call.gate.grant_same_arguments else ""
    return (
        f"_Approve for…_ also lets later `{escape(call.name[:200])}` calls{which} by "
        f"<@{request.requester.user_id}> run without asking, while "
        f"{escape(call.gate.rule[:200])} would send them to the same approvers."
    )


def _call_blocks(
    request: ApprovalRequest, index: int, budget: int, per_call_gates: bool
) -> tuple[list[Block], bool]:
    call, decision = request.calls[index], request.decisions[index]
    title = _call_title(request, index, per_call_gates)
    if decision.edit is not None:
        # side by side: Block Kit shows a section's fields in two columns
        original, cut_a = _fit_code(call.pretty_arguments(), budget // 2, FIELD_LIMIT - 40)
        edited, cut_b = _fit_code(decision.edit.pretty_arguments(), budget // 2, FIELD_LIMIT - 40)
        section_block = SectionBlock(
            text=_md(title[: SECTION_LIMIT - 10]),
            fields=[_md(f"*Asked for*\n{original}"), _md(f"*Edited*\n{edited}")],
        )
        blocks: list[Block] = [section_block]
        truncated = cut_a or cut_b
    else:
        arguments, truncated = _fit_code(
            call.pretty_arguments(), budget, SECTION_LIMIT - len(title)
        )
        blocks = [section(title + arguments)]
    state = _call_state(request, index)
    if state:
        blocks.append(ContextBlock(elements=[_md(state)]))
    if request.status is Status.PENDING and decision.status is Status.PENDING and call.auto is None:
        blocks.append(
            ActionsBlock(
                block_id=call_block_id(request, index), elements=call_buttons(request, index)
            )
        )
    return blocks, truncated


def _call_state(request: ApprovalRequest, index: int) -> str | None:
    """Where a person's decision on the call stands: votes, approval, denial, edit."""
    call, decision = request.calls[index], request.decisions[index]
    if call.auto is not None:
        return None
    edited = f" with arguments edited by <@{decision.edit.user_id}>" if decision.edit else ""
    if decision.status is Status.APPROVED:
        voters = [f"<@{vote.user_id}>" for vote in decision.votes] or [f"<@{decision.user_id}>"]
        return (
            f":white_check_mark: *Approved*{edited} by {', '.join(voters)} "
            f"at {slack_date(decision.at)}"
        )
    if decision.status is Status.EXPIRED:
        return f":hourglass: *Expired, no decision* at {slack_date(decision.at)}"
    if decision.status is Status.DENIED:
        reason = f": {escape(truncate(decision.reason, 500)[0])}" if decision.reason else ""
        return (
            f":no_entry: *Denied* by <@{decision.user_id}> at {slack_date(decision.at)}"
            f"{reason or ' (no reason given)'}"
        )
    quorum = call.gate.quorum if call.gate else 1
    if not decision.votes and not decision.edit:
        return None
    counted = ", ".join(f"<@{vote.user_id}>" for vote in decision.votes)
    missing = quorum - len(decision.votes)
    return (
        f":ballot_box_with_check: {len(decision.votes)} of {quorum} approvals{edited}: "
        f"{counted}. Waiting for {missing} more from someone else who can decide."
    )


def _requester_block(request: ApprovalRequest) -> SectionBlock:
    asked = f"<@{request.requester.user_id}> asked"
    if request.origin:  # an agent outside Slack, through the HTTP API
        client = escape(request.origin)
        asked = f"The API client *{client}* asked on behalf of <@{request.requester.user_id}>"
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


def _gate_summary(gate: Gate) -> str:
    who = who_may_decide(gate)
    need = f"{gate.quorum} approvals needed" if gate.quorum > 1 else "one approval needed"
    self_note = "" if gate.allow_self_approval else ", not the requester"
    return f"{who}{self_note} · {need} · {escape(gate.rule[:200])}"


def gate_text(gate: Gate) -> str:
    """Who may decide, and how many must approve."""
    return f"*Who can decide:* {_gate_summary(gate)}"


def _decision_text(request: ApprovalRequest) -> str | None:
    """The request's decision, once its last call is decided."""
    decision = request.decision
    if decision is None:
        return None
    when = slack_date(decision.at)
    if decision.status is Status.EXPIRED:
        return f":hourglass: *Expired, no decision* at {when}. This is not a denial."
    if decision.by_policy:
        return f":robot_face: Decided by the approval policy at {when}"
    asked = [request.decisions[i] for i in request.asked]
    approved = sum(1 for d in asked if d.status is Status.APPROVED)
    if len(asked) == 1:
        return _call_state(request, request.asked[0])
    denied = len(asked) - approved
    icon = {Status.APPROVED: ":white_check_mark:", Status.DENIED: ":no_entry:"}.get(
        request.status, ":ballot_box_with_check:"
    )
    return f"{icon} *Decided* at {when}: {approved} approved, {denied} denied."


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
    """The approval card: who asked, each call with its arguments, who decides it and its own
    buttons, then Approve all / Deny all when several calls wait."""
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text=_tools_title(request)))]
    blocks.append(_requester_block(request))
    gates = request.gates
    if request.status is Status.PENDING:
        notes = [gate_text(gates[0])] if len(gates) == 1 else []
        if request.expires_at is not None:
            notes.append(f":hourglass_flowing_sand: Expires {slack_date(request.expires_at)}")
        if notes:
            blocks.append(ContextBlock(elements=[_md(note) for note in notes]))
    shown = range(min(len(request.calls), CARD_MAX_CALLS))
    budget = max(200, CARD_ARGUMENTS_BUDGET // len(shown)) if shown else 0
    any_truncated = len(request.calls) > len(shown)
    for index in shown:
        call_blocks, truncated = _call_blocks(request, index, budget, len(gates) > 1)
        blocks.extend(call_blocks)
        any_truncated = any_truncated or truncated
    if len(request.calls) > len(shown):
        hidden = len(request.calls) - len(shown)
        blocks.append(
            section(
                f"_…and {hidden} more calls: see *Show full arguments*, decide them all below._"
            )
        )
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
        blocks.append(ActionsBlock(block_id=call_block_id(request, None), elements=buttons))
    return blocks


def _card_buttons(request: ApprovalRequest, truncated: bool) -> list[ButtonElement]:
    buttons: list[ButtonElement] = []
    hidden = len(request.calls) > CARD_MAX_CALLS
    if request.status is Status.PENDING and (len(request.undecided) > 1 or hidden):
        buttons += all_buttons(request)
    elif request.resume is Resume.FAILED:
        buttons.append(ButtonElement(text="Retry", action_id=RETRY_RESUME, value=request.id))
    if truncated:
        buttons.append(
            ButtonElement(text="Show full arguments", action_id=SHOW_ARGUMENTS, value=request.id)
        )
    return buttons


def all_buttons(request: ApprovalRequest) -> list[ButtonElement]:
    """Approve all / Deny all: every waiting call the clicker may decide."""
    return [
        ButtonElement(text="Approve all", action_id=APPROVE_ALL, value=request.id, style="primary"),
        ButtonElement(text="Deny all", action_id=DENY_ALL, value=request.id, style="danger"),
    ]


def call_buttons(request: ApprovalRequest, index: int) -> list[ButtonElement]:
    """Approve, Approve for <duration> (when the rule offers grants), Edit (when the rule
    allows it and the call can be edited), Deny."""
    call = request.calls[index]
    buttons = [ButtonElement(text="Approve", action_id=APPROVE, value=request.id, style="primary")]
    if call.gate is not None and call.gate.grantable:
        buttons += [
            ButtonElement(
                text=f"Approve for {duration_text(seconds)}",
                action_id=f"{GRANT_PREFIX}{seconds}",
                value=request.id,
            )
            for seconds in call.gate.grant_durations_s
        ]
    if call.editable:
        buttons.append(ButtonElement(text="Edit", action_id=EDIT, value=request.id))
    buttons.append(ButtonElement(text="Deny", action_id=DENY, value=request.id, style="danger"))
    return buttons


def duration_text(seconds: int) -> str:
    """3600 -> "1 hour", 5400 -> "90 minutes", 172800 -> "2 days"."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"
