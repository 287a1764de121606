"""Where the audit trail goes for the long term: day files and an HTTPS webhook (a SIEM).

Each sink takes batches of entries, oldest first, as the JSON objects ``audit export``
writes (:func:`bot.storage.audit.entry_record`, with ``id``, the entry's stream id). A sink either
takes a whole batch for good or raises :class:`SinkError`; ``bot.storage.audit_shipper`` moves its
position past a batch only once the sink took it.

- :class:`FileSink`: ``audit-YYYY-MM-DD.jsonl`` in a directory, one entry a line, by the UTC
  date of the entry's stream id (when Redis appended it; ``at`` is within milliseconds of
  it). Each batch is appended, flushed and fsynced before the shipper moves on, and the files
  themselves say how far they go (:meth:`FileSink.delivered_up_to`), so that a crash between
  the write and the position's update never writes an entry twice.
- :class:`WebhookSink`: POSTs ``{"entries": [...]}`` to a URL, signed with HMAC-SHA256 when a
  secret is set; retried with backoff on connection errors, timeouts, 429 and 5xx. Delivery
  is at least once: a response lost after the receiver took a batch means it gets it again,
  so the receiver drops entries whose ``id`` it has already.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final, Protocol

import aiohttp

from bot.errors import BotError
from bot.storage.audit import entry_line, entry_record, position

logger = logging.getLogger(__name__)

#: The header carrying the webhook body's signature: ``sha256=<hex HMAC-SHA256 of the body>``.
SIGNATURE_HEADER: Final = "X-Approval-Bot-Signature"

_DAY_FILE: Final = re.compile(r"^audit-(\d{4}-\d{2}-\d{2})\.jsonl$")


class SinkError(BotError):
    """A sink did not take a batch (it is offered again later)."""

    def __init__(self, sink: str, problem: str) -> None:
        super().__init__(f"audit sink {sink}: {problem}")
        self.sink = sink
        self.problem = problem

    def __repr__(self) -> str:
        return f"SinkError(sink={self.sink!r}, problem={self.problem!r})"


class AuditSink(Protocol):
    """A long-term home for audit entries."""

    name: str

    async def deliver(self, entries: Sequence[Mapping[str, str]]) -> None:
        """Take ``entries`` (oldest first) for good, or raise SinkError."""

    async def delivered_up_to(self) -> str | None:
        """The stream id of the last entry this sink holds for sure, when it can tell
        (files can; a webhook cannot: None)."""

    async def aclose(self) -> None: ...


# -- day files -------------------------------------------------------------------------------
def day_of(stream_id: str) -> date:
    """The UTC date of an entry, from its stream id."""
    return datetime.fromtimestamp(position(stream_id)[0] / 1000, UTC).date()


def day_file(directory: Path, day: date) -> Path:
    return directory / f"audit-{day.isoformat()}.jsonl"


def day_files(directory: Path) -> list[tuple[date, Path]]:
    """The day files in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _DAY_FILE.match(path.name)
        if match:
            found.append((date.fromisoformat(match.group(1)), path))
    return sorted(found)


def read_day_files(
    directory: Path, since: float | None = None, until: float | None = None
) -> Iterator[dict[str, Any]]:
    """The entries in the day files between two Unix times (inclusive, by stream id, as
    ``audit export`` reads Redis), oldest first. A line that is not whole (the write of a
    process that crashed, not yet repaired) is skipped."""
    low = (int(since * 1000), 0) if since is not None else None
    high = (int(until * 1000), 2**64) if until is not None else None
    for day, path in day_files(directory):
        if low is not None and day < datetime.fromtimestamp(low[0] / 1000, UTC).date():
            continue
        if high is not None and day > datetime.fromtimestamp(high[0] / 1000, UTC).date():
            break
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                    at = position(str(record["id"]))
                except (ValueError, KeyError, TypeError):
                    continue
                if (low is None or at >= low) and (high is None or at <= high):
                    yield record


