"""A new user's first run, as the README tells it: ``cp .env.example .env``, fill in the
Slack and Mistral values, ``cp bot/bot.example.yml bot.yml``, start. Every other line of
``.env.example`` is kept exactly as it is (``REDIS_URL=`` empty: the embedded Redis).

The bot runs as a real process (``python -m bot serve``) in a directory of its own, against
the Slack and Mistral stand-ins.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.helpers import SIGNING_SECRET, all_text
from tests.processes import ROOT, Fleet
from tests.standins.mistral import MistralStandIn
from tests.standins.slack import SlackStandIn


def filled_env_example(values: dict[str, str]) -> str:
    """``.env.example`` with only the lines of ``values`` changed."""
    text = (ROOT / ".env.example").read_text()
    for name, value in values.items():
        text, found = re.subn(rf"(?m)^{name}=.*$", f"{name}={value}", text)
        assert found == 1, f".env.example has no {name}= line"
    return text


async def test_env_example_copied_verbatim_starts_the_bot_on_an_embedded_redis(
    tmp_path: Path, slack: SlackStandIn, mistral: MistralStandIn
) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".env").write_text(
        filled_env_example(
            {
                "SLACK_BOT_TOKEN": slack.token,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "MISTRAL_API_KEY": "test-key",
                # where Slack and Mistral are: here, the stand-ins
                "SLACK_API_URL": slack.api_url,
                "MISTRAL_SERVER_URL": mistral.url,
            }
        )
    )
    assert re.search(r"(?m)^REDIS_URL=$", (checkout / ".env").read_text())
    shutil.copy(ROOT / "bot" / "bot.example.yml", checkout / "bot.yml")

    fleet = Fleet(checkout, {}, SIGNING_SECRET, slack)
    try:
        bot = await fleet.start("first-run")
        await bot.send.message("hello there")
        await slack.wait_for("chat.update", lambda a: "You said: hello there" in all_text(a))
    finally:
        await fleet.close()
    assert "Traceback" not in bot.log()
    assert (checkout / ".data").is_dir(), "the embedded Redis keeps its data in DATA_DIR"


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("JOB_LEASE_S=soon", "JOB_LEASE_S"),
        ("REDIS_URL=localhost:6379", "REDIS_URL"),
        ("WORKER_CONCURRENCY=0", "WORKER_CONCURRENCY"),
        ("LOG_FORMAT=xml", "LOG_FORMAT"),
        ("REDIS_MAX_CONNECTIONS=12", "WORKER_CONCURRENCY"),
    ],
)
async def test_a_wrong_variable_stops_start_up_naming_it_without_a_traceback(
    tmp_path: Path, slack: SlackStandIn, mistral: MistralStandIn, line: str, named: str
) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    name = line.split("=", 1)[0]
    values = {
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "MISTRAL_API_KEY": "test-key",
        name: line.split("=", 1)[1],
    }
    (checkout / ".env").write_text(filled_env_example(values))
    shutil.copy(ROOT / "bot" / "bot.example.yml", checkout / "bot.yml")
    fleet = Fleet(checkout, {}, SIGNING_SECRET, slack)
    bot = fleet.spawn("wrong")
    assert bot.process.wait(timeout=30) == 2
    log = bot.log()
    assert "Traceback" not in log
    assert named in log and "Configuration error in the environment" in log
    assert slack.token not in log, "a secret in the message"
