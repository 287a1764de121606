"""Slack's methods for AI apps, spoken by the Slack stand-in (``SlackStandIn.ai``).

``assistant.threads.setStatus`` / ``setTitle`` / ``setSuggestedPrompts`` and
``chat.startStream`` / ``appendStream`` / ``stopStream``, as slack_sdk 3.48 calls them and
docs.slack.dev describes them, refusing what Slack refuses:

* every chunk is parsed with slack_sdk's models (``Chunk.parse``: ``markdown_text``,
  ``task_update``, ``plan_update``, ``blocks``); an unknown type or field, a task status
  other than ``pending``/``in_progress``/``complete``/``error``, or more than 12 000
  characters of Markdown is ``invalid_chunks``;
* ``chat.startStream`` needs ``thread_ts`` (streamed replies answer a person's message) and,
  outside a DM, ``recipient_team_id`` and ``recipient_user_id`` (``invalid_arguments``);
  ``task_display_mode`` is ``timeline`` or ``plan``;
* an append or a stop on a stream that was stopped (or that Slack ended, ``end_stream``)
  is ``message_not_in_streaming_state``; on an unknown ts, ``message_not_found``;
* a channel-wide mention in any text is reported as an error of the bot (never allowed).

Undocumented limits chosen here and said so: task ``title`` at most 256 characters,
``details`` and ``output`` at most 1 000 (the bot stays well under).

A test makes a method unavailable in the workspace with ``unavailable[method] = error``
(``not_allowed_token_type``, ``feature_not_enabled``, ``unknown_method``...), as Slack
answers an app or plan without AI features. What a person sees is read with ``thread``:
the streamed replies in a thread, each with its tasks (the latest update of each, in the
order they first appeared) and its text.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slack_sdk.models.messages.chunk import Chunk, MarkdownTextChunk, TaskUpdateChunk

if TYPE_CHECKING:
    from tests.standins.slack import SlackStandIn

JSON = dict[str, Any]

MARKDOWN_LIMIT = 12_000
TASK_TITLE_LIMIT = 256
TASK_TEXT_LIMIT = 1_000
TASK_STATUSES = ("pending", "in_progress", "complete", "error")
DISPLAY_MODES = ("timeline", "plan")

#: method -> (tier, scope), from each method's reference page on docs.slack.dev.
#: setStatus has "special" limits (not limited here, like auth.test) and, since March 2026,
#: takes chat:write (assistant:write is being phased out for it).
METHODS: dict[str, tuple[int | None, str]] = {
    "assistant.threads.setStatus": (None, "chat:write"),
    "assistant.threads.setTitle": (4, "assistant:write"),
    "assistant.threads.setSuggestedPrompts": (4, "assistant:write"),
    "chat.startStream": (2, "chat:write"),
    "chat.appendStream": (4, "chat:write"),
    "chat.stopStream": (2, "chat:write"),
}


@dataclass
class StreamedReply:
    """One streamed message, as people see it."""

    channel: str
    ts: str
    thread_ts: str
    recipient: tuple[str | None, str | None]
    display: str
    streaming: bool = True
    #: task id -> the task as shown (updates merged over it), in order of first appearance
    tasks: dict[str, JSON] = field(default_factory=dict)
    text: str = ""
    plan_title: str | None = None

    def task_list(self) -> list[JSON]:
        return list(self.tasks.values())


class AISide:
    """The stand-in's AI-app methods and what they showed."""

    def __init__(self, slack: SlackStandIn) -> None:
        self.slack = slack
        #: method -> the error it answers in this workspace (the method is unavailable)
        self.unavailable: dict[str, str] = {}
        self.replies: dict[tuple[str, str], StreamedReply] = {}
        #: (channel, thread_ts) -> every status set there, in order ("" clears)
        self.statuses: dict[tuple[str, str], list[str]] = {}
        self.titles: dict[tuple[str, str], str] = {}
        self.prompts: dict[tuple[str, str], JSON] = {}

    def handlers(self) -> dict[str, Any]:
        return {
            "assistant.threads.setStatus": self._set_status,
            "assistant.threads.setTitle": self._set_title,
            "assistant.threads.setSuggestedPrompts": self._set_suggested_prompts,
            "chat.startStream": self._start_stream,
            "chat.appendStream": self._append_stream,
            "chat.stopStream": self._stop_stream,
        }

    # ------------------------------------------------------------------ reading
    def thread(self, channel: str, thread_ts: str) -> list[StreamedReply]:
        """The streamed replies in a thread, oldest first."""
        found = [
            r for r in self.replies.values() if (r.channel, r.thread_ts) == (channel, thread_ts)
        ]
        return sorted(found, key=lambda r: float(r.ts))

    def tasks(self, channel: str, thread_ts: str) -> dict[str, JSON]:
        """Every task shown in a thread's replies, by id: the last reply's wins."""
        shown: dict[str, JSON] = {}
        for reply in self.thread(channel, thread_ts):
            shown.update(reply.tasks)
        return shown

    def text(self, channel: str, thread_ts: str) -> str:
        return "".join(reply.text for reply in self.thread(channel, thread_ts))

    def end_stream(self, channel: str, ts: str) -> None:
        """Slack ends a stream by itself (it timed out)."""
        self.replies[(channel, ts)].streaming = False

    # ------------------------------------------------------------------ checks
    def check(self, method: str) -> None:
        """Answer as Slack does where the method is unavailable."""
        from tests.standins.slack import _ApiError

        if method in self.unavailable:
            raise _ApiError(self.unavailable[method])

    def _reject(self, method: str, code: str, problems: list[str]) -> Exception:
        return self.slack._reject(method, code, problems)

    def _required(self, method: str, args: JSON, *names: str) -> None:
        missing = [n for n in names if not isinstance(args.get(n), str) or not args.get(n)]
        if missing:
            raise self._reject(method, "invalid_arguments", [f"missing {n}" for n in missing])

    def _mentions(self, method: str, text: str, pointer: str) -> None:
        from tests.standins.slack import _mentions_in

        for found in _mentions_in(text, pointer):
            self.slack.errors.append(
                f"{method}: mass_mention: bot sent an unescaped channel-wide mention {found}"
            )

    def _chunks(self, method: str, args: JSON) -> list[Chunk]:
        raw = args.get("chunks")
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise self._reject(method, "invalid_chunks", ["chunks must be an array"])
        parsed: list[Chunk] = []
        problems: list[str] = []
        for index, item in enumerate(raw):
            where = f"[json-pointer:/chunks/{index}]"
            try:
                chunk = Chunk.parse(item) if isinstance(item, dict) else None
            except TypeError as error:  # a required field missing
                problems.append(f"{error} {where}")
                continue
            if chunk is None:
                problems.append(f"unknown chunk {item!r} {where}")
                continue
            unknown = set(item) - set(chunk.attributes)  # slack_sdk only logs them
            if unknown:
                problems.append(f"unknown fields {sorted(unknown)} {where}")
            problems.extend(self._chunk_problems(method, chunk, where))
            parsed.append(chunk)
        if problems:
            raise self._reject(method, "invalid_chunks", problems)
        return parsed

    def _chunk_problems(self, method: str, chunk: Chunk, where: str) -> list[str]:
        problems: list[str] = []
        if isinstance(chunk, MarkdownTextChunk):
            if len(chunk.text) > MARKDOWN_LIMIT:
                problems.append(f"markdown_text over {MARKDOWN_LIMIT} characters {where}")
            self._mentions(method, chunk.text, where)
        elif isinstance(chunk, TaskUpdateChunk):
            if chunk.status not in TASK_STATUSES:
                problems.append(f"task status {chunk.status!r} {where}")
            if not chunk.id or not chunk.title:
                problems.append(f"a task needs an id and a title {where}")
            if len(chunk.title or "") > TASK_TITLE_LIMIT:
                problems.append(f"task title over {TASK_TITLE_LIMIT} characters {where}")
            for name in ("details", "output"):
                value = getattr(chunk, name)
                if value is not None and len(value) > TASK_TEXT_LIMIT:
                    problems.append(f"task {name} over {TASK_TEXT_LIMIT} characters {where}")
            for name in ("title", "details", "output"):
                self._mentions(method, getattr(chunk, name) or "", f"{where}/{name}")
            for source in chunk.sources or []:
                url = source.get("url") if isinstance(source, dict) else source.url
                if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                    problems.append(f"source url {url!r} {where}")
        return problems

    def _apply(self, reply: StreamedReply, chunks: list[Chunk], markdown: Any) -> None:
        if isinstance(markdown, str):
            reply.text += markdown
        for chunk in chunks:
            if isinstance(chunk, MarkdownTextChunk):
                reply.text += chunk.text
            elif isinstance(chunk, TaskUpdateChunk):
                task = {k: v for k, v in chunk.to_dict().items() if v is not None}
                reply.tasks[chunk.id] = {**reply.tasks.get(chunk.id, {}), **task}
            elif chunk.type == "plan_update":
                reply.plan_title = getattr(chunk, "title", None)

    def _reply(self, method: str, args: JSON) -> StreamedReply:
        from tests.standins.slack import _ApiError

        self._required(method, args, "channel", "ts")
        reply = self.replies.get((str(args["channel"]), str(args["ts"])))
        if reply is None:
            raise _ApiError("message_not_found")
        if not reply.streaming:
            raise _ApiError("message_not_in_streaming_state")
        return reply

    # ------------------------------------------------------------------ methods
    def _set_status(self, args: JSON) -> JSON:
        method = "assistant.threads.setStatus"
        self.check(method)
        self._required(method, args, "channel_id", "thread_ts")
        status = args.get("status")
        if not isinstance(status, str):
            raise self._reject(method, "invalid_arguments", ["missing status"])
        self._mentions(method, status, "/status")
        key = (str(args["channel_id"]), str(args["thread_ts"]))
        self.statuses.setdefault(key, []).append(status)
        return {}

    def _set_title(self, args: JSON) -> JSON:
        method = "assistant.threads.setTitle"
        self.check(method)
        self._required(method, args, "channel_id", "thread_ts", "title")
        self._mentions(method, str(args["title"]), "/title")
        self.titles[(str(args["channel_id"]), str(args["thread_ts"]))] = str(args["title"])
        return {}

    def _set_suggested_prompts(self, args: JSON) -> JSON:
        method = "assistant.threads.setSuggestedPrompts"
        self.check(method)
        self._required(method, args, "channel_id", "thread_ts")
        prompts = args.get("prompts")
        problems: list[str] = []
        if not isinstance(prompts, list) or not 1 <= len(prompts) <= 4:
            problems.append("prompts: 1 to 4 items")
        for index, prompt in enumerate(prompts if isinstance(prompts, list) else []):
            if not isinstance(prompt, dict) or set(prompt) != {"title", "message"}:
                problems.append(f"prompt needs exactly title and message [/prompts/{index}]")
        if problems:
            raise self._reject(method, "invalid_arguments", problems)
        key = (str(args["channel_id"]), str(args["thread_ts"]))
        self.prompts[key] = {"title": args.get("title"), "prompts": copy.deepcopy(prompts)}
        return {}

    def _start_stream(self, args: JSON) -> JSON:
        method = "chat.startStream"
        self.check(method)
        self._required(method, args, "channel", "thread_ts")
        channel = str(args["channel"])
        if not channel.startswith("D"):
            self._required(method, args, "recipient_team_id", "recipient_user_id")
        display = args.get("task_display_mode", "timeline")
        if display not in DISPLAY_MODES:
            raise self._reject(method, "invalid_arguments", [f"task_display_mode {display!r}"])
        self.slack._check_can_post(channel)
        chunks = self._chunks(method, args)
        ts = self.slack._next_ts()
        reply = StreamedReply(
            channel=channel,
            ts=ts,
            thread_ts=str(args["thread_ts"]),
            recipient=(args.get("recipient_team_id"), args.get("recipient_user_id")),
            display=str(display),
        )
        self._apply(reply, chunks, args.get("markdown_text"))
        self.replies[(channel, ts)] = reply
        return {"channel": channel, "ts": ts}

    def _append_stream(self, args: JSON) -> JSON:
        method = "chat.appendStream"
        self.check(method)
        reply = self._reply(method, args)
        chunks = self._chunks(method, args)
        if not chunks and not args.get("markdown_text"):
            raise self._reject(method, "invalid_arguments", ["nothing to append"])
        self._apply(reply, chunks, args.get("markdown_text"))
        return {"channel": reply.channel, "ts": reply.ts}

    def _stop_stream(self, args: JSON) -> JSON:
        method = "chat.stopStream"
        self.check(method)
        reply = self._reply(method, args)
        self._apply(reply, self._chunks(method, args), args.get("markdown_text"))
        reply.streaming = False
        return {"channel": reply.channel, "ts": reply.ts, "message": {"text": reply.text}}
