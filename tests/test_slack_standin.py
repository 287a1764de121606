"""Tests for the Slack Web API stand-in, driven through a real ``AsyncWebClient``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    DividerBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.standins.slack import RateLimits, SlackStandIn, new_trigger_id


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


@pytest.fixture
def client(slack: SlackStandIn) -> AsyncWebClient:
    return AsyncWebClient(token=slack.token, base_url=slack.api_url)


def card_blocks() -> list[SectionBlock | ActionsBlock]:
    return [
        SectionBlock(block_id="summary", text=MarkdownTextObject(text="*Deploy* to prod?")),
        ActionsBlock(
            block_id="decide",
            elements=[
                ButtonElement(text="Approve", action_id="approve", value="a1", style="primary"),
                ButtonElement(text="Deny", action_id="deny", value="a1", style="danger"),
            ],
        ),
    ]


async def test_urls_and_auth_test(slack: SlackStandIn, client: AsyncWebClient) -> None:
    assert slack.api_url.startswith("http://127.0.0.1:") and slack.api_url.endswith("/api/")
    assert slack.api_url == slack.url + "api/"
    resp = await client.auth_test()
    assert resp["user_id"] == "UBOT" == slack.bot_user_id
    assert resp["bot_id"] == "BBOT"
    assert resp["team_id"] == "T0TEAM" == slack.team_id
    assert slack.calls_to("auth.test") == [{}]


async def test_post_message_with_blocks(slack: SlackStandIn, client: AsyncWebClient) -> None:
    resp = await client.chat_postMessage(channel="C1", text="Deploy?", blocks=card_blocks())
    ts = resp["ts"]
    assert resp["channel"] == "C1"
    assert resp["message"]["user"] == "UBOT"
    assert resp["message"]["bot_id"] == "BBOT"
    [args] = slack.calls_to("chat.postMessage")
    assert args["channel"] == "C1"
    assert isinstance(args["blocks"], list)
    assert args["blocks"][0]["text"]["text"] == "*Deploy* to prod?"
    assert args["blocks"][1]["elements"][0]["action_id"] == "approve"
    assert slack.messages[("C1", ts)]["blocks"] == args["blocks"]
    assert slack.errors == []

    second = await client.chat_postMessage(channel="C1", text="again", thread_ts=ts)
    assert float(second["ts"]) > float(ts)
    assert second["message"]["thread_ts"] == ts


async def test_post_message_without_content_is_no_text(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    with pytest.raises(SlackApiError) as exc:
        await client.api_call("chat.postMessage", json={"channel": "C1"})
    assert exc.value.response["error"] == "no_text"
    assert slack.errors


async def test_too_many_blocks(slack: SlackStandIn, client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as exc:
        await client.chat_postMessage(channel="C1", text="t", blocks=[DividerBlock()] * 51)
    assert exc.value.response["error"] == "invalid_blocks"
    assert exc.value.response["errors"]
    assert any("51 blocks" in e for e in slack.errors)
    assert slack.messages == {}
    assert len(slack.calls) == 1


async def test_long_section_text_rejected(slack: SlackStandIn, client: AsyncWebClient) -> None:
    block = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    with pytest.raises(SlackApiError) as exc:
        await client.chat_postMessage(channel="C1", text="t", blocks=[block])
    assert exc.value.response["error"] == "invalid_blocks"
    assert any("3000" in e for e in slack.errors)


async def test_unknown_block_type_and_long_text(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    with pytest.raises(SlackApiError) as exc:
        await client.chat_postMessage(channel="C1", text="t", blocks=[{"type": "sectoin"}])
    assert exc.value.response["error"] == "invalid_blocks"
    with pytest.raises(SlackApiError) as exc:
        await client.chat_postMessage(channel="C1", text="x" * 40_001)
    assert exc.value.response["error"] == "msg_too_long"
    assert len(slack.errors) == 2


async def test_mass_mention_recorded_but_ok(slack: SlackStandIn, client: AsyncWebClient) -> None:
    await client.chat_postMessage(channel="C1", text="hey <!here> look")
    assert len(slack.errors) == 1 and "mass_mention" in slack.errors[0]
    await client.chat_postMessage(channel="C1", text="escaped &lt;!channel&gt; is fine")
    assert len(slack.errors) == 1


async def test_update_unknown_ts(slack: SlackStandIn, client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as exc:
        await client.chat_update(channel="C1", ts="1700000000.999999", text="x")
    assert exc.value.response["error"] == "message_not_found"


async def test_update_changes_message(slack: SlackStandIn, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="C1", text="Deploy?", blocks=card_blocks())
    key = ("C1", posted["ts"])
    done = [SectionBlock(text=MarkdownTextObject(text=":white_check_mark: Approved"))]
    resp = await client.chat_update(channel="C1", ts=posted["ts"], text="Approved", blocks=done)
    assert resp["ts"] == posted["ts"]
    message = slack.messages[key]
    assert message["text"] == "Approved"
    assert message["blocks"][0]["text"]["text"] == ":white_check_mark: Approved"
    assert len(message["blocks"]) == 1
    # Like Slack, omitted fields are kept.
    await client.chat_update(channel="C1", ts=posted["ts"], text="Approved by Alice")
    assert slack.messages[key]["blocks"] == message["blocks"]
    assert slack.messages[key]["text"] == "Approved by Alice"
    assert slack.errors == []


async def test_permalink_ephemeral_and_reactions(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    parent = await client.chat_postMessage(channel="C1", text="parent")
    reply = await client.chat_postMessage(channel="C1", text="reply", thread_ts=parent["ts"])
    link = await client.chat_getPermalink(channel="C1", message_ts=parent["ts"])
    assert link["permalink"] == (
        f"https://example.slack.com/archives/C1/p{parent['ts'].replace('.', '')}"
    )
    link = await client.chat_getPermalink(channel="C1", message_ts=reply["ts"])
    assert f"?thread_ts={parent['ts']}" in link["permalink"]

    eph = await client.chat_postEphemeral(channel="C1", user="UALICE", text="only you")
    assert eph["message_ts"]

    await client.reactions_add(channel="C1", name="eyes", timestamp=parent["ts"])
    assert slack.messages[("C1", parent["ts"])]["reactions"][0]["name"] == "eyes"
    with pytest.raises(SlackApiError) as exc:
        await client.reactions_add(channel="C1", name="eyes", timestamp=parent["ts"])
    assert exc.value.response["error"] == "already_reacted"
    await client.reactions_remove(channel="C1", name="eyes", timestamp=parent["ts"])
    assert slack.messages[("C1", parent["ts"])]["reactions"] == []


async def test_conversations_members_pagination(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    slack.members["C1"] = ["U1", "U2", "U3", "U4", "U5"]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        resp = await client.conversations_members(channel="C1", limit=2, cursor=cursor)
        pages += 1
        seen.extend(resp["members"])
        cursor = resp["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert seen == slack.members["C1"]
    assert pages == 3
    with pytest.raises(SlackApiError) as exc:
        await client.conversations_members(channel="CNOPE")
    assert exc.value.response["error"] == "channel_not_found"


async def test_users_usergroups_and_conversations_info(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    slack.users["UALICE"] = {"real_name": "Alice", "profile": {"display_name": "alice"}}
    slack.usergroups["S1"] = ["UALICE", "UBOB"]
    alice = (await client.users_info(user="UALICE"))["user"]
    assert alice["real_name"] == "Alice"
    assert alice["profile"]["display_name"] == "alice"
    assert alice["is_bot"] is False
    default = (await client.users_info(user="UBOB"))["user"]
    assert default["id"] == "UBOB" and "real_name" in default["profile"]
    with pytest.raises(SlackApiError) as exc:
        await client.users_info(user="nobody")
    assert exc.value.response["error"] == "user_not_found"
    assert (await client.usergroups_users_list(usergroup="S1"))["users"] == ["UALICE", "UBOB"]
    assert (await client.conversations_info(channel="C1"))["channel"]["id"] == "C1"


async def test_views(slack: SlackStandIn, client: AsyncWebClient) -> None:
    view = {
        "type": "modal",
        "callback_id": "deny_reason",
        "title": {"type": "plain_text", "text": "Deny"},
        "submit": {"type": "plain_text", "text": "Send"},
        "blocks": [
            {
                "type": "input",
                "block_id": "reason",
                "label": {"type": "plain_text", "text": "Reason"},
                "element": {"type": "plain_text_input", "action_id": "value"},
            }
        ],
    }
    opened = await client.views_open(trigger_id=new_trigger_id(), view=view)
    view_id = opened["view"]["id"]
    assert view_id.startswith("V")
    assert slack.calls_to("views.open")[0]["view"]["callback_id"] == "deny_reason"
    updated = await client.views_update(view_id=view_id, view=view)
    assert updated["view"]["id"] == view_id
    home = {
        "type": "home",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}],
    }
    published = await client.views_publish(user_id="UALICE", view=home)
    assert published["view"]["id"].startswith("V")
    assert slack.errors == []


async def test_invalid_view_rejected(slack: SlackStandIn, client: AsyncWebClient) -> None:
    bad = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "A title that is far too long for Slack"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}],
    }
    with pytest.raises(SlackApiError) as exc:
        await client.views_open(trigger_id=new_trigger_id(), view=bad)
    assert exc.value.response["error"] == "invalid_arguments"
    assert any("title" in e for e in slack.errors)
    assert slack.views == {}


async def test_rate_limit_retry(slack: SlackStandIn) -> None:
    client = AsyncWebClient(
        token=slack.token,
        base_url=slack.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    slack.fail_next("chat.postMessage", status=429, retry_after=1)
    resp = await client.chat_postMessage(channel="C1", text="hello")
    assert resp["ok"]
    calls = [c for c in slack.calls if c.method == "chat.postMessage"]
    assert [c.status for c in calls] == [429, 200]
    assert len(slack.messages) == 1


async def test_fail_next_error_changes_nothing(slack: SlackStandIn, client: AsyncWebClient) -> None:
    slack.fail_next("chat.postMessage", error="channel_not_found", count=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as exc:
            await client.chat_postMessage(channel="C1", text="hello")
        assert exc.value.response["error"] == "channel_not_found"
    slack.fail_next("chat.postMessage", status=500)
    with pytest.raises(SlackApiError) as exc:
        await client.chat_postMessage(channel="C1", text="hello")
    assert exc.value.response.status_code == 500
    assert slack.messages == {}
    await client.chat_postMessage(channel="C1", text="hello")
    assert len(slack.messages) == 1
    assert slack.count("chat.postMessage") == 4


async def test_invalid_token(slack: SlackStandIn) -> None:
    bad = AsyncWebClient(token="xoxb-wrong", base_url=slack.api_url)
    with pytest.raises(SlackApiError) as exc:
        await bad.auth_test()
    assert exc.value.response["error"] == "invalid_auth"
    missing = AsyncWebClient(base_url=slack.api_url)
    with pytest.raises(SlackApiError) as exc:
        await missing.auth_test()
    assert exc.value.response["error"] == "not_authed"


async def test_unknown_method(slack: SlackStandIn, client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as exc:
        await client.api_call("chat.scheduleMessage", json={"channel": "C1", "text": "x"})
    assert exc.value.response["error"] == "unknown_method"
    assert slack.calls_to("chat.scheduleMessage") == [{"channel": "C1", "text": "x"}]
    assert any("unknown_method" in e for e in slack.errors)


async def test_wait_for_background_call(slack: SlackStandIn, client: AsyncWebClient) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        await client.chat_postMessage(channel="C1", text="first")
        await client.chat_postMessage(channel="C2", text="second")

    task = asyncio.create_task(later())
    args = await slack.wait_for("chat.postMessage", lambda a: a["channel"] == "C2", timeout=5)
    assert args["text"] == "second"
    await task
    # Already-recorded calls are found without waiting.
    assert (await slack.wait_for("chat.postMessage", timeout=0.1))["text"] == "first"
    assert slack.count("chat.postMessage", lambda a: a["channel"] == "C1") == 1


async def test_wait_for_timeout_lists_calls(slack: SlackStandIn, client: AsyncWebClient) -> None:
    await client.auth_test()
    with pytest.raises(AssertionError, match="auth.test"):
        await slack.wait_for("chat.update", timeout=0.1)


async def test_form_encoded_call_is_decoded(slack: SlackStandIn) -> None:
    # A form-encoded client (token as a POST field, blocks as a JSON string).
    client = AsyncWebClient(base_url=slack.api_url)
    blocks = '[{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]'
    resp = await client.api_call(
        "chat.postMessage",
        data={"token": slack.token, "channel": "C1", "text": "hi", "blocks": blocks},
    )
    [args] = slack.calls_to("chat.postMessage")
    assert "token" not in args
    assert args["blocks"] == [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]
    assert slack.messages[("C1", resp["ts"])]["blocks"] == args["blocks"]
    assert slack.errors == []


async def test_mass_mention_in_blocks(slack: SlackStandIn, client: AsyncWebClient) -> None:
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "<!channel|channel> deploy"}},
        {
            "type": "rich_text",
            "elements": [
                {"type": "rich_text_section", "elements": [{"type": "broadcast", "range": "here"}]}
            ],
        },
    ]
    await client.chat_postMessage(channel="C1", text="deploy", blocks=blocks)
    assert len(slack.errors) == 2
    assert all("mass_mention" in e for e in slack.errors)


async def test_usergroups_list(slack: SlackStandIn, client: AsyncWebClient) -> None:
    slack.usergroups = {"S0MANAGERS": ["UALICE", "UBOB"], "S0OPS": []}
    slack.usergroup_handles["S0MANAGERS"] = "managers"
    resp = await client.usergroups_list()
    assert resp["usergroups"] == [
        {
            "id": "S0MANAGERS",
            "team_id": "T0TEAM",
            "handle": "managers",
            "name": "managers",
            "is_usergroup": True,
            "date_delete": 0,
            "user_count": 2,
        },
        {
            "id": "S0OPS",
            "team_id": "T0TEAM",
            "handle": "s0ops",
            "name": "s0ops",
            "is_usergroup": True,
            "date_delete": 0,
            "user_count": 0,
        },
    ]
    with_users = await client.usergroups_list(include_users=True, include_disabled=True)
    assert [g["users"] for g in with_users["usergroups"]] == [["UALICE", "UBOB"], []]
    without = await client.usergroups_list(include_users=False, team_id="T0TEAM")
    assert all("users" not in g for g in without["usergroups"])
    # POST works too, like the other read methods.
    posted = await client.api_call("usergroups.list", json={"include_users": True})
    assert posted["usergroups"][0]["users"] == ["UALICE", "UBOB"]
    assert slack.calls_to("usergroups.list")[1]["include_users"] == "1"
    assert slack.errors == []


async def post_json(url: str, body: Any) -> tuple[int, str, str]:
    """POST ``body`` as JSON; returns (status, content type, text)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body) as response,
    ):
        return response.status, response.content_type, await response.text()


