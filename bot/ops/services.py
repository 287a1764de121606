"""The composition root: builds the bot's parts once and closes them in reverse order."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import aiohttp
from redis.asyncio.cluster import RedisCluster
from slack_bolt.async_app import AsyncApp

from bot.core.config import BotConfig
from bot.core.policy import Policy
from bot.errors import ConfigError
from bot.flow.agent_view import AgentView
from bot.flow.api_approvals import ApiSettings
from bot.flow.assistant import Assistant
from bot.flow.console import Console
from bot.flow.directory import Directory
from bot.flow.gatekeeper import Gatekeeper
from bot.flow.sweeper import Sweeper
from bot.flow.webhooks import HttpWebhookSender
from bot.metrics import Metrics
from bot.mistral.mcp_servers import load_mcp_servers
from bot.mistral.runner import AgentRunner, make_client
from bot.mistral.server_tools import held_names, load_server_tools
from bot.mistral.tools import Tool
from bot.ops.doctor.preflight import Preflight
from bot.ops.doctor.run import preflight_checks
from bot.ops.settings import Settings, load_api_clients
from bot.slack.adapter import SlackChat, make_web_client
from bot.slack.admission import Admission
from bot.slack.app import build_bolt_app
from bot.slack.background import Background
from bot.storage.agent_threads import AgentThreadStore
from bot.storage.audit import AuditLog
from bot.storage.audit_shipper import AuditShipper, build_sinks
from bot.storage.connections import fill_pool, open_redis
from bot.storage.embedded_redis import EmbeddedRedis
from bot.storage.jobs import JobQueue
from bot.storage.key_migration import migrate_key_names
from bot.storage.policy_store import PolicyStore
from bot.storage.store import Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    settings: Settings
    config: BotConfig
    store: Store
    chat: SlackChat
    assistant: Assistant
    console: Console
    jobs: JobQueue
    sweeper: Sweeper
    bolt: AsyncApp
    metrics: Metrics
    background: Background
    preflight: Preflight


@asynccontextmanager
async def open_services(
    settings: Settings,
    config: BotConfig,
    tools: Sequence[Tool],
    *,
    verify_requests: bool = True,
    start_background: bool = True,
) -> AsyncIterator[Services]:
    """Start Redis (embedded when REDIS_URL is unset), clients, the job runner, the sweeper
    and the Bolt app. ``start_background=False`` leaves jobs and sweeps to other processes."""
    async with AsyncExitStack() as stack:
        metrics = Metrics()
        problems = settings.redis_problems()
        if problems:
            raise ConfigError("the environment", problems)
        url = settings.redis_url
        if url is None:
            url = await stack.enter_async_context(EmbeddedRedis(settings.data_dir))
        client = open_redis(
            url, max_connections=settings.redis_max_connections, cluster=settings.redis_cluster
        )
        stack.push_async_callback(client.aclose)
        store = Store(client)
        if not await store.ping():
            logger.warning(
                "Redis at %s is not answering; /readyz fails until it does, and keys named "
                "the old way (if any) are renamed at the next start",
                url,
            )
        else:
            if not isinstance(client, RedisCluster):  # the bot never ran on one untagged
                await migrate_key_names(client)
            await store.load_scripts()
            await fill_pool(client, settings.redis_max_connections)

        slack_session = aiohttp.ClientSession()
        stack.push_async_callback(slack_session.close)
        mistral = make_client(
            settings.mistral_api_key or "",
            settings.mistral_server_url,
            timeout_ms=settings.mistral_timeout_ms,
            retry_for_ms=settings.mistral_retry_for_ms,
        )
        await stack.enter_async_context(mistral)
        chat = SlackChat(
            make_web_client(settings.slack_bot_token or "", settings.slack_api_url, slack_session),
            metrics,
            posts_per_s=settings.slack_posts_per_s,
        )
        preflight = Preflight(
            lambda: preflight_checks(settings, config, chat.client, mistral, client, url)
        )
        if settings.preflight:  # in the background: Slack may be briefly unreachable
            preflight.start()
        stack.push_async_callback(preflight.close)
        jobs = JobQueue(
            client,
            metrics,
            concurrency=settings.worker_concurrency,
            lease_ms=settings.job_lease_s * 1000,
        )
        server_tools = load_server_tools(config, settings.bot_config)
        mcp_servers = load_mcp_servers(config, settings.bot_config)
        stack.push_async_callback(mcp_servers.aclose)
        await mcp_servers.start_all()
        held = [tool.name for tool in tools if tool.requires_confirmation]
        held += held_names(server_tools)
        held += [
            n for s in config.tools.mcp_servers for n in s.tool_configuration.requires_confirmation
        ]
        policy = Policy(config, held=held)
        policy_store = PolicyStore(client)
        directory = Directory(store, chat, policy)
        audit = AuditLog(client, settings.audit_retention_days)
        gatekeeper = Gatekeeper(policy, policy_store, directory, audit, metrics)
        runner = AgentRunner(
            mistral,
            config,
            tools,
            server_tools,
            mcp_servers,
            metrics=metrics,
            retry_for_ms=settings.mistral_retry_for_ms,
        )
        # POSTs decisions to API clients' callback URLs (public addresses only, unless set)
        webhooks = HttpWebhookSender(private_ok=settings.api_webhook_private_addresses)
        stack.push_async_callback(webhooks.aclose)
        api = ApiSettings(
            load_api_clients(config, settings.bot_config),
            settings.api_requests_per_minute,
            webhooks,
        )
        # the requester's thread as Slack shows AI apps, plain messages where it cannot
        agent_view = AgentView(chat, chat, AgentThreadStore(client), config.assistant)
        assistant = Assistant(store, runner, agent_view, gatekeeper, jobs, metrics, api)
        agent_view.decidable = assistant.decisions.decidable
        console = Console(store, gatekeeper, assistant.decisions)
        background = Background()
        bolt = build_bolt_app(
            assistant,
            console,
            chat,
            background,
            signing_secret=settings.slack_signing_secret if verify_requests else None,
            agent_view=agent_view,
            people=Admission(
                org_approvers=settings.slack_org_approvers,
                org_requesters=settings.slack_org_requesters,
                external_approvers=settings.slack_external_approvers,
                external_requesters=settings.slack_external_requesters,
            ),
        )
        sweeper = Sweeper(client, assistant, settings.sweep_interval_s)
        sinks = build_sinks(
            settings.audit_sink_names,
            settings.audit_directory,
            settings.audit_webhook_url,
            settings.audit_webhook_secret,
        )
        shipper = AuditShipper(client, sinks, metrics)
        if start_background:
            jobs.start(assistant.run_job, assistant.give_up)
            sweeper.start()
            shipper.start()
        stack.push_async_callback(shipper.close)  # closes after the jobs, before Redis
        # Registered last, so they close first: stop taking work, let jobs in flight finish
        # (or hand them back to the other processes) while Redis and the MCP servers are up.
        stack.push_async_callback(jobs.close, settings.shutdown_grace_s)
        stack.push_async_callback(sweeper.close)
        stack.push_async_callback(background.close, settings.shutdown_grace_s)
        yield Services(
            settings, config, store, chat, assistant, console, jobs, sweeper, bolt, metrics,
            background, preflight,
        )  # fmt: skip
