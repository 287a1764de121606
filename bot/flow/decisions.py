"""People's decisions: who may decide which call, and recording an approval, a veto or an
edit (one Lua script each, before Slack is answered); then, in the announce job the script
enqueued, the audit, the grant and the card. Used by the card's and the App Home's
listeners and by the console alike, so every surface decides through the same checks."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.core.approval import ApprovalRequest, Decision, Edit, Status
from bot.core.arguments import canonical_arguments
from bot.core.editing import EditedArguments
from bot.core.policy import Effect, Gate
from bot.errors import AlreadyDecided, ApprovalError, ApprovalNotFound, EditRefused, NotAllowed
from bot.flow.chat import Chat
from bot.flow.gatekeeper import Gatekeeper
from bot.flow.reporting import about_request, quietly
from bot.metrics import Metrics, RequestOutcome
from bot.storage.connections import STORAGE_ERRORS
from bot.storage.jobs import Job
from bot.storage.store import Action, Cast, Store, VoteOutcome

logger = logging.getLogger(__name__)

#: what a listener or service reports to a person instead of raising
_FAILURES: tuple[type[Exception], ...] = (ApprovalError, *STORAGE_ERRORS)


@dataclass(frozen=True)
class Choice:
    """The calls of a request a person may decide now, and those they asked for but may not."""

    request: ApprovalRequest
    calls: list[int]
    others: list[int]


@dataclass(frozen=True)
class Decided:
    """What a person's click did: calls it decided, calls where it counted towards a quorum,
    and calls it could not touch (other approvers'); ``request`` as it is now. It is recorded
    (and the resume enqueued when it completed the request); :meth:`Assistant.announce` then
    audits it and shows it."""

    request: ApprovalRequest
    decided: list[int]
    counted: list[int]
    others: list[int]
    user_id: str = ""
    events: dict[str, str] = field(default_factory=dict)  # audit event by vote outcome
    reason: str | None = None
    edit: Edit | None = None
    grant_s: int | None = None
    complete: bool = False
    job_id: str = ""  # the announce job's id: its audit entries and grant are made once


class Decisions:
    """Who may decide, and what a decision does."""

    def __init__(self, store: Store, chat: Chat, gatekeeper: Gatekeeper, metrics: Metrics) -> None:
        self.store = store
        self.chat = chat
        self.gatekeeper = gatekeeper
        self.directory = gatekeeper.directory
        self.audit = gatekeeper.audit
        self.policy_store = gatekeeper.policy_store
        self.metrics = metrics

    async def may_decide(
        self, approval_id: str, user_id: str, call: int | None = None, *, voting: bool = True
    ) -> Choice:
        """The request and the calls ``user_id`` may decide now: call ``call``, or (None)
        every undecided call they may decide. Raises NotAllowed or AlreadyDecided when none."""
        request = await self.store.get_approval(approval_id)
        if request.status is not Status.PENDING:
            raise AlreadyDecided(
                request.id,
                request.status.value,
                request.decision.user_id if request.decision else None,
            )
        wanted = [call] if call is not None else request.undecided
        allowed: list[int] = []
        refusals: list[ApprovalError] = []
        for index in wanted:
            try:
                gate = request.calls[index].gate if 0 <= index < len(request.calls) else None
                approvers = await self.directory.deciders(gate) if gate else set()
                request.check_may_decide(user_id, index, approvers, voting=voting)
            except (NotAllowed, AlreadyDecided) as refusal:
                refusals.append(refusal)
                continue
            allowed.append(index)
        if not allowed:
            raise refusals[0] if refusals else AlreadyDecided(request.id, "decided", None)
        return Choice(request, allowed, [i for i in wanted if i not in allowed])

    async def decidable(
        self,
        request: ApprovalRequest,
        user_id: str,
        deciders: dict[Gate, set[str]] | None = None,
    ) -> list[int]:
        """The waiting calls of ``request`` that ``user_id`` may decide now; ``deciders``:
        who may decide each gate, as far as known (filled in as gates are looked up)."""
        known = {} if deciders is None else deciders
        calls: list[int] = []
        for index in request.undecided:
            gate = request.calls[index].gate
            try:
                if gate is not None and gate not in known:
                    known[gate] = await self.directory.deciders(gate)
                approvers = known[gate] if gate is not None else set()
                request.check_may_decide(user_id, index, approvers)
            except (NotAllowed, AlreadyDecided):
                continue
            calls.append(index)
        return calls

    async def approve(
        self,
        approval_id: str,
        user_id: str,
        *,
        call: int | None = None,
        revision: int | None = None,
        grant_s: int | None = None,
    ) -> Decided:
        """Count ``user_id``'s approval of call ``call`` (None: every call they may decide).

        ``revision``: the card they clicked (a click on arguments edited since is refused).
        ``grant_s``: also stop asking for that call's tool and requester for that long.
        """
        choice = await self.may_decide(approval_id, user_id, call)
        if grant_s is not None:
            # a grant covers one call's tool (a card from before per-call buttons names none,
            # which is the same when one call waits)
            gate = choice.request.calls[choice.calls[0]].gate if len(choice.calls) == 1 else None
            if gate is None or not gate.grantable or grant_s not in gate.grant_durations_s:
                raise NotAllowed(approval_id, user_id, "That grant is not offered for this call.")
        events: dict[str, str] = {
            VoteOutcome.COUNTED: "approval_counted",
            VoteOutcome.DECIDED: "approved",
        }
        cast = await self.store.cast(
            choice.request,
            Action.APPROVE,
            Decision(Status.APPROVED, user_id, time.time()),
            choice.calls,
            revision=revision,
            announcement=_announcement(choice.calls, user_id, events, grant_s=grant_s),
        )
        self._refuse_if_nothing_changed(cast, user_id)
        return _decided(cast, choice, user_id, events, grant_s=grant_s)

    async def deny(
        self, approval_id: str, user_id: str, reason: str | None, *, call: int | None = None
    ) -> Decided:
        """Veto call ``call`` (None: every call ``user_id`` may decide); one Deny decides a
        call, whatever its quorum."""
        choice = await self.may_decide(approval_id, user_id, call, voting=False)
        reason = (reason or "").strip() or None
        events: dict[str, str] = {VoteOutcome.DECIDED: "denied"}
        cast = await self.store.cast(
            choice.request,
            Action.DENY,
            Decision(Status.DENIED, user_id, time.time(), reason),
            choice.calls,
            announcement=_announcement(choice.calls, user_id, events, reason=reason),
        )
        self._refuse_if_nothing_changed(cast, user_id)
        return _decided(cast, choice, user_id, events, reason=reason)

    async def edit(
        self, approval_id: str, user_id: str, call: int, edited: EditedArguments, revision: int
    ) -> Decided:
        """Approve call ``call`` with the arguments ``user_id`` changed; this counts as their
        approval, and earlier approvals of the model's arguments lapse."""
        choice = await self.may_decide(approval_id, user_id, call, voting=False)
        original = choice.request.calls[call]
        if not original.editable:
            raise NotAllowed(approval_id, user_id, "The arguments of this call cannot be edited.")
        await self._check_edit(choice.request, call, edited, user_id)
        edit = Edit(
            json.dumps(edited.arguments, ensure_ascii=False),
            edited.override,
            user_id,
            time.time(),
        )
        events: dict[str, str] = {
            VoteOutcome.DECIDED: "edited_approved",
            VoteOutcome.COUNTED: "edited",
        }
        cast = await self.store.cast(
            choice.request,
            Action.EDIT,
            Decision(Status.APPROVED, user_id, edit.at),
            [call],
            revision=revision,
            edit=edit,
            announcement=_announcement([call], user_id, events, edit=edit),
        )
        self._refuse_if_nothing_changed(cast, user_id)
        return _decided(cast, choice, user_id, events, edit=edit)

    async def _check_edit(
        self, request: ApprovalRequest, index: int, edited: EditedArguments, user_id: str
    ) -> None:
        """Edited arguments go through the policy again: an editor approves them only where
        the same rule would send them to the same approvers (or would let them run). Under
        another rule, or a deny, the edit is refused (EditRefused) and nothing is recorded."""
        call = request.calls[index]
        arguments = json.dumps(edited.arguments, ensure_ascii=False)
        verdict = await self.gatekeeper.recheck(
            call, arguments, request.requester.user_id, request.thread.channel_id, request.origin
        )
        field = next(iter(edited.override), "")
        if verdict.effect is Effect.DENY:
            reason = f"The policy denies these arguments ({verdict.rule}): {verdict.reason}"
            raise EditRefused(request.id, user_id, reason, field)
        if verdict.effect is Effect.ASK and (
            verdict.gate is None
            or call.gate is None
            or verdict.gate.fingerprint != call.gate.fingerprint
        ):
            rule = verdict.gate.rule if verdict.gate else verdict.rule
            reason = (
                f"These arguments fall under {rule}, which other approvers decide, so you "
                "cannot approve them. Change them back, or deny the call with a reason."
            )
            raise EditRefused(request.id, user_id, reason, field)

    def _refuse_if_nothing_changed(self, cast: Cast, user_id: str) -> None:
        """Every call named was decided before, or approved by this person already."""
        if cast.calls(VoteOutcome.DECIDED) or cast.calls(VoteOutcome.COUNTED):
            return
        request = cast.request
        if cast.calls(VoteOutcome.VOTED):
            raise NotAllowed(request.id, user_id, "You approved this already.")
        decision = request.decisions[next(iter(cast.outcomes))]
        raise AlreadyDecided(request.id, decision.status.value, decision.user_id or None)

    async def announce_job(self, job: Job) -> None:
        """The announce job a recorded decision enqueued (store.cast): announce it, with the
        request as it is now."""
        data = json.loads(job.fields["data"])
        outcomes = dict(zip(data["calls"], json.loads(job.fields["outcomes"]), strict=True))
        try:
            request = await self.store.get_approval(job.target)
        except ApprovalNotFound:
            logger.warning("approval %s is gone; its decision is not announced", job.target)
            return
        edit = data.get("edit")
        await self.announce(
            Decided(
                request,
                [index for index, what in outcomes.items() if what == VoteOutcome.DECIDED],
                [index for index, what in outcomes.items() if what == VoteOutcome.COUNTED],
                [],
                user_id=data["user_id"],
                events=data["events"],
                reason=data.get("reason"),
                edit=Edit.from_dict(edit) if edit else None,
                grant_s=data.get("grant_s"),
                complete=job.fields.get("complete") == "1",
                job_id=job.id,
            )
        )

    async def announce(self, decided: Decided) -> None:
        """Audit a recorded decision, create its grant, and show it (the card, or the
        requester's thread when it completed the request). Run by the announce job that
        recording the decision enqueued, whichever process takes it.

        The audit entries and the grant raise when Redis refuses them, so that the job is
        retried; they are made once per job (entry ids and grant id from the job's id), and
        everything after them (counting, telling people) happens once, on the attempt that
        got through."""
        with about_request(decided.request, user=decided.user_id or None):
            await self._announce(decided)

    def _count_decisions(self, decided: Decided) -> None:
        request = decided.request
        for index in decided.decided:
            call = request.decisions[index]
            outcome: RequestOutcome = "approved" if call.status is Status.APPROVED else "denied"
            self.metrics.decided(outcome, waited_s=call.at - request.created_at)

    async def _announce(self, decided: Decided) -> None:
        request = decided.request
        for index in [*decided.decided, *decided.counted]:
            outcome = VoteOutcome.DECIDED if index in decided.decided else VoteOutcome.COUNTED
            if outcome not in decided.events:
                continue
            call = request.calls[index]
            event = decided.events[outcome]
            await self.audit.record(
                event,
                actor=decided.user_id,
                entry_id=f"{decided.job_id}:{index}:{event}" if decided.job_id else None,
                approval_id=request.id,
                requester=request.requester.user_id,
                tool=call.name,
                arguments=call.arguments if decided.edit else request.arguments_of(index),
                edited_arguments=decided.edit.arguments if decided.edit else None,
                rule=call.rule,
                detail=decided.reason,
                permalink=request.card_link,
            )
        if decided.grant_s is not None:
            for index in decided.decided:
                await self._grant(request, index, decided, decided.grant_s)
        self._count_decisions(decided)
        if decided.complete:
            logger.info("approval %s %s; resume enqueued", request.id, request.status.value)
            await quietly(self.chat.tell_decided(request))
        else:
            logger.info(
                "approval %s: %d of %d calls decided",
                request.id,
                len(request.asked) - len(request.undecided),
                len(request.asked),
            )
        await quietly(self.refresh_card(request.id))

    async def _grant(
        self, request: ApprovalRequest, index: int, decided: Decided, duration_s: int
    ) -> None:
        """The grant a decision gave, from the moment it was given; one per call and
        announce job however often the job runs."""
        call = request.calls[index]
        assert call.gate is not None
        user_id = decided.user_id
        grant_id = None
        if decided.job_id:
            grant_id = hashlib.sha256(f"{decided.job_id}:{index}".encode()).hexdigest()[:12]
        grant = await self.policy_store.create_grant(
            tool=call.name,
            requester_id=request.requester.user_id,
            arguments=canonical_arguments(call.arguments)
            if call.gate.grant_same_arguments
            else None,
            created_by=user_id,
            duration_s=duration_s,
            approval_id=request.id,
            gate=call.gate,
            grant_id=grant_id,
            created_at=request.decisions[index].at or None,
        )
        if grant is None:  # the job ran so late that the grant had ended already
            logger.warning(
                "approval %s: the grant of call %d ended before it was made", request.id, index
            )
            return
        await self.audit.record_grant(
            "grant_created",
            actor=user_id,
            grant=grant,
            detail=f"until {grant.expires_at:.0f}",
            entry_id=f"{decided.job_id}:{index}:grant_created" if decided.job_id else None,
        )

    async def show_card(self, approval_id: str) -> None:
        """Show a request's card as it stands (after a click on an outdated one)."""
        try:
            await self.refresh_card(approval_id)
        except _FAILURES as error:
            logger.warning("approval %s: card not refreshed: %r", approval_id, error)

    async def refresh_card(self, approval_id: str) -> None:
        """Show the stored state on the card (read back: concurrent votes may have landed)."""
        await quietly(self.chat.update_card(await self.store.get_approval(approval_id)))

    async def approvers(self, request: ApprovalRequest) -> set[str]:
        """Everyone who may decide some call of the request (cached briefly in Redis)."""
        people: set[str] = set()
        for gate in request.gates:
            people |= await self.directory.deciders(gate)
        return people

    async def request(self, approval_id: str) -> ApprovalRequest:
        """The request as stored (ApprovalNotFound if there is none)."""
        return await self.store.get_approval(approval_id)

    async def readable(self, approval_id: str, user_id: str) -> ApprovalRequest:
        """The request, for ``user_id`` to read its full arguments: its requester and the
        people who may decide its calls may; anyone else gets NotAllowed."""
        request = await self.store.get_approval(approval_id)
        if user_id != request.requester.user_id and user_id not in await self.approvers(request):
            raise NotAllowed(
                approval_id, user_id, "Only the requester and the approvers can see the arguments."
            )
        return request


def _announcement(
    calls: Sequence[int],
    user_id: str,
    events: dict[str, str],
    *,
    reason: str | None = None,
    edit: Edit | None = None,
    grant_s: int | None = None,
) -> dict[str, Any]:
    """What the announce job needs besides the request (see :meth:`Assistant.announce_job`)."""
    return {
        "calls": list(calls),
        "user_id": user_id,
        "events": events,
        "reason": reason,
        "edit": edit.to_dict() if edit else None,
        "grant_s": grant_s,
    }


def _decided(
    cast: Cast,
    choice: Choice,
    user_id: str,
    events: dict[str, str],
    *,
    reason: str | None = None,
    edit: Edit | None = None,
    grant_s: int | None = None,
) -> Decided:
    return Decided(
        cast.request,
        cast.calls(VoteOutcome.DECIDED),
        cast.calls(VoteOutcome.COUNTED),
        choice.others,
        user_id=user_id,
        events=events,
        reason=reason,
        edit=edit,
        grant_s=grant_s,
        complete=cast.complete,
    )
