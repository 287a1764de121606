"""Slack: the bot token, its workspace and scopes, what the config names, the app token."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.config import BotConfig
from bot.ops.doctor.report import Check, failed, ok, warning
from bot.ops.doctor.scopes import check_scopes, granted_scopes
from bot.ops.settings import Settings

_REINSTALL = (
    "reinstall the app to the workspace (OAuth & Permissions → Reinstall to Workspace) and "
    "put the new Bot User OAuth Token in SLACK_BOT_TOKEN"
)
_COPY_TOKEN = (
    "copy the Bot User OAuth Token (xoxb-…) from the app's OAuth & Permissions page into "
    "SLACK_BOT_TOKEN"
)
#: What auth.test's errors mean for the operator, and the fix.
_TOKEN_ERRORS = {
    "invalid_auth": ("the token is not valid (invalid_auth)", _COPY_TOKEN),
    "not_authed": ("Slack received no token (not_authed)", _COPY_TOKEN),
    "account_inactive": (
        "the token's app was uninstalled, or its workspace deactivated (account_inactive)",
        _REINSTALL,
    ),
    "token_revoked": ("the token was revoked (token_revoked)", _REINSTALL),
    "token_expired": (
        "the token expired (token_expired: token rotation is on)",
        "turn token rotation off (OAuth & Permissions), then " + _REINSTALL,
    ),
    "not_allowed_token_type": (
        "SLACK_BOT_TOKEN is not a bot token (not_allowed_token_type)",
        "use the Bot User OAuth Token (xoxb-…), not an app-level (xapp-…) or user token",
    ),
}
_APP_TOKEN_FIX = (
    "create an app-level token with the connections:write scope (Basic Information → "
    "App-Level Tokens) and put it in SLACK_APP_TOKEN; Socket Mode must be on (Socket Mode page)"
)


@dataclass(frozen=True)
class BotIdentity:
    """Who the token is, from auth.test: the bot's name and the scopes it was granted."""

    name: str
    granted: frozenset[str] | None  # None: Slack did not say


class _Unreachable(Exception):
    """Slack did not answer (a connection error or a timeout)."""


async def _call(client: AsyncWebClient, method: str, **args: Any) -> Any:
    try:
        return await getattr(client, method.replace(".", "_"))(**args)
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        raise _Unreachable(f"{type(error).__name__}: {error}") from error


def _code(error: SlackApiError) -> str:
    return str(error.response.get("error") or "unknown_error")


def _scope_failure(check: str, method: str, error: SlackApiError) -> Check:
    """A failed check for an API error (a missing scope gets its own fix)."""
    code = _code(error)
    if code == "missing_scope":
        needed = error.response.get("needed") or "?"
        return failed(
            check,
            f"{method}: the token lacks the {needed} scope (missing_scope)",
            f"add {needed} to the Bot Token Scopes (OAuth & Permissions) and reinstall the app",
        )
    return failed(
        check, f"{method} failed: {code}", f"see Slack's documentation of {method} for {code}"
    )


async def check_slack(
    client: AsyncWebClient, settings: Settings, config: BotConfig, *, full: bool
) -> list[Check]:
    """The Slack checks; ``full=False``: the token, its scopes and the channels only."""
    checks: list[Check] = []
    identity = await _check_token(client, settings, checks)
    if identity is not None:
        checks.append(check_scopes(identity.granted))
        try:
            checks += await _check_channels(client, config, identity)
            if full:
                checks += await _check_usergroups(client, config)
                checks += await _check_users(client, config)
        except _Unreachable as error:  # it answered auth.test: report where it stopped
            checks.append(failed("slack", f"Slack stopped answering ({error})", "run doctor again"))
    if full:
        checks.append(_check_signing_secret(settings))
        checks.append(await _check_app_token(client, settings))
    return checks


