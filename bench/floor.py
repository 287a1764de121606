"""The floor: the least an HTTP endpoint for Slack's interactions can do.

``python -m bench.floor PORT REDIS_URL SECRET`` serves POST /slack/events: read the body,
verify Slack's signature (401 if wrong), parse the payload, one Redis round trip (the status
field of the approval the button names), answer 200. Same aiohttp, same Redis client, same
machine as the bot: what the bot costs above it is the bot's own work.
"""

from __future__ import annotations

import json
import sys
from urllib.parse import parse_qs

import redis.asyncio as redis
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from bot.storage import keys

CLIENT = web.AppKey("client", redis.Redis)
VERIFIER = web.AppKey("verifier", SignatureVerifier)


async def events(request: web.Request) -> web.Response:
    body = (await request.read()).decode()
    if not request.app[VERIFIER].is_valid(
        body,
        request.headers.get("X-Slack-Request-Timestamp", ""),
        request.headers.get("X-Slack-Signature", ""),
    ):
        return web.Response(status=401)
    payload = json.loads(parse_qs(body)["payload"][0])
    approval_id = str(payload["actions"][0]["value"])
    await request.app[CLIENT].hget(keys.approval(approval_id), "status")
    return web.Response(status=200)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(status=200)


def main(argv: list[str]) -> None:
    port, redis_url, secret = int(argv[0]), argv[1], argv[2]
    app = web.Application()
    app[VERIFIER] = SignatureVerifier(secret)

    async def client_ctx(app: web.Application):  # type: ignore[no-untyped-def]
        app[CLIENT] = redis.Redis.from_url(redis_url)
        yield
        await app[CLIENT].aclose()

    app.cleanup_ctx.append(client_ctx)
    app.router.add_post("/slack/events", events)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main(sys.argv[1:])
