"""The client itself: ask for an approval, wait for the decision, and turn it into the
inputs that resume a Mistral conversation (the mistralai cookbook's "serialize and resume"
recipe, with a person deciding in Slack)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

import httpx2
from mistralai.extra.exceptions import DeferralReason, DeferredToolCallsException

from bot.client.errors import ApiProblem, ApprovalClientError, ApprovalExpired, ApprovalTimeout

Deferral = DeferredToolCallsException | Mapping[str, Any]

#: Answers worth sending the same request again for (the bot is briefly unavailable, or the
#: client is over its rate limit); creating is safe to repeat thanks to its Idempotency-Key.
RETRYABLE: Final = frozenset({429, 502, 503, 504})
#: The longest one long poll asks for (the API's limit).
LONG_POLL_S: Final = 60.0
NOT_APPROVED: Final = "This action was not approved. Do not retry it."


def _exception(deferred: Deferral) -> DeferredToolCallsException:
    if isinstance(deferred, DeferredToolCallsException):
        return deferred
    return DeferredToolCallsException.from_dict(dict(deferred))  # type: ignore[arg-type]


def approval_body(
    deferred: DeferredToolCallsException,
    *,
    requester: str,
    summary: str,
    tools: Sequence[Mapping[str, Any]] | None = None,
    callback_url: str | None = None,
    notify: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The body of ``POST /api/v1/approvals``."""
    body: dict[str, Any] = {
        "deferral": deferred.to_dict(),
        "requester": requester,
        "summary": summary,
    }
    if tools:
        body["tools"] = [dict(tool) for tool in tools]
    if callback_url:
        body["callback_url"] = callback_url
    if notify:
        body["notify"] = dict(notify)
    return body


def inputs_for(deferred: Deferral, approval: Mapping[str, Any]) -> list[Any]:
    """The inputs that resume the conversation with ``approval``'s decisions: the results
    the SDK already executed, then each deferred call confirmed (with ``override_args`` when
    a person edited them) or rejected with the reason the model should read, then (for
    server-side calls, whose confirmation carries no reason) the reasons as one message.
    A call the approval does not name is rejected: nothing runs that nobody approved."""
    exception = _exception(deferred)
    calls = {str(call["tool_call_id"]): call for call in approval.get("calls", [])}
    answered: list[Any] = []
    reasons: list[str] = []
    for deferred_call in exception.deferred_calls:
        call = calls.get(deferred_call.tool_call_id)
        if call is not None and call.get("decision") == "approved":
            answered.append(deferred_call.confirm(call.get("override_args") or None))
            continue
        reason = str((call or {}).get("reason") or NOT_APPROVED)
        answered.append(deferred_call.reject(reason))
        if deferred_call.reason == DeferralReason.SERVER_SIDE_CONFIRMATION_REQUIRED:
            reasons.append(f"- `{deferred_call.tool_name}`: {reason}")
    why = (
        [
            {
                "type": "message.input",
                "role": "user",
                "content": "Message from the approval system, not from the user: these tool "
                "calls were not allowed to run.\n" + "\n".join(reasons),
            }
        ]
        if reasons
        else []
    )
    return [*exception.executed_results, *answered, *why]


def _answer(response: httpx2.Response) -> dict[str, Any]:
    if response.is_success:
        body = response.json()
        if not isinstance(body, dict):
            raise ApprovalClientError(f"unexpected answer from the bot: {body!r:.200}")
        return body
    try:
        problem = response.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    detail = str(problem.get("detail") or response.reason_phrase or "request failed")
    field = problem.get("field")
    raise ApiProblem(response.status_code, detail, str(field) if field is not None else None)


def _pause(response: httpx2.Response | None, attempt: int) -> float:
    retry_after = str(response.headers.get("Retry-After", "")) if response is not None else ""
    if retry_after.isdigit():
        return min(float(retry_after), 60.0)
    return min(0.5 * 2.0**attempt, 10.0)


def _settled(deferred: DeferredToolCallsException, approval: dict[str, Any]) -> list[Any]:
    inputs = inputs_for(deferred, approval)
    if approval.get("status") == "expired":
        raise ApprovalExpired(approval, inputs)
    return inputs


