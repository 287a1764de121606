"""The HTTP API (bot.api) through the bot's real HTTP server: what a client is answered, the
card it makes, the decision it gets back, and what an attacker gets. Every answer is checked
against the API's own OpenAPI document."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate as validate_spec

from bot.api.openapi import DOCUMENT
from bot.storage import keys
from tests.helpers import (
    API_KEY,
    APPROVALS,
    MANAGER,
    OTHER_API_KEY,
    OUTSIDER,
    REQUESTER,
    BotUnderTest,
    WebhookReceiver,
    all_text,
    api_deferral,
)

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
    - name: other-agent
      key_env: TEST_API_KEY_OTHER
      requesters: [any]
policy:
  rules:
    - tools: ["get_*"]
      decision: allow
    - tools: ["delete_*"]
      decision: deny
      reason: "Deleting is not allowed; open a ticket."
    - name: the other agent's notes
      tools: ["send_note"]
      when: 'client.name == "other-agent"'
      decision: deny
      reason: "That agent may not send notes."
    - tools: ["send_note"]
tools:
  functions:
    - ref: tests.agent_tools:get_weather
    - ref: tests.agent_tools:book_flight
      requires_confirmation: true
    - ref: tests.agent_tools:send_note
      requires_confirmation: true
"""

BOOK = ("book_flight", {"destination": "Rodez", "date": "2026-12-01"})

#: the API clients' keys in the environment, as an operator sets them
pytestmark = pytest.mark.usefixtures("api_keys")


@pytest.fixture
def bot_config() -> str:
    return CONFIG


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"sweep_interval_s": 0.2}


def check_against_openapi(path: str, method: str, status: int, body: Any) -> None:
    """The answer is one the OpenAPI document describes for that operation and status."""
    operation = DOCUMENT["paths"][path][method]
    content = operation["responses"][str(status)]["content"]
    schema = next(iter(content.values()))["schema"]
    OAS31Validator({**schema, "components": DOCUMENT["components"]}).validate(body)


class Api:
    """Calls the bot's API as a client would, and checks each answer against the document."""

    def __init__(self, bot: BotUnderTest, key: str | None = API_KEY) -> None:
        self.bot = bot
        self.key = key

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        template: str | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        sent = dict(headers or {})
        if self.key is not None:
            sent["Authorization"] = f"Bearer {self.key}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method,
                self.bot.url + path,
                # a large body as a stream (aiohttp warns about large bytes)
                data=io.BytesIO(data) if data and len(data) > 512 * 1024 else data,
                headers=sent,
            ) as response,
        ):
            answer = await response.json(content_type=None)
            kind = response.headers.get("Content-Type", "")
            if response.status >= 400:
                assert kind.startswith("application/problem+json"), kind
            check_against_openapi(
                template or path.split("?")[0], method.lower(), response.status, answer
            )
            return response.status, answer, dict(response.headers)

    async def create(self, *calls: tuple[str, dict[str, Any]], **fields: Any) -> dict[str, Any]:
        body = {"deferral": api_deferral(*calls), "requester": REQUESTER, "summary": "Rodez"}
        body.update(fields)
        # what a client sends is what the document describes
        schema = {"$ref": "#/components/schemas/NewApproval", "components": DOCUMENT["components"]}
        OAS31Validator(schema).validate(body)
        status, answer, _ = await self.call("POST", "/api/v1/approvals", body)
        assert status == 201, answer
        return dict(answer)

    async def get(self, approval_id: str, wait: float = 0) -> tuple[int, Any]:
        status, answer, _ = await self.call(
            "GET",
            f"/api/v1/approvals/{approval_id}?wait={wait:g}",
            template="/api/v1/approvals/{id}",
        )
        return status, answer


def test_the_openapi_document_is_valid_openapi_3_1() -> None:
    validate_spec(DOCUMENT)
    assert DOCUMENT["openapi"] == "3.1.0"


async def test_openapi_json_is_served_without_a_key(bot: BotUnderTest) -> None:
    status, document, _ = await Api(bot, key=None).call("GET", "/api/v1/openapi.json")
    assert status == 200
    assert document == json.loads(json.dumps(DOCUMENT))


