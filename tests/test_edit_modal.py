"""The "Edit, then approve" modal: built within Slack's limits, and read back from a submission.

Every view goes through ``slack_sdk``'s own validation (``to_dict()``) and a round trip through
``View(**view.to_dict())``, as Slack's payload would come back.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
from mistralai.extra.run.tools import create_tool_call
from slack_sdk.models.views import View

from bot.core.editing import MAX_FIELDS, EditedArguments, EditForm, FormField, edit_form, read_form
from bot.slack.edit_modal import (
    EDIT_MODAL,
    FIELD_ACTION,
    FIELD_BLOCK_PREFIX,
    edit_modal,
    field_errors,
    submitted_values,
)
from tests.helpers import all_text

HOSTILE = "<!channel> <@U123> <https://x|y> & @here"


def book_flight(
    destination: str,
    seats: int,
    budget: float,
    cabin: Literal["economy", "business"] = "economy",
    refundable: bool | None = None,
    notes: str = "",
    extras: dict[str, str] | None = None,
) -> str:
    """Book a flight.

    Args:
        destination: Where to fly.
        seats: How many seats.
        budget: The most to spend, in euros.
        cabin: The cabin class.
        refundable: Whether the ticket can be refunded.
        notes: Anything the airline should know.
        extras: Extra services.
    """
    return "booked"


SCHEMA: dict[str, Any] = create_tool_call(book_flight).function.parameters
ARGUMENTS = {
    "destination": "Lisbon",
    "seats": 2,
    "budget": 800.5,
    "cabin": "business",
    "notes": "window seat please\nand a vegetarian meal",
}


def build(form: EditForm, **options: Any) -> dict[str, Any]:
    """The modal as Slack receives it, checked by slack_sdk both ways."""
    view = edit_modal(
        form,
        tool_name=options.pop("tool_name", "book_flight"),
        requester_id="UREQ",
        private_metadata=options.pop("private_metadata", "approval-1:call_0"),
        **options,
    )
    payload: dict[str, Any] = view.to_dict()
    assert View(**payload).to_dict() == payload
    assert len(payload["blocks"]) <= 100
    return payload


def inputs(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {block["block_id"]: block for block in payload["blocks"] if block["type"] == "input"}


def element_state(element: dict[str, Any], value: str | None) -> dict[str, Any]:
    """One input's state in a view_submission payload, as Slack sends it."""
    if element["type"] == "static_select":
        option = next((o for o in element["options"] if o["value"] == value), None)
        return {"type": "static_select", "selected_option": option}
    return {"type": element["type"], "value": value}


def submission(payload: dict[str, Any], **changes: str | None) -> dict[str, Any]:
    """The ``view`` of a view_submission: every input as it was shown, with ``changes``."""
    values: dict[str, Any] = {}
    for block_id, block in inputs(payload).items():
        element = block["element"]
        shown = element.get("initial_value") or (element.get("initial_option") or {}).get("value")
        name = block_id.removeprefix(FIELD_BLOCK_PREFIX)
        values[block_id] = {FIELD_ACTION: element_state(element, changes.get(name, shown))}
    return {
        "id": "V123",
        "type": "modal",
        "callback_id": payload["callback_id"],
        "private_metadata": payload["private_metadata"],
        "state": {"values": values},
    }


# -- building ------------------------------------------------------------------------------------
def test_the_modal_has_one_input_per_field_with_the_right_element() -> None:
    payload = build(edit_form(SCHEMA, json.dumps(ARGUMENTS)))

    assert payload["type"] == "modal"
    assert payload["callback_id"] == EDIT_MODAL
    assert payload["title"]["text"] == "Edit, then approve"
    assert (payload["submit"]["text"], payload["close"]["text"]) == ("Approve", "Cancel")
    assert payload["private_metadata"] == "approval-1:call_0"
    blocks = inputs(payload)
    assert list(blocks) == [
        "arg:destination",
        "arg:seats",
        "arg:budget",
        "arg:cabin",
        "arg:refundable",
        "arg:notes",
        "arg:extras",
    ]
    elements = {block_id: block["element"] for block_id, block in blocks.items()}
    assert {block_id: element["type"] for block_id, element in elements.items()} == {
        "arg:destination": "plain_text_input",
        "arg:seats": "number_input",
        "arg:budget": "number_input",
        "arg:cabin": "static_select",
        "arg:refundable": "static_select",
        "arg:notes": "plain_text_input",
        "arg:extras": "plain_text_input",
    }
    assert all(element["action_id"] == FIELD_ACTION for element in elements.values())
    assert elements["arg:seats"]["is_decimal_allowed"] is False
    assert elements["arg:budget"]["is_decimal_allowed"] is True
    assert elements["arg:seats"]["initial_value"] == "2"
    assert elements["arg:budget"]["initial_value"] == "800.5"
    assert elements["arg:destination"]["initial_value"] == "Lisbon"
    assert elements["arg:destination"]["max_length"] == 3000
    assert elements["arg:notes"]["multiline"] is True
    assert elements["arg:extras"]["multiline"] is True
    assert [o["value"] for o in elements["arg:cabin"]["options"]] == ["economy", "business"]
    assert elements["arg:cabin"]["initial_option"]["value"] == "business"
    assert [o["value"] for o in elements["arg:refundable"]["options"]] == ["true", "false"]


