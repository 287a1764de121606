"""Applies the policy to real calls: overrides and grants from Redis, people from Slack.

The SDK holds calls by tool name only, so every tool a rule might ask about or deny is
registered as needing confirmation (:meth:`Gatekeeper.holds`), and the real decision is
taken here when the deferral arrives (:meth:`Gatekeeper.screen`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from bot.core.approval import ApprovalRequest, Auto, ToolCall
from bot.core.conditions import Facts
from bot.core.policy import Effect, Gate, Grant, Holds, Policy, Verdict
from bot.flow.directory import Directory
from bot.metrics import Metrics
from bot.storage.audit import POLICY, AuditLog
from bot.storage.policy_store import PolicyStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Screening:
    """A deferral's calls after the policy: each decided (``auto``) or routed to its own
    approvers (``gate``)."""

    calls: tuple[ToolCall, ...]
    card_channel: str

    @property
    def decided_by_policy(self) -> bool:
        return all(call.auto is not None for call in self.calls)


class Gatekeeper:
    def __init__(
        self,
        policy: Policy,
        policy_store: PolicyStore,
        directory: Directory,
        audit: AuditLog,
        metrics: Metrics,
    ) -> None:
        self.policy = policy
        self.policy_store = policy_store
        self.directory = directory
        self.audit = audit
        self.metrics = metrics

    async def holds(self) -> Holds:
        """Which tools the SDK must hold for the bot, with the overrides in force now."""
        return Holds(self.policy, tuple(await self.policy_store.overrides()))

    async def facts(
        self, call: ToolCall, requester_id: str, channel_id: str, client: str = ""
    ) -> Facts:
        return Facts(
            tool=call.name,
            arguments=call.arguments,
            requester_id=requester_id,
            requester_is_admin=await self.directory.is_admin(requester_id),
            requester_usergroups=await self.directory.usergroups_of(requester_id)
            if self.policy.reads_usergroups
            else frozenset(),
            channel_id=channel_id,
            client=client,
        )

    async def grant_for(self, call: ToolCall, requester_id: str, gate: Gate) -> Grant | None:
        """A live grant that covers ``call``: given under this very gate (the same rule, the
        same approvers) by someone who may still decide under it. A grant never reaches a
        call that its rule would send to other people, and one whose giver has left the
        approvers (or who granted themselves where the rule no longer allows it) lapses."""
        grant = await self.policy_store.find_grant(requester_id, call.name, call.arguments, gate)
        if grant is None:
            return None
        if grant.created_by == requester_id and not gate.allow_self_approval:
            logger.warning("grant %s: self-granted, and %s forbids it", grant.id, gate.rule)
            return None
        if grant.created_by not in await self.directory.deciders(gate):
            logger.warning(
                "grant %s: %s may no longer decide under %s; asking",
                grant.id,
                grant.created_by,
                gate.rule,
            )
            return None
        return grant

    async def recheck(
        self, call: ToolCall, arguments: str, requester_id: str, channel_id: str, client: str = ""
    ) -> Verdict:
        """The policy's verdict on ``call`` with other ``arguments`` (an edit), with the
        admins' overrides in force; grants do not count (an edit is a person's decision)."""
        edited = replace(call, arguments=arguments)
        facts = await self.facts(edited, requester_id, channel_id, client)
        return self.policy.evaluate(
            facts, await self.policy_store.overrides(), held=_held(call, client)
        )

    async def screen(
        self, calls: Sequence[ToolCall], requester_id: str, channel_id: str, client: str = ""
    ) -> Screening:
        """Decide what the policy can; route each other call to the approvers its rule names.
        ``client``: the HTTP API client asking (conditions read it as ``client.name``).

        The card goes to the first such call's approvals channel (else the default one).
        """
        overrides = await self.policy_store.overrides()
        screened: list[ToolCall] = []
        gates: list[Gate] = []
        for call in calls:
            facts = await self.facts(call, requester_id, channel_id, client)
            verdict = self.policy.evaluate(facts, overrides, held=_held(call, client))
            if verdict.condition_error:
                logger.warning(
                    "%s: condition of %s not evaluated for %s: %s",
                    call.tool_call_id,
                    verdict.rule,
                    call.name,
                    verdict.condition_error,
                )
            if verdict.effect is Effect.ALLOW:
                self.metrics.decided("auto_allowed")
                screened.append(replace(call, auto=Auto.ALLOW, rule=verdict.rule))
                continue
            if verdict.effect is Effect.DENY:
                self.metrics.decided("auto_denied")
                screened.append(
                    replace(call, auto=Auto.DENY, rule=verdict.rule, note=verdict.reason)
                )
                continue
            assert verdict.gate is not None
            if verdict.gate.grantable:
                grant = await self.grant_for(call, requester_id, verdict.gate)
                if grant is not None:
                    self.metrics.decided("auto_allowed")  # a person allowed it ahead of time
                    screened.append(
                        replace(call, auto=Auto.GRANT, rule=verdict.rule, note=grant.id)
                    )
                    continue
            gates.append(verdict.gate)
            note = (
                f"condition not evaluated ({verdict.condition_error}); asking"
                if verdict.condition_error
                else None
            )
            screened.append(replace(call, rule=verdict.rule, note=note, gate=verdict.gate))
        channel = next((g.channel for g in gates if g.channel), None)
        return Screening(tuple(screened), channel or self.policy.config.default_channel)

    async def audit_screening(self, request: ApprovalRequest) -> None:
        """Audit what the screening of a new request decided for each call: asked of people,
        allowed or denied by a rule, or run under a grant (idempotent per request and call)."""
        for index, call in enumerate(request.calls):
            event = _SCREENED[call.auto]
            await self.audit.record(
                event,
                actor=request.requester.user_id if call.auto is None else POLICY,
                entry_id=f"{request.id}:{index}:{event}",
                approval_id=request.id,
                requester=request.requester.user_id,
                client=request.origin or None,
                tool=call.name,
                arguments=call.arguments,
                rule=call.rule,
                detail=call.note,
                permalink=request.requester.permalink,
            )


def _held(call: ToolCall, client: str) -> bool:
    """Whether the call was held by someone other than this bot's config, so that a call no
    rule governs asks the default approvers rather than runs: Mistral's server held it (a
    connector's or built-in's), or an HTTP API client sent it for approval (its agent holds
    the tool; this bot's config may not know it). Failing closed: a call sent to be decided
    is never let through because nothing here names it."""
    return call.server_side or bool(client)


#: the audit event of each screening outcome (None: a person decides)
_SCREENED = {
    None: "requested",
    Auto.ALLOW: "auto_allowed",
    Auto.DENY: "auto_denied",
    Auto.GRANT: "granted_run",
}
