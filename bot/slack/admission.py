"""Who a Slack request comes from, and whether that kind of person may do what it asks.

The bot knows its install (the team and, on Enterprise Grid, the organization of its token,
from ``auth.test``). Relative to it, the person behind a click, a form or a message is one of:

- ``home``: a member of the install's workspace;
- ``org``: a member of another workspace of the same Enterprise Grid organization (a channel
  shared across the org's workspaces, or any workspace of an org-wide install, which has no
  home workspace);
- ``external``: a member of another organization (Slack Connect), or a person whose team the
  payload does not say: a person the bot cannot place is never taken for one of its own.

What each may do is a setting (``SLACK_ORG_APPROVERS``, ``SLACK_ORG_REQUESTERS``,
``SLACK_EXTERNAL_APPROVERS``, ``SLACK_EXTERNAL_REQUESTERS``). A refusal is answered at once,
changes nothing (no listener runs, nothing is stored) and is never silent: the person gets a
short reason (in the form they submitted, or privately: ephemeral, else a DM, which Slack
allows to external members who share a channel with the bot, else the payload's
``response_url``) and the log a line with the team and organization ids.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.response import BoltResponse

from bot.errors import UpstreamError
from bot.slack import blocks, modals
from bot.slack.adapter import SlackChat
from bot.slack.background import Background
from bot.slack.edit_modal import EDIT_MODAL

logger = logging.getLogger(__name__)


class Origin(StrEnum):
    HOME = "home"
    ORG = "org"
    EXTERNAL = "external"


class Role(StrEnum):
    """What a request asks to do."""

    DECIDE = "decide"  # approve, deny, edit: a decision on a call
    ASK = "ask"  # talk to the agent
    LOOK = "look"  # show arguments, retries, the App Home: a requester's or an approver's


#: Buttons and forms that record a decision.
DECIDING_ACTIONS: Final = frozenset(
    {blocks.APPROVE, blocks.APPROVE_ALL, blocks.DENY, blocks.DENY_ALL, blocks.EDIT}
)
DECIDING_FORMS: Final = frozenset({blocks.DENY_MODAL, EDIT_MODAL})


@dataclass(frozen=True)
class Install:
    """The workspace and organization of the bot's token (None: not known, or none)."""

    team_id: str | None
    enterprise_id: str | None


@dataclass(frozen=True)
class Person:
    """Who sent a request: their user id, with their team and organization as the payload
    says (ids are shown in the log of a refusal)."""

    user_id: str
    team_id: str | None
    enterprise_id: str | None

    def origin(self, install: Install) -> Origin:
        if self.team_id is not None and self.team_id == install.team_id:
            return Origin.HOME
        if install.enterprise_id is not None and self.enterprise_id == install.enterprise_id:
            return Origin.ORG
        return Origin.EXTERNAL


@dataclass(frozen=True)
class Admission:
    """Which people from outside the install's workspace the bot serves (the settings)."""

    org_approvers: bool = True
    org_requesters: bool = True
    external_approvers: bool = False
    external_requesters: bool = False

    def admits(self, origin: Origin, role: Role) -> bool:
        if origin is Origin.HOME:
            return True
        approvers, requesters = (
            (self.org_approvers, self.org_requesters)
            if origin is Origin.ORG
            else (self.external_approvers, self.external_requesters)
        )
        if role is Role.DECIDE:
            return approvers
        if role is Role.ASK:
            return requesters
        return approvers or requesters