def test_fields_the_model_left_empty_have_no_initial_value() -> None:
    elements = {
        block_id: block["element"]
        for block_id, block in inputs(build(edit_form(SCHEMA, json.dumps(ARGUMENTS)))).items()
    }

    assert "initial_option" not in elements["arg:refundable"]
    assert "initial_value" not in elements["arg:extras"]
    empty_text = edit_form(SCHEMA, json.dumps({**ARGUMENTS, "notes": ""}))
    assert "initial_value" not in inputs(build(empty_text))["arg:notes"]["element"]


def test_labels_hints_and_optional_flags_come_from_the_form() -> None:
    blocks = inputs(build(edit_form(SCHEMA, json.dumps(ARGUMENTS))))

    assert blocks["arg:destination"]["label"] == {"type": "plain_text", "text": "destination"}
    assert blocks["arg:destination"]["hint"]["text"] == "Where to fly."
    assert blocks["arg:destination"]["optional"] is False
    assert blocks["arg:cabin"]["optional"] is True
    no_hint = EditForm((FormField("x", "text", "X", None, True, None),))
    assert "hint" not in inputs(build(no_hint))["arg:x"]


def test_the_intro_names_the_tool_and_the_requester() -> None:
    payload = build(edit_form(SCHEMA, json.dumps(ARGUMENTS)), note="Required fields are marked")
    intro, note = payload["blocks"][0], payload["blocks"][1]

    assert intro["text"] == {
        "type": "mrkdwn",
        "text": "Edit the arguments of `book_flight` requested by <@UREQ>. "
        "Submitting approves the call with your arguments.",
        "verbatim": True,
    }
    assert note["type"] == "context"
    assert note["elements"][0]["text"] == "Required fields are marked"
    assert build(edit_form(SCHEMA, "{}"))["blocks"][1]["type"] == "input"


def test_the_whole_object_is_one_multi_line_json_input() -> None:
    form = edit_form(None, json.dumps({"q": "weather", "n": 3}))
    block = inputs(build(form))["arg:"]

    assert block["label"]["text"] == "Arguments (JSON)"
    assert block["optional"] is False
    assert block["element"]["multiline"] is True
    assert json.loads(block["element"]["initial_value"]) == {"q": "weather", "n": 3}


def test_kept_arguments_are_named_in_a_note() -> None:
    form = edit_form(SCHEMA, json.dumps({**ARGUMENTS, "notes": "n" * 5000}))
    payload = build(form)

    assert "arg:notes" not in inputs(payload)
    assert payload["blocks"][-1] == {
        "type": "context",
        "elements": [
            {
                "type": "mrkdwn",
                "text": "`notes`: too long to edit here; kept as the agent sent it.",
                "verbatim": True,
            }
        ],
    }


def test_the_largest_form_fits_in_a_modal() -> None:
    schema = {
        "type": "object",
        "properties": {
            f"p{i}": {"type": "string", "description": "d" * 300} for i in range(MAX_FIELDS)
        },
    }
    arguments = {f"p{i}": "v" * (5000 if i % 2 else 3000) for i in range(MAX_FIELDS)}
    form = edit_form(schema, json.dumps(arguments))
    payload = build(form, note="note")

    assert len(form.fields) + len(form.kept) == MAX_FIELDS
    assert len(payload["blocks"]) == MAX_FIELDS + 2


def test_a_form_too_big_for_a_modal_is_refused() -> None:
    fields = tuple(FormField(f"f{i}", "text", "F", None, False, None) for i in range(100))

    with pytest.raises(ValueError, match="a modal holds 100"):
        edit_modal(EditForm(fields), tool_name="t", requester_id="U1", private_metadata="m")


def test_private_metadata_longer_than_slack_keeps_is_refused() -> None:
    form = edit_form(SCHEMA, json.dumps(ARGUMENTS))

    assert len(build(form, private_metadata="m" * 3000)["private_metadata"]) == 3000
    with pytest.raises(ValueError, match="private_metadata"):
        edit_modal(form, tool_name="t", requester_id="U1", private_metadata="m" * 3001)


