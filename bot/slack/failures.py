"""Slack's Web API errors, sorted by what the bot does about them.

Transient failures (HTTP 429 with ``Retry-After``, 5xx, timeouts, dropped connections) are
retried by slack_sdk's retry handlers, and posts' 429s in their channel's turn
(bot.slack.adapter). The errors below are permanent:
sending the same request again cannot succeed until a person changes something, so they
are never retried on a timer; they are reported once, to the person affected, in the log and
metrics (``approval_bot_slack_permanent_errors_total``), and on ``/readyz``.
"""

from __future__ import annotations

from typing import Final

#: error code -> what a person must do about it (Slack's documented errors).
PERMANENT: Final[dict[str, str]] = {
    "not_in_channel": "invite the bot to the channel (`/invite @Approval Bot` there)",
    "channel_not_found": "check the channel id in bot.yml; for a private channel, invite the bot",
    "is_archived": "unarchive the channel, or point bot.yml at another one",
    "missing_scope": "add the missing scope to the app (manifest.yml) and reinstall it",
    "invalid_blocks": "a bug: the bot built blocks Slack refuses; report it with the log line",
    "invalid_blocks_format": "a bug: the bot built blocks Slack refuses; report it",
    "msg_blocks_too_long": "a bug: the message was too long for Slack; report it",
    "invalid_auth": "set a valid SLACK_BOT_TOKEN (the app's OAuth & Permissions page)",
    "not_authed": "set SLACK_BOT_TOKEN",
    "account_inactive": "the bot's token was deactivated: reinstall the app",
    "token_revoked": "the bot's token was revoked: reinstall the app",
    "no_permission": "the workspace does not let the bot do this; ask a Slack admin",
    "restricted_action": "a workspace setting forbids posting there; ask a Slack admin",
    "ekm_access_denied": "the workspace's key management refused access; ask a Slack admin",
    "team_access_not_granted": "grant the app access to this workspace of the organization",
}


def is_permanent(code: str | None) -> bool:
    return code in PERMANENT


def fix_for(code: str | None) -> str:
    return PERMANENT.get(code or "", "try again later")
