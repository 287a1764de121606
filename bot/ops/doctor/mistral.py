"""Mistral: the key, the model or agent, each connector and which of its tools are held."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import httpx2
from mistralai.client import Mistral
from mistralai.client.errors import MistralError, NoResponseError
from mistralai.client.utils import BackoffStrategy, RetryConfig

from bot.core.config import BotConfig, ConnectorConfig
from bot.core.policy import Holds
from bot.mistral.server_tools import ServerTool
from bot.ops.doctor.report import Check, failed, ok, warning
from bot.ops.settings import Settings

#: One try per request: the doctor reports, it does not wait out an outage.
NO_RETRIES: Final = RetryConfig("none", BackoffStrategy(500, 8_000, 2.0, 0), False)

_KEY_FIX = (
    "put a valid API key in MISTRAL_API_KEY (La Plateforme → API Keys); a new key may take "
    "a minute to work"
)


class _Failed(Exception):
    """A request failed; ``status`` is the HTTP status (None: no answer)."""

    def __init__(self, status: int | None, text: str) -> None:
        super().__init__(text)
        self.status = status


async def _ask(request: Callable[[], Awaitable[Any]]) -> Any:
    try:
        return await request()
    except MistralError as error:
        body = error.body.strip()[:200]
        raise _Failed(error.status_code, f"HTTP {error.status_code}: {body}") from error
    except (httpx2.HTTPError, NoResponseError, TimeoutError, OSError) as error:
        raise _Failed(None, f"{type(error).__name__}: {error}") from error


async def check_mistral(
    client: Mistral, settings: Settings, config: BotConfig, holds: Holds, *, full: bool
) -> list[Check]:
    """The Mistral checks; ``full=False``: the key only."""
    if not settings.mistral_api_key:
        return [failed("mistral.key", "MISTRAL_API_KEY is not set", _KEY_FIX)]
    timeout_ms = min(settings.mistral_timeout_ms, 15_000)
    try:
        listed = await _ask(
            lambda: client.models.list_async(retries=NO_RETRIES, timeout_ms=timeout_ms)
        )
    except _Failed as error:
        return [_key_failure(error, settings)]
    models = [model.id for model in listed.data or []]
    checks = [ok("mistral.key", f"the key works ({len(models)} models available)")]
    if not full:
        return checks
    if config.model is not None:
        checks.append(await _check_model(client, config.model, models, timeout_ms))
    if config.agent_id is not None:
        checks.append(await _check_agent(client, config.agent_id, timeout_ms))
    for connector in config.tools.connectors:
        checks.append(await _check_connector(client, connector, holds, timeout_ms))
    return checks


def _key_failure(error: _Failed, settings: Settings) -> Check:
    if error.status == 401:
        return failed("mistral.key", f"the key was refused ({error})", _KEY_FIX)
    if error.status is None:
        where = settings.mistral_server_url or "Mistral's API"
        return failed(
            "mistral.key",
            f"{where} does not answer ({error})",
            "check the network (a proxy, a firewall) and MISTRAL_SERVER_URL",
        )
    return failed(
        "mistral.key",
        f"listing the models failed ({error})",
        "check Mistral's status page, and that the key may list models",
    )


async def _check_model(client: Mistral, model: str, models: list[str], timeout_ms: int) -> Check:
    try:
        card = await _ask(
            lambda: client.models.retrieve_async(
                model_id=model, retries=NO_RETRIES, timeout_ms=timeout_ms
            )
        )
    except _Failed as error:
        if error.status == 404:
            some = ", ".join(models[:5]) or "none listed"
            return failed(
                "mistral.model",
                f"no model {model!r} for this key ({error})",
                f"set model in bot.yml to a model the key can use (e.g. {some})",
            )
        return failed("mistral.model", f"{model}: {error}", "run doctor again; check the key")
    deprecation = getattr(card, "deprecation", None)
    if deprecation:
        replacement = getattr(card, "deprecation_replacement_model", None) or "a newer model"
        return warning(
            "mistral.model",
            f"{model} is deprecated (retired on {deprecation})",
            f"set model in bot.yml to {replacement}",
        )
    return ok("mistral.model", f"{model} exists")


async def _check_agent(client: Mistral, agent_id: str, timeout_ms: int) -> Check:
    try:
        agent = await _ask(
            lambda: client.beta.agents.get_async(
                agent_id=agent_id, retries=NO_RETRIES, timeout_ms=timeout_ms
            )
        )
    except _Failed as error:
        if error.status == 404:
            return failed(
                "mistral.agent",
                f"no agent {agent_id} for this key ({error})",
                "check agent_id in bot.yml (the agent's id, ag_…), and that the key belongs "
                "to the agent's workspace",
            )
        return failed("mistral.agent", f"{agent_id}: {error}", "run doctor again; check the key")
    return ok("mistral.agent", f"{agent_id}: {agent.name} on {agent.model}")


async def _check_connector(
    client: Mistral, connector: ConnectorConfig, holds: Holds, timeout_ms: int
) -> Check:
    name = connector.connector_id
    check = f"mistral.connector {name}"
    try:
        listed = await _ask(
            lambda: client.beta.connectors.list_tools_async(
                connector_id_or_name=name, retries=NO_RETRIES, timeout_ms=timeout_ms
            )
        )
    except _Failed as error:
        if error.status == 404:
            return failed(
                check,
                f"no connector {name!r} ({error})",
                "check connector_id in bot.yml (the connector's name or id)",
            )
        return warning(
            check,
            f"its tools could not be listed ({error})",
            "check the connector's server and credentials on Mistral's side; until then, "
            "rules can only name its tools exactly",
        )
    tools = [str(_tool_name(tool)) for tool in listed]
    return _connector_holds(check, connector, tools, holds)


def _tool_name(tool: Any) -> Any:
    return tool.get("name") if isinstance(tool, dict) else getattr(tool, "name", tool)


def _connector_holds(
    check: str, connector: ConnectorConfig, tools: list[str], holds: Holds
) -> Check:
    """Which of the connector's tools wait for a decision, and names that match none."""
    configuration = connector.tool_configuration
    server_tool = ServerTool(
        "connector",
        connector_id=connector.connector_id,
        include=tuple(configuration.include) if configuration.include is not None else None,
        exclude=tuple(configuration.exclude) if configuration.exclude is not None else None,
        requires_confirmation=tuple(configuration.requires_confirmation),
    )
    offered = [tool for tool in tools if server_tool.offers(tool)]
    held = [t for t in offered if t in server_tool.requires_confirmation or holds(t)]
    detail = (
        f"{len(tools)} tools, {len(offered)} offered to the model; held for a decision: "
        f"{', '.join(held) or 'none'}"
    )
    named = {*(configuration.include or ()), *(configuration.exclude or ())}
    named |= set(configuration.requires_confirmation)
    unknown = sorted(named - set(tools))
    if unknown:
        return warning(
            check,
            f"{detail}; tool_configuration names tools it does not have: {', '.join(unknown)}",
            "correct those names in tools.connectors (they are matched exactly)",
        )
    return ok(check, detail)