async def test_a_request_gets_a_card_naming_the_client_and_a_note_to_the_requester(
    bot: BotUnderTest,
) -> None:
    api = Api(bot)
    made = await api.create(BOOK, summary="Booking the team's <!channel> offsite trip")
    assert made["status"] == "pending"
    assert made["client"] == "billing-agent"
    assert [c["decision"] for c in made["calls"]] == [None]

    card = await bot.card()
    text = all_text(card)
    assert f"The API client *billing-agent* asked on behalf of <@{REQUESTER}>" in text
    assert "&lt;!channel&gt; offsite" in text  # inert, as everywhere
    assert '"destination": "Rodez"' in text
    dm = await bot.slack.wait_for(
        "chat.postMessage", lambda a: a["channel"] == REQUESTER and "billing-agent" in all_text(a)
    )
    assert "on your behalf" in all_text(dm)
    status, seen = await api.get(made["id"])
    assert status == 200 and seen["card_url"]
    assert await bot.redis.zscore(keys.PENDING_ZSET, made["id"]) is not None

    # /approvals pending lists it, and the requester's App Home shows it, like any request
    await bot.send.command("/approvals", "pending", user=OUTSIDER)
    pending = all_text(await bot.slack.wait_for_response(lambda r: "waiting" in all_text(r)))
    assert "1 request waiting" in pending and "`book_flight`" in pending
    assert f"<@{REQUESTER}>" in pending
    await bot.send.home_opened(REQUESTER)
    home = await bot.slack.wait_for("views.publish", lambda a: a["user_id"] == REQUESTER)
    assert "`book_flight` for" in all_text(home["view"])
    assert "waiting for a decision" in all_text(home["view"])


async def test_a_decision_on_the_card_reaches_a_long_poll(bot: BotUnderTest) -> None:
    api = Api(bot)
    made = await api.create(BOOK)
    await bot.card()
    poll = asyncio.create_task(api.get(made["id"], wait=30))
    await asyncio.sleep(0.3)
    assert not poll.done()
    reply = await bot.send.click("approval_approve", made["id"], user=MANAGER)
    assert reply.status == 200
    status, decided = await poll
    assert status == 200
    assert decided["status"] == "decided"
    call = decided["calls"][0]
    assert call["decision"] == "approved"
    assert call["decided_by"] == MANAGER and call["decided_at"].endswith("Z")
    assert call["override_args"] is None and call["reason"] is None
    await bot.settled()
    final = all_text(bot.card_state(await _card_ts(bot)))
    assert "went back to billing-agent" in final
    # the conversation is the client's: the bot resumed nothing
    assert not [r for r in bot.mistral.requests if r.path.startswith("/v1/conversations")]


async def _card_ts(bot: BotUnderTest) -> str:
    for call in bot.slack.calls:
        if call.method == "chat.postMessage" and call.args.get("channel") == APPROVALS:
            return str(call.response["ts"])
    raise AssertionError("no card")


async def test_a_deny_reason_and_the_outcome_are_shown(bot: BotUnderTest) -> None:
    api = Api(bot)
    made = await api.create(BOOK)
    await bot.card()
    await bot.send.click("approval_deny", made["id"], user=MANAGER)
    await bot.slack.wait_for_modal()
    await bot.send.submit_view(
        "approval_deny_modal",
        made["id"],
        user=MANAGER,
        values={"deny_reason": {"reason": {"type": "plain_text_input", "value": "Too pricey"}}},
    )
    _, decided = await api.get(made["id"], wait=10)
    assert decided["calls"][0]["decision"] == "denied"
    assert decided["calls"][0]["reason"] == "Too pricey"
    await bot.settled()

    status, reported, _ = await api.call(
        "POST",
        f"/api/v1/approvals/{made['id']}/outcome",
        {"text": "Told the user <@UBOSS> it was denied", "status": "done"},
        template="/api/v1/approvals/{id}/outcome",
    )
    assert status == 200
    assert "billing-agent reports: done" in reported["outcome"]
    card = await bot.slack.wait_for("chat.update", lambda a: "billing-agent reports" in all_text(a))
    assert "&lt;@UBOSS&gt;" in all_text(card)
    audit = await bot.redis.xrange(keys.AUDIT_STREAM)
    events = [(e["event"], e.get("client")) for _, e in audit]
    assert ("requested", "billing-agent") in events
    assert ("outcome_reported", "billing-agent") in events


