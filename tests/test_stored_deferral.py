"""A deferral is stored with each call's arguments once, and read back exactly as the SDK
gave it (``from_dict`` rebuilds the same calls); older records read unchanged."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

import pytest
import redis.asyncio as aioredis
from mistralai.client.models import FunctionCallEntry
from mistralai.extra.exceptions import DeferredToolCallEntry, DeferredToolCallsException

from bot.core.approval import ApprovalRequest, Requester, ThreadRef
from bot.mistral.deferral import calls_of, new_request
from bot.storage import keys, record, stored_deferral
from bot.storage.store import Store

NOTES = "n" * 10_240


def exception(arguments: str | dict[str, Any]) -> DeferredToolCallsException:
    call = FunctionCallEntry(tool_call_id="tc_1", name="book_flight", arguments=arguments)
    other = FunctionCallEntry(tool_call_id="tc_2", name="send_note", arguments='{"text": "hi"}')
    return DeferredToolCallsException(
        "conv_1",
        [DeferredToolCallEntry(call), DeferredToolCallEntry(other)],
        outputs=[call, other],
    )


def request(arguments: str | dict[str, Any]) -> ApprovalRequest:
    return new_request(
        exception(arguments),
        thread=ThreadRef("T1", "D1", "1.0"),
        requester=Requester("UREQ", "book it"),
        approvals_channel="C0APPROVALS",
    )


@pytest.mark.parametrize(
    "arguments",
    [json.dumps({"destination": "Rodez", "notes": NOTES}), {"destination": "Rodez", "n": 1.5}],
    ids=["text", "object"],
)
def test_the_stored_record_reads_back_as_the_sdk_gave_it(arguments: Any) -> None:
    original = request(arguments)
    read = record.decode(record.encode(original))
    assert read.deferral == original.deferral
    rebuilt = DeferredToolCallsException.from_dict(read.deferral)  # type: ignore[arg-type]
    assert [c.arguments for c in rebuilt.deferred_calls] == [
        c.arguments for c in exception(arguments).deferred_calls
    ]


def test_arguments_are_stored_once() -> None:
    stored = record.encode(request(json.dumps({"destination": "Rodez", "notes": NOTES})))
    assert stored.count(NOTES) == 1
    assert len(stored) < len(NOTES) + 4096


def test_a_record_stored_before_compaction_reads_unchanged() -> None:
    original = request(json.dumps({"notes": NOTES}))
    schema_3 = asdict(original)  # the deferral as to_dict() gave it, every copy inline
    schema_3["calls"] = json.loads(record.encode(original))["calls"]
    schema_3["decisions"] = [d.to_dict() for d in original.decisions]
    assert record.from_dict(schema_3).deferral == original.deferral


def test_a_reference_is_only_made_for_an_identical_copy() -> None:
    deferral = exception('{"a": 1}').to_dict()
    deferral["outputs"][0]["arguments"] = '{"a": 2}'  # not the same: kept as it is
    texts = {c.tool_call_id: c.arguments for c in calls_of(exception('{"a": 1}'))}
    stored = stored_deferral.compact(deferral, texts)
    assert stored["outputs"][0]["arguments"] == '{"a": 2}'
    assert stored_deferral.expand(stored, texts) == deferral


@pytest.fixture
async def store(redis_client: aioredis.Redis) -> AsyncIterator[Store]:
    yield Store(redis_client)


async def test_a_pending_request_takes_under_4_kb_of_redis_besides_its_arguments(
    store: Store, redis_client: aioredis.Redis
) -> None:
    pending = request(json.dumps({"destination": "Rodez", "notes": NOTES}))
    await store.create_approval(pending)
    used = await redis_client.memory_usage(keys.approval(pending.id), samples=0)
    assert used is not None and used < len(NOTES) + 4096
    assert (await store.get_approval(pending.id)).deferral == pending.deferral
