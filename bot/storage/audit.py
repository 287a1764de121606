"""The audit trail: every decision and every policy change, with who and when.

Entries go to a Redis stream, trimmed to the configured retention. Each entry is flat text
fields: ``event``, ``at`` (Unix seconds), ``actor`` (a Slack user id, or ``policy``), and
whatever else applies (``approval_id``, ``tool``, ``arguments``, ``requester``, ``rule``,
``detail``, ``permalink``, ``grant_id``).

An entry written by a durable job carries a deterministic entry id (the job's id, the call,
the event): it is written once however often the job is retried (:data:`RECORD_ONCE_SCRIPT`).
The stream is the source of truth for recent entries; ``bot.storage.audit_shipper`` copies it to the
long-term sinks (``bot.storage.audit_sinks``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from bot.core.policy import Grant
from bot.storage import keys
from bot.storage.connections import RedisClient, decoded

logger = logging.getLogger(__name__)

#: The actor of what the policy decided on its own.
POLICY = "policy"

#: The actor of what the bot itself did (an approved call running, a request expiring).
BOT = "bot"

#: Appends an entry unless one with the same entry id was appended before. The XADD comes
#: first: a script is not rolled back, so an XADD Redis refuses (out of memory, say) must not
#: leave the entry marked as written.
RECORD_ONCE_SCRIPT: Final = """
-- KEYS[1]: the entry id's marker (AUDIT_ENTRY_SEEN)
-- KEYS[2]: the audit stream (AUDIT_STREAM)
-- ARGV[1]: seconds the marker is kept (AUDIT_ENTRY_SEEN_TTL_S)
-- ARGV[2]: the oldest stream id kept (approximate MINID trimming)
-- ARGV[3..]: the entry's fields and values, alternately
-- returns {stream id, 1} when appended now, {stream id, 0} when appended before
local written = redis.call('GET', KEYS[1])
if written then
  return {written, 0}
end
local id = redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[2], '*', unpack(ARGV, 3))
redis.call('SET', KEYS[1], id, 'EX', ARGV[1])
return {id, 1}
"""


class AuditLog:
    def __init__(self, client: RedisClient, retention_days: int) -> None:
        self.redis = client
        self.retention_ms = retention_days * 86_400_000
        self._record_once = client.register_script(RECORD_ONCE_SCRIPT)

    async def record(
        self,
        event: str,
        *,
        actor: str,
        entry_id: str | None = None,
        **fields: str | float | None,
    ) -> str:
        """Append one entry; returns its stream id. With ``entry_id`` (deterministic, from a
        job), an entry appended before under the same id is not appended again: its stream id
        is returned. Raises RedisError when Redis refuses it (a job is then retried)."""
        now = time.time()
        entry: dict[Any, Any] = {"event": event, "at": f"{now:.3f}", "actor": actor}
        entry.update({k: str(v) for k, v in fields.items() if v is not None})
        oldest_kept = int(now * 1000) - self.retention_ms
        appended = True
        if entry_id is None:
            stream_id = decoded(
                await self.redis.xadd(keys.AUDIT_STREAM, entry, minid=oldest_kept, approximate=True)
            )
        else:
            pairs = [part for item in entry.items() for part in item]
            result: Any = await self._record_once(
                keys=[keys.audit_entry_seen(entry_id), keys.AUDIT_STREAM],
                args=[keys.AUDIT_ENTRY_SEEN_TTL_S, oldest_kept, *pairs],
            )
            stream_id, appended = decoded(result[0]), bool(int(result[1]))
        logger.info(
            "audit %s by %s (approval %s, tool %s)%s",
            event,
            actor,
            entry.get("approval_id", "-"),
            entry.get("tool", "-"),
            "" if appended else ": written before, not again",
        )
        return stream_id

    async def record_grant(
        self,
        event: str,
        *,
        actor: str,
        grant: Grant,
        detail: str | None = None,
        entry_id: str | None = None,
    ) -> str:
        """A grant created or revoked, with what it covers."""
        return await self.record(
            event,
            actor=actor,
            entry_id=entry_id,
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
                yield {
                    "id": decoded(entry_id),
                    **{decoded(k): decoded(v) for k, v in fields.items()},
                }
            if len(rows) < page:
                return
            start = "(" + decoded(rows[-1][0])  # exclusive: after the last entry read

    async def entries(
        self, since: float | None = None, until: float | None = None, count: int | None = None
    ) -> list[dict[str, str]]:
        """Entries between two Unix times (inclusive), oldest first."""
        start = f"{int(since * 1000)}-0" if since is not None else "-"
        end = f"{int(until * 1000)}-18446744073709551615" if until is not None else "+"
        rows: Any = await self.redis.xrange(keys.AUDIT_STREAM, start, end, count=count)
        return [
            {"id": decoded(entry_id), **{decoded(k): decoded(v) for k, v in fields.items()}}
            for entry_id, fields in rows
        ]


def entry_record(entry: Mapping[str, str]) -> dict[str, Any]:
    """One audit entry as it leaves Redis (export, day files, webhook): its text fields as
    stored, ``id`` (its stream id), ``at`` as a number, and ``time`` in ISO 8601 (UTC)."""
    record: dict[str, Any] = dict(entry)
    at = float(entry.get("at") or 0.0)
    record["at"] = at
    record["time"] = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
    return record


def entry_line(entry: Mapping[str, str]) -> str:
    """:func:`entry_record` as one JSON line (no newline), keys sorted."""
    return json.dumps(entry_record(entry), ensure_ascii=False, sort_keys=True)


def position(stream_id: str) -> tuple[int, int]:
    """A stream id (``<ms>-<seq>``) as a pair that sorts as Redis orders entries."""
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)
