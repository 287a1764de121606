"""Editing a tool call's arguments before approving it.

Pure domain code: no Slack, no HTTP. :func:`edit_form` turns a tool's parameter JSON schema and
the arguments the model sent into an :class:`EditForm`, one typed :class:`FormField` per
argument; :func:`read_form` reads the submitted texts back, checks the result against the schema
(:mod:`bot.core.argument_errors`) and returns :class:`EditedArguments`, or one short message
per field.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from bot.core.argument_errors import errors_by_field
from bot.errors import BotError

FieldKind = Literal["text", "integer", "number", "boolean", "choice", "json"]

#: Slack's plain_text_input max_length: a longer value cannot be shown for editing.
MAX_INPUT_CHARS: Final = 3000
#: A modal has at most 100 blocks; the rest is room for the intro and the kept-argument notes.
MAX_FIELDS: Final = 90
#: A longer (or empty) property name cannot make a field's block id: edit the whole object.
MAX_NAME_CHARS: Final = 200
MAX_LABEL_CHARS: Final = 150
MAX_HINT_CHARS: Final = 300
MAX_MESSAGE_CHARS: Final = 150
#: A static_select holds at most 100 options of at most 75 characters.
MAX_CHOICES: Final = 100
MAX_CHOICE_CHARS: Final = 75
MULTILINE_AFTER_CHARS: Final = 80
WHOLE_LABEL: Final = "Arguments (JSON)"

_SIMPLE_KINDS: Final[Mapping[str, FieldKind]] = {
    "string": "text",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
}
_INTEGER_RE: Final = re.compile(r"[+-]?[0-9]+")
_NUMBER_RE: Final = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
#: The value of an argument the model did not send (``None`` is JSON null).
_ABSENT: Final[Any] = object()


class NotEditable(BotError):
    """The call's arguments cannot be edited in a form; the message says why."""


@dataclass(frozen=True)
class FormField:
    """One editable argument. ``name`` is ``""`` for the whole-arguments JSON field."""

    name: str
    kind: FieldKind
    label: str
    hint: str | None
    required: bool
    #: the model's value as text; ``None`` when it sent none (or null, for a nullable field)
    initial: str | None
    choices: tuple[str, ...] = ()
    multiline: bool = False
    nullable: bool = False


@dataclass(frozen=True)
class EditForm:
    """The fields to show; ``kept`` names arguments too long to edit, kept as the model sent."""

    fields: tuple[FormField, ...]
    kept: tuple[str, ...] = ()
    whole: bool = False


@dataclass(frozen=True)
class EditedArguments:
    """The arguments the tool will run with, and the keys that differ from the model's."""

    arguments: dict[str, Any]
    override: dict[str, Any]


class _FieldError(Exception):
    """A submitted text that cannot become the field's value; the message is shown inline."""


# --------------------------------------------------------------------------- the form


def edit_form(schema: Mapping[str, Any] | None, arguments: str) -> EditForm:
    """The form for editing ``arguments`` (the model's JSON text) under ``schema``.

    Raises :class:`NotEditable` when the arguments are not a JSON object, or when no field
    could hold them (the whole object, or every single argument, is too long).
    """
    given = _parse_object(arguments)
    properties = _mapping(schema, "properties")
    names = [*properties, *(name for name in given if name not in properties)]
    odd_name = any(not name or len(name) > MAX_NAME_CHARS for name in names)
    if not properties or len(names) > MAX_FIELDS or odd_name:
        return _whole_form(given)
    required = schema.get("required") if schema else None
    fields: list[FormField] = []
    kept: list[str] = []
    for name in names:
        is_required = isinstance(required, list) and name in required
        field = _field(schema or {}, name, properties.get(name), is_required, given)
        if field is None:
            kept.append(name)
        else:
            fields.append(field)
    if not fields:
        raise NotEditable("every argument is too long to edit in a form")
    return EditForm(tuple(fields), tuple(kept))


def _parse_object(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments)
    except (ValueError, RecursionError) as e:
        raise NotEditable("the arguments are not valid JSON") from e
    if not isinstance(value, dict):
        raise NotEditable("the arguments are not a JSON object")
    return value


