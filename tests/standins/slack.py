"""A local stand-in for the Slack Web API, for tests.

``SlackStandIn`` runs an aiohttp server on 127.0.0.1 (free port) that answers the Web API
methods the bot uses with Slack-shaped JSON, so a real
``slack_sdk.web.async_client.AsyncWebClient(token="xoxb-test", base_url=standin.api_url)``
(and therefore slack-bolt's ``AsyncApp``) can talk to it.

Its main job is validation: every message and view the bot sends is checked with
slack_sdk's Block Kit models plus the limits Slack enforces server-side, and every problem
is appended to ``standin.errors`` so a test can end with ``assert standin.errors == []``.

Usage::

    async with SlackStandIn() as slack:
        client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
        await client.chat_postMessage(channel="C1", text="hi")
        args = await slack.wait_for("chat.postMessage")

It also plays Slack's ``response_url`` endpoints (``hooks.slack.com/commands/...``):
``slack.new_response_url()`` hands out a URL on the stand-in, and what the bot posts there
is validated like ``chat.postMessage`` and recorded in ``slack.responses``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import itertools
import json
import math
import re
import secrets
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import yaml
from aiohttp import web
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

__all__ = ["RateLimits", "SlackCall", "SlackStandIn", "new_trigger_id"]

JSON = dict[str, Any]
Predicate = Callable[[JSON], bool]
_T = TypeVar("_T")

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_TEXT_CHARS = 40_000
MAX_SECTION_TEXT_CHARS = 3000
MAX_SECTION_FIELD_CHARS = 2000
#: All the text of a message's blocks together: Slack answers ``msg_blocks_too_long`` above
#: about 13 000 characters (undocumented; observed, see slackapi/bolt-js#2509 and #2867).
MAX_BLOCKS_TEXT_CHARS = 13_000
#: How long a ``trigger_id`` opens a modal after the interaction that carried it.
TRIGGER_TTL_S = 3.0
#: Calls a minute per method and workspace, by Slack's rate limit tier.
TIER_PER_MINUTE = {1: 1, 2: 20, 3: 50, 4: 100}
#: Each method's tier (Slack's method reference). ``chat.postMessage`` has its own limit, per
#: channel (``RateLimits``); the "special" ones (``auth.test``, ``chat.getPermalink``) are
#: not limited here.
METHOD_TIERS = {
    "apps.connections.open": 1,
    "usergroups.list": 2,
    "usergroups.users.list": 2,
    "reactions.remove": 2,
    "chat.update": 3,
    "conversations.info": 3,
    "conversations.join": 3,
    "reactions.add": 3,
    "chat.postEphemeral": 4,
    "conversations.members": 4,
    "users.info": 4,
    "users.lookupByEmail": 3,
    "views.open": 4,
    "views.push": 4,
    "views.update": 4,
    "views.publish": 4,
}

# Arguments that slack_sdk (or a form-encoding client) may send as a JSON string.
_JSON_ARGS = ("blocks", "view", "attachments", "metadata")
_MESSAGE_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral")
# Unescaped special mentions that notify a whole channel/workspace.
_MASS_MENTION = re.compile(r"<!(channel|here|everyone)(\|[^>]*)?>")
_LINK_NAMES_MENTION = re.compile(r"(?<![\w<])@(channel|here|everyone)\b")
_TEXT_KEYS = frozenset({"text", "pretext", "fallback"})
_USER_ID = re.compile(r"^[UW][A-Z0-9]+$")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]+$")
_TS_BASE_MICROS = 1_700_000_000_000_000
_MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"


def manifest_bot_scopes() -> list[str]:
    """The bot scopes ``manifest.yml`` asks for: what an installed app's token is granted."""
    manifest = yaml.safe_load(_MANIFEST.read_text(encoding="utf-8"))
    return [str(scope) for scope in manifest["oauth_config"]["scopes"]["bot"]]


#: The scope a bot token needs for each method (Slack answers ``missing_scope`` without it);
#: ``conversations.*`` depend on the kind of channel (see ``_needed_scope``).
_METHOD_SCOPES = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "users.info": "users:read",
    "users.lookupByEmail": "users:read.email",
    "usergroups.list": "usergroups:read",
    "usergroups.users.list": "usergroups:read",
    "reactions.add": "reactions:write",
    "reactions.remove": "reactions:write",
    "conversations.join": "channels:join",
}
_CHANNEL_READ_SCOPES = {"C": "channels:read", "G": "groups:read", "D": "im:read"}


def _always(_args: JSON) -> bool:
    return True


_trigger_seq = itertools.count(1)


def new_trigger_id(issued_at: float | None = None) -> str:
    """A trigger id shaped like Slack's (``12345.98765.abcd…``): ``<seq>.<issued, epoch
    ms>.<hex>``; ``views.open`` refuses it ``TRIGGER_TTL_S`` seconds after ``issued_at``."""
    issued = time.time() if issued_at is None else issued_at
    return f"{next(_trigger_seq)}.{int(issued * 1000)}.{secrets.token_hex(16)}"


def _trigger_issued_at(trigger_id: str) -> float | None:
    """When a trigger of ``new_trigger_id`` was issued (epoch seconds); None if it is not one."""
    match = re.fullmatch(r"\d+\.(\d{13})\.[0-9a-f]+", trigger_id)
    return int(match[1]) / 1000 if match else None


@dataclass
class RateLimits:
    """Slack's rate limits, applied when ``SlackStandIn.rate_limits`` is set: per method
    (``TIER_PER_MINUTE`` by ``METHOD_TIERS``, bursts of up to a minute's calls) and, for
    ``chat.postMessage``, per channel (``posts_per_s``, bursts of ``post_burst``). Beyond
    them a call is answered HTTP 429 ``ratelimited`` with ``Retry-After`` (whole seconds, at
    least 1, as Slack sends it) and changes nothing.

    ``speed`` multiplies every rate, not the bursts (1: Slack's own: about one message a
    second in a channel); a test that posts hundreds of messages runs faster with the same
    shape of limits."""

    speed: float = 1.0
    posts_per_s: float = 1.0
    post_burst: int = 3


