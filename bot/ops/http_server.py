"""HTTP mode: the aiohttp server Slack sends events, interactions and commands to."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from redis.exceptions import RedisError
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request

from bot.api import routes as api_routes
from bot.ops.services import Services
from bot.storage.connections import counting

logger = logging.getLogger(__name__)

SERVICES = web.AppKey("services", Services)

#: How long a scrape waits for Redis: well within Prometheus's default 10 s scrape timeout.
BACKLOG_READ_TIMEOUT_S: Final = 2.0


async def slack_events(request: web.Request) -> web.Response:
    """Events, interactivity and slash commands; Bolt verifies the signature (401 if bad)."""
    services = request.app[SERVICES]
    if services.background.full:  # bounded: answer "later" rather than pile up work
        logger.warning("%d listener tasks in flight; answering 503", services.background.limit)
        return web.json_response({"error": "busy; retry later"}, status=503)
    try:
        bolt_request = await to_bolt_request(request)
    except ValueError as error:  # a body that is not the JSON or form Slack sends
        logger.warning("unparseable request to /slack/events: %s", error)
        return web.json_response({"error": "malformed request body"}, status=400)
    started = time.perf_counter()
    with counting() as round_trips:
        bolt_response = await services.bolt.async_dispatch(bolt_request)
    services.metrics.answered(
        _kind(bolt_request.body), time.perf_counter() - started, round_trips.count
    )
    return await to_aiohttp_response(bolt_response)


def _kind(body: dict[str, Any]) -> str:
    """The kind of a Slack request, for the metrics' labels (a closed set)."""
    kind = body.get("type")
    if "command" in body:
        return "command"
    if kind in ("block_actions", "view_submission", "view_closed", "event_callback"):
        return str(kind)
    return "other"


async def healthz(request: web.Request) -> web.Response:
    """The process is up."""
    return web.json_response({"status": "ok"})


def _loop_state(running: bool | None) -> str:
    return "off" if running is None else "running" if running else "stopped"


async def readyz(request: web.Request) -> web.Response:
    """Redis answers, the config is loaded, and the background loops this process should
    run (the job reader, the sweeper) are running: the bot can take work.

    ``preflight`` reports the start-up checks (what failed, with the fix) but never makes
    the answer 503: Slack or Mistral briefly unreachable must not take the bot out of
    rotation, and restarting it would not fix a wrong token."""
    services = request.app[SERVICES]
    redis_ok = await services.store.ping()
    loops = {
        "jobs": _loop_state(services.jobs.reading),
        "sweeper": _loop_state(services.sweeper.running),
    }
    body: dict[str, Any] = {
        "redis": "ok" if redis_ok else "unreachable",
        "config": "ok",
        "loops": loops,
        "preflight": services.preflight.state(),
        # what Slack refused for good (not retried): reported; the bot stays ready
        "refused": list(services.metrics.recent_permanent),
        # connectors not offered to the model: their tools could not be listed (fail closed)
        "connectors_left_out": services.assistant.runner.connector_tools.problems,
    }
    ready = redis_ok and "stopped" not in loops.values()
    return web.json_response(body, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics. The backlog gauges are read from Redis now; if Redis does not
    answer they keep their last values, and the scrape still succeeds."""
    services = request.app[SERVICES]
    try:
        async with asyncio.timeout(BACKLOG_READ_TIMEOUT_S):
            services.metrics.show_backlog(await services.store.backlog())
    except (RedisError, OSError, TimeoutError) as error:
        logger.warning("metrics: Redis not read (%r); backlog gauges keep their last values", error)
    return web.Response(
        body=services.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


@web.middleware
async def count_requests(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Count each request by its route (not its raw path: unknown paths would make a label
    value each) and status."""
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else "other"
    status = 500  # a handler that raised something else than an HTTP answer
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as answer:
        status = answer.status
        raise
    finally:
        if SERVICES in request.app:  # not before start-up has opened the services
            request.app[SERVICES].metrics.http_requests.labels(path, str(status)).inc()


def build_web_app(
    open_services: Callable[[], AbstractAsyncContextManager[Services]],
    *,
    answer_slack: bool = True,
) -> web.Application:
    """The aiohttp application; ``open_services`` is entered on start-up, left on shutdown.
    ``answer_slack=False`` (a worker): no /slack/events, only health and metrics."""
    app = web.Application(client_max_size=2 * 1024**2, middlewares=[count_requests])

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        async with open_services() as services:
            app[SERVICES] = services
            app[api_routes.APPROVALS] = services.assistant.api
            app[api_routes.MAX_BODY] = services.settings.api_max_body_bytes
            app[api_routes.PRIVATE_WEBHOOKS] = services.settings.api_webhook_private_addresses
            yield

    app.cleanup_ctx.append(services_ctx)
    if answer_slack:
        app.router.add_post("/slack/events", slack_events)
        api_routes.register(app)  # the HTTP API for agents outside Slack (bot.api)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
