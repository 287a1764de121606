"""Block Kit for the admin surface: ``/approvals`` replies and the App Home tab. Pure builders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
)
from slack_sdk.models.views import View

from bot.core.approval import ApprovalRequest, Resume, Status
from bot.core.policy import Effect, Gate, Grant, Override, Policy
from bot.flow.console import Page
from bot.slack.blocks import (
    MAX_MESSAGE_BLOCKS,
    SECTION_LIMIT,
    call_block_id,
    call_buttons,
    duration_text,
    gate_text,
    section,
    slack_date,
)
from bot.slack.mrkdwn import escape, split_mrkdwn

MAX_HOME_BLOCKS: Final = 100
#: Calls of one request given buttons on the App Home; the card has the rest.
MAX_HOME_CALLS: Final = 3
#: The App Home's page buttons; the value is where in the pending list the page starts.
HOME_PAGE: Final = "home_page"

HELP: Final = """\
*`/approvals`* — the approval bot's controls
• `/approvals pending`: requests waiting for a decision
• `/approvals policy`: the rules in force, with admins' overrides
• `/approvals grants`: live "approve for a while" grants
*Admins only*
• `/approvals require <tool>` / `allow <tool>`: override the rules for a tool (globs work)
• `/approvals reset <tool>`: remove that override
• `/approvals revoke <grant id>`: end a grant now"""


def text_blocks(text: str, limit: int = MAX_MESSAGE_BLOCKS) -> list[Block]:
    """Long mrkdwn as sections within Block Kit's limits."""
    chunks = split_mrkdwn(text, SECTION_LIMIT - 100)
    blocks: list[Block] = [section(chunk) for chunk in chunks[:limit]]
    if len(chunks) > limit:
        blocks[-1] = section("_…cut to fit one message._")
    return blocks


