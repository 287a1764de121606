"""Webhook deliveries: a decided (or expired) API request POSTed to its client's
``callback_url``, as durable jobs. The first attempt is a job enqueued at the decision; a
failed attempt schedules the next (1 s, doubling to an hour) in ``WEBHOOKS_DUE_ZSET``, where
the sweeper finds it and enqueues its job; 24 hours after the first attempt it is given up.
Each outcome is audited. At least once: a lost response means another delivery."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from typing import Final

from bot.core.api_config import ApiClient
from bot.core.approval import ApprovalRequest
from bot.errors import ApprovalNotFound
from bot.flow.api_view import approval_view
from bot.flow.webhooks import WebhookSender
from bot.storage import keys
from bot.storage.api_store import ApiStore
from bot.storage.audit import BOT, AuditLog
from bot.storage.jobs import JobQueue, Kind
from bot.storage.store import Store

logger = logging.getLogger(__name__)

#: Longest wait between two attempts at a webhook.
WEBHOOK_MAX_BACKOFF_S: Final = 3600
#: Deliveries a sweep takes.
WEBHOOK_BATCH: Final = 200


class WebhookDeliveries:
    """Starts, retries and gives up webhook deliveries."""

    def __init__(
        self,
        store: Store,
        api_store: ApiStore,
        audit: AuditLog,
        jobs: JobQueue,
        clients: Sequence[ApiClient],
        sender: WebhookSender | None,
    ) -> None:
        self.store = store
        self.api_store = api_store
        self.audit = audit
        self.jobs = jobs
        self.clients = {client.name: client for client in clients}
        self.sender = sender

    async def start(self, approval_id: str) -> None:
        """Deliver the request's decision now (a job); scheduled first, so that if the job
        is lost, the sweeper offers the delivery again."""
        await self.api_store.schedule_webhook(approval_id, time.time() + keys.WEBHOOK_IN_FLIGHT_S)
        await self.jobs.enqueue(Kind.WEBHOOK, approval_id)

    async def deliver_due(self, now: float) -> list[str]:
        """Enqueue the webhook deliveries due by ``now`` (the sweeper calls it)."""
        due = await self.api_store.webhooks_due(now, WEBHOOK_BATCH)
        for approval_id in due:
            await self.jobs.enqueue(Kind.WEBHOOK, approval_id)
        return due

    async def deliver(self, approval_id: str) -> None:
        """One attempt at a request's webhook (a job); on failure the next is scheduled,
        doubling from 1 s up to an hour, until a 2xx or 24 hours after the first."""
        owner = secrets.token_hex(8)
        if not await self.api_store.lock_webhook(approval_id, owner):
            return  # another job delivers it now; it reschedules it if that fails
        try:
            await self._deliver(approval_id)
        finally:
            await self.api_store.unlock_webhook(approval_id, owner)

    async def _deliver(self, approval_id: str) -> None:
        if not await self.api_store.webhook_pending(approval_id):
            return  # delivered (or given up) by an earlier job
        try:
            request = await self.store.get_approval(approval_id)
        except ApprovalNotFound:
            await self.api_store.webhook_finished(approval_id)
            return
        url = request.extra.get("callback_url")
        client = self.clients.get(request.origin)
        sender = self.sender
        if not url or client is None or sender is None:
            logger.error("API approval %s: no client or URL to deliver to", approval_id)
            await self.api_store.webhook_finished(approval_id)
            return
        now = time.time()
        delivery = await self.api_store.attempt(approval_id, now)
        sent = await sender.post(str(url), client.key, approval_view(request))
        result = str(sent.status) if sent.status is not None else sent.error
        if sent.ok:
            await self.api_store.webhook_finished(approval_id)
            await self._audit_webhook(request, "webhook_delivered", delivery.attempts, result)
            return
        if now - delivery.first_at >= keys.WEBHOOK_GIVE_UP_S:
            logger.error("API approval %s: webhook given up: %s", approval_id, result)
            await self.api_store.webhook_finished(approval_id)
            await self._audit_webhook(request, "webhook_failed", delivery.attempts, result)
            return
        backoff = min(2 ** (delivery.attempts - 1), WEBHOOK_MAX_BACKOFF_S)
        logger.warning(
            "API approval %s: webhook attempt %d failed (%s); again in %d s",
            approval_id,
            delivery.attempts,
            result,
            backoff,
        )
        await self.api_store.schedule_webhook(approval_id, now + backoff)

    async def _audit_webhook(
        self, request: ApprovalRequest, event: str, attempts: int, result: str
    ) -> None:
        await self.audit.record(
            event,
            actor=BOT,
            entry_id=f"{request.id}:{event}",
            approval_id=request.id,
            requester=request.requester.user_id,
            client=request.origin,
            tool=", ".join(request.tool_names),
            detail=f"after {attempts} attempt{'s' if attempts != 1 else ''}: {result}",
        )
