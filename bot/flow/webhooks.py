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
import ipaddress
import json
import socket
import time
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

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


#: Hosts on this machine by name or address (``http://`` may reach them, where allowed).
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "::1", "localhost"})


def is_public(address: str) -> bool:
    """Whether an IP address is a global one (not loopback, private, link-local, reserved)."""
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_global
    except ValueError:
        return False


def is_private_address(host: str) -> bool:
    """Whether a URL's host is an IP address of this machine or a private network. A name
    is checked when it is resolved (:class:`PublicResolver`), on the address connected to."""
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return not is_public(host)


class PrivateAddress(OSError):
    """A callback host that resolves only to this machine or a private network."""


class PublicResolver(AbstractResolver):
    """Resolves names to their public addresses only: a callback host that resolves to this
    machine or a private network is not connected to (SSRF), and since the address checked
    is the one connected to, a name that changes between the check and the POST (DNS
    rebinding) cannot slip through."""

    def __init__(self) -> None:
        self._resolver = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        public = [result for result in found if is_public(result["host"])]
        if not public:
            raise PrivateAddress(
                f"{host} resolves only to addresses on this machine or a private network; "
                "not posted to (API_WEBHOOK_PRIVATE_ADDRESSES=true allows them)"
            )
        return public

    async def close(self) -> None:
        await self._resolver.close()


class HttpWebhookSender:
    """Delivers webhooks over one keep-alive session (opened on first use). ``private_ok``
    False: only to public addresses (an IP address in the URL is checked here, a name when
    it is resolved)."""

    def __init__(self, timeout_s: float = TIMEOUT_S, *, private_ok: bool = False) -> None:
        self.timeout_s = timeout_s
        self.private_ok = private_ok
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, key: str, payload: dict[str, Any]) -> Sent:
        host = urlsplit(url).hostname or ""
        if not self.private_ok and is_private_address(host):
            return Sent(None, f"{host} is on this machine or a private network; not posted to")
        if self._session is None:
            connector = None if self.private_ok else aiohttp.TCPConnector(resolver=PublicResolver())
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout_s)
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
            if isinstance(error.__cause__, PrivateAddress):  # aiohttp wraps the resolver's
                return Sent(None, str(error.__cause__))
            return Sent(None, f"{type(error).__name__}: {error}")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
