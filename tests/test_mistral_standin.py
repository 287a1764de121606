"""The Mistral stand-in works with the real SDK (``run_async`` and the deferral flow)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx2
import pytest
from mistralai.client import Mistral
from mistralai.client.errors import HTTPValidationError, SDKError
from mistralai.client.models import (
    CompletionArgs,
    FunctionResultEntry,
    FunctionTool,
    InputEntries,
    UnknownAgentTool,
    UpdateAgentRequestTool,
)
from mistralai.extra.exceptions import (
    DeferralReason,
    DeferredToolCallResponse,
    DeferredToolCallsException,
)
from mistralai.extra.run.context import RunContext

from tests.standins.mistral import (
    MistralStandIn,
    ModelTurn,
    function_call,
    message,
    scripted,
)

MODEL = "mistral-small-latest"
weather_calls: list[str] = []


def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
        city: Name of the city.
    """
    weather_calls.append(city)
    return f"Sunny in {city}"


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    weather_calls.clear()


@pytest.fixture
async def standin() -> AsyncIterator[MistralStandIn]:
    async with MistralStandIn() as s:
        yield s


@pytest.fixture
async def client(standin: MistralStandIn) -> AsyncIterator[Mistral]:
    async with Mistral(api_key="test", server_url=standin.url) as c:
        yield c


def weather_ctx(conversation_id: str | None = None) -> RunContext:
    ctx = RunContext(model=MODEL, conversation_id=conversation_id)
    ctx.register_func(get_weather, requires_confirmation=True)
    return ctx


def answers(*responses: DeferredToolCallResponse) -> list[DeferredToolCallResponse]:
    """run_async's ``inputs`` is typed with invariant lists; this gives mypy the exact type."""
    return list(responses)


async def defer(client: Mistral, ctx: RunContext, text: str) -> DeferredToolCallsException:
    """Run until the SDK defers, then round-trip the deferral through JSON like a bot would."""
    with pytest.raises(DeferredToolCallsException) as info:
        await client.beta.conversations.run_async(run_ctx=ctx, inputs=text)
    stored = json.dumps(info.value.to_dict())
    return DeferredToolCallsException.from_dict(json.loads(stored))


async def test_plain_message_round_trip(standin: MistralStandIn, client: Mistral) -> None:
    standin.script = scripted([message("Bonjour!")])
    result = await client.beta.conversations.run_async(
        run_ctx=RunContext(model=MODEL), inputs="Hello", instructions="Be brief."
    )
    assert result.output_as_text == "Bonjour!"
    assert result.conversation_id == standin.conversation_ids[0]
    [req] = standin.requests
    assert (req.method, req.path, req.status) == ("POST", "/v1/conversations", 200)
    assert req.body is not None
    assert req.body["model"] == MODEL
    assert req.body["instructions"] == "Be brief."
    assert req.headers["Authorization"] == "Bearer test"
    history = await client.beta.conversations.get_history_async(
        conversation_id=result.conversation_id
    )
    assert [e.type for e in history.entries] == ["message.input", "message.output"]
    assert standin.errors == []


async def test_default_script_echoes_and_sees_turn(
    standin: MistralStandIn, client: Mistral
) -> None:
    seen: list[ModelTurn] = []

    def script(turn: ModelTurn) -> list[dict[str, Any]]:
        seen.append(turn)
        return [message(f"You said: {turn.last_user_text()}")]

    standin.script = script
    result = await client.beta.conversations.run_async(
        run_ctx=weather_ctx(), inputs="hi there", instructions="Be nice."
    )
    assert result.output_as_text == "You said: hi there"
    [turn] = seen
    assert turn.instructions == "Be nice."
    assert [t["function"]["name"] for t in turn.tools] == ["get_weather"]
    assert turn.inputs[0]["type"] == "message.input" and turn.history == []
    assert standin.errors == []


async def test_local_deferral_confirm_runs_function_once(
    standin: MistralStandIn, client: Mistral
) -> None:
    deferred = await defer(client, weather_ctx(), "What's the weather in Paris?")
    assert weather_calls == []
    [dc] = deferred.deferred_calls
    assert (dc.tool_name, dc.reason) == ("get_weather", DeferralReason.CONFIRMATION_REQUIRED)
    assert json.loads(str(dc.arguments)) == {"city": "Paris"}
    assert deferred.conversation_id == standin.conversation_ids[0]

    result = await client.beta.conversations.run_async(
        run_ctx=weather_ctx(deferred.conversation_id), inputs=answers(dc.confirm())
    )
    assert result.output_as_text == "Done: Sunny in Paris"
    assert weather_calls == ["Paris"]
    append = standin.requests[-1]
    assert append.path == f"/v1/conversations/{deferred.conversation_id}"
    assert append.body is not None
    assert append.body["inputs"] == [
        {
            "object": "entry",
            "type": "function.result",
            "tool_call_id": dc.tool_call_id,
            "result": "Sunny in Paris",
        }
    ]
    assert append.body.get("tool_confirmations") is None
    assert len(standin.conversation_history(deferred.conversation_id)) == 4
    assert standin.errors == []


