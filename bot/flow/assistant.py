"""The orchestrator: messages into conversations, deferrals into approvals, decisions into resumes.

Data flows one way: a listener hands a message or a decision to the Assistant, which keeps
its state in the Store, runs the conversation through the AgentRunner, and shows the result
through the Chat port. It knows nothing of Slack or HTTP.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TypeVar

from bot.core.approval import (
    ApprovalRequest,
    Auto,
    MessageRef,
    Requester,
    Resume,
    Status,
    ThreadRef,
    ToolCall,
    excerpt,
)
from bot.core.steps import Step
from bot.errors import (
    AlreadyDecided,
    ApprovalNotFound,
    NotAllowed,
    UpstreamError,
)
from bot.flow.api_approvals import ApiApprovals, ApiSettings
from bot.flow.cards import Cards
from bot.flow.chat import Chat, IncomingMessage
from bot.flow.decisions import Decisions
from bot.flow.gatekeeper import Gatekeeper
from bot.flow.reporting import about_message, problem, quietly, request_fields
from bot.logs import bind, log_context
from bot.metrics import Metrics
from bot.mistral.runner import AgentRunner, Answer, Outcome
from bot.mistral.tools import Report
from bot.storage.audit import BOT
from bot.storage.connections import STORAGE_ERRORS
from bot.storage.jobs import Job, JobQueue, Kind
from bot.storage.store import Store, redis_error
from bot.storage.thread_store import Accepted

logger = logging.getLogger(__name__)

T = TypeVar("T")


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
        api: ApiSettings | None = None,
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
        #: people's decisions (the card's, the App Home's and the console's listeners use it)
        self.decisions = Decisions(store, chat, gatekeeper, metrics)
        #: cards: posting, posting again, reminders, expiry notes (the sweeper calls it)
        self.cards = Cards(store, chat, gatekeeper.audit, self.decisions, metrics)
        #: requests made over the HTTP API (bot.api): no conversation of ours to resume
        self.api = ApiApprovals(store, chat, gatekeeper, self.cards, jobs, api or ApiSettings())

    # -- messages ---------------------------------------------------------------------------
    async def accept(
        self, message: IncomingMessage, event_id: str | None, *, needs_conversation: bool = False
    ) -> Accepted:
        """Keep a person's message (before Slack is answered): it is queued on its thread, and
        a job runs the thread. The same ``event_id`` twice is accepted once. Raises
        UpstreamError when Redis cannot take it (Slack then delivers it again)."""
        try:
            return await self.store.threads.accept_message(
                message.thread, message.to_dict(), event_id, needs_conversation=needs_conversation
            )
        except STORAGE_ERRORS as error:
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
            await quietly(
                self.chat.tell_queued(message, accepted.busy_state or "running", accepted.position)
            )

    async def receive(self, message: IncomingMessage) -> None:
        """Take a message that has no event (a Retry): accept it, then acknowledge it."""
        with about_message(message):
            await self.acknowledge(message, await self.accept(message, None))

    # -- jobs --------------------------------------------------------------------------------
    async def run_job(self, job: Job) -> None:
        """Run one durable job (see bot.storage.jobs); raising leaves it to be retried."""
        if job.kind is Kind.RESUME:
            await self._resume_job(job.target)
        elif job.kind is Kind.ANNOUNCE:
            await self.decisions.announce_job(job)
        elif job.kind is Kind.WEBHOOK:
            await self.api.webhooks.deliver(job.target)
        else:
            await self._thread_job(job.target)

    async def give_up(self, job: Job) -> None:
        """A job failed again and again (a bug): free the thread, let people retry by hand."""
        if job.kind is Kind.ANNOUNCE:
            logger.error("approval %s: its decision could not be announced", job.target)
            return
        if job.kind is Kind.WEBHOOK:  # the sweeper offers the delivery again when it is due
            logger.error("approval %s: a webhook delivery failed repeatedly", job.target)
            return
        if job.kind is Kind.RESUME:
            request = await self.store.get_approval(job.target)
            bind(**request_fields(request))
            request = await self.store.update_approval(
                request, resume=Resume.FAILED, outcome="Resuming failed repeatedly."
            )
            await quietly(self.chat.update_card(request))
            await quietly(self.chat.tell_resume_failed(request, "It failed repeatedly."))
        else:
            logger.error("thread %s: its messages failed repeatedly; skipping one", job.target)
            await self.store.threads.take_message(job.target, first=False)

    async def _thread_job(self, thread_key: str) -> None:
        """Run the thread's queued messages in order until it is idle or waits for a decision."""
        taken = await self.store.threads.take_message(thread_key, first=True)
        while taken is not None:
            again, data = taken
            message = IncomingMessage.from_dict(data)
            with about_message(message):
                if again:
                    logger.warning(
                        "thread %s: message %s was interrupted (its process stopped); "
                        "running it again",
                        thread_key,
                        message.ts,
                    )
                if await self._process(message, again=again):
                    return  # parked on an approval (or resumed by the policy): the resume goes on
            taken = await self.store.threads.take_message(thread_key, first=False)

    async def _process(self, message: IncomingMessage, *, again: bool = False) -> bool:
        """Run one message. True if the thread now waits for an approval.

        ``again``: a run of it died; its "working" placeholder (kept with the thread) is
        reused, so that none is left behind saying "working" for ever."""
        placeholder = await self.store.threads.placeholder(message.thread) if again else None
        if placeholder is None:
            placeholder = await quietly(self.chat.show_working(message.thread, message))
            if placeholder is not None:
                await self.store.threads.set_placeholder(message.thread, placeholder)
        conversation_id = await self.store.threads.conversation_id(message.thread)
        bind(conversation_id=conversation_id)
        try:
            outcome: Outcome | None = None
            if (again or message.resent) and conversation_id:
                # its earlier sending may have reached the conversation: never send it twice
                outcome = await self.runner.recover_turn(conversation_id, message.text)
            if outcome is None:
                outcome = await self.runner.send(
                    conversation_id,
                    message.text,
                    await self.gatekeeper.holds(),
                    observer=self._observer(message.thread),
                )
        except UpstreamError as error:
            logger.warning("run failed in thread %s: %r", message.thread.key, error)
            if error.conversation_id and error.conversation_id != conversation_id:
                await self.store.threads.set_conversation_id(message.thread, error.conversation_id)
            turn_id = secrets.token_hex(12)
            await self.store.threads.save_turn(turn_id, message.to_dict())
            await quietly(
                self.chat.post_failure(message.thread, problem(error), placeholder, turn_id)
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
            await self.store.threads.set_conversation_id(thread, outcome.conversation_id)
            bind(conversation_id=outcome.conversation_id)
        if isinstance(outcome, Answer):
            await quietly(self.chat.post_answer(thread, outcome.text, placeholder))
            return False
        if message is not None and requester.permalink is None:
            link = await quietly(self.chat.permalink(MessageRef(thread.channel_id, message.ts)))
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
                await quietly(self.chat.post_failure(thread, _TOO_MANY_ROUNDS, placeholder, None))
                return False
            request = request.decided_by_policy(time.time())
        with log_context(approval_id=request.id):
            # Stored before anything is posted: a crash from here on loses no request.
            await self.store.create_approval(request)
            await self.gatekeeper.audit_screening(request)
            if any(call.auto in (Auto.DENY, Auto.GRANT) for call in request.calls):
                await quietly(self.chat.tell_policy(request))
            if screening.decided_by_policy:
                logger.info("approval %s decided by policy for %s", request.id, request.tool_names)
                await self.store.begin_resume(request.id)
                await self._resume(request, rounds=rounds + 1)
                return True
            await self.store.threads.park_thread(thread, request.id)
            logger.info("approval %s requested for %s", request.id, request.tool_names)
            await self.cards.post(request)
            return True

    async def _with_parameters(self, calls: Sequence[ToolCall]) -> list[ToolCall]:
        """Keep the parameter schema the model saw with each call an approver may edit."""
        kept: list[ToolCall] = []
        for call in calls:
            if call.auto is None and not call.server_side and call.gate and call.gate.allow_edit:
                call = replace(call, parameters=await self.runner.parameters_of(call.name))
            kept.append(call)
        return kept

    async def retry_resume(self, approval_id: str, user_id: str) -> None:
        """Retry a resume that failed upstream (requester or an approver may)."""
        request = await self.store.get_approval(approval_id)
        if user_id != request.requester.user_id and user_id not in await self.decisions.approvers(
            request
        ):
            raise NotAllowed(approval_id, user_id, "Only the requester or an approver can retry.")
        if request.resume is not Resume.FAILED or not await self.store.requeue_resume(approval_id):
            raise AlreadyDecided(approval_id, f"resumed ({request.resume.value})", None)
        logger.info("approval %s: resume retried by %s", approval_id, user_id)

    async def retry_turn(self, turn_id: str, user_id: str) -> bool:
        """Send a failed message again, for its author only (a Retry sends it in their
        name). False if it was retried already."""
        data = await self.store.threads.peek_turn(turn_id)
        if data is not None and data.get("user_id") != user_id:
            raise NotAllowed(turn_id, user_id, "Only the person who wrote it can retry it.")
        data = await self.store.threads.take_turn(turn_id)
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
        bind(**request_fields(request))
        if request.status is Status.PENDING:
            logger.error("approval %s: a resume job for an undecided request", approval_id)
            await self.store.update_approval(request, resume=Resume.WAITING)
            return
        await self.cards.audit_expiry(request)  # raising: the job is retried until it is written
        if request.origin:  # made over the HTTP API: its client resumes its own conversation
            await self.api.concluded(request)
            return
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
        await quietly(self.chat.update_card(request))
        await quietly(self.chat.show_decisions(request))
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
                    self.store.ledger,
                    await self.gatekeeper.holds(),
                    report=self._reporter(request, unknown),
                    observer=self._observer(request.thread, request),
                )
        except UpstreamError as error:
            logger.warning("approval %s: resume failed: %r", request.id, error)
            request = await self.store.update_approval(
                request, resume=Resume.FAILED, outcome=f"Resuming failed: {problem(error)}"
            )
            await quietly(self.chat.update_card(request))
            await quietly(self.chat.tell_resume_failed(request, problem(error)))
            return False
        if unknown:
            await quietly(self.chat.tell_outcome_unknown(request, unknown))
        # a request the policy decided alone has no card: its answer replaces the placeholder
        by_policy = request.decision is not None and request.decision.by_policy
        placeholder = request.placeholder if by_policy else None
        deferred = await self._settle(
            request.thread, outcome, request.requester, placeholder, None, rounds
        )
        check = f" Outcome unknown for {', '.join(unknown)}: check it." if unknown else ""
        if deferred:
            follow_up = await self.store.threads.conversation_id(request.thread)
            logger.info("approval %s: conversation %s deferred again", request.id, follow_up)
            request = await self.store.update_approval(
                request,
                resume=Resume.DEFERRED,
                outcome="The agent asked for another approval." + check,
            )
            await quietly(self.chat.update_card(request))
            return True
        request = await self.store.update_approval(
            request,
            resume=Resume.DONE,
            outcome="The agent answered in the requester's thread." + check,
        )
        await quietly(self.chat.update_card(request))
        await self.store.threads.release_thread(request.thread)
        return True

    def _observer(
        self, thread: ThreadRef, request: ApprovalRequest | None = None
    ) -> Callable[[Step], Awaitable[None]]:
        """Shows each call a run makes as a step in the requester's thread."""

        async def observe(step: Step) -> None:
            await quietly(self.chat.show_step(thread, step, request))

        return observe

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
