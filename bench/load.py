"""The load process: sends signed requests to one URL and reports each one's latency.

Run by the benchmark as ``python -m bench.load SPEC OUT``, a process of its own so that the
load is not generated on the event loop or the core of the server it measures. ``SPEC`` is
JSON::

    {"url": "...", "secret": "...", "concurrency": 200, "warm": true,
     "requests": [{"body": "...", "content_type": "..."}, ...]}

Every request is signed the moment it is sent, as Slack does. With ``concurrency`` equal to
the number of requests they all leave at once (a burst); with fewer, that many senders take
requests from a queue until it is empty (a sustained load). ``warm`` first opens as many
keep-alive connections as ``concurrency`` (a GET /healthz each), so that the measure is the
server's work and not TCP handshakes. ``OUT`` receives::

    {"latencies_ms": [...], "statuses": {"200": n}, "elapsed_s": s, "errors": [...]}
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.signature import SignatureVerifier


async def _send(
    session: aiohttp.ClientSession,
    url: str,
    verifier: SignatureVerifier,
    request: dict[str, str],
) -> tuple[float, int | str]:
    body = request["body"]
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": request["content_type"],
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": verifier.generate_signature(timestamp=stamp, body=body),
    }
    started = time.perf_counter()
    try:
        async with session.post(url, data=body.encode(), headers=headers) as response:
            await response.read()
            status: int | str = response.status
    except (aiohttp.ClientError, TimeoutError) as error:
        status = type(error).__name__
    return (time.perf_counter() - started) * 1000, status


async def _warm(session: aiohttp.ClientSession, url: str, connections: int) -> None:
    parts = urlsplit(url)
    health = f"{parts.scheme}://{parts.netloc}/healthz"

    async def one() -> None:
        async with session.get(health) as response:
            await response.read()

    await asyncio.gather(*(one() for _ in range(connections)))


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    url: str = spec["url"]
    requests: list[dict[str, str]] = spec["requests"]
    concurrency = max(1, min(int(spec["concurrency"]), len(requests)))
    verifier = SignatureVerifier(spec["secret"])
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    results: list[tuple[float, int | str]] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        if spec.get("warm", True):
            await _warm(session, url, concurrency)
        queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        for request in requests:
            queue.put_nowait(request)

        async def sender() -> None:
            while not queue.empty():
                results.append(await _send(session, url, verifier, queue.get_nowait()))

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    statuses: dict[str, int] = {}
    for _, status in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {
        "latencies_ms": [latency for latency, _ in results],
        "statuses": statuses,
        "elapsed_s": elapsed,
    }


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    result = asyncio.run(run(spec))
    Path(argv[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
