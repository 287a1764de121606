"""Editing a tool call's arguments: schema -> form, and submitted form -> checked arguments."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
from mistralai.extra.run.tools import create_tool_call

from bot.core.editing import (
    MAX_FIELDS,
    MAX_INPUT_CHARS,
    EditedArguments,
    EditForm,
    FormField,
    NotEditable,
    edit_form,
    read_form,
)
from bot.errors import BotError


def send_payment(
    amount: float,
    currency: Literal["EUR", "USD"],
    memo: str | None = None,
    urgent: bool = False,
    tags: list[str] | None = None,
    copies: int = 1,
) -> str:
    """Send a payment.

    Args:
        amount: How much to send.
        currency: The currency to pay in.
        memo: A note for the payee.
        urgent: Send it right away.
        tags: Labels for the bookkeeping.
        copies: How many receipts to print.
    """
    return "sent"


PAYMENT_SCHEMA: dict[str, Any] = create_tool_call(send_payment).function.parameters
PAYMENT = {"amount": 12.5, "currency": "EUR", "memo": "rent", "tags": ["home"]}

LIMITS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "count": {"type": "integer", "minimum": 1, "maximum": 100, "title": "How many"},
        "ratio": {"type": "number", "exclusiveMaximum": 1},
        "code": {"type": "string", "maxLength": 5},
        "note": {"type": ["string", "null"]},
    },
    "required": ["count"],
}


def form_of(schema: Any, arguments: dict[str, Any]) -> tuple[EditForm, str]:
    text = json.dumps(arguments)
    return edit_form(schema, text), text


def by_name(form: EditForm) -> dict[str, FormField]:
    return {field.name: field for field in form.fields}


def unchanged(form: EditForm) -> dict[str, str | None]:
    """What Slack submits when the person changes nothing."""
    return {field.name: field.initial for field in form.fields}


def submit(schema: Any, arguments: dict[str, Any], **changes: str | None) -> Any:
    form, text = form_of(schema, arguments)
    return read_form(form, schema, text, {**unchanged(form), **changes})


def edited(result: EditedArguments | dict[str, str]) -> EditedArguments:
    assert isinstance(result, EditedArguments), result
    return result


def errors(result: EditedArguments | dict[str, str]) -> dict[str, str]:
    assert isinstance(result, dict), result
    return result


# -- the form ------------------------------------------------------------------------------------
def test_the_sdk_schema_of_a_python_function_gives_one_typed_field_per_parameter() -> None:
    form, _ = form_of(PAYMENT_SCHEMA, PAYMENT)

    assert not form.whole and form.kept == ()
    assert [(f.name, f.kind, f.required, f.nullable) for f in form.fields] == [
        ("amount", "number", True, False),
        ("currency", "choice", True, False),
        ("memo", "text", False, True),
        ("urgent", "boolean", False, False),
        ("tags", "json", False, True),
        ("copies", "integer", False, False),
    ]
    fields = by_name(form)
    assert fields["currency"].choices == ("EUR", "USD")
    assert fields["amount"].hint == "How much to send."
    assert fields["amount"].label == "amount"
    assert [f.initial for f in form.fields] == ["12.5", "EUR", "rent", None, '[\n  "home"\n]', None]
    assert fields["tags"].multiline and not fields["memo"].multiline


def test_an_unchanged_form_gives_back_the_models_arguments_and_no_override() -> None:
    result = edited(submit(PAYMENT_SCHEMA, PAYMENT))

    assert result.arguments == PAYMENT
    assert result.override == {}


def test_each_kind_reads_back_as_its_json_type() -> None:
    result = edited(
        submit(
            PAYMENT_SCHEMA,
            PAYMENT,
            amount="20",
            currency="USD",
            memo="June rent",
            urgent="true",
            tags='["home", "monthly"]',
            copies="3",
        )
    )

    assert result.override == {
        "amount": 20,
        "currency": "USD",
        "memo": "June rent",
        "urgent": True,
        "tags": ["home", "monthly"],
        "copies": 3,
    }
    assert result.arguments == result.override
    assert type(result.arguments["amount"]) is int


def test_a_number_keeps_its_decimals() -> None:
    assert edited(submit(PAYMENT_SCHEMA, PAYMENT, amount=" 20.75 ")).override == {"amount": 20.75}


def test_the_override_holds_only_the_changed_keys() -> None:
    result = edited(submit(PAYMENT_SCHEMA, PAYMENT, memo="deposit", urgent="false"))

    assert result.override == {"memo": "deposit", "urgent": False}
    assert result.arguments == {**PAYMENT, "memo": "deposit", "urgent": False}
    # what the SDK does with override_args: merged over the model's arguments
    assert {**PAYMENT, **result.override} == result.arguments


def test_titles_become_labels_and_long_texts_are_cut() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string", "title": "T" * 500, "description": "d" * 900}},
    }
    field = edit_form(schema, "{}").fields[0]

    assert (field.label, field.hint) == ("T" * 150, "d" * 300)
    assert by_name(form_of(LIMITS, {"count": 2})[0])["count"].label == "How many"


@pytest.mark.parametrize(
    ("text", "multiline"),
    [("short", False), ("x" * 81, True), ("two\nlines", True), ("x" * 80, False)],
)
def test_long_or_multi_line_text_gets_a_multi_line_field(text: str, multiline: bool) -> None:
    form, _ = form_of(LIMITS, {"count": 1, "code": text})

    assert by_name(form)["code"].multiline is multiline


# -- kinds from the schema -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("prop", "kind", "nullable"),
    [
        ({"type": "string"}, "text", False),
        ({"type": "integer"}, "integer", False),
        ({"type": "number"}, "number", False),
        ({"type": "boolean"}, "boolean", False),
        ({"type": "object"}, "json", False),
        ({"type": "array", "items": {"type": "string"}}, "json", False),
        ({}, "json", False),
        ({"type": "string", "enum": ["a", "b"]}, "choice", False),
        ({"enum": ["a", "b", None]}, "choice", True),
        ({"type": ["integer", "null"]}, "integer", True),
        ({"anyOf": [{"type": "boolean"}, {"type": "null"}]}, "boolean", True),
        ({"oneOf": [{"type": "null"}, {"type": "number"}]}, "number", True),
        ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, "json", False),
        ({"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]}, "json", True),
        ({"type": ["integer", "string"]}, "json", False),
        ({"$ref": "#/$defs/Color"}, "choice", False),
        ({"anyOf": [{"$ref": "#/$defs/Color"}, {"type": "null"}]}, "choice", True),
        ({"$ref": "#/$defs/Missing"}, "json", False),
        ({"$ref": "#/$defs/Loop"}, "json", False),
        ({"type": "string", "enum": [f"v{i}" for i in range(101)]}, "text", False),
        ({"type": "string", "enum": ["x" * 76]}, "text", False),
        ({"type": "string", "enum": [""]}, "text", False),
        ("not a schema", "json", False),
    ],
)
def test_the_kind_comes_from_the_property_schema(prop: Any, kind: str, nullable: bool) -> None:
    schema = {
        "type": "object",
        "properties": {"p": prop},
        "$defs": {"Color": {"enum": ["red", "blue"], "type": "string"}, "Loop": {"$ref": "#"}},
    }
    field = edit_form(schema, "{}").fields[0]

    assert (field.kind, field.nullable) == (kind, nullable)
    assert field.initial is None
    expected_choices = ("red", "blue") if "Color" in str(prop) else ("a", "b")
    assert field.choices == (expected_choices if kind == "choice" else ())


def test_a_value_that_does_not_fit_its_kind_is_shown_as_json() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "count": {"type": "integer"},
            "color": {"type": "string", "enum": ["red", "blue"]},
        },
    }
    form, text = form_of(schema, {"name": 5, "count": 1.5, "color": "green"})
    fields = by_name(form)

    assert (fields["name"].kind, fields["name"].initial) == ("json", "5")
    assert (fields["count"].kind, fields["count"].initial) == ("json", "1.5")
    assert (fields["color"].kind, fields["color"].initial) == ("text", "green")
    # and the person can fix it
    result = errors(read_form(form, schema, text, {**unchanged(form), "count": "2"}))
    assert result == {"name": "Must be of type string.", "color": "Must be one of: red, blue."}


def test_a_nullable_field_with_null_starts_empty_and_stays_null() -> None:
    form, text = form_of(PAYMENT_SCHEMA, {**PAYMENT, "memo": None})

    assert by_name(form)["memo"].initial is None
    assert edited(read_form(form, PAYMENT_SCHEMA, text, unchanged(form))).override == {}


def test_extra_arguments_the_schema_does_not_declare_come_last_as_json() -> None:
    arguments = {"trace": {"id": 7}, **PAYMENT}
    form, text = form_of(PAYMENT_SCHEMA, arguments)
    extra = form.fields[-1]

    assert (extra.name, extra.kind, extra.label, extra.required) == (
        "trace",
        "json",
        "trace",
        False,
    )
    assert extra.initial == '{\n  "id": 7\n}'
    values = {**unchanged(form), "trace": '{"id": 8}'}
    assert edited(read_form(form, PAYMENT_SCHEMA, text, values)).override == {"trace": {"id": 8}}


# -- what the person enters ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"count": "1.5"}, {"count": "Enter a whole number."}),
        ({"count": "abc"}, {"count": "Enter a whole number."}),
        ({"count": "150"}, {"count": "Must be at most 100."}),
        ({"count": "0"}, {"count": "Must be at least 1."}),
        ({"ratio": "abc"}, {"ratio": "Enter a number."}),
        ({"ratio": "nan"}, {"ratio": "Enter a number."}),
        ({"ratio": "inf"}, {"ratio": "Enter a number."}),
        ({"ratio": "1e999"}, {"ratio": "Enter a number."}),
        ({"ratio": "1"}, {"ratio": "Must be less than 1."}),
        ({"code": "toolong"}, {"code": "Must be at most 5 characters."}),
        (
            {"count": "", "ratio": "x"},
            {"count": "This cannot be emptied; enter a value.", "ratio": "Enter a number."},
        ),
    ],
)
def test_bad_values_get_a_short_message_under_their_field(
    changes: dict[str, str], expected: dict[str, str]
) -> None:
    assert errors(submit(LIMITS, {"count": 5, "ratio": 0.5}, **changes)) == expected


def test_a_choice_outside_the_options_is_refused() -> None:
    result = errors(submit(PAYMENT_SCHEMA, PAYMENT, currency="GBP", urgent="yes"))

    assert result == {
        "currency": "Choose one of: EUR, USD.",
        "urgent": "Choose one of: true, false.",
    }


@pytest.mark.parametrize("bad", ['["home",', "{'a': 1}", "NaN", "[1, Infinity]"])
def test_bad_json_is_refused_with_the_reason(bad: str) -> None:
    message = errors(submit(PAYMENT_SCHEMA, PAYMENT, tags=bad))["tags"]

    assert message.startswith("Not valid JSON: ")
    assert len(message) <= 150


def test_an_error_inside_a_json_value_says_where() -> None:
    result = errors(submit(PAYMENT_SCHEMA, PAYMENT, tags='["home", 5]'))

    assert result == {"tags": "tags[1]: Must be of type string."}


def test_a_required_field_the_model_left_out_must_be_filled() -> None:
    form, text = form_of(LIMITS, {"ratio": 0.5})

    assert errors(read_form(form, LIMITS, text, unchanged(form))) == {"count": "Required."}
    assert edited(read_form(form, LIMITS, text, {**unchanged(form), "count": "7"})).override == {
        "count": 7
    }


def test_an_optional_field_the_model_left_out_stays_absent() -> None:
    result = edited(submit(PAYMENT_SCHEMA, PAYMENT, copies=None, urgent=""))

    assert "copies" not in result.arguments and "urgent" not in result.arguments
    assert result.override == {}


def test_emptying_a_nullable_field_sets_null() -> None:
    result = edited(submit(PAYMENT_SCHEMA, PAYMENT, memo="", tags="  "))

    assert result.override == {"memo": None, "tags": None}


def test_a_required_nullable_field_left_empty_is_null() -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": ["integer", "null"]}},
        "required": ["n"],
    }

    assert edited(read_form(edit_form(schema, "{}"), schema, "{}", {})).arguments == {"n": None}


def test_a_field_that_was_an_empty_string_can_stay_empty() -> None:
    result = edited(submit(LIMITS, {"count": 1, "code": ""}, code=None))

    assert result.arguments == {"count": 1, "code": ""}
    assert result.override == {}


def test_values_that_are_not_text_count_as_empty() -> None:
    form, text = form_of(LIMITS, {"count": 3, "note": "hi"})
    garbage: Any = {"count": 5, "note": ["x"]}

    assert errors(read_form(form, LIMITS, text, garbage)) == {
        "count": "This cannot be emptied; enter a value."
    }


def test_changing_1_to_true_is_a_change() -> None:
    schema = {"type": "object", "properties": {"flag": {}}}
    form, text = form_of(schema, {"flag": 1})

    assert edited(read_form(form, schema, text, {"flag": "true"})).override == {"flag": True}


def test_an_undeclared_key_the_schema_forbids_is_reported_on_its_field() -> None:
    schema = {**LIMITS, "additionalProperties": False}
    form, text = form_of(schema, {"count": 1, "extra": 1})

    result = errors(read_form(form, schema, text, unchanged(form)))
    assert list(result) == ["extra"]
    assert "extra" in result["extra"]


# -- values too long to edit ---------------------------------------------------------------------
def test_a_value_too_long_for_a_field_is_kept_as_the_model_sent_it() -> None:
    long_memo = "m" * (MAX_INPUT_CHARS + 1)
    form, text = form_of(PAYMENT_SCHEMA, {**PAYMENT, "memo": long_memo})

    assert form.kept == ("memo",)
    assert "memo" not in by_name(form)
    result = edited(read_form(form, PAYMENT_SCHEMA, text, {**unchanged(form), "amount": "3"}))
    assert result.arguments["memo"] == long_memo
    assert result.override == {"amount": 3}


def test_a_schema_error_in_a_kept_value_is_shown_on_the_first_field() -> None:
    schema = {**LIMITS, "properties": {**LIMITS["properties"], "code": {"maxLength": 5}}}
    form, text = form_of(schema, {"count": 2, "code": "c" * 4000})

    assert form.kept == ("code",)
    assert errors(read_form(form, schema, text, unchanged(form))) == {
        "count": "code: Must be at most 5 characters."
    }


def test_when_every_value_is_too_long_nothing_is_editable() -> None:
    schema = {"type": "object", "properties": {"body": {"type": "string"}}}

    with pytest.raises(NotEditable, match="too long"):
        edit_form(schema, json.dumps({"body": "b" * 5000}))


# -- the whole object as JSON --------------------------------------------------------------------
@pytest.mark.parametrize("schema", [None, {}, {"type": "object"}, {"properties": "odd"}])
def test_without_properties_the_whole_object_is_one_json_field(schema: Any) -> None:
    form, text = form_of(schema, {"a": 1, "b": [1, 2]})

    assert form.whole and form.kept == ()
    assert form.fields == (
        FormField(
            "",
            "json",
            "Arguments (JSON)",
            None,
            True,
            '{\n  "a": 1,\n  "b": [\n    1,\n    2\n  ]\n}',
            multiline=True,
        ),
    )
    assert edited(read_form(form, schema, text, unchanged(form))).override == {}
    changed = edited(read_form(form, schema, text, {"": '{"a": 2, "b": [1, 2], "c": null}'}))
    assert changed.override == {"a": 2, "c": None}
    assert changed.arguments == {"a": 2, "b": [1, 2], "c": None}


def test_too_many_fields_or_a_very_long_name_means_the_whole_object() -> None:
    many = {
        "type": "object",
        "properties": {f"p{i}": {"type": "string"} for i in range(MAX_FIELDS + 1)},
    }
    long_name = {"type": "object", "properties": {"n" * 201: {"type": "string"}}}
    extras = {"type": "object", "properties": {"a": {}}}

    assert edit_form(many, "{}").whole
    assert edit_form(long_name, "{}").whole
    assert edit_form(extras, json.dumps({f"x{i}": i for i in range(MAX_FIELDS)})).whole
    assert not edit_form({"type": "object", "properties": {"n" * 200: {}}}, "{}").whole


def test_the_whole_object_is_still_checked_against_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": dict.fromkeys(
            (f"p{i}" for i in range(MAX_FIELDS + 1)), {"type": "integer", "maximum": 9}
        ),
        "required": ["p0"],
    }
    form, text = form_of(schema, {"p0": 1, "p1": 2})

    assert errors(read_form(form, schema, text, {"": '{"p0": 1, "p1": 20}'})) == {
        "": "p1: Must be at most 9."
    }
    assert errors(read_form(form, schema, "{}", {"": "{}"})) == {"": "p0: Required."}


@pytest.mark.parametrize(
    ("submitted", "message"),
    [
        ('{"b": 2}', '"a" is missing: keys the agent sent can be changed but not removed.'),
        ("[1]", "Enter a JSON object: the arguments between { and }."),
        ("", "Enter the arguments as a JSON object."),
        (None, "Enter the arguments as a JSON object."),
    ],
)
def test_the_whole_object_must_stay_an_object_with_every_key(
    submitted: str | None, message: str
) -> None:
    form, text = form_of(None, {"a": 1})

    assert errors(read_form(form, None, text, {"": submitted})) == {"": message}


def test_bad_json_in_the_whole_object() -> None:
    form, text = form_of(None, {"a": 1})
    result = errors(read_form(form, None, text, {"": '{"a": }'}))

    assert result[""].startswith("Not valid JSON: Expecting value (line 1")


# -- what cannot be edited -----------------------------------------------------------------------
@pytest.mark.parametrize("arguments", ["[1, 2]", '"text"', "null", "not json", "{", "[" * 5000])
def test_arguments_that_are_not_a_json_object_are_not_editable(arguments: str) -> None:
    with pytest.raises(NotEditable) as caught:
        edit_form(PAYMENT_SCHEMA, arguments)

    assert isinstance(caught.value, BotError)
    assert "JSON" in str(caught.value)


def test_without_a_schema_long_arguments_are_not_editable() -> None:
    arguments = json.dumps({"body": "b" * (MAX_INPUT_CHARS + 1)})

    with pytest.raises(NotEditable, match="too long to edit in Slack"):
        edit_form(None, arguments)
    # with a schema, the long value is kept and the rest stays editable
    schema = {
        "type": "object",
        "properties": {"body": {"type": "string"}, "to": {"type": "string"}},
    }
    assert edit_form(schema, arguments).kept == ("body",)


def test_read_form_does_not_raise_when_the_original_is_broken() -> None:
    form, _ = form_of(PAYMENT_SCHEMA, PAYMENT)

    assert list(errors(read_form(form, PAYMENT_SCHEMA, "[]", unchanged(form)))) == ["amount"]


# -- schemas jsonschema cannot use as they are ---------------------------------------------------
def test_an_invalid_schema_does_not_crash_reading_the_form() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "minLength": "two"}}}
    form, text = form_of(schema, {"a": "x"})

    assert edited(read_form(form, schema, text, {"a": "y"})).override == {"a": "y"}


def test_an_unknown_meta_schema_falls_back_to_draft_2020_12() -> None:
    schema = {**LIMITS, "$schema": "https://example.com/my-dialect"}

    assert errors(submit(schema, {"count": 1}, count="500")) == {"count": "Must be at most 100."}


def test_a_draft_4_schema_is_checked_with_draft_4_rules() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 1, "exclusiveMinimum": True}},
    }

    message = errors(submit(schema, {"n": 2}, n="1"))["n"]
    assert "1" in message and message != "Must be at least 1."


def test_a_ref_that_resolves_nowhere_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    schema = {"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}}
    form, text = form_of(schema, {"a": 1})

    assert by_name(form)["a"].kind == "json"
    assert edited(read_form(form, schema, text, {"a": "2"})).override == {"a": 2}
    assert "cannot check edited arguments" in caplog.text
