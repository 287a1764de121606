"""What a Mistral request or response must look like, from what installed packages ship:
the ``mistralai`` SDK's own pydantic models (the SDK is generated from the official OpenAPI
spec), plus a check of our own that no top-level field is unknown (the models ignore extra
fields; the real API rejects them).

The official spec, where this machine has it (``$MISTRAL_OPENAPI_SPEC``, or
``../shared/specs/mistral-openapi.yaml`` beside the checkout), is checked as well by
``tests.standins.mistral``; these checks run everywhere, a user's clone included.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mistralai.client import models
from pydantic import BaseModel, ValidationError

# the stand-in's routes (tests.standins.mistral names them too; kept here to avoid a cycle)
START_PATH = "/v1/conversations"
APPEND_PATH = "/v1/conversations/{conversation_id}"
HISTORY_PATH = "/v1/conversations/{conversation_id}/history"
AGENT_PATH = "/v1/agents/{agent_id}"

SPEC_PATH_ENV = "MISTRAL_OPENAPI_SPEC"

#: Where the official spec lies on the machine this project is built on, relative to the
#: checkout; nothing the tests need may live there, it only adds a check.
_BESIDE_CHECKOUT = Path(__file__).resolve().parents[3] / "shared" / "specs" / "mistral-openapi.yaml"

#: (path template, method) -> the request body's model
REQUESTS: dict[tuple[str, str], type[BaseModel]] = {
    (START_PATH, "post"): models.ConversationRequest,
    (APPEND_PATH, "post"): models.ConversationAppendRequest,
    (AGENT_PATH, "patch"): models.UpdateAgentRequest,
}

#: The spec's names of the schemas the SDK's models render, where they differ.
SPEC_NAMES: dict[type[BaseModel], str] = {models.UpdateAgentRequest: "AgentUpdateRequest"}

#: (path template, method) -> the model of a 200 response
RESPONSES: dict[tuple[str, str], type[BaseModel]] = {
    (START_PATH, "post"): models.ConversationResponse,
    (APPEND_PATH, "post"): models.ConversationResponse,
    (HISTORY_PATH, "get"): models.ConversationHistory,
    (AGENT_PATH, "get"): models.Agent,
}


def spec_path() -> Path | None:
    """The official OpenAPI spec, if this machine has it; None otherwise."""
    given = os.environ.get(SPEC_PATH_ENV)
    if given:
        return Path(given)
    return _BESIDE_CHECKOUT if _BESIDE_CHECKOUT.is_file() else None


def _field_names(model: type[BaseModel]) -> set[str]:
    names: set[str] = set()
    for name, field in model.model_fields.items():
        names.add(field.alias or name)
    return names


def problems(model: type[BaseModel], body: Any) -> list[tuple[list[str | int], str]]:
    """Why ``body`` is not a valid ``model``: (location, message) pairs; none if it is."""
    if not isinstance(body, dict):
        return [([], f"expected a JSON object for {model.__name__}")]
    found: list[tuple[list[str | int], str]] = [
        ([key], f"unknown field {key!r} for {model.__name__}")
        for key in body
        if key not in _field_names(model)
    ]
    try:
        model.model_validate(body)
    except ValidationError as error:
        found += [(list(e["loc"]), e["msg"]) for e in error.errors()]
    # the SDK's unions of tools end in a catch-all (an unknown tool type parses as anything):
    # a function tool must still be one
    for index, tool in enumerate(body.get("tools") or [] if isinstance(body, dict) else []):
        if isinstance(tool, dict) and tool.get("type") == "function":
            try:
                models.FunctionTool.model_validate(tool)
            except ValidationError as error:
                found += [(["tools", index, *e["loc"]], e["msg"]) for e in error.errors()]
    return found


def name_of(model: type[BaseModel]) -> str:
    """The model's schema name, as the spec calls it."""
    return SPEC_NAMES.get(model, model.__name__)


def request_problems(path: str, method: str, body: Any) -> list[tuple[list[str | int], str]]:
    model = REQUESTS.get((path, method))
    return [] if model is None else problems(model, body)


def response_problems(
    path: str, method: str, status: int, body: Any
) -> list[tuple[list[str | int], str]]:
    model = RESPONSES.get((path, method)) if status == 200 else None
    return [] if model is None else problems(model, body)
