"""A backend agent, run as its own process by tests/test_api_backend.py: it runs a Mistral
conversation (against the stand-in) with a tool that needs confirmation, catches the
deferral, asks the bot through bot.client, and resumes its conversation with the inputs it
gets back, as the README's example does. Each run of the tool is appended to a file, so the
test can count them. It prints one JSON line: the answer, or what went wrong.

    python -m tests.backend_agent '{"bot_url": …, "key": …, "mistral_url": …, …}'
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from mistralai.client import Mistral
from mistralai.extra.exceptions import DeferredToolCallsException
from mistralai.extra.run.context import RunContext

from bot.client import ApprovalClient, ApprovalExpired, SyncApprovalClient

ARGS: dict[str, Any] = json.loads(sys.argv[1])
RUNS = Path(ARGS["runs"])

#: The schema the bot's Edit form is built from (what the model saw).
TOOLS = [
    {
        "name": "book_flight",
        "description": "Book a flight.",
        "parameters": {
            "type": "object",
            "properties": {"destination": {"type": "string"}, "date": {"type": "string"}},
            "required": ["destination", "date"],
        },
    }
]


def book_flight(destination: str, date: str) -> str:
    """Book a flight.

    Args:
        destination: The destination city.
        date: The date, YYYY-MM-DD.
    """
    with RUNS.open("a") as runs:
        runs.write(json.dumps({"destination": destination, "date": date}) + "\n")
    return f"Booked {destination} on {date}: FL-1"


async def decide(deferred: DeferredToolCallsException) -> list[Any]:
    ask = {"requester": ARGS["requester"], "summary": ARGS["summary"], "timeout": 30}
    if ARGS.get("sync"):  # the script variant, off the event loop

        def blocking() -> list[Any]:
            with SyncApprovalClient(ARGS["bot_url"], ARGS["key"]) as approvals:
                return approvals.decide(deferred, tools=TOOLS, **ask)

        return await asyncio.to_thread(blocking)
    async with ApprovalClient(ARGS["bot_url"], ARGS["key"]) as approvals:
        return await approvals.decide(deferred, tools=TOOLS, **ask)


async def main() -> dict[str, Any]:
    client = Mistral(api_key="test-key", server_url=ARGS["mistral_url"])
    async with RunContext(model="mistral-medium-latest") as run_ctx:
        run_ctx.register_func(book_flight, requires_confirmation=True)
        try:
            result = await client.beta.conversations.run_async(
                run_ctx=run_ctx, inputs=ARGS["prompt"]
            )
            return {"answer": result.output_as_text, "deferred": False}
        except DeferredToolCallsException as deferred:
            expired = False
            try:
                inputs = await decide(deferred)
            except ApprovalExpired as error:
                inputs, expired = error.inputs, True
            run_ctx.conversation_id = deferred.conversation_id
            result = await client.beta.conversations.run_async(run_ctx=run_ctx, inputs=inputs)
            return {"answer": result.output_as_text, "deferred": True, "expired": expired}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())), flush=True)