class FileSink:
    """JSON Lines files rotated by UTC day, appended and fsynced batch by batch."""

    name = "file"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def deliver(self, entries: Sequence[Mapping[str, str]]) -> None:
        by_day: dict[date, list[str]] = {}
        for entry in entries:
            by_day.setdefault(day_of(entry["id"]), []).append(entry_line(entry) + "\n")
        try:
            for day, lines in by_day.items():
                await asyncio.to_thread(self._append, day_file(self.directory, day), lines)
        except OSError as error:
            raise SinkError(self.name, f"cannot write {self.directory}: {error}") from error

    def _append(self, path: Path, lines: list[str]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        with path.open("a", encoding="utf-8") as out:
            out.writelines(lines)
            out.flush()
            os.fsync(out.fileno())
        if created:  # the new file's name must survive a crash too
            descriptor = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)

    async def delivered_up_to(self) -> str | None:
        return await asyncio.to_thread(self._last_id)

    def _last_id(self) -> str | None:
        """The id of the newest whole line, after cutting off a line a crash left half
        written (its entry was never counted as delivered, so it is written again)."""
        for _day, path in reversed(day_files(self.directory)):
            last = _repair_and_read_last_line(path)
            if last is not None:
                try:
                    return str(json.loads(last)["id"])
                except (ValueError, KeyError, TypeError):
                    logger.error("audit file %s ends with a line that is no entry", path)
                    return None
        return None

    async def aclose(self) -> None:
        return None


def _repair_and_read_last_line(path: Path, chunk: int = 65536) -> str | None:
    """The last whole line of ``path`` (None if none); bytes after the last newline (a torn
    write) are cut off first."""
    with path.open("rb+") as file:
        end = file.seek(0, os.SEEK_END)
        buffer, offset = b"", end
        while offset > 0 and buffer.count(b"\n") < 2:  # the last line and the one before
            step = min(chunk, offset)
            offset -= step
            file.seek(offset)
            buffer = file.read(step) + buffer
        cut = buffer.rfind(b"\n")
        whole_end = offset + cut + 1
        if whole_end < end:
            logger.warning("audit file %s: cutting off a half-written line", path)
            file.truncate(whole_end)
            file.flush()
            os.fsync(file.fileno())
        if cut < 0:
            return None
        line = buffer[buffer.rfind(b"\n", 0, cut) + 1 : cut]
        return line.decode("utf-8") or None


# -- the webhook -----------------------------------------------------------------------------
def signature(secret: str, body: bytes) -> str:
    """The value of :data:`SIGNATURE_HEADER` for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSink:
    """POSTs batches to an HTTPS URL, retrying what may succeed later."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: str | None = None,
        *,
        attempts: int = 5,
        backoff_s: float = 0.5,
        max_wait_s: float = 60.0,
        timeout_s: float = 10.0,
    ) -> None:
        self.url = url
        self.secret = secret
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
        return self._session

    async def deliver(self, entries: Sequence[Mapping[str, str]]) -> None:
        body = json.dumps(
            {"entries": [entry_record(entry) for entry in entries]}, ensure_ascii=False
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret, body)
        problem = ""
        for attempt in range(self.attempts):
            wait = min(self.backoff_s * 2**attempt, self.max_wait_s)
            try:
                async with self._client().post(self.url, data=body, headers=headers) as response:
                    if response.status < 300:
                        return
                    problem = f"HTTP {response.status}"
                    if response.status != 429 and response.status < 500:
                        # the receiver refuses this batch: retrying at once will not help
                        raise SinkError(self.name, f"{problem} from {self.url}")
                    wait = _retry_after(response.headers.get("Retry-After"), wait)
                    wait = min(wait, self.max_wait_s)
            except (aiohttp.ClientError, TimeoutError) as error:
                problem = repr(error)
            if attempt + 1 < self.attempts:
                logger.warning(
                    "audit webhook: %s; trying again in %.1f s (%d of %d)",
                    problem,
                    wait,
                    attempt + 2,
                    self.attempts,
                )
                await asyncio.sleep(wait)
        raise SinkError(self.name, f"{problem} from {self.url} after {self.attempts} attempts")

    async def delivered_up_to(self) -> str | None:
        return None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _retry_after(value: str | None, default: float) -> float:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date)."""
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, moment.timestamp() - datetime.now(UTC).timestamp())
