"""End to end: a backend agent in its own process (tests/backend_agent.py) runs a Mistral
conversation against the stand-in, catches the deferral, asks the bot through bot.client,
people decide on the card in Slack, and the backend resumes its own conversation with the
inputs the client returns. The tool runs once, or not at all."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    API_KEY,
    APPROVALS,
    MANAGER,
    OTHER_API_KEY,
    OTHER_MANAGER,
    REQUESTER,
    BotUnderTest,
    all_text,
    button_block,
    button_value,
)
from tests.standins.mistral import Entry, ModelTurn, function_call, message

ROOT = Path(__file__).resolve().parent.parent

CONFIG = f"""\
model: mistral-medium-latest
instructions: You are a test assistant.
approvals:
  channel: {APPROVALS}
api:
  clients:
    - name: billing-agent
      key_env: TEST_API_KEY_BILLING
      requesters: [{REQUESTER}]
    - name: travel-desk
      key_env: TEST_API_KEY_OTHER
      requesters: [any]
policy:
  rules:
    - name: the travel desk's flights
      tools: ["book_flight"]
      when: 'client.name == "travel-desk"'
      quorum: 2
    - name: flights
      tools: ["book_flight"]
      allow_edit: true
      expire_after: 2h
tools:
  functions:
    - ref: tests.agent_tools:book_flight
      requires_confirmation: true
"""

#: the API clients' keys in the environment, as an operator sets them
pytestmark = pytest.mark.usefixtures("api_keys")


@pytest.fixture
def bot_config() -> str:
    return CONFIG


class Backend:
    """The backend agent's process, started with ``args``; its output and its tool runs."""

    def __init__(self, bot: BotUnderTest, runs: Path, **args: Any) -> None:
        self.runs = runs
        self.args = {
            "bot_url": bot.url,
            "key": API_KEY,
            "mistral_url": bot.mistral.url,
            "requester": REQUESTER,
            "summary": "Booking the offsite",
            "prompt": "book a flight to Rodez",
            "runs": str(runs),
            **args,
        }
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> Backend:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.backend_agent",
            json.dumps(self.args),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return self

    async def result(self) -> dict[str, Any]:
        assert self.process is not None
        out, err = await asyncio.wait_for(self.process.communicate(), 40)
        assert self.process.returncode == 0, err.decode()[-3000:]
        return dict(json.loads(out.decode().strip().splitlines()[-1]))

    def tool_runs(self) -> list[dict[str, Any]]:
        if not self.runs.exists():
            return []
        return [json.loads(line) for line in self.runs.read_text().splitlines()]


async def card_for(bot: BotUnderTest) -> tuple[str, dict[str, Any]]:
    """The approval id and the card, once the backend's request reached Slack."""
    card = await bot.card()
    return button_value(card, "approval_approve"), card


async def test_approved_on_the_card_the_backend_resumes_and_the_tool_runs_once(
    bot: BotUnderTest, tmp_path: Path
) -> None:
    backend = await Backend(bot, tmp_path / "runs.jsonl").start()
    approval_id, card = await card_for(bot)
    assert "The API client *billing-agent* asked on behalf of" in all_text(card)
    assert backend.tool_runs() == []
    await bot.send.click("approval_approve", approval_id, user=MANAGER)

    result = await backend.result()
    assert result == {
        "answer": "Done: Booked Rodez on 2026-12-01: FL-1",
        "deferred": True,
        "expired": False,
    }
    assert backend.tool_runs() == [{"destination": "Rodez", "date": "2026-12-01"}]
    await bot.settled()
    assert backend.tool_runs() == [{"destination": "Rodez", "date": "2026-12-01"}]
    # the conversation is the backend's: one start, one append with the result
    paths = [r.path for r in bot.mistral.requests if r.method == "POST"]
    assert len(paths) == 2


async def test_the_script_variant_gets_the_same_inputs(bot: BotUnderTest, tmp_path: Path) -> None:
    backend = await Backend(bot, tmp_path / "runs.jsonl", sync=True).start()
    approval_id, _ = await card_for(bot)
    await bot.send.click("approval_approve", approval_id, user=MANAGER)
    assert (await backend.result())["answer"] == "Done: Booked Rodez on 2026-12-01: FL-1"
    assert len(backend.tool_runs()) == 1


