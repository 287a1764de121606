"""Block Kit of the admin surface (``/approvals`` replies and the App Home): what people see,
within Slack's limits (50 blocks a message, 100 a home tab, 3000 characters a section).

Every builder's output goes through :func:`tests.test_blocks.checked`: ``slack_sdk``'s own
``to_dict()`` validation, then Slack's limits, unique ids, and no broadcast mention.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest
from slack_sdk.models.views import View

from bot.core.approval import (
    ApprovalRequest,
    Decision,
    Requester,
    Resume,
    Status,
    ThreadRef,
    ToolCall,
)
from bot.core.config import BotConfig
from bot.core.policy import Approvers, Effect, Gate, Grant, Override, Policy
from bot.flow.console import Page
from bot.slack import blocks, console_blocks
from tests.approvals import build
from tests.test_blocks import checked, texts

HOSTILE = "<!channel> <@U123> <https://evil|bank>"
INERT = "&lt;!channel&gt; &lt;@U123&gt; &lt;https://evil|bank&gt;"
CREATED = 1_700_000_000.0


def approval(
    n: int,
    *,
    requester: str = "UREQ",
    card_link: str | None = None,
    tools: tuple[str, ...] = ("book_flight",),
    **changes: Any,
) -> ApprovalRequest:
    gate = changes.pop("gate", Gate((Approvers(channel="C0APPROVALS"),), grant_durations_s=(3600,)))
    status = changes.pop("status", Status.PENDING)
    decision = changes.pop("decision", None)
    request = build(
        gate=gate,
        status=status,
        decision=decision,
        id=f"{n:024x}",
        thread=ThreadRef("T1", "D1", f"1700000000.{n:06d}"),
        requester=Requester(requester, f"request {n}"),
        conversation_id=f"conv_{n}",
        calls=tuple(ToolCall(f"call_{i}", name, "{}") for i, name in enumerate(tools)),
        deferral={},
        approvals_channel="C0APPROVALS",
        created_at=CREATED + n,
        card_link=card_link,
    )
    return replace(request, **changes)


def link(n: int) -> str:
    return f"https://x.slack.com/archives/C0APPROVALS/p{n}"


def decided(
    n: int, status: Status, by: str, resume: Resume = Resume.DONE, **changes: Any
) -> ApprovalRequest:
    return approval(
        n,
        status=status,
        decision=Decision(status, by, CREATED + n + 60),
        resume=resume,
        **changes,
    )


def home(view: View) -> list[dict[str, Any]]:
    assert view.to_dict()["type"] == "home"
    return checked(view, limit=console_blocks.MAX_HOME_BLOCKS)


# -- help and long text ----------------------------------------------------------------------
def test_help_fits_and_names_every_command() -> None:
    text = texts(checked(console_blocks.text_blocks(console_blocks.HELP)))
    for command in ("pending", "policy", "grants", "require", "reset", "revoke"):
        assert f"`/approvals {command}" in text
    assert "`allow <tool>`" in text


def test_long_text_is_cut_to_one_message_and_says_so() -> None:
    result = checked(console_blocks.text_blocks("word " * 200_000))
    assert len(result) == blocks.MAX_MESSAGE_BLOCKS
    assert result[-1]["text"]["text"] == "_…cut to fit one message._"


# -- /approvals pending ----------------------------------------------------------------------
def test_nothing_pending() -> None:
    result = checked(console_blocks.pending_blocks(Page([], 0)))
    assert texts(result) == ":white_check_mark: Nothing is waiting for a decision."


def test_one_pending_request_with_its_card_link() -> None:
    request = approval(1, card_link=link(1), tools=("book_flight", "send_note"))
    text = texts(checked(console_blocks.pending_blocks(Page([request], 1))))
    assert text.startswith("*1 request waiting* (oldest first)")
    assert "• `book_flight`, `send_note` for <@UREQ>, asked <!date^1700000001^" in text
    assert f" · <{link(1)}|view>" in text
    assert "more." not in text


def test_a_pending_request_without_a_card_has_no_link() -> None:
    text = texts(checked(console_blocks.pending_blocks(Page([approval(1)], 1))))
    assert "|view>" not in text
    assert "for <@UREQ>, asked <!date^1700000001^" in text


def test_twenty_of_ten_thousand_pending_requests() -> None:
    requests = [approval(n, card_link=link(n) if n % 2 else None) for n in range(20)]
    result = checked(console_blocks.pending_blocks(Page(requests, 10_000)))
    text = texts(result)
    assert text.startswith("*10000 requests waiting* (oldest first)")
    assert text.count("• `book_flight` for <@UREQ>") == 20
    assert text.count("|view>") == 10
    assert text.endswith("_…and 9980 more._")


def test_pending_tool_names_are_inert_and_capped() -> None:
    tools = (HOSTILE, *(f"tool_{i}_" + "x" * 300 for i in range(9)))
    text = texts(checked(console_blocks.pending_blocks(Page([approval(1, tools=tools)], 1))))
    assert f"`{INERT}`" in text
    assert "x" * 100 not in text
    assert "tool_3_" in text and "tool_4_" not in text
    assert " and 5 more for <@UREQ>" in text


# -- /approvals policy -----------------------------------------------------------------------
def big_policy() -> Policy:
    rules: list[dict[str, Any]] = []
    for i in range(200):
        rule: dict[str, Any] = {
            "tools": [f"tool_{i}_" + "x" * 150],
            "when": "args.n > 1 && args.note != '<!channel>'",
            "decision": ("ask", "allow", "deny")[i % 3],
        }
        if rule["decision"] == "deny":
            rule["reason"] = (f"{HOSTILE} & " * 100)[: 1000 - i]
        if rule["decision"] == "ask" and i % 2:
            rule |= {"approvers": {"usergroups": ["S0LEADS"], "users": ["UBOSS"]}, "quorum": 2}
        rules.append(rule)
    config = BotConfig.model_validate(
        {
            "model": "mistral-medium-latest",
            "approvals": {"channel": "C0APPROVALS"},
            "policy": {"rules": rules},
        }
    )
    return Policy(config, ["book_flight"])


OVERRIDES = [
    Override("send_*", Effect.ASK, "UADMIN", CREATED),
    Override("read_<!channel>", Effect.ALLOW, "UADMIN", CREATED),
]


def test_a_policy_of_200_rules_fits_one_message() -> None:
    result = checked(console_blocks.policy_blocks(big_policy(), OVERRIDES))
    text = texts(result)
    assert text.startswith("*Approval policy* (rules are tried in order;")
    assert "*Overrides set by admins* (`allow` comes before the rules; `require`" in text
    assert "• `send_*` → *require* (<@UADMIN>, <!date^1700000000^" in text
    assert "• `read_&lt;!channel&gt;` → *allow* (<@UADMIN>," in text
    # tool names are cut at 100 characters
    first = "1. `tool_0_" + "x" * 93 + "` when `args.n &gt; 1 &amp;&amp; args.note != '&lt;!"
    assert first in text
    assert "→ *ask*: members of <#C0APPROVALS>, not the requester · one approval needed" in text
    assert "2. `tool_1_" in text and "→ *allow*\n" in text
    assert f"3. `tool_2_{'x' * 93}` when" in text and f"→ *deny*: {INERT} &amp; " in text
    assert result[-1]["text"]["text"] == "_…cut to fit one message._"


def test_a_small_policy_shows_rules_defaults_and_marked_tools() -> None:
    config = BotConfig.model_validate(
        {
            "model": "mistral-medium-latest",
            "approvals": {"channel": "C0APPROVALS", "allow_self_approval": True},
            "policy": {
                "defaults": {"grant_durations": ["1h", "8h"]},
                "rules": [
                    {"tools": ["get_*"], "decision": "allow"},
                    {"tools": ["rm"], "decision": "deny"},
                    {
                        "name": "big payments",
                        "tools": ["pay"],
                        "when": "args.amount > 500",
                        "approvers": {"users": ["UA1", "UB2"]},
                        "quorum": 2,
                    },
                ],
            },
        }
    )
    text = texts(checked(console_blocks.policy_blocks(Policy(config, ["book_flight"]), [])))
    assert "Overrides" not in text
    assert "1. `get_*` → *allow*" in text
    assert "2. `rm` → *deny*: not allowed" in text
    assert (
        "3. `pay` when `args.amount &gt; 500` → *ask*: <@UA1> or <@UB2> · 2 approvals needed "
        "· rule 3 (big payments)"
    ) in text
    assert "*Defaults*: members of <#C0APPROVALS> · one approval needed · defaults" in text
    assert "*Tools that ask when no rule matches*: `book_flight`" in text


def test_a_policy_without_rules() -> None:
    config = BotConfig.model_validate(
        {"model": "mistral-medium-latest", "approvals": {"channel": "C0APPROVALS"}}
    )
    text = texts(checked(console_blocks.policy_blocks(Policy(config), [])))
    assert "_No rules: the defaults apply._" in text
    assert "Tools that ask" not in text


# -- /approvals grants -----------------------------------------------------------------------
def grant(n: int, arguments: str | None = None, tool: str = "book_flight") -> Grant:
    return Grant(
        id=f"{n:012x}",
        tool=tool,
        requester_id="UREQ",
        arguments=arguments,
        created_by="UMANAGER",
        created_at=CREATED,
        expires_at=CREATED + 3600,
        approval_id=f"{n:024x}",
    )


def test_no_grants() -> None:
    assert texts(checked(console_blocks.grants_blocks([]))) == "No live grants."


def test_a_grant_says_what_it_covers_and_until_when() -> None:
    grants = [grant(1), grant(2, '{"to": "Paris"}', tool=HOSTILE)]
    text = texts(checked(console_blocks.grants_blocks(grants)))
    assert text.startswith("*Live grants*")
    assert (
        "• `000000000001`: `book_flight` for <@UREQ> (any arguments), granted by <@UMANAGER>, "
        "until <!date^1700003600^"
    ) in text
    assert f"• `000000000002`: `{INERT}` for <@UREQ> (these arguments only)" in text


def test_three_hundred_grants_fit_one_message() -> None:
    grants = [grant(n, "{}" if n % 2 else None, tool=f"tool_{n}_" + "y" * 200) for n in range(300)]
    text = texts(checked(console_blocks.grants_blocks(grants)))
    assert "• `000000000000`: `tool_0_" in text
    assert "y" * 100 not in text


# -- App Home --------------------------------------------------------------------------------
def actionable(count: int = 20, total: int = 500) -> Page:
    requests = [
        approval(n, requester=f"UREQ{n}", card_link=link(n) if n % 2 else None)
        for n in range(count)
    ]
    more = count if total > count else None
    positions = {request.id: n for n, request in enumerate(requests)}
    return Page(requests, total, next_start=more, positions=positions)


def page_buttons(result: list[dict[str, Any]]) -> dict[str, str]:
    """The App Home's page buttons: their text -> value."""
    for block in result:
        if block.get("block_id") == console_blocks.HOME_PAGE:
            return {e["text"]["text"]: e["value"] for e in block["elements"]}
    return {}


