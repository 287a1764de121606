"""Block Kit builders: what approvers and requesters see, within Slack's limits.

Every builder's output goes through ``slack_sdk``'s own ``to_dict()`` validation and is then
checked against the limits Slack enforces: 50 blocks a message, 100 a modal, 3000 characters
a section text, 150 a header.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.core.approval import (
    ApprovalRequest,
    Auto,
    CallDecision,
    Decision,
    Edit,
    MessageRef,
    Requester,
    Resume,
    Status,
    ThreadRef,
    ToolCall,
    Vote,
)
from bot.core.policy import Approvers, Gate
from bot.slack import blocks, modals, thread_notes
from tests.approvals import build, outcome
from tests.helpers import all_text

APPROVAL_ID = "0123456789abcdef01234567"
HOSTILE = "<!channel> <@U1> <https://evil|bank> & @here"
BIG_ARGUMENTS = 100_000
CHANNEL_GATE = Gate((Approvers(channel="C0APPROVALS"),))


def request(
    *calls: ToolCall,
    text: str = "please book it",
    gate: Gate | None = CHANNEL_GATE,
    **changes: Any,
) -> ApprovalRequest:
    return build(
        gate=gate,
        id=APPROVAL_ID,
        thread=ThreadRef("T1", "D1", "1700000000.000100"),
        requester=Requester("UREQ", text, "https://example.slack.com/archives/D1/p1"),
        conversation_id="conv_1",
        calls=calls,
        deferral={},
        approvals_channel="C0APPROVALS",
        created_at=1_700_000_000.0,
        **changes,
    )


def call(arguments: Any, name: str = "book_flight", index: int = 0) -> ToolCall:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ToolCall(f"call_{index}", name, text)


def calls(count: int, arguments: Any) -> list[ToolCall]:
    return [call(arguments, f"tool_{i}", i) for i in range(count)]


def decided_request(req: ApprovalRequest) -> ApprovalRequest:
    """``req`` with every call a person decides approved by UMANAGER."""
    return outcome(req, Status.APPROVED, Decision(Status.APPROVED, "UMANAGER", 1_700_000_100.0))


def decided(status: Status, reason: str | None = None, **changes: Any) -> ApprovalRequest:
    decision = Decision(status, "UMANAGER", 1_700_000_100.0, reason)
    return request(
        call({"destination": "Paris"}),
        status=status,
        decision=decision,
        **{"resume": Resume.DONE, **changes},
    )


def dicts(message: list[Block] | View) -> list[dict[str, Any]]:
    """Validated by slack_sdk (raises on a limit it knows) and checked against Slack's limits."""
    if isinstance(message, View):
        view = message.to_dict()
        result: list[dict[str, Any]] = view["blocks"]
        limit = blocks.MAX_MODAL_BLOCKS
        assert len(view["title"]["text"]) <= 24
    else:
        result = [block.to_dict() for block in message]
        limit = blocks.MAX_MESSAGE_BLOCKS
    assert 0 < len(result) <= limit
    for block in result:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= blocks.SECTION_LIMIT
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        for element in block.get("elements", []):
            if element.get("type") == "mrkdwn":
                assert len(element["text"]) <= blocks.SECTION_LIMIT
            if element.get("type") == "button":
                assert len(element["value"]) <= 2000
    return result


def texts(result: list[dict[str, Any]]) -> str:
    """Everything a person reads in those blocks."""
    return all_text({"blocks": result}).removeprefix("\n")


def buttons(result: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        element["text"]["text"]: element
        for block in result
        if block["type"] == "actions"
        for element in block["elements"]
    }


def code_contents(text: str) -> list[str]:
    """What is inside each ``` fence of a section, pairing fences in order as Slack does."""
    parts = text.split("```")
    assert len(parts) % 2 == 1, f"unbalanced fences in {text!r}"
    return parts[1::2]


def all_builders(req: ApprovalRequest) -> list[tuple[str, list[Block] | View]]:
    return [
        ("approval_card", blocks.approval_card(req)),
        ("arguments_modal", modals.arguments_modal(req)),
        ("deny_modal", modals.deny_modal(req, req.asked, None)),
        ("deny_call_modal", modals.deny_modal(req, req.asked[:1], 0)),
        ("decided", thread_notes.decided_note(req)[1]),
        ("awaiting", [blocks.section(thread_notes.awaiting_text(req, "https://x.slack.com/p1"))]),
        ("resume_failed", thread_notes.resume_failed_blocks(req, "The model service failed.")),
    ]


SHAPES = {
    "1 call": [call({"destination": "Paris", "date": "2025-01-01"})],
    "10 calls": calls(10, {"destination": "Paris"}),
    "60 calls": calls(60, {"destination": "Paris", "notes": "x" * 200}),
    "100 KB": [call({"body": "a" * BIG_ARGUMENTS})],
    "non-JSON": [call("destination=Paris; date=tomorrow {")],
    "3 calls of 100 KB": calls(3, {"body": "b" * BIG_ARGUMENTS}),
    "60 calls of 100 KB": calls(60, "z" * BIG_ARGUMENTS),
}

