"""The requester's thread as Slack shows AI agents: a native status while the model works,
each tool call a task of a streamed reply (waiting for a person, approved by @x, denied,
expired, decided by a rule, run), then the answer streamed as Markdown.

``AgentView`` is the ``Chat`` the orchestrator talks to. Where a thread is shown natively
(an assistant thread Slack opened, or every thread with ``assistant.native: everywhere``),
it shows the run through Slack's AI-app methods (``AgentSurface``); anywhere else, and in a
workspace where Slack refuses those methods, it hands every call to the plain ``Chat`` (the
placeholder, edited into the answer). A refusal is remembered per workspace for
``NATIVE_OFF_TTL_S`` (bot.storage.keys), so one failed call, not every message, pays for it.

The stream open in a thread and the steps shown in it are kept in Redis
(``AgentThreadStore``): a resume in another process continues the thread, and a step is
shown only when it changed; ``StreamWriter`` (bot.flow.stream_writer) writes them, batched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from bot.core.approval import ApprovalRequest, MessageRef, ThreadRef, excerpt
from bot.core.assistant_config import AssistantConfig
from bot.core.steps import Step, StepState, as_decided, awaiting, decided
from bot.errors import UpstreamError
from bot.flow.chat import AgentSurface, Chat, IncomingMessage
from bot.flow.stream_writer import StreamWriter
from bot.storage.agent_threads import AgentThread, AgentThreadStore
from bot.storage.connections import STORAGE_ERRORS

logger = logging.getLogger(__name__)

#: Errors after which a workspace gets the placeholder messages for a while: the app, its
#: token or the workspace's plan cannot use Slack's AI-app methods.
UNAVAILABLE: Final = frozenset(
    {
        "unknown_method",
        "not_allowed_token_type",
        "feature_not_enabled",
        "missing_scope",
        "not_allowed",
        "method_deprecated",
        "access_denied",
        "team_access_not_granted",
        "no_permission",
    }
)
#: A running tool's status changes at most this often per thread.
STATUS_INTERVAL_S: Final = 1.0

THINKING: Final = "is thinking…"
WAITING: Final = "is waiting for approval in #{channel}…"
WAITING_SOMEWHERE: Final = "is waiting for a person's approval…"


class AgentView:
    """Implements ``Chat``: natively where Slack allows it, else through ``plain``."""

    def __init__(
        self,
        plain: Chat,
        surface: AgentSurface,
        store: AgentThreadStore,
        config: AssistantConfig,
    ) -> None:
        self.plain = plain
        self.surface = surface
        self.store = store
        self.config = config
        #: the waiting calls of a request a person may decide (Decisions.decidable), set
        #: once the decisions service exists: it talks to people through this view
        self.decidable: Callable[[ApprovalRequest, str], Awaitable[list[int]]] | None = None
        #: writes the steps and answers, batched, to each thread's stream
        self.writer = StreamWriter(surface, store, config.task_display)
        #: when each thread's status last changed (a running tool's, once a second)
        self._status_at: dict[str, float] = {}
        #: approvals channels' names, for the waiting status
        self._channel_names: dict[str, str | None] = {}

    # -- Slack's assistant threads ----------------------------------------------------------
    async def thread_started(self, thread: ThreadRef, user_id: str) -> None:
        """Slack opened an assistant thread for ``user_id``: show it natively from now on,
        and offer the configured prompts."""
        if self.config.native == "off" or await self.store.native_off(thread.team_id):
            return
        await self.store.begin(thread, user_id, thread.team_id)
        prompts = [(p.title, p.message) for p in self.config.suggested_prompts]
        if not prompts:
            return
        try:
            await self.surface.set_suggested_prompts(thread, self.config.prompts_title, prompts)
        except UpstreamError as error:
            await self._refused(thread, error)

    # -- the run ----------------------------------------------------------------------------
    async def show_working(
        self, thread: ThreadRef, message: IncomingMessage | None = None
    ) -> MessageRef | None:
        state = await self._begin(thread, message)
        if state is None:
            return await self.plain.show_working(thread, message)
        try:
            await self.surface.set_status(thread, THINKING)
            if message is not None and thread.channel_id.startswith("D"):
                if await self.store.set_titled(thread):
                    await self.surface.set_title(thread, excerpt(message.text))
        except UpstreamError as error:
            if await self._refused(thread, error):
                return await self.plain.show_working(thread, message)
        return None

    async def show_step(
        self, thread: ThreadRef, step: Step, request: ApprovalRequest | None = None
    ) -> None:
        if await self._state(thread) is None:
            return
        step = as_decided(step, request)
        if step.state is StepState.IN_PROGRESS:
            await self._status(thread, self.config.running(step.tool))
        await self.writer.queue(thread, [step])

    async def show_decisions(self, request: ApprovalRequest) -> None:
        thread = request.thread
        if request.placeholder is not None or await self._state(thread) is None:
            return  # a thread of plain messages heard it from tell_decided
        try:
            await self.writer.queue(thread, decided(request), now=True)
        except UpstreamError as error:
            await self._refused(thread, error)
            await self.plain.tell_decided(request)

    async def post_answer(
        self, thread: ThreadRef, markdown: str, placeholder: MessageRef | None
    ) -> None:
        if placeholder is not None or await self._state(thread) is None:
            await self.plain.post_answer(thread, markdown, placeholder)
            return
        try:
            shown = await self.writer.end(
                thread, markdown or "_(the model returned no text)_", StepState.COMPLETE
            )
        except UpstreamError as error:
            logger.warning("thread %s: streamed answer failed (%r); posted", thread.key, error)
            await self._refused(thread, error)
            shown = False
        if not shown:
            await self.plain.post_answer(thread, markdown, None)

    async def post_failure(
        self,
        thread: ThreadRef,
        problem: str,
        placeholder: MessageRef | None,
        retry_turn_id: str | None,
    ) -> None:
        if placeholder is None and await self._state(thread) is not None:
            await self._end_quietly(thread, StepState.ERROR)
        await self.plain.post_failure(thread, problem, placeholder, retry_turn_id)

    # -- approvals --------------------------------------------------------------------------
    async def post_card(self, request: ApprovalRequest) -> MessageRef:
        if request.placeholder is None and await self._state(request.thread) is not None:
            name = await self._channel_name(request.approvals_channel)
            status = WAITING.format(channel=name) if name else WAITING_SOMEWHERE
            await self._status(request.thread, status, always=True)
        return await self.plain.post_card(request)

    async def tell_awaiting(self, request: ApprovalRequest) -> None:
        thread = request.thread
        if request.placeholder is not None or await self._state(thread) is None:
            await self.plain.tell_awaiting(request)
            return
        try:
            # the stream ends here: a person may take hours, a stream is not kept open
            await self.writer.queue(thread, awaiting(request), flush=False)
            shown = await self.writer.end(thread, "", None)
        except UpstreamError as error:
            await self._refused(thread, error)
            shown = False
        if not shown:
            await self.plain.tell_awaiting(request)
        await self._post_thread_card(request)

    async def _post_thread_card(self, request: ApprovalRequest) -> None:
        """The request's buttons in the requester's thread too, where the config says so
        (by default: where the requester may decide a call). A click there goes through
        the same checks and the same atomic vote as one on the card."""
        mode = self.config.thread_approvals
        if mode == "never" or await self.store.thread_card(request.id) is not None:
            return
        # a rule may ask for them there (``approvers: {requester_thread: true}``): where the
        # approvers follow the requester's thread (a channel's, with ``native: everywhere``)
        asked = any(
            (gate := request.calls[index].gate) is not None and gate.requester_thread
            for index in request.undecided
        )
        if mode == "when_requester_decides" and not asked:
            mine = (
                await self.decidable(request, request.requester.user_id) if self.decidable else []
            )
            if not mine:
                return
        try:
            ref = await self.surface.post_thread_card(request)
        except UpstreamError as error:
            logger.warning("approval %s: no buttons in the thread: %r", request.id, error)
            return
        await self.store.set_thread_card(request.id, ref)

    async def tell_card_failed(
        self, request: ApprovalRequest, problem: str, fix: str | None = None
    ) -> None:
        if request.placeholder is None and await self._state(request.thread) is not None:
            await self.writer.queue(request.thread, awaiting(request), flush=False)
            await self._end_quietly(request.thread, None)
        await self.plain.tell_card_failed(request, problem, fix)

    async def tell_decided(self, request: ApprovalRequest) -> None:
        if request.placeholder is None and await self._state(request.thread) is not None:
            return  # shown as steps when the conversation resumes (show_decisions)
        await self.plain.tell_decided(request)

    async def tell_policy(self, request: ApprovalRequest) -> None:
        thread = request.thread
        if request.placeholder is not None or await self._state(thread) is None:
            await self.plain.tell_policy(request)
            return
        try:
            await self.writer.queue(thread, decided(request), now=True)
        except UpstreamError as error:
            await self._refused(thread, error)
            await self.plain.tell_policy(request)

    async def tell_resume_failed(self, request: ApprovalRequest, problem: str) -> None:
        if request.placeholder is None and await self._state(request.thread) is not None:
            await self._end_quietly(request.thread, StepState.ERROR)
        await self.plain.tell_resume_failed(request, problem)

    # -- plain messages, as before ----------------------------------------------------------
    async def tell_queued(self, message: IncomingMessage, busy_state: str, position: int) -> None:
        await self.plain.tell_queued(message, busy_state, position)

    async def update_card(self, request: ApprovalRequest) -> None:
        """The card, and the request's buttons in the requester's thread if it has them."""
        await self.plain.update_card(request)
        message = await self.store.thread_card(request.id)
        if message is not None:
            await self.surface.update_thread_card(message, request)

    async def permalink(self, message: MessageRef) -> str | None:
        return await self.plain.permalink(message)

    async def channel_members(self, channel_id: str) -> set[str]:
        return await self.plain.channel_members(channel_id)

    async def usergroup_members(self, usergroup_id: str) -> set[str]:
        return await self.plain.usergroup_members(usergroup_id)

    async def usergroups(self) -> dict[str, set[str]]:
        return await self.plain.usergroups()

    async def remind(self, request: ApprovalRequest) -> None:
        await self.plain.remind(request)

    async def tell_outcome_unknown(self, request: ApprovalRequest, names: list[str]) -> None:
        await self.plain.tell_outcome_unknown(request, names)

    async def tell_user(self, user_id: str, text: str, channel_id: str | None = None) -> None:
        await self.plain.tell_user(user_id, text, channel_id)

    async def user_by_email(self, email: str) -> str | None:
        return await self.plain.user_by_email(email)

    # -- inside -----------------------------------------------------------------------------
    async def _begin(
        self, thread: ThreadRef, message: IncomingMessage | None
    ) -> AgentThread | None:
        """The thread's native state, begun now when every thread is shown natively; its
        stream goes to whoever wrote ``message`` (a channel thread has several people)."""
        state = await self._state(thread)
        if state is not None and message is not None and message.user_id != state.requester:
            await self.store.begin(thread, message.user_id, thread.team_id)
            return await self.store.get(thread)
        if state is not None or message is None or self.config.native != "everywhere":
            return state
        if await self.store.native_off(thread.team_id):
            return None
        await self.store.begin(thread, message.user_id, thread.team_id)
        return await self.store.get(thread)

    async def _state(self, thread: ThreadRef) -> AgentThread | None:
        """The thread's native state; None where it is shown with plain messages, and when
        Redis cannot say (an answer is then posted plainly rather than lost)."""
        if self.config.native == "off":
            return None
        try:
            # the thread first: most threads are not native (a DM, a mention), and for them
            # the workspace's state is not worth a round trip
            state = await self.store.get(thread)
            if state is None or await self.store.native_off(thread.team_id):
                return None
            return state
        except STORAGE_ERRORS as error:
            logger.warning("thread %s: shown plainly, Redis did not answer: %r", thread.key, error)
            return None

    async def _refused(self, thread: ThreadRef, error: UpstreamError) -> bool:
        """Slack refused a native method. True when the thread (and, for an unavailable
        method, the workspace for a while) goes back to plain messages; False for a
        passing failure (the thread stays native, the caller shows this one plainly)."""
        if error.code in UNAVAILABLE:
            logger.warning(
                "Slack refused its AI-app methods in %s (%s): plain messages for a while",
                thread.team_id,
                error.code,
            )
            await self.store.set_native_off(thread.team_id, error.code or "refused")
            await self.store.end(thread)
            return True
        if error.fix is not None:  # permanent, for this thread (its channel, say)
            logger.warning("thread %s: plain messages from now on: %r", thread.key, error)
            await self.store.end(thread)
            return True
        logger.warning("thread %s: a native call failed: %r", thread.key, error)
        return False

    async def _status(self, thread: ThreadRef, status: str, *, always: bool = False) -> None:
        """Set the native status (a running tool's at most once a second per thread, the
        others ``always``); never raises."""
        now = time.monotonic()
        if (
            not always
            and now - self._status_at.get(thread.key, -STATUS_INTERVAL_S) < STATUS_INTERVAL_S
        ):
            return
        if len(self._status_at) > 1000:  # idle threads need no entry
            self._status_at.clear()
        self._status_at[thread.key] = now
        try:
            await self.surface.set_status(thread, status)
        except UpstreamError as error:
            await self._refused(thread, error)

    async def _channel_name(self, channel_id: str) -> str | None:
        """The approvals channel's name for a status (plain text: no ``<#C…>`` there),
        asked once per process; None when Slack will not say."""
        if channel_id not in self._channel_names:
            try:
                self._channel_names[channel_id] = await self.surface.channel_name(channel_id)
            except UpstreamError as error:
                logger.info("no name for %s: %r", channel_id, error)
                return None
        return self._channel_names[channel_id]

    async def _end_quietly(self, thread: ThreadRef, unfinished: StepState | None) -> None:
        try:
            await self.writer.end(thread, "", unfinished)
        except UpstreamError as error:
            await self._refused(thread, error)
            await self.store.set_stream(thread, None)
