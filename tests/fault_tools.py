"""Tools for bot processes the fault tests start and kill.

A tool in another process cannot append to a list in the test's memory, so each one writes a
line to the file ``$FAULT_TOOLS_LOG`` (flushed and synced before it goes on): a line
survives the process being killed right after. ``$FAULT_TOOLS_HOLD`` names a file; while it
exists a tool waits after writing its line, so that a test can kill the process mid-call.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

LOG_ENV = "FAULT_TOOLS_LOG"
HOLD_ENV = "FAULT_TOOLS_HOLD"


def _record(tool: str, arguments: dict[str, object]) -> None:
    line = json.dumps({"tool": tool, "arguments": arguments, "pid": os.getpid()})
    with open(os.environ[LOG_ENV], "a", encoding="utf-8") as log:
        log.write(line + "\n")
        log.flush()
        os.fsync(log.fileno())


async def _hold() -> None:
    hold = os.environ.get(HOLD_ENV)
    while hold and Path(hold).exists():
        await asyncio.sleep(0.05)


async def book_flight(destination: str, date: str) -> str:
    """Book a flight.

    Args:
        destination: The destination city.
        date: The date, YYYY-MM-DD.
    """
    _record("book_flight", {"destination": destination, "date": date})
    await _hold()
    return f"Booked {destination} on {date}: FL-1"


def runs(log: Path, tool: str | None = None) -> list[dict[str, object]]:
    """Every run the log records (of ``tool`` only, if given), oldest first."""
    if not log.exists():
        return []
    entries = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line]
    return [e for e in entries if tool is None or e["tool"] == tool]