def recent() -> list[ApprovalRequest]:
    return [
        approval(100),
        decided(101, Status.APPROVED, "UMANAGER"),
        decided(102, Status.DENIED, ""),
        decided(103, Status.APPROVED, "UBOSS", Resume.FAILED, outcome="Mistral failed."),
        decided(104, Status.DENIED, "UMANAGER", Resume.RUNNING),
        decided(105, Status.APPROVED, "", card_link=link(105)),
        approval(106, tools=(HOSTILE,)),
        decided(107, Status.APPROVED, "UMANAGER", Resume.DEFERRED),
        approval(108),
        decided(109, Status.DENIED, "UBOSS"),
    ]


def test_home_of_an_approver_with_twenty_of_500_requests_to_decide() -> None:
    result = home(console_blocks.home_view("UMANAGER", actionable(), recent(), False))
    text = texts(result)
    assert result[0]["type"] == "header" and result[0]["text"]["text"] == "Approvals"
    assert "*Waiting for your decision* (500 pending in all)" in text
    actions = [block for block in result if block["type"] == "actions"]
    assert actions[-1]["block_id"] == console_blocks.HOME_PAGE
    actions = actions[:-1]
    assert [block["block_id"] for block in actions] == [f"{n:024x}.0.r0" for n in range(20)]
    for n, block in enumerate(actions):
        found = {element["text"]["text"]: element for element in block["elements"]}
        assert list(found) == ["Approve", "Approve for 1 hour", "Deny"]
        assert {element["value"] for element in found.values()} == {f"{n:024x}"}
        assert found["Approve"]["action_id"] == blocks.APPROVE
        assert found["Approve for 1 hour"]["action_id"] == "approval_grant_3600"
        assert found["Deny"]["action_id"] == blocks.DENY
    assert "for <@UREQ0>, asked" in text and "for <@UREQ19>, asked" in text
    assert "\n*Who can decide:* members of <#C0APPROVALS>, not the requester" in text
    assert page_buttons(result) == {"Next page ›": "20"}