async def _check_token(
    client: AsyncWebClient, settings: Settings, checks: list[Check]
) -> BotIdentity | None:
    if not settings.slack_bot_token:
        checks.append(failed("slack.token", "SLACK_BOT_TOKEN is not set", _COPY_TOKEN))
        return None
    try:
        response = await _call(client, "auth.test")
    except _Unreachable as error:
        checks.append(
            failed(
                "slack.token",
                f"Slack does not answer at {settings.slack_api_url} ({error})",
                "check the network (a proxy, a firewall) and SLACK_API_URL",
            )
        )
        return None
    except SlackApiError as error:
        code = _code(error)
        detail, fix = _TOKEN_ERRORS.get(
            code, (f"auth.test failed: {code}", "see Slack's documentation of auth.test")
        )
        checks.append(failed("slack.token", detail, fix))
        return None
    checks.append(ok("slack.token", f"valid: bot @{response['user']} in {_where(response)}"))
    return BotIdentity(str(response["user"]), granted_scopes(response.headers))


def _where(auth: Mapping[str, Any]) -> str:
    """The workspace or org a token belongs to, from auth.test."""
    if auth.get("is_enterprise_install"):
        return f"the org {auth.get('enterprise_id')} (an org-wide install)"
    workspace = f"the workspace {auth.get('team')} ({auth.get('team_id')}, {auth.get('url')})"
    if auth.get("enterprise_id"):
        workspace += f" of the org {auth.get('enterprise_id')}"
    return workspace


def _named(config: BotConfig) -> tuple[dict[str, list[str]], ...]:
    """Channels, user groups and users the config names, each with where it names them."""
    channels: dict[str, list[str]] = {}
    usergroups: dict[str, list[str]] = {}
    users: dict[str, list[str]] = {}
    if config.approvals is not None:
        channels.setdefault(config.approvals.channel, []).append("approvals.channel")
    approvers = [("policy.defaults.approvers", config.policy.defaults.approvers)]
    approvers += [
        (f"policy.rules.{i}.approvers", rule.approvers)
        for i, rule in enumerate(config.policy.rules)
    ]
    for where, given in approvers:
        if given is None:
            continue
        if given.channel:
            channels.setdefault(given.channel, []).append(where)
        for group in given.usergroups:
            usergroups.setdefault(group, []).append(where)
        for user in given.users:
            users.setdefault(user, []).append(where)
    for group in config.admins.usergroups:
        usergroups.setdefault(group, []).append("admins")
    for user in config.admins.users:
        users.setdefault(user, []).append("admins")
    return channels, usergroups, users


async def _check_channels(
    client: AsyncWebClient, config: BotConfig, identity: BotIdentity
) -> list[Check]:
    channels, _, _ = _named(config)
    checks = []
    for channel_id, where in channels.items():
        check = f"slack.channel {channel_id}"
        try:
            response = await _call(client, "conversations.info", channel=channel_id)
        except SlackApiError as error:
            if _code(error) == "channel_not_found":
                checks.append(
                    failed(
                        check,
                        f"not found (named in {', '.join(where)}): no such channel, or a "
                        "private one the bot is not in",
                        "check the id (channel details → About → Channel ID); for a private "
                        f"channel, invite the bot: /invite @{identity.name} in the channel",
                    )
                )
            else:
                checks.append(_scope_failure(check, "conversations.info", error))
            continue
        checks.append(_channel_state(check, response["channel"], identity))
    return checks


def _channel_state(check: str, channel: Mapping[str, Any], identity: BotIdentity) -> Check:
    name = f"#{channel.get('name', channel.get('id'))}"
    if channel.get("is_archived"):
        return failed(
            check,
            f"{name} is archived: cards cannot be posted there",
            "unarchive it, or put another channel's id in bot.yml",
        )
    if not channel.get("is_member"):
        invite = f"/invite @{identity.name} in {name}"
        if not channel.get("is_private") and "channels:join" in (identity.granted or ()):
            return warning(
                check,
                f"the bot is not in {name} yet: it joins it by itself when it first posts a "
                "card there (it has channels:join)",
                f"nothing to do; or {invite} to have it there now",
            )
        return failed(
            check, f"the bot is not a member of {name}: it cannot post cards there", invite
        )
    return ok(check, f"{name}: the bot is a member")


