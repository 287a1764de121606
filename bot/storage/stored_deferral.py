"""The stored form of a deferral (``DeferredToolCallsException.to_dict()``): each call's
arguments once.

The SDK's dict holds every deferred call's arguments three times (the call, its
``function_call``, and the conversation output it came from), and the request's own record
holds them a fourth time, as the text approvers see. With 10 KB of arguments that is 40 KB
of Redis per pending request. The stored form replaces each copy that equals the request's
own text (or the deferred call's arguments) with a reference, and :func:`expand` puts them
back, so that ``from_dict()`` gets exactly what ``to_dict()`` gave. A deferral stored before
this form (schema 3) has no references and reads unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

#: Stands for the request's own text of the call's arguments.
CALL_TEXT: Final = {"$same_as": "call"}
#: Stands for the deferred call's ``arguments``, whatever their type.
DEFERRED: Final = {"$same_as": "deferred"}


def compact(deferral: Mapping[str, Any], texts: Mapping[str, str]) -> dict[str, Any]:
    """``deferral`` with repeated arguments replaced by references; ``texts``: the
    request's text of each call's arguments, by tool call id."""
    stored = copy.deepcopy(dict(deferral))
    arguments: dict[str, Any] = {}
    for call in stored.get("deferred_calls") or []:
        tool_call_id = call.get("tool_call_id")
        original = call.get("arguments")
        arguments[tool_call_id] = original
        function_call = call.get("function_call") or {}
        if "arguments" in function_call and _same(function_call["arguments"], original):
            function_call["arguments"] = dict(DEFERRED)
        if tool_call_id in texts and _same(original, texts[tool_call_id]):
            call["arguments"] = dict(CALL_TEXT)
    for entry in stored.get("outputs") or []:
        tool_call_id = entry.get("tool_call_id") if isinstance(entry, dict) else None
        if tool_call_id in arguments and "arguments" in entry:
            if _same(entry["arguments"], arguments[tool_call_id]):
                entry["arguments"] = dict(DEFERRED)
    return stored


def expand(stored: Mapping[str, Any], texts: Mapping[str, str]) -> dict[str, Any]:
    """The deferral as ``to_dict()`` gave it, from its stored form."""
    deferral = copy.deepcopy(dict(stored))
    arguments: dict[str, Any] = {}
    for call in deferral.get("deferred_calls") or []:
        tool_call_id = call.get("tool_call_id")
        if call.get("arguments") == CALL_TEXT:
            call["arguments"] = texts[tool_call_id]
        arguments[tool_call_id] = call.get("arguments")
        function_call = call.get("function_call") or {}
        if function_call.get("arguments") == DEFERRED:
            function_call["arguments"] = copy.deepcopy(call["arguments"])
    for entry in deferral.get("outputs") or []:
        if isinstance(entry, dict) and entry.get("arguments") == DEFERRED:
            entry["arguments"] = copy.deepcopy(arguments[str(entry.get("tool_call_id"))])
    return deferral


def _same(left: Any, right: Any) -> bool:
    return type(left) is type(right) and left == right