def test_home_lists_recent_requests_with_their_outcomes() -> None:
    result = home(console_blocks.home_view("UREQ", Page([], 0), recent(), False))
    text = texts(result)
    assert "Nothing is waiting for your decision." in text
    assert "*Your recent requests*" in text
    lines = [line for line in text.splitlines() if line.startswith("• ")]
    assert len(lines) == 10
    outcomes = [line.split(">: ", 1)[-1] for line in lines]
    assert outcomes[0] == ":hourglass_flowing_sand: waiting for a decision"
    assert outcomes[1] == "approved by <@UMANAGER>"
    assert outcomes[2] == "denied by the policy"
    assert outcomes[3] == "approved by <@UBOSS> · :warning: resuming failed"
    assert outcomes[4] == "denied by <@UMANAGER> · resuming…"
    assert outcomes[5] == "approved by the policy"
    assert outcomes[7] == "approved by <@UMANAGER>"
    assert outcomes[9] == "denied by <@UBOSS>"
    assert f"<{link(105)}|view>" in lines[5]
    assert f"`{INERT}`" in lines[6]
    assert [block for block in result if block["type"] == "actions"] == []


def test_home_of_someone_with_nothing() -> None:
    result = home(console_blocks.home_view("UNEW", Page([], 0), [], False))
    text = texts(result)
    assert "Nothing is waiting for your decision." in text
    assert "_You have not asked for anything that needed approval._" in text
    assert "Type `/approvals` for pending requests, the policy and grants." in text
    assert "admin" not in text
    assert "more." not in text
    assert [block for block in result if block["type"] == "actions"] == []


