"""Block Kit builders for the requester's thread: the agent's answers (split to fit), failures
with Retry, and notes on what waits, what was decided and what the policy did. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    SectionBlock,
)

from bot.core.approval import ApprovalRequest, Auto, Status
from bot.slack.blocks import (
    CARD_MAX_CALLS,
    FIELD_LIMIT,
    MAX_MESSAGE_BLOCKS,
    MESSAGE_TEXT_BUDGET,
    RETRY_RESUME,
    RETRY_TURN,
    SECTION_LIMIT,
    _call_status,
    _fit_code,
    _join_or,
    _md,
    call_block_id,
    call_buttons,
    section,
    slack_date,
    truncate,
    who_may_decide,
)
from bot.slack.mrkdwn import escape, markdown_to_mrkdwn, split_mrkdwn


# -- answers -----------------------------------------------------------------------------------
def answer_messages(markdown: str) -> list[list[Block]]:
    """The model's answer as one or more messages of sections, in order, each within Slack's
    limits: 50 blocks, 3000 characters a section, and ``MESSAGE_TEXT_BUDGET`` in all."""
    empty = "_(the model returned no text)_"
    chunks = split_mrkdwn(markdown_to_mrkdwn(markdown), SECTION_LIMIT) or [empty]
    messages: list[list[Block]] = [[]]
    size = 0
    for chunk in chunks:
        if messages[-1] and (
            len(messages[-1]) == MAX_MESSAGE_BLOCKS or size + len(chunk) > MESSAGE_TEXT_BUDGET
        ):
            messages.append([])
            size = 0
        messages[-1].append(section(chunk))
        size += len(chunk)
    return messages


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


def card_failed_text(request: ApprovalRequest, problem: str, fix: str | None) -> str:
    """The requester's thread: the card could not be posted; retried, or waiting for ``fix``."""
    names = ", ".join(f"`{escape(name[:100])}`" for name in request.tool_names[:5])
    head = (
        f":warning: I need approval for {names} but could not post the request for approvers "
        f"in <#{request.approvals_channel}> ({escape(problem)})."
    )
    if fix is None:
        return f"{head} It is saved as `{request.id}`, and I will keep trying."
    return (
        f"{head} An admin must {escape(fix)}. The request is saved as `{request.id}`: "
        "approvers can decide it from the bot's Home tab meanwhile, and its card is posted "
        "as soon as the bot is in the channel."
    )


def awaiting_text(request: ApprovalRequest, card_link: str | None) -> str:
    """The requester's thread: what waits, and where."""
    names = [f"`{escape(call.name[:200])}`" for call in request.asked_calls[:10]]
    if len(request.asked) > len(names):
        names.append(f"{len(request.asked) - len(names)} more")
    verb = "need" if len(request.asked) > 1 else "needs"
    where = f"<#{request.approvals_channel}>"
    link = f" (<{card_link}|view the request>)" if card_link else ""
    if request.origin:  # an agent outside Slack: it resumes itself once told
        return (
            f":raised_hand: {escape(request.origin)} asked, on your behalf, to run "
            f"{', '.join(names)}. I've asked in {where}{link}; I'll tell you here when "
            "someone decides."
        )
    return (
        f":raised_hand: {', '.join(names)} {verb} approval before running. I've asked in "
        f"{where}{link} and will continue here once someone decides."
    )


