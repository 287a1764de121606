"""Approval cards and what the sweeper does to requests: posting a card (once it is stored),
posting it again where Slack refused it, reminders in its thread, and telling people that a
request expired. The orchestrator posts new cards through it; the sweeper and the
membership listener call it."""

from __future__ import annotations

import logging

from bot.core.approval import ApprovalRequest, Status
from bot.errors import ApprovalNotFound, UpstreamError
from bot.flow.chat import Chat
from bot.flow.decisions import Decisions
from bot.flow.reporting import about_request, problem, quietly
from bot.metrics import Metrics
from bot.storage import keys
from bot.storage.audit import BOT, AuditLog
from bot.storage.store import Store

logger = logging.getLogger(__name__)

#: How many pending requests (oldest first) are looked through for cards to post when the
#: bot joins a channel.
CARDS_REPOST_SCAN = 500


class Cards:
    """Posting cards, reminders and expiry notes."""

    def __init__(
        self, store: Store, chat: Chat, audit: AuditLog, decisions: Decisions, metrics: Metrics
    ) -> None:
        self.store = store
        self.chat = chat
        self.audit = audit
        self.decisions = decisions
        self.metrics = metrics

    async def expired(self, request: ApprovalRequest) -> None:
        """A request just expired (its resume is enqueued): audit it and tell people."""
        with about_request(request):
            await self._expired(request)

    async def _expired(self, request: ApprovalRequest) -> None:
        logger.info("approval %s expired without a decision", request.id)
        for index in request.asked:
            if request.decisions[index].status is Status.EXPIRED:
                self.metrics.decided("expired")
        # the resume job the expiry enqueued writes it too (once: same entry ids), and is
        # retried until it is written
        await quietly(self.audit_expiry(request))
        await quietly(self.chat.tell_decided(request))
        await self.decisions.refresh_card(request.id)

    async def audit_expiry(self, request: ApprovalRequest) -> None:
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
        await quietly(self.chat.remind(request))
        return True

    async def post_waiting_cards(self, channel_id: str) -> list[str]:
        """The bot joined ``channel_id``: post the cards Slack refused there for good (the
        bot was not a member); the ids of the requests whose card is now posted."""
        posted: list[str] = []
        ids = await self.store.pending_ids(0, CARDS_REPOST_SCAN - 1)
        for request in await self.store.get_approvals(ids):
            waiting = request.card is None and request.status is Status.PENDING
            if waiting and request.approvals_channel == channel_id:
                with about_request(request):
                    if (await self.post(request, first=False)).card is not None:
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
        posted = await self.post(request, first=False)
        return posted.card is not None

    async def post(self, request: ApprovalRequest, *, first: bool = True) -> ApprovalRequest:
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
                    await quietly(
                        self.chat.tell_card_failed(request, error.code or problem(error), error.fix)
                    )
                return request
            logger.error("approval %s: card not posted (retried later): %r", request.id, error)
            if first:
                await quietly(self.chat.tell_card_failed(request, problem(error)))
            return request
        # the card is stored first: a quick click must find it to update it
        request = await self.store.update_approval(request, card=card)
        await self.store.reschedule(keys.CARDS_DUE_ZSET, request.id, None)
        link = await quietly(self.chat.permalink(card))
        if link:
            request = await self.store.update_approval(request, card_link=link)
        await quietly(self.chat.tell_awaiting(request))
        return request
