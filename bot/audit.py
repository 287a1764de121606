"""The audit trail: every decision and every policy change, with who and when.

Entries go to a Redis stream, trimmed to the configured retention. Each entry is flat text
fields: ``event``, ``at`` (Unix seconds), ``actor`` (a Slack user id, or ``policy``), and
whatever else applies (``approval_id``, ``tool``, ``arguments``, ``requester``, ``rule``,
``detail``, ``permalink``, ``grant_id``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as redis

from bot import keys
from bot.policy import Grant

logger = logging.getLogger(__name__)

#: The actor of what the policy decided on its own.
POLICY = "policy"

#: The actor of what the bot itself did (an approved call running, a request expiring).
BOT = "bot"


class AuditLog:
    def __init__(self, client: redis.Redis, retention_days: int) -> None:
        self.redis = client
        self.retention_ms = retention_days * 86_400_000

    async def record(self, event: str, *, actor: str, **fields: str | float | None) -> str:
        """Append one entry; returns its stream id."""
        now = time.time()
        entry: dict[Any, Any] = {"event": event, "at": f"{now:.3f}", "actor": actor}
        entry.update({k: str(v) for k, v in fields.items() if v is not None})
        oldest_kept = int(now * 1000) - self.retention_ms
        entry_id = await self.redis.xadd(
            keys.AUDIT_STREAM, entry, minid=oldest_kept, approximate=True
        )
        logger.info(
            "audit %s by %s (approval %s, tool %s)",
            event,
            actor,
            entry.get("approval_id", "-"),
            entry.get("tool", "-"),
        )
        return _text(entry_id)

    async def record_grant(
        self, event: str, *, actor: str, grant: Grant, detail: str | None = None
    ) -> str:
        """A grant created or revoked, with what it covers."""
        return await self.record(
            event,
            actor=actor,
            grant_id=grant.id,
            tool=grant.tool,
            requester=grant.requester_id,
            approval_id=grant.approval_id,
            arguments=grant.arguments,
            rule=grant.rule or None,
            detail=detail,
        )

    async def iterate(
        self, since: float | None = None, until: float | None = None, page: int = 1000
    ) -> AsyncIterator[dict[str, str]]:
        """Every entry between two Unix times (inclusive), oldest first, read ``page`` at a
        time."""
        start = f"{int(since * 1000)}-0" if since is not None else "-"
        end = f"{int(until * 1000)}-18446744073709551615" if until is not None else "+"
        while True:
            rows: Any = await self.redis.xrange(keys.AUDIT_STREAM, start, end, count=page)
            for entry_id, fields in rows:
                yield {"id": _text(entry_id), **{_text(k): _text(v) for k, v in fields.items()}}
            if len(rows) < page:
                return
            start = "(" + _text(rows[-1][0])  # exclusive: after the last entry read

    async def entries(
        self, since: float | None = None, until: float | None = None, count: int | None = None
    ) -> list[dict[str, str]]:
        """Entries between two Unix times (inclusive), oldest first."""
        start = f"{int(since * 1000)}-0" if since is not None else "-"
        end = f"{int(until * 1000)}-18446744073709551615" if until is not None else "+"
        rows: Any = await self.redis.xrange(keys.AUDIT_STREAM, start, end, count=count)
        return [
            {"id": _text(entry_id), **{_text(k): _text(v) for k, v in fields.items()}}
            for entry_id, fields in rows
        ]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
