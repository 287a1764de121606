"""A step of the agent's work: one tool call as the requester sees it in their thread.

Each call of a run is one step, named by its ``tool_call_id``, from the moment it runs (or
waits for a person) to its end. A step is shown again only when its state or text changed,
so a resume that runs twice, or in another process, shows nothing twice. Pure: no Slack.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any

from bot.core.approval import ApprovalRequest, Auto, Status


class StepState(StrEnum):
    """Where a step stands (Slack's task statuses use the same four words)."""

    PENDING = "pending"  # waits for a person
    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"
    ERROR = "error"


#: The name of the gate no rule named (bot.core.policy.Gate.rule): not worth showing.
DEFAULT_RULE = "defaults"

#: What the SDK puts before a local or MCP tool's exception, as the call's result.
TOOL_ERROR_PREFIX = "Error while executing "


@dataclass(frozen=True)
class Step:
    """One tool call, as shown. ``summary`` is the bot's own words; ``tool``, ``reason`` and
    ``output`` come from the model, a tool or a person and are untrusted (escaped when
    shown); ``by_user`` is who decided (a Slack user id); ``link`` is the approval card and
    ``where`` the channel it is in."""

    tool_call_id: str
    tool: str
    state: StepState
    summary: str
    by_user: str | None = None
    reason: str | None = None
    output: str | None = None
    link: str | None = None
    where: str | None = None
    rule: str | None = None  # the policy rule that decided it (from the config)
    then: str | None = None  # what happened once it was decided: running, done, failed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        return cls(**{**data, "state": StepState(data["state"])})


def ran(tool_call_id: str, tool: str, result: str | None) -> Step:
    """A call the run executed: in progress (``result`` None), complete, or failed."""
    if result is None:
        return Step(tool_call_id, tool, StepState.IN_PROGRESS, "Running")
    if result.startswith(TOOL_ERROR_PREFIX):
        return Step(tool_call_id, tool, StepState.ERROR, "Failed", output=result)
    return Step(tool_call_id, tool, StepState.COMPLETE, "Done", output=result)


def ran_on_mistrals_side(entry_id: str, tool: str) -> Step:
    """A connector's or built-in's call that Mistral ran itself during the run (no hold
    kept it): the bot hears of it only afterwards, done."""
    return Step(entry_id, tool, StepState.COMPLETE, "Done on Mistral's side")


def awaiting(request: ApprovalRequest) -> list[Step]:
    """The calls that wait for people: pending, with where they wait (the card's channel,
    and the rule when it is not the defaults), how many approvals they need, and the card."""
    steps: list[Step] = []
    for index in request.undecided:
        call, gate = request.calls[index], request.calls[index].gate
        need = gate.quorum if gate is not None else 1
        # not the votes so far: the task is not updated at each vote, only when decided
        summary = "Waiting for approval" if need == 1 else f"Waiting for {need} approvals"
        rule = gate.rule if gate is not None and gate.rule != DEFAULT_RULE else None
        steps.append(
            Step(
                call.tool_call_id,
                call.name,
                StepState.PENDING,
                summary,
                link=request.card_link,
                where=request.approvals_channel,
                rule=rule,
            )
        )
    return steps


def decided(request: ApprovalRequest) -> list[Step]:
    """Each call as people or the policy decided it, before the conversation resumes: an
    approved one is in progress (it runs next), a denied or expired one ended."""
    steps = [decided_step(request, index) for index in range(len(request.calls))]
    return [step for step in steps if step is not None]


def decided_step(request: ApprovalRequest, index: int) -> Step | None:
    """Call ``index`` of ``request`` as decided; None while undecided."""
    call, decision = request.calls[index], request.decisions[index]
    base = Step(call.tool_call_id, call.name, StepState.IN_PROGRESS, "", link=request.card_link)
    rule = call.rule or None
    if call.auto is Auto.DENY:
        denied = "Denied by the policy"
        return replace(base, state=StepState.ERROR, summary=denied, rule=rule, reason=call.note)
    if call.auto is Auto.GRANT:
        return replace(base, summary="Allowed by a grant", rule=rule)
    if call.auto is Auto.ALLOW:
        return replace(base, summary="Allowed by the policy", rule=rule)
    if decision.status is Status.APPROVED:
        edited = " with changed arguments" if decision.edit is not None else ""
        return replace(base, summary=f"Approved{edited}", by_user=decision.user_id)
    if decision.status is Status.DENIED:
        return replace(
            base,
            state=StepState.ERROR,
            summary="Denied",
            by_user=decision.user_id,
            reason=decision.reason,
        )
    if decision.status is Status.EXPIRED:
        return replace(
            base,
            state=StepState.ERROR,
            summary="Expired: nobody decided in time (not a denial); it did not run",
        )
    return None


def as_decided(step: Step, request: ApprovalRequest | None) -> Step:
    """A step a resumed run shows, with how its call was decided (who approved it, which
    rule allowed it), so that running it does not hide the decision."""
    index = request.call_index(step.tool_call_id) if request is not None else None
    if request is None or index is None:
        return step
    before = decided_step(request, index)
    if before is None:
        return step
    then = "running" if step.state is StepState.IN_PROGRESS else step.summary.lower()
    return replace(
        step,
        summary=before.summary,
        then=then,
        by_user=before.by_user,
        reason=before.reason,
        rule=before.rule,
        link=before.link,
    )
