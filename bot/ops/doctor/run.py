"""Runs the checks: all of them for ``approval-bot doctor``, the fast ones at start-up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from pathlib import Path
from typing import Final

import aiohttp
from mistralai.client import Mistral
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.config import BotConfig
from bot.core.policy import Holds, Policy
from bot.mistral.runner import make_client
from bot.ops.doctor.mistral import check_mistral
from bot.ops.doctor.redis import check_embedded, check_redis
from bot.ops.doctor.report import Check, Report, failed
from bot.ops.doctor.slack import check_slack
from bot.ops.doctor.tools import check_credentials, check_functions, check_mcp_servers
from bot.ops.settings import Settings
from bot.slack.adapter import make_web_client
from bot.storage.connections import RedisClient, open_redis

logger = logging.getLogger(__name__)

#: How long each service's checks may take in ``doctor`` (an MCP server may take 30 s to
#: start) and at start-up (where they only report).
DOCTOR_TIMEOUT_S: Final = 60.0
PREFLIGHT_TIMEOUT_S: Final = 10.0


async def bounded(service: str, checks: Awaitable[list[Check]], timeout_s: float) -> list[Check]:
    """``checks``, or one failed check if they take longer than ``timeout_s``."""
    try:
        async with asyncio.timeout(timeout_s):
            return await checks
    except TimeoutError:
        return [
            failed(
                service,
                f"no answer within {timeout_s:.0f} s",
                f"check the network and that {service} is up, then run doctor again",
            )
        ]
    except Exception as error:  # a bug in a check: report it as that service's result
        logger.exception("doctor: the %s checks failed", service)
        return [
            failed(
                service,
                f"the checks themselves failed: {type(error).__name__}: {error}",
                "run doctor again with LOG_LEVEL=DEBUG, and report the traceback it logs",
            )
        ]


def policy_holds(config: BotConfig) -> Holds:
    """What the policy holds for a decision, without the admins' run-time overrides."""
    held = [f.ref.partition(":")[2] for f in config.tools.functions if f.requires_confirmation]
    tools = config.tools
    for configuration in (
        *(c.tool_configuration for c in tools.connectors),
        *(b.tool_configuration for b in tools.builtins),
        *(s.tool_configuration for s in tools.mcp_servers),
    ):
        held += configuration.requires_confirmation
    return Holds(Policy(config, held=held))


async def run_doctor(settings: Settings, config: BotConfig, config_path: Path) -> Report:
    """Every check, each service's at the same time; the config itself is already valid."""
    holds = policy_holds(config)
    function_checks, _ = check_functions(config, config_path)
    async with (
        aiohttp.ClientSession() as session,
        make_client(
            settings.mistral_api_key or "",
            settings.mistral_server_url,
            timeout_ms=settings.mistral_timeout_ms,
            retry_for_ms=settings.mistral_retry_for_ms,
        ) as mistral,
    ):
        slack = make_web_client(settings.slack_bot_token or "", settings.slack_api_url, session)
        groups = await asyncio.gather(
            bounded("slack", check_slack(slack, settings, config, full=True), DOCTOR_TIMEOUT_S),
            bounded(
                "mistral",
                check_mistral(mistral, settings, config, holds, full=True),
                DOCTOR_TIMEOUT_S,
            ),
            bounded("mcp", check_mcp_servers(config, config_path, holds), DOCTOR_TIMEOUT_S),
            bounded("redis", _check_redis(settings), DOCTOR_TIMEOUT_S),
        )
    slack_checks, mistral_checks, mcp_checks, redis_checks = groups
    credentials = check_credentials(config, config_path)
    checks = [*slack_checks, *mistral_checks, *function_checks, *credentials, *mcp_checks]
    return Report((*checks, *redis_checks))


async def _check_redis(settings: Settings) -> list[Check]:
    if settings.redis_url is None:
        return await check_embedded(settings.data_dir)
    client = open_redis(settings.redis_url, max_connections=4, cluster=settings.redis_cluster)
    try:
        return await check_redis(client, settings.redis_url)
    finally:
        await client.aclose()


async def preflight_checks(
    settings: Settings,
    config: BotConfig,
    slack: AsyncWebClient,
    mistral: Mistral,
    redis_client: RedisClient,
    redis_url: str,
) -> list[Check]:
    """The fast subset: Slack's token, scopes and channels, Mistral's key, Redis."""
    holds = policy_holds(config)
    groups = await asyncio.gather(
        bounded("slack", check_slack(slack, settings, config, full=False), PREFLIGHT_TIMEOUT_S),
        bounded(
            "mistral",
            check_mistral(mistral, settings, config, holds, full=False),
            PREFLIGHT_TIMEOUT_S,
        ),
        bounded("redis", check_redis(redis_client, redis_url), PREFLIGHT_TIMEOUT_S),
    )
    return [check for group in groups for check in group]
