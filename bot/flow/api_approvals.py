"""Approvals for agents that do not live in Slack: a deferral sent over the HTTP API
(bot.api) becomes a request like any other: the same policy, card, decisions, quorum,
grants, expiry, reminders and audit. Only its end differs: there is no conversation to
resume, so the decision is made available to the client (it polls, and its webhook is
POSTed) and the client resumes its own conversation.

The decision path is the Slack one unchanged (``Decisions`` and the cast script): the card's
buttons decide an API request exactly as they decide any other.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from bot.core.api_config import ApiClient
from bot.core.approval import (
    ApprovalRequest,
    Auto,
    Requester,
    Resume,
    Status,
    ThreadRef,
    ToolCall,
    excerpt,
    new_approval_id,
)
from bot.errors import ApprovalNotFound, ClientNotAllowed, InvalidInput, UpstreamError
from bot.flow.cards import Cards
from bot.flow.chat import Chat
from bot.flow.gatekeeper import Gatekeeper
from bot.flow.reporting import quietly
from bot.flow.webhook_deliveries import WebhookDeliveries
from bot.flow.webhooks import WebhookSender
from bot.logs import log_context
from bot.mistral.deferral import DeferralInvalid, calls_of, parse_deferral
from bot.storage.api_store import ApiStore
from bot.storage.jobs import JobQueue
from bot.storage.store import Store

logger = logging.getLogger(__name__)

#: The longest a ``GET …?wait=`` holds its answer, and how often it looks meanwhile.
MAX_WAIT_S: Final = 60.0
POLL_S: Final = 0.2


@dataclass(frozen=True)
class ApiSettings:
    """The API's clients (with their keys), each one's rate limit, and the webhook sender."""

    clients: tuple[ApiClient, ...] = ()
    requests_per_minute: int = 120
    webhooks: WebhookSender | None = None


@dataclass
class _Claim:
    """An idempotency key claimed for a request being made; ``stored`` once it is."""

    client: str
    key: str
    stored: bool = False


@dataclass(frozen=True)
class Notify:
    """Where to tell the requester: a channel, and a thread in it ("" for none)."""

    channel_id: str
    thread_ts: str = ""


@dataclass(frozen=True)
class ApprovalAsk:
    """One ``POST /api/v1/approvals``, its body checked for shape (bot.api.parsing)."""

    deferral: dict[str, Any]
    requester: str
    summary: str
    tools: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> parameters
    callback_url: str | None = None
    notify: Notify | None = None
    #: the requester named by email instead of ``requester`` (looked up in Slack)
    requester_email: str | None = None

    @property
    def fingerprint(self) -> str:
        """Names the body: an idempotency key used again with another body is refused."""
        body = json.dumps(
            [self.deferral, self.requester or self.requester_email, self.summary, self.tools,
             self.callback_url,
             [self.notify.channel_id, self.notify.thread_ts] if self.notify else None],
            sort_keys=True,
            separators=(",", ":"),
        )  # fmt: skip
        return hashlib.sha256(body.encode()).hexdigest()[:32]


class ApiApprovals:
    """Requests made over the HTTP API: made, read, waited for, concluded, announced."""

    def __init__(
        self,
        store: Store,
        chat: Chat,
        gatekeeper: Gatekeeper,
        cards: Cards,
        jobs: JobQueue,
        settings: ApiSettings,
    ) -> None:
        self.store = store
        self.api_store = ApiStore(store.redis)
        self.chat = chat
        self.gatekeeper = gatekeeper
        self.directory = gatekeeper.directory
        self.audit = gatekeeper.audit
        self.cards = cards
        self.jobs = jobs
        self.settings = settings
        #: the signed POSTs of decided requests to their clients' callback URLs
        self.webhooks = WebhookDeliveries(
            store, self.api_store, self.audit, jobs, settings.clients, settings.webhooks
        )

    # -- who asks ----------------------------------------------------------------------------
    def authenticate(self, key: str) -> ApiClient | None:
        """The client whose key this is, or None. Every key is compared, each in constant
        time, so the answer's timing tells nothing of which keys exist or how close one is."""
        found = None
        for client in self.settings.clients:
            if hmac.compare_digest(client.key.encode(), key.encode()):
                found = client
        return found

    async def over_limit(self, client: ApiClient) -> float | None:
        """Count one request of ``client``; the seconds to wait when it is over its limit."""
        return await self.api_store.hit(client.name, self.settings.requests_per_minute)

    # -- making a request --------------------------------------------------------------------
    async def create(
        self, client: ApiClient, ask: ApprovalAsk, idempotency_key: str | None = None
    ) -> tuple[ApprovalRequest, bool]:
        """Make the request (True), or return the one made before under the same
        ``idempotency_key`` (False). Raises InvalidInput (a malformed deferral, a key used
        with another body) or ClientNotAllowed (a requester the client may not use);
        nothing is stored then."""
        try:
            deferred = parse_deferral(ask.deferral)
        except DeferralInvalid as error:
            raise InvalidInput(error.where, error.problem) from error
        if ask.requester_email is not None:
            ask = replace(ask, requester=await self._requester_by_email(ask.requester_email))
        await self._check_requester(client, ask.requester)
        if ask.notify is not None:
            await self._check_notify(ask.requester, ask.notify)
        approval_id = new_approval_id()
        if idempotency_key is not None:
            claimed = await self.api_store.claim(
                client.name, idempotency_key, approval_id, ask.fingerprint
            )
            if not claimed.new:
                if claimed.fingerprint != ask.fingerprint:
                    raise InvalidInput(
                        "Idempotency-Key",
                        "this key was used before with another body; fix: send a new key "
                        "for a new request, or the same body to get the same request",
                    )
                return await self._made_before(claimed.approval_id), False
        claim = _Claim(client.name, idempotency_key) if idempotency_key is not None else None
        try:
            calls = calls_of(deferred)
            deferral = dict(deferred.to_dict())
            request = await self._make(client, ask, approval_id, calls, deferral, claim)
        except BaseException:
            if claim is not None and not claim.stored:  # nothing made: the key may come again
                await self.api_store.release(claim.client, claim.key)
            raise
        return request, True

    async def _requester_by_email(self, email: str) -> str:
        try:
            user_id = await self.chat.user_by_email(email)
        except UpstreamError as error:
            if error.permanent:  # missing_scope: an install from before users:read.email
                raise InvalidInput(
                    "/requester/email",
                    f"Slack refused to look people up by email ({error.code}); fix: send the "
                    "requester's user id, or reinstall the app from manifest.yml",
                ) from error
            raise
        if user_id is None:
            raise InvalidInput("/requester/email", "no active Slack user has this email")
        return user_id

    async def _check_requester(self, client: ApiClient, requester: str) -> None:
        groups = await self.directory.usergroups_of(requester) if client.names_usergroups else ()
        if not client.may_ask_for(requester, groups):
            raise ClientNotAllowed(
                "/requester",
                f"the client {client.name} may not ask on behalf of {requester}; fix: add them "
                "(or a user group of theirs) to the client's requesters in bot.yml",
            )

    async def _check_notify(self, requester: str, notify: Notify) -> None:
        """The notify channel must be one of the requester's: conditions read it as the
        channel they asked in (``channel.id``), so a client must not pick one the policy
        treats more kindly than any the requester could ask in themselves."""
        # a channel Slack cannot list (unknown, or an outage) counts nobody: refused
        if requester not in await self.directory.channel_members(notify.channel_id):
            raise ClientNotAllowed(
                "/notify/channel",
                f"{requester} is not a member of {notify.channel_id} (or Slack could not list "
                "its members); fix: a channel the requester and the bot are in (the policy "
                "reads it as where they asked), or leave notify out to tell them by DM",
            )

    async def _made_before(self, approval_id: str) -> ApprovalRequest:
        """The request an earlier call made under the same key; it may still be storing it."""
        for _ in range(int(5 / POLL_S)):
            try:
                return await self.store.get_approval(approval_id)
            except ApprovalNotFound:
                await asyncio.sleep(POLL_S)
        raise InvalidInput(
            "Idempotency-Key",
            "a request with this key is still being made; fix: send it again in a moment",
            status=409,
        )

    async def _make(
        self,
        client: ApiClient,
        ask: ApprovalAsk,
        approval_id: str,
        calls: Sequence[ToolCall],
        deferral: dict[str, Any],
        claim: _Claim | None,
    ) -> ApprovalRequest:
        # the requester hears in the notify thread, else in a DM (a user id as the channel);
        # conditions read that channel as channel.id, at the screening and on every edit
        notify = ask.notify or Notify(ask.requester)
        thread = ThreadRef("", notify.channel_id, notify.thread_ts)
        screening = await self.gatekeeper.screen(
            calls, ask.requester, thread.channel_id, client.name
        )
        screened = [_with_parameters(call, ask.tools) for call in screening.calls]
        request = ApprovalRequest.create(
            conversation_id=str(deferral.get("conversation_id") or ""),
            deferral=deferral,
            calls=screened,
            thread=thread,
            requester=Requester(ask.requester, excerpt(ask.summary)),
            approvals_channel=screening.card_channel,
        )
        request = replace(
            request,
            id=approval_id,
            origin=client.name,
            extra={"summary": ask.summary, "callback_url": ask.callback_url},
        )
        if screening.decided_by_policy:
            request = request.decided_by_policy(time.time())
        with log_context(approval_id=request.id, user=ask.requester):
            # stored before anything is posted: a crash from here on loses no request
            await self.store.create_approval(request)
            if claim is not None:  # the key now names a request: kept its full time
                await self.api_store.keep(claim.client, claim.key)
                claim.stored = True
            await self.gatekeeper.audit_screening(request)
            if any(call.auto in (Auto.DENY, Auto.GRANT) for call in request.calls):
                await quietly(self.chat.tell_policy(request))
            if screening.decided_by_policy:
                logger.info("API approval %s decided by policy for %s", request.id, client.name)
                await self.concluded(request)
                return await self.store.get_approval(request.id)
            logger.info("API approval %s requested by %s", request.id, client.name)
            return await self.cards.post(request)

    async def read(self, client: ApiClient, approval_id: str) -> ApprovalRequest:
        """The request, if ``client`` made it; ApprovalNotFound otherwise (another client's
        request is answered as if it did not exist: its id tells nothing)."""
        request = await self.store.get_approval(approval_id)
        if not hmac.compare_digest(request.origin.encode(), client.name.encode()):
            raise ApprovalNotFound(approval_id)
        return request

    async def wait(self, client: ApiClient, approval_id: str, wait_s: float) -> ApprovalRequest:
        """The request once decided or expired, or as it stands after ``wait_s`` seconds."""
        deadline = time.monotonic() + min(wait_s, MAX_WAIT_S)
        request = await self.read(client, approval_id)
        while request.status is Status.PENDING and time.monotonic() < deadline:
            await asyncio.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
            request = await self.read(client, approval_id)
        return request

    async def report_outcome(
        self, client: ApiClient, approval_id: str, text: str, status: str
    ) -> ApprovalRequest:
        """What the agent did after the decision: on the card and in the audit."""
        request = await self.read(client, approval_id)
        if request.status is Status.PENDING:
            raise InvalidInput(
                "/status", "the request is not decided yet; fix: report after it", status=409
            )
        line = f"{client.name} reports: {'done' if status == 'done' else 'failed'}: {text}"
        request = await self.store.update_approval(request, outcome=excerpt(line, 1000))
        await self.audit.record(
            "outcome_reported",
            actor=f"client:{client.name}",
            approval_id=request.id,
            requester=request.requester.user_id,
            client=client.name,
            tool=", ".join(request.tool_names),
            detail=f"{status}: {text}",
            permalink=request.card_link,
        )
        await quietly(self.chat.update_card(request))
        return request

    # -- after the decision ------------------------------------------------------------------
    async def concluded(self, request: ApprovalRequest) -> None:
        """The request is decided or expired (its resume job runs this instead of resuming a
        conversation): say so on the card, and POST it to the client's callback URL."""
        outcome = request.outcome or (
            f"The decision went back to {request.origin}, which resumes its agent itself."
        )
        request = await self.store.update_approval(request, resume=Resume.DONE, outcome=outcome)
        await quietly(self.chat.update_card(request))
        if request.extra.get("callback_url"):
            await self.webhooks.start(request.id)


def _with_parameters(call: ToolCall, tools: dict[str, dict[str, Any]]) -> ToolCall:
    """Keep the schema the client gave with each call an approver may edit (no schema: no
    Edit button, as for any call whose parameters are unknown)."""
    schema = tools.get(call.name)
    if call.auto is None and not call.server_side and call.gate and call.gate.allow_edit:
        return replace(call, parameters=schema)
    return call
