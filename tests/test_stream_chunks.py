"""The streamed reply's chunks: steps as task cards and the answer as Markdown, inert and
within limits, validated by slack_sdk's models; and bot.yml's assistant section. Pure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from slack_sdk.models.messages.chunk import Chunk
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.config import load_config
from bot.core.steps import Step, StepState, ran
from bot.errors import ConfigError
from bot.slack import stream_chunks
from bot.slack.stream_chunks import MARKDOWN_LIMIT, ZWSP, inert, markdown_pieces, task_chunk
from tests.standins.slack import SlackStandIn


def test_untrusted_text_cannot_mention_or_disguise_a_link() -> None:
    text = inert("Hi <!channel> and @here, <@U123>, see [docs](https://evil.example/x)")
    assert "<!channel>" not in text and "<@U123>" not in text
    assert "@here" not in text and f"@{ZWSP}here" in text
    assert "docs (https://evil.example/x)" in text


def test_a_task_names_who_decided_where_and_under_which_rule() -> None:
    step = Step(
        "call-1",
        "book_flight",
        StepState.ERROR,
        "Denied by the policy",
        rule="rule 3 (no <!here> flights)",
        reason="over budget",
    )
    chunk = task_chunk(step).to_dict()
    assert chunk["type"] == "task_update" and chunk["status"] == "error"
    expected = f"Denied by the policy under rule 3 (no <{ZWSP}!here> flights): over budget"
    assert chunk["details"] == expected
    assert "sources" not in chunk
    approved = Step("c", "t", StepState.COMPLETE, "Approved", by_user="UBOSS", then="done")
    assert task_chunk(approved).to_dict()["details"] == "Approved by <@UBOSS>; done"


def test_a_failed_tool_is_an_error_task_with_a_short_output() -> None:
    step = ran("call-2", "get_weather", "Error while executing get_weather: " + "x" * 5000)
    chunk = task_chunk(step).to_dict()
    assert chunk["status"] == "error"
    assert len(chunk["output"]) <= stream_chunks.OUTPUT_LIMIT
    assert isinstance(Chunk.parse(chunk), type(task_chunk(step)))


def test_only_https_card_links_become_sources() -> None:
    linked = Step("c", "t", StepState.PENDING, "Waiting", link="https://x.slack.com/archives/C/p1")
    assert task_chunk(linked).to_dict()["sources"] == [
        {"type": "url", "url": "https://x.slack.com/archives/C/p1", "text": "Approval request"}
    ]
    odd = Step("c", "t", StepState.PENDING, "Waiting", link="javascript:alert(1)")
    assert "sources" not in task_chunk(odd).to_dict()


def test_a_long_answer_is_cut_at_line_ends_within_the_limit() -> None:
    answer = "\n".join(f"line {i} " + "y" * 90 for i in range(400))
    pieces = markdown_pieces(answer)
    assert len(pieces) > 1 and all(len(p) <= MARKDOWN_LIMIT for p in pieces)
    assert "".join(pieces) == answer
    assert all(p.startswith("\n") for p in pieces[1:])


def test_the_assistant_section_is_checked_like_the_rest_of_bot_yml(tmp_path: Path) -> None:
    path = tmp_path / "bot.yml"
    path.write_text(
        "model: m\n"
        "approvals: {channel: C0APPROVALS}\n"
        "assistant:\n"
        "  native: sometimes\n"
        "  suggested_prompts:\n"
        "    - {title: Hi}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = "\n".join(caught.value.problems)
    assert "assistant.native (line 4)" in problems
    assert "assistant.suggested_prompts.0.message" in problems
    path.write_text("model: m\napprovals: {channel: C0APPROVALS}\n")
    defaults = load_config(path).assistant
    assert (defaults.native, defaults.task_display) == ("assistant_threads", "plan")
    assert defaults.thread_approvals == "when_requester_decides"


async def test_the_readmes_streamed_reply_is_one_slack_takes() -> None:
    """The JSON the README shows of one streamed reply, sent as it is (its start, then its
    stop on the ts Slack gave): the stand-in parses every chunk with slack_sdk's models and
    refuses what Slack refuses; a person reads the task done, then the answer."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## The Slack AI app") :]
    start_json, stop_json = (
        json.loads(part.split("\n```", 1)[0]) for part in section.split("```json\n")[1:3]
    )
    async with SlackStandIn() as slack:
        client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
        started = await client.api_call("chat.startStream", json=start_json)
        await client.api_call("chat.stopStream", json={**stop_json, "ts": started["ts"]})
        assert slack.errors == []
        [reply] = slack.ai.thread(start_json["channel"], start_json["thread_ts"])
    [task] = reply.task_list()
    assert (task["title"], task["status"]) == ("book_flight", "complete")
    assert reply.text.startswith("Booked: **FL-1**")
