"""Server-side tools: Mistral connectors and built-in tools, declared on every run.

Their tools run on Mistral's side; a call that needs a person's decision comes back as a
``function.call`` with ``confirmation_status: "pending"`` and is decided like a local call.
Which of their tools need confirmation is what the config lists plus every tool the policy
would hold (rules, globs and admins' overrides): a connector's tools are listed by the API
(bot.mistral.connector_tools), so a rule ``gmail_*`` holds ``gmail_send`` though no config names it.
A connector whose tools cannot be listed is not offered to the model at all (fail closed).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.core.config import BotConfig, ToolConfigurationConfig, describe, read_yaml
from bot.core.policy import Holds
from bot.errors import ConfigError

#: The tools each built-in exposes to the model, by the names calls carry.
BUILTIN_TOOL_NAMES: dict[str, tuple[str, ...]] = {
    "web_search": ("web_search",),
    "web_search_premium": ("web_search", "news_search"),
    "code_interpreter": ("code_interpreter",),
    "image_generation": ("image_generation",),
    "document_library": ("document_library",),
}


@dataclass(frozen=True)
class ServerTool:
    """One entry of the run's ``tools`` list."""

    type: str  # "connector" or a built-in tool type
    connector_id: str | None = None
    library_ids: tuple[str, ...] = ()
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] | None = None
    requires_confirmation: tuple[str, ...] = ()
    #: (type, value): the credential, read from the environment; never logged or shown
    authorization: tuple[str, str] | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return f"connector {self.connector_id}" if self.connector_id else self.type

    def offers(self, tool: str) -> bool:
        """Whether the model may use ``tool`` of this server-side tool (include/exclude)."""
        if self.include is not None:
            return tool in self.include
        return self.exclude is None or tool not in self.exclude

    def names(self, listed: Iterable[str] = ()) -> set[str]:
        """The tool names this server-side tool has: a built-in's are known; a connector's
        are the ones the API listed for it (``listed``, see bot.mistral.connector_tools). Only its
        own: a name is never put in another connector's or built-in's list."""
        if self.connector_id is None:
            return {*BUILTIN_TOOL_NAMES.get(self.type, ()), *self.requires_confirmation}
        return set(listed)

    def confirmations(
        self, holds: Holds | None, local: Iterable[str] = (), listed: Iterable[str] = ()
    ) -> list[str]:
        """The tool names that must wait for a decision (``local``: function tool names;
        ``listed``: a connector's tools, as the API lists them). Every listed name a rule, a
        glob or an override would hold is held: ``gmail_*`` holds ``gmail_send``."""
        if holds is None:
            return sorted(set(self.requires_confirmation))
        candidates = (self.names(listed) | set(self.requires_confirmation)) - set(local)
        return sorted(name for name in candidates if self.offers(name) and holds(name))

    def declaration(
        self, holds: Holds | None, local: Iterable[str] = (), listed: Iterable[str] = ()
    ) -> dict[str, Any]:
        """The entry for ``run_async(tools=[…])``, per the Conversations API."""
        configuration: dict[str, Any] = {}
        if self.include is not None:
            configuration["include"] = list(self.include)
        if self.exclude is not None:
            configuration["exclude"] = list(self.exclude)
        confirmations = self.confirmations(holds, local, listed)
        if confirmations:
            configuration["requires_confirmation"] = confirmations
        entry: dict[str, Any] = {"type": self.type}
        if self.connector_id is not None:
            entry["connector_id"] = self.connector_id
        if self.authorization is not None:
            kind, value = self.authorization
            entry["authorization"] = {"type": kind, "value": value}
        if self.library_ids:
            entry["library_ids"] = list(self.library_ids)
        if configuration:
            entry["tool_configuration"] = configuration
        return entry


def _filters(config: ToolConfigurationConfig) -> dict[str, Any]:
    return {
        "include": tuple(config.include) if config.include is not None else None,
        "exclude": tuple(config.exclude) if config.exclude is not None else None,
        "requires_confirmation": tuple(config.requires_confirmation),
    }


def load_server_tools(
    config: BotConfig, config_path: Path, environ: Mapping[str, str] | None = None
) -> list[ServerTool]:
    """The config's connectors and built-ins; ConfigError if a credential is missing.

    Credentials come from the environment variables the config names (``environ``, default
    the process environment): the one place the bot reads variables it does not know of.
    """
    environ = os.environ if environ is None else environ
    _, lines = read_yaml(config_path) if config_path.exists() else (None, {})
    tools: list[ServerTool] = []
    problems: list[str] = []
    for index, connector in enumerate(config.tools.connectors):
        authorization = None
        if connector.authorization is not None:
            value = environ.get(connector.authorization.env, "")
            if not value:
                loc = ("tools", "connectors", index, "authorization", "env")
                problems.append(
                    describe(
                        config_path,
                        lines,
                        loc,
                        f"the environment variable {connector.authorization.env} is not set; "
                        f"fix: set it to the connector's {connector.authorization.type}",
                    )
                )
            authorization = (connector.authorization.type, value)
        tools.append(
            ServerTool(
                "connector",
                connector_id=connector.connector_id,
                authorization=authorization,
                **_filters(connector.tool_configuration),
            )
        )
    for builtin in config.tools.builtins:
        tools.append(
            ServerTool(
                builtin.type,
                library_ids=tuple(builtin.library_ids or ()),
                **_filters(builtin.tool_configuration),
            )
        )
    if problems:
        raise ConfigError(str(config_path), problems)
    return tools


def held_names(tools: Iterable[ServerTool]) -> list[str]:
    """The names the config itself marks as needing confirmation."""
    return [name for tool in tools for name in tool.requires_confirmation]
