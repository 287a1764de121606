"""The Slack app's scopes: those its bot token was granted against those the manifest asks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

import bot
from bot.ops.doctor.report import Check, failed, ok, warning

#: The bot scopes ``manifest.yml`` asks for, for an install without the manifest (the
#: Docker image): a test keeps the two equal.
BOT_SCOPES = (
    "app_mentions:read",
    "chat:write",
    "im:history",
    "im:read",
    "im:write",
    "channels:history",
    "groups:history",
    "mpim:history",
    "channels:join",
    "channels:read",
    "groups:read",
    "users:read",
    "users:read.email",
    "usergroups:read",
    "reactions:write",
    "commands",
    "assistant:write",
)

MANIFEST = "manifest.yml"


def granted_scopes(headers: Mapping[str, Any]) -> frozenset[str] | None:
    """The scopes of the token, from the ``x-oauth-scopes`` header of any Web API answer."""
    for name, value in headers.items():
        if name.lower() == "x-oauth-scopes":
            text = value[0] if isinstance(value, list) else str(value)
            return frozenset(s.strip() for s in text.split(",") if s.strip())
    return None


def wanted_scopes() -> tuple[frozenset[str], str]:
    """The bot scopes the manifest asks for, and where they were read."""
    for folder in (Path(bot.__file__).resolve().parent.parent, Path.cwd()):
        path = folder / MANIFEST
        try:
            manifest = yaml.safe_load(path.read_text(encoding="utf-8"))
            scopes = manifest["oauth_config"]["scopes"]["bot"]
        except (OSError, yaml.YAMLError, KeyError, TypeError):
            continue
        return frozenset(str(s) for s in scopes), str(path)
    return frozenset(BOT_SCOPES), "the list in bot/ops/doctor/scopes.py (no manifest.yml found)"


def check_scopes(granted: frozenset[str] | None) -> Check:
    wanted, source = wanted_scopes()
    if granted is None:
        return warning(
            "slack.scopes",
            "Slack did not say which scopes the token has (no x-oauth-scopes header)",
            f"compare OAuth & Permissions → Bot Token Scopes with {source}",
        )
    missing = sorted(wanted - granted)
    if missing:
        return failed(
            "slack.scopes",
            f"missing scopes: {', '.join(missing)} (compared with {source})",
            "add them to the Bot Token Scopes (OAuth & Permissions), or update the app from "
            "manifest.yml, then reinstall the app to the workspace",
        )
    extra = sorted(granted - wanted)
    also = f"; also granted: {', '.join(extra)}" if extra else ""
    return ok("slack.scopes", f"all {len(wanted)} scopes of {source} are granted{also}")