async def test_response_url_accepted_and_recorded(slack: SlackStandIn) -> None:
    url = slack.new_response_url()
    assert url.startswith(slack.url + "response/")
    assert slack.new_response_url() != url
    body = {"text": "Approved", "response_type": "in_channel", "replace_original": True}
    assert await post_json(url, body) == (200, "text/plain", "ok")
    token = url.rsplit("/", 1)[1]
    assert slack.responses == [{**body, "response_token": token}]
    assert await slack.wait_for_response(lambda r: r["text"] == "Approved", timeout=0.1) == {
        **body,
        "response_token": token,
    }
    # Deleting the original needs no text, like Slack.
    assert await post_json(url, {"delete_original": True}) == (200, "text/plain", "ok")
    assert len(slack.responses) == 2
    assert slack.errors == []


async def test_response_url_invalid_blocks_and_no_text(slack: SlackStandIn) -> None:
    url = slack.new_response_url()
    too_many = {"text": "t", "blocks": [{"type": "divider"}] * 51}
    assert await post_json(url, too_many) == (400, "text/plain", "invalid_blocks")
    assert any("response_url: invalid_blocks" in e and "51 blocks" in e for e in slack.errors)
    long_section = {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]}
    assert (await post_json(url, long_section))[0] == 400
    assert any("3000" in e for e in slack.errors)
    assert await post_json(url, {"response_type": "ephemeral"}) == (400, "text/plain", "no_text")
    assert slack.errors[-1] == "response_url: no_text: neither text nor blocks/attachments given"
    # Rejected posts are recorded too, like failed calls.
    assert len(slack.responses) == 3
    errors = len(slack.errors)
    assert (await post_json(url, ["not", "an", "object"]))[2] == "invalid_payload"
    assert len(slack.errors) == errors + 1 and len(slack.responses) == 3