def _tools(names: Sequence[str]) -> str:
    shown = ", ".join(f"`{escape(name[:100])}`" for name in names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def request_line(request: ApprovalRequest) -> str:
    """One request in a list: tools, who asked, when, where to see it."""
    link = f" · <{request.card_link}|view>" if request.card_link else ""
    return (
        f"{_tools(request.tool_names)} for <@{request.requester.user_id}>, "
        f"asked {slack_date(request.created_at)}{link}"
    )


# -- /approvals ------------------------------------------------------------------------------
def pending_blocks(page: Page) -> list[Block]:
    if not page.requests:
        return [section(":white_check_mark: Nothing is waiting for a decision.")]
    lines = [f"*{page.total} request{'s' if page.total != 1 else ''} waiting* (oldest first)"]
    lines += [f"• {request_line(request)}" for request in page.requests]
    if page.total > len(page.requests):
        lines.append(f"_…and {page.total - len(page.requests)} more._")
    return text_blocks("\n".join(lines))


def _gate_summary(gate: Gate) -> str:
    summary = gate_text(gate).removeprefix("*Who can decide:* ")
    summary += " · edits allowed" if gate.allow_edit else ""
    summary += " · buttons in the requester's thread" if gate.requester_thread else ""
    summary += f" · expires after {duration_text(gate.expire_after_s)}"
    if gate.remind_every_s:
        summary += f", reminders every {duration_text(gate.remind_every_s)}"
    return summary


def policy_blocks(policy: Policy, overrides: Sequence[Override]) -> list[Block]:
    lines = ["*Approval policy* (rules are tried in order; the first that matches decides)"]
    if overrides:
        lines.append(
            "*Overrides set by admins* (`allow` comes before the rules; `require` asks the "
            "defaults' approvers where the rules would let a call run, and keeps stricter rules)"
        )
        lines += [
            f"• `{escape(o.tool)}` → *{'require' if o.effect is Effect.ASK else 'allow'}* "
            f"(<@{o.by}>, {slack_date(o.at)})"
            for o in overrides
        ]
    lines.append("*Rules*" if policy.rules else "_No rules: the defaults apply._")
    for rule in policy.rules:
        config = rule.config
        when = f" when `{escape(config.when)}`" if config.when else ""
        head = f"{rule.index + 1}. {_tools(config.tools)}{when} → *{config.decision}*"
        if rule.effect is Effect.DENY:
            head += f": {escape(config.reason or 'not allowed')}"
        elif rule.effect is Effect.ASK:
            head += f": {_gate_summary(policy.gate_of(rule))}"
        lines.append(head)
    lines.append(f"*Defaults*: {_gate_summary(policy.defaults)}")
    if policy.held:
        lines.append(f"*Tools that ask when no rule matches*: {_tools(sorted(policy.held))}")
    return text_blocks("\n".join(lines))


def grants_blocks(grants: Sequence[Grant]) -> list[Block]:
    if not grants:
        return [section("No live grants.")]
    lines = [
        "*Live grants* (the tool runs without asking until the grant ends, for calls its rule "
        "would send to the same approvers)"
    ]
    for grant in grants:
        scope = "these arguments only" if grant.arguments is not None else "any arguments"
        # where the rule would send the call to other people, the grant does not apply
        under = f", under {escape(grant.rule[:200])} only" if grant.rule else ""
        lines.append(
            f"• `{grant.id}`: `{escape(grant.tool[:100])}` for <@{grant.requester_id}> "
            f"({scope}{under}), granted by <@{grant.created_by}>, "
            f"until {slack_date(grant.expires_at)}"
        )
    return text_blocks("\n".join(lines))


# -- App Home --------------------------------------------------------------------------------
def _outcome(request: ApprovalRequest) -> str:
    decision = request.decision
    if request.status is Status.PENDING:
        return ":hourglass_flowing_sand: waiting for a decision"
    assert decision is not None
    who = "the policy" if decision.by_policy else f"<@{decision.user_id}>"
    verb = {Status.APPROVED: "approved", Status.DENIED: "denied"}.get(
        request.status, "partly approved"
    )
    state = {
        Resume.FAILED: " · :warning: resuming failed",
        Resume.RUNNING: " · resuming…",
    }.get(request.resume, "")
    return f"{verb} by {who}{state}"


def home_view(
    user_id: str, actionable: Page, recent: Sequence[ApprovalRequest], is_admin: bool
) -> View:
    """What ``user_id`` can decide now (with the cards' buttons), then their own requests."""
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text="Approvals"))]
    shown = 0
    if actionable.requests:
        blocks.append(section(f"*Waiting for your decision* ({actionable.total} pending in all)"))
        for request in actionable.requests:
            blocks += _queue_blocks(request, actionable.calls_of(request))
            shown += 1
            if len(blocks) > MAX_HOME_BLOCKS - 20:
                break
    elif actionable.start:
        blocks.append(section("Nothing more is waiting for your decision."))
    else:
        blocks.append(section("Nothing is waiting for your decision."))
    pages = _page_buttons(actionable, shown)
    if pages:
        blocks.append(ActionsBlock(block_id=HOME_PAGE, elements=pages))
    blocks.append(DividerBlock())
    blocks.append(section("*Your recent requests*"))
    if recent:
        lines = [f"• {request_line(request)}: {_outcome(request)}" for request in recent]
        blocks += text_blocks("\n".join(lines), limit=MAX_HOME_BLOCKS - len(blocks) - 2)
    else:
        blocks.append(section("_You have not asked for anything that needed approval._"))
    tip = "Type `/approvals` for pending requests, the policy and grants."
    if is_admin:
        tip += " You are an admin: `/approvals require|allow|reset <tool>`, `revoke <id>`."
    blocks.append(ContextBlock(elements=[_context(tip)]))
    return View(type="home", blocks=blocks[:MAX_HOME_BLOCKS])


def _page_buttons(page: Page, shown: int) -> list[ButtonElement]:
    """First page and Next page, as far as there are other pages. A page cut short by Block
    Kit's limits goes on, on the next page, with the first request it did not show."""
    buttons = []
    if page.start:
        first = ButtonElement(text="« First page", action_id=f"{HOME_PAGE}_first", value="0")
        buttons.append(first)
    after = page.next_start
    if shown < len(page.requests):
        after = page.positions.get(page.requests[shown].id, after)
    if after is not None:
        buttons.append(ButtonElement(text="Next page ›", action_id=HOME_PAGE, value=str(after)))
    return buttons


def _queue_blocks(request: ApprovalRequest, calls: Sequence[int]) -> list[Block]:
    """One request in a person's queue: what it is, and the buttons of the calls they may
    decide (the card's own, so a click here is a click on the card)."""
    gates = request.gates
    gate = f"\n{gate_text(gates[0])}" if len(gates) == 1 else ""
    blocks: list[Block] = [section(request_line(request) + gate)]
    for index in calls[:MAX_HOME_CALLS]:
        if len(request.calls) > 1:
            call = request.calls[index]
            arguments = escape(" ".join(call.arguments.split())[:150])
            blocks.append(
                ContextBlock(
                    elements=[_context(f"*{index + 1}.* `{escape(call.name[:100])}` {arguments}")]
                )
            )
        blocks.append(
            ActionsBlock(
                block_id=call_block_id(request, index), elements=call_buttons(request, index)
            )
        )
    if len(calls) > MAX_HOME_CALLS:
        blocks.append(ContextBlock(elements=[_context("_More calls wait: see the card._")]))
    return blocks


def _context(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=text, verbatim=True)
