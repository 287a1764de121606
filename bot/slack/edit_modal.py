"""The "Edit, then approve" modal: a :class:`bot.core.editing.EditForm` as Block Kit, and back.

Pure builders and readers, no I/O. Labels, hints and initial values come from the tool's schema
and the model's arguments, so they are untrusted: they only ever go into ``plain_text`` objects
and input values (which cannot mention anyone); everything shown as mrkdwn is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    InputBlock,
    InputInteractiveElement,
    MarkdownTextObject,
    NumberInputElement,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.core.editing import MAX_INPUT_CHARS, EditForm, FormField
from bot.slack.blocks import MAX_MODAL_BLOCKS, section
from bot.slack.mrkdwn import escape

EDIT_MODAL: Final = "approval_edit_modal"
#: A field's block_id is this prefix and the argument's name ("arg:" alone in whole mode).
FIELD_BLOCK_PREFIX: Final = "arg:"
FIELD_ACTION: Final = "value"
MAX_PRIVATE_METADATA_CHARS: Final = 3000
BOOLEAN_OPTIONS: Final = ("true", "false")


def edit_modal(
    form: EditForm,
    *,
    tool_name: str,
    requester_id: str,
    private_metadata: str,
    note: str | None = None,
) -> View:
    """The modal that edits one call's arguments; submitting it approves the call.

    Raises ``ValueError`` when ``private_metadata`` is longer than Slack keeps, or when the
    form needs more blocks than a modal holds.
    """
    if len(private_metadata) > MAX_PRIVATE_METADATA_CHARS:
        raise ValueError(
            f"private_metadata is {len(private_metadata)} characters; "
            f"Slack keeps at most {MAX_PRIVATE_METADATA_CHARS}"
        )
    # a backtick in the name would end the inline code early
    tool = escape(tool_name[:200]).replace("`", "'")
    blocks: list[Block] = [
        section(
            f"Edit the arguments of `{tool}` requested by <@{requester_id}>. "
            "Submitting approves the call with your arguments."
        )
    ]
    if note:
        blocks.append(_context(escape(note[:2000])))
    blocks.extend(_input(field) for field in form.fields)
    blocks.extend(
        _context(f"`{escape(name)}`: too long to edit here; kept as the agent sent it.")
        for name in form.kept
    )
    if len(blocks) > MAX_MODAL_BLOCKS:
        raise ValueError(f"the form needs {len(blocks)} blocks; a modal holds {MAX_MODAL_BLOCKS}")
    return View(
        type="modal",
        callback_id=EDIT_MODAL,
        private_metadata=private_metadata,
        title=PlainTextObject(text="Edit, then approve"),
        submit=PlainTextObject(text="Approve"),
        close=PlainTextObject(text="Cancel"),
        blocks=blocks,
    )


def _context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=text, verbatim=True)])


def _input(field: FormField) -> InputBlock:
    return InputBlock(
        block_id=FIELD_BLOCK_PREFIX + field.name,
        label=PlainTextObject(text=field.label),
        hint=PlainTextObject(text=field.hint) if field.hint else None,
        optional=not field.required,
        element=_element(field),
    )


def _element(field: FormField) -> InputInteractiveElement:
    # Slack rejects an empty initial value: leave it out instead.
    initial = field.initial or None
    if field.kind in ("integer", "number"):
        return NumberInputElement(
            action_id=FIELD_ACTION,
            is_decimal_allowed=field.kind == "number",
            initial_value=initial,
        )
    if field.kind in ("boolean", "choice"):
        values = BOOLEAN_OPTIONS if field.kind == "boolean" else field.choices
        options = [Option(value=value, text=value) for value in values]
        return StaticSelectElement(
            action_id=FIELD_ACTION,
            placeholder=PlainTextObject(text="Choose…"),
            options=options,
            initial_option=next((o for o in options if o.value == initial), None),
        )
    return PlainTextInputElement(
        action_id=FIELD_ACTION,
        initial_value=initial,
        multiline=field.multiline or field.kind == "json",
        max_length=MAX_INPUT_CHARS,
    )


def submitted_values(view: Mapping[str, Any]) -> dict[str, str | None]:
    """Field name -> submitted text, from a ``view_submission`` payload's ``view``.

    Text and number inputs give their ``value``, selects their selected option's value; a
    field whose state is missing or malformed gives ``None``. Never raises.
    """
    state = view.get("state") if isinstance(view, Mapping) else None
    blocks = state.get("values") if isinstance(state, Mapping) else None
    if not isinstance(blocks, Mapping):
        return {}
    return {
        block_id.removeprefix(FIELD_BLOCK_PREFIX): _value(actions)
        for block_id, actions in blocks.items()
        if isinstance(block_id, str) and block_id.startswith(FIELD_BLOCK_PREFIX)
    }


def _value(actions: Any) -> str | None:
    element = actions.get(FIELD_ACTION) if isinstance(actions, Mapping) else None
    if not isinstance(element, Mapping):
        return None
    if "selected_option" in element:
        option = element["selected_option"]
        value = option.get("value") if isinstance(option, Mapping) else None
    else:
        value = element.get("value")
    return value if isinstance(value, str) else None


def field_errors(errors: Mapping[str, str]) -> dict[str, str]:
    """``read_form``'s field -> message errors, keyed by block_id for ``response_action``."""
    return {FIELD_BLOCK_PREFIX + name: message for name, message in errors.items()}
