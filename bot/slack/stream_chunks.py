"""Builders for Slack's streamed replies: the run's steps as ``task_update`` chunks and the
answer as ``markdown_text``, validated by slack_sdk's models. Pure.

Slack does not document how task fields render, nor which markup ``markdown_text`` keeps,
so everything untrusted (tool names, arguments' echoes, outputs, reasons, the model's
text) is made inert for both readings: a zero-width space after every ``<`` (no
``<!here>``, ``<@U…>`` or ``<url|label>`` survives), after ``@`` of ``@channel``,
``@here`` and ``@everyone``, and a Markdown link shows its target beside its label. The
only mentions shown are the bot's own: who decided, and the approvals channel.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

from slack_sdk.models.blocks.block_elements import UrlSourceElement
from slack_sdk.models.messages.chunk import MarkdownTextChunk, TaskUpdateChunk

from bot.core.steps import Step

ZWSP: Final = "\u200b"
#: ``markdown_text`` of one call (Slack's documented limit).
MARKDOWN_LIMIT: Final = 12_000
#: Our own bounds on a task's fields (Slack documents none): a task is a line, not a page.
TITLE_LIMIT: Final = 150
DETAILS_LIMIT: Final = 500
OUTPUT_LIMIT: Final = 500
#: Status text (``assistant.threads.setStatus``), and a thread's title.
STATUS_LIMIT: Final = 100
TITLE_TEXT_LIMIT: Final = 100

_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)
_LINK = re.compile(r"\[([^\]\n]*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")


def inert(text: str) -> str:
    """Untrusted text that can neither mention anyone nor disguise a link."""
    text = _LINK.sub(lambda m: f"{m.group(1)} ({m.group(2)})" if m.group(1) else m.group(2), text)
    text = text.replace("<", "<" + ZWSP)
    return _BROADCAST.sub(lambda m: "@" + ZWSP + m.group(1), text)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def task_chunk(step: Step) -> TaskUpdateChunk:
    """One step as a task card: its tool, what happened (and who decided, where it waits,
    which rule), a short output, and a link to the approval card."""
    details = step.summary
    if step.by_user:
        details += f" by <@{step.by_user}>"
    if step.where:
        details += f" in <#{step.where}>"
    if step.rule:
        details += f" under {inert(_cut(step.rule, 100))}"  # "rule 2 (payments)"
    if step.reason:
        details += f": {inert(_cut(step.reason, DETAILS_LIMIT // 2))}"
    if step.then:
        details += f"; {step.then}"
    sources = (
        [UrlSourceElement(url=step.link, text="Approval request")]
        if step.link and step.link.startswith("https://")
        else None
    )
    return TaskUpdateChunk(
        id=step.tool_call_id,
        title=inert(_cut(step.tool, TITLE_LIMIT)),
        status=step.state.value,
        details=_cut(details, DETAILS_LIMIT),
        output=inert(_cut(step.output, OUTPUT_LIMIT)) if step.output else None,
        sources=sources,
    )


def markdown_pieces(markdown: str) -> list[str]:
    """The model's answer, inert, in pieces of at most ``MARKDOWN_LIMIT`` characters cut at
    line ends where possible (a cut inside a word or a code span only where a line is
    longer than a piece)."""
    text = inert(markdown)
    pieces: list[str] = []
    while len(text) > MARKDOWN_LIMIT:
        cut = text.rfind("\n", 0, MARKDOWN_LIMIT)
        if cut <= 0:
            cut = MARKDOWN_LIMIT
        pieces.append(text[:cut])
        text = text[cut:]
    if text:
        pieces.append(text)
    return pieces


def chunks(steps: Sequence[Step], markdown: str = "") -> list[dict[str, Any]]:
    """Steps, then Markdown, as the ``chunks`` of one call (``markdown`` within the limit)."""
    found: list[dict[str, Any]] = [task_chunk(step).to_dict() for step in steps]
    if markdown:
        found.append(MarkdownTextChunk(text=markdown).to_dict())
    return found


def status_text(status: str) -> str:
    """A status line: plain text (Slack shows it as is), inert and short."""
    return _cut(inert(status.replace("\n", " ")), STATUS_LIMIT)


def title_text(text: str) -> str:
    return _cut(inert(text.replace("\n", " ").strip()) or "New thread", TITLE_TEXT_LIMIT)
