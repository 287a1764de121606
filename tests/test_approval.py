"""The approval domain: per-call decisions and what they send back to the model."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from mistralai.client.models import FunctionCallEntry, FunctionResultEntry
from mistralai.extra.exceptions import (
    DeferralReason,
    DeferredToolCallConfirmation,
    DeferredToolCallEntry,
    DeferredToolCallRejection,
    DeferredToolCallsException,
)

from bot.core.approval import (
    ApprovalRequest,
    Auto,
    CallDecision,
    Decision,
    Edit,
    Requester,
    Status,
    ThreadRef,
    Vote,
    overall,
)
from bot.core.policy import Approvers, Gate
from bot.errors import AlreadyDecided, NotAllowed
from bot.mistral import deferral
from bot.mistral.deferral import calls_of, new_request
from bot.storage import record

GATE = Gate((Approvers(channel="C0APPROVALS"),))
FINANCE = Gate((Approvers(usergroups=("S0FIN",)),), quorum=2, allow_edit=True)


def deferred() -> DeferredToolCallsException:
    def entry(n: int, name: str, arguments: dict[str, object], server: bool = False) -> Any:
        call = FunctionCallEntry(tool_call_id=f"tc_{n}", name=name, arguments=json.dumps(arguments))
        reason = (
            DeferralReason.SERVER_SIDE_CONFIRMATION_REQUIRED
            if server
            else DeferralReason.CONFIRMATION_REQUIRED
        )
        return DeferredToolCallEntry(call, reason)

    return DeferredToolCallsException(
        "conv_1",
        [
            entry(0, "send_note", {"text": "hi"}),
            entry(1, "pay", {"amount": 10, "to": "ACME"}),
            entry(2, "delete_note", {"note_id": "N1"}),
            entry(3, "web_search", {"query": "x"}, server=True),
        ],
        executed_results=[FunctionResultEntry(tool_call_id="tc_ran", result="ran before")],
    )


def request() -> ApprovalRequest:
    exception = deferred()
    calls = list(calls_of(exception))
    calls[0] = replace(calls[0], gate=GATE)
    calls[1] = replace(calls[1], gate=FINANCE, parameters={"type": "object"})
    calls[2] = replace(calls[2], auto=Auto.DENY, rule="rule 3", note="No deleting.")
    calls[3] = replace(calls[3], gate=GATE)
    return new_request(
        exception,
        thread=ThreadRef("T1", "C1", "1.0"),
        requester=Requester("UREQ", "do things"),
        approvals_channel="C0APPROVALS",
        calls=calls,
    )


def test_a_new_request_holds_the_policy_decisions_and_waits_for_the_rest() -> None:
    req = request()
    assert req.asked == [0, 1, 3]
    assert req.undecided == [0, 1, 3]
    assert req.decisions[2] == CallDecision(Status.DENIED, reason="No deleting.")
    assert req.gates == [GATE, FINANCE]
    assert [call.editable for call in req.calls] == [False, True, False, False]
    assert req.calls[3].server_side


def test_each_call_is_answered_as_decided_with_the_executed_results_first() -> None:
    req = request()
    edit = Edit('{"amount": 5, "to": "ACME"}', {"amount": 5}, "UFIN", 2.0)
    decisions = list(req.decisions)
    decisions[0] = CallDecision(Status.APPROVED, (Vote("UA", 1.0),), "UA", 1.0)
    decisions[1] = CallDecision(
        Status.APPROVED, (Vote("UFIN", 2.0), Vote("UCFO", 3.0)), "UCFO", 3.0, edit=edit
    )
    decisions[3] = CallDecision(Status.DENIED, (), "UB", 4.0, "Not today")
    req = req.with_decisions(decisions)
    req = replace(req, status=overall(req.decisions), decision=Decision(Status.MIXED, "UB", 4.0))
    assert req.status is Status.MIXED

    executed, *responses = deferral.responses(req)
    assert executed.tool_call_id == "tc_ran"
    note, pay, delete, search, why = responses
    assert isinstance(note, DeferredToolCallConfirmation) and note.override_args is None
    assert isinstance(pay, DeferredToolCallConfirmation) and pay.override_args == {"amount": 5}
    assert isinstance(delete, DeferredToolCallRejection) and delete.message == "No deleting."
    assert isinstance(search, DeferredToolCallRejection) and search.message == "Not today"
    assert search.deferral_reason is DeferralReason.SERVER_SIDE_CONFIRMATION_REQUIRED
    # a tool confirmation carries no reason: the model reads it in a message after them
    assert why["type"] == "message.input" and why["role"] == "user"
    assert "not from the user" in why["content"] and "Not today" in why["content"]
    assert req.arguments_of(1) == '{"amount": 5, "to": "ACME"}'
    assert req.arguments_of(0) == '{"text": "hi"}'
    assert "a person changed the arguments" in (req.edit_note(1) or "")
    assert req.edit_note(0) is None
    assert req.deciders == ["UA", "UFIN", "UCFO", "UB"]


def test_a_pending_request_has_no_responses() -> None:
    with pytest.raises(ValueError, match="not decided"):
        deferral.responses(request())


def test_who_may_decide_each_call() -> None:
    req = request()
    with pytest.raises(NotAllowed, match="someone else must approve"):
        req.check_may_decide("UREQ", 0, {"UREQ", "UA"})
    with pytest.raises(NotAllowed, match="not one of the approvers of `pay`") as caught:
        req.check_may_decide("UA", 1, {"UFIN"})
    assert caught.value.approvers == FINANCE
    with pytest.raises(NotAllowed, match="not a person decides|not one a person decides"):
        req.check_may_decide("UA", 2, {"UA"})
    req.check_may_decide("UA", 0, {"UA"})
    voted = req.with_decisions(
        [
            replace(d, votes=(Vote("UFIN", 1.0),)) if i == 1 else d
            for i, d in enumerate(req.decisions)
        ]
    )
    with pytest.raises(NotAllowed, match="approved `pay` already; it needs 1 more approval"):
        voted.check_may_decide("UFIN", 1, {"UFIN"})
    voted.check_may_decide("UFIN", 1, {"UFIN"}, voting=False)  # a deny or an edit may follow
    decided = req.with_decisions(
        [
            CallDecision(Status.DENIED, user_id="UB") if i == 0 else d
            for i, d in enumerate(req.decisions)
        ]
    )
    with pytest.raises(AlreadyDecided):
        decided.check_may_decide("UA", 0, {"UA"})


def test_a_request_round_trips_through_json_with_gates_edits_and_schemas() -> None:
    req = request()
    edit = Edit('{"amount": 5.5, "to": "ACME"}', {"amount": 5.5}, "UFIN", 2.25)
    req = req.with_decisions(
        [
            replace(d, edit=edit, votes=(Vote("UFIN", 2.25),)) if i == 1 else d
            for i, d in enumerate(req.decisions)
        ]
    )
    req = replace(req, revision=3)
    back = record.decode(record.encode(req))
    assert back == req
    assert back.calls[1].parameters == {"type": "object"}
    assert back.calls[1].gate == FINANCE


def test_overall_status() -> None:
    approved, denied = CallDecision(Status.APPROVED), CallDecision(Status.DENIED)
    assert overall([approved, approved]) is Status.APPROVED
    assert overall([denied]) is Status.DENIED
    assert overall([approved, denied]) is Status.MIXED
    assert overall([approved, CallDecision()]) is Status.PENDING