async def test_local_deferral_reject_sends_message_as_result(
    standin: MistralStandIn, client: Mistral
) -> None:
    deferred = await defer(client, weather_ctx(), "weather in Oslo please")
    [dc] = deferred.deferred_calls
    result = await client.beta.conversations.run_async(
        run_ctx=weather_ctx(deferred.conversation_id), inputs=answers(dc.reject("no"))
    )
    assert result.output_as_text == "Done: no"
    assert weather_calls == []
    body = standin.requests[-1].body
    assert body is not None
    [entry] = body["inputs"]
    assert (entry["type"], entry["tool_call_id"], entry["result"]) == (
        "function.result",
        dc.tool_call_id,
        "no",
    )
    assert standin.errors == []


@pytest.mark.parametrize(
    ("approve", "wire", "stored"), [(True, "allow", "allowed"), (False, "deny", "denied")]
)
async def test_server_side_pending_call(
    standin: MistralStandIn, client: Mistral, approve: bool, wire: str, stored: str
) -> None:
    call = function_call("gmail_search", {"query": "invoices"}, confirmation_status="pending")
    standin.script = scripted(
        [call], lambda turn: [message(f"confirmation={turn.tool_confirmations[0]['confirmation']}")]
    )
    deferred = await defer(client, RunContext(model=MODEL), "Find my invoices")
    [dc] = deferred.deferred_calls
    assert dc.tool_name == "gmail_search"
    assert dc.reason == DeferralReason.SERVER_SIDE_CONFIRMATION_REQUIRED

    answer = dc.confirm() if approve else dc.reject("nope")
    result = await client.beta.conversations.run_async(
        run_ctx=RunContext(model=MODEL, conversation_id=deferred.conversation_id),
        inputs=answers(answer),
    )
    assert result.output_as_text == f"confirmation={wire}"
    body = standin.requests[-1].body
    assert body is not None
    assert body["tool_confirmations"] == [
        {"tool_call_id": call["tool_call_id"], "confirmation": wire}
    ]
    assert body["inputs"] == []
    assert deferred.conversation_id is not None
    history = standin.conversation_history(deferred.conversation_id)
    assert history[1]["confirmation_status"] == stored
    assert standin.errors == []


async def test_fail_next_503_raises_sdk_error_then_recovers(
    standin: MistralStandIn, client: Mistral
) -> None:
    standin.fail_next(503)
    with pytest.raises(SDKError) as info:
        await client.beta.conversations.run_async(run_ctx=RunContext(model=MODEL), inputs="hi")
    assert info.value.status_code == 503
    assert "Injected failure" in info.value.body
    assert standin.conversation_ids == []
    result = await client.beta.conversations.run_async(run_ctx=RunContext(model=MODEL), inputs="hi")
    assert result.output_as_text == "You said: hi"
    assert [r.status for r in standin.requests] == [503, 200]
    assert standin.errors == []


async def test_fail_next_422_raises_http_validation_error(
    standin: MistralStandIn, client: Mistral
) -> None:
    standin.fail_next(422)
    with pytest.raises(HTTPValidationError) as info:
        await client.beta.conversations.run_async(run_ctx=RunContext(model=MODEL), inputs="hi")
    assert info.value.status_code == 422
    assert info.value.data.detail is not None
    assert info.value.data.detail[0].msg == "injected failure"
    assert standin.errors == []


async def test_delay_next_provokes_client_timeout(standin: MistralStandIn, client: Mistral) -> None:
    standin.delay_next(2.0)
    with pytest.raises(httpx2.TimeoutException):
        await client.beta.conversations.run_async(
            run_ctx=RunContext(model=MODEL), inputs="hi", timeout_ms=100
        )


async def test_unknown_conversation_is_404(standin: MistralStandIn, client: Mistral) -> None:
    with pytest.raises(SDKError) as info:
        await client.beta.conversations.run_async(
            run_ctx=RunContext(model=MODEL, conversation_id="conv_missing"), inputs="hi"
        )
    assert info.value.status_code == 404
    assert standin.errors == []