async def test_response_url_mass_mention_recorded_but_ok(slack: SlackStandIn) -> None:
    url = slack.new_response_url()
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "<!channel> approved"}}]
    assert (await post_json(url, {"text": "approved", "blocks": blocks}))[0] == 200
    assert len(slack.errors) == 1
    assert slack.errors[0].startswith("response_url: mass_mention")


async def test_response_url_unknown_token(slack: SlackStandIn) -> None:
    slack.new_response_url()
    assert await post_json(slack.url + "response/made-up", {"text": "hi"}) == (
        404,
        "text/plain",
        "no_such_url",
    )
    assert slack.responses == []
    assert len(slack.errors) == 1 and "no_such_url" in slack.errors[0]
    with pytest.raises(AssertionError, match="no_such_url"):
        await slack.wait_for_response(timeout=0.1)


async def test_response_url_with_webhook_client(slack: SlackStandIn) -> None:
    webhook = AsyncWebhookClient(slack.new_response_url())

    async def later() -> None:
        await asyncio.sleep(0.05)
        resp = await webhook.send(text="first", response_type="ephemeral")
        assert (resp.status_code, resp.body) == (200, "ok")
        resp = await webhook.send(
            text="Deploy?", blocks=card_blocks(), response_type="in_channel", replace_original=True
        )
        assert (resp.status_code, resp.body) == (200, "ok")

    task = asyncio.create_task(later())
    found = await slack.wait_for_response(lambda r: r["response_type"] == "in_channel")
    await task
    assert found["replace_original"] is True
    assert found["blocks"][1]["elements"][0]["action_id"] == "approve"
    assert [r["text"] for r in slack.responses] == ["first", "Deploy?"]
    assert slack.errors == []

    resp = await webhook.send(blocks=[{"type": "sectoin"}])
    assert (resp.status_code, resp.body) == (400, "invalid_blocks")
    assert len(slack.errors) == 1


