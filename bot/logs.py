"""Logging: one JSON object per line (or plain text), with the context of the work at hand.

What a log line is about (an approval, a conversation, a Slack team, channel and user) is
kept in a context variable, bound where a request starts being handled::

    with log_context(approval_id=request.id, team=thread.team_id, user=user_id):
        ...  # every line logged in here, and in whatever it awaits, carries those fields

``bind(...)`` sets the same fields for the rest of the current task instead. asyncio copies
the context into each task it creates, so a binding covers the tasks started under it, and
one task's binding never leaks into another's.

Secrets never reach the log: Slack tokens, ``Bearer`` credentials and the configured secret
values are masked in every message and exception text (:class:`Redactor`).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, Final, Literal

from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["json", "text"]

#: The context fields, in the order text lines show them.
FIELDS: Final = ("approval_id", "conversation_id", "team", "channel", "user")

#: What replaces a secret.
MASK: Final = "[redacted]"

#: The name of the handler :func:`configure_logging` installs (and replaces when called again).
HANDLER_NAME: Final = "approval-bot"

_context: ContextVar[Mapping[str, str]] = ContextVar(
    "approval_bot_log_context", default=MappingProxyType({})
)

#: Slack tokens (xoxb- bot, xoxp- user, xoxe. and xoxe- rotation, xapp- app-level, and the
#: other xox kinds) and HTTP bearer credentials, with what replaces each.
_TOKEN_PATTERNS: Final = (
    (re.compile(r"\bxox[a-z][.-][A-Za-z0-9.-]+"), MASK),
    (re.compile(r"\bxapp-[A-Za-z0-9-]+"), MASK),
    (re.compile(r"\b(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE), r"\g<1>" + MASK),
)


def _fields(
    approval_id: str | None,
    conversation_id: str | None,
    team: str | None,
    channel: str | None,
    user: str | None,
) -> dict[str, str]:
    given = zip(FIELDS, (approval_id, conversation_id, team, channel, user), strict=True)
    return {name: value for name, value in given if value}


@contextmanager
def log_context(
    *,
    approval_id: str | None = None,
    conversation_id: str | None = None,
    team: str | None = None,
    channel: str | None = None,
    user: str | None = None,
) -> Iterator[None]:
    """Add fields to every line logged inside the block (``None`` or empty: left as is)."""
    token = _context.set(
        {**_context.get(), **_fields(approval_id, conversation_id, team, channel, user)}
    )
    try:
        yield
    finally:
        _context.reset(token)


def bind(
    *,
    approval_id: str | None = None,
    conversation_id: str | None = None,
    team: str | None = None,
    channel: str | None = None,
    user: str | None = None,
) -> None:
    """Add fields to every line the current task logs from now on (and to the tasks it
    starts); inside a :func:`log_context` block, until the block ends."""
    _context.set({**_context.get(), **_fields(approval_id, conversation_id, team, channel, user)})


def current_context() -> dict[str, str]:
    """The fields bound now."""
    return dict(_context.get())


class ContextFilter(logging.Filter):
    """Copies the bound fields onto each record (as attributes, which the JSON formatter
    writes out as keys)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            if not hasattr(record, name):  # an explicit ``extra=`` wins
                setattr(record, name, value)
        return True


class Redactor(logging.Filter):
    """Masks tokens and the configured secrets in a record's message and exception text.

    It formats the message and the traceback itself, so that what a handler writes is the
    masked text, whichever formatter it has.
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        super().__init__()
        # longest first, so that a secret containing another is masked whole
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._formatter = logging.Formatter()

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        for pattern, replacement in _TOKEN_PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # arguments that do not fit the format: show both (masked) rather than let the
            # handler print them unmasked in its "Logging error" report
            message = f"{record.msg!r} % {record.args!r}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self._formatter.formatException(record.exc_info)
            # the formatters print exc_text when there is no exc_info to format again
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class TextFormatter(logging.Formatter):
    """``time level logger: message [field=value …]``, for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        bound = [f"{name}={getattr(record, name)}" for name in FIELDS if hasattr(record, name)]
        return f"{line} [{' '.join(bound)}]" if bound else line


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, the bound
    fields, and ``exception`` when there is one."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger", "exc_info": "exception"},
            timestamp="time",
        )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        # the library adds the time last; first reads better
        return {"time": log_data.pop("time"), **log_data}


def make_handler(
    fmt: LogFormat, secrets: Iterable[str | None] = (), stream: Any = None
) -> logging.Handler:
    """A handler writing ``fmt`` lines to ``stream`` (default: stderr), context added,
    secrets masked."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonLineFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(Redactor(secrets))
    return handler


def configure_logging(
    level: str, fmt: LogFormat = "json", secrets: Iterable[str | None] = ()
) -> None:
    """Send every log line to stderr as ``fmt``, at ``level`` and above; ``secrets``: values
    to mask wherever they appear (the tokens and keys from the settings). A second call
    replaces what the first installed; handlers installed by others are left alone."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == HANDLER_NAME:
            root.removeHandler(handler)
    handler = make_handler(fmt, secrets)
    handler.set_name(HANDLER_NAME)
    root.addHandler(handler)
    root.setLevel(level.upper())