class ApprovalClient:
    """The API's client (asyncio). ``url``: the bot's base URL; ``key``: this client's key
    (``api.clients[].key_env`` in the bot's config)."""

    def __init__(
        self,
        url: str,
        key: str,
        *,
        http: httpx2.AsyncClient | None = None,
        retries: int = 5,
    ) -> None:
        self.retries = retries
        self._own_http = http is None
        self._http = http or httpx2.AsyncClient(timeout=LONG_POLL_S + 15)
        self._base = url.rstrip("/") + "/api/v1"
        self._auth = {"Authorization": f"Bearer {key}"}

    async def __aenter__(self) -> ApprovalClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def _send(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        for attempt in range(self.retries + 1):
            try:
                response = await self._http.request(
                    method,
                    self._base + path,
                    json=body,
                    params=params,
                    headers={**self._auth, **(headers or {})},
                )
            except httpx2.TransportError as error:
                if attempt == self.retries:
                    raise ApprovalClientError(f"the bot did not answer: {error!r}") from error
                await asyncio.sleep(_pause(None, attempt))
                continue
            if response.status_code in RETRYABLE and attempt < self.retries:
                await asyncio.sleep(_pause(response, attempt))
                continue
            return _answer(response)
        raise AssertionError("unreachable")

    async def request_approval(
        self,
        deferred: Deferral,
        *,
        requester: str,
        summary: str,
        tools: Sequence[Mapping[str, Any]] | None = None,
        callback_url: str | None = None,
        notify: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Ask for an approval; the request as the API shows it (maybe decided already, by
        the policy). Sent again on a transient failure under the same Idempotency-Key, so
        it is made once."""
        body = approval_body(
            _exception(deferred),
            requester=requester,
            summary=summary,
            tools=tools,
            callback_url=callback_url,
            notify=notify,
        )
        key = idempotency_key or str(uuid.uuid4())
        return await self._send("POST", "/approvals", body=body, headers={"Idempotency-Key": key})

    async def get(self, approval_id: str, wait: float = 0.0) -> dict[str, Any]:
        """The request; ``wait``: hold the answer up to that many seconds (60 at most) until
        it is decided or expires."""
        params = {"wait": f"{min(wait, LONG_POLL_S):g}"} if wait > 0 else None
        return await self._send("GET", f"/approvals/{approval_id}", params=params)

    async def wait_for(self, approval_id: str, timeout: float) -> dict[str, Any]:
        """The request once decided or expired; ApprovalTimeout after ``timeout`` seconds."""
        started = time.monotonic()
        while True:
            left = timeout - (time.monotonic() - started)
            approval = await self.get(approval_id, wait=max(0.0, left))
            if approval.get("status") != "pending":
                return approval
            if time.monotonic() - started >= timeout:
                raise ApprovalTimeout(approval_id, timeout)

    async def report_outcome(
        self, approval_id: str, text: str, status: str = "done"
    ) -> dict[str, Any]:
        """Tell the approvers what the agent did afterwards (``done`` or ``failed``)."""
        return await self._send(
            "POST", f"/approvals/{approval_id}/outcome", body={"text": text, "status": status}
        )

    async def decide(
        self,
        deferred: Deferral,
        *,
        requester: str,
        summary: str,
        timeout: float = 3600.0,
        tools: Sequence[Mapping[str, Any]] | None = None,
        callback_url: str | None = None,
        notify: Mapping[str, str] | None = None,
    ) -> list[Any]:
        """Ask, wait, and return the inputs to pass to ``run_async`` to resume the
        conversation. Raises ApprovalExpired (nobody decided in time), ApprovalTimeout
        (``timeout`` seconds passed) or ApiProblem (the API refused the request)."""
        exception = _exception(deferred)
        approval = await self.request_approval(
            exception,
            requester=requester,
            summary=summary,
            tools=tools,
            callback_url=callback_url,
            notify=notify,
        )
        if approval.get("status") == "pending":
            approval = await self.wait_for(str(approval["id"]), timeout)
        return _settled(exception, approval)


class SyncApprovalClient:
    """:class:`ApprovalClient` for scripts: the same methods, blocking."""

    def __init__(
        self, url: str, key: str, *, http: httpx2.Client | None = None, retries: int = 5
    ) -> None:
        self.retries = retries
        self._own_http = http is None
        self._http = http or httpx2.Client(timeout=LONG_POLL_S + 15)
        self._base = url.rstrip("/") + "/api/v1"
        self._auth = {"Authorization": f"Bearer {key}"}

    def __enter__(self) -> SyncApprovalClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        for attempt in range(self.retries + 1):
            try:
                response = self._http.request(
                    method,
                    self._base + path,
                    json=body,
                    params=params,
                    headers={**self._auth, **(headers or {})},
                )
            except httpx2.TransportError as error:
                if attempt == self.retries:
                    raise ApprovalClientError(f"the bot did not answer: {error!r}") from error
                time.sleep(_pause(None, attempt))
                continue
            if response.status_code in RETRYABLE and attempt < self.retries:
                time.sleep(_pause(response, attempt))
                continue
            return _answer(response)
        raise AssertionError("unreachable")

    def decide(
        self,
        deferred: Deferral,
        *,
        requester: str,
        summary: str,
        timeout: float = 3600.0,
        tools: Sequence[Mapping[str, Any]] | None = None,
        callback_url: str | None = None,
        notify: Mapping[str, str] | None = None,
    ) -> list[Any]:
        """As :meth:`ApprovalClient.decide`."""
        exception = _exception(deferred)
        body = approval_body(
            exception,
            requester=requester,
            summary=summary,
            tools=tools,
            callback_url=callback_url,
            notify=notify,
        )
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        approval = self._send("POST", "/approvals", body=body, headers=headers)
        started = time.monotonic()
        while approval.get("status") == "pending":
            left = timeout - (time.monotonic() - started)
            if left <= 0:
                raise ApprovalTimeout(str(approval["id"]), timeout)
            params = {"wait": f"{min(left, LONG_POLL_S):g}"}
            approval = self._send("GET", f"/approvals/{approval['id']}", params=params)
        return _settled(exception, approval)

    def report_outcome(self, approval_id: str, text: str, status: str = "done") -> dict[str, Any]:
        return self._send(
            "POST", f"/approvals/{approval_id}/outcome", body={"text": text, "status": status}
        )
