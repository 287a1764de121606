"""The Chat port on Slack: posts and updates messages through the Web API."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from typing import Any, Final

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import HttpRequest, HttpResponse, RetryState
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.core.approval import ApprovalRequest, MessageRef, ThreadRef
from bot.core.steps import Step
from bot.errors import UpstreamError
from bot.flow.chat import IncomingMessage
from bot.metrics import Metrics
from bot.slack import blocks, stream_chunks, thread_notes
from bot.slack.failures import fix_for, is_permanent

logger = logging.getLogger(__name__)

#: Methods that post to a channel, paced per channel by ``ChannelPacer`` (Slack allows about
#: one message a second in a channel, with short bursts). Their 429s are retried by
#: ``SlackChat`` itself, as long as ``RATE_LIMITED_PATIENCE_S``: a 429 means Slack posted
#: nothing, so trying again cannot post twice.
PACED_METHODS: Final = frozenset({"chat.postMessage", "chat.update"})
#: How long a post refused with 429 again and again is tried before it fails (then the
#: sweeper posts a card again later, and a person is told about any other message).
RATE_LIMITED_PATIENCE_S: Final = 600.0
#: Posts to one channel that go at once before the pace applies (Slack's "short bursts").
POST_BURST: Final = 3


class _UnpacedRateLimitRetryHandler(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's 429 handler (bounded, honouring Retry-After) for every method but the
    paced ones, which ``SlackChat`` retries itself, in their channel's turn."""

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        method = request.url.rstrip("/").rsplit("/", 1)[-1]
        return method not in PACED_METHODS and await super()._can_retry_async(
            state=state, request=request, response=response, error=error
        )


class ChannelPacer:
    """Spaces the posts to each channel ``1 / per_s`` seconds apart, after a burst of
    ``burst``, in the order they come (a reserved turn each: a generic cell rate algorithm).
    A 429 holds the channel for its ``Retry-After``. Only posts wait here: clicks are
    answered before anything is posted."""

    def __init__(self, per_s: float, burst: int = POST_BURST) -> None:
        self.interval_s = 1 / per_s
        self.tolerance_s = (burst - 1) * self.interval_s
        #: channel -> when its next post is theoretically due (monotonic seconds)
        self._due: dict[str, float] = {}

    async def turn(self, channel: str) -> None:
        """Wait for this post's turn in ``channel``."""
        now = time.monotonic()
        due = max(self._due.get(channel, now), now)
        self._due[channel] = due + self.interval_s
        if len(self._due) > 1000:  # channels idle for a while need no entry
            self._due = {c: d for c, d in self._due.items() if d > now}
        wait_s = due - self.tolerance_s - now
        if wait_s > 0:
            await asyncio.sleep(wait_s)

    def hold(self, channel: str, seconds: float) -> None:
        """Slack refused a post to ``channel`` for ``seconds``: later turns start after."""
        now = time.monotonic()
        self._due[channel] = max(self._due.get(channel, now), now + seconds + self.tolerance_s)


def make_web_client(
    token: str, base_url: str, session: aiohttp.ClientSession | None = None
) -> AsyncWebClient:
    """The Web API client: retries 429s (honouring Retry-After), 5xx and dropped connections.

    ``session``: connections kept alive across calls (without one, slack_sdk opens a session,
    and a TCP connection, for every call)."""
    return AsyncWebClient(
        token=token,
        session=session,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        timeout=15,
        retry_handlers=[
            _UnpacedRateLimitRetryHandler(max_retry_count=3),
            AsyncServerErrorRetryHandler(max_retry_count=2),
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
        ],
    )


#: chat.postEphemeral errors after which the note goes as a DM instead
_NO_EPHEMERAL = frozenset(
    {"user_not_in_channel", "channel_not_found", "not_in_channel", "user_not_found"}
)


def _retry_after_s(response: AsyncSlackResponse) -> float:
    """Slack's Retry-After (whole seconds; 1 when missing), and a jitter so that the posts
    it refused do not all come back at once."""
    value = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), "1")
    try:
        seconds = float(value[0] if isinstance(value, list) else value)
    except (TypeError, ValueError):
        seconds = 1.0
    return max(seconds, 0.0) + random.random() * 0.1


def _dicts(items: Sequence[Block]) -> list[dict[str, Any]]:
    return [item.to_dict() for item in items]


