"""The approval policy: for each tool call, ask a person, allow it, or deny it.

Pure domain code: it reads the config and the facts of a call, and answers with a
:class:`Verdict`. Who is in a channel or a user group, and which grants exist, are looked
up by the caller (``bot.flow.gatekeeper``).

Order of precedence for one call:

1. runtime overrides set by admins (``/approvals require|allow <tool>``), ``require`` first;
2. the config's rules, in order; the first whose ``tools`` match the name and whose ``when``
   holds decides;
3. a tool that some ``ask``/``deny`` rule names conditionally, and none of whose conditions
   held, runs (``when: "args.price > 500"`` means "only then does a person decide");
4. a tool held (``requires_confirmation``) asks the default approvers; any other runs.

A condition that cannot be evaluated (a missing argument, say) never loosens control: an
``allow`` rule is skipped, an ``ask`` or ``deny`` rule applies.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from bot.core.arguments import canonical_arguments
from bot.core.conditions import Condition, Facts
from bot.core.config import (
    ApproversConfig,
    BotConfig,
    RuleConfig,
    parse_duration,
)

_GLOB = re.compile(r"[*?\[]")


class Effect(StrEnum):
    ASK = "ask"
    ALLOW = "allow"
    DENY = "deny"


DEFAULT_DENY_REASON = "This action is not allowed by the approval policy. Do not retry it."


@dataclass(frozen=True)
class Approvers:
    """Who may decide: the union of a channel's members, user groups' members, and users."""

    channel: str | None = None
    usergroups: tuple[str, ...] = ()
    users: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: ApproversConfig) -> Approvers:
        return cls(config.channel, tuple(config.usergroups), tuple(config.users))

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "usergroups": list(self.usergroups),
            "users": list(self.users),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Approvers:
        return cls(
            data.get("channel"), tuple(data.get("usergroups") or ()), tuple(data.get("users") or ())
        )


@dataclass(frozen=True)
class Gate:
    """What a person's decision on a call needs: who, how many, and what else they may do.

    ``requirements`` is one :class:`Approvers` per rule that governs the call (one, in
    practice); a decider must satisfy each.
    """

    requirements: tuple[Approvers, ...]
    quorum: int = 1
    allow_self_approval: bool = False
    grant_durations_s: tuple[int, ...] = ()
    grant_same_arguments: bool = False
    rule: str = "defaults"
    allow_edit: bool = False  # approvers may change the arguments before approving
    expire_after_s: int = 24 * 3600  # undecided this long, the request expires
    remind_every_s: int | None = None  # a reminder in the card's thread this often
    #: the buttons shown in the requester's thread too (where; not who decides: it is not
    #: part of the fingerprint, and a click there is checked as one on the card)
    requester_thread: bool = False

    @property
    def grantable(self) -> bool:
        """Grants are offered only where one approval decides: a grant must not skip a quorum."""
        return self.quorum == 1 and bool(self.grant_durations_s)

    @property
    def channel(self) -> str | None:
        return next((a.channel for a in self.requirements if a.channel), None)

    @property
    def fingerprint(self) -> str:
        """Names who decides under this gate: its rule, approvers, quorum and self-approval.

        A grant is keyed by it, so it covers only calls that the same rule sends to the same
        people; a rule whose approvers change (or that moves in the list) no longer honours
        grants given under the old one, which fails closed.
        """
        who = {
            "rule": self.rule,
            "requirements": [a.to_dict() for a in self.requirements],
            "quorum": self.quorum,
            "allow_self_approval": self.allow_self_approval,
        }
        canonical = json.dumps(who, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {
            "requirements": [a.to_dict() for a in self.requirements],
            "quorum": self.quorum,
            "allow_self_approval": self.allow_self_approval,
            "grant_durations_s": list(self.grant_durations_s),
            "grant_same_arguments": self.grant_same_arguments,
            "rule": self.rule,
            "allow_edit": self.allow_edit,
            "expire_after_s": self.expire_after_s,
            "remind_every_s": self.remind_every_s,
            "requester_thread": self.requester_thread,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Gate:
        return cls(
            requirements=tuple(Approvers.from_dict(a) for a in data["requirements"]),
            quorum=int(data.get("quorum", 1)),
            allow_self_approval=bool(data.get("allow_self_approval", False)),
            grant_durations_s=tuple(int(s) for s in data.get("grant_durations_s") or ()),
            grant_same_arguments=bool(data.get("grant_same_arguments", False)),
            rule=str(data.get("rule", "defaults")),
            allow_edit=bool(data.get("allow_edit", False)),
            expire_after_s=int(data.get("expire_after_s") or 24 * 3600),
            remind_every_s=int(data["remind_every_s"]) if data.get("remind_every_s") else None,
            requester_thread=bool(data.get("requester_thread", False)),
        )


@dataclass(frozen=True)
class Verdict:
    """The policy's answer for one call."""

    effect: Effect
    rule: str  # which rule decided, as people read it
    reason: str | None = None  # deny: what the model reads
    gate: Gate | None = None  # ask: who decides, and how many
    condition_error: str | None = None  # a condition that could not be evaluated
    notes: tuple[str, ...] = ()  # how the policy got there (for `policy explain`)


