"""The config file (YAML): its schema and a loader whose errors name the file, field and line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.core.api_config import ApiConfig
from bot.core.assistant_config import AssistantConfig
from bot.core.conditions import Condition, ConditionError
from bot.errors import ConfigError

Location = tuple[str | int, ...]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


USER_ID: Final = r"^[UW][A-Z0-9]{2,}$"
USERGROUP_ID: Final = r"^S[A-Z0-9]{2,}$"
CHANNEL_ID: Final = r"^[CG][A-Z0-9]{2,}$"

UserId = Annotated[str, Field(pattern=USER_ID)]
UsergroupId = Annotated[str, Field(pattern=USERGROUP_ID)]

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_GRANT_S: Final = 30 * 86400


def parse_duration(text: str) -> int:
    """Seconds in a duration such as ``30m``, ``1h`` or ``7d``; ValueError otherwise."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration; fix: write it like 30m, 1h, 8h or 7d")
    seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
    if not 60 <= seconds <= MAX_GRANT_S:
        raise ValueError(f"{text!r} is out of range; fix: use between 1m and 30d")
    return seconds


Duration = Annotated[str, AfterValidator(lambda text: parse_duration(text) and text)]


class ApprovalsConfig(_Section):
    """Where approval cards go and who may decide (the policy's defaults, from the core)."""

    channel: str = Field(
        pattern=CHANNEL_ID,
        description="channel id (C… or G…) for cards; its members may decide",
    )
    allow_self_approval: bool = False


class ApproversConfig(_Section):
    """Who may decide: the union of a channel's members, user groups' members and users."""

    channel: str | None = Field(default=None, pattern=CHANNEL_ID)
    usergroups: list[UsergroupId] = Field(default_factory=list)
    users: list[UserId] = Field(default_factory=list)
    #: the Approve / Deny buttons in the requester's thread too, where it is shown as Slack
    #: shows AI apps (``assistant.native``); alone, it keeps the default approvers
    requester_thread: bool = False

    @property
    def names_someone(self) -> bool:
        return bool(self.channel or self.usergroups or self.users)

    @model_validator(mode="after")
    def _someone(self) -> ApproversConfig:
        if not (self.names_someone or self.requester_thread):
            raise ValueError("names nobody; fix: give a channel, usergroups or users")
        return self


class AdminsConfig(_Section):
    """Who may change the policy at run time (``/approvals require|allow|reset|revoke``)."""

    users: list[UserId] = Field(default_factory=list)
    usergroups: list[UsergroupId] = Field(default_factory=list)


class PolicyDefaults(_Section):
    """What applies to a call that needs approval and that no rule says otherwise about."""

    approvers: ApproversConfig | None = None
    quorum: int = Field(default=1, ge=1, le=10)
    allow_self_approval: bool | None = None
    grant_durations: list[Duration] = Field(default_factory=lambda: ["1h"], max_length=3)
    grant_same_arguments: bool = False
    allow_edit: bool = False
    expire_after: Duration = "24h"
    remind_every: Duration | None = None


class RuleConfig(_Section):
    """One policy rule; the first rule that matches a call decides it."""

    name: str | None = Field(default=None, min_length=1, max_length=80)
    tools: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(min_length=1)
    when: str | None = Field(default=None, min_length=1, max_length=2000)
    decision: Literal["ask", "allow", "deny"] = "ask"
    reason: str | None = Field(default=None, min_length=1, max_length=1000)
    approvers: ApproversConfig | None = None
    quorum: int | None = Field(default=None, ge=1, le=10)
    allow_self_approval: bool | None = None
    grant_durations: list[Duration] | None = Field(default=None, max_length=3)
    grant_same_arguments: bool | None = None
    allow_edit: bool | None = None
    expire_after: Duration | None = None
    remind_every: Duration | None = None

    @field_validator("when")
    @classmethod
    def _compiles(cls, source: str | None) -> str | None:
        if source is not None:
            try:
                Condition(source)
            except ConditionError as error:
                raise ValueError(f"invalid expression {source!r}: {error}") from error
        return source

    @model_validator(mode="after")
    def _fits_decision(self) -> RuleConfig:
        if self.reason is not None and self.decision != "deny":
            raise ValueError(
                "reason is only read with decision: deny; fix: remove it or set decision: deny"
            )
        if self.decision != "ask":
            extra = [
                name
                for name in (
                    "approvers",
                    "quorum",
                    "allow_self_approval",
                    "grant_durations",
                    "grant_same_arguments",
                    "allow_edit",
                    "expire_after",
                    "remind_every",
                )
                if getattr(self, name) is not None
            ]
            if extra:
                raise ValueError(
                    f"{', '.join(extra)} only apply to decision: ask; fix: remove them or set "
                    "decision: ask"
                )
        return self


