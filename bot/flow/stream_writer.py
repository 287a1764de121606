"""Writes a thread's steps and answer to its streamed reply, batched: the first write at
once, then at most one append a second per thread, the end taking what is left.

The stream open in each thread and the steps shown there live in Redis
(``AgentThreadStore``), so any process continues a thread; a step is sent only when it
changed since it was last shown there. A stream Slack ended meanwhile
(``message_not_in_streaming_state``) is replaced once by a new one in the same thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from bot.core.approval import ThreadRef
from bot.core.steps import Step, StepState
from bot.errors import UpstreamError
from bot.flow.chat import AgentSurface
from bot.storage.agent_threads import AgentThreadStore

logger = logging.getLogger(__name__)

#: At most one append a second per stream (Slack's guidance for streamed messages; the
#: methods' tiers allow bursts, a long run must not rely on them).
APPEND_INTERVAL_S: Final = 1.0
#: Slack's answer to an append or a stop on a stream that has ended (stopped, or timed out
#: server-side): a new stream is started in the same thread instead.
NOT_STREAMING: Final = "message_not_in_streaming_state"


@dataclass
class _Batch:
    """Steps of one thread not sent yet, and when the thread's stream was last written."""

    steps: dict[str, Step] = field(default_factory=dict)
    sent_at: float = float("-inf")
    timer: asyncio.Task[None] | None = None
    #: the timer still waits (cancelling it then loses nothing; once it sends, it may not)
    timer_waits: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class StreamWriter:
    """Each thread's steps and answer, written to its stream (see the module)."""

    def __init__(self, surface: AgentSurface, store: AgentThreadStore, display: str) -> None:
        self.surface = surface
        self.store = store
        #: tasks shown as a ``plan`` or a ``timeline`` (``chat.startStream``)
        self.display = display
        self._batches: dict[str, _Batch] = {}

    def _batch(self, thread: ThreadRef) -> _Batch:
        if len(self._batches) > 1000:  # idle threads need no entry
            self._batches = {
                key: batch
                for key, batch in self._batches.items()
                if batch.steps or batch.lock.locked()
            }
        return self._batches.setdefault(thread.key, _Batch())

    async def queue(
        self, thread: ThreadRef, steps: Sequence[Step], *, now: bool = False, flush: bool = True
    ) -> None:
        """Keep the steps not shown as they are yet; send them now if the stream was not
        written in the last second (or ``now``), else when that second is over."""
        batch = self._batch(thread)
        for step in steps:
            if await self.store.claim_step(thread, step):
                batch.steps[step.tool_call_id] = step
        if not flush or not batch.steps:
            return
        wait_s = batch.sent_at + APPEND_INTERVAL_S - time.monotonic()
        if now or wait_s <= 0:
            await self._flush(thread)
        elif batch.timer is None or batch.timer.done():
            batch.timer = asyncio.create_task(self._flush_later(thread, wait_s))

    async def _flush_later(self, thread: ThreadRef, wait_s: float) -> None:
        batch = self._batch(thread)
        batch.timer_waits = True
        try:
            await asyncio.sleep(wait_s)
        finally:
            batch.timer_waits = False
        try:
            await self._flush(thread)
        except (UpstreamError, OSError) as error:  # display only: the run goes on
            logger.warning("thread %s: steps not shown: %r", thread.key, error)
        except Exception:  # a background task: nobody else would see it
            logger.exception("thread %s: steps not shown", thread.key)

    async def _flush(self, thread: ThreadRef, markdown: str = "", *, stop: bool = False) -> bool:
        """Send the batched steps (and ``markdown``) to the thread's stream, starting one if
        none is open; ``stop``: end it. A stream Slack ended meanwhile is replaced once.
        False when the thread is no longer shown natively (nothing was sent)."""
        batch = self._batch(thread)
        async with batch.lock:
            steps = list(batch.steps.values())
            batch.steps.clear()
            for attempt in (1, 2):
                try:
                    sent = await self._send(thread, steps, markdown, stop=stop)
                    break
                except UpstreamError as error:
                    if error.code != NOT_STREAMING or attempt == 2:
                        raise
                    logger.info("thread %s: its stream had ended; starting another", thread.key)
                    await self.store.set_stream(thread, None)
            batch.sent_at = time.monotonic()
            return sent

    async def _send(
        self, thread: ThreadRef, steps: list[Step], markdown: str, *, stop: bool
    ) -> bool:
        state = await self.store.get(thread)
        if state is None:
            return False  # gone back to plain messages meanwhile
        ts = state.stream_ts
        if ts is None:
            if not (steps or markdown):
                return True  # nothing to show, nothing to stop
            ts = await self.surface.start_stream(thread, state.requester, steps, self.display)
            await self.store.set_stream(thread, ts)
            steps = []
        if stop:
            await self.surface.stop_stream(thread, ts, steps, markdown)
            await self.store.set_stream(thread, None)
        elif steps or markdown:
            await self.surface.append_stream(thread, ts, steps, markdown)
        return True

    async def end(self, thread: ThreadRef, markdown: str, unfinished: StepState | None) -> bool:
        """End the thread's stream with ``markdown``; steps still in progress end as
        ``unfinished`` (complete after an answer, error after a failure; None: as they are).
        False when the thread is no longer shown natively: the caller shows it plainly."""
        batch = self._batch(thread)
        if batch.timer is not None and batch.timer_waits:
            batch.timer.cancel()  # what it would send goes with the end
        if unfinished is not None:
            ended = [
                _ended(step, unfinished)
                for step in (await self.store.steps(thread)).values()
                if step.state is StepState.IN_PROGRESS
            ]
            await self.queue(thread, ended, flush=False)
        return await self._flush(thread, markdown, stop=True)


def _ended(step: Step, state: StepState) -> Step:
    """A step still in progress when its stream ends: done after an answer (a server-side
    call the run made), interrupted after a failure."""
    word = "done" if state is StepState.COMPLETE else "interrupted"
    if step.summary == "Running":
        return replace(step, state=state, summary=word.capitalize())
    return replace(step, state=state, then=word)
