"""Webhooks to API clients: a request's JSON POSTed to its ``callback_url``, signed the way
Slack signs its requests, so that a receiver can tell the bot's from anyone else's.

``X-Approval-Bot-Timestamp``: Unix seconds; ``X-Approval-Bot-Signature``:
``v1=`` + hex HMAC-SHA256 of ``v1:{timestamp}:{body}`` with the client's key. A receiver
computes it over the bytes it received, compares in constant time, and refuses a timestamp
more than 5 minutes old (a replay).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any, Final, Protocol

import aiohttp

SIGNATURE_VERSION: Final = "v1"
#: How long one delivery may take before it counts as failed.
TIMEOUT_S: Final = 10.0


def sign(key: str, timestamp: int, body: bytes) -> str:
    """The ``X-Approval-Bot-Signature`` of ``body`` sent at ``timestamp``."""
    base = f"{SIGNATURE_VERSION}:{timestamp}:".encode() + body
    digest = hmac.new(key.encode(), base, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


@dataclass(frozen=True)
class Sent:
    """What one delivery got: the receiver's status (None: no answer), or the error."""

    status: int | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class WebhookSender(Protocol):
    async def post(self, url: str, key: str, payload: dict[str, Any]) -> Sent: ...


class HttpWebhookSender:
    """Delivers webhooks over one keep-alive session (opened on first use)."""

    def __init__(self, timeout_s: float = TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, key: str, payload: dict[str, Any]) -> Sent:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "approval-bot",
            "X-Approval-Bot-Timestamp": str(timestamp),
            "X-Approval-Bot-Signature": sign(key, timestamp, body),
        }
        try:
            # no redirects: a 3xx could send the signed body to a host nobody configured
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                return Sent(response.status)
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            return Sent(None, f"{type(error).__name__}: {error}")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