class PolicyConfig(_Section):
    """Rules matched in order against every call that needs a decision."""

    defaults: PolicyDefaults = Field(default_factory=PolicyDefaults)
    rules: list[RuleConfig] = Field(default_factory=list, max_length=200)

    @model_validator(mode="after")
    def _quorum_reachable(self) -> PolicyConfig:
        _check_quorum("defaults", self.defaults.approvers, self.defaults.quorum)
        for index, rule in enumerate(self.rules):
            if rule.decision == "ask" and (rule.approvers or rule.quorum):
                named = rule.approvers and rule.approvers.names_someone
                approvers = rule.approvers if named else self.defaults.approvers
                _check_quorum(f"rules.{index}", approvers, rule.quorum or self.defaults.quorum)
        return self


def _check_quorum(where: str, approvers: ApproversConfig | None, quorum: int) -> None:
    """Only named users are countable; a channel or a user group may always hold enough."""
    if (
        approvers is None
        or not approvers.names_someone
        or approvers.channel
        or approvers.usergroups
    ):
        return
    named = len(set(approvers.users))
    if named < quorum:
        raise ValueError(
            f"{where} needs {quorum} approvals but names only {named} approver(s); "
            "fix: lower its quorum or add approvers"
        )


class FunctionToolConfig(_Section):
    """A local Python function the model may call."""

    ref: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", description="module:function")
    requires_confirmation: bool = False


ToolName = Annotated[str, Field(min_length=1, max_length=200)]


class ToolConfigurationConfig(_Section):
    """Which of a server-side tool's own tools the model may use, and which need approval."""

    include: list[ToolName] | None = None
    exclude: list[ToolName] | None = None
    requires_confirmation: list[ToolName] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_filter(self) -> ToolConfigurationConfig:
        if self.include is not None and self.exclude is not None:
            raise ValueError("include and exclude are mutually exclusive; fix: keep one of them")
        return self


class AuthorizationConfig(_Section):
    """A connector's credential, read from an environment variable (never the file)."""

    type: Literal["oauth2-token", "api-key"]
    env: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="name of the environment variable that holds the token or key",
    )


class ConnectorConfig(_Section):
    """A Mistral connector (server-side MCP tools), by name or id."""

    connector_id: str = Field(min_length=1, max_length=200)
    authorization: AuthorizationConfig | None = None
    tool_configuration: ToolConfigurationConfig = Field(default_factory=ToolConfigurationConfig)


class BuiltinConfig(_Section):
    """A Mistral built-in tool."""

    type: Literal[
        "web_search",
        "web_search_premium",
        "code_interpreter",
        "image_generation",
        "document_library",
    ]
    library_ids: list[Annotated[str, Field(min_length=1)]] | None = None
    tool_configuration: ToolConfigurationConfig = Field(default_factory=ToolConfigurationConfig)

    @model_validator(mode="after")
    def _libraries(self) -> BuiltinConfig:
        if self.type == "document_library" and not self.library_ids:
            raise ValueError("document_library needs library_ids; fix: list the library ids")
        if self.type != "document_library" and self.library_ids is not None:
            raise ValueError("library_ids is only read by document_library; fix: remove it")
        return self


EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class MCPServerConfig(_Section):
    """An MCP server whose tools the bot runs: a local command (stdio) or a remote URL."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    command: str | None = Field(default=None, min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    url: str | None = Field(default=None, pattern=r"^https?://")
    transport: Literal["streamable-http", "sse"] = "streamable-http"
    #: header name -> the environment variable holding its value (tokens stay out of the file)
    headers_from_env: dict[str, EnvName] = Field(default_factory=dict)
    tool_configuration: ToolConfigurationConfig = Field(default_factory=ToolConfigurationConfig)

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError(
                "give exactly one of command (a local stdio server) and url (a remote one); "
                "fix: keep one of them"
            )
        if self.command is not None and self.headers_from_env:
            raise ValueError("headers_from_env is for url servers; fix: remove it")
        if self.url is not None and (self.args or self.env):
            raise ValueError("args and env are for command servers; fix: remove them")
        return self


class ToolsConfig(_Section):
    functions: list[FunctionToolConfig] = Field(default_factory=list)
    connectors: list[ConnectorConfig] = Field(default_factory=list)
    builtins: list[BuiltinConfig] = Field(default_factory=list)
    mcp_servers: list[MCPServerConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_servers(self) -> ToolsConfig:
        names = [server.name for server in self.mcp_servers]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"MCP server names repeat: {', '.join(repeated)}; fix: rename")
        return self


class BotConfig(_Section):
    """The whole config file."""

    model: str | None = Field(default=None, min_length=1)
    agent_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,200}$")
    instructions: str | None = None
    approvals: ApprovalsConfig | None = None
    admins: AdminsConfig = Field(default_factory=AdminsConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    tools: ToolsConfig = Field(default_factory=ToolsConfig)
    assistant: AssistantConfig = Field(default_factory=AssistantConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)  # the HTTP API's clients (bot.api)

    @model_validator(mode="after")
    def _one_brain(self) -> BotConfig:
        if self.model is None and self.agent_id is None:
            raise ValueError(
                "no model and no agent_id; fix: add model (a Mistral model, e.g. "
                "mistral-medium-latest) or agent_id (a Mistral agent's id)"
            )
        if self.model is not None and self.agent_id is not None:
            raise ValueError(
                "both model and agent_id are given (a conversation runs one or the other); "
                "fix: keep one of them"
            )
        if self.agent_id is not None:
            on_agent = [
                name
                for name, given in (
                    ("instructions", self.instructions is not None),
                    ("tools.connectors", bool(self.tools.connectors)),
                    ("tools.builtins", bool(self.tools.builtins)),
                )
                if given
            ]
            if on_agent:
                raise ValueError(
                    f"{', '.join(on_agent)} cannot be given with agent_id (the agent has its "
                    "own); fix: set them on the agent, or use model instead of agent_id"
                )
        return self

    @model_validator(mode="after")
    def _cards_have_a_home(self) -> BotConfig:
        defaults = self.policy.defaults.approvers
        if self.approvals is None and (defaults is None or defaults.channel is None):
            raise ValueError(
                "no approvals channel; fix: add approvals: {channel: C…} or "
                "policy: {defaults: {approvers: {channel: C…}}} (cards are posted there)"
            )
        return self

    @property
    def default_channel(self) -> str:
        """Where cards go unless a rule names another channel."""
        defaults = self.policy.defaults.approvers
        if defaults is not None and defaults.channel is not None:
            return defaults.channel
        assert self.approvals is not None  # guaranteed by _cards_have_a_home
        return self.approvals.channel


_FIXES = {
    "missing": "add it",
    "extra_forbidden": "remove it or fix its spelling",
    "string_pattern_mismatch": "use the form described in bot.example.yml",
    "bool_type": "use true or false",
    "bool_parsing": "use true or false",
    "string_type": "use a string",
    "list_type": "use a list",
    "model_type": "use a mapping of keys to values",
    "dict_type": "use a mapping of keys to values",
    "literal_error": "use one of the values listed",
    "int_type": "use a whole number",
    "int_parsing": "use a whole number",
    "greater_than_equal": "use a larger number",
    "less_than_equal": "use a smaller number",
    "too_short": "add at least one entry",
    "too_long": "use fewer entries",
    "string_too_short": "write something",
    "string_too_long": "shorten it",
}

_HINTS: dict[tuple[str, ...], str] = {
    ("tools", "functions", "*", "ref"): "module:function, e.g. mycompany.tools:get_weather",
    ("api", "clients", "*", "name"): "lower-case letters, digits, '.', '_', '-': billing-agent",
}

#: Hints by the field's own name, wherever it is.
_FIELD_HINTS = {
    "channel": "a channel id such as C0123456789 (channel details → About)",
    "users": "a user id such as U0123ABCDE (profile → ⋮ → Copy member ID)",
    "usergroups": "a user group id such as S0123ABCDE (from usergroups.list)",
    "requesters": "any, a user id (U…) or a user group id (S…)",
    "key_env": "an environment variable's name, such as APPROVAL_API_KEY_BILLING",
}


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every value, by its path in the document."""