@dataclass
class _Bucket:
    """A token bucket: ``capacity`` calls at once, refilled at ``per_s``."""

    capacity: float
    per_s: float
    tokens: float = -1.0
    updated: float = 0.0

    def take(self, now: float) -> float:
        """0 if a call may go now (and count it), else the seconds until one may."""
        if self.tokens < 0:
            self.tokens, self.updated = self.capacity, now
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_s)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.per_s


@dataclass
class SlackCall:
    """One Web API request received by the stand-in.

    ``args`` are the decoded arguments (query string, form fields and JSON body merged;
    ``blocks``/``view``/``attachments``/``metadata`` JSON strings decoded). The token is
    not included. Form and query values stay strings as sent (GET methods such as
    ``conversations.members`` receive ``limit="2"``); JSON bodies keep their JSON types.
    ``status`` and ``response`` are what the stand-in answered.
    """

    method: str
    args: JSON
    status: int = 200
    response: JSON = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True if the stand-in answered HTTP 200 with ``"ok": true``."""
        return self.status == 200 and bool(self.response.get("ok"))


@dataclass
class _Fault:
    status: int
    error: str | None
    retry_after: int | None
    remaining: int


class _ApiError(Exception):
    """Raised by a method handler to answer ``{"ok": false, "error": code, **extra}``."""

    def __init__(self, code: str, **extra: Any) -> None:
        super().__init__(code)
        self.code = code
        self.extra = extra


class SlackStandIn:
    """A fake Slack Web API server for tests; use as ``async with SlackStandIn() as slack``.

    Configurable state (plain attributes, change them freely before or during a test):

    * ``members``: channel id -> member user ids (``conversations.members``; also used by
      ``chat.postEphemeral`` to answer ``user_not_in_channel``).
    * ``users``: user id -> fields overlaid on the default ``users.info`` profile (a
      ``profile.email`` there is what ``users.lookupByEmail`` finds).
    * ``usergroups``: usergroup id -> user ids (``usergroups.users.list``,
      ``usergroups.list``).
    * ``usergroup_handles``: usergroup id -> handle (the ``@handle`` in ``usergroups.list``;
      a group without an entry gets its id lowercased).
    * ``channels``: channel id -> fields overlaid on the default ``conversations.info``.
    * ``socket_url``: the URL ``apps.connections.open`` hands out (None -> error).
    * ``enterprise_id`` / ``is_enterprise_install``: an Enterprise Grid install (``auth.test``).
    * ``scopes``: the scopes granted to the bot token (default: ``manifest.yml``'s), sent in
      the ``x-oauth-scopes`` header of every answer to it, as Slack does; a method whose
      scope is not granted answers ``missing_scope``. None: no header, no scope checks.
    * ``token_error``: when set (``account_inactive``, ``token_revoked``...), every call with
      the bot token answers that error, as Slack does for an uninstalled app's token.
    * ``unknown_channels`` / ``unknown_users``: ids that answer ``channel_not_found`` /
      ``user_not_found`` (deleted, or never existed). A private channel (``is_private``)
      whose ``is_member`` is false also answers ``channel_not_found`` to
      ``conversations.info``: Slack hides private channels from non-members.
    * ``rate_limits``: None (the default: ordinary tests burst freely), or the
      ``RateLimits`` to apply, answering 429 with ``Retry-After`` beyond them.
    * ``slowness``: method -> seconds every call to it takes before it is answered.

    Like Slack, ``views.open``/``views.push`` refuse a trigger id older than
    ``TRIGGER_TTL_S`` (``expired_trigger_id``) or not issued by ``new_trigger_id``
    (``invalid_trigger_id``); a message whose blocks hold more than ``MAX_BLOCKS_TEXT_CHARS``
    characters of text in all is refused ``msg_blocks_too_long``, besides Block Kit's
    50 blocks, 3000 characters a section, and 40 000 characters of ``text``.

    Slack's AI-app methods (``assistant.threads.*``, ``chat.startStream`` and the rest) are
    in ``ai`` (tests/standins/slack_ai.py): what they showed, and ``ai.unavailable``.

    Recorded state: ``calls``, ``errors``, ``messages`` ((channel, ts) -> current message),
    ``views`` (view id -> current view), ``home_views`` (user id -> view id) and
    ``responses`` (every JSON body posted to a URL from ``new_response_url()``, in order,
    plus a ``"response_token"`` key naming the URL; rejected posts included).
    """

    def __init__(
        self,
        *,
        token: str = "xoxb-test",
        app_token: str = "xapp-test",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        team_id: str = "T0TEAM",
        team: str = "Stand-in Team",
        workspace_url: str = "https://example.slack.com/",
        socket_url: str | None = None,
    ) -> None:
        """Configure the stand-in; the server starts in ``start()`` / ``__aenter__``."""
        self.token = token
        self.app_token = app_token
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = "A0STANDIN"
        self.team_id = team_id
        self.team = team
        self.workspace_url = workspace_url if workspace_url.endswith("/") else workspace_url + "/"
        self.socket_url = socket_url
        #: the Enterprise Grid organization of the token (``auth.test``'s ``enterprise_id``),
        #: and whether the install is org-wide; None: a workspace outside any organization
        self.enterprise_id: str | None = None
        self.is_enterprise_install = False

        self.members: dict[str, list[str]] = {}
        self.users: dict[str, JSON] = {}
        self.usergroups: dict[str, list[str]] = {}
        self.usergroup_handles: dict[str, str] = {}
        self.channels: dict[str, JSON] = {}
        self.scopes: list[str] | None = manifest_bot_scopes()
        self.token_error: str | None = None
        self.unknown_channels: set[str] = set()
        self.unknown_users: set[str] = set()

        self.calls: list[SlackCall] = []
        self.errors: list[str] = []
        self.messages: dict[tuple[str, str], JSON] = {}
        self.views: dict[str, JSON] = {}
        self.home_views: dict[str, str] = {}
        self.responses: list[JSON] = []

        self._response_tokens: set[str] = set()
        self._faults: dict[str, list[_Fault]] = {}
        #: method -> seconds every call to it takes before it is answered (a slow Slack)
        self.slowness: dict[str, float] = {}
        self.rate_limits: RateLimits | None = None
        self._buckets: dict[str, _Bucket] = {}
        self._ts_counter = itertools.count(1)
        self._id_counter = itertools.count(1)
        self._cond = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._handlers: dict[str, Callable[[JSON], JSON]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "views.open": self._views_open,
            "views.push": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "conversations.members": self._conversations_members,
            "conversations.info": self._conversations_info,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "usergroups.users.list": self._usergroups_users_list,
            "usergroups.list": self._usergroups_list,
            "reactions.add": self._reactions_add,
            "reactions.remove": self._reactions_remove,
            "apps.connections.open": self._apps_connections_open,
            "conversations.join": self._conversations_join,
        }
        from tests.standins.slack_ai import METHODS, AISide

        #: Slack's AI-app methods (status, titles, prompts, streamed replies): see slack_ai
        self.ai = AISide(self)
        self._handlers.update(self.ai.handlers())
        for method, (tier, scope) in METHODS.items():
            if tier is not None:
                METHOD_TIERS.setdefault(method, tier)
            _METHOD_SCOPES.setdefault(method, scope)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the HTTP server on 127.0.0.1 with a free port."""
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle)
        app.router.add_post("/response/{token}", self._handle_response)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        self._runner = runner
        self._url = f"http://{host}:{port}/"

    async def close(self) -> None:
        """Stop the server (idempotent)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackStandIn:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """Root URL of the server, e.g. ``http://127.0.0.1:PORT/``."""
        if self._url is None:
            raise RuntimeError("SlackStandIn is not started")
        return self._url

    @property
    def api_url(self) -> str:
        """Web API base URL for ``AsyncWebClient(base_url=...)``: ``http://127.0.0.1:PORT/api/``."""
        return self.url + "api/"

    # ------------------------------------------------------------------ test helpers

    def calls_to(self, method: str) -> list[JSON]:
        """Arguments of every recorded call to ``method`` (failed ones included), in order."""
        return [c.args for c in self.calls if c.method == method]

    def count(self, method: str, predicate: Predicate = _always) -> int:
        """Number of recorded calls to ``method`` whose args match ``predicate``."""
        return sum(1 for c in self.calls if c.method == method and _matches(predicate, c.args))

    def modals_shown(self) -> list[JSON]:
        """Every modal a person was shown, as ``views.open``/``views.update`` sent it (their
        arguments), but the "Loading…" placeholders the bot opens while it checks a click."""
        return [
            c.args
            for c in self.calls
            if c.method in ("views.open", "views.update", "views.push")
            and c.response.get("ok")
            and "Loading…" not in json.dumps(c.args.get("view"), ensure_ascii=False)
        ]

    async def wait_for_modal(self, predicate: Predicate = _always, timeout: float = 10.0) -> JSON:
        """The first modal shown (see :meth:`modals_shown`) matching ``predicate``."""
        deadline = asyncio.get_running_loop().time() + timeout
        async with self._cond:
            while True:
                found = [m for m in self.modals_shown() if predicate(m)]
                if found:
                    return found[0]
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    raise AssertionError(
                        f"no modal matching the predicate within {timeout}s; recorded calls:\n"
                        + self.describe_calls()
                    )
                try:
                    await asyncio.wait_for(self._cond.wait(), remaining)
                except TimeoutError:
                    pass

    def messages_in(self, channel: str) -> list[JSON]:
        """Current state of the messages posted to ``channel``, oldest first."""
        found = [m for (ch, _), m in self.messages.items() if ch == channel]
        return sorted(found, key=lambda m: str(m["ts"]))

    def dm_channel(self, user_id: str) -> str:
        """The DM channel id the stand-in uses when a message is posted to a user id."""
        return "D" + user_id[1:]

    async def wait_for(
        self, method: str, predicate: Predicate = _always, timeout: float = 10.0
    ) -> JSON:
        """Wait until a call to ``method`` whose args match ``predicate`` is recorded.

        Already-recorded calls are checked first. Calls are recorded after the stand-in has
        applied them, so ``messages``/``views`` reflect the call when this returns. A
        predicate raising ``LookupError``/``TypeError`` counts as "no match".
        Returns the call's args; raises ``AssertionError`` listing all calls on timeout.
        """
        try:
            call = await self._first_recorded(
                lambda: self.calls,
                lambda c: c.method == method and _matches(predicate, c.args),
                timeout,
            )
        except TimeoutError:
            raise AssertionError(
                f"no call to {method} matching the predicate within {timeout}s; "
                f"recorded calls:\n{self.describe_calls()}"
            ) from None
        return call.args

    def new_response_url(self) -> str:
        """A fresh ``response_url`` on the stand-in, like Slack's ``hooks.slack.com/commands/...``.

        JSON posted there is validated like ``chat.postMessage`` and recorded in
        ``responses`` (see ``wait_for_response``). Posting to any other ``/response/...`` URL
        answers 404 ``no_such_url`` and records an error.
        """
        token = f"{next(self._id_counter)}x{secrets.token_hex(8)}"
        self._response_tokens.add(token)
        return f"{self.url}response/{token}"

    async def wait_for_response(
        self, predicate: Predicate | None = None, timeout: float = 5.0
    ) -> JSON:
        """Wait until a post to a response URL whose body matches ``predicate`` is recorded.

        Works like ``wait_for``: already-recorded posts are checked first, and a predicate
        raising ``LookupError``/``TypeError`` counts as "no match". Posts the stand-in
        rejected (400 ``invalid_blocks``/``no_text``, injected faults) are recorded and can
        match too, like failed calls in ``wait_for``; their problems are in ``errors``.
        Returns the recorded dict (the JSON body plus ``"response_token"``); raises
        ``AssertionError`` listing the recorded posts and the response URL errors on timeout.
        """
        wanted = predicate or _always
        try:
            return await self._first_recorded(
                lambda: self.responses, lambda r: _matches(wanted, r), timeout
            )
        except TimeoutError:
            raise AssertionError(
                f"no response_url post matching the predicate within {timeout}s; "
                f"recorded posts:\n{self.describe_responses()}"
            ) from None

    def describe_responses(self) -> str:
        """A readable listing of the response URL posts and their errors (for assertions)."""
        lines = [
            f"  {i}: {_shorten(json.dumps(r, default=str))}" for i, r in enumerate(self.responses)
        ] or ["  (none)"]
        errors = [e for e in self.errors if e.startswith("response_url:")]
        if errors:
            lines.append("response_url errors:")
            lines.extend(f"  {e}" for e in errors)
        return "\n".join(lines)

    async def _first_recorded(
        self, records: Callable[[], list[_T]], match: Callable[[_T], bool], timeout: float
    ) -> _T:
        """The first of ``records()`` that satisfies ``match``, waiting for new ones.

        Raises ``TimeoutError`` after ``timeout`` seconds.
        """
        checked = 0
        async with asyncio.timeout(timeout):
            async with self._cond:
                while True:
                    items = records()
                    checked = min(checked, len(items))
                    while checked < len(items):
                        item = items[checked]
                        checked += 1
                        if match(item):
                            return item
                    await self._cond.wait()

    def describe_calls(self) -> str:
        """A readable listing of the recorded calls (for assertion messages)."""
        if not self.calls:
            return "  (none)"
        lines = []
        for i, c in enumerate(self.calls):
            outcome = "ok" if c.ok else f"{c.status} {c.response.get('error')}"
            args = _shorten(json.dumps(c.args, default=str))
            lines.append(f"  {i}: {c.method} -> {outcome} {args}")
        return "\n".join(lines)

    def fail_next(
        self,
        method: str,
        *,
        status: int = 200,
        error: str | None = None,
        count: int = 1,
        retry_after: int | None = None,
    ) -> None:
        """Make the next ``count`` calls to ``method`` fail.

        With ``status`` 200 the answer is ``{"ok": false, "error": error}`` (default
        ``"fatal_error"``); otherwise that HTTP status with a JSON error body (``ratelimited``
        for 429, ``fatal_error`` otherwise, unless ``error`` is given). A 429 always carries
        ``Retry-After`` (``retry_after``, default 1). Failed calls are recorded but change no
        state and are not validated.

        ``method="response_url"`` makes the next posts to response URLs fail instead: they
        are answered with ``status`` (give one, e.g. 500 or 429) and the error code as a
        ``text/plain`` body, and are recorded in ``responses`` without validation.
        """
        if count < 1:
            raise ValueError("count must be >= 1")
        fault = _Fault(status=status, error=error, retry_after=retry_after, remaining=count)
        self._faults.setdefault(method, []).append(fault)

    # ------------------------------------------------------------------ HTTP plumbing

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args, bad_body = await _decode_request(request)
        if method in self.slowness:
            await asyncio.sleep(self.slowness[method])
        token = _token_of(request, args)
        headers: dict[str, str] = {}
        try:
            status, body = self._respond(method, args, token, bad_body, headers)
        except Exception as exc:  # a bug in the stand-in itself: make it loud
            self.errors.append(f"{method}: stand-in internal error: {exc!r}")
            status, body = 500, {"ok": False, "error": "internal_error"}
        self.calls.append(SlackCall(method=method, args=args, status=status, response=body))
        async with self._cond:
            self._cond.notify_all()
        return web.json_response(body, status=status, headers=headers)

    def _respond(
        self,
        method: str,
        args: JSON,
        token: str | None,
        bad_body: bool,
        headers: dict[str, str],
    ) -> tuple[int, JSON]:
        fault = self._take_fault(method)
        if fault is not None:
            return self._fault_response(fault, headers)
        wait_s = self._rate_limited(method, args)
        if wait_s:
            headers["Retry-After"] = str(max(1, math.ceil(wait_s)))
            return 429, {"ok": False, "error": "ratelimited"}
        handler = self._handlers.get(method)
        if handler is None:
            self.errors.append(f"{method}: unknown_method (not implemented by the Slack stand-in)")
            return 200, {"ok": False, "error": "unknown_method", "req_method": method}
        auth_error = self._check_token(method, token)
        if auth_error is not None:
            return 200, {"ok": False, "error": auth_error}
        if token == self.token and self.scopes is not None:
            headers["x-oauth-scopes"] = ",".join(self.scopes)
            needed = _needed_scope(method, args)
            if needed is not None and needed not in self.scopes:
                provided = ",".join(self.scopes)
                return 200, {
                    "ok": False,
                    "error": "missing_scope",
                    "needed": needed,
                    "provided": provided,
                }
        if bad_body:
            return 200, {"ok": False, "error": "invalid_json"}
        try:
            return 200, {"ok": True, **handler(args)}
        except _ApiError as err:
            return 200, {"ok": False, "error": err.code, **err.extra}

    async def _handle_response(self, request: web.Request) -> web.Response:
        """``POST /response/{token}``: a message posted to a response URL, answered like Slack."""
        token = request.match_info["token"]
        if token not in self._response_tokens:
            self.errors.append(
                f"response_url: no_such_url: POST to {request.path}, a response URL the "
                "stand-in never handed out"
            )
            return web.Response(status=404, text="no_such_url")
        body = await _decode_response_body(request)
        if body is None:
            self.errors.append("response_url: invalid_payload: the body is not a JSON object")
            return web.Response(status=400, text="invalid_payload")
        headers: dict[str, str] = {}
        try:
            status, text = self._respond_to_response_url(body, headers)
        except Exception as exc:  # a bug in the stand-in itself: make it loud
            self.errors.append(f"response_url: stand-in internal error: {exc!r}")
            status, text = 500, "internal_error"
        self.responses.append({**copy.deepcopy(body), "response_token": token})
        async with self._cond:
            self._cond.notify_all()
        return web.Response(status=status, text=text, headers=headers)

    def _respond_to_response_url(self, body: JSON, headers: dict[str, str]) -> tuple[int, str]:
        fault = self._take_fault("response_url")
        if fault is not None:
            status, answer = self._fault_response(fault, headers)
            return status, str(answer["error"])
        # Like chat.postMessage, except that deleting the original needs no content.
        require_content = not _truthy(body.get("delete_original"))
        try:
            self._validate_message("response_url", body, require_content=require_content)
        except _ApiError as err:
            return 400, err.code
        return 200, "ok"

    def _take_fault(self, method: str) -> _Fault | None:
        queue = self._faults.get(method)
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.pop(0)
        return fault

    @staticmethod
    def _fault_response(fault: _Fault, headers: dict[str, str]) -> tuple[int, JSON]:
        if fault.status == 429:
            headers["Retry-After"] = str(fault.retry_after if fault.retry_after is not None else 1)
            error = fault.error or "ratelimited"
        else:
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
            error = fault.error or "fatal_error"
        return fault.status, {"ok": False, "error": error}

    def _rate_limited(self, method: str, args: JSON) -> float:
        """0 when the call is within ``rate_limits`` (and counts), else the seconds to wait."""
        limits = self.rate_limits
        if limits is None:
            return 0.0
        if method == "chat.postMessage":
            key = f"{method} {args.get('channel')}"
            capacity, per_s = limits.post_burst, limits.posts_per_s * limits.speed
        elif method in METHOD_TIERS:
            key, per_minute = method, TIER_PER_MINUTE[METHOD_TIERS[method]]
            capacity, per_s = per_minute, per_minute / 60 * limits.speed
        else:
            return 0.0
        bucket = self._buckets.setdefault(key, _Bucket(capacity, per_s))
        return bucket.take(time.monotonic())

    def _check_token(self, method: str, token: str | None) -> str | None:
        if not token:
            return "not_authed"
        if method == "apps.connections.open":
            if token == self.token:
                return "not_allowed_token_type"
            return None if token == self.app_token else "invalid_auth"
        if token == self.app_token:
            return "not_allowed_token_type"
        if token == self.token and self.token_error is not None:
            return self.token_error
        return None if token == self.token else "invalid_auth"

    # ------------------------------------------------------------------ ids

    def _next_ts(self) -> str:
        micros = _TS_BASE_MICROS + next(self._ts_counter) * 100
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _next_view_id(self) -> str:
        return f"V{next(self._id_counter):010d}"

    def _new_hash(self) -> str:
        return f"{1_700_000_000 + next(self._id_counter)}.{next(self._id_counter):08d}"

    # ------------------------------------------------------------------ validation

    def _reject(self, method: str, code: str, problems: list[str]) -> _ApiError:
        self.errors.extend(f"{method}: {code}: {p}" for p in problems)
        return _ApiError(code, errors=problems, response_metadata={"messages": problems})

    def _validate_message(self, method: str, args: JSON, *, require_content: bool) -> None:
        text = args.get("text")
        has_content = any(args.get(k) for k in ("text", "blocks", "attachments", "markdown_text"))
        if require_content and not has_content:
            raise self._reject(method, "no_text", ["neither text nor blocks/attachments given"])
        if isinstance(text, str) and len(text) > MAX_TEXT_CHARS:
            raise self._reject(
                method, "msg_too_long", [f"text is {len(text)} characters (max {MAX_TEXT_CHARS})"]
            )
        if "blocks" in args:
            problems = _validate_blocks(args["blocks"], MAX_MESSAGE_BLOCKS, "/blocks")
            if problems:
                code = "invalid_blocks_format" if not isinstance(args["blocks"], list) else None
                raise self._reject(method, code or "invalid_blocks", problems)
            chars = sum(len(block_text) for block_text in _texts_in(args["blocks"]))
            if method in _MESSAGE_METHODS and chars > MAX_BLOCKS_TEXT_CHARS:
                problem = f"the blocks hold {chars} characters of text, max {MAX_BLOCKS_TEXT_CHARS}"
                raise self._reject(method, "msg_blocks_too_long", [problem])
        self._check_mass_mentions(method, args)

    def _check_mass_mentions(self, method: str, args: JSON) -> None:
        found: list[str] = []
        for key in ("text", "markdown_text"):
            if isinstance(args.get(key), str):
                found.extend(_mentions_in(args[key], f"/{key}"))
        for key in ("blocks", "attachments"):
            found.extend(_walk_mentions(args.get(key), f"/{key}"))
        if _truthy(args.get("link_names")) and isinstance(text := args.get("text"), str):
            for m in _LINK_NAMES_MENTION.finditer(text):
                found.append(f"'{m.group(0)}' with link_names=true [json-pointer:/text]")
        for f in found:
            self.errors.append(
                f"{method}: mass_mention: bot sent an unescaped channel-wide mention {f} "
                "(would notify everyone; never allowed)"
            )

    def _validate_view(self, method: str, view: Any) -> JSON:
        if not isinstance(view, dict):
            raise self._reject(method, "invalid_arguments", ["view must be a JSON object"])
        problems: list[str] = []
        if "blocks" not in view:
            problems.append("missing required field: blocks [json-pointer:/view]")
        else:
            problems.extend(_validate_blocks(view["blocks"], MAX_VIEW_BLOCKS, "/view/blocks"))
        problems.extend(_validate_view_object(view))
        if problems:
            raise self._reject(method, "invalid_arguments", list(dict.fromkeys(problems)))
        return view

    # ------------------------------------------------------------------ methods

    def _auth_test(self, args: JSON) -> JSON:
        return {
            "url": self.workspace_url,
            "team": self.team,
            "user": "approval-bot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": self.is_enterprise_install,
            **({"enterprise_id": self.enterprise_id} if self.enterprise_id else {}),
        }

    @staticmethod
    def _channel(args: JSON) -> str:
        channel = args.get("channel")
        if not isinstance(channel, str) or not channel:
            raise _ApiError("channel_not_found")
        return channel

    def _message_body(self, args: JSON, ts: str) -> JSON:
        message: JSON = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "text": args.get("text", ""),
            "ts": ts,
        }
        for key in ("blocks", "attachments", "metadata", "thread_ts"):
            if key in args:
                message[key] = copy.deepcopy(args[key])
        return message

    def _check_can_post(self, channel: str) -> None:
        """Like Slack: no post where the bot is not a member, nor in an archived channel
        (``channels[channel]`` says ``is_member: False`` / ``is_archived: True``)."""
        overlay = self.channels.get(channel, {})
        if overlay.get("is_archived"):
            raise _ApiError("is_archived")
        if overlay.get("is_member") is False:
            raise _ApiError("not_in_channel")

    def _conversations_join(self, args: JSON) -> JSON:
        """A bot joins a public channel by itself; a private one needs an invitation."""
        channel = self._channel(args)
        if channel in self.unknown_channels:
            raise _ApiError("channel_not_found")
        if not channel.startswith("C"):
            raise _ApiError("method_not_supported_for_channel_type")
        if self.channels.get(channel, {}).get("is_archived"):
            raise _ApiError("is_archived")
        self.channels.setdefault(channel, {})["is_member"] = True
        return {"channel": {"id": channel, "is_channel": True, "is_member": True}}

    def _chat_post_message(self, args: JSON) -> JSON:
        channel = self._channel(args)
        if _USER_ID.match(channel):  # posting to a user id opens/uses the DM, like Slack
            channel = self.dm_channel(channel)
        self._check_can_post(channel)
        self._validate_message("chat.postMessage", args, require_content=True)
        ts = self._next_ts()
        message = self._message_body(args, ts)
        self.messages[(channel, ts)] = message
        return {"channel": channel, "ts": ts, "message": copy.deepcopy(message)}

    def _chat_update(self, args: JSON) -> JSON:
        channel = self._channel(args)
        ts = str(args.get("ts", ""))
        if not any(k in args for k in ("text", "blocks", "attachments", "markdown_text")):
            raise self._reject("chat.update", "no_text", ["none of text/blocks/attachments given"])
        self._validate_message("chat.update", args, require_content=False)
        message = self.messages.get((channel, ts))
        if message is None:
            raise _ApiError("message_not_found")
        # Like Slack: fields that are not given keep their previous value.
        for key in ("text", "blocks", "attachments", "metadata"):
            if key in args:
                message[key] = copy.deepcopy(args[key])
        message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {
            "channel": channel,
            "ts": ts,
            "text": message.get("text", ""),
            "message": copy.deepcopy(message),
        }

    def _chat_post_ephemeral(self, args: JSON) -> JSON:
        channel = self._channel(args)
        user = args.get("user")
        if not isinstance(user, str) or not user:
            raise _ApiError("user_not_found")
        self._validate_message("chat.postEphemeral", args, require_content=True)
        members = self.members.get(channel)
        if members is not None and user not in members:
            raise _ApiError("user_not_in_channel")
        return {"message_ts": self._next_ts()}

    def _chat_get_permalink(self, args: JSON) -> JSON:
        channel = self._channel(args)
        ts = str(args.get("message_ts", ""))
        message = self.messages.get((channel, ts))
        if message is None:
            raise _ApiError("message_not_found")
        permalink = f"{self.workspace_url}archives/{channel}/p{ts.replace('.', '')}"
        thread_ts = message.get("thread_ts")
        if thread_ts and thread_ts != ts:
            permalink += f"?thread_ts={thread_ts}&cid={channel}"
        return {"channel": channel, "permalink": permalink}

    def _store_view(self, view: JSON, view_id: str, *, previous: JSON | None) -> JSON:
        stored: JSON = {
            "id": view_id,
            "team_id": self.team_id,
            "type": view.get("type"),
            "blocks": copy.deepcopy(view.get("blocks", [])),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": self._new_hash(),
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "root_view_id": (previous or {}).get("root_view_id", view_id),
            "previous_view_id": None,
            "app_id": self.app_id,
            "bot_id": self.bot_id,
        }
        for key in ("title", "submit", "close"):
            if key in view:
                stored[key] = copy.deepcopy(view[key])
        self.views[view_id] = stored
        return stored

    def _find_external(self, external_id: Any) -> JSON | None:
        if not external_id:
            return None
        return next((v for v in self.views.values() if v["external_id"] == external_id), None)

    def _views_open(self, args: JSON) -> JSON:
        trigger_id = args.get("trigger_id")
        if not trigger_id and not args.get("interactivity_pointer"):
            raise _ApiError("invalid_arguments", errors=["missing trigger_id"])
        if trigger_id:
            issued_at = _trigger_issued_at(str(trigger_id))
            if issued_at is None:
                raise _ApiError("invalid_trigger_id")
            if time.time() - issued_at > TRIGGER_TTL_S:
                raise _ApiError("expired_trigger_id")
        view = self._validate_view("views.open", args.get("view"))
        if self._find_external(view.get("external_id")) is not None:
            raise _ApiError("duplicate_external_id")
        stored = self._store_view(view, self._next_view_id(), previous=None)
        return {"view": copy.deepcopy(stored)}

    def _views_update(self, args: JSON) -> JSON:
        view = self._validate_view("views.update", args.get("view"))
        if args.get("view_id"):
            current = self.views.get(str(args["view_id"]))
        elif args.get("external_id"):
            current = self._find_external(args["external_id"])
        else:
            raise _ApiError("invalid_arguments", errors=["view_id or external_id is required"])
        if current is None:
            raise _ApiError("not_found")
        if args.get("hash") and args["hash"] != current["hash"]:
            raise _ApiError("hash_conflict")
        stored = self._store_view(view, current["id"], previous=current)
        return {"view": copy.deepcopy(stored)}

    def _views_publish(self, args: JSON) -> JSON:
        user_id = args.get("user_id")
        if not isinstance(user_id, str) or not user_id:
            raise _ApiError("invalid_arguments", errors=["missing user_id"])
        view = self._validate_view("views.publish", args.get("view"))
        if view.get("type") != "home":
            raise self._reject("views.publish", "invalid_arguments", ["view.type must be home"])
        current_id = self.home_views.get(user_id)
        current = self.views.get(current_id) if current_id is not None else None
        if current is not None and args.get("hash") and args["hash"] != current["hash"]:
            raise _ApiError("hash_conflict")
        view_id = current["id"] if current is not None else self._next_view_id()
        stored = self._store_view(view, view_id, previous=current)
        self.home_views[user_id] = view_id
        return {"view": copy.deepcopy(stored)}

    def _conversations_members(self, args: JSON) -> JSON:
        channel = args.get("channel")
        if not isinstance(channel, str) or channel not in self.members:
            raise _ApiError("channel_not_found")
        members = self.members[channel]
        start = _decode_cursor(args.get("cursor"))
        try:
            limit = int(args.get("limit") or 100)
        except (TypeError, ValueError):
            raise _ApiError("invalid_limit") from None
        limit = 100 if limit <= 0 else min(limit, 1000)
        page = members[start : start + limit]
        end = start + len(page)
        next_cursor = _encode_cursor(end) if end < len(members) else ""
        return {"members": list(page), "response_metadata": {"next_cursor": next_cursor}}

    def _conversations_info(self, args: JSON) -> JSON:
        channel = args.get("channel")
        if not isinstance(channel, str):
            raise _ApiError("channel_not_found")
        known = channel in self.channels or channel in self.members
        if not known and not _CHANNEL_ID.match(channel):
            raise _ApiError("channel_not_found")
        if channel in self.unknown_channels:
            raise _ApiError("channel_not_found")
        overlay = self.channels.get(channel, {})
        if overlay.get("is_private") and overlay.get("is_member") is False:
            raise _ApiError("channel_not_found")  # Slack hides it from non-members
        info: JSON = {
            "id": channel,
            "name": channel.lower(),
            "is_channel": channel.startswith("C"),
            "is_group": channel.startswith("G"),
            "is_im": channel.startswith("D"),
            "is_private": not channel.startswith("C"),
            "is_archived": False,
            "is_member": True,
            "context_team_id": self.team_id,
        }
        if channel in self.members:
            info["num_members"] = len(self.members[channel])
        info.update(copy.deepcopy(self.channels.get(channel, {})))
        return {"channel": info}

    def _users_info(self, args: JSON) -> JSON:
        user_id = args.get("user")
        if not isinstance(user_id, str) or (
            user_id not in self.users and not _USER_ID.match(user_id)
        ):
            raise _ApiError("user_not_found")
        if user_id in self.unknown_users:
            raise _ApiError("user_not_found")
        is_bot = user_id == self.bot_user_id
        name = "approval-bot" if is_bot else user_id.lower()
        real_name = "Approval Bot" if is_bot else f"User {user_id}"
        user: JSON = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": real_name,
            "deleted": False,
            "is_bot": is_bot,
            "is_admin": False,
            "tz": "UTC",
            "profile": {"display_name": name, "real_name": real_name},
        }
        overlay = copy.deepcopy(self.users.get(user_id, {}))
        profile = {**user["profile"], **overlay.pop("profile", {})}
        user.update(overlay)
        user["profile"] = profile
        return {"user": user}

    def _users_lookup_by_email(self, args: JSON) -> JSON:
        """The user whose ``users[id]["profile"]["email"]`` is ``email``, as users.info
        shows them; ``users_not_found`` otherwise (Slack's answer for an unknown email)."""
        email = args.get("email")
        if not isinstance(email, str) or not email:
            raise _ApiError("invalid_arguments")
        for user_id, overlay in self.users.items():
            if str((overlay.get("profile") or {}).get("email", "")).lower() == email.lower():
                return self._users_info({"user": user_id})
        raise _ApiError("users_not_found")

    def _usergroups_users_list(self, args: JSON) -> JSON:
        group = args.get("usergroup")
        if not isinstance(group, str) or group not in self.usergroups:
            raise _ApiError("no_such_subteam")
        return {"users": list(self.usergroups[group])}

    def _usergroups_list(self, args: JSON) -> JSON:
        # Every group is enabled, so include_disabled changes nothing; team_id is accepted.
        include_users = _truthy(args.get("include_users"))
        groups: list[JSON] = []
        for group_id, users in self.usergroups.items():
            handle = self.usergroup_handles.get(group_id, group_id.lower())
            group: JSON = {
                "id": group_id,
                "team_id": self.team_id,
                "handle": handle,
                "name": handle,
                "is_usergroup": True,
                "date_delete": 0,
                "user_count": len(users),
            }
            if include_users:
                group["users"] = list(users)
            groups.append(group)
        return {"usergroups": groups}

    def _reaction_target(self, args: JSON) -> tuple[JSON, str]:
        name = args.get("name")
        if not isinstance(name, str) or not name:
            raise _ApiError("invalid_name")
        channel = self._channel(args)
        message = self.messages.get((channel, str(args.get("timestamp", ""))))
        if message is None:
            raise _ApiError("message_not_found")
        return message, name.strip(":")

    def _reactions_add(self, args: JSON) -> JSON:
        message, name = self._reaction_target(args)
        reactions: list[JSON] = message.setdefault("reactions", [])
        entry = next((r for r in reactions if r["name"] == name), None)
        if entry is None:
            entry = {"name": name, "users": [], "count": 0}
            reactions.append(entry)
        if self.bot_user_id in entry["users"]:
            raise _ApiError("already_reacted")
        entry["users"].append(self.bot_user_id)
        entry["count"] = len(entry["users"])
        return {}

    def _reactions_remove(self, args: JSON) -> JSON:
        message, name = self._reaction_target(args)
        reactions: list[JSON] = message.get("reactions", [])
        entry = next((r for r in reactions if r["name"] == name), None)
        if entry is None or self.bot_user_id not in entry["users"]:
            raise _ApiError("no_reaction")
        entry["users"].remove(self.bot_user_id)
        entry["count"] = len(entry["users"])
        if not entry["users"]:
            reactions.remove(entry)
        return {}

    def _apps_connections_open(self, args: JSON) -> JSON:
        if self.socket_url is None:
            raise _ApiError("standin_socket_url_not_set")
        return {"url": self.socket_url}


