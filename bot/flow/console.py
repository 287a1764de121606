"""What admins and approvers look at and change: pending requests, the policy, grants,
overrides, and each person's own queue (the App Home). No Slack here: the listeners render.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bot.core.approval import ApprovalRequest
from bot.core.policy import Effect, Gate, Grant, Override, Policy
from bot.errors import NotAllowed
from bot.flow.decisions import Decisions
from bot.flow.gatekeeper import Gatekeeper
from bot.storage.store import Store

ADMINS_ONLY = "Only admins can change the policy or revoke grants."

#: How many pending requests one screen lists, and how many one page of a person's queue
#: looks through (read from Redis in batches) for the ones they can decide.
PAGE_SIZE = 20
SCAN_LIMIT = 500
SCAN_BATCH = 100


@dataclass(frozen=True)
class Page:
    requests: list[ApprovalRequest]
    total: int
    #: for a person's queue: the calls of each request (by id) they may decide
    calls: dict[str, list[int]] = field(default_factory=dict)
    #: for a person's queue: where in the pending list this page and the next one start
    #: (None: nothing after this page)
    start: int = 0
    next_start: int | None = None
    positions: dict[str, int] = field(default_factory=dict)  # request id -> index in the list

    def calls_of(self, request: ApprovalRequest) -> list[int]:
        return self.calls.get(request.id, request.undecided)


class Console:
    def __init__(self, store: Store, gatekeeper: Gatekeeper, decisions: Decisions) -> None:
        self.store = store
        #: who may decide what: the same checks as a click on a card
        self.decisions = decisions
        self.gatekeeper = gatekeeper
        self.policy_store = gatekeeper.policy_store
        self.directory = gatekeeper.directory
        self.audit = gatekeeper.audit

    @property
    def policy(self) -> Policy:
        return self.gatekeeper.policy

    async def require_admin(self, user_id: str) -> None:
        if not await self.directory.is_admin(user_id):
            raise NotAllowed("", user_id, ADMINS_ONLY)

    # -- reading -----------------------------------------------------------------------------
    async def pending(self, limit: int = PAGE_SIZE) -> Page:
        """The oldest undecided requests first."""
        ids = await self.store.pending_ids(0, limit - 1)
        return Page(await self.store.get_approvals(ids), await self.store.pending_count())

    async def actionable(self, user_id: str, start: int = 0, limit: int = PAGE_SIZE) -> Page:
        """Undecided requests ``user_id`` can decide now (not their own, not voted on),
        oldest first, from position ``start`` of the pending list on: the first ``limit``
        found among at most ``SCAN_LIMIT`` requests. ``total``: every pending request."""
        pending = await self.store.pending_count()
        end = min(start + SCAN_LIMIT, pending)
        deciders: dict[Gate, set[str]] = {}  # one lookup per gate, not per request
        found: list[ApprovalRequest] = []
        calls: dict[str, list[int]] = {}
        positions: dict[str, int] = {}
        position = start
        while position < end and len(found) < limit:
            ids = await self.store.pending_ids(position, min(position + SCAN_BATCH, end) - 1)
            if not ids:
                break
            requests = {request.id: request for request in await self.store.get_approvals(ids)}
            for approval_id in ids:
                position += 1
                request = requests.get(approval_id)
                mine = await self.decisions.decidable(request, user_id, deciders) if request else []
                if request is not None and mine:
                    found.append(request)
                    calls[request.id] = mine
                    positions[request.id] = position - 1
                    if len(found) == limit:
                        break
        more = position if position < pending else None
        return Page(found, pending, calls, start=start, next_start=more, positions=positions)

    async def recent(self, user_id: str, limit: int = 10) -> list[ApprovalRequest]:
        return await self.store.recent_requests(user_id, limit)

    async def overrides(self) -> list[Override]:
        return await self.policy_store.overrides()

    async def grants(self, user_id: str) -> list[Grant]:
        """Every live grant for an admin; for anyone else, the grants that concern them."""
        grants = await self.policy_store.grants()
        if await self.directory.is_admin(user_id):
            return grants
        return [g for g in grants if user_id in (g.requester_id, g.created_by)]

    # -- changing (admins only, audited) -----------------------------------------------------
    async def revoke(self, user_id: str, grant_id: str) -> Grant | None:
        await self.require_admin(user_id)
        grant = await self.policy_store.revoke_grant(grant_id)
        if grant is not None:
            await self.audit.record_grant("grant_revoked", actor=user_id, grant=grant)
        return grant

    async def set_override(self, user_id: str, tool: str, effect: Effect) -> Override:
        await self.require_admin(user_id)
        override = Override(tool, effect, user_id, time.time())
        await self.policy_store.set_override(override)
        event = "override_require" if effect is Effect.ASK else "override_allow"
        await self.audit.record(event, actor=user_id, tool=tool)
        return override

    async def reset_override(self, user_id: str, tool: str) -> bool:
        await self.require_admin(user_id)
        removed = await self.policy_store.reset_override(tool)
        if removed:
            await self.audit.record("override_reset", actor=user_id, tool=tool)
        return removed
