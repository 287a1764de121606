"""HTTP mode: the aiohttp server Slack sends events, interactions and commands to."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request

from bot.services import Services

logger = logging.getLogger(__name__)

SERVICES = web.AppKey("services", Services)


async def slack_events(request: web.Request) -> web.Response:
    """Events, interactivity and slash commands; Bolt verifies the signature (401 if bad)."""
    services = request.app[SERVICES]
    try:
        bolt_request = await to_bolt_request(request)
    except ValueError as error:  # a body that is not the JSON or form Slack sends
        logger.warning("unparseable request to /slack/events: %s", error)
        return web.json_response({"error": "malformed request body"}, status=400)
    bolt_response = await services.bolt.async_dispatch(bolt_request)
    return await to_aiohttp_response(bolt_response)


async def healthz(request: web.Request) -> web.Response:
    """The process is up."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Redis answers and the config is loaded: the bot can take work."""
    services = request.app[SERVICES]
    redis_ok = await services.store.ping()
    body = {"redis": "ok" if redis_ok else "unreachable", "config": "ok"}
    return web.json_response(body, status=200 if redis_ok else 503)


def build_web_app(
    open_services: Callable[[], AbstractAsyncContextManager[Services]],
) -> web.Application:
    """The aiohttp application; ``open_services`` is entered on start-up, left on shutdown."""
    app = web.Application(client_max_size=2 * 1024**2)

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        async with open_services() as services:
            app[SERVICES] = services
            yield

    app.cleanup_ctx.append(services_ctx)
    app.router.add_post("/slack/events", slack_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
