"""A local stand-in for the Mistral Conversations API, for tests.

``MistralStandIn`` is an aiohttp server bound to ``127.0.0.1`` on a free port that speaks
enough of the Conversations API for the real SDK (``mistralai.Mistral(server_url=...)``
and ``client.beta.conversations.run_async``) to work against it, including the
tool-call deferral flow (client-side ``requires_confirmation`` functions and server-side
``confirmation_status="pending"`` calls answered with ``tool_confirmations``).

It also emulates the two Agents endpoints ``RunContext(agent_id=...)`` uses (GET and
PATCH ``/v1/agents/{agent_id}``); agents are created with
:meth:`MistralStandIn.create_agent`, and a conversation started with ``agent_id`` takes
its model, tools and instructions from the agent.

Every request body is validated against the SDK's own model of it (tests.standins.
mistral_models: what the installed ``mistralai`` ships, everywhere) and, where this machine
has the official OpenAPI spec, against the request schema the spec gives for the operation;
every response body likewise against the matching response model and schema. Contract
violations are collected in ``standin.errors`` so a test can end with
``assert standin.errors == []``.

The "model" is a script: a callable receiving a :class:`ModelTurn` and returning output
entries built with :func:`message` and :func:`function_call`.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import inspect
import json
import re
import secrets
import string
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from urllib.parse import quote

import yaml
from aiohttp import web
from jsonschema.exceptions import (  # type: ignore[import-untyped,unused-ignore]
    ValidationError,
    best_match,
)
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.standins import mistral_models
from tests.standins.mistral_models import spec_path

__all__ = [
    "DEFAULT_MODEL",
    "MistralStandIn",
    "ModelTurn",
    "RecordedRequest",
    "Script",
    "function_call",
    "message",
    "scripted",
    "travel_agent_script",
]

DEFAULT_MODEL = "mistral-medium-latest"
_SPEC_URI = "urn:mistral-openapi"

START_PATH = "/v1/conversations"
APPEND_PATH = "/v1/conversations/{conversation_id}"
HISTORY_PATH = "/v1/conversations/{conversation_id}/history"
AGENT_PATH = "/v1/agents/{agent_id}"
MODELS_PATH = "/v1/models"
MODEL_PATH = "/v1/models/{model_id}"
CONNECTOR_TOOLS_PATH = "/v1/connectors/{connector_id_or_name}/tools"

Entry = dict[str, Any]
ConfirmationStatus = Literal["pending", "allowed", "denied"]


# --------------------------------------------------------------------------- spec


@functools.cache
def load_spec() -> dict[str, Any]:
    """Parse the official OpenAPI spec once per process; ``{}`` where this machine has none
    (then only the SDK's models check requests and responses: tests.standins.mistral_models)."""
    path = spec_path()
    if path is None:
        return {}
    with path.open("rb") as fh:
        spec: dict[str, Any] = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if not str(spec.get("openapi", "")).startswith("3.1"):
        raise RuntimeError(f"expected an OpenAPI 3.1 spec, got {spec.get('openapi')!r}")
    return spec


@functools.cache
def _registry() -> Registry[Any]:
    resource = Resource.from_contents(load_spec(), default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(_SPEC_URI, resource)
    return registry


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _schema_pointer(path: str, method: str, status: int | None) -> str | None:
    """JSON pointer to the request schema (status None) or a response schema, if any."""
    operation = load_spec().get("paths", {}).get(path, {}).get(method)
    if operation is None:
        return None
    if status is None:
        holder = operation.get("requestBody")
        prefix = f"/paths/{_escape(path)}/{method}/requestBody"
    else:
        holder = operation.get("responses", {}).get(str(status))
        prefix = f"/paths/{_escape(path)}/{method}/responses/{status}"
    if holder is None or "schema" not in holder.get("content", {}).get("application/json", {}):
        return None
    return f"{prefix}/content/application~1json/schema"


@functools.cache
def _validator(path: str, method: str, status: int | None) -> tuple[OAS31Validator, str] | None:
    """A cached validator (and the schema's name) for an operation's request or response."""
    pointer = _schema_pointer(path, method, status)
    if pointer is None:
        return None
    schema = _registry().resolver(_SPEC_URI).lookup(f"{_SPEC_URI}#{pointer}").contents
    name = str(schema.get("$ref", pointer)).rsplit("/", 1)[-1]
    ref = {"$ref": f"{_SPEC_URI}#{quote(pointer)}"}
    return OAS31Validator(ref, registry=_registry(), format_checker=oas31_format_checker), name


def _describe(errors: list[ValidationError], schema_name: str) -> str:
    worst = best_match(errors)
    where = "/".join(str(p) for p in worst.absolute_path) or "<root>"
    return f"not a valid {schema_name}: at {where}: {worst.message}"


def validation_error_body(detail: Iterable[tuple[list[str | int], str]]) -> dict[str, Any]:
    """An ``HTTPValidationError`` body from ``(loc, msg)`` pairs."""
    return {"detail": [{"loc": loc, "msg": msg, "type": "value_error"} for loc, msg in detail]}


# --------------------------------------------------------------------------- entries


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def _tool_call_id() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(9))


_ID_PREFIX = {
    "message.input": "msg",
    "message.output": "msg",
    "function.call": "fc",
    "function.result": "fr",
    "tool.execution": "te",
    "agent.handoff": "ah",
}


def message(text: str) -> Entry:
    """A ``message.output`` entry (the stand-in fills ``model`` from the conversation)."""
    now = _now()
    return {
        "object": "entry",
        "type": "message.output",
        "created_at": now,
        "completed_at": now,
        "agent_id": None,
        "model": None,
        "id": _new_id("msg"),
        "role": "assistant",
        "content": text,
    }


def function_call(
    name: str,
    arguments: dict[str, Any] | str,
    *,
    tool_call_id: str | None = None,
    confirmation_status: ConfirmationStatus | None = None,
) -> Entry:
    """A ``function.call`` entry; ``arguments`` is sent as a JSON string.

    ``confirmation_status="pending"`` marks a server-side call awaiting the user's
    confirmation (the SDK defers it with ``SERVER_SIDE_CONFIRMATION_REQUIRED``).
    """
    if confirmation_status not in (None, "pending", "allowed", "denied"):
        raise ValueError(f"invalid confirmation_status {confirmation_status!r}")
    now = _now()
    entry: Entry = {
        "object": "entry",
        "type": "function.call",
        "created_at": now,
        "completed_at": now,
        "agent_id": None,
        "model": None,
        "id": _new_id("fc"),
        "tool_call_id": tool_call_id or _tool_call_id(),
        "name": name,
        "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
    }
    if confirmation_status is not None:
        entry["confirmation_status"] = confirmation_status
    return entry


def _entry_type(entry: Entry) -> str | None:
    explicit = entry.get("type")
    if isinstance(explicit, str):
        return explicit
    if "role" in entry:
        return "message.input"
    if "result" in entry:
        return "function.result"
    if "name" in entry and "arguments" in entry:
        return "function.call"
    if "content" in entry:
        return "message.output"
    return None


def _normalize_inputs(inputs: Any) -> list[Entry]:
    """Input entries as the server stores them: typed, with ids and timestamps."""
    if inputs is None:
        return []
    if isinstance(inputs, str):
        inputs = [{"type": "message.input", "role": "user", "content": inputs}]
    normalized: list[Entry] = []
    for raw in inputs:
        entry = copy.deepcopy(raw)
        kind = _entry_type(entry)
        now = _now()
        entry.setdefault("object", "entry")
        if kind is not None:
            entry.setdefault("type", kind)
        entry.setdefault("created_at", now)
        entry.setdefault("completed_at", now)
        entry.setdefault("id", _new_id(_ID_PREFIX.get(kind or "", "entry")))
        normalized.append(entry)
    return normalized


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(c.get("text", "") for c in content if isinstance(c, dict))
    return ""


# --------------------------------------------------------------------------- scripts


@dataclass
class ModelTurn:
    """What the scripted model sees for one start/append request."""

    conversation_id: str
    request: dict[str, Any]
    inputs: list[Entry]
    history: list[Entry]
    tools: list[dict[str, Any]]
    tool_confirmations: list[dict[str, Any]]
    instructions: str | None
    model: str | None = None
    agent_id: str | None = None

    def last_user_text(self) -> str | None:
        """Content of the newest user ``message.input`` among inputs, then history."""
        for entry in [*reversed(self.inputs), *reversed(self.history)]:
            if entry.get("type") == "message.input" and entry.get("role") == "user":
                return _text_of(entry.get("content"))
        return None

    def function_results(self) -> list[Entry]:
        """The ``function.result`` entries among this request's inputs."""
        return [e for e in self.inputs if e.get("type") == "function.result"]

    def find_call(self, tool_call_id: str) -> Entry | None:
        """The ``function.call`` entry (history or inputs) with this tool_call_id."""
        for entry in [*self.history, *self.inputs]:
            if entry.get("type") == "function.call" and entry.get("tool_call_id") == tool_call_id:
                return entry
        return None


ScriptResult = list[Entry] | Awaitable[list[Entry]]


class Script(Protocol):
    """The scripted model: returns (or resolves to) the output entries of one turn."""

    def __call__(self, turn: ModelTurn, /) -> ScriptResult: ...


_CITY = r"([A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)*)"
_WEATHER_RE = re.compile(r"(?i:weather\s+in)\s+" + _CITY)
_BOOK_TO_RE = re.compile(r"\bto\s+" + _CITY)


def travel_agent_script(turn: ModelTurn) -> list[Entry]:
    """Default script.

    * function results among inputs -> ``message("Done: " + "; ".join(results))``;
    * only ``tool_confirmations`` (server-side calls) -> ``message("Done: gmail_search allowed")``;
    * "weather in <City>" -> ``get_weather(city=City)``;
    * "book" and "to <City>" -> ``book_flight(destination=City, date="2026-12-01")``;
    * anything else -> ``message("You said: " + text)``.
    """
    results = turn.function_results()
    if results:
        return [message("Done: " + "; ".join(str(r.get("result", "")) for r in results))]
    if turn.tool_confirmations:
        parts = []
        for tc in turn.tool_confirmations:
            call = turn.find_call(str(tc.get("tool_call_id")))
            name = call["name"] if call else tc.get("tool_call_id")
            parts.append(f"{name} {'allowed' if tc.get('confirmation') == 'allow' else 'denied'}")
        return [message("Done: " + "; ".join(parts))]
    text = turn.last_user_text() or ""
    if weather := _WEATHER_RE.search(text):
        return [function_call("get_weather", {"city": weather.group(1)})]
    if "book" in text.lower() and (dest := _BOOK_TO_RE.search(text)):
        return [function_call("book_flight", {"destination": dest.group(1), "date": "2026-12-01"})]
    return [message("You said: " + text)]


def scripted(*steps: list[Entry] | Script) -> Script:
    """A script answering request N with ``steps[N]`` (a list of outputs or a script).

    More requests than steps fail the request with an AssertionError recorded in ``errors``.
    """
    remaining = list(steps)
    count = 0

    def script(turn: ModelTurn) -> ScriptResult:
        nonlocal count
        count += 1
        if not remaining:
            raise AssertionError(
                f"scripted(): request #{count} to {turn.conversation_id} arrived but only "
                f"{len(steps)} step(s) were scripted (inputs: {turn.inputs!r})"
            )
        step = remaining.pop(0)
        return step(turn) if callable(step) else copy.deepcopy(step)

    return script


# --------------------------------------------------------------------------- agents

_DEFAULT_COMPLETION_ARGS: dict[str, Any] = {
    "stop": None,
    "presence_penalty": None,
    "frequency_penalty": None,
    "temperature": None,
    "top_p": None,
    "max_tokens": None,
    "random_seed": None,
    "prediction": None,
    "response_format": None,
    "tool_choice": "auto",
    "reasoning_effort": None,
}


def _completion_args(given: dict[str, Any] | None) -> dict[str, Any]:
    """Completion args as the server stores them: the given ones over the defaults."""
    return {**_DEFAULT_COMPLETION_ARGS, **copy.deepcopy(given or {})}


def _check_agent(agent: dict[str, Any]) -> None:
    """Raise ValueError if ``agent`` is not a valid ``Agent`` per the SDK's model (and the
    spec, where this machine has it)."""
    found = _validator(AGENT_PATH, "get", 200)
    errors = list(found[0].iter_errors(agent)) if found is not None else []
    if found is not None and errors:
        raise ValueError(_describe(errors, found[1]))
    by_sdk = mistral_models.response_problems(AGENT_PATH, "get", 200, agent)
    if by_sdk:
        raise ValueError(f"not a valid Agent (the SDK's model): {by_sdk[:3]}")


# --------------------------------------------------------------------------- server


@dataclass
class RecordedRequest:
    """One HTTP request received by the stand-in (``status`` is what it answered)."""

    method: str
    path: str
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None


@dataclass
class _Conversation:
    id: str
    model: str | None
    agent_id: str | None
    tools: list[dict[str, Any]]
    instructions: str | None
    entries: list[Entry] = field(default_factory=list)


@dataclass
class _Reply:
    status: int
    body: Any
    commit: Callable[[], None] | None = None


def _not_found(kind: str, ident: str) -> _Reply:
    """The 404 the stand-in answers for an unknown conversation or agent."""
    return _Reply(404, {"message": f"{kind} {ident} not found", "type": "not_found"})


@dataclass
class _Fault:
    status: int
    body: dict[str, Any] | None


class _BadRequest(Exception):
    """A request the stand-in refuses with 422 and records in ``errors``."""

    def __init__(self, msg: str, loc: list[str | int] | None = None) -> None:
        super().__init__(msg)
        self.loc: list[str | int] = loc or ["body"]


Handler = Callable[[web.Request, dict[str, Any] | None], Awaitable[_Reply]]


class MistralStandIn:
    """Local fake of the Mistral Conversations API.

    Use as ``async with MistralStandIn() as standin:`` and point the SDK at
    ``standin.url``. Attributes a test reads or sets:

    * ``script`` - the scripted model (default :func:`travel_agent_script`);
    * ``requests`` - every :class:`RecordedRequest` received, failed ones included;
    * ``errors`` - contract violations: invalid request bodies, missing auth, unknown
      routes, script failures, responses that would not match the spec;
    * ``agents`` - agent id -> current ``Agent`` object (see :meth:`create_agent`);
    * ``agent_updates`` - ``(agent_id, body)`` of every applied PATCH, oldest first;
    * ``models`` - the model ids ``GET /v1/models`` lists (another id answers 404 to
      ``GET /v1/models/{model_id}``);
    * ``connectors`` - connector id -> ``Connector`` (see :meth:`create_connector`),
      found by id or name by ``GET /v1/connectors/{connector_id_or_name}/tools`` (404 for
      an unknown one); ``connector_tools`` - connector id -> its tools (``MCPTool``);
      ``connector_tool_failures`` - connector id -> the HTTP status ``GET .../tools``
      answers instead (its MCP server is down, say).
    """

    def __init__(self, script: Script | None = None, *, api_key: str | None = None) -> None:
        """``api_key``, if given, must be the bearer token; otherwise any token is accepted."""
        self.script: Script = script or travel_agent_script
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self.errors: list[str] = []
        self._conversations: dict[str, _Conversation] = {}
        self.agents: dict[str, dict[str, Any]] = {}
        self.agent_updates: list[tuple[str, dict[str, Any]]] = []
        self.models: list[str] = [DEFAULT_MODEL, "mistral-small-latest", "mistral-large-latest"]
        self.connectors: dict[str, dict[str, Any]] = {}
        self.connector_tools: dict[str, list[dict[str, Any]]] = {}
        self.connector_tool_failures: dict[str, int] = {}
        #: (conversation id, tool name, arguments) of every connector call that ran on
        #: "Mistral's side": unasked (not held), or confirmed with ``allow``
        self.server_runs: list[tuple[str, str, str]] = []
        self._agent_versions: dict[str, dict[int, dict[str, Any]]] = {}
        self._faults: list[_Fault] = []
        self._lose_responses = 0
        self._delays: list[float] = []
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        load_spec()

    # ------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (pass as ``server_url``)."""
        if self._url is None:
            raise RuntimeError("MistralStandIn is not started")
        return self._url

    async def start(self) -> MistralStandIn:
        """Bind to a free port on 127.0.0.1 and start serving."""
        app = web.Application()
        app.router.add_post(START_PATH, self._route(START_PATH, "post", self._start))
        app.router.add_post(APPEND_PATH, self._route(APPEND_PATH, "post", self._append))
        app.router.add_get(HISTORY_PATH, self._route(HISTORY_PATH, "get", self._history))
        app.router.add_get(AGENT_PATH, self._route(AGENT_PATH, "get", self._get_agent))
        app.router.add_patch(AGENT_PATH, self._route(AGENT_PATH, "patch", self._update_agent))
        app.router.add_get(MODELS_PATH, self._route(MODELS_PATH, "get", self._list_models))
        app.router.add_get(MODEL_PATH, self._route(MODEL_PATH, "get", self._get_model))
        app.router.add_get(
            CONNECTOR_TOOLS_PATH,
            self._route(CONNECTOR_TOOLS_PATH, "get", self._list_connector_tools),
        )
        app.router.add_route("*", "/{tail:.*}", self._unknown_route)
        self._closing.clear()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self._url = f"http://{host}:{port}"
        return self

    async def close(self) -> None:
        """Stop serving; requests still sleeping in ``delay_next`` are cut short."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> MistralStandIn:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------- test controls

    def fail_next(self, status: int, count: int = 1, body: dict[str, Any] | None = None) -> None:
        """Answer the next ``count`` (conversation or agent) requests with ``status``.

        The body defaults to a spec-shaped error (``HTTPValidationError`` for 422,
        ``{"message": ...}`` otherwise). Conversation and agent state is left untouched.
        """
        self._faults.extend(_Fault(status, body) for _ in range(count))

    def lose_next_response(self, count: int = 1) -> None:
        """Apply the next ``count`` POSTs to a conversation (start or append), then lose
        their answers: the client gets a 502 from "a gateway" after the state changed, as
        when a proxy times out on a slow reply. Whether the request was applied is then
        unknowable to the client, except by reading the conversation's history."""
        self._lose_responses += count

    def delay_next(self, seconds: float, count: int = 1) -> None:
        """Sleep ``seconds`` before answering the next ``count`` requests.

        A delayed request is still processed afterwards (like a real server whose
        client gave up), unless the stand-in is closing.
        """
        self._delays.extend(seconds for _ in range(count))

    def conversation_history(self, conversation_id: str) -> list[Entry]:
        """A copy of the stored entries (inputs and outputs) of a conversation."""
        return copy.deepcopy(self._conversations[conversation_id].entries)

    @property
    def conversation_ids(self) -> list[str]:
        """Ids of the conversations started so far, oldest first."""
        return list(self._conversations)

    def create_agent(
        self,
        *,
        name: str = "Test agent",
        model: str = DEFAULT_MODEL,
        instructions: str | None = None,
        tools: list[dict[str, Any]] | None = None,
        description: str | None = None,
        completion_args: dict[str, Any] | None = None,
    ) -> str:
        """Store a new agent (version 0) and return its id (``ag_...``).

        ``tools`` are wire-format tool dicts, e.g. ``{"type": "function", "function":
        {"name": ..., "description": ..., "parameters": {...}}}``. The agent must be a
        valid ``Agent`` per the spec, otherwise ValueError.
        """
        now = _now()
        agent: dict[str, Any] = {
            "object": "agent",
            "id": _new_id("ag"),
            "name": name,
            "description": description,
            "model": model,
            "instructions": instructions,
            "tools": copy.deepcopy(tools or []),
            "completion_args": _completion_args(completion_args),
            "guardrails": None,
            "handoffs": None,
            "metadata": None,
            "version": 0,
            "versions": [0],
            "version_message": None,
            "created_at": now,
            "updated_at": now,
            "deployment_chat": False,
            "source": "api",
        }
        _check_agent(agent)
        self.agents[agent["id"]] = agent
        self._agent_versions[agent["id"]] = {0: copy.deepcopy(agent)}
        return str(agent["id"])

    def _agent_at(self, agent_id: str, version: Any) -> dict[str, Any] | None:
        """The agent at ``version`` (None: current); None if unknown (aliases aren't emulated)."""
        agent = self.agents.get(agent_id)
        if agent is None or version is None:
            return agent
        try:
            number = int(version)
        except (TypeError, ValueError):
            return None
        if number == agent.get("version"):
            return agent
        return self._agent_versions.get(agent_id, {}).get(number)

    # ------------------------------------------------------------- plumbing

    def _route(self, path: str, method: str, handler: Handler) -> Callable[..., Any]:
        async def serve(request: web.Request) -> web.Response:
            return await self._serve(request, path, method, handler)

        return serve

    async def _serve(
        self, request: web.Request, path: str, method: str, handler: Handler
    ) -> web.Response:
        raw = await request.read()
        body: Any = None
        bad_json: str | None = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError as exc:
                bad_json = f"body is not JSON: {exc}"
        recorded = RecordedRequest(
            request.method,
            request.path,
            body if isinstance(body, dict) else None,
            dict(request.headers),
        )
        self.requests.append(recorded)
        label = f"{request.method} {request.path}"
        reply = await self._answer(request, path, method, handler, body, bad_json, label)
        response = self._send(reply, path, method, label)
        recorded.status = response.status
        return response

    async def _answer(
        self,
        request: web.Request,
        path: str,
        method: str,
        handler: Handler,
        body: Any,
        bad_json: str | None,
        label: str,
    ) -> _Reply:
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        if not token or (self.api_key is not None and token != self.api_key):
            self.errors.append(f"{label}: missing or wrong 'Authorization: Bearer <key>' header")
            return _Reply(401, {"message": "Unauthorized", "type": "unauthorized"})
        if self._delays:
            await self._sleep(self._delays.pop(0))
            if self._closing.is_set():
                return _Reply(503, {"message": "stand-in shutting down"})
        problem = self._check_request(path, method, body, bad_json)
        if problem is not None:
            self.errors.append(f"{label}: request {problem[0]}")
            return _Reply(422, validation_error_body(problem[1]))
        if self._faults:
            fault = self._faults.pop(0)
            default = (
                validation_error_body([(["body"], "injected failure")])
                if fault.status == 422
                else {"message": f"Injected failure (HTTP {fault.status})", "type": "injected"}
            )
            return _Reply(fault.status, fault.body if fault.body is not None else default)
        try:
            return await handler(request, body)
        except _BadRequest as exc:
            self.errors.append(f"{label}: {exc}")
            return _Reply(422, validation_error_body([(exc.loc, str(exc))]))
        except Exception as exc:  # the script (or the stand-in) blew up
            self.errors.append(f"{label}: {type(exc).__name__}: {exc}")
            return _Reply(500, {"message": f"stand-in failure: {type(exc).__name__}: {exc}"})

    @staticmethod
    def _check_request(
        path: str, method: str, body: Any, bad_json: str | None
    ) -> tuple[str, list[tuple[list[str | int], str]]] | None:
        """(summary, HTTPValidationError details) if the body breaks the request schema."""
        found = _validator(path, method, None)
        expected = (path, method) in mistral_models.REQUESTS
        if found is None and not expected:
            return None
        if bad_json or body is None:
            problem = bad_json or "body is required"
            return problem, [(["body"], problem)]
        errors = list(found[0].iter_errors(body)) if found is not None else []
        if found is not None and errors:
            return _describe(errors, found[1]), [
                (["body", *e.absolute_path], e.message) for e in errors
            ]
        by_sdk = mistral_models.request_problems(path, method, body)
        if by_sdk:
            name = mistral_models.name_of(mistral_models.REQUESTS[(path, method)])
            return f"not a valid {name} (the SDK's model): {by_sdk[0]}", [
                (["body", *loc], msg) for loc, msg in by_sdk
            ]
        return None

    def _send(self, reply: _Reply, path: str, method: str, label: str) -> web.Response:
        found = _validator(path, method, reply.status)
        if found is not None:
            errors = list(found[0].iter_errors(reply.body))
            if errors:
                problem = f"{label}: stand-in response {reply.status} {_describe(errors, found[1])}"
                self.errors.append(problem)
                return web.json_response({"message": problem}, status=500)
        by_sdk = mistral_models.response_problems(path, method, reply.status, reply.body)
        if by_sdk:
            name = mistral_models.RESPONSES[(path, method)].__name__
            problem = (
                f"{label}: stand-in response {reply.status} not a valid {name} "
                f"(the SDK's model): {by_sdk[:3]}"
            )
            self.errors.append(problem)
            return web.json_response({"message": problem}, status=500)
        if reply.commit is not None:
            reply.commit()
            lost = method == "post" and path.startswith("/v1/conversations")
            if lost and reply.status == 200 and self._lose_responses > 0:
                self._lose_responses -= 1
                gateway = {"message": "upstream request timeout", "type": "bad_gateway"}
                return web.json_response(gateway, status=502)
        return web.json_response(reply.body, status=reply.status)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._closing.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def _unknown_route(self, request: web.Request) -> web.Response:
        body = await request.read()
        parsed: Any = None
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            pass
        recorded = RecordedRequest(
            request.method,
            request.path,
            parsed if isinstance(parsed, dict) else None,
            dict(request.headers),
            404,
        )
        self.requests.append(recorded)
        self.errors.append(f"{request.method} {request.path}: not emulated by the stand-in")
        return web.json_response({"message": "Not Found", "type": "not_found"}, status=404)

    # ------------------------------------------------------------- operations

    async def _start(self, request: web.Request, body: dict[str, Any] | None) -> _Reply:
        assert body is not None
        model, agent_id = body.get("model"), body.get("agent_id")
        if not model and not agent_id:
            raise _BadRequest("one of 'model' or 'agent_id' is required")
        tools = body.get("tools")
        instructions = body.get("instructions")
        if agent_id:
            if model:
                raise _BadRequest("'model' and 'agent_id' are mutually exclusive")
            agent = self._agent_at(agent_id, body.get("agent_version"))
            if agent is None:
                return _not_found("Agent", agent_id)
            model = agent["model"]
            tools = agent.get("tools") if tools is None else tools
            instructions = agent.get("instructions") if instructions is None else instructions
        conv = _Conversation(
            id=_new_id("conv"),
            model=model,
            agent_id=agent_id,
            tools=copy.deepcopy(list(tools or [])),
            instructions=instructions,
        )
        inputs = _normalize_inputs(body.get("inputs"))
        return await self._turn(conv, body, inputs, [], new=True)

    async def _append(self, request: web.Request, body: dict[str, Any] | None) -> _Reply:
        assert body is not None
        conversation_id = request.match_info["conversation_id"]
        conv = self._conversations.get(conversation_id)
        if conv is None:
            return _not_found("Conversation", conversation_id)
        inputs = _normalize_inputs(body.get("inputs"))
        confirmations = list(body.get("tool_confirmations") or [])
        self._check_tool_references(conv, inputs, confirmations)
        return await self._turn(conv, body, inputs, confirmations, new=False)

    async def _history(self, request: web.Request, body: dict[str, Any] | None) -> _Reply:
        conversation_id = request.match_info["conversation_id"]
        conv = self._conversations.get(conversation_id)
        if conv is None:
            return _not_found("Conversation", conversation_id)
        entries = copy.deepcopy(conv.entries)
        return _Reply(
            200,
            {"object": "conversation.history", "conversation_id": conv.id, "entries": entries},
        )

    def _connector_tool_names(self, declared: dict[str, Any]) -> list[str]:
        connector_id = declared.get("connector_id")
        connector = self._connector(connector_id) if isinstance(connector_id, str) else None
        if connector is None:
            return []
        return [str(tool["name"]) for tool in self.connector_tools.get(connector["id"], [])]

    def _on_mistrals_side(self, conv: _Conversation, outputs: list[Entry]) -> list[Entry]:
        """Like the real server, for the tools of a connector the conversation declared:
        a call waits for a confirmation only when that connector's
        ``tool_configuration.requires_confirmation`` names it exactly (whatever the script
        said); any other call of it runs here, on Mistral's side, at once: a
        ``tool.execution`` entry, recorded in ``server_runs``. (Calls of tools no declared
        connector has are left as the script made them.)"""
        held: dict[str, bool] = {}
        for declared in conv.tools:
            if declared.get("type") != "connector":
                continue
            confirm = set(
                (declared.get("tool_configuration") or {}).get("requires_confirmation") or []
            )
            for name in self._connector_tool_names(declared):
                held[name] = name in confirm
        shaped: list[Entry] = []
        for entry in outputs:
            name = entry.get("name")
            if entry.get("type") != "function.call" or name not in held:
                shaped.append(entry)
                continue
            if held[name]:
                shaped.append({**entry, "confirmation_status": "pending"})
                continue
            now = _now()
            shaped.append(
                {
                    "object": "entry",
                    "type": "tool.execution",
                    "created_at": now,
                    "completed_at": now,
                    "agent_id": None,
                    "model": None,
                    "id": _new_id("te"),
                    "name": name,
                    "arguments": entry.get("arguments", "{}"),
                    "info": {},
                }
            )
        return shaped

    def create_connector(
        self, name: str, tools: Iterable[str] = (), *, tools_failure: int | None = None
    ) -> str:
        """Store a connector (an MCP server on Mistral's side) and return its id.

        ``tools``: the names its ``GET .../tools`` lists; ``tools_failure``: the HTTP status
        that listing answers instead (e.g. 502 when the server behind it is down).
        """
        now = _now()
        connector_id = str(uuid.uuid4())
        self.connectors[connector_id] = {
            "id": connector_id,
            "name": name,
            "description": f"The {name} connector",
            "created_at": now,
            "modified_at": now,
            "server": f"https://{name}.mcp.invalid/mcp",
            "auth_type": None,
            "tools": None,
        }
        self.connector_tools[connector_id] = [
            {
                "name": tool,
                "description": f"The {tool} tool",
                "inputSchema": {"type": "object", "properties": {}},
            }
            for tool in tools
        ]
        if tools_failure is not None:
            self.connector_tool_failures[connector_id] = tools_failure
        return connector_id

    def _connector(self, id_or_name: str) -> dict[str, Any] | None:
        found = self.connectors.get(id_or_name)
        if found is not None:
            return found
        return next((c for c in self.connectors.values() if c["name"] == id_or_name), None)

    def _model_card(self, model_id: str) -> dict[str, Any]:
        return {
            "id": model_id,
            "object": "model",
            "created": 1_700_000_000,
            "owned_by": "mistralai",
            "capabilities": {"completion_chat": True, "function_calling": True},
            "name": model_id,
            "description": None,
            "max_context_length": 131_072,
            "aliases": [],
            "deprecation": None,
            "deprecation_replacement_model": None,
            "default_model_temperature": 0.3,
            "type": "base",
        }

    async def _list_models(self, request: web.Request, body: dict[str, Any] | None) -> _Reply:
        return _Reply(200, {"object": "list", "data": [self._model_card(m) for m in self.models]})

    async def _get_model(self, request: web.Request, body: dict[str, Any] | None) -> _Reply:
        model_id = request.match_info["model_id"]
        if model_id not in self.models:
            return _not_found("Model", model_id)
        return _Reply(200, self._model_card(model_id))

    async def _list_connector_tools(
        self, request: web.Request, body: dict[str, Any] | None
    ) -> _Reply:
        id_or_name = request.match_info["connector_id_or_name"]
        connector = self._connector(id_or_name)
        if connector is None:
            return _not_found("Connector", id_or_name)
        failure = self.connector_tool_failures.get(connector["id"])
        if failure is not None:
            message = f"Could not list the tools of connector {connector['name']}"
            return _Reply(failure, {"message": message, "type": "connector_error"})
        return _Reply(200, copy.deepcopy(self.connector_tools[connector["id"]]))

    async def _get_agent(self, request: web.Request, body: dict[str, Any] | None) -> _Reply:
        agent_id = request.match_info["agent_id"]
        agent = self._agent_at(agent_id, request.query.get("agent_version"))
        if agent is None:
            return _not_found("Agent", agent_id)
        return _Reply(200, copy.deepcopy(agent))

    async def _update_agent(self, request: web.Request, body: dict[str, Any] | None) -> _Reply:
        """Apply the non-null fields of an ``AgentUpdateRequest`` as a new version."""
        assert body is not None
        agent_id = request.match_info["agent_id"]
        current = self.agents.get(agent_id)
        if current is None:
            return _not_found("Agent", agent_id)
        updated = copy.deepcopy(current)
        for key, value in body.items():
            if value is not None:
                updated[key] = copy.deepcopy(value)
        if body.get("completion_args") is not None:
            updated["completion_args"] = _completion_args(body["completion_args"])
        version = max([*updated.get("versions", []), updated.get("version", 0)]) + 1
        updated["version"] = version
        updated["versions"] = [*updated.get("versions", []), version]
        updated["version_message"] = body.get("version_message")
        updated["updated_at"] = _now()

        def commit() -> None:
            self.agents[agent_id] = updated
            self._agent_versions.setdefault(agent_id, {})[version] = copy.deepcopy(updated)
            self.agent_updates.append((agent_id, copy.deepcopy(body)))

        return _Reply(200, copy.deepcopy(updated), commit)

    def _check_tool_references(
        self, conv: _Conversation, inputs: list[Entry], confirmations: list[dict[str, Any]]
    ) -> None:
        entries = [*conv.entries, *inputs]
        calls = {e.get("tool_call_id"): e for e in entries if e.get("type") == "function.call"}
        answered = {
            e.get("tool_call_id") for e in conv.entries if e.get("type") == "function.result"
        }
        for i, entry in enumerate(inputs):
            if entry.get("type") != "function.result":
                continue
            tcid = entry.get("tool_call_id")
            if tcid not in calls:
                raise _BadRequest(
                    f"function.result for unknown tool_call_id {tcid!r}", ["body", "inputs", i]
                )
            if tcid in answered:
                raise _BadRequest(
                    f"tool_call_id {tcid!r} already has a result", ["body", "inputs", i]
                )
            answered.add(tcid)
        for i, tc in enumerate(confirmations):
            call = calls.get(tc["tool_call_id"])
            if call is None or call.get("confirmation_status") != "pending":
                raise _BadRequest(
                    f"tool confirmation for {tc['tool_call_id']!r}, which is not a pending call",
                    ["body", "tool_confirmations", i],
                )

    async def _turn(
        self,
        conv: _Conversation,
        body: dict[str, Any],
        inputs: list[Entry],
        confirmations: list[dict[str, Any]],
        *,
        new: bool,
    ) -> _Reply:
        turn = ModelTurn(
            conversation_id=conv.id,
            request=copy.deepcopy(body),
            inputs=copy.deepcopy(inputs),
            history=copy.deepcopy(conv.entries),
            tools=copy.deepcopy(conv.tools),
            tool_confirmations=copy.deepcopy(confirmations),
            instructions=conv.instructions,
            model=conv.model,
            agent_id=conv.agent_id,
        )
        produced = self.script(turn)
        outputs = await produced if inspect.isawaitable(produced) else produced
        if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
            raise TypeError(f"script must return a list of entry dicts, got {outputs!r}")
        outputs = self._on_mistrals_side(conv, copy.deepcopy(outputs))
        for entry in outputs:
            if "model" in entry and entry["model"] is None and conv.model:
                entry["model"] = conv.model
            if "agent_id" in entry and entry["agent_id"] is None and conv.agent_id:
                entry["agent_id"] = conv.agent_id
        prompt = len(json.dumps([conv.instructions, conv.entries, inputs])) // 4
        completion = max(1, len(json.dumps(outputs)) // 4)
        response = {
            "object": "conversation.response",
            "conversation_id": conv.id,
            "outputs": outputs,
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }

        def commit() -> None:
            status = {"allow": "allowed", "deny": "denied"}
            decided = {tc["tool_call_id"]: status[tc["confirmation"]] for tc in confirmations}
            for entry in conv.entries:
                if entry.get("type") == "function.call" and entry.get("tool_call_id") in decided:
                    entry["confirmation_status"] = decided[entry["tool_call_id"]]
                    if decided[entry["tool_call_id"]] == "allowed":  # it runs, server-side
                        self.server_runs.append(
                            (conv.id, str(entry.get("name")), str(entry.get("arguments")))
                        )
            for entry in outputs:
                if entry.get("type") == "tool.execution":
                    self.server_runs.append(
                        (conv.id, str(entry.get("name")), str(entry.get("arguments")))
                    )
            conv.entries.extend(copy.deepcopy([*inputs, *outputs]))
            if new:
                self._conversations[conv.id] = conv

        return _Reply(200, response, commit)
