"""Our own rules for manifest.yml, written from Slack's manifest documentation: what the
tests check where Slack's published JSON schema is not on the machine (a user's clone).
Where the official schema is here (``$SLACK_MANIFEST_SCHEMA``, or
``../shared/specs/slack-manifest.schema.json`` beside the checkout), it is used as well.

This is not a copy of Slack's schema: it covers the parts of the manifest this app uses.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

SCHEMA_PATH_ENV = "SLACK_MANIFEST_SCHEMA"
_BESIDE_CHECKOUT = (
    Path(__file__).resolve().parents[2] / "shared" / "specs" / "slack-manifest.schema.json"
)

#: A background colour: "#" and three or six hex digits.
BACKGROUND_COLOUR = r"^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$"

_HTTPS_URL: dict[str, Any] = {"type": "string", "format": "uri", "pattern": "^https://"}

OWN_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["display_information"],
    "additionalProperties": False,
    "properties": {
        "_metadata": {
            "type": "object",
            "properties": {
                "major_version": {"type": "integer"},
                "minor_version": {"type": "integer"},
            },
        },
        "display_information": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 35},
                "description": {"type": "string", "maxLength": 140},
                "long_description": {"type": "string", "maxLength": 4000},
                "background_color": {"type": "string", "pattern": BACKGROUND_COLOUR},
            },
        },
        "features": {
            "type": "object",
            "properties": {
                "app_home": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        name: {"type": "boolean"}
                        for name in (
                            "home_tab_enabled",
                            "messages_tab_enabled",
                            "messages_tab_read_only_enabled",
                        )
                    },
                },
                "bot_user": {
                    "type": "object",
                    "required": ["display_name"],
                    "properties": {
                        "display_name": {"type": "string", "maxLength": 80},
                        "always_online": {"type": "boolean"},
                    },
                },
                "slash_commands": {
                    "type": "array",
                    "maxItems": 50,
                    "items": {
                        "type": "object",
                        "required": ["command", "description"],
                        "properties": {
                            "command": {"type": "string", "pattern": "^/", "maxLength": 32},
                            "url": _HTTPS_URL,
                            "description": {"type": "string", "maxLength": 2000},
                            "usage_hint": {"type": "string", "maxLength": 1000},
                            "should_escape": {"type": "boolean"},
                        },
                    },
                },
                "assistant_view": {"type": "object"},
            },
        },
        "oauth_config": {
            "type": "object",
            "properties": {
                "scopes": {
                    "type": "object",
                    "properties": {
                        "bot": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                        "user": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                    },
                },
                "redirect_urls": {"type": "array", "items": {"type": "string"}},
            },
        },
        "settings": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "event_subscriptions": {
                    "type": "object",
                    "properties": {
                        "request_url": _HTTPS_URL,
                        "bot_events": {
                            "type": "array",
                            "items": {"type": "string"},
                            "uniqueItems": True,
                            "maxItems": 100,
                        },
                        "user_events": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "interactivity": {
                    "type": "object",
                    "required": ["is_enabled"],
                    "properties": {
                        "is_enabled": {"type": "boolean"},
                        "request_url": _HTTPS_URL,
                        "message_menu_options_url": _HTTPS_URL,
                    },
                },
                "org_deploy_enabled": {"type": "boolean"},
                "socket_mode_enabled": {"type": "boolean"},
                "token_rotation_enabled": {"type": "boolean"},
                "is_hosted": {"type": "boolean"},
                "function_runtime": {"type": "string"},
                "allowed_ip_address_ranges": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
}


def official_schema_path() -> Path | None:
    """Slack's published schema, if this machine has it."""
    given = os.environ.get(SCHEMA_PATH_ENV)
    if given:
        return Path(given)
    return _BESIDE_CHECKOUT if _BESIDE_CHECKOUT.is_file() else None