async def test_response_url_fault(slack: SlackStandIn) -> None:
    url = slack.new_response_url()
    slack.fail_next("response_url", status=500)
    assert await post_json(url, {"text": "hi"}) == (500, "text/plain", "fatal_error")
    assert await post_json(url, {"text": "hi"}) == (200, "text/plain", "ok")
    assert len(slack.responses) == 2
    assert slack.errors == []


async def test_wait_for_response_timeout_lists_posts(slack: SlackStandIn) -> None:
    await post_json(slack.new_response_url(), {"text": "something else"})
    with pytest.raises(AssertionError, match="something else"):
        await slack.wait_for_response(lambda r: r["text"] == "wanted", timeout=0.1)


# -- what Slack refuses: old triggers, bursts, too much text ---------------------------------
DENY_VIEW = {
    "type": "modal",
    "title": {"type": "plain_text", "text": "Deny"},
    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Why?"}}],
}


async def test_a_trigger_older_than_three_seconds_opens_nothing(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    for trigger_id, error in [
        (new_trigger_id(time.time() - 3.5), "expired_trigger_id"),
        ("123.456", "invalid_trigger_id"),
        ("1.trigger", "invalid_trigger_id"),
    ]:
        with pytest.raises(SlackApiError) as refused:
            await client.views_open(trigger_id=trigger_id, view=DENY_VIEW)
        assert refused.value.response["error"] == error
    assert slack.views == {}

    opened = await client.views_open(trigger_id=new_trigger_id(time.time() - 2.5), view=DENY_VIEW)
    assert opened["view"]["id"] in slack.views


async def test_rate_limits_answer_429_with_retry_after(slack: SlackStandIn) -> None:
    slack.rate_limits = RateLimits()
    post = {"channel": "C1", "text": "hi"}
    answers = [await raw_call(slack, "chat.postMessage", post) for _ in range(4)]
    assert answers == [(200, "")] * 3 + [(429, "1")]  # a burst of three, then one a second
    assert await raw_call(slack, "chat.postMessage", {**post, "channel": "C2"}) == (200, "")
    refused = next(c for c in slack.calls if c.status == 429)
    assert refused.response == {"ok": False, "error": "ratelimited"}
    assert len(slack.messages) == 4  # the refused post changed nothing

    # usergroups.list is Tier 2: twenty a minute
    statuses = [(await raw_call(slack, "usergroups.list", {}))[0] for _ in range(21)]
    assert statuses == [200] * 20 + [429]


async def test_a_message_with_too_much_block_text_is_refused(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 2900}}
    await client.chat_postMessage(channel="C1", text="fits", blocks=[section] * 4)
    with pytest.raises(SlackApiError) as refused:
        await client.chat_postMessage(channel="C1", text="too long", blocks=[section] * 5)
    assert refused.value.response["error"] == "msg_blocks_too_long"
    assert len(slack.messages) == 1
    assert any("msg_blocks_too_long" in e for e in slack.errors)
    slack.errors.clear()


