"""``approval-bot policy``: read the approval policy offline.

``policy check`` validates the config file like ``check`` and lists the policy it defines;
``policy explain`` says how the policy decides one call: which rule, what decision, and who
may approve. Both print plain text (``explain --json``: one JSON object).

Offline means two things the running bot does are not done here: user-group membership is
not looked up in Slack (``--usergroups`` says it), and runtime overrides that admins set in
Slack (``/approvals require|allow``) are not applied.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bot.core.conditions import Facts
from bot.core.config import USER_ID, USERGROUP_ID, BotConfig
from bot.core.policy import DEFAULT_DENY_REASON, Approvers, Effect, Gate, Policy, Rule, Verdict
from bot.mistral.tools import Tool
from bot.ops.settings import Mode, Settings

#: ``bot.ops.cli.load``: settings, config and tools for a mode and an optional config file.
Loader = Callable[[Mode, Path | None], tuple[Settings, BotConfig, list[Tool]]]

OFFLINE = (
    "Offline: user-group membership is not looked up in Slack (it is what --usergroups "
    "says), and runtime overrides set in Slack (/approvals require|allow) are not applied."
)

_CHANNEL_ID = r"^[CGD][A-Z0-9]{2,}$"
_UNITS = ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second"))


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``policy`` command group (``check``, ``explain``) to ``commands``."""
    policy = commands.add_parser(
        "policy", help="list the approval policy, or explain how it decides one call"
    )
    actions = policy.add_subparsers(dest="policy_command", required=True)
    check = actions.add_parser(
        "check", help="validate the config file and its tools, then list the policy"
    )
    check.add_argument("file", nargs="?", type=Path, help="config file (default: $BOT_CONFIG)")
    explain = actions.add_parser(
        "explain",
        help="which rule decides a call, the decision, and who may approve it",
        description="Explain how the policy decides one call of a tool. " + OFFLINE,
    )
    explain.add_argument("--tool", required=True, metavar="NAME", help="the tool's name")
    explain.add_argument(
        "--args",
        dest="arguments",
        type=_json_object,
        default="{}",
        metavar="JSON",
        help="the call's arguments, a JSON object (default: {})",
    )
    explain.add_argument(
        "--user",
        required=True,
        type=_slack_id(USER_ID, "user"),
        metavar="UID",
        help="the requester's Slack user id (U…)",
    )
    explain.add_argument(
        "--channel",
        type=_slack_id(_CHANNEL_ID, "channel"),
        metavar="CID",
        help="the conversation's channel id (C…, G…, or D… for a direct message)",
    )
    explain.add_argument(
        "--usergroups",
        default=(),
        type=_usergroups,
        metavar="S1,S2",
        help="the requester's user group ids; not looked up offline (default: none)",
    )
    explain.add_argument(
        "--client",
        default="",
        metavar="NAME",
        help="the HTTP API client asking (client.name in conditions; default: none, Slack)",
    )
    explain.add_argument("--file", type=Path, help="config file (default: $BOT_CONFIG)")
    explain.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace, load: Loader) -> int:
    """Run ``policy check`` or ``policy explain``; a ConfigError propagates to the caller."""
    if args.policy_command == "check":
        return _check(args.file, load)
    return _explain(args, load)


# -- argument types -------------------------------------------------------------------------
def _json_object(text: str) -> str:
    """``--args``: the text, if it is a JSON object."""
    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"not valid JSON ({error}); fix: pass the call's arguments as a JSON object, "
            """e.g. --args '{"price": 900}'"""
        ) from error
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a JSON object; fix: pass the call's arguments as one, "
            """e.g. --args '{"price": 900}'"""
        )
    return text