def _mapping(schema: Any, key: str) -> Mapping[str, Any]:
    value = schema.get(key) if isinstance(schema, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _whole_form(given: dict[str, Any]) -> EditForm:
    initial = _pretty(given)
    if len(initial) > MAX_INPUT_CHARS:
        raise NotEditable(
            f"the arguments are too long to edit in Slack ({len(initial)} characters as JSON, "
            f"at most {MAX_INPUT_CHARS})"
        )
    field = FormField("", "json", WHOLE_LABEL, None, True, initial, multiline=True)
    return EditForm((field,), whole=True)


def _field(
    root: Mapping[str, Any], name: str, prop: Any, required: bool, given: dict[str, Any]
) -> FormField | None:
    """The field for one argument, or ``None`` when its value is too long to edit."""
    prop = prop if isinstance(prop, Mapping) else {}
    kind, choices, nullable = _classify(root, prop)
    value = given.get(name, _ABSENT)
    if (
        value is not _ABSENT
        and not (value is None and nullable)
        and not _fits(kind, choices, value)
    ):
        # A value the kind cannot show (5 for a string): show it as JSON for the person to fix.
        kind = "text" if kind == "choice" and isinstance(value, str) else "json"
    initial = None if value is None and nullable else _initial_text(kind, value)
    if initial is not None and len(initial) > MAX_INPUT_CHARS:
        return None
    title, description = prop.get("title"), prop.get("description")
    return FormField(
        name=name,
        kind=kind,
        label=(title if isinstance(title, str) and title.strip() else name)[:MAX_LABEL_CHARS],
        hint=description[:MAX_HINT_CHARS] if isinstance(description, str) and description else None,
        required=required,
        initial=initial,
        choices=choices if kind == "choice" else (),
        multiline=kind == "json"
        or (initial is not None and (len(initial) > MULTILINE_AFTER_CHARS or "\n" in initial)),
        nullable=nullable,
    )


def _classify(
    root: Mapping[str, Any], prop: Mapping[str, Any]
) -> tuple[FieldKind, tuple[str, ...], bool]:
    """The kind, the choices and whether null is accepted, from a property's schema."""
    prop = _resolve(root, prop)
    options = prop.get("anyOf") or prop.get("oneOf")
    types = prop.get("type")
    if isinstance(options, list):
        alternatives = [_resolve(root, option) for option in options]
    elif isinstance(types, list):
        alternatives = [{**prop, "type": kind} for kind in types]
    else:
        alternatives = [prop]
    branches = [branch for branch in alternatives if branch.get("type") != "null"]
    nullable = len(branches) < len(alternatives)
    if len(branches) != 1:
        return "json", (), nullable
    kind, choices, null_choice = _branch_kind(branches[0])
    return kind, choices, nullable or null_choice


def _branch_kind(node: Mapping[str, Any]) -> tuple[FieldKind, tuple[str, ...], bool]:
    enum = node.get("enum")
    if isinstance(enum, list) and enum and all(v is None or isinstance(v, str) for v in enum):
        choices = tuple(dict.fromkeys(v for v in enum if v is not None))
        fits = 0 < len(choices) <= MAX_CHOICES and all(
            0 < len(v) <= MAX_CHOICE_CHARS for v in choices
        )
        return ("choice", choices, None in enum) if fits else ("text", (), None in enum)
    kind = node.get("type")
    return (_SIMPLE_KINDS.get(kind, "json") if isinstance(kind, str) else "json"), (), False


def _resolve(root: Mapping[str, Any], node: Any) -> Mapping[str, Any]:
    """Follow local ``$ref`` pointers (``#/$defs/Color``) so that the target decides the kind."""
    for _ in range(8):  # a bound, since refs can loop
        ref = node.get("$ref") if isinstance(node, Mapping) else None
        if not isinstance(ref, str) or not ref.startswith("#"):
            break
        target: Any = root
        for part in filter(None, ref[1:].split("/")):
            key = part.replace("~1", "/").replace("~0", "~")
            target = target.get(key) if isinstance(target, Mapping) else None
        node = target
    return node if isinstance(node, Mapping) else {}


def _fits(kind: FieldKind, choices: tuple[str, ...], value: Any) -> bool:
    if kind in ("text", "choice"):
        return isinstance(value, str) and (kind == "text" or value in choices)
    if kind == "integer":
        return type(value) is int
    if kind == "number":
        return type(value) in (int, float) and math.isfinite(value)
    return kind == "json" or isinstance(value, bool)


def _initial_text(kind: FieldKind, value: Any) -> str | None:
    if value is _ABSENT:
        return None
    if kind in ("text", "choice"):
        return str(value)
    if kind == "boolean":
        return "true" if value else "false"
    return _pretty(value) if kind == "json" else json.dumps(value)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


# --------------------------------------------------------------------------- reading it back


def read_form(
    form: EditForm,
    schema: Mapping[str, Any] | None,
    original: str,
    values: Mapping[str, str | None],
) -> EditedArguments | dict[str, str]:
    """Read the submitted ``values`` (field name -> raw text) back into arguments.

    Returns :class:`EditedArguments`, or field name -> short message to show inline (``""``
    for the whole-arguments field). Never raises on bad input.
    """
    try:
        given = _parse_object(original)
    except NotEditable as e:
        return {form.fields[0].name if form.fields else "": f"Cannot edit these: {e}."}
    errors: dict[str, str] = {}
    arguments = dict(given)  # kept arguments stay as the model sent them
    for field in form.fields:
        old = _ABSENT if form.whole else given.get(field.name, _ABSENT)
        try:
            value = _read_field(field, old, values.get(field.name))
        except _FieldError as e:
            errors[field.name] = str(e)[:MAX_MESSAGE_CHARS]
            continue
        if form.whole:
            arguments = value
        elif value is not _ABSENT:
            arguments[field.name] = value
    if form.whole:
        missing = [] if errors else [name for name in given if name not in arguments]
        if missing:
            # The SDK merges override_args over the model's arguments: no key can be removed.
            errors[""] = (
                f"{json.dumps(missing[0])[:80]} is missing: "
                "keys the agent sent can be changed but not removed."
            )
        if errors:
            return errors  # nothing sensible to validate
    names = [field.name for field in form.fields]
    for name, message in errors_by_field(schema, arguments, names, whole=form.whole).items():
        errors.setdefault(name, message[:MAX_MESSAGE_CHARS])
    if errors:
        return errors
    override = {k: v for k, v in arguments.items() if k not in given or not _same(v, given[k])}
    return EditedArguments(arguments, override)


def _read_field(field: FormField, old: Any, raw: Any) -> Any:
    """The field's new value, or ``_ABSENT`` to leave the key out; raises ``_FieldError``."""
    if not isinstance(raw, str) or not (raw if field.kind == "text" else raw.strip()):
        if field.name == "" and old is _ABSENT:  # the whole-arguments field
            raise _FieldError("Enter the arguments as a JSON object.")
        if old is _ABSENT:
            if field.required and not field.nullable:
                raise _FieldError("Required.")
            return None if field.required else _ABSENT
        if old == "" and field.kind == "text":
            return ""  # the model's empty string showed as an empty field: unchanged
        if field.nullable:
            return None
        # The SDK merges override_args over the model's arguments, so a key the model sent
        # cannot be removed: an emptied field must become null, or be refused.
        raise _FieldError("This cannot be emptied; enter a value.")
    return _PARSERS[field.kind](field, raw)


def _parse_whole(field: FormField, raw: str) -> Any:
    value = _loads(raw)
    if not isinstance(value, dict):
        raise _FieldError("Enter a JSON object: the arguments between { and }.")
    return value


def _parse_option(field: FormField, raw: str) -> str | bool:
    options = field.choices if field.kind == "choice" else ("true", "false")
    if raw.strip() not in options:
        raise _FieldError(f"Choose one of: {', '.join(options)}."[:MAX_MESSAGE_CHARS])
    return raw.strip() if field.kind == "choice" else raw.strip() == "true"


def _parse_number(field: FormField, raw: str) -> int | float:
    text = raw.strip()
    # Slack caps the input at 3000 characters; Python converts at most 4300 digits.
    if _INTEGER_RE.fullmatch(text) and len(text) <= MAX_INPUT_CHARS:
        return int(text)
    if field.kind == "number" and _NUMBER_RE.fullmatch(text) and math.isfinite(float(text)):
        return float(text)
    raise _FieldError("Enter a whole number." if field.kind == "integer" else "Enter a number.")


def _reject_constant(name: str) -> Any:
    raise _FieldError(f"Not valid JSON: {name} is not a JSON value.")


def _loads(raw: str) -> Any:
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise _FieldError(f"Not valid JSON: {e.msg} (line {e.lineno}, column {e.colno}).") from e
    except RecursionError as e:
        raise _FieldError("Not valid JSON: nested too deeply.") from e


_PARSERS: Final[Mapping[FieldKind, Callable[[FormField, str], Any]]] = {
    "text": lambda field, raw: raw,
    "choice": _parse_option,
    "boolean": _parse_option,
    "integer": _parse_number,
    "number": _parse_number,
    "json": lambda field, raw: _parse_whole(field, raw) if field.name == "" else _loads(raw),
}


def _same(new: Any, old: Any) -> bool:
    # Canonical JSON, not ==: in Python True == 1 and 1 == 1.0, but the tool would see a change.
    return json.dumps(new, sort_keys=True) == json.dumps(old, sort_keys=True)
