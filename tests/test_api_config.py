"""The HTTP API's part of bot.yml and of the environment: clients and their keys, read at
start-up with errors naming the file, field, line and fix; and a request's origin stored
with a default, so that records written before the API read unchanged."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from bot.core.api_config import ApiClient
from bot.core.config import load_config
from bot.errors import ConfigError
from bot.ops.settings import load_api_clients
from bot.storage import record
from tests.helpers import API_KEY, CONFIG, write_config
from tests.test_stored_deferral import request

CLIENTS = """
api:
  clients:
    - name: billing-agent
      key_env: TEST_API_KEY_BILLING
      requesters: [UREQ, S0FINANCE]
"""


def config_file(tmp_path: Path, api: str) -> Path:
    return write_config(tmp_path, CONFIG.format(channel="C0APPROVALS", self_approval="false") + api)


def test_clients_are_read_with_their_keys_from_the_environment(tmp_path: Path) -> None:
    path = config_file(tmp_path, CLIENTS)
    clients = load_api_clients(load_config(path), path, {"TEST_API_KEY_BILLING": API_KEY})
    assert clients == (ApiClient("billing-agent", API_KEY, ("UREQ", "S0FINANCE")),)
    assert API_KEY not in repr(clients)  # a key never shows in a repr (nor a log line)


@pytest.mark.parametrize(
    ("environ", "problem"),
    [({}, "is not set"), ({"TEST_API_KEY_BILLING": "short"}, "is shorter than 24 characters")],
)
def test_a_missing_or_short_key_names_the_file_field_line_and_fix(
    tmp_path: Path, environ: dict[str, str], problem: str
) -> None:
    path = config_file(tmp_path, CLIENTS)
    with pytest.raises(ConfigError) as raised:
        load_api_clients(load_config(path), path, environ)
    text = raised.value.render()
    assert str(path) in text
    assert "api.clients.0.key_env (line" in text
    assert f"TEST_API_KEY_BILLING {problem}" in text
    assert "fix:" in text


@pytest.mark.parametrize(
    ("api", "expected"),
    [
        (
            CLIENTS + "    - {name: billing-agent, key_env: OTHER, requesters: [any]}\n",
            "two clients have the name billing-agent",
        ),
        (
            "\napi: {clients: [{name: x, key_env: K, requesters: [bob]}]}\n",
            "api.clients.0.requesters.0",
        ),
        ("\napi: {clients: [{name: Billing Agent, key_env: K, requesters: [any]}]}\n", "name"),
        ("\napi: {clients: [{name: x, key_env: K, requesters: []}]}\n", "requesters"),
        ("\napi: {clients: [{name: x, key: K, requesters: [any]}]}\n", "key"),
    ],
)
def test_a_wrong_clients_section_stops_start_up(tmp_path: Path, api: str, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(config_file(tmp_path, api))
    assert expected in raised.value.render()
    assert "fix:" in raised.value.render()


def test_a_config_without_api_has_no_clients(tmp_path: Path) -> None:
    path = config_file(tmp_path, "")
    assert load_api_clients(load_config(path), path, {}) == ()


def test_a_request_stored_before_the_api_reads_as_a_slack_request() -> None:
    stored = json.loads(record.encode(request('{"destination": "Rodez"}')))
    del stored["origin"]  # as every record written before this change
    assert record.decode(json.dumps(stored)).origin == ""


def test_a_requests_origin_is_stored() -> None:
    made = replace(request('{"destination": "Rodez"}'), origin="billing-agent")
    assert record.decode(record.encode(made)).origin == "billing-agent"


def test_a_client_may_ask_for_listed_people_and_members_of_listed_groups() -> None:
    client = ApiClient("x", API_KEY, ("UREQ", "S0FINANCE"))
    assert client.may_ask_for("UREQ", ())
    assert client.may_ask_for("UANA", {"S0FINANCE"})
    assert not client.may_ask_for("UANA", {"S0OTHER"})
    assert ApiClient("y", API_KEY, ("any",)).may_ask_for("UANYONE", ())