async def test_arguments_edited_on_the_card_are_what_runs(
    bot: BotUnderTest, tmp_path: Path
) -> None:
    backend = await Backend(bot, tmp_path / "runs.jsonl").start()
    approval_id, card = await card_for(bot)
    before = len(bot.slack.modals_shown())
    await bot.send.click(
        "approval_edit", approval_id, user=MANAGER, block_id=button_block(card, "approval_edit")
    )
    await bot.slack.wait_for_modal(lambda _: len(bot.slack.modals_shown()) > before)
    view = bot.slack.modals_shown()[-1]["view"]
    fields = {b["block_id"] for b in view["blocks"] if b["type"] == "input"}
    assert fields == {"arg:destination", "arg:date"}  # the schema the backend sent
    reply = await bot.send.submit_view(
        "approval_edit_modal",
        view["private_metadata"],
        user=MANAGER,
        values={
            "arg:destination": {"value": {"type": "plain_text_input", "value": "Paris"}},
            "arg:date": {"value": {"type": "plain_text_input", "value": "2026-12-01"}},
        },
    )
    assert reply.status == 200
    result = await backend.result()
    assert result["answer"] == "Done: Booked Paris on 2026-12-01: FL-1"
    assert backend.tool_runs() == [{"destination": "Paris", "date": "2026-12-01"}]


async def test_a_deny_reason_is_what_the_model_reads(bot: BotUnderTest, tmp_path: Path) -> None:
    backend = await Backend(bot, tmp_path / "runs.jsonl").start()
    approval_id, _ = await card_for(bot)
    await bot.send.click("approval_deny", approval_id, user=MANAGER)
    await bot.slack.wait_for_modal()
    await bot.send.submit_view(
        "approval_deny_modal",
        approval_id,
        user=MANAGER,
        values={"deny_reason": {"reason": {"type": "plain_text_input", "value": "Too pricey"}}},
    )
    result = await backend.result()
    assert result["answer"] == "Done: Too pricey"
    assert backend.tool_runs() == []


async def test_an_expired_request_tells_the_backend_and_nothing_runs(
    bot: BotUnderTest, tmp_path: Path
) -> None:
    backend = await Backend(bot, tmp_path / "runs.jsonl").start()
    approval_id, _ = await card_for(bot)
    swept = await bot.services.sweeper.sweep(now=time.time() + 3 * 3600)
    assert swept.expired == [approval_id]
    result = await backend.result()
    assert result["expired"] is True
    assert "expired after" in result["answer"] and "not a denial" in result["answer"]
    assert backend.tool_runs() == []
    await bot.settled()
    assert "Expired" in all_text(bot.slack.messages_in(APPROVALS)[0])


async def test_a_quorum_of_two_decides_for_the_travel_desk(
    bot: BotUnderTest, tmp_path: Path
) -> None:
    backend = await Backend(bot, tmp_path / "runs.jsonl", key=OTHER_API_KEY).start()
    approval_id, card = await card_for(bot)
    assert "0 of 2" in all_text(card) or "2 approvals" in all_text(card)
    await bot.send.click("approval_approve", approval_id, user=MANAGER)
    await bot.slack.wait_for("chat.update", lambda a: "1 of 2 approvals" in all_text(a))
    await asyncio.sleep(0.5)
    assert backend.process is not None and backend.process.returncode is None  # still waits
    await bot.send.click("approval_approve", approval_id, user=MANAGER)  # counts once
    await bot.send.click("approval_approve", approval_id, user=OTHER_MANAGER)
    result = await backend.result()
    assert result["answer"] == "Done: Booked Rodez on 2026-12-01: FL-1"
    assert len(backend.tool_runs()) == 1


def readme_backend(bot: BotUnderTest) -> str:
    """The README's complete backend, as written, pointed at the stand-ins: only the
    Mistral client's server and the bot's URL change."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("```python\n", text.index("**A complete backend**")) + len("```python\n")
    code = text[start : text.index("\n```", start)]
    as_written = 'Mistral(api_key=os.environ["MISTRAL_API_KEY"])'
    assert as_written in code and "https://approvals.example.com" in code
    code = code.replace(
        as_written,
        'Mistral(api_key=os.environ["MISTRAL_API_KEY"], server_url=os.environ["MISTRAL_URL"])',
    )
    return code.replace("https://approvals.example.com", bot.url)


async def test_the_readmes_backend_runs_as_written(bot: BotUnderTest, tmp_path: Path) -> None:
    def refund_script(turn: ModelTurn) -> list[Entry]:
        results = turn.function_results()
        if results:
            return [message("Done: " + str(results[0].get("result")))]
        return [function_call("refund", {"order": "42", "amount": 30})]

    bot.mistral.script = refund_script
    script = tmp_path / "backend.py"
    script.write_text(readme_backend(bot))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MISTRAL_API_KEY": "test-key",
        "MISTRAL_URL": bot.mistral.url,
        "APPROVAL_API_KEY": OTHER_API_KEY,  # the travel desk may ask for anyone
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    approval_id, card = await card_for(bot)  # a tool no rule names: a person decides
    assert "refund" in all_text(card)
    await bot.send.click("approval_approve", approval_id, user=MANAGER)
    out, err = await asyncio.wait_for(process.communicate(), 40)
    assert process.returncode == 0, err.decode()[-3000:]
    assert out.decode().strip() == "Done: refunded 30 on 42"
    assert len([r for r in bot.mistral.requests if r.method == "POST"]) == 2