def test_untrusted_text_cannot_mention_or_link_in_mrkdwn() -> None:
    schema = {
        "type": "object",
        "properties": {HOSTILE: {"type": "string", "title": HOSTILE, "description": HOSTILE}},
    }
    form = edit_form(schema, json.dumps({HOSTILE: HOSTILE, "x" + HOSTILE: "y" * 5000}))
    payload = build(form, tool_name=HOSTILE + "`code`", note=HOSTILE)

    mrkdwn = [
        text["text"]
        for block in payload["blocks"]
        for text in [block.get("text", {}), *block.get("elements", [])]
        if text.get("type") == "mrkdwn"
    ]
    assert len(mrkdwn) == 3  # intro, note, kept
    for text in mrkdwn:
        assert "<!channel>" not in text and "<@U123>" not in text and "<https://x|y>" not in text
        assert "&lt;!channel&gt;" in text and "@\u200bhere" in text
    assert "`code`" not in mrkdwn[0]
    # plain_text shows the characters as they are and cannot mention anyone
    block = inputs(payload)["arg:" + HOSTILE]
    assert block["label"] == {"type": "plain_text", "text": HOSTILE}
    assert block["element"]["initial_value"] == HOSTILE
    assert "<@UREQ>" in all_text(payload)


# -- reading a submission ------------------------------------------------------------------------
def test_submitted_values_reads_every_kind_of_input() -> None:
    view = {
        "state": {
            "values": {
                "arg:destination": {FIELD_ACTION: {"type": "plain_text_input", "value": "Porto"}},
                "arg:seats": {FIELD_ACTION: {"type": "number_input", "value": "3"}},
                "arg:cabin": {
                    FIELD_ACTION: {
                        "type": "static_select",
                        "selected_option": {
                            "text": {"type": "plain_text", "text": "economy"},
                            "value": "economy",
                        },
                    }
                },
                "arg:refundable": {
                    FIELD_ACTION: {"type": "static_select", "selected_option": None}
                },
                "arg:notes": {FIELD_ACTION: {"type": "plain_text_input", "value": None}},
                "arg:extras": {"other_action": {"type": "plain_text_input", "value": "x"}},
                "arg:budget": "garbage",
                "reason": {FIELD_ACTION: {"type": "plain_text_input", "value": "not a field"}},
            }
        }
    }

    assert submitted_values(view) == {
        "destination": "Porto",
        "seats": "3",
        "cabin": "economy",
        "refundable": None,
        "notes": None,
        "extras": None,
        "budget": None,
    }


@pytest.mark.parametrize(
    "view",
    [{}, {"state": None}, {"state": {"values": []}}, {"state": "x"}, "not a view"],
)
def test_submitted_values_of_a_malformed_view_is_empty(view: Any) -> None:
    assert submitted_values(view) == {}


def test_the_whole_object_field_reads_back_under_the_empty_name() -> None:
    view = {
        "state": {"values": {"arg:": {FIELD_ACTION: {"type": "plain_text_input", "value": "{}"}}}}
    }

    assert submitted_values(view) == {"": "{}"}


def test_an_untouched_modal_reads_back_as_the_models_arguments() -> None:
    original = json.dumps(ARGUMENTS)
    form = edit_form(SCHEMA, original)
    view = submission(build(form))

    result = read_form(form, SCHEMA, original, submitted_values(view))
    assert isinstance(result, EditedArguments)
    assert result.arguments == ARGUMENTS
    assert result.override == {}


def test_an_edited_modal_reads_back_as_the_new_arguments() -> None:
    original = json.dumps(ARGUMENTS)
    form = edit_form(SCHEMA, original)
    view = submission(build(form), seats="1", cabin="economy", refundable="true")

    result = read_form(form, SCHEMA, original, submitted_values(view))
    assert isinstance(result, EditedArguments)
    assert result.override == {"seats": 1, "cabin": "economy", "refundable": True}


def test_errors_are_keyed_by_block_id_for_slack() -> None:
    original = json.dumps(ARGUMENTS)
    form = edit_form(SCHEMA, original)
    view = submission(build(form), seats="", extras="{")

    result = read_form(form, SCHEMA, original, submitted_values(view))
    assert isinstance(result, dict)
    blocks = field_errors(result)
    assert blocks == {
        "arg:seats": "This cannot be emptied; enter a value.",
        "arg:extras": "Not valid JSON: Expecting property name enclosed in double quotes "
        "(line 1, column 2).",
    }
    assert set(blocks) <= set(inputs(build(form)))
    assert field_errors({"": "Enter a JSON object."}) == {"arg:": "Enter a JSON object."}
