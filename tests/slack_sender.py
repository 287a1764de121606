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

from tests.standins.slack import SlackStandIn, new_trigger_id

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
        "trigger_id": new_trigger_id(),
    }


def button_actions(action_id: str, value: str, *, user: str, block_id: str) -> dict[str, Any]:
    """A ``block_actions`` payload for one button click, without its container."""
    return {
        **envelope("block_actions", user),
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "value": value,
                "type": "button",
                "action_ts": str(time.time()),
            }
        ],
    }


def shown_block_id(surfaces: list[dict[str, Any]], action_id: str, value: str) -> str:
    """The block id of the ``action_id`` button carrying ``value`` in the newest of
    ``surfaces`` that shows it (the Approve/Deny all block first), else ``approval_actions``
    (the one actions block of cards from before per-call buttons)."""
    for surface in reversed(surfaces):
        found = [
            str(block.get("block_id") or "generated")  # Slack makes one up when none is set
            for block in surface.get("blocks") or []
            if block.get("type") == "actions"
            and any(
                e.get("action_id") == action_id and e.get("value") == value
                for e in block.get("elements") or []
            )
        ]
        if found:
            return next((b for b in found if ".all." in b), found[0])
    return "approval_actions"


def _channel_name(channel: str) -> str:
    """The ``channel_name`` Slack puts in a slash command for ``channel``."""
    if channel.startswith("D"):
        return "directmessage"
    if channel.startswith("G"):
        return "privategroup"
    return channel.lower()


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
        self.last_response_url: str | None = None
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

    async def command(
        self,
        command: str,
        text: str,
        *,
        user: str,
        channel: str = "C0GENERAL",
        response_url: str | None = None,
    ) -> Reply:
        """A slash command (e.g. ``/approvals``), form-encoded and signed as Slack sends it.

        Without ``response_url`` the workspace stand-in hands out a fresh one (a placeholder
        hooks.slack.com URL when there is no workspace); the URL used is kept in
        ``last_response_url``.
        """
        if response_url is None:
            response_url = (
                self.workspace.new_response_url()
                if self.workspace is not None
                else f"https://hooks.slack.com/commands/{TEAM}/{next(_ids)}/standin"
            )
        self.last_response_url = response_url
        body = urlencode(
            {
                "token": "legacy",
                "team_id": TEAM,
                "team_domain": "example",
                "channel_id": channel,
                "channel_name": _channel_name(channel),
                "user_id": user,
                "user_name": user.lower(),
                "command": command,
                "text": text,
                "api_app_id": "A0APP",
                "is_enterprise_install": "false",
                "response_url": response_url,
                "trigger_id": new_trigger_id(),
            }
        )
        return await self.post(body, "application/x-www-form-urlencoded")

    async def home_opened(self, user: str, *, event_id: str | None = None) -> Reply:
        """The person opened the bot's Home tab (``app_home_opened``)."""
        dm = self.workspace.dm_channel(user) if self.workspace is not None else "D" + user[1:]
        event: dict[str, Any] = {
            "type": "app_home_opened",
            "user": user,
            "channel": dm,
            "tab": "home",
            "event_ts": self.next_ts(),
        }
        view_id = self.workspace.home_views.get(user) if self.workspace is not None else None
        if self.workspace is not None and view_id in self.workspace.views:
            # like Slack, the event carries the Home view once one has been published
            event["view"] = self.workspace.views[view_id]
        return await self.event(event, event_id=event_id)

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
        block_id: str | None = None,
    ) -> Reply:
        """A button click on a message. Without ``block_id``, the block of that button as
        the message shows it now (Approve/Deny all on a card of several calls, call 0's
        otherwise), else a card's single actions block as cards had before per-call
        buttons (``approval_actions``)."""
        where = {
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
            "channel": {"id": channel},
            "message": {"ts": message_ts, "type": "message"},
        }
        if block_id is None:
            shown = list(self.workspace.messages.values()) if self.workspace else []
            block_id = shown_block_id(shown, action_id, value)
        return await self._click(action_id, value, user, block_id, where)

    async def home_click(
        self,
        action_id: str,
        value: str,
        *,
        user: str,
        view_id: str = "V0HOME",
        block_id: str | None = None,
    ) -> Reply:
        """A button click on the bot's Home tab: the container is the view, not a message.
        Without ``block_id``, that button's block as ``user``'s Home tab shows it now."""
        if block_id is None:
            homes = [
                a["view"]
                for a in (self.workspace.calls_to("views.publish") if self.workspace else [])
                if a.get("user_id") == user
            ]
            block_id = shown_block_id(homes[-1:], action_id, value)
        view = {
            "id": view_id,
            "type": "home",
            "callback_id": "",
            "private_metadata": "",
            "state": {"values": {}},
        }
        where = {"container": {"type": "view", "view_id": view_id}, "view": view}
        return await self._click(action_id, value, user, block_id, where)

    async def _click(
        self, action_id: str, value: str, user: str, block_id: str, where: dict[str, Any]
    ) -> Reply:
        """A block_actions payload for one button, on the surface ``where`` describes."""
        return await self.interaction(
            {**button_actions(action_id, value, user=user, block_id=block_id), **where}
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


# -- Enterprise Grid and Slack Connect ---------------------------------------------------------
# The shapes below are written from Slack's docs (the interactivity payloads, the Events API's
# outer payload with ``authorizations``, the Enterprise Grid and Slack Connect guides) and from
# bolt-python's own test bodies (its org-wide install events, its Slack Connect
# ``view_submission`` with ``view.app_installed_team_id``).


@dataclass(frozen=True)
class Person:
    """Someone a payload is sent for, with their own workspace and, on Enterprise Grid, their
    organization (a person of another organization keeps their own team's ids)."""

    user_id: str
    team_id: str = TEAM
    enterprise_id: str | None = None
    domain: str = "example"

    def team(self) -> dict[str, Any]:
        """The ``team`` of an interactive payload: the person's workspace."""
        team: dict[str, Any] = {"id": self.team_id, "domain": self.domain}
        if self.enterprise_id:
            team |= {"enterprise_id": self.enterprise_id, "enterprise_name": self.domain.title()}
        return team

    def user(self) -> dict[str, Any]:
        name = self.user_id.lower()
        return {"id": self.user_id, "username": name, "name": name, "team_id": self.team_id}

    def enterprise(self) -> dict[str, Any] | None:
        if self.enterprise_id is None:
            return None
        return {"id": self.enterprise_id, "name": self.domain.title()}


@dataclass(frozen=True)
class Install:
    """The app's install as payloads name it (``authorizations``): its workspace, its
    organization, and whether it is org-wide."""

    team_id: str = TEAM
    enterprise_id: str | None = None
    is_enterprise_install: bool = False


class PeopleSender(SlackSender):
    """SlackSender, for people of other workspaces and organizations than the install's."""

    def __init__(
        self, base_url: str, signing_secret: str, workspace: SlackStandIn, install: Install
    ) -> None:
        super().__init__(base_url, signing_secret, workspace)
        self.install = install

    async def click_as(
        self,
        person: Person,
        action_id: str,
        value: str,
        *,
        channel: str,
        message_ts: str,
        block_id: str,
    ) -> Reply:
        """A ``block_actions`` payload for a button on a message, as Slack sends it for
        ``person`` (the ``team``, ``user`` and ``enterprise`` are theirs)."""
        assert self.workspace is not None
        return await self.interaction(
            {
                "type": "block_actions",
                "user": person.user(),
                "api_app_id": "A0APP",
                "token": "legacy",
                "container": {
                    "type": "message",
                    "message_ts": message_ts,
                    "channel_id": channel,
                    "is_ephemeral": False,
                },
                "trigger_id": new_trigger_id(),
                "team": person.team(),
                "enterprise": person.enterprise(),
                "is_enterprise_install": self.install.is_enterprise_install,
                "channel": {"id": channel, "name": channel.lower()},
                "message": {"type": "message", "ts": message_ts, "bot_id": "BBOT", "text": ""},
                "state": {"values": {}},
                "response_url": self.workspace.new_response_url(),
                "actions": [
                    {
                        "action_id": action_id,
                        "block_id": block_id,
                        "text": {"type": "plain_text", "text": action_id},
                        "value": value,
                        "type": "button",
                        "action_ts": str(time.time()),
                    }
                ],
            }
        )

    async def submit_view_as(
        self,
        person: Person,
        callback_id: str,
        private_metadata: str,
        *,
        values: dict[str, dict[str, dict[str, Any]]],
    ) -> Reply:
        """A ``view_submission`` as Slack sends it for a modal opened from a Slack Connect
        channel: the person's team, and the install's as ``view.app_installed_team_id``."""
        return await self.interaction(
            {
                "type": "view_submission",
                "team": person.team(),
                "user": person.user(),
                "api_app_id": "A0APP",
                "token": "legacy",
                "trigger_id": new_trigger_id(),
                "view": {
                    "id": "V0VIEW",
                    "team_id": person.team_id,
                    "type": "modal",
                    "blocks": [],
                    "private_metadata": private_metadata,
                    "callback_id": callback_id,
                    "state": {"values": values},
                    "hash": "1664950703.CmTS8F7U",
                    "title": {"type": "plain_text", "text": "Deny"},
                    "close": {"type": "plain_text", "text": "Cancel"},
                    "submit": {"type": "plain_text", "text": "Submit"},
                    "root_view_id": "V0VIEW",
                    "app_id": "A0APP",
                    "external_id": "",
                    "app_installed_team_id": self.install.team_id,
                    "bot_id": "BBOT",
                },
                "response_urls": [],
                "is_enterprise_install": self.install.is_enterprise_install,
                "enterprise": person.enterprise(),
            }
        )

    async def event_as(self, person: Person, event: dict[str, Any], *, ext_shared: bool) -> Reply:
        """An Events API request for ``event`` written by ``person``: the outer ``team_id``
        and ``authorizations`` name the install; in an externally shared channel the event
        names the author's team as ``user_team`` (and ``source_team``)."""
        assert self.workspace is not None
        self.workspace.messages[(event["channel"], event["ts"])] = {
            k: v for k, v in event.items() if k in ("user", "text", "ts", "thread_ts")
        }
        install = self.install
        authorization = {
            "enterprise_id": install.enterprise_id,
            "team_id": None if install.is_enterprise_install else install.team_id,
            "user_id": "UBOT",
            "is_bot": True,
            "is_enterprise_install": install.is_enterprise_install,
        }
        author = {"team": person.team_id}
        if ext_shared:
            author |= {"user_team": person.team_id, "source_team": person.team_id}
        body = {
            "token": "legacy",
            "team_id": install.team_id,
            "enterprise_id": install.enterprise_id,
            "context_team_id": install.team_id,
            "context_enterprise_id": install.enterprise_id,
            "api_app_id": "A0APP",
            "event": {"client_msg_id": f"msg-{event['ts']}", **event, **author},
            "type": "event_callback",
            "event_id": f"Ev{next(_ids):08d}",
            "event_time": int(time.time()),
            "authorizations": [authorization],
            "is_ext_shared_channel": ext_shared,
            "event_context": f"4-message-{install.team_id}-{event['channel']}",
        }
        return await self.post(json.dumps(body), "application/json")

    async def mention_as(
        self, person: Person, text: str, *, channel: str, ext_shared: bool
    ) -> tuple[Reply, str]:
        """An ``app_mention`` (the shape of Slack's ``app_mention`` reference); the reply
        and the message's ts."""
        ts = self.next_ts()
        event = {
            "type": "app_mention",
            "user": person.user_id,
            "text": f"<@UBOT> {text}",
            "ts": ts,
            "channel": channel,
            "event_ts": ts,
        }
        return await self.event_as(person, event, ext_shared=ext_shared), ts

    async def dm_as(
        self, person: Person, text: str, *, channel: str, ext_shared: bool = False
    ) -> tuple[Reply, str]:
        """A ``message.im`` (the shape of Slack's ``message.im`` reference); the reply and
        the message's ts."""
        ts = self.next_ts()
        event = {
            "type": "message",
            "channel": channel,
            "user": person.user_id,
            "text": text,
            "ts": ts,
            "event_ts": ts,
            "channel_type": "im",
        }
        return await self.event_as(person, event, ext_shared=ext_shared), ts