ESCAPING = {
    # escaping turns each of these characters into 4 or 5: the text grows after truncation
    "1 call of &<>": [call({"body": "&<>" * 30_000})],
    "2 calls of &<>": calls(2, {"body": "&<>" * 30_000}),
    "10 calls of &<>": calls(10, {"body": "&<>" * 30_000}),
    "60 calls of &<>": calls(60, "&<>" * 30_000),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("status", [Status.PENDING, Status.DENIED])
def test_every_builder_stays_within_block_kit_limits(shape: str, status: Status) -> None:
    changes: dict[str, Any] = {}
    if status is not Status.PENDING:
        reason = "r" * 2000  # the most the deny modal accepts
        changes = {"status": status, "decision": Decision(status, "UMANAGER", 1.0, reason)}
        changes |= {"resume": Resume.FAILED, "outcome": "Resuming failed: Mistral failed."}
    req = request(*SHAPES[shape], text="x" * 280, **changes)
    for name, message in all_builders(req):
        assert dicts(message), name
    for message_blocks in thread_notes.answer_messages("An answer."):
        dicts(message_blocks)
    dicts(thread_notes.failure_blocks("The model service (Mistral) failed (HTTP 503).", "turn_1"))
    dicts(thread_notes.failure_blocks("Slack failed.", None))


@pytest.mark.parametrize("shape", ["10 calls of &<>", "60 calls of &<>"])
def test_arguments_full_of_characters_that_escaping_grows(shape: str) -> None:
    req = request(*ESCAPING[shape])
    for _, message in all_builders(req):
        dicts(message)


@pytest.mark.parametrize("shape", ["1 call of &<>", "2 calls of &<>"])
def test_card_with_few_calls_full_of_characters_that_escaping_grows(shape: str) -> None:
    dicts(blocks.approval_card(request(*ESCAPING[shape])))


def test_card_denied_with_the_longest_reason_the_modal_accepts() -> None:
    reason = ("if a < b && c > d " * 200)[:2000]
    dicts(blocks.approval_card(decided(Status.DENIED, reason=reason)))


def test_pending_card_has_approve_and_deny_carrying_the_id() -> None:
    result = dicts(blocks.approval_card(request(call({"destination": "Paris"}))))
    found = buttons(result)
    assert set(found) == {"Approve", "Deny"}
    assert found["Approve"]["style"] == "primary"
    assert found["Approve"]["action_id"] == blocks.APPROVE
    assert found["Approve"]["value"] == APPROVAL_ID
    assert found["Deny"]["style"] == "danger"
    assert found["Deny"]["action_id"] == blocks.DENY
    assert found["Deny"]["value"] == APPROVAL_ID
    text = texts(result)
    assert "book_flight" in result[0]["text"]["text"]  # the header names the tool
    assert "<@UREQ> asked" in text
    assert '"destination": "Paris"' in text
    assert APPROVAL_ID in text


def test_approved_card_says_who_approved_and_has_no_buttons_to_decide() -> None:
    result = dicts(blocks.approval_card(decided(Status.APPROVED)))
    assert not {"Approve", "Deny"} & set(buttons(result))
    assert "*Approved* by <@UMANAGER>" in texts(result)


def test_denied_card_says_who_denied_and_why_escaped() -> None:
    req = decided(Status.DENIED, reason="too <!channel> expensive & late")
    result = dicts(blocks.approval_card(req))
    assert not {"Approve", "Deny"} & set(buttons(result))
    text = texts(result)
    denied = r"\*Denied\* by <@UMANAGER> at .*: too &lt;!channel&gt; expensive &amp; late"
    assert re.search(denied, text)
    assert "<!channel>" not in text


def test_denied_without_a_reason() -> None:
    text = texts(dicts(blocks.approval_card(decided(Status.DENIED))))
    assert "*Denied* by <@UMANAGER>" in text
    assert "(no reason given)" in text


def test_failed_resume_shows_retry() -> None:
    req = decided(Status.APPROVED, resume=Resume.FAILED, outcome="Resuming failed: Slack failed.")
    result = dicts(blocks.approval_card(req))
    found = buttons(result)
    assert set(found) == {"Retry"}
    assert found["Retry"]["action_id"] == blocks.RETRY_RESUME
    assert found["Retry"]["value"] == APPROVAL_ID
    assert "Resuming failed: Slack failed." in texts(result)
    retry = buttons(dicts(thread_notes.resume_failed_blocks(req, "Slack failed.")))["Retry"]
    assert retry["value"] == APPROVAL_ID


def test_running_resume_has_no_buttons() -> None:
    result = dicts(blocks.approval_card(decided(Status.APPROVED, resume=Resume.RUNNING)))
    assert buttons(result) == {}
    assert "Resuming the conversation" in texts(result)


@pytest.mark.parametrize(
    "builder", [blocks.approval_card, modals.arguments_modal], ids=["card", "arguments modal"]
)
def test_mentions_and_links_in_arguments_are_inert(builder: Any) -> None:
    text = texts(dicts(builder(request(call({"note": HOSTILE}, name="send_note")))))
    assert "&lt;!channel&gt; &lt;@U1&gt; &lt;https://evil|bank&gt; &amp; @\u200bhere" in text
    for raw in ("<!channel>", "<@U1>", "<https://evil|bank>", "@here"):
        assert raw not in text


def test_a_hostile_tool_name_is_inert() -> None:
    req = request(call({}, name="<!channel>"))
    shown = [
        texts(dicts(blocks.approval_card(req))),
        texts(dicts(modals.deny_modal(req, req.asked, None))),
        texts(dicts(thread_notes.decided_note(decided_request(req))[1])),
        texts(dicts(modals.arguments_modal(req))),
        thread_notes.awaiting_text(req, None),
    ]
    for text in shown:
        assert "&lt;!channel&gt;" in text
    # the header is plain_text, which Slack never parses for mentions
    header = "Approval needed: <!channel>"
    assert all("<!channel>" not in text.replace(header, "") for text in shown)


def test_mentions_in_the_requesters_text_are_inert() -> None:
    text = texts(dicts(blocks.approval_card(request(call({}), text=HOSTILE))))
    assert "&lt;!channel&gt; &lt;@U1&gt; &lt;https://evil|bank&gt; &amp;" in text
    for raw in ("<!channel>", "<@U1>", "<https://evil|bank>", "@here"):
        assert raw not in text


def test_mentions_in_the_outcome_are_inert() -> None:
    req = decided(Status.APPROVED, outcome="The agent said <!channel>")
    text = texts(dicts(blocks.approval_card(req)))
    assert "&lt;!channel&gt;" in text
    assert "<!channel>" not in text


def test_non_json_arguments_are_shown_verbatim() -> None:
    req = request(call("city=Paris; date=tomorrow {"))
    for result in (dicts(blocks.approval_card(req)), dicts(modals.arguments_modal(req))):
        assert "```city=Paris; date=tomorrow {```" in texts(result)


def argument_sections(result: list[dict[str, Any]]) -> list[str]:
    return [
        block["text"]["text"]
        for block in result
        if block["type"] == "section" and "```" in block["text"]["text"]
    ]


@pytest.mark.parametrize("fence", ["```", "x```y", "```\n<!channel>\n```"])
def test_a_fence_in_the_arguments_cannot_close_the_code_block(fence: str) -> None:
    req = request(call({"note": fence}))
    for result in (dicts(blocks.approval_card(req)), dicts(modals.arguments_modal(req))):
        [section] = argument_sections(result)
        assert len(code_contents(section)) == 1
        assert "<!channel>" not in section


@pytest.mark.parametrize("fence", ["````", "``````"])
def test_a_long_backtick_run_cannot_close_the_code_block(fence: str) -> None:
    req = request(call({"note": f"a{fence}b"}))
    for result in (dicts(blocks.approval_card(req)), dicts(modals.arguments_modal(req))):
        [section] = argument_sections(result)
        assert len(code_contents(section)) == 1


def test_long_arguments_are_cut_on_the_card_with_a_button_for_the_rest() -> None:
    req = request(call({"body": "a" * BIG_ARGUMENTS}))
    result = dicts(blocks.approval_card(req))
    assert sum(block["text"]["text"].count("a") for block in result if "text" in block) < 3000
    found = buttons(result)
    assert set(found) == {"Approve", "Deny", "Show full arguments"}
    assert found["Show full arguments"]["value"] == APPROVAL_ID


def test_a_short_card_has_no_show_full_arguments_button() -> None:
    result = dicts(blocks.approval_card(request(call({"destination": "Paris"}))))
    assert "Show full arguments" not in buttons(result)


def test_many_calls_card_lists_ten_and_counts_the_rest() -> None:
    result = dicts(blocks.approval_card(request(*calls(60, {"destination": "Paris"}))))
    text = texts(result)
    assert "tool_9" in text
    assert "tool_10`" not in text
    assert "…and 50 more calls" in text
    assert "Approve all" in buttons(result) and "Deny all" in buttons(result)
    assert "Show full arguments" in buttons(result)
    assert len(result[0]["text"]["text"]) <= 150
    assert "and 57 more" in result[0]["text"]["text"]


def test_arguments_modal_shows_100_kb_in_full() -> None:
    arguments = {"body": "a" * BIG_ARGUMENTS}
    result = dicts(modals.arguments_modal(request(call(arguments))))
    shown = "".join("".join(code_contents(text)) for text in argument_sections(result))
    assert json.loads(shown) == arguments
    assert "too long" not in texts(result)


def test_arguments_modal_for_300_kb_is_truncated_and_says_so() -> None:
    result = dicts(modals.arguments_modal(request(call({"body": "q" * 300_000}))))
    assert len(result) <= blocks.MAX_MODAL_BLOCKS
    assert "_The arguments are too long to show in full here._" == result[-1]["text"]["text"]


def test_arguments_modal_for_many_calls_is_truncated_and_says_so() -> None:
    result = dicts(modals.arguments_modal(request(*calls(60, {"x": "y" * 10_000}))))
    assert result[0]["text"]["text"] == "*Tool:* `tool_0`"
    assert "too long to show in full" in result[-1]["text"]["text"]


def test_deny_modal_carries_the_id() -> None:
    req = request(call({}, name="send_note"), call({}, name="pay", index=1), text=HOSTILE)
    view = modals.deny_modal(req, [1], 1)
    result = dicts(view)
    data = view.to_dict()
    assert data["private_metadata"] == f"{APPROVAL_ID}:1"
    assert modals.parse_deny_metadata(data["private_metadata"]) == (APPROVAL_ID, 1)
    assert "`send_note`" not in texts(result)
    assert "`pay`" in texts(result)
    view = modals.deny_modal(req, [0, 1], None)
    data = view.to_dict()
    assert data["private_metadata"] == f"{APPROVAL_ID}:all"
    assert modals.parse_deny_metadata(data["private_metadata"]) == (APPROVAL_ID, None)
    result = dicts(view)
    assert data["callback_id"] == blocks.DENY_MODAL
    assert "`send_note`" in texts(result)
    [field] = [block for block in result if block["type"] == "input"]
    assert field["block_id"] == blocks.DENY_REASON_BLOCK
    assert field["element"]["action_id"] == blocks.DENY_REASON_INPUT
    assert field["optional"] is True


def test_a_40000_character_answer_is_split_within_limits() -> None:
    answer = "x" * 40_000
    messages = thread_notes.answer_messages(answer)
    assert all(len(dicts(message)) <= blocks.MAX_MESSAGE_BLOCKS for message in messages)
    shown = "".join(block.to_dict()["text"]["text"] for message in messages for block in message)
    assert shown == answer


def test_no_answer_message_holds_more_block_text_than_slack_takes() -> None:
    # Slack refuses a message whose blocks hold more than about 13 000 characters of text
    answer = "\n\n".join("```\n" + "code " * 700 + "\n```\n" + "word " * 900 for _ in range(12))
    messages = thread_notes.answer_messages(answer)
    sizes = [sum(len(b["text"]["text"]) for b in dicts(message)) for message in messages]
    assert max(sizes) <= blocks.MESSAGE_TEXT_BUDGET < 13_000
    assert len(messages) >= sum(sizes) // blocks.MESSAGE_TEXT_BUDGET


def test_a_long_paragraphed_answer_is_split_and_keeps_every_paragraph() -> None:
    answer = "\n\n".join(f"Paragraph {i}: " + "word " * 60 for i in range(150))
    assert len(answer) >= 40_000
    messages = thread_notes.answer_messages(answer)
    text = "\n".join(texts(dicts(message)) for message in messages)
    assert all(f"Paragraph {i}:" in text for i in range(150))


def test_an_answer_that_escaping_grows_is_spread_over_several_messages() -> None:
    answer = "&" * 200_000  # 1,000,000 characters once escaped
    messages = thread_notes.answer_messages(answer)
    assert len(messages) > 1
    for message in messages:
        assert len(dicts(message)) <= blocks.MAX_MESSAGE_BLOCKS
    text = "".join(texts(dicts(message)) for message in messages)
    assert text.count("&amp;") == 200_000


def test_an_answer_cannot_mention_anyone() -> None:
    [message] = thread_notes.answer_messages(f"Done. {HOSTILE}")
    text = texts(dicts(message))
    for raw in ("<!channel>", "<@U1>", "<https://evil|bank>", "@here"):
        assert raw not in text


def test_an_empty_answer_still_says_something() -> None:
    [message] = thread_notes.answer_messages("")
    assert "no text" in texts(dicts(message))


def test_failure_offers_retry_only_with_a_turn() -> None:
    with_turn = dicts(thread_notes.failure_blocks("Slack <!here> failed.", "turn_1"))
    assert buttons(with_turn)["Retry"]["value"] == "turn_1"
    assert "&lt;!here&gt;" in texts(with_turn)
    without = dicts(thread_notes.failure_blocks("Slack failed.", None))
    assert buttons(without) == {}
    assert "again" in texts(without)


def test_awaiting_text_links_the_card() -> None:
    req = request(call({}), card=MessageRef("C0APPROVALS", "1.2"))
    text = thread_notes.awaiting_text(req, "https://x.slack.com/archives/C0APPROVALS/p12")
    assert "`book_flight`" in text
    assert "<#C0APPROVALS>" in text
    assert "<https://x.slack.com/archives/C0APPROVALS/p12|view the request>" in text


# -- policy annotations, gates, quorums and grants -----------------------------------------
BROADCASTS = ("<!channel", "<!here", "<!everyone")
RAW_HOSTILE = ("<!channel>", "<@U123>", "<https://evil|bank>")
HOSTILE_RULE = "<!channel> <@U123> <https://evil|bank>"
FIN_GATE = Gate(
    (Approvers(channel="C0FIN", usergroups=("S0LEADS",), users=("UBOSS",)),), rule="rule 3 (pay)"
)


def checked(
    message: list[Block] | View, limit: int = blocks.MAX_MESSAGE_BLOCKS
) -> list[dict[str, Any]]:
    """``message`` validated by slack_sdk and against Slack's limits; safe to post.

    Besides :func:`dicts`: at most ``limit`` blocks, unique block ids, unique action ids in
    each actions block, and no broadcast (``<!channel>``, ``<!here>``, ``<!everyone>``).
    """
    if isinstance(message, View):
        result: list[dict[str, Any]] = message.to_dict()["blocks"]
    else:
        result = [block.to_dict() for block in message]
    assert 0 < len(result) <= limit
    block_ids = [block["block_id"] for block in result if "block_id" in block]
    assert len(block_ids) == len(set(block_ids)), block_ids
    for block in result:
        assert len(block.get("block_id", "")) <= 255
        if block["type"] == "section":
            assert 0 < len(block["text"]["text"]) <= blocks.SECTION_LIMIT
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "context":
            assert 0 < len(block["elements"]) <= 10
        for element in block.get("elements", []):
            if element.get("type") == "mrkdwn":
                assert 0 < len(element["text"]) <= blocks.SECTION_LIMIT
            if element.get("type") == "button":
                assert len(element["text"]["text"]) <= 75
                assert len(element["value"]) <= 2000
                assert len(element["action_id"]) <= 255
        if block["type"] == "actions":
            assert 0 < len(block["elements"]) <= 25
            action_ids = [element["action_id"] for element in block["elements"]]
            assert len(action_ids) == len(set(action_ids)), action_ids
    text = texts(result)
    for broadcast in BROADCASTS:
        assert broadcast not in text
    assert not re.search(r"@(channel|here|everyone)", text, re.IGNORECASE)
    return result


def screened(
    name: str, auto: Auto | None = None, rule: str = "", note: str | None = None, index: int = 0
) -> ToolCall:
    return ToolCall(f"call_{index}", name, '{"n": 1}', auto=auto, rule=rule, note=note)


def gated(*calls_: ToolCall, gate: Gate | None = FIN_GATE, **changes: Any) -> ApprovalRequest:
    return request(*calls_, gate=gate, **changes)


def test_card_shows_what_the_policy_did_with_each_call() -> None:
    req = gated(
        screened("read_file", Auto.ALLOW, "rule 1 (reads)", index=1),
        screened("delete_file", Auto.DENY, "rule 2 (no deletes)", "Deleting is off.", 2),
        screened("send_mail", Auto.GRANT, "rule 4 (mail)", "g_0123abcd", 3),
        screened("pay", None, "rule 3 (pay)", index=4),
    )
    text = texts(checked(blocks.approval_card(req)))
    assert ":white_check_mark: Allowed by the policy (rule 1 (reads))" in text
    assert ":no_entry: Denied by the policy (rule 2 (no deletes)): Deleting is off." in text
    assert ":stopwatch: Allowed by a grant (`g_0123abcd`) under rule 4 (mail)" in text
    # the call a person decides carries no policy line
    assert "*Tool:* `pay`\n```" in text
    assert set(buttons(checked(blocks.approval_card(req)))) == {"Approve", "Deny"}


def test_card_shows_a_condition_that_could_not_be_evaluated() -> None:
    note = "condition not evaluated (no such key: 'price')"
    req = gated(screened("pay", None, "rule 3 (pay)", note))
    text = texts(checked(blocks.approval_card(req)))
    assert f":grey_question: rule 3 (pay): {note}" in text


@pytest.mark.parametrize(
    "call_",
    [
        screened("a", Auto.ALLOW, HOSTILE_RULE),
        screened("a", Auto.DENY, HOSTILE_RULE, HOSTILE_RULE),
        screened("a", Auto.GRANT, HOSTILE_RULE, HOSTILE_RULE),
        screened("a", None, HOSTILE_RULE, HOSTILE_RULE),
    ],
    ids=["allowed", "denied", "granted", "asked with a note"],
)
def test_policy_lines_on_the_card_are_inert(call_: ToolCall) -> None:
    text = texts(checked(blocks.approval_card(gated(call_))))
    assert "&lt;!channel&gt; &lt;@U123&gt; &lt;https://evil|bank&gt;" in text
    for raw in RAW_HOSTILE:
        assert raw not in text


def test_long_rule_names_and_reasons_are_cut_on_the_card() -> None:
    call_ = screened("delete_file", Auto.DENY, "r" * 5000, "&" * 5000)
    text = texts(checked(blocks.approval_card(gated(call_))))
    assert "r" * 200 in text and "r" * 201 not in text
    assert "&amp;" * 300 in text and "&amp;" * 301 not in text


def test_gate_line_names_everyone_who_can_decide() -> None:
    gate = replace(FIN_GATE, quorum=2)
    result = checked(blocks.approval_card(gated(screened("pay"), gate=gate)))
    assert (
        "*Who can decide:* members of <#C0FIN>, <!subteam^S0LEADS> or <@UBOSS>, not the "
        "requester · 2 approvals needed · rule 3 (pay)"
    ) in texts(result)


def test_gate_line_when_the_requester_may_approve_and_one_approval_decides() -> None:
    gate = Gate((Approvers(users=("UBOSS",)),), allow_self_approval=True)
    line = blocks.gate_text(gate)
    assert line == "*Who can decide:* <@UBOSS> · one approval needed · defaults"
    assert "requester" not in line


def test_gate_line_for_calls_under_several_rules() -> None:
    gate = Gate(
        (Approvers(channel="C0FIN"), Approvers(usergroups=("S0LEADS", "S0OPS"))),
        rule="rule 1 (a) + rule 2 (b)",
    )
    assert blocks.who_may_decide(gate) == (
        "members of <#C0FIN> who are also <!subteam^S0LEADS> or <!subteam^S0OPS>"
    )
    assert blocks.gate_text(gate).endswith("· rule 1 (a) + rule 2 (b)")


def test_a_hostile_rule_name_in_the_gate_line_is_inert() -> None:
    gate = replace(FIN_GATE, rule=HOSTILE_RULE)
    text = texts(checked(blocks.approval_card(gated(screened("pay"), gate=gate))))
    assert "· &lt;!channel&gt; &lt;@U123&gt; &lt;https://evil|bank&gt;" in text
    for raw in RAW_HOSTILE:
        assert raw not in text


def test_a_decided_card_has_no_gate_line() -> None:
    req = decided(Status.APPROVED, gate=FIN_GATE)
    assert "Who can decide" not in texts(checked(blocks.approval_card(req)))


def test_quorum_progress_after_one_approval_keeps_the_buttons() -> None:
    req = gated(screened("pay"), gate=replace(FIN_GATE, quorum=2), votes=(Vote("UA", 1.0),))
    result = checked(blocks.approval_card(req))
    text = texts(result)
    assert ":ballot_box_with_check: 1 of 2 approvals: <@UA>." in text
    assert "Waiting for 1 more" in text
    assert set(buttons(result)) == {"Approve", "Deny"}


def test_no_progress_line_before_the_first_approval() -> None:
    req = gated(screened("pay"), gate=replace(FIN_GATE, quorum=2))
    assert "approvals:" not in texts(checked(blocks.approval_card(req)))


def test_a_reached_quorum_names_every_approver_and_removes_the_buttons() -> None:
    votes = (Vote("UA", 1.0), Vote("UB", 2.0))
    req = gated(
        screened("pay"),
        gate=replace(FIN_GATE, quorum=2),
        status=Status.APPROVED,
        decision=Decision(Status.APPROVED, "UB", 1_700_000_100.0),
        votes=votes,
        resume=Resume.DONE,
    )
    result = checked(blocks.approval_card(req))
    text = texts(result)
    assert "*Approved* by <@UA>, <@UB> at" in text
    assert "approvals:" not in text
    assert buttons(result) == {}


def test_a_request_the_policy_decided_says_so() -> None:
    req = gated(
        screened("delete_file", Auto.DENY, "rule 2 (no deletes)", "Deleting is off."),
        gate=None,
        status=Status.DENIED,
        decision=Decision(Status.DENIED, "", 1_700_000_100.0),
        resume=Resume.DONE,
    )
    result = checked(blocks.approval_card(req))
    text = texts(result)
    assert ":robot_face: Decided by the approval policy at" in text
    assert "<@>" not in text
    assert buttons(result) == {}


def test_grant_buttons_for_a_single_approval_rule() -> None:
    gate = replace(FIN_GATE, grant_durations_s=(3600, 28800))
    result = checked(blocks.approval_card(gated(screened("pay"), gate=gate)))
    [actions] = [block for block in result if block["type"] == "actions"]
    shown = [(e["text"]["text"], e["action_id"], e["value"]) for e in actions["elements"]]
    assert shown == [
        ("Approve", blocks.APPROVE, APPROVAL_ID),
        ("Approve for 1 hour", "approval_grant_3600", APPROVAL_ID),
        ("Approve for 8 hours", "approval_grant_28800", APPROVAL_ID),
        ("Deny", blocks.DENY, APPROVAL_ID),
    ]


@pytest.mark.parametrize(
    "gate",
    [
        replace(FIN_GATE, quorum=2, grant_durations_s=(3600, 28800)),
        replace(FIN_GATE, grant_durations_s=()),
        None,
    ],
    ids=["quorum 2", "no durations", "no gate"],
)
def test_no_grant_buttons_where_a_grant_is_not_offered(gate: Gate | None) -> None:
    result = checked(blocks.approval_card(gated(screened("pay"), gate=gate)))
    assert set(buttons(result)) == {"Approve", "Deny"}
    assert not any(
        element["action_id"].startswith(blocks.GRANT_PREFIX)
        for block in result
        if block["type"] == "actions"
        for element in block["elements"]
    )


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (60, "1 minute"),
        (90 * 60, "90 minutes"),
        (3600, "1 hour"),
        (8 * 3600, "8 hours"),
        (86400, "1 day"),
        (86400 * 2, "2 days"),
        (45, "45 seconds"),
    ],
)
def test_duration_text(seconds: int, shown: str) -> None:
    assert blocks.duration_text(seconds) == shown


