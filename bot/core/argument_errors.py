"""The schema errors in edited arguments, one short message per form field.

Pure domain code: no Slack, no HTTP. :func:`errors_by_field` checks arguments against a tool's
parameter JSON schema with ``jsonschema`` and puts each error on the field it belongs to, in
words a person can act on. It knows the form only by its field names, so that
:mod:`bot.core.editing` can use it without an import cycle.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Final

from jsonschema.exceptions import SchemaError, ValidationError, best_match
from jsonschema.protocols import Validator
from jsonschema.validators import Draft202012Validator, validator_for

logger = logging.getLogger(__name__)

# Readable messages for the errors people meet most; jsonschema's own quote the whole value.
_MESSAGES: Final = {
    "minimum": "Must be at least {}.",
    "maximum": "Must be at most {}.",
    "exclusiveMinimum": "Must be more than {}.",
    "exclusiveMaximum": "Must be less than {}.",
    "minLength": "Must be at least {} characters.",
    "maxLength": "Must be at most {} characters.",
    "minItems": "Must have at least {} items.",
    "maxItems": "Must have at most {} items.",
    "pattern": "Must match the pattern {}.",
    "enum": "Must be one of: {}.",
    "type": "Must be of type {}.",
    "required": "Required.",
}


def errors_by_field(
    schema: Any, arguments: dict[str, Any], fields: Sequence[str], *, whole: bool
) -> dict[str, str]:
    """One message per field for what ``schema`` rejects in ``arguments``.

    ``fields`` names the form's fields in order; ``whole`` says the form is the single
    whole-arguments field (named ``""``). An error about an argument with no field of its own
    goes on the first field, prefixed with where it is. Messages are not shortened. A schema
    that is not a mapping checks nothing; one that jsonschema cannot use is logged, and the
    errors found until then are returned.
    """
    if not isinstance(schema, Mapping):
        return {}
    errors: dict[str, str] = {}
    try:
        for error in _validator(schema).iter_errors(arguments):
            name, message = _locate(error, fields, whole)
            errors.setdefault(name, message)
    except Exception:
        # A broken schema can make jsonschema fail in many ways (bad keyword values, a $ref
        # that resolves nowhere). It cannot be enforced here: log it and keep what was found;
        # the tool still checks its own input.
        logger.warning("cannot check edited arguments against the tool schema", exc_info=True)
    return errors


def _validator(schema: Mapping[str, Any]) -> Validator:
    document = dict(schema)
    cls: type[Validator] = Draft202012Validator
    if isinstance(document.get("$schema", ""), str):
        with warnings.catch_warnings():
            # an unknown $schema warns, then falls back to the default given
            warnings.simplefilter("ignore", DeprecationWarning)
            cls = validator_for(document, default=Draft202012Validator)
    try:
        cls.check_schema(document)
    except SchemaError as e:
        logger.warning("tool schema is not valid JSON Schema (%s); using draft 2020-12", e.message)
        cls = Draft202012Validator
    return cls(document)


def _locate(error: ValidationError, fields: Sequence[str], whole: bool) -> tuple[str, str]:
    """The field an error belongs to, and its message, prefixed with where when not obvious."""
    # anyOf/oneOf (a nullable field): say what the closest alternative wanted, and where
    error = best_match([error]) if error.context else error
    path = list(error.absolute_path)
    key = str(path[0]) if path else _missing_key(error)
    message = _describe(error)
    if not whole and key is not None and key in fields:
        return key, f"{_where(path)}: {message}" if len(path) > 1 else message
    where = _where(path) or key
    return ("" if whole else fields[0]), f"{where}: {message}" if where else message


def _where(path: list[Any]) -> str:
    """``tags[1].name`` for the path ``["tags", 1, "name"]``."""
    return "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" if index else str(part)
        for index, part in enumerate(path)
    )


def _missing_key(error: ValidationError) -> str | None:
    """The property a ``required`` or ``additionalProperties`` error is about."""
    instance = error.instance if isinstance(error.instance, dict) else {}
    if error.validator == "required" and isinstance(error.validator_value, list):
        return next((str(k) for k in error.validator_value if k not in instance), None)
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        properties = error.schema.get("properties") if isinstance(error.schema, Mapping) else None
        declared = properties if isinstance(properties, Mapping) else {}
        return next((k for k in instance if k not in declared), None)
    return None


def _describe(error: ValidationError) -> str:
    template = _MESSAGES.get(str(error.validator))
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    # draft 4's boolean exclusiveMinimum changes what "minimum" means: keep jsonschema's words
    draft4 = any(isinstance(schema.get(k), bool) for k in ("exclusiveMinimum", "exclusiveMaximum"))
    if template is None or draft4:
        return error.message
    return template.format(_show(error.validator_value))


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_show(item) for item in value)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
