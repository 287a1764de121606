"""Policy conditions: CEL expressions over a tool call, compiled and type-checked at load.

CEL (the Common Expression Language) is a small, side-effect-free language built for
exactly this: it cannot loop forever, touch files or the network, or call Python. The
expressions run in Google's C++ implementation through ``cel-expr-python``, whose checker
rejects unknown names and mistyped operations when the config loads, so a typo stops
start-up instead of silently never matching.

What an expression can read::

    tool                  string        the tool's name
    args                  map           the call's arguments (JSON object; {} if not one)
    requester.id          string        the Slack user who asked
    requester.is_admin    bool          whether they are one of the config's admins
    requester.usergroups  list(string)  ids of the user groups they belong to
    channel.id            string        the Slack channel of the conversation
    channel.is_dm         bool          whether it is a direct message with the bot
    client.name           string        the HTTP API client that asked ("" in Slack)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

import cel_expr_python.cel as cel

_T = cel.Type

#: The variables an expression may use, with their CEL types.
VARIABLES: Final[dict[str, cel.Type]] = {
    "tool": _T.STRING,
    "args": _T.Map(_T.STRING, _T.DYN),
    "requester.id": _T.STRING,
    "requester.is_admin": _T.BOOL,
    "requester.usergroups": _T.List(_T.STRING),
    "channel.id": _T.STRING,
    "channel.is_dm": _T.BOOL,
    "client.name": _T.STRING,
}

_ENV: Final = cel.NewEnv(variables=VARIABLES)


class ConditionError(ValueError):
    """An expression that does not compile, or whose result is not true/false."""


@dataclass(frozen=True)
class Facts:
    """What a condition is evaluated against: one call, who asked, and where."""

    tool: str
    arguments: str  # as the model sent it
    requester_id: str
    requester_is_admin: bool = False
    requester_usergroups: frozenset[str] = field(default_factory=frozenset)
    channel_id: str = ""
    client: str = ""  # the HTTP API client that asked, "" for a Slack conversation

    def activation(self) -> dict[str, Any]:
        try:
            args = json.loads(self.arguments) if self.arguments else {}
        except ValueError:
            args = {}
        return {
            "tool": self.tool,
            "args": args if isinstance(args, dict) else {},
            "requester.id": self.requester_id,
            "requester.is_admin": self.requester_is_admin,
            "requester.usergroups": sorted(self.requester_usergroups),
            "channel.id": self.channel_id,
            "channel.is_dm": self.channel_id.startswith("D"),
            "client.name": self.client,
        }


@dataclass(frozen=True)
class Result:
    """A condition's value, or why it has none (a missing argument, a wrong type…)."""

    value: bool
    error: str | None = None


class Condition:
    """A compiled, type-checked expression."""

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._expression = _ENV.compile(source)
        except RuntimeError as error:
            raise ConditionError(_checker_message(str(error))) from error
        result_type = self._expression.return_type()
        if result_type != _T.BOOL and result_type != _T.DYN:
            kind = result_type.name().lower()
            article = "an" if kind[:1] in "aeiou" else "a"
            raise ConditionError(f"the expression gives {article} {kind}, not true or false")

    def evaluate(self, facts: Facts) -> Result:
        """Evaluate against ``facts``. An error is returned, never raised: the caller decides
        which way a condition that cannot be evaluated falls (the safe way)."""
        try:
            value = self._expression.eval(data=facts.activation())
        except (RuntimeError, TypeError, ValueError, OverflowError) as error:
            return Result(False, f"{type(error).__name__}: {error}")
        if value.type() == _T.ERROR:
            return Result(False, str(value.value()))
        plain = value.plain_value()
        if not isinstance(plain, bool):
            return Result(False, f"the expression gave {plain!r}, not true or false")
        return Result(plain)

    def __repr__(self) -> str:
        return f"Condition({self.source!r})"


def _checker_message(text: str) -> str:
    """The checker's first error line, without the status-code prefix and the caret art."""
    lines = [line for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else text
    for prefix in ("INVALID_ARGUMENT: ", "ERROR: "):
        first = first.removeprefix(prefix)
    return first.replace("<input>:", "at ").removesuffix(" (in container '')").strip()