def _compose(node: yaml.Node, path: Location, lines: dict[Location, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _compose(key_node, (*path, "<key>"), lines)
            mapping[key] = _compose(value_node, (*path, str(key)), lines)
        return mapping
    if isinstance(node, yaml.SequenceNode):
        return [_compose(item, (*path, i), lines) for i, item in enumerate(node.value)]
    return _LineLoader("").construct_object(node)


def read_yaml(path: Path) -> tuple[Any, dict[Location, int]]:
    """Parse ``path``; return the document and a map from value path to line number."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise ConfigError(
            str(path),
            [
                "the file does not exist: copy bot.example.yml there "
                "(or point BOT_CONFIG at your config file)"
            ],
        ) from error
    except OSError as error:
        raise ConfigError(str(path), [f"cannot read the file: {error}"]) from error
    try:
        node = yaml.compose(text, Loader=_LineLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(str(path), [f"{where}invalid YAML: {problem}"]) from error
    lines: dict[Location, int] = {}
    document = _compose(node, (), lines) if node is not None else None
    return document, lines


def line_of(lines: dict[Location, int], loc: Location) -> int | None:
    """The line of ``loc`` or, for a missing field, of its closest parent."""
    for end in range(len(loc), -1, -1):
        line = lines.get(tuple(str(p) if isinstance(p, str) else p for p in loc[:end]))
        if line is not None:
            return line
    return None


def describe(path: Path, lines: dict[Location, int], loc: Location, message: str) -> str:
    """One problem, as `field (line N): message`."""
    field = ".".join(str(p) for p in loc) or "(top level)"
    line = line_of(lines, loc)
    where = f" (line {line})" if line else ""
    return f"{field}{where}: {message}"


def _hint(loc: Location) -> str | None:
    pattern = tuple("*" if isinstance(p, int) else str(p) for p in loc)
    names = [p for p in loc if isinstance(p, str)]
    return _HINTS.get(pattern) or (_FIELD_HINTS.get(names[-1]) if names else None)


def _problems(path: Path, lines: dict[Location, int], error: ValidationError) -> list[str]:
    problems = []
    for detail in error.errors():
        loc: Location = tuple(detail["loc"])
        text = str(detail["msg"]).removeprefix("Value error, ")
        if "fix:" in text:  # our own validators say the fix themselves
            problems.append(describe(path, lines, loc, text))
            continue
        fix = _FIXES.get(detail["type"], "see bot.example.yml")
        hint = _hint(loc) if detail["type"] == "string_pattern_mismatch" else None
        message = f"{text}; fix: {fix}" + (f" ({hint})" if hint else "")
        problems.append(describe(path, lines, loc, message))
    return problems


def load_config(path: Path) -> BotConfig:
    """Read and validate the config file; raise ConfigError with every problem found."""
    document, lines = read_yaml(path)
    if not isinstance(document, dict):
        raise ConfigError(str(path), ["the file must be a YAML mapping; see bot.example.yml"])
    try:
        return BotConfig.model_validate(document)
    except ValidationError as error:
        raise ConfigError(str(path), _problems(path, lines, error)) from error