@pytest.mark.parametrize("is_admin", [True, False])
def test_home_admin_tip_only_for_admins(is_admin: bool) -> None:
    result = home(console_blocks.home_view("UADMIN", actionable(2, 2), recent(), is_admin))
    tip = result[-1]
    assert tip["type"] == "context"
    assert tip["elements"][0]["text"].startswith("Type `/approvals` for pending requests")
    assert ("You are an admin: `/approvals require|allow|reset <tool>`" in texts(result)) is (
        is_admin
    )
    assert "more." not in texts(result)


def test_home_with_a_quorum_gate_and_no_grants() -> None:
    gate = Gate((Approvers(usergroups=("S0LEADS",)),), quorum=2, grant_durations_s=(3600,))
    page = Page([approval(1, gate=gate), approval(2, gate=None)], 2)
    result = home(console_blocks.home_view("UMANAGER", page, [], False))
    actions = [block for block in result if block["type"] == "actions"]
    for block in actions:
        assert [e["text"]["text"] for e in block["elements"]] == ["Approve", "Deny"]
    text = texts(result)
    assert "<!subteam^S0LEADS>, not the requester · 2 approvals needed" in text
    assert text.count("*Who can decide:*") == 1


def test_home_with_many_long_recent_requests_stays_within_100_blocks() -> None:
    tools = tuple(f"tool_{i}_" + "&" * 100 for i in range(10))
    many = [approval(1000 + n, tools=tools, card_link=link(n)) for n in range(50)]
    result = home(console_blocks.home_view("UMANAGER", actionable(20, 10_000), many, True))
    text = texts(result)
    assert page_buttons(result) == {"Next page ›": "20"}
    assert result[-1]["type"] == "context"
    assert "You are an admin" in result[-1]["elements"][0]["text"]
    assert re.search(r"`tool_0_(&amp;){93}`", text)  # cut at 100 characters, then escaped


def test_a_home_page_cut_short_goes_on_with_the_first_request_it_did_not_show() -> None:
    result = home(console_blocks.home_view("UMANAGER", actionable(50, 50), [], False))
    shown = sum(block["type"] == "actions" for block in result) - 1  # less the page buttons
    assert shown < 50
    assert page_buttons(result) == {"Next page ›": str(shown)}


def test_a_later_home_page_leads_back_to_the_first() -> None:
    last = replace(actionable(5, 25), start=20, next_start=None)
    result = home(console_blocks.home_view("UMANAGER", last, [], False))
    assert page_buttons(result) == {"« First page": "0"}
    empty = Page([], 25, start=20)
    result = home(console_blocks.home_view("UMANAGER", empty, [], False))
    assert "Nothing more is waiting for your decision." in texts(result)
    assert page_buttons(result) == {"« First page": "0"}


def test_home_gives_buttons_only_for_the_calls_the_person_may_decide() -> None:
    request = approval(1, tools=("send_note", "pay", "book_flight", "x", "y"))
    page = Page([request], 1, {request.id: [0, 2, 3, 4]})
    result = home(console_blocks.home_view("UMANAGER", page, [], False))
    rows = [block["block_id"] for block in result if block["type"] == "actions"]
    # at most three calls of one request; the card has the rest
    assert rows == [f"{request.id}.{n}.r0" for n in (0, 2, 3)]
    text = texts(result)
    assert "*1.* `send_note`" in text and "*2.*" not in text and "*3.* `book_flight`" in text
    assert "More calls wait: see the card." in text