# -- the requester's policy note -------------------------------------------------------------
def test_policy_note_lists_denied_and_granted_calls_only() -> None:
    req = request(
        screened("read_file", Auto.ALLOW, "rule 1 (reads)", index=1),
        screened("delete_file", Auto.DENY, "rule 2 (no deletes)", "Deleting is off.", 2),
        screened("send_mail", Auto.GRANT, "rule 4 (mail)", "g_0123abcd", 3),
        screened("pay", None, "rule 3 (pay)", index=4),
    )
    fallback, note = thread_notes.policy_note(req)
    assert fallback == "The approval policy decided some of the agent's actions."
    text = texts(checked(note))
    assert text.splitlines() == [
        "`delete_file`: :no_entry: Denied by the policy (rule 2 (no deletes)): Deleting is off.",
        "`send_mail`: :stopwatch: Allowed by a grant (`g_0123abcd`) under rule 4 (mail)",
    ]


def test_policy_note_is_inert() -> None:
    req = request(
        screened("<!channel>", Auto.DENY, HOSTILE_RULE, HOSTILE_RULE),
        screened("send_mail", Auto.GRANT, "grant", HOSTILE_RULE, 1),
    )
    text = texts(checked(thread_notes.policy_note(req)[1]))
    assert "`&lt;!channel&gt;`: :no_entry: Denied by the policy (&lt;!channel&gt;" in text
    for raw in RAW_HOSTILE:
        assert raw not in text