def refusal(origin: Origin, role: Role) -> str:
    """The short reason a refused person reads."""
    who = (
        "people of other workspaces of this organization"
        if origin is Origin.ORG
        else "people from other organizations (Slack Connect)"
    )
    if role is Role.ASK:
        return (
            f":no_entry_sign: I do not take requests from {who}: an agent acting on them is "
            "not allowed here. Ask someone of this workspace's team."
        )
    if role is Role.DECIDE:
        return f":no_entry_sign: Approvals here are not decided by {who}. Nothing was changed."
    return f":no_entry_sign: This bot's requests are not open to {who}. Nothing was changed."


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def interacting_person(body: dict[str, Any]) -> Person | None:
    """The person of a ``block_actions`` or ``view_submission`` payload. ``team`` is the
    person's workspace (a Slack Connect view also names the install's, as
    ``view.app_installed_team_id``, which is not the person's); their organization is
    ``team.enterprise_id``, else ``enterprise.id``."""
    user, team = _dict(body.get("user")), _dict(body.get("team"))
    user_id = _text(user.get("id"))
    if user_id is None:
        return None
    enterprise = _text(team.get("enterprise_id")) or _text(_dict(body.get("enterprise")).get("id"))
    return Person(user_id, _text(user.get("team_id")) or _text(team.get("id")), enterprise)


def messaging_person(body: dict[str, Any]) -> Person | None:
    """The author of a ``message`` or ``app_mention`` event. The outer ``team_id`` is the
    install the event is for; the author's team is ``event.user_team`` (``event.team``).
    Outside an externally shared channel the author is of the install's organization; in
    one, only a team that is the install's (or the event's context's) has a known one."""
    event = _dict(body.get("event"))
    user_id = _text(event.get("user"))
    if user_id is None:
        return None
    team = _text(event.get("user_team")) or _text(event.get("team")) or _text(body.get("team_id"))
    if team is not None and team.startswith("E"):  # an organization where a team would be
        return Person(user_id, None, team)
    if body.get("is_ext_shared_channel") is not True:
        return Person(user_id, team, _text(body.get("enterprise_id")))
    known = {
        _text(body.get("team_id")): _text(body.get("enterprise_id")),
        _text(body.get("context_team_id")): _text(body.get("context_enterprise_id")),
    }
    return Person(user_id, team, known.get(team) if team is not None else None)


def _role(body: dict[str, Any]) -> Role | None:
    """What a request asks to do; None for requests no person makes of the bot (other
    events, slash commands: Slack lets only the install's workspace run those)."""
    kind = body.get("type")
    if kind == "block_actions":
        actions = body.get("actions")
        first = _dict(actions[0]) if isinstance(actions, list) and actions else {}
        action_id = str(first.get("action_id") or "")
        deciding = action_id in DECIDING_ACTIONS or action_id.startswith(blocks.GRANT_PREFIX)
        return Role.DECIDE if deciding else Role.LOOK
    if kind == "view_submission":
        callback = _dict(body.get("view")).get("callback_id")
        return Role.DECIDE if callback in DECIDING_FORMS else Role.LOOK
    if kind == "event_callback":
        return Role.ASK if _to_the_bot(_dict(body.get("event"))) else None
    return None


#: Message subtypes that are a person writing (as ``listeners.messages`` takes them).
_PERSON_SUBTYPES: Final = frozenset({None, "file_share", "thread_broadcast"})


def _to_the_bot(event: dict[str, Any]) -> bool:
    """Whether an event is a person writing to the bot: a mention, a DM, or a reply in a
    channel thread (which may be one of its conversations). Other channel messages are none
    of its business, whoever writes them."""
    if event.get("type") not in ("message", "app_mention") or event.get("bot_id"):
        return False
    if event.get("subtype") not in _PERSON_SUBTYPES:
        return False
    return (
        event.get("type") == "app_mention"
        or event.get("channel_type") == "im"
        or "thread_ts" in event
    )


def _answerable(event: dict[str, Any]) -> bool:
    """Whether a refused message gets a reply: a mention or a DM (a reply in a channel
    thread gets none: a thread would fill with refusals; its mention, if any, gets one)."""
    return event.get("type") == "app_mention" or event.get("channel_type") == "im"


