"""Checking a webhook from the bot: its signature and its age."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

#: A webhook older than this is refused (a replay).
MAX_AGE_S = 300


def verify_webhook(
    body: bytes, headers: Mapping[str, str], key: str, *, now: float | None = None
) -> bool:
    """Whether ``body`` (the bytes received) was signed by the bot with ``key`` within the
    last 5 minutes. Compares in constant time."""
    lowered = {name.lower(): value for name, value in headers.items()}
    timestamp = lowered.get("x-approval-bot-timestamp", "")
    signature = lowered.get("x-approval-bot-signature", "")
    if not timestamp.isdigit():
        return False
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > MAX_AGE_S:
        return False
    base = f"v1:{timestamp}:".encode() + body
    expected = "v1=" + hmac.new(key.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode())