@dataclass(frozen=True)
class Override:
    """An admin's runtime change: ``require`` (ask) or ``allow`` for a tool name or glob."""

    tool: str
    effect: Effect
    by: str
    at: float

    def matches(self, tool: str) -> bool:
        return fnmatch.fnmatchcase(tool, self.tool)


@dataclass(frozen=True)
class Rule:
    """A config rule, compiled."""

    index: int
    config: RuleConfig
    condition: Condition | None = field(compare=False)

    @property
    def label(self) -> str:
        what = self.config.name or ", ".join(self.config.tools)
        return f"rule {self.index + 1} ({what})"

    @property
    def effect(self) -> Effect:
        return Effect(self.config.decision)

    def names(self, tool: str) -> bool:
        return any(fnmatch.fnmatchcase(tool, pattern) for pattern in self.config.tools)


class Policy:
    """The compiled policy of a config file."""

    def __init__(self, config: BotConfig, held: Iterable[str] = ()) -> None:
        """``held``: tools that ask the default approvers when no rule applies."""
        self.config = config
        self.rules = tuple(
            Rule(i, rule, Condition(rule.when) if rule.when else None)
            for i, rule in enumerate(config.policy.rules)
        )
        self.held = frozenset(held)
        defaults = config.policy.defaults
        fallback = config.approvals
        approvers = (
            Approvers.from_config(defaults.approvers)
            if defaults.approvers and defaults.approvers.names_someone
            else Approvers(channel=config.default_channel)
        )
        self.defaults = Gate(
            requirements=(approvers,),
            quorum=defaults.quorum,
            allow_self_approval=defaults.allow_self_approval
            if defaults.allow_self_approval is not None
            else bool(fallback and fallback.allow_self_approval),
            grant_durations_s=tuple(parse_duration(d) for d in defaults.grant_durations),
            grant_same_arguments=defaults.grant_same_arguments,
            allow_edit=defaults.allow_edit,
            expire_after_s=parse_duration(defaults.expire_after),
            remind_every_s=parse_duration(defaults.remind_every) if defaults.remind_every else None,
            requester_thread=bool(defaults.approvers and defaults.approvers.requester_thread),
        )

    @classmethod
    def from_config(cls, config: BotConfig) -> Policy:
        held = (
            entry.ref.partition(":")[2]
            for entry in config.tools.functions
            if entry.requires_confirmation
        )
        return cls(config, held)

    @property
    def reads_usergroups(self) -> bool:
        """Whether a condition reads the requester's user groups (worth a lookup)."""
        # CEL allows spaces around the dot; compare without any whitespace
        return any(
            r.config.when and "requester.usergroups" in "".join(r.config.when.split())
            for r in self.rules
        )

    # -- who --------------------------------------------------------------------------------
    @property
    def admin_users(self) -> frozenset[str]:
        return frozenset(self.config.admins.users)

    @property
    def admin_usergroups(self) -> tuple[str, ...]:
        return tuple(self.config.admins.usergroups)

    def is_admin(self, user_id: str, usergroups: Iterable[str]) -> bool:
        return user_id in self.admin_users or not set(usergroups).isdisjoint(self.admin_usergroups)

    def literal_names(self) -> frozenset[str]:
        """Tool names (not globs) the rules and the held tools name."""
        patterns = [p for rule in self.rules for p in rule.config.tools]
        return frozenset(p for p in patterns if not _GLOB.search(p)) | self.held

    # -- what -------------------------------------------------------------------------------
    def holds(self, tool: str, overrides: Sequence[Override] = ()) -> bool:
        """Whether the SDK must hold calls of ``tool`` for the bot to decide (by name only)."""
        effects = {o.effect for o in overrides if o.matches(tool)}
        if effects:
            return Effect.ASK in effects
        for rule in self.rules:
            if rule.names(tool):
                return rule.condition is not None or rule.effect is not Effect.ALLOW
        return tool in self.held

    def evaluate(
        self, facts: Facts, overrides: Sequence[Override] = (), *, held: bool = False
    ) -> Verdict:
        """The verdict for one call. ``held``: the call is held regardless of the policy
        (a server-side tool configured with ``requires_confirmation``)."""
        matching = [o for o in overrides if o.matches(facts.tool)]
        required = next((o for o in matching if o.effect is Effect.ASK), None)
        if required is None and matching:
            return Verdict(Effect.ALLOW, f"override by an admin ({matching[0].tool})")
        verdict = self._by_rules(facts, held=held)
        if required is None:
            return verdict
        # ``require`` only tightens: a rule that asks keeps its approvers, quorum and grant
        # settings, a rule that denies still denies; only what would run is now asked of
        # the default approvers.
        label = f"override by an admin ({required.tool})"
        if verdict.effect is not Effect.ALLOW:
            note = f"{label} requires approval; {verdict.rule} is stricter and applies"
            return replace(verdict, notes=(*verdict.notes, note))
        return replace(
            verdict,
            effect=Effect.ASK,
            rule=label,
            gate=replace(self.defaults, rule=label),
            notes=(*verdict.notes, f"{label}: the default approvers decide"),
        )

    def _by_rules(self, facts: Facts, *, held: bool) -> Verdict:
        """The config's verdict for one call, without the admins' overrides."""
        notes: list[str] = []
        for rule in self.rules:
            if not rule.names(facts.tool):
                continue
            error = None
            if rule.condition is not None:
                result = rule.condition.evaluate(facts)
                if result.error is not None:
                    error = result.error
                    if rule.effect is Effect.ALLOW:
                        notes.append(f"{rule.label}: condition not evaluated ({error}); skipped")
                        continue
                    notes.append(f"{rule.label}: condition not evaluated ({error}); applied")
                elif not result.value:
                    notes.append(f"{rule.label}: condition is false")
                    continue
            return self._verdict(rule, error, notes)
        return self._fallback(facts.tool, notes, held=held)

    def _verdict(self, rule: Rule, error: str | None, notes: list[str]) -> Verdict:
        if rule.effect is Effect.DENY:
            reason = rule.config.reason or DEFAULT_DENY_REASON
            return Verdict(Effect.DENY, rule.label, reason, None, error, tuple(notes))
        if rule.effect is Effect.ALLOW:
            return Verdict(Effect.ALLOW, rule.label, None, None, error, tuple(notes))
        return Verdict(Effect.ASK, rule.label, None, self.gate_of(rule), error, tuple(notes))

    def gate_of(self, rule: Rule) -> Gate:
        """Who decides the calls an ``ask`` rule matches, with the defaults filled in."""
        config = rule.config
        base = self.defaults
        return Gate(
            requirements=(Approvers.from_config(config.approvers),)
            if config.approvers and config.approvers.names_someone
            else base.requirements,
            quorum=config.quorum or base.quorum,
            allow_self_approval=base.allow_self_approval
            if config.allow_self_approval is None
            else config.allow_self_approval,
            grant_durations_s=base.grant_durations_s
            if config.grant_durations is None
            else tuple(parse_duration(d) for d in config.grant_durations),
            grant_same_arguments=base.grant_same_arguments
            if config.grant_same_arguments is None
            else config.grant_same_arguments,
            rule=rule.label,
            allow_edit=base.allow_edit if config.allow_edit is None else config.allow_edit,
            expire_after_s=base.expire_after_s
            if config.expire_after is None
            else parse_duration(config.expire_after),
            remind_every_s=base.remind_every_s
            if config.remind_every is None
            else parse_duration(config.remind_every),
            requester_thread=config.approvers.requester_thread
            if config.approvers
            else base.requester_thread,
        )

    def _fallback(self, tool: str, notes: list[str], *, held: bool) -> Verdict:
        conditional = [
            r
            for r in self.rules
            if r.names(tool) and r.condition is not None and r.effect is not Effect.ALLOW
        ]
        if conditional:
            return Verdict(
                Effect.ALLOW, "no rule's condition held", notes=(*notes, "the tool runs")
            )
        if held or tool in self.held:
            return Verdict(
                Effect.ASK,
                "defaults",
                gate=self.defaults,
                notes=(*notes, "no rule matches; the tool requires confirmation"),
            )
        return Verdict(
            Effect.ALLOW,
            "not governed",
            notes=(*notes, "no rule matches and the tool does not require confirmation"),
        )


