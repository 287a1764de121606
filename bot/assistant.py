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
    Decision,
    MessageRef,
    Requester,
    Resume,
    Status,
    ThreadRef,
    excerpt,
)
from bot.chat import Chat, IncomingMessage
from bot.config import BotConfig
from bot.errors import AlreadyDecided, NotAllowed, UpstreamError
from bot.runner import AgentRunner, Answer, Outcome
from bot.store import Store
from bot.worker import Worker

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Assistant:
    """The bot's behaviour, independent of the chat surface."""

    def __init__(
        self, store: Store, runner: AgentRunner, chat: Chat, config: BotConfig, worker: Worker
    ) -> None:
        self.store = store
        self.runner = runner
        self.chat = chat
        self.config = config
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
            outcome = await self.runner.send(conversation_id, message.text)
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
    ) -> bool:
        """Show an answer, or turn a deferral into an approval request. True if deferred."""
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
        request = ApprovalRequest.from_deferral(
            outcome.deferred,
            thread=thread,
            requester=requester,
            approvals_channel=self.config.approvals.channel,
            allow_self_approval=self.config.approvals.allow_self_approval,
            placeholder=placeholder,
        )
        # Stored before anything is posted: a crash from here on loses no request.
        await self.store.create_approval(request)
        await self.store.park_thread(thread, request.id)
        logger.info("approval %s requested for %s", request.id, request.tool_names)
        await self._post_card(request)
        return True

    async def _post_card(self, request: ApprovalRequest) -> ApprovalRequest:
        try:
            card = await self.chat.post_card(request)
        except UpstreamError as error:
            logger.error("approval %s: card not posted: %r", request.id, error)
            await self._quietly(self.chat.tell_card_failed(request, _problem(error)))
            return request
        request = await self.store.update_approval(request, card=card)
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

    async def approve(self, approval_id: str, user_id: str) -> ApprovalRequest:
        return await self._decide(approval_id, user_id, Status.APPROVED, None)

    async def deny(self, approval_id: str, user_id: str, reason: str | None) -> ApprovalRequest:
        return await self._decide(
            approval_id, user_id, Status.DENIED, (reason or "").strip() or None
        )

    async def _decide(
        self, approval_id: str, user_id: str, status: Status, reason: str | None
    ) -> ApprovalRequest:
        request = await self.check_may_decide(approval_id, user_id)
        decided = await self.store.decide(request, Decision(status, user_id, time.time(), reason))
        logger.info("approval %s %s by %s", approval_id, status.value, user_id)
        self.worker.submit(self._resume(decided, Resume.WAITING), name=f"resume {approval_id}")
        return decided

    async def approvers(self, request: ApprovalRequest) -> set[str]:
        """Who may decide: the approvals channel's members (cached briefly in Redis)."""
        channel = request.approvals_channel
        members = await self.store.cached_members(channel)
        if members is None:
            members = await self.chat.channel_members(channel)
            await self.store.cache_members(channel, members)
        return members

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

    async def _resume(self, request: ApprovalRequest, expected: Resume) -> None:
        if not await self.store.start_resume(request, expected):
            logger.info("approval %s: resume already under way elsewhere", request.id)
            return
        request = await self.store.update_approval(request, resume=Resume.RUNNING, outcome=None)
        await self._quietly(self.chat.update_card(request))
        try:
            outcome = await self.runner.resume(request, self.store)
        except UpstreamError as error:
            logger.warning("approval %s: resume failed: %r", request.id, error)
            request = await self.store.update_approval(
                request, resume=Resume.FAILED, outcome=f"Resuming failed: {_problem(error)}"
            )
            await self._quietly(self.chat.update_card(request))
            await self._quietly(self.chat.tell_resume_failed(request, _problem(error)))
            return
        deferred = await self._settle(request.thread, outcome, request.requester, None, None)
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