def decided_note(request: ApprovalRequest) -> tuple[str, list[Block]]:
    """The requester's thread, once people decided: each call's decision, and the arguments
    side by side where someone edited them."""
    lines: list[str] = []
    edited: list[int] = []
    for index in request.asked[:CARD_MAX_CALLS]:
        call, decision = request.calls[index], request.decisions[index]
        name = f"`{escape(call.name[:200])}`"
        if decision.status is Status.APPROVED and decision.edit is not None:
            lines.append(
                f":pencil2: {name} approved by <@{decision.user_id}> with changed arguments"
            )
            edited.append(index)
        elif decision.status is Status.APPROVED:
            lines.append(f":white_check_mark: {name} approved by <@{decision.user_id}>")
        elif decision.status is Status.EXPIRED:
            lines.append(
                f":hourglass: {name}: nobody decided in time, so the request expired (this is "
                "not a denial). It did not run; ask again if you still need it."
            )
        else:
            reason = f": {escape(truncate(decision.reason, 300)[0])}" if decision.reason else ""
            lines.append(f":no_entry: {name} denied by <@{decision.user_id}>{reason}")
    if len(request.asked) > CARD_MAX_CALLS:
        lines.append(f"_…and {len(request.asked) - CARD_MAX_CALLS} more; see the card._")
    blocks: list[Block] = [section(chunk) for chunk in _line_chunks(lines)]
    for index in edited[: (MAX_MESSAGE_BLOCKS - len(blocks)) // 2]:
        edit = request.decisions[index].edit
        assert edit is not None
        original, _ = _fit_code(request.calls[index].pretty_arguments(), 900, FIELD_LIMIT - 40)
        changed, _ = _fit_code(edit.pretty_arguments(), 900, FIELD_LIMIT - 40)
        blocks.append(
            SectionBlock(
                text=_md(f"`{escape(request.calls[index].name[:200])}`"),
                fields=[_md(f"*Asked for*\n{original}"), _md(f"*Ran with*\n{changed}")],
            )
        )
    if request.status is Status.EXPIRED:
        return "The request for approval expired.", blocks
    return "People decided on the agent's actions.", blocks


def reminder_text(request: ApprovalRequest) -> str:
    """A reminder in the card's thread: who is awaited, and when the request expires."""
    who = _join_or([who_may_decide(gate) for gate in request.gates][:5]) or "the approvers"
    expires = (
        f" It expires {slack_date(request.expires_at)} without a decision."
        if request.expires_at
        else ""
    )
    waiting = len(request.undecided)
    calls = f"{waiting} call{'s' if waiting != 1 else ''}"
    return f":bell: Reminder for {who}: {calls} still wait for a decision.{expires}"


def outcome_unknown_text(names: Sequence[str]) -> str:
    """The bot died while approved calls ran, and did not run them again."""
    listed = ", ".join(f"`{escape(name[:200])}`" for name in names[:10])
    return (
        f":warning: The bot stopped while {listed} was running and did not run it again, so "
        "its outcome is unknown. Please check whether it happened before asking again."
    )


def _line_chunks(lines: Sequence[str], limit: int = SECTION_LIMIT - 100) -> list[str]:
    """Lines joined into as few texts of at most ``limit`` characters as whole lines allow
    (a cut inside a line could fall inside an escape)."""
    chunks: list[str] = []
    for line in lines:
        if chunks and len(chunks[-1]) + 1 + len(line) <= limit:
            chunks[-1] += "\n" + line
        else:
            chunks.append(line[:limit])
    return chunks


def resume_failed_blocks(request: ApprovalRequest, problem: str) -> list[Block]:
    status = {
        Status.APPROVED: "approved",
        Status.DENIED: "denied",
        Status.EXPIRED: "expired without a decision",
    }.get(request.status, "decided")
    return [
        section(
            f":warning: The request was {status}, but I could not continue: {escape(problem)} "
            "The decision is saved."
        ),
        ActionsBlock(
            elements=[ButtonElement(text="Retry", action_id=RETRY_RESUME, value=request.id)]
        ),
    ]


def thread_card(request: ApprovalRequest) -> tuple[str, list[Block]]:
    """The request's buttons in the requester's thread: each waiting call with its own
    Approve / Deny (the card's block ids, so a click is checked exactly as on the card),
    and a link to the card; once decided, what was decided, without buttons."""
    if request.status is not Status.PENDING:
        text, decided = decided_note(request)
        return text, decided
    link = f" (<{request.card_link}|the card>)" if request.card_link else ""
    blocks: list[Block] = [
        section(
            f":raised_hand: Waiting for approval in <#{request.approvals_channel}>{link}. "
            "You may decide here too:"
        )
    ]
    for index in request.undecided[:CARD_MAX_CALLS]:
        call = request.calls[index]
        arguments, _ = _fit_code(call.pretty_arguments(), 600, SECTION_LIMIT - 300)
        blocks.append(section(f"`{escape(call.name[:200])}`\n{arguments}"))
        blocks.append(
            ActionsBlock(
                block_id=call_block_id(request, index), elements=call_buttons(request, index)
            )
        )
    if len(request.undecided) > CARD_MAX_CALLS:
        blocks.append(section("_…and more: decide them on the card._"))
    return "An action waits for approval; you may decide it here.", blocks