def _slack_id(pattern: str, kind: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if not re.match(pattern, text):
            raise argparse.ArgumentTypeError(f"{text!r} is not a Slack {kind} id")
        return text

    return parse


def _usergroups(text: str) -> tuple[str, ...]:
    ids = tuple(part.strip() for part in text.split(",") if part.strip())
    for usergroup in ids:
        _slack_id(USERGROUP_ID, "user group")(usergroup)
    return ids


# -- policy check ---------------------------------------------------------------------------
def _check(file: Path | None, load: Loader) -> int:
    settings, config, tools = load("check", file)
    policy = Policy(config, held=_held_tools(tools))
    print(f"{file or settings.bot_config}: OK")
    print("\n".join(describe_policy(policy, tools)))
    return 0


def describe_policy(policy: Policy, tools: Sequence[Tool]) -> list[str]:
    """The policy as plain-text lines: tools, rules in order, defaults, admins."""
    held = _held_tools(tools)
    lines = [
        f"Tools: {_names([tool.name for tool in tools])}",
        f"Requires confirmation: {_names(held)}",
        "",
        "Rules, in order (the first that matches a call decides):",
    ]
    for rule in policy.rules:
        lines += _rule_lines(policy, rule)
    if not policy.rules:
        lines.append("  none")
    lines += ["", "Defaults (a tool marked requires_confirmation that no rule matches):"]
    lines += _indent(_gate_lines(policy.defaults, policy.config.default_channel), 2)
    lines += ["", f"Admins: {_admins(policy)}"]
    return lines


def _rule_lines(policy: Policy, rule: Rule) -> list[str]:
    config = rule.config
    details = [f"name: {config.name}"] if config.name else []
    if config.when:
        details.append(f"when: {config.when}")
    details.append(f"decision: {config.decision}")
    if rule.effect is Effect.DENY:
        details.append(f"reason: {_deny_reason(rule)}")
    elif rule.effect is Effect.ASK:
        details += _gate_lines(policy.gate_of(rule), policy.config.default_channel)
    return [f"  {rule.index + 1}. tools: {', '.join(config.tools)}", *_indent(details, 5)]


def _deny_reason(rule: Rule) -> str:
    return rule.config.reason or DEFAULT_DENY_REASON  # as Policy.evaluate gives it the model


def _admins(policy: Policy) -> str:
    users = sorted(policy.admin_users)
    groups = list(policy.admin_usergroups)
    return f"users {_names(users)}; user groups {_names(groups)}"


# -- policy explain -------------------------------------------------------------------------
def _explain(args: argparse.Namespace, load: Loader) -> int:
    _, config, tools = load("check", args.file)
    policy = Policy(config, held=_held_tools(tools))
    facts = Facts(
        tool=args.tool,
        arguments=args.arguments,
        requester_id=args.user,
        requester_is_admin=policy.is_admin(args.user, args.usergroups),
        requester_usergroups=frozenset(args.usergroups),
        channel_id=args.channel or "",
        client=args.client,
    )
    # an API client's call was held by its agent: one no rule matches asks (bot.flow.gatekeeper)
    verdict = policy.evaluate(facts, held=bool(args.client))
    configured = any(tool.name == args.tool for tool in tools)
    if args.json:
        print(
            json.dumps({**explanation(policy, facts, verdict), "configured": configured}, indent=2)
        )
    else:
        lines = explain_lines(policy, facts, verdict)
        if not configured:
            lines[0] += " (no function tool of that name in the config)"
        print("\n".join(lines))
    return 0


def explanation(policy: Policy, facts: Facts, verdict: Verdict) -> dict[str, Any]:
    """``policy explain --json``: the call, the verdict, and who may approve."""
    gate = verdict.gate
    return {
        "tool": facts.tool,
        "arguments": json.loads(facts.arguments),
        "requester": {
            "id": facts.requester_id,
            "is_admin": facts.requester_is_admin,
            "usergroups": sorted(facts.requester_usergroups),
        },
        "channel": facts.channel_id or None,
        "held_by_sdk": policy.holds(facts.tool),
        "rule": verdict.rule,
        "decision": verdict.effect.value,
        "reason": verdict.reason,
        "approvers": [a.to_dict() for a in gate.requirements] if gate else None,
        "card_channel": (gate.channel or policy.config.default_channel) if gate else None,
        "quorum": gate.quorum if gate else None,
        "allow_self_approval": gate.allow_self_approval if gate else None,
        "grant_durations_s": list(gate.grant_durations_s) if gate and gate.grantable else [],
        "grant_same_arguments": gate.grant_same_arguments if gate and gate.grantable else None,
        "allow_edit": gate.allow_edit if gate else None,
        "expire_after_s": gate.expire_after_s if gate else None,
        "remind_every_s": gate.remind_every_s if gate else None,
        "requester_thread": gate.requester_thread if gate else None,
        "notes": list(verdict.notes),
        "condition_error": verdict.condition_error,
        "offline": OFFLINE,
    }


def explain_lines(policy: Policy, facts: Facts, verdict: Verdict) -> list[str]:
    """``policy explain``: the call, the verdict, and who may approve, as plain-text lines."""
    groups = _names(sorted(facts.requester_usergroups))
    lines = [
        f"Call: {facts.tool} {facts.arguments}",
        f"Requester: {facts.requester_id} (admin: {_yes(facts.requester_is_admin)}; "
        f"user groups from --usergroups: {groups})",
        f"Channel: {facts.channel_id or 'none given'}",
        f"Held by the SDK: {_held(policy.holds(facts.tool))}",
        "",
        f"Rule: {verdict.rule}",
        f"Decision: {verdict.effect.value}",
    ]
    if verdict.reason is not None:
        lines.append(f"Reason the model receives: {verdict.reason}")
    if verdict.gate is not None:
        lines += _capitalized(_gate_lines(verdict.gate, policy.config.default_channel))
    if verdict.condition_error is not None:
        lines.append(f"Condition error: {verdict.condition_error}")
    if verdict.notes:
        lines += ["Notes:", *_indent(list(verdict.notes), 2, "- ")]
    return [*lines, "", OFFLINE]


# -- shared ---------------------------------------------------------------------------------
def _gate_lines(gate: Gate, default_channel: str) -> list[str]:
    """Who may approve, where the card goes, how many approvals, and which grants."""
    return [
        f"approvers: {' and '.join(_approvers(a) for a in gate.requirements)}",
        f"card posted in: {gate.channel or default_channel}",
        f"quorum: {gate.quorum}",
        f"self-approval: {'allowed' if gate.allow_self_approval else 'not allowed'}",
        f"grants: {_grants(gate)}",
        f"editing arguments: {'allowed' if gate.allow_edit else 'not allowed'}",
        f"expires after: {gate.expire_after_s // 60} min undecided"
        + (f", reminders every {gate.remind_every_s // 60} min" if gate.remind_every_s else ""),
    ] + (["buttons in the requester's thread too"] if gate.requester_thread else [])


def _approvers(approvers: Approvers) -> str:
    parts = [f"channel {approvers.channel}"] if approvers.channel else []
    if approvers.usergroups:
        parts.append(f"user groups {', '.join(approvers.usergroups)}")
    if approvers.users:
        parts.append(f"users {', '.join(approvers.users)}")
    return "; ".join(parts)


def _grants(gate: Gate) -> str:
    if not gate.grant_durations_s:
        return "none"
    if not gate.grantable:
        return f"none (a quorum of {gate.quorum} offers no grants)"
    durations = ", ".join(duration_text(s) for s in gate.grant_durations_s)
    scope = "same arguments only" if gate.grant_same_arguments else "any arguments"
    return f"{durations} ({scope})"


def duration_text(seconds: int) -> str:
    """``3600`` → ``1 hour``, ``5400`` → ``90 minutes``: the largest unit that divides it."""
    for size, unit in _UNITS:
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    raise AssertionError("unreachable: every whole number of seconds has a unit")


def _held_tools(tools: Sequence[Tool]) -> list[str]:
    return [tool.name for tool in tools if tool.requires_confirmation]


def _names(names: Sequence[str]) -> str:
    return ", ".join(names) or "none"


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _held(deferred: bool) -> str:
    if deferred:
        return "yes (the bot decides each call)"
    return "no (the SDK runs calls without asking the bot)"


def _indent(lines: list[str], width: int, bullet: str = "") -> list[str]:
    return [" " * width + bullet + line for line in lines]


def _capitalized(lines: list[str]) -> list[str]:
    return [line[:1].upper() + line[1:] for line in lines]