async def test_invalid_request_body_is_422_and_recorded(standin: MistralStandIn) -> None:
    headers = {"Authorization": "Bearer test"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(f"{standin.url}/v1/conversations", json={"model": MODEL}) as resp:
            assert resp.status == 422
            body = await resp.json()
    # the spec's validator (where the spec is here) or the SDK's model names what is missing
    [detail] = body["detail"]
    assert detail["loc"][0] == "body"
    assert "inputs" in f"{detail['loc']} {detail['msg']}"
    assert len(standin.errors) == 1 and "ConversationRequest" in standin.errors[0]
    assert standin.requests[0].body == {"model": MODEL}
    assert standin.conversation_ids == []


async def test_missing_auth_is_401(standin: MistralStandIn) -> None:
    async with aiohttp.ClientSession() as session:
        payload = {"model": MODEL, "inputs": "hi"}
        async with session.post(f"{standin.url}/v1/conversations", json=payload) as resp:
            assert resp.status == 401
    assert standin.errors and "Authorization" in standin.errors[0]


async def test_invalid_script_output_is_500_not_sent(
    standin: MistralStandIn, client: Mistral
) -> None:
    standin.script = scripted([{"type": "message.output", "content": 42}])
    with pytest.raises(SDKError) as info:
        await client.beta.conversations.run_async(run_ctx=RunContext(model=MODEL), inputs="hi")
    assert info.value.status_code == 500
    assert len(standin.errors) == 1 and "ConversationResponse" in standin.errors[0]
    assert standin.conversation_ids == []


async def test_scripted_overrun_is_reported(standin: MistralStandIn, client: Mistral) -> None:
    standin.script = scripted([function_call("get_weather", {"city": "Rome"})])
    ctx = RunContext(model=MODEL)
    ctx.register_func(get_weather)
    with pytest.raises(SDKError) as info:
        await client.beta.conversations.run_async(run_ctx=ctx, inputs="go")
    assert info.value.status_code == 500
    assert weather_calls == ["Rome"]
    assert len(standin.errors) == 1 and "only 1 step(s) were scripted" in standin.errors[0]


async def test_travel_agent_books_flight(standin: MistralStandIn, client: Mistral) -> None:
    booked: list[tuple[str, str]] = []

    def book_flight(destination: str, date: str) -> str:
        """Book a flight.

        Args:
            destination: Where to fly.
            date: Departure date.
        """
        booked.append((destination, date))
        return f"Booked {destination} on {date}"

    ctx = RunContext(model=MODEL)
    ctx.register_func(book_flight)
    result = await client.beta.conversations.run_async(
        run_ctx=ctx, inputs="I want to book a flight to New York"
    )
    assert booked == [("New York", "2026-12-01")]
    assert result.output_as_text == "Done: Booked New York on 2026-12-01"
    assert standin.errors == []


async def test_unknown_tool_result_is_rejected(standin: MistralStandIn, client: Mistral) -> None:
    result = await client.beta.conversations.run_async(run_ctx=RunContext(model=MODEL), inputs="hi")
    stray: list[InputEntries] = [FunctionResultEntry(tool_call_id="nope", result="x")]
    with pytest.raises(HTTPValidationError):
        await client.beta.conversations.append_async(
            conversation_id=result.conversation_id or "",
            inputs=stray,
        )
    assert len(standin.errors) == 1 and "unknown tool_call_id" in standin.errors[0]
    standin.errors.clear()


def agent_tools(ctx: RunContext) -> list[UpdateAgentRequestTool]:
    """The context's function tools, typed as ``agents.update_async`` wants them."""
    return list(ctx.get_tools())


async def register_tools(client: Mistral, agent_id: str, ctx: RunContext) -> None:
    """What ``RunContext.prepare_agent_request`` does, with ``update_async``."""
    agent = await client.beta.agents.get_async(agent_id=agent_id)
    kept = [t for t in agent.tools or [] if not isinstance(t, FunctionTool | UnknownAgentTool)]
    await client.beta.agents.update_async(agent_id=agent_id, tools=[*kept, *agent_tools(ctx)])


async def test_agent_get_and_update(standin: MistralStandIn, client: Mistral) -> None:
    agent_id = standin.create_agent(name="Bot", model=MODEL, instructions="Be nice.")
    assert agent_id.startswith("ag_")
    agent = await client.beta.agents.get_async(agent_id=agent_id)
    assert (agent.id, agent.name, agent.model, agent.instructions) == (
        agent_id,
        "Bot",
        MODEL,
        "Be nice.",
    )
    assert (agent.version, agent.versions, agent.tools) == (0, [0], [])

    updated = await client.beta.agents.update_async(
        agent_id=agent_id,
        tools=agent_tools(weather_ctx()),
        completion_args=CompletionArgs(temperature=0.2),
    )
    assert (updated.version, updated.versions) == (1, [0, 1])
    assert updated.updated_at >= agent.updated_at and updated.created_at == agent.created_at
    assert [t.function.name for t in updated.tools or [] if t.type == "function"] == ["get_weather"]
    assert updated.completion_args is not None
    assert updated.completion_args.temperature == 0.2
    assert updated.instructions == "Be nice."
    [(updated_id, body)] = standin.agent_updates
    assert updated_id == agent_id
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather"]
    assert standin.agents[agent_id]["version"] == 1

    current = await client.beta.agents.get_async(agent_id=agent_id)
    assert current.version == 1 and len(current.tools or []) == 1
    first = await client.beta.agents.get_async(agent_id=agent_id, agent_version=0)
    assert first.version == 0 and first.tools == []
    assert [(r.method, r.status) for r in standin.requests] == [
        ("GET", 200),
        ("PATCH", 200),
        ("GET", 200),
        ("GET", 200),
    ]
    assert standin.errors == []


async def test_unknown_agent_is_404(standin: MistralStandIn, client: Mistral) -> None:
    with pytest.raises(SDKError) as info:
        await client.beta.agents.get_async(agent_id="ag_missing")
    assert info.value.status_code == 404
    assert "Agent ag_missing not found" in info.value.body
    with pytest.raises(SDKError) as info:
        await client.beta.agents.update_async(agent_id="ag_missing", name="x")
    assert info.value.status_code == 404
    with pytest.raises(SDKError) as info:
        await client.beta.conversations.start_async(agent_id="ag_missing", inputs="hi")
    assert info.value.status_code == 404
    agent_id = standin.create_agent()
    with pytest.raises(SDKError) as info:
        await client.beta.agents.get_async(agent_id=agent_id, agent_version=7)
    assert info.value.status_code == 404
    assert standin.conversation_ids == [] and standin.agent_updates == []
    assert standin.errors == []


async def test_agent_conversation_uses_agent_model_and_tools(
    standin: MistralStandIn, client: Mistral
) -> None:
    seen: list[ModelTurn] = []

    def script(turn: ModelTurn) -> list[dict[str, Any]]:
        seen.append(turn)
        if turn.function_results():
            return [message("Done")]
        return [function_call("get_weather", {"city": "Lyon"})]

    standin.script = script
    agent_id = standin.create_agent(model=MODEL, instructions="Use tools.")
    await register_tools(client, agent_id, weather_ctx())
    started = await client.beta.conversations.start_async(agent_id=agent_id, inputs="hi")
    [call] = started.outputs
    assert call.type == "function.call"
    assert (call.agent_id, call.model) == (agent_id, MODEL)
    [turn] = seen
    assert (turn.model, turn.agent_id, turn.instructions) == (MODEL, agent_id, "Use tools.")
    assert [t["function"]["name"] for t in turn.tools] == ["get_weather"]

    result: list[InputEntries] = [
        FunctionResultEntry(tool_call_id=str(call.tool_call_id), result="Sunny")
    ]
    done = await client.beta.conversations.append_async(
        conversation_id=started.conversation_id, inputs=result
    )
    [reply] = done.outputs
    assert reply.type == "message.output" and reply.content == "Done"
    assert seen[1].tools == turn.tools and seen[1].model == MODEL
    assert standin.errors == []


async def test_agent_conversation_pins_agent_version(
    standin: MistralStandIn, client: Mistral
) -> None:
    seen: list[ModelTurn] = []

    def script(turn: ModelTurn) -> list[dict[str, Any]]:
        seen.append(turn)
        return [message("ok")]

    standin.script = script
    agent_id = standin.create_agent(model=MODEL)
    await register_tools(client, agent_id, weather_ctx())
    await client.beta.conversations.start_async(agent_id=agent_id, agent_version=0, inputs="a")
    await client.beta.conversations.start_async(agent_id=agent_id, inputs="b")
    assert [len(t.tools) for t in seen] == [0, 1]
    assert standin.errors == []


def test_create_agent_rejects_invalid_agent(standin: MistralStandIn) -> None:
    with pytest.raises(ValueError, match="not a valid Agent"):
        standin.create_agent(tools=[{"type": "function", "function": {}}])
    assert standin.agents == {}


async def test_agent_contract_violations_are_recorded(standin: MistralStandIn) -> None:
    agent_id = standin.create_agent()
    headers = {"Authorization": "Bearer test"}
    async with aiohttp.ClientSession(headers=headers) as session:
        url = f"{standin.url}/v1/agents/{agent_id}"
        async with session.patch(url, json={"bogus": 1}) as resp:
            assert resp.status == 422
        payload = {"agent_id": agent_id, "model": MODEL, "inputs": "hi"}
        async with session.post(f"{standin.url}/v1/conversations", json=payload) as resp:
            assert resp.status == 422
    assert len(standin.errors) == 2
    assert "AgentUpdateRequest" in standin.errors[0]
    assert "mutually exclusive" in standin.errors[1]
    assert standin.agents[agent_id]["version"] == 0 and standin.agent_updates == []