@pytest.mark.parametrize("reason", ["x" * 1000, "&<>" * 1000], ids=["long", "escaping grows"])
def test_policy_note_for_fifty_calls_with_long_reasons_fits(reason: str) -> None:
    req = request(
        *(
            screened(f"tool_{i}" + "n" * 200, auto, "r" * 500, reason, i)
            for i, auto in enumerate([Auto.DENY, Auto.GRANT] * 25)
        )
    )
    text = texts(checked(thread_notes.policy_note(req)[1]))
    assert text.startswith("`tool_0")
    assert "<" not in text.replace("&lt;", "")


def test_policy_note_names_every_decided_call_or_says_how_many_it_left_out() -> None:
    req = request(*(screened(f"tool_{i}", Auto.DENY, f"rule {i}", "x" * 300, i) for i in range(50)))
    text = texts(checked(thread_notes.policy_note(req)[1]))
    named = sum(f"`tool_{i}`" in text for i in range(50))
    assert named == 50 or f"{50 - named} more" in text


def test_policy_note_never_cuts_inside_an_entity() -> None:
    req = request(
        *(screened(f"tool_{i}", Auto.DENY, "r" * 500, "&<>" * 1000, i) for i in range(50))
    )
    text = texts(checked(thread_notes.policy_note(req)[1]))
    assert re.fullmatch(r"([^&]|&lt;|&gt;|&amp;)*", text)


