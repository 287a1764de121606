"""The orchestrator: messages into conversations, deferrals into approvals, decisions into resumes.

Data flows one way: a listener hands a message or a decision to the Assistant, which keeps
its state in the Store, runs the conversation through the AgentRunner, and shows the result
through the Chat port. It knows nothing of Slack or HTTP.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable
from typing import TypeVar

from bot.approval import (
    ApprovalRequest,
    Auto,
    Decision,
    MessageRef,
    Requester,
    Resume,
    Status,
    ThreadRef,
    calls_of,
    excerpt,
)
from bot.audit import POLICY
from bot.chat import Chat, IncomingMessage
from bot.errors import AlreadyDecided, NotAllowed, UpstreamError
from bot.gatekeeper import Gatekeeper
from bot.runner import AgentRunner, Answer, Outcome
from bot.store import Store
from bot.tools import canonical_arguments
from bot.worker import Worker

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
        worker: Worker,
    ) -> None:
        self.store = store
        self.runner = runner
        self.chat = chat
        self.gatekeeper = gatekeeper
        self.directory = gatekeeper.directory
        self.audit = gatekeeper.audit
        self.policy_store = gatekeeper.policy_store
        self.worker = worker

    # -- messages ----------------------------------------------------------------------------
    async def receive(self, message: IncomingMessage) -> None:
        """Take a person's message: run it now, or queue it behind the thread's work."""
        claim = await self.store.claim_thread(message.thread, message.to_dict())
        if not claim.run_now:
            logger.info(
                "thread %s is %s; message %s queued at %d",
                message.thread.key,
                claim.busy_state,
                message.ts,
                claim.position,
            )
            await self._quietly(
                self.chat.tell_queued(message, claim.busy_state or "running", claim.position)
            )
            return
        first = IncomingMessage.from_dict(claim.earlier) if claim.earlier else message
        self.worker.submit(self._work_thread(first), name=f"thread {message.thread.key}")

    async def has_conversation(self, thread: ThreadRef) -> bool:
        return await self.store.conversation_id(thread) is not None

    async def _work_thread(self, message: IncomingMessage | None) -> None:
        """Run the thread's messages in order until it is idle or waits for a decision."""
        while message is not None:
            if await self._process(message):
                return  # parked on an approval; the resume continues the thread
            message = await self._next_message(message.thread)

    async def _process(self, message: IncomingMessage) -> bool:
        """Run one message. True if the thread now waits for an approval."""
        placeholder = await self._quietly(self.chat.show_working(message.thread))
        conversation_id = await self.store.conversation_id(message.thread)
        try:
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
        if isinstance(outcome, Answer):
            await self._quietly(self.chat.post_answer(thread, outcome.text, placeholder))
            return False
        if message is not None and requester.permalink is None:
            link = await self._quietly(
                self.chat.permalink(MessageRef(thread.channel_id, message.ts))
            )
            requester = Requester(requester.user_id, requester.text_excerpt, link)
        screening = await self.gatekeeper.screen(
            calls_of(outcome.deferred), requester.user_id, thread.channel_id
        )
        request = ApprovalRequest.from_deferral(
            outcome.deferred,
            thread=thread,
            requester=requester,
            approvals_channel=screening.card_channel,
            gate=screening.gate,
            calls=screening.calls,
            placeholder=placeholder,
        )
        if screening.decided_by_policy:
            if rounds >= MAX_POLICY_ROUNDS:
                logger.warning("thread %s: policy decided %d rounds in a row", thread.key, rounds)
                await self._quietly(
                    self.chat.post_failure(thread, _TOO_MANY_ROUNDS, placeholder, None)
                )
                return False
            allowed = any(call.auto is not Auto.DENY for call in request.calls)
            status = Status.APPROVED if allowed else Status.DENIED
            request = request.decided(Decision(status, "", time.time()))
        # Stored before anything is posted: a crash from here on loses no request.
        await self.store.create_approval(request)
        await self._audit_screening(request)
        if any(call.auto in (Auto.DENY, Auto.GRANT) for call in request.calls):
            await self._quietly(self.chat.tell_policy(request))
        if screening.decided_by_policy:
            logger.info("approval %s decided by policy for %s", request.id, request.tool_names)
            await self._resume(request, Resume.WAITING, rounds + 1)
            return True
        await self.store.park_thread(thread, request.id)
        logger.info("approval %s requested for %s", request.id, request.tool_names)
        await self._post_card(request)
        return True

    async def _audit_screening(self, request: ApprovalRequest) -> None:
        events = {
            None: "requested",
            Auto.ALLOW: "auto_allowed",
            Auto.DENY: "auto_denied",
            Auto.GRANT: "granted_run",
        }
        for call in request.calls:
            await self.audit.record(
                events[call.auto],
                actor=request.requester.user_id if call.auto is None else POLICY,
                approval_id=request.id,
                requester=request.requester.user_id,
                tool=call.name,
                arguments=call.arguments,
                rule=call.rule,
                detail=call.note,
                permalink=request.requester.permalink,
            )

    async def _post_card(self, request: ApprovalRequest) -> ApprovalRequest:
        try:
            card = await self.chat.post_card(request)
        except UpstreamError as error:
            logger.error("approval %s: card not posted: %r", request.id, error)
            await self._quietly(self.chat.tell_card_failed(request, _problem(error)))
            return request
        # the card is stored first: a quick click must find it to update it
        request = await self.store.update_approval(request, card=card)
        link = await self._quietly(self.chat.permalink(card))
        if link:
            request = await self.store.update_approval(request, card_link=link)
        await self._quietly(self.chat.tell_awaiting(request))
        return request

    # -- decisions ---------------------------------------------------------------------------
    async def check_may_decide(self, approval_id: str, user_id: str) -> ApprovalRequest:
        """The request, if ``user_id`` may decide it now; else NotAllowed / AlreadyDecided."""
        request = await self.store.get_approval(approval_id)
        if request.status is not Status.PENDING:
            raise AlreadyDecided(
                request.id,
                request.status.value,
                request.decision.user_id if request.decision else None,
            )
        request.check_may_decide(user_id, await self.approvers(request))
        return request

    async def approve(
        self, approval_id: str, user_id: str, grant_s: int | None = None
    ) -> ApprovalRequest:
        """Count ``user_id``'s approval; with ``grant_s``, also stop asking for that long."""
        request = await self.check_may_decide(approval_id, user_id)
        if grant_s is not None and (
            request.gate is None
            or not request.gate.grantable
            or grant_s not in request.gate.grant_durations_s
        ):
            raise NotAllowed(approval_id, user_id, "That grant is not offered for this request.")
        ballot = await self.store.vote(request, Decision(Status.APPROVED, user_id, time.time()))
        request = ballot.request
        await self._audit_decision(
            request, "approved" if ballot.decided else "approval_counted", user_id
        )
        if not ballot.decided:
            logger.info("approval %s: %d of %d", approval_id, len(request.votes), request.quorum)
            await self._refresh_card(approval_id)
            return request
        if grant_s is not None:
            await self._grant(request, user_id, grant_s)
        self._start_resume(request)
        return request

    async def deny(self, approval_id: str, user_id: str, reason: str | None) -> ApprovalRequest:
        """Veto: one Deny decides, whatever the quorum."""
        request = await self.check_may_decide(approval_id, user_id)
        reason = (reason or "").strip() or None
        ballot = await self.store.vote(
            request, Decision(Status.DENIED, user_id, time.time(), reason)
        )
        await self._audit_decision(ballot.request, "denied", user_id)
        self._start_resume(ballot.request)
        return ballot.request

    def _start_resume(self, request: ApprovalRequest) -> None:
        assert request.decision is not None
        logger.info(
            "approval %s %s by %s", request.id, request.status.value, request.decision.user_id
        )
        self.worker.submit(self._resume(request, Resume.WAITING), name=f"resume {request.id}")

    async def _audit_decision(self, request: ApprovalRequest, event: str, user_id: str) -> None:
        for call in request.asked_calls:
            await self.audit.record(
                event,
                actor=user_id,
                approval_id=request.id,
                requester=request.requester.user_id,
                tool=call.name,
                arguments=call.arguments,
                rule=call.rule,
                detail=request.decision.reason if request.decision else None,
                permalink=request.card_link,
            )

    async def _grant(self, request: ApprovalRequest, user_id: str, duration_s: int) -> None:
        assert request.gate is not None
        for call in request.asked_calls:
            grant = await self.policy_store.create_grant(
                tool=call.name,
                requester_id=request.requester.user_id,
                arguments=canonical_arguments(call.arguments)
                if request.gate.grant_same_arguments
                else None,
                created_by=user_id,
                duration_s=duration_s,
                approval_id=request.id,
            )
            await self.audit.record_grant(
                "grant_created", actor=user_id, grant=grant, detail=f"until {grant.expires_at:.0f}"
            )

    async def _refresh_card(self, approval_id: str) -> None:
        """Show the stored state on the card (read back: concurrent votes may have landed)."""
        await self._quietly(self.chat.update_card(await self.store.get_approval(approval_id)))

    async def approvers(self, request: ApprovalRequest) -> set[str]:
        """Who may decide the request (cached briefly in Redis)."""
        return await self.directory.deciders(request.gate)

    # -- resuming ----------------------------------------------------------------------------
    async def retry_resume(self, approval_id: str, user_id: str) -> None:
        """Retry a resume that failed upstream (requester or an approver may)."""
        request = await self.store.get_approval(approval_id)
        if user_id != request.requester.user_id and user_id not in await self.approvers(request):
            raise NotAllowed(approval_id, user_id, "Only the requester or an approver can retry.")
        if request.resume is not Resume.FAILED:
            raise AlreadyDecided(approval_id, f"resumed ({request.resume.value})", None)
        self.worker.submit(self._resume(request, Resume.FAILED), name=f"retry {approval_id}")

    async def retry_turn(self, turn_id: str) -> bool:
        """Send a failed message again. False if it was retried already."""
        data = await self.store.take_turn(turn_id)
        if data is None:
            return False
        await self.receive(IncomingMessage.from_dict(data))
        return True

    async def _resume(self, request: ApprovalRequest, expected: Resume, rounds: int = 0) -> None:
        if not await self.store.start_resume(request, expected):
            logger.info("approval %s: resume already under way elsewhere", request.id)
            return
        request = await self.store.update_approval(request, resume=Resume.RUNNING, outcome=None)
        await self._quietly(self.chat.update_card(request))
        try:
            outcome = await self.runner.resume(
                request, self.store, await self.gatekeeper.deferring()
            )
        except UpstreamError as error:
            logger.warning("approval %s: resume failed: %r", request.id, error)
            request = await self.store.update_approval(
                request, resume=Resume.FAILED, outcome=f"Resuming failed: {_problem(error)}"
            )
            await self._quietly(self.chat.update_card(request))
            await self._quietly(self.chat.tell_resume_failed(request, _problem(error)))
            return
        # a request the policy decided alone has no card: its answer replaces the placeholder
        by_policy = request.decision is not None and request.decision.by_policy
        placeholder = request.placeholder if by_policy else None
        deferred = await self._settle(
            request.thread, outcome, request.requester, placeholder, None, rounds
        )
        if deferred:
            follow_up = await self.store.conversation_id(request.thread)
            logger.info("approval %s: conversation %s deferred again", request.id, follow_up)
            request = await self.store.update_approval(
                request,
                resume=Resume.DEFERRED,
                outcome="The agent asked for another approval.",
            )
            await self._quietly(self.chat.update_card(request))
            return
        request = await self.store.update_approval(
            request, resume=Resume.DONE, outcome="The agent answered in the requester's thread."
        )
        await self._quietly(self.chat.update_card(request))
        await self._work_thread(await self._next_message(request.thread))

    async def _next_message(self, thread: ThreadRef) -> IncomingMessage | None:
        data = await self.store.next_in_thread(thread)
        return IncomingMessage.from_dict(data) if data else None

    async def _quietly(self, call: Awaitable[T]) -> T | None:
        """Run a chat call whose failure must not stop the flow; log what failed."""
        try:
            return await call
        except UpstreamError as error:
            logger.error("chat call failed, continuing: %r", error)
            return None


def _problem(error: UpstreamError) -> str:
    if error.service == "mistral":
        status = f" (HTTP {error.status})" if error.status else ""
        return f"The model service (Mistral) failed{status}."
    return f"{error.service.capitalize()} failed."