# ---------------------------------------------------------------------- request decoding


async def _decode_request(request: web.Request) -> tuple[JSON, bool]:
    """Merge query string and body into one dict; returns (args, body_was_invalid_json)."""
    args: JSON = dict(request.query)
    bad_body = False
    if request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                body = None
            if isinstance(body, dict):
                args.update(body)
            else:
                bad_body = True
        else:
            form = await request.post()
            args.update({k: v for k, v in form.items() if isinstance(v, str)})
    for key in _JSON_ARGS:
        value = args.get(key)
        if isinstance(value, str):
            try:
                args[key] = json.loads(value)
            except ValueError:
                pass  # left as a string; validation reports it
    return args, bad_body


async def _decode_response_body(request: web.Request) -> JSON | None:
    """The JSON object posted to a response URL (raw JSON, or a form's ``payload`` field)."""
    if request.content_type == "application/x-www-form-urlencoded":
        raw = (await request.post()).get("payload")
    else:
        raw = await request.text()
    if not isinstance(raw, str):
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _token_of(request: web.Request, args: JSON) -> str | None:
    body_token = args.pop("token", None)
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth[len("Bearer ") :].strip()
    return body_token if isinstance(body_token, str) else None


def _encode_cursor(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


def _decode_cursor(cursor: Any) -> int:
    if not cursor:
        return 0
    try:
        kind, _, number = base64.b64decode(str(cursor), validate=True).decode().partition(":")
        if kind != "offset":
            raise ValueError(kind)
        return int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _ApiError("invalid_cursor") from None


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _matches(predicate: Predicate, args: JSON) -> bool:
    try:
        return bool(predicate(args))
    except (LookupError, TypeError):
        return False


def _truthy(value: Any) -> bool:
    return value is True or value in ("1", "true", 1)


def _needed_scope(method: str, args: JSON) -> str | None:
    """The bot scope ``method`` needs (for ``conversations.*``, by the channel's kind)."""
    if method in ("conversations.info", "conversations.members"):
        channel = args.get("channel")
        return _CHANNEL_READ_SCOPES.get(channel[:1]) if isinstance(channel, str) else None
    return _METHOD_SCOPES.get(method)


# ---------------------------------------------------------------------- block validation


def _validate_blocks(blocks: Any, limit: int, where: str) -> list[str]:
    """Every problem Slack (or slack_sdk's models) would find in a ``blocks`` array."""
    if not isinstance(blocks, list):
        return [f"blocks must be a JSON array, got {type(blocks).__name__} [json-pointer:{where}]"]
    problems: list[str] = []
    if len(blocks) > limit:
        problems.append(
            f"{len(blocks)} blocks, more than the maximum {limit} [json-pointer:{where}]"
        )
    seen_ids: set[str] = set()
    for i, raw in enumerate(blocks):
        pointer = f"{where}/{i}"
        problems.extend(_validate_block(raw, pointer))
        block_id = raw.get("block_id") if isinstance(raw, dict) else None
        if isinstance(block_id, str):
            if block_id in seen_ids:
                problems.append(f"duplicate block_id {block_id!r} [json-pointer:{pointer}]")
            seen_ids.add(block_id)
    return problems


def _validate_block(raw: Any, pointer: str) -> list[str]:
    if not isinstance(raw, dict):
        return [f"block must be a JSON object [json-pointer:{pointer}]"]
    problems: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            parsed = Block.parse(copy.deepcopy(raw))
            if parsed is None:
                return [f"unknown block type {raw.get('type')!r} [json-pointer:{pointer}]"]
            parsed.to_dict()
    except Exception as exc:  # SlackObjectFormationError, TypeError, warnings, ...
        problems.append(f"{type(exc).__name__}: {exc} [json-pointer:{pointer}]")
    else:
        unknown = sorted(set(raw) - set(parsed.attributes) - {"type"})
        if unknown:
            problems.append(f"unsupported properties {unknown} [json-pointer:{pointer}]")
    if raw.get("type") == "section":
        problems.extend(_section_limits(raw, pointer))
    if raw.get("type") == "actions":
        problems.extend(_duplicate_action_ids(raw, pointer))
    problems.extend(_empty_texts(raw, pointer))
    return problems


def _text_of(obj: Any) -> str | None:
    if isinstance(obj, dict) and isinstance(obj.get("text"), str):
        return str(obj["text"])
    return obj if isinstance(obj, str) else None


def _section_limits(raw: JSON, pointer: str) -> list[str]:
    problems: list[str] = []
    text = _text_of(raw.get("text"))
    if text is not None and len(text) > MAX_SECTION_TEXT_CHARS:
        problems.append(
            f"section text is {len(text)} characters, max {MAX_SECTION_TEXT_CHARS} "
            f"[json-pointer:{pointer}/text/text]"
        )
    fields = raw.get("fields")
    for j, item in enumerate(fields if isinstance(fields, list) else []):
        field_text = _text_of(item)
        if field_text is not None and len(field_text) > MAX_SECTION_FIELD_CHARS:
            problems.append(
                f"section field is {len(field_text)} characters, max {MAX_SECTION_FIELD_CHARS} "
                f"[json-pointer:{pointer}/fields/{j}]"
            )
    return problems


def _duplicate_action_ids(raw: JSON, pointer: str) -> list[str]:
    elements = raw.get("elements")
    seen: set[str] = set()
    problems: list[str] = []
    for j, element in enumerate(elements if isinstance(elements, list) else []):
        action_id = element.get("action_id") if isinstance(element, dict) else None
        if isinstance(action_id, str):
            if action_id in seen:
                problems.append(
                    f"duplicate action_id {action_id!r} [json-pointer:{pointer}/elements/{j}]"
                )
            seen.add(action_id)
    return problems


def _iter_dicts(value: Any, pointer: str) -> Iterator[tuple[JSON, str]]:
    if isinstance(value, dict):
        yield value, pointer
        for k, v in value.items():
            yield from _iter_dicts(v, f"{pointer}/{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _iter_dicts(v, f"{pointer}/{i}")


def _empty_texts(raw: JSON, pointer: str) -> list[str]:
    return [
        f"text must be more than 0 characters [json-pointer:{p}/text]"
        for d, p in _iter_dicts(raw, pointer)
        if d.get("type") in ("plain_text", "mrkdwn") and not (_text_of(d) or "").strip()
    ]


def _validate_view_object(view: JSON) -> list[str]:
    problems: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            View(**copy.deepcopy(view)).to_dict()
    except Exception as exc:
        problems.append(f"{type(exc).__name__}: {exc} [json-pointer:/view]")
    if view.get("type") == "modal":
        if not view.get("title"):
            problems.append("modal view requires a title [json-pointer:/view/title]")
        blocks = view.get("blocks")
        has_input = isinstance(blocks, list) and any(
            isinstance(b, dict) and b.get("type") == "input" for b in blocks
        )
        if has_input and not view.get("submit"):
            problems.append("modal with input blocks requires submit [json-pointer:/view/submit]")
    return problems


def _texts_in(value: Any) -> Iterator[str]:
    """Every ``text`` string in ``value`` (a message's blocks): what Slack counts toward
    ``msg_blocks_too_long``."""
    for d, _ in _iter_dicts(value, ""):
        if isinstance(d.get("text"), str):
            yield d["text"]


def _mentions_in(text: str, pointer: str) -> list[str]:
    return [f"'{m.group(0)}' [json-pointer:{pointer}]" for m in _MASS_MENTION.finditer(text)]


def _walk_mentions(value: Any, pointer: str) -> list[str]:
    found: list[str] = []
    for d, p in _iter_dicts(value, pointer):
        if d.get("type") == "broadcast":
            found.append(f"rich_text broadcast {d.get('range')!r} [json-pointer:{p}]")
        for key in _TEXT_KEYS:
            if isinstance(d.get(key), str):
                found.extend(_mentions_in(d[key], f"{p}/{key}"))
    return found