async def test_the_policy_decides_without_a_card(bot: BotUnderTest) -> None:
    api = Api(bot)
    made = await api.create(("get_weather", {"city": "Rodez"}), ("delete_note", {"note_id": "n1"}))
    assert made["status"] == "decided"
    allowed, denied = made["calls"]
    assert (allowed["decision"], allowed["decided_by"]) == ("approved", "policy")
    assert (denied["decision"], denied["decided_by"]) == ("denied", "policy")
    assert denied["reason"] == "Deleting is not allowed; open a ticket."
    await bot.settled()
    assert bot.slack.count("chat.postMessage", lambda a: a.get("channel") == APPROVALS) == 0


async def test_a_tool_no_rule_names_asks_the_default_approvers(bot: BotUnderTest) -> None:
    """The agent held the call, and this bot's config does not know the tool: nothing here
    says it may run, so a person decides (fail closed), never the policy alone."""
    made = await Api(bot).create(("refund", {"order": "42", "amount": 30}))
    assert made["status"] == "pending"
    assert made["calls"][0]["decision"] is None
    card = await bot.card()
    assert "refund" in all_text(card)


async def test_conditions_read_the_clients_name(bot: BotUnderTest) -> None:
    """The same call asks a person for one client and is denied for the other."""
    asked = await Api(bot).create(("send_note", {"text": "hi"}))
    assert asked["status"] == "pending"
    denied = await Api(bot, OTHER_API_KEY).create(("send_note", {"text": "hi"}))
    assert denied["status"] == "decided"
    assert denied["calls"][0]["reason"] == "That agent may not send notes."
    assert denied["calls"][0]["rule"] == "rule 3 (the other agent's notes)"


async def test_the_same_idempotency_key_returns_the_same_request(bot: BotUnderTest) -> None:
    api = Api(bot)
    body = {"deferral": api_deferral(BOOK), "requester": REQUESTER, "summary": "Rodez"}
    headers = {"Idempotency-Key": "order-42"}
    first = await api.call("POST", "/api/v1/approvals", body, headers=headers)
    again = await api.call("POST", "/api/v1/approvals", body, headers=headers)
    assert (first[0], again[0]) == (201, 200)
    assert first[1]["id"] == again[1]["id"]
    assert again[2]["Idempotent-Replayed"] == "true"
    stored_key = keys.api_idempotency("billing-agent", hashlib.sha256(b"order-42").hexdigest())
    assert await bot.redis.ttl(stored_key) > 23 * 3600  # kept a day once the request is made
    changed = {**body, "summary": "somewhere else"}
    status, problem, _ = await api.call("POST", "/api/v1/approvals", changed, headers=headers)
    assert status == 422 and problem["field"] == "Idempotency-Key"
    await bot.settled()
    assert bot.slack.count("chat.postMessage", lambda a: a.get("channel") == APPROVALS) == 1
    assert await bot.redis.zcard(keys.PENDING_ZSET) == 1


@pytest.mark.parametrize(
    "key", [None, "", "wrong-key-0123456789abcdefgh", API_KEY + "x", API_KEY[:-1]]
)
async def test_a_missing_or_unknown_key_gets_401_and_nothing_is_stored(
    bot: BotUnderTest, key: str | None
) -> None:
    api = Api(bot, key=key)
    body = {"deferral": api_deferral(BOOK), "requester": REQUESTER, "summary": "x"}
    status, problem, headers = await api.call("POST", "/api/v1/approvals", body)
    assert status == 401
    assert problem["field"] == "Authorization"
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert await bot.redis.zcard(keys.PENDING_ZSET) == 0


