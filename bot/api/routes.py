"""The API's handlers: ``/api/v1/approvals`` (create, read with a long poll, report the
outcome) and ``/api/v1/openapi.json``. Each authenticates the client, counts it against its
rate limit, reads a bounded body, and hands the request to the flow (bot.flow.api_approvals).
Every failure is a problem+json answer; nothing raised here reaches the client as a
traceback."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web
from redis.exceptions import RedisError

from bot.api import parsing
from bot.api.openapi import DOCUMENT
from bot.api.problems import problem
from bot.core.api_config import ApiClient
from bot.errors import ApprovalNotFound, InvalidInput, UpstreamError
from bot.flow.api_approvals import MAX_WAIT_S, ApiApprovals
from bot.flow.api_view import approval_view
from bot.logs import log_context

logger = logging.getLogger(__name__)

#: The flow's API service, set by the composition root (bot.ops.http_server).
APPROVALS = web.AppKey("api_approvals", ApiApprovals)
#: The largest body a request may have (``API_MAX_BODY_BYTES``).
MAX_BODY = web.AppKey("api_max_body_bytes", int)
#: callback URLs may name this machine or a private network (API_WEBHOOK_PRIVATE_ADDRESSES)
PRIVATE_WEBHOOKS = web.AppKey("api_webhook_private_addresses", bool)

PREFIX: Final = "/api/v1"

Handler = Callable[[web.Request, ApiClient], Awaitable[web.StreamResponse]]


def authenticated(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Authenticate (401), rate-limit (429), and answer every failure as a problem."""

    @functools.wraps(handler)
    async def answer(request: web.Request) -> web.StreamResponse:
        approvals = request.app[APPROVALS]
        try:
            client = _client(request, approvals)
            if client is None:
                return problem(
                    401,
                    "a valid API key is needed: send Authorization: Bearer <key>",
                    field="Authorization",
                    headers={"WWW-Authenticate": 'Bearer realm="approval-bot"'},
                )
            with log_context(user=f"client:{client.name}"):
                wait_s = await approvals.over_limit(client)
                if wait_s is not None:
                    seconds = max(1, int(wait_s + 0.999))
                    return problem(
                        429,
                        f"the client {client.name} sent too many requests; try again in "
                        f"{seconds} s",
                        headers={"Retry-After": str(seconds)},
                    )
                return await handler(request, client)
        except InvalidInput as error:
            return problem(error.status, error.detail, field=error.field)
        except ApprovalNotFound as error:
            return problem(404, f"no approval request {error.approval_id!r} of this client")
        except (RedisError, OSError, UpstreamError) as error:
            # nothing was made (or what was made is kept): the client may send it again
            logger.warning("API %s %s failed upstream: %r", request.method, request.path, error)
            return problem(
                503, "Slack or the bot's storage is unavailable; try again shortly",
                headers={"Retry-After": "5"},
            )  # fmt: skip
        except Exception:  # a bug: logged whole; the client gets no traceback
            logger.exception("API %s %s failed", request.method, request.path)
            return problem(500, "the request failed inside the bot; it is logged")

    return answer


def _client(request: web.Request, approvals: ApiApprovals) -> ApiClient | None:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return approvals.authenticate(key.strip())


async def _body(request: web.Request) -> dict[str, Any]:
    """The JSON body, read up to the limit (413 past it, before reading it all)."""
    limit = request.app[MAX_BODY]
    too_large = InvalidInput(
        "", f"the body is larger than {limit} bytes; fix: send less (large arguments are "
        "better passed by reference)", status=413,
    )  # fmt: skip
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    raw = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        raw += chunk
        if len(raw) > limit:
            raise too_large
    return parsing.json_body(bytes(raw))


@authenticated
async def create_approval(request: web.Request, client: ApiClient) -> web.StreamResponse:
    key = parsing.idempotency_key(request.headers.get("Idempotency-Key"))
    ask = parsing.approval_ask(
        await _body(request), private_webhooks=request.app.get(PRIVATE_WEBHOOKS, False)
    )
    approval, created = await request.app[APPROVALS].create(client, ask, key)
    headers = {"Location": f"{PREFIX}/approvals/{approval.id}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return web.json_response(
        approval_view(approval), status=201 if created else 200, headers=headers
    )


@authenticated
async def get_approval(request: web.Request, client: ApiClient) -> web.StreamResponse:
    wait_s = parsing.wait_seconds(request.query.get("wait"), MAX_WAIT_S)
    approval = await request.app[APPROVALS].wait(client, request.match_info["id"], wait_s)
    return web.json_response(approval_view(approval))


@authenticated
async def report_outcome(request: web.Request, client: ApiClient) -> web.StreamResponse:
    text, status = parsing.outcome(await _body(request))
    approval = await request.app[APPROVALS].report_outcome(
        client, request.match_info["id"], text, status
    )
    return web.json_response(approval_view(approval))


async def openapi(request: web.Request) -> web.StreamResponse:
    return web.json_response(DOCUMENT)


def register(app: web.Application) -> None:
    """Mount the API's routes on ``app`` (which must hold APPROVALS and MAX_BODY)."""
    app.router.add_post(f"{PREFIX}/approvals", create_approval)
    app.router.add_get(f"{PREFIX}/approvals/{{id}}", get_approval)
    app.router.add_post(f"{PREFIX}/approvals/{{id}}/outcome", report_outcome)
    app.router.add_get(f"{PREFIX}/openapi.json", openapi)
