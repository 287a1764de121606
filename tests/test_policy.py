"""The approval policy: overrides, then rules in order, then the fallback for held tools."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from bot.core.conditions import Facts
from bot.core.config import BotConfig
from bot.core.policy import (
    DEFAULT_DENY_REASON,
    Approvers,
    Effect,
    Gate,
    Grant,
    Override,
    Policy,
    grant_scope,
)

APPROVALS = "C0APPROVALS"


def config(
    rules: list[dict[str, Any]] | None = None,
    *,
    defaults: dict[str, Any] | None = None,
    approvals: dict[str, Any] | None = None,
    admins: dict[str, Any] | None = None,
) -> BotConfig:
    document: dict[str, Any] = {
        "model": "m",
        "approvals": approvals if approvals is not None else {"channel": APPROVALS},
        "policy": {"rules": rules or [], "defaults": defaults or {}},
    }
    if admins is not None:
        document["admins"] = admins
    return BotConfig.model_validate(document)


def policy(
    rules: list[dict[str, Any]] | None = None, *, held: tuple[str, ...] = (), **kwargs: Any
) -> Policy:
    return Policy(config(rules, **kwargs), held=held)


def call(tool: str, arguments: dict[str, Any] | str | None = None, **facts: Any) -> Facts:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
    return Facts(
        tool=tool, arguments=text, requester_id=facts.pop("requester_id", "U0REQ"), **facts
    )


def override(tool: str, effect: Effect) -> Override:
    return Override(tool=tool, effect=effect, by="U0ADMIN", at=1_700_000_000.0)


DEFAULT_GATE = Gate(
    requirements=(Approvers(channel=APPROVALS),),
    quorum=1,
    allow_self_approval=False,
    grant_durations_s=(3600,),
    grant_same_arguments=False,
    rule="defaults",
)


# -- rules --------------------------------------------------------------------------------------


def test_the_first_matching_rule_decides() -> None:
    rules = [
        {"tools": ["book_flight"], "decision": "deny"},
        {"tools": ["book_flight"], "decision": "allow"},
    ]
    verdict = policy(rules).evaluate(call("book_flight"))
    assert verdict.effect is Effect.DENY
    assert verdict.rule == "rule 1 (book_flight)"
    flipped = policy(list(reversed(rules))).evaluate(call("book_flight"))
    assert flipped.effect is Effect.ALLOW
    assert flipped.rule == "rule 1 (book_flight)"


def test_a_rule_for_another_tool_is_passed_over() -> None:
    rules = [
        {"tools": ["send_email"], "decision": "deny"},
        {"name": "travel", "tools": ["book_flight", "book_hotel"], "decision": "allow"},
    ]
    verdict = policy(rules).evaluate(call("book_hotel"))
    assert verdict.effect is Effect.ALLOW
    assert verdict.rule == "rule 2 (travel)"


def test_glob_patterns_match_tool_names() -> None:
    rules = [
        {"tools": ["get_*"], "decision": "allow"},
        {"tools": ["*"], "decision": "deny"},
    ]
    p = policy(rules)
    assert p.evaluate(call("get_weather")).effect is Effect.ALLOW
    assert p.evaluate(call("get_")).effect is Effect.ALLOW
    assert p.evaluate(call("forget_it")).effect is Effect.DENY
    denied = p.evaluate(call("book_flight"))
    assert denied.effect is Effect.DENY
    assert denied.rule == "rule 2 (*)"


def test_conditional_ask_rule_that_holds_asks_with_the_rules_gate() -> None:
    rules = [
        {
            "name": "expensive flights",
            "tools": ["book_flight"],
            "when": "args.price > 500",
            "approvers": {"usergroups": ["S0FIN"], "users": ["U0BOSS"]},
            "quorum": 2,
            "grant_durations": ["30m", "8h"],
        }
    ]
    verdict = policy(rules).evaluate(call("book_flight", {"price": 900}))
    assert verdict.effect is Effect.ASK
    assert verdict.rule == "rule 1 (expensive flights)"
    assert verdict.condition_error is None
    assert verdict.reason is None
    assert verdict.gate == Gate(
        requirements=(Approvers(channel=None, usergroups=("S0FIN",), users=("U0BOSS",)),),
        quorum=2,
        allow_self_approval=False,  # inherited
        grant_durations_s=(1800, 8 * 3600),
        grant_same_arguments=False,  # inherited
        rule="rule 1 (expensive flights)",
    )


def test_an_ask_rule_inherits_what_it_does_not_set_from_the_defaults() -> None:
    defaults = {
        "approvers": {"channel": "C0DEFAULT", "users": ["U0LEAD"]},
        "quorum": 2,
        "allow_self_approval": True,
        "grant_durations": ["15m", "1d"],
        "grant_same_arguments": True,
    }
    p = policy([{"tools": ["book_flight"]}], defaults=defaults)
    gate = p.evaluate(call("book_flight")).gate
    assert gate == Gate(
        requirements=(Approvers(channel="C0DEFAULT", users=("U0LEAD",)),),
        quorum=2,
        allow_self_approval=True,
        grant_durations_s=(900, 86400),
        grant_same_arguments=True,
        rule="rule 1 (book_flight)",
    )
    assert gate.channel == "C0DEFAULT"


def test_an_ask_rule_overrides_the_defaults_it_sets() -> None:
    defaults = {"allow_self_approval": True, "grant_same_arguments": True, "quorum": 2}
    rule = {
        "tools": ["book_flight"],
        "allow_self_approval": False,
        "grant_same_arguments": False,
        "grant_durations": [],
        "quorum": 1,
    }
    gate = policy([rule], defaults=defaults).evaluate(call("book_flight")).gate
    assert gate is not None
    assert gate.allow_self_approval is False
    assert gate.grant_same_arguments is False
    assert gate.grant_durations_s == ()
    assert gate.quorum == 1
    assert gate.requirements == (Approvers(channel=APPROVALS),)


def test_conditional_ask_rule_that_does_not_hold_lets_the_call_run() -> None:
    rules = [{"tools": ["book_flight"], "when": "args.price > 500"}]
    verdict = policy(rules, held=("book_flight",)).evaluate(call("book_flight", {"price": 80}))
    assert verdict.effect is Effect.ALLOW
    assert verdict.rule == "no rule's condition held"
    assert verdict.gate is None
    assert verdict.notes == ("rule 1 (book_flight): condition is false", "the tool runs")


def test_a_later_rule_applies_when_an_earlier_condition_is_false() -> None:
    rules = [
        {"tools": ["book_flight"], "when": "args.price > 500", "decision": "deny"},
        {"tools": ["book_flight"]},
    ]
    verdict = policy(rules).evaluate(call("book_flight", {"price": 80}))
    assert verdict.effect is Effect.ASK
    assert verdict.rule == "rule 2 (book_flight)"
    assert verdict.notes == ("rule 1 (book_flight): condition is false",)


@pytest.mark.parametrize("decision", ["ask", "deny"])
def test_a_condition_that_errors_applies_an_ask_or_deny_rule(decision: str) -> None:
    rules = [{"tools": ["book_flight"], "when": "args.price > 500", "decision": decision}]
    verdict = policy(rules).evaluate(call("book_flight", {"seats": 2}))
    assert verdict.effect is Effect(decision)
    assert verdict.rule == "rule 1 (book_flight)"
    assert verdict.condition_error is not None
    assert "price" in verdict.condition_error
    assert len(verdict.notes) == 1
    assert verdict.notes[0].endswith("; applied")


def test_a_condition_that_errors_skips_an_allow_rule() -> None:
    rules = [
        {"tools": ["book_flight"], "when": "args.price < 100", "decision": "allow"},
        {"tools": ["book_flight"], "decision": "deny", "reason": "Not without a price."},
    ]
    verdict = policy(rules).evaluate(call("book_flight", {"seats": 2}))
    assert verdict.effect is Effect.DENY
    assert verdict.rule == "rule 2 (book_flight)"
    assert verdict.reason == "Not without a price."
    assert verdict.condition_error is None  # the deny rule itself is unconditional
    assert len(verdict.notes) == 1
    assert verdict.notes[0].startswith("rule 1 (book_flight): condition not evaluated (")
    assert verdict.notes[0].endswith("; skipped")


def test_a_skipped_allow_rule_falls_back_to_the_held_default() -> None:
    rules = [{"tools": ["book_flight"], "when": "args.price < 100", "decision": "allow"}]
    verdict = policy(rules, held=("book_flight",)).evaluate(call("book_flight", "not json"))
    assert verdict.effect is Effect.ASK
    assert verdict.rule == "defaults"
    assert verdict.gate == DEFAULT_GATE


def test_conditional_allow_rule_that_holds_allows() -> None:
    rules = [{"tools": ["book_flight"], "when": "requester.is_admin", "decision": "allow"}]
    p = policy(rules, held=("book_flight",))
    allowed = p.evaluate(call("book_flight", requester_is_admin=True))
    assert allowed.effect is Effect.ALLOW
    assert allowed.rule == "rule 1 (book_flight)"
    asked = p.evaluate(call("book_flight", requester_is_admin=False))
    assert asked.effect is Effect.ASK
    assert asked.rule == "defaults"


def test_deny_with_a_reason() -> None:
    rules = [{"tools": ["delete_*"], "decision": "deny", "reason": "Ask IT to delete things."}]
    verdict = policy(rules).evaluate(call("delete_user"))
    assert verdict.effect is Effect.DENY
    assert verdict.reason == "Ask IT to delete things."
    assert verdict.gate is None


def test_deny_without_a_reason_uses_the_default_reason() -> None:
    verdict = policy([{"tools": ["delete_*"], "decision": "deny"}]).evaluate(call("delete_user"))
    assert verdict.effect is Effect.DENY
    assert verdict.reason == DEFAULT_DENY_REASON
    assert "Do not retry" in DEFAULT_DENY_REASON


def test_a_held_tool_no_rule_names_asks_the_defaults() -> None:
    verdict = policy(held=("book_flight",)).evaluate(call("book_flight"))
    assert verdict.effect is Effect.ASK
    assert verdict.rule == "defaults"
    assert verdict.gate == DEFAULT_GATE
    assert verdict.notes == ("no rule matches; the tool requires confirmation",)


def test_an_unheld_tool_no_rule_names_is_not_governed() -> None:
    verdict = policy([{"tools": ["book_*"]}], held=("book_flight",)).evaluate(call("get_weather"))
    assert verdict.effect is Effect.ALLOW
    assert verdict.rule == "not governed"
    assert verdict.gate is None
    assert verdict.reason is None


def test_a_call_held_server_side_asks_the_defaults() -> None:
    verdict = policy().evaluate(call("web_search"), held=True)
    assert verdict.effect is Effect.ASK
    assert verdict.rule == "defaults"
    assert verdict.gate == DEFAULT_GATE


def test_a_rule_still_decides_a_call_held_server_side() -> None:
    p = policy([{"tools": ["web_search"], "decision": "allow"}])
    assert p.evaluate(call("web_search"), held=True).effect is Effect.ALLOW


# -- overrides ----------------------------------------------------------------------------------


def test_require_override_beats_a_rule_that_allows() -> None:
    p = policy([{"tools": ["get_weather"], "decision": "allow"}])
    verdict = p.evaluate(call("get_weather"), [override("get_weather", Effect.ASK)])
    assert verdict.effect is Effect.ASK
    assert verdict.rule == "override by an admin (get_weather)"
    assert verdict.gate is not None
    assert verdict.gate.requirements == DEFAULT_GATE.requirements
    assert verdict.gate.rule == "override by an admin (get_weather)"


def test_allow_override_beats_a_rule_that_asks() -> None:
    p = policy([{"tools": ["book_flight"], "quorum": 2, "approvers": {"channel": "C0FIN"}}])
    verdict = p.evaluate(call("book_flight"), [override("book_flight", Effect.ALLOW)])
    assert verdict.effect is Effect.ALLOW
    assert verdict.rule == "override by an admin (book_flight)"
    assert verdict.gate is None


def test_allow_override_beats_a_rule_that_denies() -> None:
    p = policy([{"tools": ["book_flight"], "decision": "deny"}])
    verdict = p.evaluate(call("book_flight"), [override("book_flight", Effect.ALLOW)])
    assert verdict.effect is Effect.ALLOW


@pytest.mark.parametrize("order", ["allow first", "require first"])
def test_require_wins_over_allow_when_both_match(order: str) -> None:
    overrides = [override("book_*", Effect.ALLOW), override("book_flight", Effect.ASK)]
    if order == "require first":
        overrides.reverse()
    verdict = policy().evaluate(call("book_flight"), overrides)
    assert verdict.effect is Effect.ASK
    assert verdict.rule == "override by an admin (book_flight)"


def test_overrides_match_globs_and_ignore_other_tools() -> None:
    p = policy(held=("book_flight",))
    overrides = [override("get_*", Effect.ASK), override("book_*", Effect.ALLOW)]
    assert p.evaluate(call("get_weather"), overrides).effect is Effect.ASK
    assert p.evaluate(call("book_hotel"), overrides).effect is Effect.ALLOW
    assert p.evaluate(call("send_email"), overrides).rule == "not governed"
    assert override("get_*", Effect.ASK).matches("get_weather")
    assert not override("get_*", Effect.ASK).matches("forget_weather")


# -- defers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"tools": ["t"], "decision": "allow"}, False),
        ({"tools": ["t"], "decision": "allow", "when": "requester.is_admin"}, True),
        ({"tools": ["t"], "decision": "ask", "when": "args.price > 500"}, True),
        ({"tools": ["t"], "decision": "deny", "when": "args.price > 500"}, True),
        ({"tools": ["t"], "decision": "deny"}, True),
        ({"tools": ["t"], "decision": "ask"}, True),
        ({"tools": ["t*"], "decision": "ask"}, True),
    ],
    ids=[
        "allow",
        "conditional allow",
        "conditional ask",
        "conditional deny",
        "deny",
        "ask",
        "ask by glob",
    ],
)
def test_defers_by_the_first_rule_naming_the_tool(rule: dict[str, Any], expected: bool) -> None:
    assert policy([rule], held=("t",)).holds("t") is expected
    assert policy([rule]).holds("t") is expected


def test_defers_for_tools_no_rule_names() -> None:
    p = policy([{"tools": ["other"], "decision": "deny"}], held=("marked",))
    assert p.holds("marked") is True
    assert p.holds("unmarked") is False


def test_defers_follows_overrides() -> None:
    p = policy([{"tools": ["t"], "decision": "deny"}], held=("m",))
    assert p.holds("t", [override("t", Effect.ALLOW)]) is False
    assert p.holds("m", [override("*", Effect.ALLOW)]) is False
    assert p.holds("free", [override("fr*", Effect.ASK)]) is True
    both = [override("t", Effect.ALLOW), override("*", Effect.ASK)]
    assert p.holds("t", both) is True
    assert p.holds("free", [override("other", Effect.ASK)]) is False


# -- who ----------------------------------------------------------------------------------------


def test_is_admin_by_user_and_by_usergroup() -> None:
    p = policy(admins={"users": ["U0ADMIN"], "usergroups": ["S0OPS"]})
    assert p.is_admin("U0ADMIN", [])
    assert p.is_admin("U0OTHER", ["S0ENG", "S0OPS"])
    assert not p.is_admin("U0OTHER", ["S0ENG"])
    assert not p.is_admin("U0OTHER", [])
    assert p.admin_users == frozenset({"U0ADMIN"})
    assert p.admin_usergroups == ("S0OPS",)


def test_nobody_is_admin_by_default() -> None:
    p = policy()
    assert not p.is_admin("U0ADMIN", ["S0OPS"])
    assert p.admin_users == frozenset()


@pytest.mark.parametrize("self_approval", [True, False])
def test_defaults_fall_back_to_the_approvals_section(self_approval: bool) -> None:
    p = policy(approvals={"channel": "C0CARDS", "allow_self_approval": self_approval})
    assert p.defaults.requirements == (Approvers(channel="C0CARDS"),)
    assert p.defaults.channel == "C0CARDS"
    assert p.defaults.allow_self_approval is self_approval
    assert p.defaults.quorum == 1
    assert p.defaults.grant_durations_s == (3600,)
    assert p.defaults.rule == "defaults"


def test_policy_defaults_take_precedence_over_the_approvals_section() -> None:
    p = policy(
        approvals={"channel": "C0CARDS", "allow_self_approval": True},
        defaults={"approvers": {"usergroups": ["S0FIN"]}, "allow_self_approval": False},
    )
    assert p.defaults.requirements == (Approvers(usergroups=("S0FIN",)),)
    assert p.defaults.allow_self_approval is False


def test_approvals_self_approval_applies_when_the_defaults_do_not_say() -> None:
    p = policy(
        approvals={"channel": "C0CARDS", "allow_self_approval": True},
        defaults={"approvers": {"channel": "C0FIN"}},
    )
    assert p.defaults.requirements == (Approvers(channel="C0FIN"),)
    assert p.defaults.allow_self_approval is True


def test_defaults_without_an_approvals_section() -> None:
    document = {"model": "m", "policy": {"defaults": {"approvers": {"channel": "C0FIN"}}}}
    p = Policy(BotConfig.model_validate(document), held=["t"])
    assert p.defaults.requirements == (Approvers(channel="C0FIN"),)
    assert p.defaults.allow_self_approval is False
    assert p.evaluate(call("t")).gate == p.defaults


def test_from_config_holds_tools_that_require_confirmation() -> None:
    document = {
        "model": "m",
        "approvals": {"channel": APPROVALS},
        "tools": {
            "functions": [
                {"ref": "tests.agent_tools:get_weather"},
                {"ref": "tests.agent_tools:book_flight", "requires_confirmation": True},
            ]
        },
    }
    p = Policy.from_config(BotConfig.model_validate(document))
    assert p.held == frozenset({"book_flight"})
    assert p.evaluate(call("book_flight")).effect is Effect.ASK
    assert p.evaluate(call("get_weather")).effect is Effect.ALLOW


def test_reads_usergroups() -> None:
    assert not policy().reads_usergroups
    assert not policy([{"tools": ["t"], "when": "requester.is_admin"}]).reads_usergroups
    assert not policy([{"tools": ["t"]}]).reads_usergroups
    rules = [
        {"tools": ["a"], "when": "args.x > 1"},
        {"tools": ["t"], "when": "'S0FIN' in requester.usergroups"},
    ]
    assert policy(rules).reads_usergroups


# -- gates --------------------------------------------------------------------------------------


def test_gate_grantable() -> None:
    approvers = (Approvers(channel=APPROVALS),)
    assert Gate(approvers, quorum=1, grant_durations_s=(3600,)).grantable
    assert not Gate(approvers, quorum=2, grant_durations_s=(3600,)).grantable
    assert not Gate(approvers, quorum=1, grant_durations_s=()).grantable


def test_gate_channel_is_the_first_requirement_that_names_one() -> None:
    gate = Gate((Approvers(users=("U0A",)), Approvers(channel="C0B"), Approvers(channel="C0C")))
    assert gate.channel == "C0B"
    assert Gate((Approvers(users=("U0A",)),)).channel is None


def test_allow_edit_comes_from_the_rule_else_the_defaults() -> None:
    rules = [
        {"tools": ["pay"], "allow_edit": False},
        {"tools": ["book_*"]},
    ]
    p = policy(rules, defaults={"allow_edit": True})
    assert p.defaults.allow_edit is True
    paying = p.evaluate(call("pay")).gate
    assert paying is not None and paying.allow_edit is False
    gate = p.evaluate(call("book_flight")).gate
    assert gate is not None and gate.allow_edit is True
    assert policy([]).defaults.allow_edit is False


def test_expiry_and_reminders_come_from_the_rule_else_the_defaults() -> None:
    rules = [
        {"tools": ["pay"], "expire_after": "2h", "remind_every": "30m"},
        {"tools": ["book_*"]},
    ]
    p = policy(rules, defaults={"expire_after": "3d"})
    paying = p.evaluate(call("pay")).gate
    assert paying is not None
    assert (paying.expire_after_s, paying.remind_every_s) == (7200, 1800)
    booking = p.evaluate(call("book_flight")).gate
    assert booking is not None
    assert (booking.expire_after_s, booking.remind_every_s) == (3 * 86400, None)
    assert policy([]).defaults.expire_after_s == 24 * 3600  # the default: a day


@pytest.mark.parametrize("value", ["soon", "0m", "90d"])
def test_a_bad_expire_after_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="expire_after"):
        config([{"tools": ["pay"], "expire_after": value}])


def test_gate_round_trips_through_a_dict() -> None:
    gate = Gate(
        requirements=(
            Approvers(channel="C0FIN", usergroups=("S0A", "S0B"), users=("U0X",)),
            Approvers(users=("U0Y",)),
        ),
        quorum=3,
        allow_self_approval=True,
        grant_durations_s=(60, 3600),
        grant_same_arguments=True,
        rule="rule 4 (money)",
        allow_edit=True,
        expire_after_s=7200,
        remind_every_s=1800,
    )
    data = gate.to_dict()
    assert json.loads(json.dumps(data)) == data  # JSON-friendly
    assert data["requirements"][1] == {"channel": None, "usergroups": [], "users": ["U0Y"]}
    assert Gate.from_dict(json.loads(json.dumps(data))) == gate


def test_gate_from_a_minimal_dict() -> None:
    gate = Gate.from_dict({"requirements": [{"channel": "C0X"}]})
    assert gate == Gate((Approvers(channel="C0X"),))
    assert gate.rule == "defaults"
    assert gate.quorum == 1


def test_approvers_round_trip_through_a_dict() -> None:
    approvers = Approvers(channel=None, usergroups=("S0A",), users=("U0A", "U0B"))
    assert Approvers.from_dict(approvers.to_dict()) == approvers
    assert Approvers.from_dict({}) == Approvers()


# -- grants -------------------------------------------------------------------------------------


@pytest.mark.parametrize("arguments", [None, '{"a":1,"b":2}'])
def test_grant_round_trips_through_a_dict(arguments: str | None) -> None:
    grant = Grant(
        id="g1",
        tool="book_flight",
        requester_id="U0REQ",
        arguments=arguments,
        created_by="U0BOSS",
        created_at=1_700_000_000.5,
        expires_at=1_700_003_600.5,
        approval_id="a1",
    )
    data = grant.to_dict()
    assert data["arguments"] == arguments
    assert Grant.from_dict(json.loads(json.dumps(data))) == grant
    assert grant.scope == grant_scope(arguments)


def test_grant_scope_for_any_arguments() -> None:
    assert grant_scope(None) == "*"


def test_grant_scope_ignores_key_order_and_spacing() -> None:
    scope = grant_scope('{"a":1,"b":2}')
    assert scope == grant_scope('{"b": 2, "a": 1}')
    assert scope != "*"
    assert len(scope) == 32


@pytest.mark.parametrize(
    "other",
    ['{"a":1,"b":3}', '{"a":1}', '{"a":"1","b":2}', "{}", "not json"],
)
def test_grant_scope_differs_for_other_arguments(other: str) -> None:
    assert grant_scope(other) != grant_scope('{"a":1,"b":2}')


@pytest.mark.parametrize(
    "when",
    [
        "'S0FIN' in requester .usergroups",
        "'S0FIN' in requester. usergroups",
        "'S0FIN' in requester\n.usergroups",  # a YAML block scalar can break the line there
    ],
)
def test_reads_usergroups_however_the_expression_spells_it(when: str) -> None:
    facts = call("t", requester_usergroups=frozenset({"S0FIN"}))
    p = policy([{"tools": ["t"], "when": when, "decision": "deny"}])
    assert p.evaluate(facts).effect is Effect.DENY  # the expression is valid and reads the groups
    assert p.reads_usergroups


def test_a_require_override_keeps_a_stricter_rule_and_asks_where_the_rules_allow() -> None:
    payments = policy(
        [
            {
                "name": "big payments",
                "tools": ["pay_invoice"],
                "when": "args.amount > 10000",
                "approvers": {"users": ["U0CFO", "U0CEO"]},
                "quorum": 2,
            },
            {"tools": ["pay_*"], "decision": "deny", "when": "args.amount < 0"},
        ],
        defaults={"grant_durations": ["1h"]},
    )
    require = [override("pay_*", Effect.ASK)]

    big = payments.evaluate(call("pay_invoice", {"amount": 50000}), require)
    assert big.effect is Effect.ASK and big.gate is not None
    assert big.gate.requirements == (Approvers(users=("U0CFO", "U0CEO")),)
    assert big.gate.quorum == 2 and not big.gate.grantable
    assert big.rule == "rule 1 (big payments)"

    refund = payments.evaluate(call("pay_invoice", {"amount": -5}), require)
    assert refund.effect is Effect.DENY

    small = payments.evaluate(call("pay_invoice", {"amount": 50}), require)
    assert small.effect is Effect.ASK and small.gate is not None
    assert small.gate.requirements == (Approvers(channel=APPROVALS),)
    assert small.rule == "override by an admin (pay_*)"


def test_a_gate_fingerprint_names_who_decides() -> None:
    gate = Gate(requirements=(Approvers(channel=APPROVALS),), rule="rule 2 (payments)")
    assert (
        gate.fingerprint
        == Gate(
            requirements=(Approvers(channel=APPROVALS),),
            rule="rule 2 (payments)",
            expire_after_s=60,
        ).fingerprint
    )
    for other in (
        Gate(requirements=(Approvers(users=("U0CFO",)),), rule="rule 2 (payments)"),
        Gate(requirements=(Approvers(channel=APPROVALS),), rule="rule 1 (big payments)"),
        Gate(requirements=(Approvers(channel=APPROVALS),), rule="rule 2 (payments)", quorum=2),
        Gate(
            requirements=(Approvers(channel=APPROVALS),),
            rule="rule 2 (payments)",
            allow_self_approval=True,
        ),
    ):
        assert other.fingerprint != gate.fingerprint


def test_requester_thread_alone_keeps_the_default_approvers_and_not_the_fingerprint() -> None:
    plain = policy([{"tools": ["book_*"]}]).evaluate(call("book_flight")).gate
    shown = policy([{"tools": ["book_*"], "approvers": {"requester_thread": True}}])
    gate = shown.evaluate(call("book_flight")).gate
    assert plain is not None and gate is not None
    assert gate.requester_thread is True and plain.requester_thread is False
    assert gate.requirements == plain.requirements  # who decides is unchanged
    assert gate.fingerprint == plain.fingerprint  # so are the grants it honours
    assert Gate.from_dict(gate.to_dict()) == gate
    older = {k: v for k, v in gate.to_dict().items() if k != "requester_thread"}
    assert Gate.from_dict(older).requester_thread is False  # stored before: not shown there


def test_approvers_that_name_nobody_and_ask_for_nothing_are_refused() -> None:
    with pytest.raises(ValidationError, match="names nobody"):
        config([{"tools": ["book_*"], "approvers": {"requester_thread": False}}])
