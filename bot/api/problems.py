"""Problem details (RFC 9457): every error the API answers is ``application/problem+json``
with ``type``, ``title``, ``status``, ``detail`` and, where one part of the request is at
fault, ``field`` (a JSON pointer into the body, or the header's name)."""

from __future__ import annotations

import json
from typing import Final

from aiohttp import web

CONTENT_TYPE: Final = "application/problem+json"

#: One title per status, as RFC 9457 suggests for ``about:blank`` problems.
TITLES: Final = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem(
    status: int,
    detail: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A problem+json response."""
    body: dict[str, object] = {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if field is not None:
        body["field"] = field
    return web.Response(
        status=status,
        body=json.dumps(body, ensure_ascii=False).encode(),
        content_type=CONTENT_TYPE,
        headers=headers,
    )
