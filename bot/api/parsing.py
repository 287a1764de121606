"""Bodies and parameters of the API's requests, checked for shape before the flow sees them.
Every mistake raises InvalidInput naming the field (a JSON pointer) and the fix."""

from __future__ import annotations

import json
import re
from typing import Any, Final
from urllib.parse import urlsplit

from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from bot.errors import InvalidInput
from bot.flow.api_approvals import ApprovalAsk, Notify
from bot.flow.webhooks import LOOPBACK_HOSTS, is_private_address

USER_ID: Final = re.compile(r"^[UW][A-Z0-9]{2,}$")
CHANNEL_ID: Final = re.compile(r"^[CGD][A-Z0-9]{2,}$")
EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
THREAD_TS: Final = re.compile(r"^\d{1,12}\.\d{1,9}$")
MAX_SUMMARY: Final = 3000
MAX_IDEMPOTENCY_KEY: Final = 255
OUTCOME_STATUSES: Final = ("done", "failed")


def json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidInput("", f"the body is not JSON: {error}", status=400) from error
    if not isinstance(body, dict):
        raise InvalidInput("", "the body must be a JSON object", status=400)
    return body


def approval_ask(body: dict[str, Any], *, private_webhooks: bool = False) -> ApprovalAsk:
    """``POST /api/v1/approvals``'s body. ``private_webhooks``: a callback URL may name
    this machine or a private network (``API_WEBHOOK_PRIVATE_ADDRESSES``)."""
    known = {"deferral", "requester", "summary", "tools", "callback_url", "notify"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise InvalidInput(f"/{unknown[0]}", "unknown field; fix: remove it or fix its spelling")
    if "deferral" not in body:
        raise InvalidInput("/deferral", "missing; fix: send DeferredToolCallsException.to_dict()")
    requester, email = _requester(body.get("requester"))
    return ApprovalAsk(
        deferral=body["deferral"] if isinstance(body["deferral"], dict) else _not_object(),
        requester=requester,
        requester_email=email,
        summary=_text(body.get("summary"), "/summary", MAX_SUMMARY),
        tools=_tools(body.get("tools")),
        callback_url=_callback_url(body.get("callback_url"), private_webhooks),
        notify=_notify(body.get("notify")),
    )


def _not_object() -> dict[str, Any]:
    raise InvalidInput("/deferral", "must be a JSON object (DeferredToolCallsException.to_dict())")


def _requester(value: Any) -> tuple[str, str | None]:
    """The requester's user id, or ("", their email) to look up in Slack."""
    if isinstance(value, str) and USER_ID.match(value):
        return value, None
    if isinstance(value, dict) and set(value) == {"email"}:
        email = value["email"]
        if isinstance(email, str) and EMAIL.match(email) and len(email) <= 254:
            return "", email
        raise InvalidInput("/requester/email", "must be an email address")
    raise InvalidInput(
        "/requester", 'must be a Slack user id such as U0123ABCDE, or {"email": "…"}'
    )


def _text(value: Any, where: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(where, "must be a non-empty string")
    if len(value) > limit:
        raise InvalidInput(where, f"longer than {limit} characters; fix: shorten it")
    return value


def _tools(value: Any) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, list):
        raise InvalidInput("/tools", "must be a list of {name, description, parameters}")
    tools: dict[str, dict[str, Any]] = {}
    for index, tool in enumerate(value):
        where = f"/tools/{index}"
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise InvalidInput(f"{where}/name", "must be the tool's name")
        parameters = tool.get("parameters") or {"type": "object"}
        if not isinstance(parameters, dict):
            raise InvalidInput(f"{where}/parameters", "must be a JSON schema (an object)")
        try:
            validator_for(parameters).check_schema(parameters)
        except SchemaError as error:
            raise InvalidInput(
                f"{where}/parameters", f"not a valid JSON schema: {error.message}"
            ) from error
        if tool["name"] in tools:
            raise InvalidInput(f"{where}/name", "this tool is listed twice")
        tools[tool["name"]] = dict(parameters)
    return tools


def callback_url_problem(value: str, private_ok: bool = False) -> str | None:
    """Why ``value`` cannot be a callback URL (None: it can). ``private_ok``
    (``API_WEBHOOK_PRIVATE_ADDRESSES``): a receiver on this machine or a private network
    may be named; otherwise such an address is refused, so that a client cannot make the
    bot POST into its own network (SSRF). A name that resolves to one is refused at
    delivery (bot.flow.webhooks)."""
    parts = urlsplit(value)
    host = parts.hostname
    secure = parts.scheme == "https" or (
        parts.scheme == "http" and host in LOOPBACK_HOSTS and private_ok
    )
    if not secure or not host:
        return (
            "must be an https:// URL (the webhook carries tool arguments); http:// only to "
            "this machine (127.0.0.1, ::1, localhost) with API_WEBHOOK_PRIVATE_ADDRESSES=true"
        )
    if not private_ok and (host in LOOPBACK_HOSTS or is_private_address(host)):
        return (
            f"{host} is on this machine or a private network; fix: a public https:// URL, "
            "or set API_WEBHOOK_PRIVATE_ADDRESSES=true if the receiver is inside your network"
        )
    return None


def _callback_url(value: Any, private_ok: bool) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 2000:
        raise InvalidInput("/callback_url", "must be a URL of at most 2000 characters")
    problem = callback_url_problem(value, private_ok)
    if problem:
        raise InvalidInput("/callback_url", problem)
    return value


def _notify(value: Any) -> Notify | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("channel"), str):
        raise InvalidInput("/notify/channel", "must be a channel id such as C0123ABCDE")
    if not CHANNEL_ID.match(value["channel"]):
        raise InvalidInput("/notify/channel", "must be a channel id such as C0123ABCDE")
    thread_ts = value.get("thread_ts") or ""
    if thread_ts and not (isinstance(thread_ts, str) and THREAD_TS.match(thread_ts)):
        raise InvalidInput("/notify/thread_ts", "must be a message timestamp such as 1712.0001")
    return Notify(value["channel"], thread_ts)


def idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not value or len(value) > MAX_IDEMPOTENCY_KEY or not value.isprintable():
        raise InvalidInput(
            "Idempotency-Key", f"must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters"
        )
    return value


def wait_seconds(value: str | None, limit: float) -> float:
    if value is None:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= limit:
        raise InvalidInput("wait", f"must be a number of seconds from 0 to {limit:g}", status=400)
    return seconds


def outcome(body: dict[str, Any]) -> tuple[str, str]:
    """``POST …/outcome``'s body: the text and the status."""
    unknown = sorted(set(body) - {"text", "status"})
    if unknown:
        raise InvalidInput(f"/{unknown[0]}", "unknown field; fix: remove it or fix its spelling")
    text = _text(body.get("text"), "/text", MAX_SUMMARY)
    status = body.get("status")
    if status not in OUTCOME_STATUSES:
        raise InvalidInput("/status", "must be done or failed")
    return text, str(status)