async def _check_usergroups(client: AsyncWebClient, config: BotConfig) -> list[Check]:
    _, usergroups, _ = _named(config)
    if not usergroups:
        return []
    try:
        listed = await _call(client, "usergroups.list", include_disabled=True)
    except SlackApiError as error:
        return [_scope_failure("slack.usergroups", "usergroups.list", error)]
    known = {str(g["id"]): g for g in listed.get("usergroups", [])}
    checks = []
    for group_id, where in usergroups.items():
        checks.append(await _usergroup(client, group_id, known.get(group_id), where))
    return checks


async def _usergroup(
    client: AsyncWebClient, group_id: str, group: Mapping[str, Any] | None, where: list[str]
) -> Check:
    check = f"slack.usergroup {group_id}"
    fix = "check the id in bot.yml (usergroups.list gives each group's id)"
    if group is None:
        return failed(check, f"no such user group (named in {', '.join(where)})", fix)
    handle = f"@{group.get('handle', group_id)}"
    if group.get("date_delete"):
        return failed(
            check,
            f"{handle} is disabled (named in {', '.join(where)})",
            "enable it again, or remove it from bot.yml",
        )
    try:
        members = await _call(client, "usergroups.users.list", usergroup=group_id)
    except SlackApiError as error:
        if _code(error) == "no_such_subteam":
            return failed(check, f"no such user group (no_such_subteam; {handle})", fix)
        return _scope_failure(check, "usergroups.users.list", error)
    count = len(members.get("users", []))
    if count == 0:
        return warning(
            check, f"{handle} has no members: nobody approves through it", f"add people to {handle}"
        )
    return ok(check, f"{handle}: {count} member(s) (named in {', '.join(where)})")


async def _check_users(client: AsyncWebClient, config: BotConfig) -> list[Check]:
    _, _, users = _named(config)
    checks = []
    for user_id, where in users.items():
        check = f"slack.user {user_id}"
        named = f"named in {', '.join(where)}"
        try:
            response = await _call(client, "users.info", user=user_id)
        except SlackApiError as error:
            if _code(error) == "user_not_found":
                checks.append(
                    failed(
                        check,
                        f"no such user ({named})",
                        "check the id in bot.yml (profile → ⋮ → Copy member ID)",
                    )
                )
            else:
                checks.append(_scope_failure(check, "users.info", error))
            continue
        user = response["user"]
        name = f"@{user.get('name', user_id)}"
        if user.get("deleted"):
            checks.append(
                failed(
                    check,
                    f"{name} is deactivated ({named})",
                    "remove them from bot.yml, or name someone else",
                )
            )
        elif user.get("is_bot"):
            checks.append(
                warning(check, f"{name} is a bot: it cannot decide ({named})", "name a person")
            )
        else:
            checks.append(ok(check, f"{name} ({named})"))
    return checks


def _check_signing_secret(settings: Settings) -> Check:
    if settings.slack_signing_secret:
        return ok(
            "slack.signing_secret",
            "set (Slack cannot check it online: with a wrong one, `serve` answers 401 to "
            "every request Slack sends)",
        )
    if settings.slack_app_token:
        return ok("slack.signing_secret", "not set: Socket Mode does not need it (`serve` does)")
    return failed(
        "slack.signing_secret",
        "SLACK_SIGNING_SECRET is not set: `serve` cannot check that requests come from Slack",
        "copy the Signing Secret from the app's Basic Information page into SLACK_SIGNING_SECRET",
    )


async def _check_app_token(client: AsyncWebClient, settings: Settings) -> Check:
    if not settings.slack_app_token:
        return ok("slack.app_token", "SLACK_APP_TOKEN is not set: only `socket` needs it")
    try:
        await _call(client, "apps.connections.open", app_token=settings.slack_app_token)
    except _Unreachable as error:
        return failed("slack.app_token", f"Slack does not answer ({error})", "check the network")
    except SlackApiError as error:
        code = _code(error)
        if code == "not_allowed_token_type":
            return failed(
                "slack.app_token",
                "SLACK_APP_TOKEN is not an app-level token (not_allowed_token_type)",
                _APP_TOKEN_FIX,
            )
        return failed(
            "slack.app_token",
            f"the app-level token cannot open a Socket Mode connection ({code})",
            _APP_TOKEN_FIX,
        )
    return ok("slack.app_token", "the app-level token opens a Socket Mode connection")
