"""docker-compose.yml: Redis persists (AOF), the bot waits for it, and every command and
variable it gives the bot is one the bot knows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.ops.cli import _parser
from bot.ops.settings import Settings

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def test_redis_keeps_its_data_in_an_append_only_file(services: dict[str, Any]) -> None:
    command = services["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert any(volume.endswith(":/data") for volume in services["redis"]["volumes"])
    assert services["redis"]["healthcheck"]["test"][-1] == "ping"


@pytest.mark.parametrize("name", ["bot", "worker"])
def test_the_bot_waits_for_redis_and_runs_a_real_command(
    services: dict[str, Any], name: str
) -> None:
    service = services[name]
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert service["environment"]["REDIS_URL"].startswith("redis://redis:")
    program, command = service["command"]
    assert program == "approval-bot"
    assert _parser().parse_args([command]).command == command
    known = {field.upper() for field in Settings.model_fields}
    assert set(service["environment"]) <= known


def test_the_process_answering_slack_leaves_the_work_to_workers(
    services: dict[str, Any],
) -> None:
    assert services["bot"]["environment"]["RUN_JOBS"] == "false"
    assert services["bot"]["command"][1] == "serve"
    assert services["worker"]["command"][1] == "worker"
    assert services["bot"]["ports"] == ["3000:3000"]