async def raw_call(slack: SlackStandIn, method: str, args: dict[str, Any]) -> tuple[int, str]:
    """One call without a client's retries: the status and the Retry-After header."""
    headers = {"Authorization": f"Bearer {slack.token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(slack.api_url + method, json=args, headers=headers) as response,
    ):
        return response.status, response.headers.get("Retry-After", "")


# -- Slack's AI-app methods (tests/standins/slack_ai.py) ----------------------------------------
async def test_a_stream_in_a_dm_reads_as_its_tasks_and_text(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    stream = await client.chat_stream(channel="D0DM", thread_ts="1.0", buffer_size=10)
    await stream.append(
        chunks=[
            {"type": "task_update", "id": "t1", "title": "get_weather", "status": "in_progress"}
        ]
    )
    await stream.append(markdown_text="Sunny ")
    await stream.stop(
        markdown_text="in Paris.",
        chunks=[{"type": "task_update", "id": "t1", "title": "get_weather", "status": "complete"}],
    )
    [reply] = slack.ai.thread("D0DM", "1.0")
    assert reply.text == "Sunny in Paris." and not reply.streaming
    assert reply.task_list() == [
        {"type": "task_update", "id": "t1", "title": "get_weather", "status": "complete"}
    ]
    with pytest.raises(SlackApiError) as exc:  # stopped: nothing more
        await client.chat_appendStream(channel="D0DM", ts=reply.ts, markdown_text="more")
    assert exc.value.response["error"] == "message_not_in_streaming_state"
    assert slack.errors == []


async def test_a_stream_in_a_channel_needs_its_recipient_and_a_thread(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    with pytest.raises(SlackApiError) as exc:
        await client.chat_startStream(channel="C0GENERAL", thread_ts="1.0")
    assert exc.value.response["error"] == "invalid_arguments"
    with pytest.raises(SlackApiError) as exc:
        await client.api_call("chat.startStream", json={"channel": "D0DM"})
    assert exc.value.response["error"] == "invalid_arguments"
    assert len(slack.errors) == 3  # the bot would have sent something Slack refuses
    slack.errors.clear()
    started = await client.chat_startStream(
        channel="C0GENERAL", thread_ts="1.0", recipient_team_id="T0TEAM", recipient_user_id="UREQ"
    )
    assert slack.ai.replies[("C0GENERAL", started["ts"])].recipient == ("T0TEAM", "UREQ")


@pytest.mark.parametrize(
    "chunk",
    [
        {"type": "task_update", "id": "t1", "title": "x", "status": "done"},
        {"type": "task_update", "id": "t1", "title": "x", "status": "complete", "colour": "red"},
        {"type": "sparkles", "text": "hi"},
        {"type": "markdown_text", "text": "x" * 12_001},
    ],
)
async def test_chunks_slack_would_refuse_are_refused(
    slack: SlackStandIn, client: AsyncWebClient, chunk: dict[str, Any]
) -> None:
    with pytest.raises(SlackApiError) as exc:
        await client.chat_startStream(channel="D0DM", thread_ts="1.0", chunks=[chunk])
    assert exc.value.response["error"] == "invalid_chunks"
    assert slack.errors and slack.ai.replies == {}
    slack.errors.clear()


async def test_a_channel_wide_mention_in_a_task_is_an_error_of_the_bot(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    task = {"type": "task_update", "id": "t", "title": "<!here> x", "status": "pending"}
    await client.chat_startStream(channel="D0DM", thread_ts="1.0", chunks=[task])
    assert [e for e in slack.errors if "mass_mention" in e]
    slack.errors.clear()


@pytest.mark.parametrize("error", ["not_allowed_token_type", "feature_not_enabled"])
async def test_a_method_can_be_unavailable_in_the_workspace(
    slack: SlackStandIn, client: AsyncWebClient, error: str
) -> None:
    slack.ai.unavailable["assistant.threads.setStatus"] = error
    with pytest.raises(SlackApiError) as exc:
        await client.assistant_threads_setStatus(
            channel_id="D0DM", thread_ts="1.0", status="is thinking…"
        )
    assert exc.value.response["error"] == error
    assert slack.errors == []  # the bot may well try: Slack's answer tells it


async def test_status_title_and_prompts_are_recorded(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    await client.assistant_threads_setStatus(channel_id="D0DM", thread_ts="1.0", status="is x…")
    await client.assistant_threads_setTitle(channel_id="D0DM", thread_ts="1.0", title="Trip")
    await client.assistant_threads_setSuggestedPrompts(
        channel_id="D0DM", thread_ts="1.0", prompts=[{"title": "A", "message": "B"}]
    )
    assert slack.ai.statuses[("D0DM", "1.0")] == ["is x…"]
    assert slack.ai.titles[("D0DM", "1.0")] == "Trip"
    assert slack.ai.prompts[("D0DM", "1.0")]["prompts"] == [{"title": "A", "message": "B"}]
    with pytest.raises(SlackApiError):
        await client.assistant_threads_setSuggestedPrompts(
            channel_id="D0DM", thread_ts="1.0", prompts=[{"title": "A"}] * 5
        )
    slack.errors.clear()
