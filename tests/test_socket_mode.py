"""Socket Mode: the same bot, fed events over Slack's WebSocket protocol."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import redis.asyncio as aioredis
from aiohttp import WSMsgType, web

from bot.core.config import load_config
from bot.mistral.tools import load_tools
from bot.ops.cli import connect_socket_mode
from bot.ops.services import open_services
from bot.storage.embedded_redis import free_port
from tests.helpers import all_text, make_settings
from tests.standins.mistral import MistralStandIn
from tests.standins.slack import SlackStandIn


async def test_socket_mode_event_is_acknowledged_and_answered(
    redis_client: aioredis.Redis,
    redis_url: str,
    slack: SlackStandIn,
    mistral: MistralStandIn,
    config_path: Path,
) -> None:
    acks: asyncio.Queue[dict[str, object]] = asyncio.Queue()

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "hello", "num_connections": 1})
        envelope = {
            "envelope_id": "env-1",
            "type": "events_api",
            "accepts_response_payload": False,
            "payload": {
                "type": "event_callback",
                "team_id": "T0TEAM",
                "api_app_id": "A0APP",
                "event_id": "Ev0SOCKET",
                "event_time": 1,
                "event": {
                    "type": "message",
                    "channel_type": "im",
                    "channel": "D0DM",
                    "user": "UREQ",
                    "text": "hello over socket",
                    "ts": "1710000000.000001",
                },
            },
        }
        await ws.send_str(json.dumps(envelope))
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await acks.put(json.loads(message.data))
        return ws

    app = web.Application()
    app.router.add_get("/link", websocket)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    slack.socket_url = f"ws://127.0.0.1:{port}/link"

    settings = make_settings(slack, mistral, redis_url, config_path, slack_app_token="xapp-test")
    config = load_config(config_path)
    try:
        async with open_services(
            settings, config, load_tools(config, config_path), verify_requests=False
        ) as services:
            handler = await connect_socket_mode(services)
            try:
                ack = await asyncio.wait_for(acks.get(), timeout=10)
                assert ack["envelope_id"] == "env-1"
                update = await slack.wait_for(
                    "chat.update", lambda a: "hello over socket" in all_text(a)
                )
                assert update["channel"] == "D0DM"
                await services.jobs.idle()
            finally:
                await handler.close_async()
    finally:
        await runner.cleanup()
