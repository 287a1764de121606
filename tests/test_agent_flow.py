"""A Mistral agent (``agent_id``) instead of a model: local tools registered on the agent,
the approval flow unchanged."""

from __future__ import annotations

import pytest

from tests import agent_tools
from tests.helpers import APPROVALS, MANAGER, BotUnderTest, all_text, button_value
from tests.standins.mistral import MistralStandIn


@pytest.fixture
def bot_config(mistral: MistralStandIn) -> str:
    agent_id = mistral.create_agent(name="Travel desk", instructions="Book what is asked.")
    return (
        f"agent_id: {agent_id}\n"
        f"approvals: {{channel: {APPROVALS}}}\n"
        "tools:\n"
        "  functions:\n"
        "    - ref: tests.agent_tools:get_weather\n"
        "    - ref: tests.agent_tools:book_flight\n"
        "      requires_confirmation: true\n"
    )


async def test_an_agent_conversation_asks_for_approval_and_resumes(bot: BotUnderTest) -> None:
    [agent_id] = bot.mistral.agents
    await bot.send.mention("book a flight to Rodez")
    card = await bot.card()
    assert "`book_flight`" in all_text(card)

    starts = [r for r in bot.mistral.requests if r.path == "/v1/conversations"]
    assert [(r.body or {}).get("agent_id") for r in starts] == [agent_id]
    assert all("model" not in (r.body or {}) for r in starts)
    registered = {
        tool["function"]["name"] for _, body in bot.mistral.agent_updates for tool in body["tools"]
    }
    assert registered == {"get_weather", "book_flight"}

    await bot.send.click("approval_approve", button_value(card, "approval_approve"), user=MANAGER)
    await bot.slack.wait_for("chat.postMessage", lambda a: "Done: Booked Rodez" in all_text(a))
    await bot.settled()
    assert agent_tools.runs_of("book_flight") == [{"destination": "Rodez", "date": "2026-12-01"}]