def register(app: AsyncApp, chat: SlackChat, background: Background, admission: Admission) -> None:
    """Check every signed request against the install before any listener sees it."""

    @app.middleware
    async def admit(
        body: dict[str, Any], context: AsyncBoltContext, next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        found = context.authorize_result
        install = Install(found.team_id if found else None, found.enterprise_id if found else None)
        if _for_another_install(body, context, install):
            return BoltResponse(status=200, body="")
        role = _role(body)
        person = (
            None
            if role is None
            else messaging_person(body)
            if role is Role.ASK
            else interacting_person(body)
        )
        if role is None or person is None:
            await next()
            return None
        origin = person.origin(install)
        if admission.admits(origin, role):
            await next()
            return None
        silent = role is Role.ASK and not _answerable(_dict(body.get("event")))
        logger.log(
            logging.INFO if silent else logging.WARNING,
            "refused: %s by %s user %s (team %s, enterprise %s); this bot's install is team "
            "%s, enterprise %s; see SLACK_%s_%s",
            role.value,
            origin.value,
            person.user_id,
            person.team_id,
            person.enterprise_id,
            install.team_id,
            install.enterprise_id,
            "ORG" if origin is Origin.ORG else "EXTERNAL",
            "REQUESTERS" if role is Role.ASK else "APPROVERS",
        )
        return _refuse(body, context, chat, background, person, refusal(origin, role))


def _for_another_install(body: dict[str, Any], context: AsyncBoltContext, install: Install) -> bool:
    """A signed event or slash command for another install of the app (its own workspace,
    its own token): this bot can neither act on it nor answer there; it is logged and
    answered 200 so that Slack does not send it again. (Clicks and forms name the person's
    workspace, not the install's: they are placed by ``Person.origin``.)"""
    if body.get("type") in ("block_actions", "view_submission"):
        return False
    team, enterprise = context.team_id, context.enterprise_id
    if install.team_id is None or team is None or team == install.team_id:
        return False
    if context.is_enterprise_install and enterprise == install.enterprise_id:
        return False
    logger.warning(
        "ignoring a request for workspace %s (enterprise %s); this bot serves %s (enterprise %s)",
        team,
        enterprise,
        install.team_id,
        install.enterprise_id,
    )
    return True


def _refuse(
    body: dict[str, Any],
    context: AsyncBoltContext,
    chat: SlackChat,
    background: Background,
    person: Person,
    text: str,
) -> BoltResponse:
    """Answer a refused request: a form, in the form itself; anything else with 200 at
    once, the note following in a task."""
    if body.get("type") == "view_submission":
        answer = {"response_action": "update", "view": modals.notice_modal(text).to_dict()}
        return BoltResponse(
            status=200, body=json.dumps(answer), headers={"content-type": "application/json"}
        )
    event = _dict(body.get("event"))
    if body.get("type") == "event_callback":
        if _answerable(event):
            note = _tell(chat, context, person.user_id, _text(event.get("channel")), text)
            background.spawn(note, name="slack:refusal")
        return BoltResponse(status=200, body="")
    channel = _text(_dict(body.get("channel")).get("id"))
    background.spawn(_tell(chat, context, person.user_id, channel, text), name="slack:refusal")
    return BoltResponse(status=200, body="")


async def _tell(
    chat: SlackChat, context: AsyncBoltContext, user: str, channel: str | None, text: str
) -> None:
    """Privately: ephemeral in ``channel`` or a DM (``tell_user``), else, where Slack
    refuses both, through the request's ``response_url`` (an ephemeral reply to the click)."""
    try:
        await chat.tell_user(user, text, channel)
        return
    except UpstreamError as error:
        failure = error
    respond = context.respond if context.response_url else None
    if respond is None:
        logger.error("could not tell %s why they were refused: %r", user, failure)
        return
    try:
        answer = await respond(text=text, response_type="ephemeral", replace_original=False)
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        logger.error("could not tell %s why they were refused: %r, then %r", user, failure, error)
        return
    if answer.status_code != 200:  # the refusal stands; only the note is lost
        logger.error(
            "could not tell %s why they were refused: %r, then response_url answered %s",
            user,
            failure,
            answer.status_code,
        )
