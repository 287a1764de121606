"""Checks for manifest.yml, the Slack app manifest.

The manifest is validated against our own rules for the parts of it this app uses
(tests.manifest_rules), and against Slack's published JSON schema where the machine has it;
then checked for the things the bot itself relies on: the events it handles, interactivity
for the approval buttons, the /approvals command and the request URL path slack-bolt
listens on.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from tests.manifest_rules import BACKGROUND_COLOUR, OWN_SCHEMA, official_schema_path

HERE = Path(__file__).resolve()
MANIFEST_PATH = HERE.parents[1] / "manifest.yml"

EVENTS_PATH = "/slack/events"

# Event -> bot scope Slack requires before it will deliver that event.
EVENT_SCOPES = {
    "app_mention": "app_mentions:read",
    "message.im": "im:history",
    "message.channels": "channels:history",
    "message.groups": "groups:history",
    "message.mpim": "mpim:history",
    "app_home_opened": None,  # needs no scope
    "member_joined_channel": "channels:read",  # and groups:read for private channels
    "member_left_channel": "channels:read",
    "subteam_members_changed": "usergroups:read",
    "subteam_updated": "usergroups:read",
    "assistant_thread_started": "assistant:write",
    "assistant_thread_context_changed": "assistant:write",
}

BOT_SCOPES = {
    "app_mentions:read",
    "chat:write",
    "im:history",
    "im:read",
    "im:write",
    "channels:history",
    "groups:history",
    "channels:join",
    "mpim:history",
    "channels:read",
    "groups:read",
    "users:read",
    "users:read.email",  # users.lookupByEmail: an HTTP API requester named by email
    "usergroups:read",
    "reactions:write",
    "commands",
    "assistant:write",
}

Manifest = dict[str, Any]


def _schemas() -> list[Any]:
    official = official_schema_path()
    return [
        pytest.param(OWN_SCHEMA, id="own-rules"),
        pytest.param(
            official,
            id="slack-schema",
            marks=pytest.mark.skipif(
                official is None, reason="Slack's published manifest schema is not on this machine"
            ),
        ),
    ]


@pytest.fixture(scope="module", params=_schemas())
def schema(request: pytest.FixtureRequest) -> dict[str, Any]:
    if isinstance(request.param, Path):
        loaded: dict[str, Any] = json.loads(request.param.read_text(encoding="utf-8"))
        return loaded
    return dict(request.param)


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> Draft7Validator:
    # The schema declares draft-07; make sure we use the matching validator class.
    assert schema.get("$schema") == "http://json-schema.org/draft-07/schema#"
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    loaded = yaml.safe_load(MANIFEST_PATH.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), "manifest.yml must be a YAML mapping"
    return loaded


def schema_errors(validator: Draft7Validator, instance: Manifest) -> list[str]:
    """Every validation error as 'json.path: message', in a stable order."""
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{e.json_path}: {e.message}" for e in errors]


def test_manifest_matches_schema(validator: Draft7Validator, manifest: Manifest) -> None:
    errors = schema_errors(validator, manifest)
    assert not errors, "manifest.yml does not match the Slack schema:\n" + "\n".join(errors)


def test_metadata_is_manifest_v2_1(manifest: Manifest) -> None:
    assert manifest["_metadata"] == {"major_version": 2, "minor_version": 1}


def test_background_color_is_a_hex_colour(manifest: Manifest) -> None:
    # Slack's schema spells this constraint "regex", which JSON Schema ignores; check it here.
    rule = BACKGROUND_COLOUR
    colour = manifest["display_information"].get("background_color")
    if colour is not None:
        assert re.fullmatch(rule, colour), colour


def test_bot_user_and_app_home(manifest: Manifest) -> None:
    features = manifest["features"]
    assert features["bot_user"] == {"display_name": "Approval Bot", "always_online": True}
    assert features["app_home"] == {
        "home_tab_enabled": True,
        "messages_tab_enabled": True,
        "messages_tab_read_only_enabled": False,
    }


def test_the_app_sits_in_the_ai_assistant_panel(manifest: Manifest) -> None:
    view = manifest["features"]["assistant_view"]
    assert view["assistant_description"]
    assert 1 <= len(view["suggested_prompts"]) <= 4
    assert all(p["title"] and p["message"] for p in view["suggested_prompts"])


def test_bot_scopes(manifest: Manifest) -> None:
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    assert len(scopes) == len(set(scopes)), "duplicate bot scopes"
    assert set(scopes) == BOT_SCOPES


def test_events_are_subscribed(manifest: Manifest) -> None:
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    missing = set(EVENT_SCOPES) - events
    assert not missing, f"bot events not subscribed: {sorted(missing)}"


def test_every_event_has_its_scope(manifest: Manifest) -> None:
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    for event in events:
        assert event in EVENT_SCOPES, f"unexpected bot event {event!r}"
        needed = EVENT_SCOPES[event]
        assert needed is None or needed in scopes, f"{event} needs the {needed} scope"


def test_interactivity_is_on(manifest: Manifest) -> None:
    assert manifest["settings"]["interactivity"]["is_enabled"] is True


def request_urls(manifest: Manifest) -> dict[str, str]:
    settings = manifest["settings"]
    urls = {
        "settings.event_subscriptions.request_url": settings["event_subscriptions"]["request_url"],
        "settings.interactivity.request_url": settings["interactivity"]["request_url"],
    }
    for i, command in enumerate(manifest["features"]["slash_commands"]):
        urls[f"features.slash_commands[{i}].url"] = command["url"]
    return urls


def test_request_urls_point_at_bolt_endpoint(manifest: Manifest) -> None:
    for where, url in request_urls(manifest).items():
        assert url.startswith("https://"), f"{where} must use https: {url}"
        assert url.endswith(EVENTS_PATH), f"{where} must end with {EVENTS_PATH}: {url}"


def test_approvals_command(manifest: Manifest) -> None:
    commands = {c["command"]: c for c in manifest["features"]["slash_commands"]}
    assert "/approvals" in commands
    approvals = commands["/approvals"]
    assert approvals["description"] == "Pending approvals, policy and grants"
    assert approvals["usage_hint"] == (
        "pending | policy | grants | revoke <id> | require <tool> | allow <tool> | reset <tool>"
    )
    assert approvals["should_escape"] is True


def test_settings(manifest: Manifest) -> None:
    settings = manifest["settings"]
    assert settings["org_deploy_enabled"] is False
    assert settings["socket_mode_enabled"] is False
    assert settings["token_rotation_enabled"] is False


# Negative tests: prove the schema check really rejects bad manifests.
# (The schema does not enumerate scopes or event names, so an unknown scope would pass it;
# test_bot_scopes and test_every_event_has_its_scope cover those instead.)


def _drop_name(m: Manifest) -> None:
    del m["display_information"]["name"]


def _unknown_top_level_key(m: Manifest) -> None:
    m["permissions"] = {"bot": ["chat:write"]}


def _command_without_slash(m: Manifest) -> None:
    m["features"]["slash_commands"][0]["command"] = "approvals"


def _interactivity_without_is_enabled(m: Manifest) -> None:
    del m["settings"]["interactivity"]["is_enabled"]


def _relative_request_url(m: Manifest) -> None:
    m["settings"]["event_subscriptions"]["request_url"] = "/slack/events"


def _duplicate_event(m: Manifest) -> None:
    m["settings"]["event_subscriptions"]["bot_events"].append("app_mention")


def _boolean_as_string(m: Manifest) -> None:
    m["settings"]["socket_mode_enabled"] = "false"


@pytest.mark.parametrize(
    ("mutate", "expected_path"),
    [
        pytest.param(mutate, path, id=mutate.__name__.lstrip("_"))
        for mutate, path in [
            (_drop_name, "$.display_information"),
            (_unknown_top_level_key, "$"),
            (_command_without_slash, "$.features.slash_commands[0].command"),
            (_interactivity_without_is_enabled, "$.settings.interactivity"),
            (_relative_request_url, "$.settings.event_subscriptions.request_url"),
            (_duplicate_event, "$.settings.event_subscriptions.bot_events"),
            (_boolean_as_string, "$.settings.socket_mode_enabled"),
        ]
    ],
)
def test_schema_rejects_broken_manifest(
    validator: Draft7Validator,
    manifest: Manifest,
    mutate: Callable[[Manifest], None],
    expected_path: str,
) -> None:
    broken = copy.deepcopy(manifest)
    mutate(broken)
    errors = schema_errors(validator, broken)
    assert errors, f"{mutate.__name__} should have been rejected"
    assert any(e.startswith(f"{expected_path}: ") for e in errors), errors
    # The original must be untouched (the fixture is shared between tests).
    assert not schema_errors(validator, manifest)
