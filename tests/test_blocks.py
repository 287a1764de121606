"""Block Kit builders: what approvers and requesters see, within Slack's limits.

Every builder's output goes through ``slack_sdk``'s own ``to_dict()`` validation and is then
checked against the limits Slack enforces: 50 blocks a message, 100 a modal, 3000 characters
a section text, 150 a header.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.approval import (
    ApprovalRequest,
    Decision,
    MessageRef,
    Requester,
    Resume,
    Status,
    ThreadRef,
    ToolCall,
)
from bot.policy import Approvers, Gate
from bot.slack import blocks
from tests.conftest import all_text

APPROVAL_ID = "0123456789abcdef01234567"
HOSTILE = "<!channel> <@U1> <https://evil|bank> & @here"
BIG_ARGUMENTS = 100_000


def request(*calls: ToolCall, text: str = "please book it", **changes: Any) -> ApprovalRequest:
    return ApprovalRequest(
        id=APPROVAL_ID,
        thread=ThreadRef("T1", "D1", "1700000000.000100"),
        requester=Requester("UREQ", text, "https://example.slack.com/archives/D1/p1"),
        conversation_id="conv_1",
        calls=calls,
        deferral={},
        approvals_channel="C0APPROVALS",
        gate=Gate((Approvers(channel="C0APPROVALS"),)),
        created_at=1_700_000_000.0,
        **changes,
    )


def call(arguments: Any, name: str = "book_flight", index: int = 0) -> ToolCall:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ToolCall(f"call_{index}", name, text)


def calls(count: int, arguments: Any) -> list[ToolCall]:
    return [call(arguments, f"tool_{i}", i) for i in range(count)]


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
        ("arguments_modal", blocks.arguments_modal(req)),
        ("deny_modal", blocks.deny_modal(req)),
        ("awaiting", [blocks.section(blocks.awaiting_text(req, "https://x.slack.com/p1"))]),
        ("resume_failed", blocks.resume_failed_blocks(req, "The model service failed.")),
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
    for message_blocks in blocks.answer_messages("An answer."):
        dicts(message_blocks)
    dicts(blocks.failure_blocks("The model service (Mistral) failed (HTTP 503).", "turn_1"))
    dicts(blocks.failure_blocks("Slack failed.", None))


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
    retry = buttons(dicts(blocks.resume_failed_blocks(req, "Slack failed.")))["Retry"]
    assert retry["value"] == APPROVAL_ID


def test_running_resume_has_no_buttons() -> None:
    result = dicts(blocks.approval_card(decided(Status.APPROVED, resume=Resume.RUNNING)))
    assert buttons(result) == {}
    assert "Resuming the conversation" in texts(result)


@pytest.mark.parametrize(
    "builder", [blocks.approval_card, blocks.arguments_modal], ids=["card", "arguments modal"]
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
        texts(dicts(blocks.deny_modal(req))),
        texts(dicts(blocks.arguments_modal(req))),
        blocks.awaiting_text(req, None),
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
    for result in (dicts(blocks.approval_card(req)), dicts(blocks.arguments_modal(req))):
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
    for result in (dicts(blocks.approval_card(req)), dicts(blocks.arguments_modal(req))):
        [section] = argument_sections(result)
        assert len(code_contents(section)) == 1
        assert "<!channel>" not in section


@pytest.mark.parametrize("fence", ["````", "``````"])
def test_a_long_backtick_run_cannot_close_the_code_block(fence: str) -> None:
    req = request(call({"note": f"a{fence}b"}))
    for result in (dicts(blocks.approval_card(req)), dicts(blocks.arguments_modal(req))):
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
    assert "…and 50 more calls." in text
    assert "Show full arguments" in buttons(result)
    assert len(result[0]["text"]["text"]) <= 150
    assert "and 57 more" in result[0]["text"]["text"]


def test_arguments_modal_shows_100_kb_in_full() -> None:
    arguments = {"body": "a" * BIG_ARGUMENTS}
    result = dicts(blocks.arguments_modal(request(call(arguments))))
    shown = "".join("".join(code_contents(text)) for text in argument_sections(result))
    assert json.loads(shown) == arguments
    assert "too long" not in texts(result)


def test_arguments_modal_for_300_kb_is_truncated_and_says_so() -> None:
    result = dicts(blocks.arguments_modal(request(call({"body": "q" * 300_000}))))
    assert len(result) <= blocks.MAX_MODAL_BLOCKS
    assert "_The arguments are too long to show in full here._" == result[-1]["text"]["text"]


def test_arguments_modal_for_many_calls_is_truncated_and_says_so() -> None:
    result = dicts(blocks.arguments_modal(request(*calls(60, {"x": "y" * 10_000}))))
    assert result[0]["text"]["text"] == "*Tool:* `tool_0`"
    assert "too long to show in full" in result[-1]["text"]["text"]


def test_deny_modal_carries_the_id() -> None:
    view = blocks.deny_modal(request(call({}, name="send_note"), text=HOSTILE))
    result = dicts(view)
    data = view.to_dict()
    assert data["private_metadata"] == APPROVAL_ID
    assert data["callback_id"] == blocks.DENY_MODAL
    assert "`send_note`" in texts(result)
    [field] = [block for block in result if block["type"] == "input"]
    assert field["block_id"] == blocks.DENY_REASON_BLOCK
    assert field["element"]["action_id"] == blocks.DENY_REASON_INPUT
    assert field["optional"] is True


def test_a_40000_character_answer_is_split_within_limits() -> None:
    answer = "x" * 40_000
    messages = blocks.answer_messages(answer)
    assert all(len(dicts(message)) <= blocks.MAX_MESSAGE_BLOCKS for message in messages)
    shown = "".join(block.to_dict()["text"]["text"] for message in messages for block in message)
    assert shown == answer


def test_a_long_paragraphed_answer_is_split_and_keeps_every_paragraph() -> None:
    answer = "\n\n".join(f"Paragraph {i}: " + "word " * 60 for i in range(150))
    assert len(answer) >= 40_000
    messages = blocks.answer_messages(answer)
    text = "\n".join(texts(dicts(message)) for message in messages)
    assert all(f"Paragraph {i}:" in text for i in range(150))


def test_an_answer_that_escaping_grows_is_spread_over_several_messages() -> None:
    answer = "&" * 200_000  # 1,000,000 characters once escaped
    messages = blocks.answer_messages(answer)
    assert len(messages) > 1
    for message in messages:
        assert len(dicts(message)) <= blocks.MAX_MESSAGE_BLOCKS
    text = "".join(texts(dicts(message)) for message in messages)
    assert text.count("&amp;") == 200_000


def test_an_answer_cannot_mention_anyone() -> None:
    [message] = blocks.answer_messages(f"Done. {HOSTILE}")
    text = texts(dicts(message))
    for raw in ("<!channel>", "<@U1>", "<https://evil|bank>", "@here"):
        assert raw not in text


def test_an_empty_answer_still_says_something() -> None:
    [message] = blocks.answer_messages("")
    assert "no text" in texts(dicts(message))


def test_failure_offers_retry_only_with_a_turn() -> None:
    with_turn = dicts(blocks.failure_blocks("Slack <!here> failed.", "turn_1"))
    assert buttons(with_turn)["Retry"]["value"] == "turn_1"
    assert "&lt;!here&gt;" in texts(with_turn)
    without = dicts(blocks.failure_blocks("Slack failed.", None))
    assert buttons(without) == {}
    assert "again" in texts(without)


def test_awaiting_text_links_the_card() -> None:
    req = request(call({}), card=MessageRef("C0APPROVALS", "1.2"))
    text = blocks.awaiting_text(req, "https://x.slack.com/archives/C0APPROVALS/p12")
    assert "`book_flight`" in text
    assert "<#C0APPROVALS>" in text
    assert "<https://x.slack.com/archives/C0APPROVALS/p12|view the request>" in text
