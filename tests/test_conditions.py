"""Policy conditions: CEL expressions, checked when the config loads, evaluated per call."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bot.core.conditions import Condition, ConditionError, Facts, Result


def facts(arguments: str = "{}", **changes: Any) -> Facts:
    return replace(Facts("book_flight", arguments, "U0REQ"), **changes)


# -- compiling --------------------------------------------------------------------------------


def test_syntax_error_says_where_and_what() -> None:
    with pytest.raises(ConditionError) as caught:
        Condition("args.price >")
    message = str(caught.value)
    assert "Syntax error" in message
    assert message.startswith("at 1:13: ")
    assert "INVALID_ARGUMENT" not in message  # the status prefix is stripped


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("foo > 1", "foo"),
        ("requester.foo", "requester.foo"),
        ("channel.name == 'x'", "channel.name"),
    ],
)
def test_unknown_variable_is_rejected(source: str, name: str) -> None:
    with pytest.raises(ConditionError, match="undeclared reference") as caught:
        Condition(source)
    assert f"'{name}'" in str(caught.value)


def test_type_mismatch_is_rejected() -> None:
    with pytest.raises(ConditionError) as caught:
        Condition("1 + 'a'")
    message = str(caught.value)
    assert "no matching overload" in message
    assert "(int, string)" in message


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("args.price + 1", "an int"),
        ("tool", "a string"),
        ("requester.usergroups", "a list"),
        ("args", "a map"),
    ],
)
def test_a_result_that_is_not_true_or_false_is_rejected(source: str, kind: str) -> None:
    with pytest.raises(ConditionError) as caught:
        Condition(source)
    message = str(caught.value)
    assert message.startswith(f"the expression gives {kind}")
    assert message.endswith("not true or false")


def test_condition_error_is_a_value_error() -> None:
    # pydantic turns a ValueError raised in a validator into a config problem
    assert issubclass(ConditionError, ValueError)


@pytest.mark.parametrize(
    "source",
    ["__import__('os')", "open('/etc/passwd')", "exec('1')", "eval('1 == 1')"],
)
def test_python_is_not_evaluated(source: str) -> None:
    with pytest.raises(ConditionError, match="undeclared reference"):
        Condition(source)


def test_a_dynamic_result_compiles_and_is_checked_when_evaluated() -> None:
    condition = Condition("args.flag")
    assert condition.source == "args.flag"
    assert repr(condition) == "Condition('args.flag')"
    assert condition.evaluate(facts('{"flag": true}')) == Result(True)
    result = condition.evaluate(facts('{"flag": 3}'))
    assert result.value is False
    assert result.error == "the expression gave 3, not true or false"


# -- evaluating ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"price": 501}', True),
        ('{"price": 500}', False),
        ('{"price": 12}', False),
        ('{"price": 500.5}', True),
        ('{"price": 499.99}', False),
        ('{"price": -1000.0}', False),
    ],
)
def test_comparing_a_number_argument(arguments: str, expected: bool) -> None:
    assert Condition("args.price > 500").evaluate(facts(arguments)) == Result(expected)


def test_a_missing_key_is_an_error_not_a_value() -> None:
    result = Condition("args.price > 500").evaluate(facts('{"seats": 2}'))
    assert result.value is False
    assert result.error is not None
    assert "price" in result.error
    assert "not found" in result.error.lower()


def test_a_wrongly_typed_argument_is_an_error() -> None:
    result = Condition("args.price > 500").evaluate(facts('{"price": "cheap"}'))
    assert result.value is False
    assert result.error is not None
    assert "string" in result.error


def test_has_tests_for_a_key_without_an_error() -> None:
    condition = Condition("has(args.price) && args.price > 500")
    assert condition.evaluate(facts("{}")) == Result(False)
    assert condition.evaluate(facts('{"price": 900}')) == Result(True)


@pytest.mark.parametrize(
    "arguments",
    ["", "not json", "[1, 2]", '"a string"', "42", "null", "{broken"],
    ids=["empty", "text", "list", "string", "number", "null", "broken"],
)
def test_arguments_that_are_not_a_json_object_are_an_empty_map(arguments: str) -> None:
    assert Facts("t", arguments, "U0REQ").activation()["args"] == {}
    assert Condition("size(args) == 0").evaluate(facts(arguments)) == Result(True)


def test_an_object_is_not_empty() -> None:
    assert Condition("size(args) == 0").evaluate(facts('{"a": 1}')) == Result(False)


def test_nested_arguments_can_be_read() -> None:
    condition = Condition("args.trip.legs[1].to == 'CDG'")
    arguments = '{"trip": {"legs": [{"to": "JFK"}, {"to": "CDG"}]}}'
    assert condition.evaluate(facts(arguments)) == Result(True)


def test_requester_is_admin() -> None:
    condition = Condition("requester.is_admin")
    assert condition.evaluate(facts(requester_is_admin=True)) == Result(True)
    assert condition.evaluate(facts(requester_is_admin=False)) == Result(False)
    assert condition.evaluate(facts()) == Result(False)  # not an admin unless told


def test_requester_id() -> None:
    condition = Condition("requester.id == 'U0REQ'")
    assert condition.evaluate(facts()) == Result(True)
    assert condition.evaluate(facts(requester_id="U0OTHER")) == Result(False)


def test_requester_usergroups() -> None:
    condition = Condition("'S0FIN' in requester.usergroups")
    assert condition.evaluate(facts(requester_usergroups=frozenset({"S0FIN", "S0ENG"}))) == Result(
        True
    )
    assert condition.evaluate(facts(requester_usergroups=frozenset({"S0ENG"}))) == Result(False)
    assert condition.evaluate(facts()) == Result(False)


@pytest.mark.parametrize(
    ("channel", "is_dm"),
    [("D0123ABC", True), ("C0123ABC", False), ("G0123ABC", False), ("", False)],
)
def test_channel_is_dm_for_ids_starting_with_d(channel: str, is_dm: bool) -> None:
    assert Condition("channel.is_dm").evaluate(facts(channel_id=channel)) == Result(is_dm)
    assert Condition(f"channel.id == '{channel}'").evaluate(facts(channel_id=channel)) == Result(
        True
    )


@pytest.mark.parametrize(("tool", "expected"), [("get_weather", True), ("book_flight", False)])
def test_tool_name_functions(tool: str, expected: bool) -> None:
    assert Condition("tool.startsWith('get_')").evaluate(facts(tool=tool)) == Result(expected)


def test_a_runtime_error_is_returned_not_raised() -> None:
    result = Condition("1 / 0 == 1").evaluate(facts())
    assert result.value is False
    assert result.error is not None
    assert "divide by zero" in result.error


def test_an_integer_out_of_range_is_an_error() -> None:
    result = Condition("args.price > 500").evaluate(facts('{"price": 99999999999999999999999}'))
    assert result.value is False
    assert result.error is not None
    assert "out of range" in result.error


def test_a_condition_is_reusable_across_calls() -> None:
    condition = Condition("args.price > 500 && !requester.is_admin")
    assert condition.evaluate(facts('{"price": 900}')) == Result(True)
    assert condition.evaluate(facts('{"price": 900}', requester_is_admin=True)) == Result(False)
    assert condition.evaluate(facts('{"price": 100}')) == Result(False)
