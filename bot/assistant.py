"""The orchestrator: messages into conversations, deferrals into approvals, decisions into resumes.

Data flows one way: a listener hands a message or a decision to the Assistant, which keeps
its state in the Store, runs the conversation through the AgentRunner, and shows the result
through the Chat port. It knows nothing of Slack or HTTP.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from redis.exceptions import RedisError

from bot import keys
from bot.approval import (
    ApprovalRequest,
    Auto,
    Decision,
    Edit,
    MessageRef,
    Requester,
    Resume,
    Status,
    ThreadRef,
    ToolCall,
    excerpt,
)
from bot.arguments import canonical_arguments
from bot.audit import BOT, POLICY
from bot.chat import Chat, IncomingMessage
from bot.editing import EditedArguments
from bot.errors import (
    AlreadyDecided,
    ApprovalError,
    ApprovalNotFound,
    EditRefused,
    NotAllowed,
    UpstreamError,
)
from bot.gatekeeper import Gatekeeper
from bot.jobs import Job, JobQueue, Kind
from bot.logs import bind, log_context
from bot.metrics import Metrics, RequestOutcome
from bot.policy import Effect
from bot.runner import AgentRunner, Answer, Outcome
from bot.store import Accepted, Action, Cast, Store, redis_error
from bot.tools import Report

logger = logging.getLogger(__name__)

T = TypeVar("T")


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


#: How many pending requests (oldest first) are looked through for cards to post when the
#: bot joins a channel.
CARDS_REPOST_SCAN = 500

#: Deferrals the policy decides alone, in a row, before the bot stops the thread (a model
#: that keeps calling a denied tool must not loop for ever).
MAX_POLICY_ROUNDS = 8
_TOO_MANY_ROUNDS = (
    f"The agent kept calling tools that the approval policy decides ({MAX_POLICY_ROUNDS} rounds "
    "in a row), so I stopped. Rephrase the request or ask an admin."
)


class Assistant:
    """The bot's behaviour, independent of the chat surface."""

    def __init__(
        self,
        store: Store,
        runner: AgentRunner,
        chat: Chat,
        gatekeeper: Gatekeeper,
        jobs: JobQueue,
        metrics: Metrics,
    ) -> None:
        self.store = store
        self.runner = runner
        self.chat = chat
        self.gatekeeper = gatekeeper
        self.directory = gatekeeper.directory
        self.audit = gatekeeper.audit
        self.policy_store = gatekeeper.policy_store
        self.jobs = jobs
        self.metrics = metrics

    # -- messages ---------------------------------------------------------------------------
    async def accept(
        self, message: IncomingMessage, event_id: str | None, *, needs_conversation: bool = False
    ) -> Accepted:
        """Keep a person's message (before Slack is answered): it is queued on its thread, and
        a job runs the thread. The same ``event_id`` twice is accepted once. Raises
        UpstreamError when Redis cannot take it (Slack then delivers it again)."""
        try:
            return await self.store.accept_message(
                message.thread, message.to_dict(), event_id, needs_conversation=needs_conversation
            )
        except (RedisError, OSError) as error:
            raise self.metrics.upstream_failed(redis_error(error)) from error

    async def acknowledge(self, message: IncomingMessage, accepted: Accepted) -> None:
        """After Slack is answered: say so when the message waits behind the thread's work."""
        if accepted.outcome == "duplicate":
            logger.info("message %s delivered again; already taken", message.ts)
        elif accepted.outcome == "queued":
            logger.info(
                "thread %s is %s; message %s queued at %d",
                message.thread.key,
                accepted.busy_state,
                message.ts,
                accepted.position,
            )
            await self._quietly(
                self.chat.tell_queued(message, accepted.busy_state or "running", accepted.position)
            )

    async def receive(self, message: IncomingMessage) -> None:
        """Take a message that has no event (a Retry): accept it, then acknowledge it."""
        with _about_message(message):
            await self.acknowledge(message, await self.accept(message, None))

    # -- jobs --------------------------------------------------------------------------------
    async def run_job(self, job: Job) -> None:
        """Run one durable job (see bot.jobs); raising leaves it to be retried."""
        if job.kind is Kind.RESUME:
            await self._resume_job(job.target)
        elif job.kind is Kind.ANNOUNCE:
            await self.announce_job(job)
        else:
            await self._thread_job(job.target)

    async def give_up(self, job: Job) -> None:
        """A job failed again and again (a bug): free the thread, let people retry by hand."""
        if job.kind is Kind.ANNOUNCE:
            logger.error("approval %s: its decision could not be announced", job.target)
            return
        if job.kind is Kind.RESUME:
            request = await self.store.get_approval(job.target)
            bind(**_request_fields(request))
            request = await self.store.update_approval(
                request, resume=Resume.FAILED, outcome="Resuming failed repeatedly."
            )
            await self._quietly(self.chat.update_card(request))
            await self._quietly(self.chat.tell_resume_failed(request, "It failed repeatedly."))
        else:
            logger.error("thread %s: its messages failed repeatedly; skipping one", job.target)
            await self.store.take_message(job.target, first=False)

    async def _thread_job(self, thread_key: str) -> None:
        """Run the thread's queued messages in order until it is idle or waits for a decision."""
        taken = await self.store.take_message(thread_key, first=True)
        while taken is not None:
            again, data = taken
            message = IncomingMessage.from_dict(data)
            with _about_message(message):
                if again:
                    logger.warning(
                        "thread %s: message %s was interrupted (its process stopped); "
                        "running it again",
                        thread_key,
                        message.ts,
                    )
                if await self._process(message, again=again):
                    return  # parked on an approval (or resumed by the policy): the resume goes on
            taken = await self.store.take_message(thread_key, first=False)

    async def _process(self, message: IncomingMessage, *, again: bool = False) -> bool:
        """Run one message. True if the thread now waits for an approval.

        ``again``: a run of it died; its "working" placeholder (kept with the thread) is
        reused, so that none is left behind saying "working" for ever."""
        placeholder = await self.store.placeholder(message.thread) if again else None
        if placeholder is None:
            placeholder = await self._quietly(self.chat.show_working(message.thread))
            if placeholder is not None:
                await self.store.set_placeholder(message.thread, placeholder)
        conversation_id = await self.store.conversation_id(message.thread)
        bind(conversation_id=conversation_id)
        try:
            outcome: Outcome | None = None
            if (again or message.resent) and conversation_id:
                # its earlier sending may have reached the conversation: never send it twice
                outcome = await self.runner.recover_turn(conversation_id, message.text)
            if outcome is None:
                outcome = await self.runner.send(
                    conversation_id, message.text, await self.gatekeeper.deferring()
                )
        except UpstreamError as error:
            logger.warning("run failed in thread %s: %r", message.thread.key, error)
            if error.conversation_id and error.conversation_id != conversation_id:
                await self.store.set_conversation_id(message.thread, error.conversation_id)
            turn_id = secrets.token_hex(12)
            await self.store.save_turn(turn_id, message.to_dict())
            await self._quietly(
                self.chat.post_failure(message.thread, _problem(error), placeholder, turn_id)
            )
            return False
        requester = Requester(message.user_id, excerpt(message.text))
        return await self._settle(message.thread, outcome, requester, placeholder, message)

    async def _settle(
        self,
        thread: ThreadRef,
        outcome: Outcome,
        requester: Requester,
        placeholder: MessageRef | None,
        message: IncomingMessage | None,
        rounds: int = 0,
    ) -> bool:
        """Show an answer, or screen a deferral through the policy.

        True when the thread's work continues elsewhere: it waits for a decision, or the
        policy decided every call and the conversation resumed (and continued the thread).
        """
        if outcome.conversation_id:
            await self.store.set_conversation_id(thread, outcome.conversation_id)
            bind(conversation_id=outcome.conversation_id)
        if isinstance(outcome, Answer):
            await self._quietly(self.chat.post_answer(thread, outcome.text, placeholder))
            return False
        if message is not None and requester.permalink is None:
            link = await self._quietly(
                self.chat.permalink(MessageRef(thread.channel_id, message.ts))
            )
            requester = Requester(requester.user_id, requester.text_excerpt, link)
        screening = await self.gatekeeper.screen(
            outcome.calls, requester.user_id, thread.channel_id
        )
        request = outcome.new_request(
            thread=thread,
            requester=requester,
            approvals_channel=screening.card_channel,
            calls=await self._with_parameters(screening.calls),
            placeholder=placeholder,
        )
        if screening.decided_by_policy:
            if rounds >= MAX_POLICY_ROUNDS:
                logger.warning("thread %s: policy decided %d rounds in a row", thread.key, rounds)
                await self._quietly(
                    self.chat.post_failure(thread, _TOO_MANY_ROUNDS, placeholder, None)
                )
                return False
            request = request.decided_by_policy(time.time())
        with log_context(approval_id=request.id):
            # Stored before anything is posted: a crash from here on loses no request.
            await self.store.create_approval(request)
            await self._audit_screening(request)
            if any(call.auto in (Auto.DENY, Auto.GRANT) for call in request.calls):
                await self._quietly(self.chat.tell_policy(request))
            if screening.decided_by_policy:
                logger.info("approval %s decided by policy for %s", request.id, request.tool_names)
                await self.store.begin_resume(request.id)
                await self._resume(request, rounds=rounds + 1)
                return True
            await self.store.park_thread(thread, request.id)
            logger.info("approval %s requested for %s", request.id, request.tool_names)
            await self._post_card(request)
            return True

    # -- the sweeper -------------------------------------------------------------------------
    async def expired(self, request: ApprovalRequest) -> None:
        """A request just expired (its resume is enqueued): audit it and tell people."""
        with _about_request(request):
            await self._expired(request)

    async def _expired(self, request: ApprovalRequest) -> None:
        logger.info("approval %s expired without a decision", request.id)
        for index in request.asked:
            if request.decisions[index].status is Status.EXPIRED:
                self.metrics.decided("expired")
        # the resume job the expiry enqueued writes it too (once: same entry ids), and is
        # retried until it is written
        await self._quietly(self._audit_expiry(request))
        await self._quietly(self.chat.tell_decided(request))
        await self._refresh_card(request.id)

    async def _audit_expiry(self, request: ApprovalRequest) -> None:
        """The ``expired`` entry of each call nobody decided in time (none if none)."""
        for index in request.asked:
            if request.decisions[index].status is not Status.EXPIRED:
                continue
            call = request.calls[index]
            await self.audit.record(
                "expired",
                actor=BOT,
                entry_id=f"{request.id}:{index}:expired",
                approval_id=request.id,
                requester=request.requester.user_id,
                tool=call.name,
                arguments=request.arguments_of(index),
                rule=call.rule,
                permalink=request.card_link,
            )

    async def remind(self, approval_id: str, now: float) -> bool:
        """Remind the approvers in the card's thread, and schedule the next reminder (none
        past the expiry). False when there was nothing to remind of."""
        try:
            request = await self.store.get_approval(approval_id)
        except ApprovalNotFound:
            await self.store.reschedule(keys.REMINDERS_ZSET, approval_id, None)
            return False
        every = request.remind_every_s
        following = now + every if every else None
        if following is not None and request.expires_at and following >= request.expires_at:
            following = None
        await self.store.reschedule(keys.REMINDERS_ZSET, approval_id, following)
        if request.status is not Status.PENDING or request.card is None:
            return False
        await self._quietly(self.chat.remind(request))
        return True

    async def post_waiting_cards(self, channel_id: str) -> list[str]:
        """The bot joined ``channel_id``: post the cards Slack refused there for good (the
        bot was not a member); the ids of the requests whose card is now posted."""
        posted: list[str] = []
        ids = await self.store.pending_ids(0, CARDS_REPOST_SCAN - 1)
        for request in await self.store.get_approvals(ids):
            waiting = request.card is None and request.status is Status.PENDING
            if waiting and request.approvals_channel == channel_id:
                with _about_request(request):
                    if (await self._post_card(request, first=False)).card is not None:
                        posted.append(request.id)
        return posted

    async def post_card_again(self, approval_id: str, now: float) -> bool:
        """Post the card of a request whose first post failed. True once it is posted."""
        try:
            request = await self.store.get_approval(approval_id)
        except ApprovalNotFound:
            await self.store.reschedule(keys.CARDS_DUE_ZSET, approval_id, None)
            return False
        if request.status is not Status.PENDING or request.card is not None:
            await self.store.reschedule(keys.CARDS_DUE_ZSET, approval_id, None)
            return False
        await self.store.reschedule(keys.CARDS_DUE_ZSET, approval_id, now + keys.CARD_RETRY_S)
        posted = await self._post_card(request, first=False)
        return posted.card is not None

    async def _with_parameters(self, calls: Sequence[ToolCall]) -> list[ToolCall]:
        """Keep the parameter schema the model saw with each call an approver may edit."""
        kept: list[ToolCall] = []
        for call in calls:
            if call.auto is None and not call.server_side and call.gate and call.gate.allow_edit:
                call = replace(call, parameters=await self.runner.parameters_of(call.name))
            kept.append(call)
        return kept

    async def _audit_screening(self, request: ApprovalRequest) -> None:
        events = {
            None: "requested",
            Auto.ALLOW: "auto_allowed",
            Auto.DENY: "auto_denied",
            Auto.GRANT: "granted_run",
        }
        for index, call in enumerate(request.calls):
            await self.audit.record(
                events[call.auto],
                actor=request.requester.user_id if call.auto is None else POLICY,
                entry_id=f"{request.id}:{index}:{events[call.auto]}",
                approval_id=request.id,
                requester=request.requester.user_id,
                tool=call.name,
                arguments=call.arguments,
                rule=call.rule,
                detail=call.note,
                permalink=request.requester.permalink,
            )

    async def _post_card(self, request: ApprovalRequest, *, first: bool = True) -> ApprovalRequest:
        """Post the card; when Slack refuses, the request stays pending, the sweeper tries
        again, and the requester is told (the first time)."""
        try:
            card = await self.chat.post_card(request)
        except UpstreamError as error:
            if error.permanent:
                # not retried on a timer: it cannot succeed until a person acts (an invite,
                # a scope); the card is posted when the bot joins the channel
                await self.store.reschedule(keys.CARDS_DUE_ZSET, request.id, None)
                self.metrics.refused_for_good(error, f"posting the card of {request.id}")
                logger.error(
                    "approval %s: card not posted in %s, and not retried: %r (fix: %s)",
                    request.id,
                    request.approvals_channel,
                    error,
                    error.fix,
                )
                if first:
                    await self._quietly(
                        self.chat.tell_card_failed(
                            request, error.code or _problem(error), error.fix
                        )
                    )
                return request
            logger.error("approval %s: card not posted (retried later): %r", request.id, error)
            if first:
                await self._quietly(self.chat.tell_card_failed(request, _problem(error)))
            return request
        # the card is stored first: a quick click must find it to update it
        request = await self.store.update_approval(request, card=card)
        await self.store.reschedule(keys.CARDS_DUE_ZSET, request.id, None)
        link = await self._quietly(self.chat.permalink(card))
        if link:
            request = await self.store.update_approval(request, card_link=link)
        await self._quietly(self.chat.tell_awaiting(request))
        return request

    # -- decisions ---------------------------------------------------------------------------
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
        events = {"counted": "approval_counted", "decided": "approved"}
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
        events = {"decided": "denied"}
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
        events = {"decided": "edited_approved", "counted": "edited"}
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
            call, arguments, request.requester.user_id, request.thread.channel_id
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
        if cast.calls("decided") or cast.calls("counted"):
            return
        request = cast.request
        if cast.calls("voted"):
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
                [index for index, what in outcomes.items() if what == "decided"],
                [index for index, what in outcomes.items() if what == "counted"],
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
        with _about_request(decided.request, user=decided.user_id or None):
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
            outcome = "decided" if index in decided.decided else "counted"
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
            await self._quietly(self.chat.tell_decided(request))
        else:
            logger.info(
                "approval %s: %d of %d calls decided",
                request.id,
                len(request.asked) - len(request.undecided),
                len(request.asked),
            )
        await self._quietly(self._refresh_card(request.id))

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
            await self._refresh_card(approval_id)
        except (ApprovalError, RedisError, OSError) as error:
            logger.warning("approval %s: card not refreshed: %r", approval_id, error)

    async def _refresh_card(self, approval_id: str) -> None:
        """Show the stored state on the card (read back: concurrent votes may have landed)."""
        await self._quietly(self.chat.update_card(await self.store.get_approval(approval_id)))

    async def approvers(self, request: ApprovalRequest) -> set[str]:
        """Everyone who may decide some call of the request (cached briefly in Redis)."""
        people: set[str] = set()
        for gate in request.gates:
            people |= await self.directory.deciders(gate)
        return people

    async def readable(self, approval_id: str, user_id: str) -> ApprovalRequest:
        """The request, for ``user_id`` to read its full arguments: its requester and the
        people who may decide its calls may; anyone else gets NotAllowed."""
        request = await self.store.get_approval(approval_id)
        if user_id != request.requester.user_id and user_id not in await self.approvers(request):
            raise NotAllowed(
                approval_id, user_id, "Only the requester and the approvers can see the arguments."
            )
        return request

    # -- resuming ---------------------------------------------------------------------------
    async def retry_resume(self, approval_id: str, user_id: str) -> None:
        """Retry a resume that failed upstream (requester or an approver may)."""
        request = await self.store.get_approval(approval_id)
        if user_id != request.requester.user_id and user_id not in await self.approvers(request):
            raise NotAllowed(approval_id, user_id, "Only the requester or an approver can retry.")
        if request.resume is not Resume.FAILED or not await self.store.requeue_resume(approval_id):
            raise AlreadyDecided(approval_id, f"resumed ({request.resume.value})", None)
        logger.info("approval %s: resume retried by %s", approval_id, user_id)

    async def retry_turn(self, turn_id: str, user_id: str) -> bool:
        """Send a failed message again, for its author only (a Retry sends it in their
        name). False if it was retried already."""
        data = await self.store.peek_turn(turn_id)
        if data is not None and data.get("user_id") != user_id:
            raise NotAllowed(turn_id, user_id, "Only the person who wrote it can retry it.")
        data = await self.store.take_turn(turn_id)
        if data is None:
            return False
        await self.receive(replace(IncomingMessage.from_dict(data), resent=True))
        return True

    async def _resume_job(self, approval_id: str) -> None:
        bind(approval_id=approval_id)
        found = await self.store.begin_resume(approval_id)
        if found is None:
            logger.warning("approval %s is gone; nothing to resume", approval_id)
            return
        if found not in (Resume.WAITING, Resume.RUNNING):
            logger.info("approval %s: resume already %s", approval_id, found.value)
            return
        try:
            request = await self.store.get_approval(approval_id)
        except ApprovalNotFound:
            return
        bind(**_request_fields(request))
        if request.status is Status.PENDING:
            logger.error("approval %s: a resume job for an undecided request", approval_id)
            await self.store.update_approval(request, resume=Resume.WAITING)
            return
        await self._audit_expiry(request)  # raising: the job is retried until it is written
        await self._resume(request, interrupted=found is Resume.RUNNING)

    async def _resume(
        self, request: ApprovalRequest, *, rounds: int = 0, interrupted: bool = False
    ) -> None:
        """Resume the conversation with the request's decision (its resume marked running).

        ``interrupted``: an earlier attempt died mid-way. The conversation's history says
        whether the decision reached it; if so it is not sent again.
        """
        started = time.monotonic()
        ok = False
        try:
            ok = await self._resume_conversation(request, rounds=rounds, interrupted=interrupted)
        finally:
            self.metrics.resumed(time.monotonic() - started, ok=ok)

    async def _resume_conversation(
        self, request: ApprovalRequest, *, rounds: int, interrupted: bool
    ) -> bool:
        """:meth:`_resume`; False when it failed upstream (the request is marked so)."""
        request = await self.store.update_approval(request, resume=Resume.RUNNING, outcome=None)
        await self._quietly(self.chat.update_card(request))
        unknown: list[str] = []
        try:
            outcome: Outcome | None = None
            if interrupted:
                outcome = await self.runner.recover(request)
                if outcome is not None:
                    logger.warning(
                        "approval %s: an interrupted resume had reached the conversation; "
                        "its answer is taken from the history, nothing is sent again",
                        request.id,
                    )
            if outcome is None:
                outcome = await self.runner.resume(
                    request,
                    self.store,
                    await self.gatekeeper.deferring(),
                    report=self._reporter(request, unknown),
                )
        except UpstreamError as error:
            logger.warning("approval %s: resume failed: %r", request.id, error)
            request = await self.store.update_approval(
                request, resume=Resume.FAILED, outcome=f"Resuming failed: {_problem(error)}"
            )
            await self._quietly(self.chat.update_card(request))
            await self._quietly(self.chat.tell_resume_failed(request, _problem(error)))
            return False
        if unknown:
            await self._quietly(self.chat.tell_outcome_unknown(request, unknown))
        # a request the policy decided alone has no card: its answer replaces the placeholder
        by_policy = request.decision is not None and request.decision.by_policy
        placeholder = request.placeholder if by_policy else None
        deferred = await self._settle(
            request.thread, outcome, request.requester, placeholder, None, rounds
        )
        check = f" Outcome unknown for {', '.join(unknown)}: check it." if unknown else ""
        if deferred:
            follow_up = await self.store.conversation_id(request.thread)
            logger.info("approval %s: conversation %s deferred again", request.id, follow_up)
            request = await self.store.update_approval(
                request,
                resume=Resume.DEFERRED,
                outcome="The agent asked for another approval." + check,
            )
            await self._quietly(self.chat.update_card(request))
            return True
        request = await self.store.update_approval(
            request,
            resume=Resume.DONE,
            outcome="The agent answered in the requester's thread." + check,
        )
        await self._quietly(self.chat.update_card(request))
        await self.store.release_thread(request.thread)
        return True

    def _reporter(self, request: ApprovalRequest, unknown: list[str]) -> Report:
        """Audits what happens to each approved call as it runs; collects unknown outcomes."""

        async def report(event: str, tool_call_id: str, detail: str | None) -> None:
            index = request.call_index(tool_call_id)
            name = request.calls[index].name if index is not None else "?"
            if event == "outcome_unknown":
                unknown.append(name)
            await self.audit.record(
                event,
                actor=BOT,
                entry_id=f"{request.id}:{tool_call_id}:{event}",
                approval_id=request.id,
                requester=request.requester.user_id,
                tool=name,
                arguments=request.arguments_of(index) if index is not None else None,
                detail=detail,
                permalink=request.card_link,
            )

        return report

    async def _quietly(self, call: Awaitable[T]) -> T | None:
        """Run a chat (or audit) call whose failure must not stop the flow; log what failed."""
        try:
            return await call
        except (UpstreamError, RedisError, OSError) as error:
            logger.error("call failed, continuing: %r", error)
            return None


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
        cast.calls("decided"),
        cast.calls("counted"),
        choice.others,
        user_id=user_id,
        events=events,
        reason=reason,
        edit=edit,
        grant_s=grant_s,
        complete=cast.complete,
    )


def _request_fields(request: ApprovalRequest, user: str | None = None) -> dict[str, str | None]:
    """The log fields of a request: ``user`` is whoever acts on it (default: its requester)."""
    return {
        "approval_id": request.id,
        "conversation_id": request.conversation_id or None,
        "team": request.thread.team_id,
        "channel": request.thread.channel_id,
        "user": user or request.requester.user_id,
    }


def _about_request(
    request: ApprovalRequest, user: str | None = None
) -> AbstractContextManager[None]:
    return log_context(**_request_fields(request, user))


def _about_message(message: IncomingMessage) -> AbstractContextManager[None]:
    thread = message.thread
    return log_context(team=thread.team_id, channel=thread.channel_id, user=message.user_id)


def _problem(error: UpstreamError) -> str:
    if error.service == "mistral":
        status = f" (HTTP {error.status})" if error.status else ""
        return f"The model service (Mistral) failed{status}."
    return f"{error.service.capitalize()} failed."
