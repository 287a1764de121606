"""The start-up preflight: the doctor's fast checks, run once in the background.

``serve``, ``socket`` and ``worker`` start whatever the checks find (Slack may be briefly
unreachable); each failure is logged with its fix, and ``/readyz`` shows the last result
without failing for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

from bot.ops.doctor.report import Check, Report, failed

logger = logging.getLogger(__name__)

#: How long the whole preflight may take before it is reported as failed.
TIMEOUT_S: Final = 15.0


class Preflight:
    """Runs the checks once (``start``) and keeps the result for ``/readyz``."""

    def __init__(
        self, run: Callable[[], Awaitable[list[Check]]], *, timeout_s: float = TIMEOUT_S
    ) -> None:
        self._run = run
        self.timeout_s = timeout_s
        self.report: Report | None = None
        self.finished_at: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the checks in the background; start-up does not wait for them."""
        self._task = asyncio.create_task(self._check(), name="preflight")

    async def _check(self) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                checks = await self._run()
        except TimeoutError:
            checks = [
                failed(
                    "preflight",
                    f"the checks did not finish within {self.timeout_s:.0f} s",
                    "run `approval-bot doctor` to see which service is slow",
                )
            ]
        except Exception as error:  # a check's own bug must not stop the bot: report it
            logger.exception("preflight: the checks failed")
            checks = [
                failed(
                    "preflight",
                    f"the checks themselves failed: {type(error).__name__}: {error}",
                    "run `approval-bot doctor`",
                )
            ]
        self.report = Report(tuple(checks))
        self.finished_at = datetime.now(UTC)
        self._log(self.report)

    @staticmethod
    def _log(report: Report) -> None:
        for check in report.checks:
            if check.status == "failed":
                logger.error(
                    "preflight: %s failed: %s; fix: %s", check.check, check.detail, check.fix
                )
            elif check.status == "warning":
                logger.warning("preflight: %s: %s; fix: %s", check.check, check.detail, check.fix)
        logger.info("preflight: %s (`approval-bot doctor` checks more)", report.summary())

    def state(self) -> dict[str, Any]:
        """What ``/readyz`` shows: ``off``, ``running``, or the result with what failed."""
        if self._task is None:
            return {"status": "off"}
        if self.report is None or self.finished_at is None:
            return {"status": "running"}
        return {
            "status": self.report.status,
            "finished_at": self.finished_at.isoformat(timespec="seconds"),
            "failed": [check.to_dict() for check in self.report.failed],
            "warnings": [check.to_dict() for check in self.report.warnings],
        }

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
