"""Sends Slack's requests to the bot's real HTTP endpoint, signed like Slack signs them."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from slack_sdk.signature import SignatureVerifier

from tests.standins.slack import SlackStandIn

TEAM = "T0TEAM"
_ids = itertools.count(1)


def envelope(kind: str, user: str) -> dict[str, Any]:
    """What every interactive payload carries: its type, the workspace, the user, a trigger."""
    return {
        "type": kind,
        "team": {"id": TEAM, "domain": "example"},
        "user": {"id": user, "team_id": TEAM},
        "api_app_id": "A0APP",
        "token": "legacy",
        "trigger_id": f"{next(_ids)}.trigger",
    }


@dataclass
class Reply:
    status: int
    text: str


class SlackSender:
    def __init__(
        self, base_url: str, signing_secret: str, workspace: SlackStandIn | None = None
    ) -> None:
        self.events_url = base_url + "/slack/events"
        self.workspace = workspace
        self.verifier = SignatureVerifier(signing_secret)
        self._ts = itertools.count(1)

    def next_ts(self) -> str:
        return f"1710000000.{next(self._ts):06d}"

    def headers(self, body: str, *, timestamp: int | None = None) -> dict[str, str]:
        stamp = str(timestamp if timestamp is not None else int(time.time()))
        return {
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": self.verifier.generate_signature(timestamp=stamp, body=body),
        }

    async def post(
        self, body: str, content_type: str, headers: dict[str, str] | None = None
    ) -> Reply:
        all_headers = {"Content-Type": content_type, **(headers or self.headers(body))}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.events_url, data=body.encode(), headers=all_headers) as response,
        ):
            return Reply(response.status, await response.text())

    async def event(self, event: dict[str, Any], *, event_id: str | None = None) -> Reply:
        if self.workspace is not None and "ts" in event and "channel" in event:
            # the person's message exists in the workspace, as it would in Slack
            self.workspace.messages[(event["channel"], event["ts"])] = {
                k: v for k, v in event.items() if k in ("user", "text", "ts", "thread_ts")
            }
        body = json.dumps(
            {
                "token": "legacy",
                "team_id": TEAM,
                "api_app_id": "A0APP",
                "type": "event_callback",
                "event_id": event_id or f"Ev{next(_ids):08d}",
                "event_time": int(time.time()),
                "event": {"event_ts": event.get("ts"), **event},
                "authorizations": [{"team_id": TEAM, "user_id": "UBOT", "is_bot": True}],
            }
        )
        return await self.post(body, "application/json")

    async def mention(
        self,
        text: str,
        *,
        user: str = "UREQ",
        channel: str = "C0GENERAL",
        thread_ts: str | None = None,
        ts: str | None = None,
        event_id: str | None = None,
    ) -> str:
        """@mention the bot; returns the message ts."""
        ts = ts or self.next_ts()
        event = {
            "type": "app_mention",
            "user": user,
            "text": f"<@UBOT> {text}",
            "ts": ts,
            "channel": channel,
            "team": TEAM,
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        reply = await self.event(event, event_id=event_id)
        assert reply.status == 200, reply
        return ts

    async def message(
        self,
        text: str,
        *,
        user: str = "UREQ",
        channel: str = "D0DM",
        channel_type: str = "im",
        thread_ts: str | None = None,
        **extra: Any,
    ) -> str:
        """A plain message event (a DM by default); returns its ts."""
        ts = self.next_ts()
        event = {
            "type": "message",
            "user": user,
            "text": text,
            "ts": ts,
            "channel": channel,
            "channel_type": channel_type,
            "team": TEAM,
            **extra,
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        reply = await self.event(event)
        assert reply.status == 200, reply
        return ts

    async def interaction(self, payload: dict[str, Any]) -> Reply:
        body = urlencode({"payload": json.dumps(payload)})
        return await self.post(body, "application/x-www-form-urlencoded")

    async def click(
        self,
        action_id: str,
        value: str,
        *,
        user: str,
        channel: str = "C0APPROVALS",
        message_ts: str = "1700000000.000100",
    ) -> Reply:
        return await self.interaction(
            {
                **envelope("block_actions", user),
                "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
                "channel": {"id": channel},
                "message": {"ts": message_ts, "type": "message"},
                "actions": [
                    {
                        "action_id": action_id,
                        "block_id": "approval_actions",
                        "value": value,
                        "type": "button",
                        "action_ts": str(time.time()),
                    }
                ],
            }
        )

    async def submit_view(
        self,
        callback_id: str,
        private_metadata: str,
        *,
        user: str,
        values: dict[str, dict[str, dict[str, Any]]],
    ) -> Reply:
        return await self.interaction(
            {
                **envelope("view_submission", user),
                "view": {
                    "id": "V0VIEW",
                    "type": "modal",
                    "callback_id": callback_id,
                    "private_metadata": private_metadata,
                    "state": {"values": values},
                },
            }
        )