class SlackChat:
    """Implements ``bot.flow.chat.Chat`` with the Slack Web API. Posts and updates are paced per
    channel (``posts_per_s``, see ``ChannelPacer``) and their 429s retried in turn."""

    def __init__(
        self, client: AsyncWebClient, metrics: Metrics, *, posts_per_s: float = 1.0
    ) -> None:
        self.client = client
        self.metrics = metrics
        self.pacer = ChannelPacer(posts_per_s)

    async def _call(self, method: str, **args: Any) -> AsyncSlackResponse:
        """Every Web API call passes here: a failure becomes an UpstreamError, counted."""
        try:
            api = getattr(self.client, method.replace(".", "_"))
            if method in PACED_METHODS:
                return await self._paced(method, api, args)
            response: AsyncSlackResponse = await api(**args)
            return response
        except SlackApiError as error:
            code = error.response.get("error") if error.response else None
            failure = UpstreamError(
                "slack",
                f"{method} failed: {code}",
                status=error.response.status_code if error.response else None,
                code=str(code) if code else None,
                fix=fix_for(code) if is_permanent(code) else None,
            )
            raise self.metrics.upstream_failed(failure) from error
        except (aiohttp.ClientError, TimeoutError) as error:
            failure = UpstreamError("slack", f"{method} failed: {error!r}")
            raise self.metrics.upstream_failed(failure) from error

    async def _paced(self, method: str, api: Any, args: dict[str, Any]) -> AsyncSlackResponse:
        """A post in its channel's turn; a 429 (Slack posted nothing) holds the channel for
        its Retry-After and the post takes a new turn, for ``RATE_LIMITED_PATIENCE_S``."""
        channel = str(args.get("channel"))
        give_up_at = time.monotonic() + RATE_LIMITED_PATIENCE_S
        while True:
            await self.pacer.turn(channel)
            try:
                response: AsyncSlackResponse = await api(**args)
                return response
            except SlackApiError as error:
                if error.response.status_code != 429 or time.monotonic() > give_up_at:
                    raise
                retry_after = _retry_after_s(error.response)
            logger.info("%s to %s rate limited; again in %.1f s", method, channel, retry_after)
            self.pacer.hold(channel, retry_after)

    async def _post(
        self,
        channel: str,
        text: str,
        thread_ts: str | None = None,
        message_blocks: Sequence[Block] = (),
    ) -> MessageRef:
        args: dict[str, Any] = {"channel": channel, "text": text, "unfurl_links": False}
        if thread_ts:
            args["thread_ts"] = thread_ts
        if message_blocks:
            args["blocks"] = _dicts(message_blocks)
        response = await self._call("chat.postMessage", **args)
        return MessageRef(str(response["channel"]), str(response["ts"]))

    async def _update(
        self, message: MessageRef, text: str, message_blocks: Sequence[Block]
    ) -> None:
        await self._call(
            "chat.update",
            channel=message.channel_id,
            ts=message.ts,
            text=text,
            blocks=_dicts(message_blocks),
        )

    async def show_working(
        self, thread: ThreadRef, message: IncomingMessage | None = None
    ) -> MessageRef | None:
        return await self._post(thread.channel_id, blocks.WORKING_TEXT, thread.thread_ts)

    async def show_step(
        self, thread: ThreadRef, step: Step, request: ApprovalRequest | None = None
    ) -> None:
        """Plain messages show no steps (the card and the notes say what happened)."""

    async def show_decisions(self, request: ApprovalRequest) -> None:
        """Plain messages hear decisions from ``tell_decided``."""

    async def post_answer(
        self, thread: ThreadRef, markdown: str, placeholder: MessageRef | None
    ) -> None:
        messages = thread_notes.answer_messages(markdown)
        fallback = "The agent answered."
        first, rest = messages[0], messages[1:]
        if placeholder is not None:
            await self._update(placeholder, fallback, first)
        else:
            await self._post(thread.channel_id, fallback, thread.thread_ts, first)
        for message_blocks in rest:
            await self._post(thread.channel_id, fallback, thread.thread_ts, message_blocks)

    async def post_failure(
        self,
        thread: ThreadRef,
        problem: str,
        placeholder: MessageRef | None,
        retry_turn_id: str | None,
    ) -> None:
        failure = thread_notes.failure_blocks(problem, retry_turn_id)
        text = "Sorry, I could not answer."
        if placeholder is not None:
            await self._update(placeholder, text, failure)
        else:
            await self._post(thread.channel_id, text, thread.thread_ts, failure)

    async def tell_queued(self, message: IncomingMessage, busy_state: str, position: int) -> None:
        await self._post(
            message.thread.channel_id,
            thread_notes.queued_text(busy_state, position),
            message.thread.thread_ts,
        )

    async def post_card(self, request: ApprovalRequest) -> MessageRef:
        """Post the card; a bot that is not in a public approvals channel joins it first
        (``conversations.join``), a private one needs an invitation (not_in_channel)."""
        channel, text = request.approvals_channel, blocks.card_text(request)
        card = blocks.approval_card(request)
        try:
            return await self._post(channel, text, message_blocks=card)
        except UpstreamError as error:
            if error.code != "not_in_channel" or not await self._join(channel):
                raise
        return await self._post(channel, text, message_blocks=card)

    async def _join(self, channel_id: str) -> bool:
        """Join a public channel; False where Slack does not allow it (a private channel,
        or the app lacks ``channels:join``)."""
        try:
            await self._call("conversations.join", channel=channel_id)
        except UpstreamError as error:
            logger.warning("could not join %s: %s", channel_id, error.code or error)
            return False
        logger.info("joined %s to post approval cards there", channel_id)
        return True

    async def update_card(self, request: ApprovalRequest) -> None:
        if request.card is None:
            return
        await self._update(request.card, blocks.card_text(request), blocks.approval_card(request))

    async def tell_awaiting(self, request: ApprovalRequest) -> None:
        text = thread_notes.awaiting_text(request, request.card_link)
        message_blocks = [blocks.section(text)]
        if request.placeholder is not None:
            await self._update(request.placeholder, text, message_blocks)
        else:
            await self._post(
                request.thread.channel_id, text, request.thread.thread_ts, message_blocks
            )

    async def tell_card_failed(
        self, request: ApprovalRequest, problem: str, fix: str | None = None
    ) -> None:
        text = thread_notes.card_failed_text(request, problem, fix)
        await self._post(request.thread.channel_id, text, request.thread.thread_ts)

    async def tell_resume_failed(self, request: ApprovalRequest, problem: str) -> None:
        failure = thread_notes.resume_failed_blocks(request, problem)
        await self._post(
            request.thread.channel_id, "I could not continue.", request.thread.thread_ts, failure
        )

    async def permalink(self, message: MessageRef) -> str | None:
        response = await self._call(
            "chat.getPermalink", channel=message.channel_id, message_ts=message.ts
        )
        link = response.get("permalink")
        return str(link) if link else None

    async def channel_members(self, channel_id: str) -> set[str]:
        members: set[str] = set()
        cursor: str | None = None
        while True:
            args: dict[str, Any] = {"channel": channel_id, "limit": 1000}
            if cursor:
                args["cursor"] = cursor
            response = await self._call("conversations.members", **args)
            members.update(str(member) for member in response.get("members") or [])
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return members

    async def usergroup_members(self, usergroup_id: str) -> set[str]:
        response = await self._call("usergroups.users.list", usergroup=usergroup_id)
        return {str(user) for user in response.get("users") or []}

    async def usergroups(self) -> dict[str, set[str]]:
        response = await self._call("usergroups.list", include_users=True)
        return {
            str(group["id"]): {str(user) for user in group.get("users") or []}
            for group in response.get("usergroups") or []
        }

    async def tell_decided(self, request: ApprovalRequest) -> None:
        # it replaces "needs approval…" when that message is known, so the thread reads on
        text, message_blocks = thread_notes.decided_note(request)
        if request.placeholder is not None:
            await self._update(request.placeholder, text, message_blocks)
        else:
            thread = request.thread
            await self._post(thread.channel_id, text, thread.thread_ts, message_blocks)

    async def remind(self, request: ApprovalRequest) -> None:
        if request.card is None:
            return
        await self._post(
            request.card.channel_id, thread_notes.reminder_text(request), request.card.ts
        )

    async def tell_outcome_unknown(self, request: ApprovalRequest, names: list[str]) -> None:
        text = thread_notes.outcome_unknown_text(names)
        await self._post(request.thread.channel_id, text, request.thread.thread_ts)
        if request.card is not None:
            await self._post(request.card.channel_id, text, request.card.ts)

    async def tell_policy(self, request: ApprovalRequest) -> None:
        text, message_blocks = thread_notes.policy_note(request)
        await self._post(request.thread.channel_id, text, request.thread.thread_ts, message_blocks)

    async def publish_home(self, user_id: str, view: Any) -> None:
        await self._call("views.publish", user_id=user_id, view=view.to_dict())

    async def tell_user(self, user_id: str, text: str, channel_id: str | None = None) -> None:
        """A private note: ephemeral in ``channel_id``, or a DM. Where Slack cannot show an
        ephemeral message to that person there (not a member of the channel, a Slack Connect
        guest, another workspace of the organization), it goes to them as a DM: a person is
        always told why their click changed nothing."""
        if channel_id:
            try:
                await self._call("chat.postEphemeral", channel=channel_id, user=user_id, text=text)
                return
            except UpstreamError as error:
                if error.code not in _NO_EPHEMERAL:
                    raise
        await self._call("chat.postMessage", channel=user_id, text=text)

    async def user_by_email(self, email: str) -> str | None:
        """``users.lookupByEmail`` (scope ``users:read.email``); a deactivated account or a
        bot is nobody's requester."""
        try:
            response = await self._call("users.lookupByEmail", email=email)
        except UpstreamError as error:
            if error.code == "users_not_found":
                return None
            raise
        user = response.get("user") or {}
        if not isinstance(user, dict) or user.get("deleted") or user.get("is_bot"):
            return None
        return str(user.get("id") or "") or None

    async def open_view(self, trigger_id: str, view: Any) -> str:
        """Open a modal; its view id (to update it)."""
        response = await self._call("views.open", trigger_id=trigger_id, view=view.to_dict())
        return str((response.get("view") or {}).get("id") or "")

    async def update_view(self, view_id: str, view: Any) -> None:
        await self._call("views.update", view_id=view_id, view=view.to_dict())

    # -- Slack's AI-app methods (bot.flow.chat.AgentSurface) ---------------------------------
    async def set_status(self, thread: ThreadRef, status: str) -> None:
        await self._call(
            "assistant.threads.setStatus",
            channel_id=thread.channel_id,
            thread_ts=thread.thread_ts,
            status=stream_chunks.status_text(status) if status else "",
        )

    async def channel_name(self, channel_id: str) -> str | None:
        response = await self._call("conversations.info", channel=channel_id)
        name = (response.get("channel") or {}).get("name")
        return str(name) if name else None

    async def set_title(self, thread: ThreadRef, title: str) -> None:
        await self._call(
            "assistant.threads.setTitle",
            channel_id=thread.channel_id,
            thread_ts=thread.thread_ts,
            title=stream_chunks.title_text(title),
        )

    async def set_suggested_prompts(
        self, thread: ThreadRef, title: str, prompts: Sequence[tuple[str, str]]
    ) -> None:
        # thread_ts: right for an app with assistant_view (ours, see manifest.yml); Slack's
        # reference says an agent_view app's call with it fails silently
        await self._call(
            "assistant.threads.setSuggestedPrompts",
            channel_id=thread.channel_id,
            thread_ts=thread.thread_ts,
            title=title,
            prompts=[{"title": label, "message": text} for label, text in prompts],
        )

    async def start_stream(
        self, thread: ThreadRef, recipient: str, steps: Sequence[Step], display: str
    ) -> str:
        """``chat.startStream`` in the thread; the recipient fields always (Slack requires
        them outside DMs, and they name the same person in one)."""
        args: dict[str, Any] = {
            "channel": thread.channel_id,
            "thread_ts": thread.thread_ts,
            "recipient_team_id": thread.team_id,
            "recipient_user_id": recipient,
            "task_display_mode": display,
        }
        if steps:
            args["chunks"] = stream_chunks.chunks(steps)
        response = await self._call("chat.startStream", **args)
        return str(response["ts"])

    async def append_stream(
        self, thread: ThreadRef, ts: str, steps: Sequence[Step], markdown: str = ""
    ) -> None:
        await self._append(thread, ts, steps, stream_chunks.markdown_pieces(markdown))

    async def _append(
        self, thread: ThreadRef, ts: str, steps: Sequence[Step], pieces: Sequence[str]
    ) -> None:
        """``chat.appendStream`` of the steps, and the (inert) Markdown pieces one a call."""
        for index, piece in enumerate(pieces or [""]):
            found = stream_chunks.chunks(steps if index == 0 else (), piece)
            if found:
                await self._call(
                    "chat.appendStream", channel=thread.channel_id, ts=ts, chunks=found
                )

    async def stop_stream(
        self, thread: ThreadRef, ts: str, steps: Sequence[Step], markdown: str = ""
    ) -> None:
        """``chat.stopStream``; an answer longer than one call's Markdown is appended in
        pieces first, the last one going with the stop."""
        pieces = stream_chunks.markdown_pieces(markdown) or [""]
        if len(pieces) > 1:
            await self._append(thread, ts, steps, pieces[:-1])
            steps = ()
        found = stream_chunks.chunks(steps, pieces[-1])
        args: dict[str, Any] = {"channel": thread.channel_id, "ts": ts}
        if found:
            args["chunks"] = found
        await self._call("chat.stopStream", **args)

    async def post_thread_card(self, request: ApprovalRequest) -> MessageRef:
        text, message_blocks = thread_notes.thread_card(request)
        thread = request.thread
        return await self._post(thread.channel_id, text, thread.thread_ts, message_blocks)

    async def update_thread_card(self, message: MessageRef, request: ApprovalRequest) -> None:
        text, message_blocks = thread_notes.thread_card(request)
        await self._update(message, text, message_blocks)