def test_card_for_a_gate_naming_many_users_stays_within_limits() -> None:
    gate = Gate((Approvers(users=tuple(f"U{i:010d}" for i in range(200))),))
    result = checked(blocks.approval_card(gated(screened("pay"), gate=gate)))
    assert "*Who can decide:* <@U0000000000>, <@U0000000001>" in texts(result)


# -- several calls, each with its own buttons; edits -----------------------------------------
EDITABLE = Gate((Approvers(channel="C0APPROVALS"),), allow_edit=True)


def editable(name: str, index: int, arguments: str = '{"n": 1}') -> ToolCall:
    return ToolCall(f"call_{index}", name, arguments, gate=EDITABLE, parameters={"type": "object"})


def rows(result: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each actions block's id, with its buttons' action ids."""
    return {
        block["block_id"]: [element["action_id"] for element in block["elements"]]
        for block in result
        if block["type"] == "actions"
    }


def test_each_waiting_call_has_its_own_buttons_and_approve_all_comes_last() -> None:
    req = request(
        editable("send_note", 0),
        screened("delete_file", Auto.DENY, "rule 2", "Deleting is off.", 1),
        ToolCall("call_2", "web_search", "{}", server_side=True, gate=EDITABLE),
    )
    result = checked(blocks.approval_card(req))
    assert rows(result) == {
        f"{APPROVAL_ID}.0.r0": ["approval_approve", "approval_edit", "approval_deny"],
        f"{APPROVAL_ID}.2.r0": ["approval_approve", "approval_deny"],  # server-side: no Edit
        f"{APPROVAL_ID}.all.r0": ["approval_approve_all", "approval_deny_all"],
    }
    assert all(
        e["value"] == APPROVAL_ID for b in result if b["type"] == "actions" for e in b["elements"]
    )


def test_one_waiting_call_has_no_approve_all() -> None:
    req = request(editable("send_note", 0), screened("read", Auto.ALLOW, "rule 1", index=1))
    assert rows(checked(blocks.approval_card(req))) == {
        f"{APPROVAL_ID}.0.r0": ["approval_approve", "approval_edit", "approval_deny"]
    }


def test_calls_routed_to_different_approvers_say_whom_each_waits_for() -> None:
    req = request(editable("send_note", 0), replace(call({}, "pay", 1), gate=FIN_GATE))
    text = texts(checked(blocks.approval_card(req)))
    assert "Who can decide" not in text  # one line per call instead
    assert "*Waits for:* members of <#C0APPROVALS>, not the requester" in text
    assert "*Waits for:* members of <#C0FIN>, <!subteam^S0LEADS> or <@UBOSS>" in text


def test_a_decided_call_shows_its_decision_and_loses_its_buttons() -> None:
    req = request(editable("send_note", 0), editable("book", 1), editable("pay", 2))
    decisions = list(req.decisions)
    decisions[0] = CallDecision(Status.APPROVED, (Vote("UA", 1.0),), "UA", 1_700_000_100.0)
    decisions[1] = CallDecision(Status.DENIED, (), "UB", 1_700_000_100.0, HOSTILE)
    result = checked(blocks.approval_card(req.with_decisions(decisions)))
    assert list(rows(result)) == [f"{APPROVAL_ID}.2.r0"]  # one call left: no Approve all
    text = texts(result)
    assert "*Approved* by <@UA>" in text and "*Denied* by <@UB>" in text
    assert "&lt;!channel&gt;" in text


def test_an_edited_call_shows_the_arguments_side_by_side_and_the_revision() -> None:
    req = request(editable("book", 0, '{"date": "2026-12-01"}'), editable("pay", 1))
    edit = Edit('{"date": "<!here> 2026-12-02"}', {"date": "<!here> 2026-12-02"}, "UA", 2.0)
    decisions = list(req.decisions)
    decisions[0] = CallDecision(votes=(Vote("UA", 2.0),), edit=edit)
    req = replace(
        req.with_decisions(decisions),
        revision=1,
        calls=(replace(req.calls[0], gate=replace(EDITABLE, quorum=2)), req.calls[1]),
    )
    result = checked(blocks.approval_card(req))
    [fields] = [b["fields"] for b in result if b.get("fields")]
    assert fields[0]["text"].startswith("*Asked for*") and "2026-12-01" in fields[0]["text"]
    assert fields[1]["text"].startswith("*Edited*") and "2026-12-02" in fields[1]["text"]
    assert "&lt;!here&gt;" in fields[1]["text"]
    assert "1 of 2 approvals with arguments edited by <@UA>" in texts(result)
    assert f"{APPROVAL_ID}.0.r1" in rows(result)


def test_block_ids_name_the_call_and_the_revision() -> None:
    req = replace(request(call({}), call({}, "pay", 1)), revision=7)
    assert blocks.call_block_id(req, 1) == f"{APPROVAL_ID}.1.r7"
    assert blocks.parse_block_id(f"{APPROVAL_ID}.1.r7", APPROVAL_ID) == blocks.BlockTarget(1, 7)
    assert blocks.parse_block_id(f"{APPROVAL_ID}.all.r7", APPROVAL_ID) == blocks.BlockTarget(
        None, 7
    )
    # a card from before per-call buttons: every call, no revision check
    assert blocks.parse_block_id("approval_actions", APPROVAL_ID) == blocks.BlockTarget(None, None)
    for forged in (f"{'f' * 24}.1.r7", f"{APPROVAL_ID}.x.r7", f"{APPROVAL_ID}.1", "", "home_x"):
        assert blocks.parse_block_id(forged, APPROVAL_ID) is None


def test_edit_metadata_round_trips_and_rejects_garbage() -> None:
    metadata = modals.edit_metadata(APPROVAL_ID, 2, 5)
    assert modals.parse_edit_metadata(metadata) == (APPROVAL_ID, 2, 5)
    for bad in ("", APPROVAL_ID, f"{APPROVAL_ID}:x:1", f"{APPROVAL_ID}:1:2:3", "zz:1:1"):
        assert modals.parse_edit_metadata(bad) is None
    assert modals.parse_deny_metadata(APPROVAL_ID) == (APPROVAL_ID, None)  # older modals
    assert modals.parse_deny_metadata(f"{APPROVAL_ID}:9999") is None
    assert modals.parse_deny_metadata("nope:1") is None


def test_the_thread_note_lists_each_decision_and_edits_side_by_side() -> None:
    req = request(editable("book", 0, '{"date": "2026-12-01"}'), editable("pay", 1))
    edit = Edit('{"date": "2026-12-02"}', {"date": "2026-12-02"}, "UA", 2.0)
    req = req.with_decisions(
        [
            CallDecision(Status.APPROVED, (Vote("UA", 2.0),), "UA", 2.0, edit=edit),
            CallDecision(Status.DENIED, (), "UB", 3.0, "Too much"),
        ]
    )
    text, note = thread_notes.decided_note(req)
    result = checked(note)
    shown = texts(result)
    assert ":pencil2: `book` approved by <@UA> with changed arguments" in shown
    assert ":no_entry: `pay` denied by <@UB>: Too much" in shown
    [fields] = [b["fields"] for b in result if b.get("fields")]
    assert "2026-12-01" in fields[0]["text"] and "2026-12-02" in fields[1]["text"]