async def test_keys_never_reach_the_log(
    bot: BotUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    await Api(bot, key="guessed-key-0123456789abcdef").get("nothing")
    async with WebhookReceiver() as receiver:
        made = await Api(bot).create(BOOK, callback_url=receiver.url)
        await bot.send.click("approval_approve", made["id"], user=MANAGER)
        await receiver.wait_for(1)
        await bot.settled()
    assert caplog.records
    assert API_KEY not in caplog.text and "guessed-key" not in caplog.text


async def test_an_outcome_before_the_decision_is_refused(bot: BotUnderTest) -> None:
    made = await Api(bot).create(BOOK)
    status, problem, _ = await Api(bot).call(
        "POST",
        f"/api/v1/approvals/{made['id']}/outcome",
        {"text": "did it anyway", "status": "done"},
        template="/api/v1/approvals/{id}/outcome",
    )
    assert (status, problem["field"]) == (409, "/status")
    _, seen = await Api(bot).get(made["id"])
    assert seen["outcome"] is None


async def test_a_requester_the_client_may_not_use_gets_403(bot: BotUnderTest) -> None:
    body = {"deferral": api_deferral(BOOK), "requester": OUTSIDER, "summary": "x"}
    status, problem, _ = await Api(bot).call("POST", "/api/v1/approvals", body)
    assert status == 403
    assert problem["field"] == "/requester"
    assert "billing-agent" in problem["detail"]
    assert await bot.redis.zcard(keys.PENDING_ZSET) == 0


async def test_a_client_cannot_read_or_change_another_clients_request(bot: BotUnderTest) -> None:
    made = await Api(bot).create(BOOK)
    thief = Api(bot, OTHER_API_KEY)
    status, problem = await thief.get(made["id"])
    assert status == 404 and made["id"] in problem["detail"]
    await bot.send.click("approval_approve", made["id"], user=MANAGER)
    status, _ = await thief.get(made["id"], wait=1)
    assert status == 404
    status, _, _ = await thief.call(
        "POST",
        f"/api/v1/approvals/{made['id']}/outcome",
        {"text": "forged", "status": "done"},
        template="/api/v1/approvals/{id}/outcome",
    )
    assert status == 404
    _, mine = await Api(bot).get(made["id"], wait=10)
    assert mine["outcome"] is None or "forged" not in mine["outcome"]


@pytest.mark.parametrize(
    ("deferral", "field"),
    [
        ("not an object", "/deferral"),
        ({"conversation_id": "c", "deferred_calls": []}, "/deferral/deferred_calls"),
        (
            {"conversation_id": "c", "deferred_calls": [{"tool_call_id": "x"}]},
            "/deferral/deferred_calls/0",
        ),
        ({"deferred_calls": api_deferral(BOOK)["deferred_calls"]}, "/deferral/conversation_id"),
        (
            {**api_deferral(BOOK), "executed_results": [{"tool_call_id": 1}]},
            "/deferral",
        ),
        (
            {
                **api_deferral(BOOK),
                "deferred_calls": api_deferral(BOOK)["deferred_calls"] * 2,
            },
            "/deferral/deferred_calls",
        ),
    ],
)  # fmt: skip
async def test_a_malformed_deferral_is_refused_naming_the_field(
    bot: BotUnderTest, deferral: Any, field: str
) -> None:
    body = {"deferral": deferral, "requester": REQUESTER, "summary": "x"}
    status, problem, _ = await Api(bot).call("POST", "/api/v1/approvals", body)
    assert status == 422, problem
    assert problem["field"] == field
    assert "Traceback" not in problem["detail"]
    assert await bot.state_keys() == [] or all(
        not k.startswith(keys.APPROVAL) for k in await bot.state_keys()
    )


def _body(**fields: Any) -> bytes:
    return json.dumps({"deferral": {}, "requester": REQUESTER, "summary": "x", **fields}).encode()


@pytest.mark.parametrize(
    ("raw", "status", "field"),
    [
        (b"{not json", 400, ""),
        (b"[]", 400, ""),
        (json.dumps({"requester": REQUESTER, "summary": "x"}).encode(), 422, "/deferral"),
        (_body(requester="bob"), 422, "/requester"),
        (_body(requester={"email": "not an email"}), 422, "/requester/email"),
        (_body(summary=""), 422, "/summary"),
        (_body(callback_url="http://example.com/h"), 422, "/callback_url"),
        (_body(callback_url="ftp://127.0.0.1/h"), 422, "/callback_url"),
        (_body(notify={"channel": "#general"}), 422, "/notify/channel"),
        (
            _body(tools=[{"name": "book_flight", "parameters": {"type": 5}}]),
            422,
            "/tools/0/parameters",
        ),
        (_body(colour=1), 422, "/colour"),
    ],
)
async def test_bad_bodies_get_a_problem_naming_the_field(
    bot: BotUnderTest, raw: bytes, status: int, field: str
) -> None:
    answer = await Api(bot).call("POST", "/api/v1/approvals", raw=raw)
    assert (answer[0], answer[1]["field"]) == (status, field)


async def test_a_body_over_the_limit_gets_413(bot: BotUnderTest) -> None:
    body = {
        "deferral": api_deferral(("book_flight", {"destination": "R" * 1_100_000})),
        "requester": REQUESTER,
        "summary": "big",
    }
    status, problem, _ = await Api(bot).call("POST", "/api/v1/approvals", body)
    assert status == 413
    assert "1048576 bytes" in problem["detail"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: read up to the limit
        data = json.dumps(body).encode()
        for start in range(0, len(data), 256 * 1024):
            yield data[start : start + 256 * 1024]

    async with (
        aiohttp.ClientSession() as session,
        session.post(
            bot.url + "/api/v1/approvals",
            data=chunks(),
            headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        ) as response,
    ):
        assert response.status == 413
        assert response.headers["Content-Type"].startswith("application/problem+json")
    assert await bot.redis.zcard(keys.PENDING_ZSET) == 0


@pytest.mark.parametrize("settings_overrides", [{"api_requests_per_minute": 3}])
async def test_a_client_over_its_rate_limit_gets_429_with_retry_after(bot: BotUnderTest) -> None:
    api = Api(bot)
    made = await api.create(BOOK)
    statuses = []
    for _ in range(3):
        status, answer = await api.get(made["id"])
        statuses.append(status)
    assert statuses == [200, 200, 429]
    assert "too many requests" in answer["detail"]
    _, _, headers = await api.call(
        "GET", f"/api/v1/approvals/{made['id']}", template="/api/v1/approvals/{id}"
    )
    assert 1 <= int(headers["Retry-After"]) <= 61
    # another client has its own budget
    status, _ = await Api(bot, OTHER_API_KEY).get(made["id"])
    assert status == 404


def _signature(key: str, timestamp: str, body: bytes) -> str:
    base = f"v1:{timestamp}:".encode() + body
    return "v1=" + hmac.new(key.encode(), base, hashlib.sha256).hexdigest()


async def test_the_webhook_is_signed_and_retried_until_the_receiver_takes_it(
    bot: BotUnderTest,
) -> None:
    async with WebhookReceiver(fail_first=2) as receiver:
        made = await Api(bot).create(BOOK, callback_url=receiver.url)
        await bot.card()
        await bot.send.click("approval_approve", made["id"], user=MANAGER)
        deliveries = await receiver.wait_for(3)
        await asyncio.sleep(0.5)  # nothing more comes once one was taken
        await bot.settled()
        assert len(receiver.deliveries) == 3
    for delivery in deliveries:
        timestamp = delivery.headers["X-Approval-Bot-Timestamp"]
        assert abs(time.time() - int(timestamp)) < 60
        assert delivery.headers["X-Approval-Bot-Signature"] == _signature(
            API_KEY, timestamp, delivery.body
        )
        assert delivery.headers["X-Approval-Bot-Signature"] != _signature(
            OTHER_API_KEY, timestamp, delivery.body
        )
    payload = json.loads(deliveries[-1].body)
    check_against_openapi("/api/v1/approvals/{id}", "get", 200, payload)
    assert payload["id"] == made["id"] and payload["status"] == "decided"
    assert payload["calls"][0]["decided_by"] == MANAGER
    audit = [e for _, e in await bot.redis.xrange(keys.AUDIT_STREAM)]
    delivered = [e for e in audit if e["event"] == "webhook_delivered"]
    assert len(delivered) == 1 and "after 3 attempts" in delivered[0]["detail"]
    assert await bot.redis.zcard(keys.WEBHOOKS_DUE_ZSET) == 0


async def test_the_requester_is_told_in_the_notify_thread(bot: BotUnderTest) -> None:
    made = await Api(bot).create(
        BOOK, notify={"channel": "C0GENERAL", "thread_ts": "1712000000.000100"}
    )
    note = await bot.slack.wait_for(
        "chat.postMessage",
        lambda a: a["channel"] == "C0GENERAL" and "on your behalf" in all_text(a),
    )
    assert note["thread_ts"] == "1712000000.000100"
    await bot.send.click("approval_approve", made["id"], user=MANAGER)
    decided = await bot.slack.wait_for(
        "chat.postMessage",
        lambda a: a["channel"] == "C0GENERAL" and f"<@{MANAGER}>" in all_text(a),
    )
    assert decided["thread_ts"] == "1712000000.000100"
    assert not [a for a in bot.slack.calls_to("chat.postMessage") if a.get("channel") == REQUESTER]


async def test_an_expired_request_is_posted_to_its_webhook(bot: BotUnderTest) -> None:
    async with WebhookReceiver() as receiver:
        made = await Api(bot).create(BOOK, callback_url=receiver.url)
        await bot.card()
        swept = await bot.services.sweeper.sweep(now=time.time() + 25 * 3600)
        assert swept.expired == [made["id"]]
        (delivery,) = await receiver.wait_for(1)
        payload = json.loads(delivery.body)
        assert payload["status"] == "expired"
        assert payload["calls"][0]["decision"] == "expired"
        assert "not a denial" in payload["calls"][0]["reason"]
        await bot.settled()


async def test_a_webhook_is_given_up_24_hours_after_its_first_attempt(bot: BotUnderTest) -> None:
    async with WebhookReceiver(fail_first=1000) as receiver:
        made = await Api(bot).create(BOOK, callback_url=receiver.url)
        await bot.card()
        # a delivery that has been failing since yesterday
        state = keys.webhook_state(made["id"])
        await bot.redis.hset(state, mapping={"first_at": repr(time.time() - 24 * 3600 - 60)})
        await bot.send.click("approval_approve", made["id"], user=MANAGER)
        await receiver.wait_for(1)
        await bot.settled()
        audit = [e for _, e in await bot.redis.xrange(keys.AUDIT_STREAM)]
        failed = [e for e in audit if e["event"] == "webhook_failed"]
        assert len(failed) == 1 and "500" in failed[0]["detail"]
        assert await bot.redis.zscore(keys.WEBHOOKS_DUE_ZSET, made["id"]) is None
        await asyncio.sleep(1.5)  # no further attempt comes
        assert len(receiver.deliveries) == 1


async def test_a_requester_named_by_email_is_looked_up_in_slack(bot: BotUnderTest) -> None:
    bot.slack.users[REQUESTER] = {"profile": {"email": "ana@example.com"}}
    bot.slack.users[OUTSIDER] = {"profile": {"email": "eve@example.com"}}
    made = await Api(bot).create(BOOK, requester={"email": "Ana@example.com"})
    assert made["requester"] == REQUESTER
    assert f"asked on behalf of <@{REQUESTER}>" in all_text(await bot.card())

    body = {"deferral": api_deferral(BOOK), "summary": "x"}
    unknown = await Api(bot).call(
        "POST", "/api/v1/approvals", {**body, "requester": {"email": "nobody@example.com"}}
    )
    assert (unknown[0], unknown[1]["field"]) == (422, "/requester/email")
    # an email does not widen whom a client may ask for
    other = await Api(bot).call(
        "POST", "/api/v1/approvals", {**body, "requester": {"email": "eve@example.com"}}
    )
    assert (other[0], other[1]["field"]) == (403, "/requester")
    assert await bot.redis.zcard(keys.PENDING_ZSET) == 1
