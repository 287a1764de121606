"""Work a listener does after Slack has its answer, off the path of the next request.

Bolt runs with ``process_before_response=True``, and every listener is registered through
:meth:`Background.after_ack`: the listener runs in a task of its own, and the request is
answered the moment the listener calls ``ack()``. (Bolt's own way, with
``process_before_response=False``, polls every 10 ms for the ack: each request waits up to
10 ms longer than it needs, and 200 requests in flight wake the event loop 20 000 times a
second.) What the listener does after its ack (refreshing a card, the audit, notes to
people) goes on in the task; shutdown waits for those tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from bot.logs import bind
from bot.storage.connections import stop_counting

logger = logging.getLogger(__name__)

Listener = TypeVar("Listener", bound=Callable[..., Awaitable[Any]])


def request_context(body: dict[str, Any]) -> dict[str, str | None]:
    """The workspace, channel and user a Slack payload is about (for the logs)."""
    event = body.get("event") if isinstance(body.get("event"), dict) else None
    if event is not None:
        return {
            "team": _text(body.get("team_id")),
            "channel": _text(event.get("channel")),
            "user": _text(event.get("user")),
        }
    if "command" in body:
        return {
            "team": _text(body.get("team_id")),
            "channel": _text(body.get("channel_id")),
            "user": _text(body.get("user_id")),
        }
    return {
        "team": _text(_field(body, "team", "id")),
        "channel": _text(_field(body, "channel", "id")),
        "user": _text(_field(body, "user", "id")),
    }


def _field(body: dict[str, Any], outer: str, inner: str) -> Any:
    value = body.get(outer)
    return value.get(inner) if isinstance(value, dict) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


#: Listener tasks one process keeps in flight at most; past it, Slack's requests are answered
#: 503 (Slack delivers events again later) instead of piling up tasks without bound.
MAX_IN_FLIGHT = 1000


class Background:
    """The tasks of listeners still working after their ack."""

    def __init__(self, limit: int = MAX_IN_FLIGHT) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self.limit = limit

    @property
    def full(self) -> bool:
        """Whether as many listener tasks as allowed are in flight."""
        return len(self._tasks) >= self.limit

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def idle(self) -> bool:
        return not self._tasks

    async def close(self, grace_s: float) -> None:
        """Let the work in flight finish for up to ``grace_s``, then cancel what is left
        (what it had recorded stays in Redis; the sweeper and the job queue pick it up)."""
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=grace_s)
        for task in late:
            task.cancel()
        if late:
            logger.warning("shutdown: %d listener tasks cancelled after %.0f s", len(late), grace_s)
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*late, return_exceptions=True)

    def after_ack(self, listener: Listener) -> Listener:
        """``listener`` for Bolt, answered as soon as it calls ``ack()`` (events, which Bolt
        acknowledges itself, at once); the rest of its work goes on in a task."""

        @functools.wraps(listener)
        async def answered_at_ack(**kwargs: Any) -> None:
            ack = kwargs.get("ack")
            answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            async def ack_and_release(*args: Any, **options: Any) -> Any:
                response = await ack(*args, **options)  # type: ignore[misc]
                stop_counting()  # the answer is on its way: later work is not the click's
                if not answered.done():
                    answered.set_result(None)
                return response

            if ack is not None:
                kwargs["ack"] = ack_and_release
            body, context = kwargs.get("body"), kwargs.get("context")

            async def work() -> None:
                if isinstance(body, dict):
                    bind(**request_context(body))
                elif context is not None:  # an AsyncBoltContext
                    bind(team=context.team_id, channel=context.channel_id, user=context.user_id)
                try:
                    await listener(**kwargs)
                except Exception as error:
                    if not answered.done():
                        answered.set_exception(error)  # Bolt answers 500 and logs it
                        return
                    # after the answer: what was recorded stays in Redis for a retry
                    logger.error("listener %s failed after its ack", listener.__name__,
                                 exc_info=error)  # fmt: skip
                finally:
                    if not answered.done():
                        answered.set_result(None)

            self.spawn(work(), name=f"slack:{listener.__name__}")
            if ack is not None:
                await answered

        return answered_at_ack  # type: ignore[return-value]