@dataclass(frozen=True)
class Grant:
    """ "Don't ask again": ``tool`` runs for ``requester_id`` without a card until it expires,
    for calls that the rule it was given under (``rule``, its gate's ``gate`` fingerprint)
    sends to people who include ``created_by``.

    ``arguments`` is None when the grant covers any arguments, else the canonical arguments
    it is limited to.
    """

    id: str
    tool: str
    requester_id: str
    arguments: str | None
    created_by: str
    created_at: float
    expires_at: float
    approval_id: str
    rule: str = ""  # the rule it covers, as people read it
    gate: str = ""  # Gate.fingerprint of that rule when the grant was given

    @property
    def scope(self) -> str:
        return grant_scope(self.arguments)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Grant:
        return cls(
            id=str(data["id"]),
            tool=str(data["tool"]),
            requester_id=str(data["requester_id"]),
            arguments=None if data.get("arguments") is None else str(data["arguments"]),
            created_by=str(data["created_by"]),
            created_at=float(data["created_at"]),
            expires_at=float(data["expires_at"]),
            approval_id=str(data["approval_id"]),
            rule=str(data.get("rule") or ""),
            gate=str(data.get("gate") or ""),
        )


def grant_scope(arguments: str | None) -> str:
    """``*`` for any arguments, else a digest of the canonical arguments."""
    if arguments is None:
        return "*"
    return hashlib.sha256(canonical_arguments(arguments).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Holds:
    """Which tools the SDK must hold for the bot to decide, for one run: the policy with the
    admins' overrides in force when the run starts."""

    policy: Policy
    overrides: tuple[Override, ...] = ()

    def __call__(self, tool: str) -> bool:
        return self.policy.holds(tool, self.overrides)

    @property
    def named(self) -> frozenset[str]:
        """Every tool name (not glob) the policy or an override names."""
        overridden = (o.tool for o in self.overrides if not _GLOB.search(o.tool))
        return self.policy.literal_names() | frozenset(overridden)
