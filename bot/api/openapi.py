"""The API's OpenAPI 3.1 document (``GET /api/v1/openapi.json``); the tests validate every
response the API gives against it."""

from __future__ import annotations

from typing import Any, Final

_NULLABLE_STRING: Final = {"type": ["string", "null"]}

_PROBLEM: Final = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "field": {"type": "string", "description": "JSON pointer into the body, or a header"},
    },
}

_CALL: Final = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "tool_call_id", "tool_name", "arguments", "decision", "override_args", "reason",
        "decided_by", "decided_at", "rule", "granted",
    ],
    "properties": {
        "tool_call_id": {"type": "string"},
        "tool_name": {"type": "string"},
        "arguments": {"type": "string", "description": "as the model sent them (JSON text)"},
        "decision": {"enum": ["approved", "denied", "expired", None]},
        "override_args": {
            "type": ["object", "null"],
            "description": "arguments a person changed: pass to DeferredToolCallEntry.confirm()",
        },
        "reason": {
            **_NULLABLE_STRING,
            "description": "for a call that does not run: what the model should read",
        },
        "decided_by": {
            **_NULLABLE_STRING,
            "description": "a Slack user id, or policy (a rule, an override or a grant)",
        },
        "decided_at": {**_NULLABLE_STRING, "format": "date-time"},
        "rule": _NULLABLE_STRING,
        "granted": {"type": "boolean", "description": "allowed by an approver's grant"},
    },
}  # fmt: skip

_APPROVAL: Final = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "id", "status", "client", "requester", "summary", "created_at", "expires_at", "calls",
        "card_url", "outcome",
    ],
    "properties": {
        "id": {"type": "string"},
        "status": {"enum": ["pending", "decided", "expired"]},
        "client": {"type": "string"},
        "requester": {"type": "string"},
        "summary": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "expires_at": {**_NULLABLE_STRING, "format": "date-time"},
        "calls": {"type": "array", "items": {"$ref": "#/components/schemas/Call"}},
        "card_url": _NULLABLE_STRING,
        "outcome": _NULLABLE_STRING,
    },
}  # fmt: skip

_NEW_APPROVAL: Final = {
    "type": "object",
    "additionalProperties": False,
    "required": ["deferral", "requester", "summary"],
    "properties": {
        "deferral": {
            "type": "object",
            "description": "DeferredToolCallsException.to_dict() (the mistralai SDK)",
            "required": ["conversation_id", "deferred_calls"],
        },
        "requester": {
            "oneOf": [
                {"type": "string", "pattern": "^[UW][A-Z0-9]{2,}$"},
                {
                    "type": "object",
                    "required": ["email"],
                    "additionalProperties": False,
                    "properties": {"email": {"type": "string", "format": "email"}},
                },
            ]
        },
        "summary": {"type": "string", "minLength": 1, "maxLength": 3000},
        "tools": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "description": {"type": "string"},
                    "parameters": {"type": "object"},
                },
            },
        },
        "callback_url": {"type": "string", "format": "uri"},
        "notify": {
            "type": "object",
            "required": ["channel"],
            "properties": {"channel": {"type": "string"}, "thread_ts": {"type": "string"}},
        },
    },
}


def _problems(*statuses: int) -> dict[str, Any]:
    return {
        str(status): {
            "description": "a problem (RFC 9457)",
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
        }
        for status in statuses
    }


def _approval_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Approval"}}},
    }


_ID: Final = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}

DOCUMENT: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {
        "title": "approval-bot API",
        "version": "1",
        "description": "Approvals in Slack for Mistral agents that run anywhere: send a "
        "deferral, get the decision back (long poll or signed webhook).",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Problem": _PROBLEM,
            "Call": _CALL,
            "Approval": _APPROVAL,
            "NewApproval": _NEW_APPROVAL,
        },
    },
    "security": [{"bearer": []}],
    "webhooks": {
        "approvalConcluded": {
            "post": {
                "summary": "a request with a callback_url was decided or expired",
                "description": "Signed: X-Approval-Bot-Signature is v1= and the hex "
                "HMAC-SHA256 of v1:{timestamp}:{body} with the client's key. Any 2xx takes it; "
                "otherwise it comes again (1 s doubling to an hour) for 24 hours.",
                "parameters": [
                    {
                        "name": "X-Approval-Bot-Timestamp",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "X-Approval-Bot-Signature",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^v1=[0-9a-f]{64}$"},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Approval"}}
                    },
                },
                "responses": {"2XX": {"description": "taken"}},
            }
        }
    },
    "paths": {
        "/api/v1/approvals": {
            "post": {
                "operationId": "createApproval",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "schema": {"type": "string", "maxLength": 255},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/NewApproval"}}
                    },
                },
                "responses": {
                    "201": _approval_response("the request, made"),
                    "200": _approval_response("the request made before under this key"),
                    **_problems(400, 401, 403, 409, 413, 422, 429, 503),
                },
            }
        },
        "/api/v1/approvals/{id}": {
            "get": {
                "operationId": "getApproval",
                "parameters": [
                    _ID,
                    {
                        "name": "wait",
                        "in": "query",
                        "schema": {"type": "number", "minimum": 0, "maximum": 60},
                    },
                ],
                "responses": {
                    "200": _approval_response("the request"),
                    **_problems(400, 401, 404, 429, 503),
                },
            }
        },
        "/api/v1/approvals/{id}/outcome": {
            "post": {
                "operationId": "reportOutcome",
                "parameters": [_ID],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["text", "status"],
                                "properties": {
                                    "text": {"type": "string"},
                                    "status": {"enum": ["done", "failed"]},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": _approval_response("the request, with its outcome"),
                    **_problems(400, 401, 404, 409, 413, 422, 429, 503),
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "security": [],
                "responses": {
                    "200": {
                        "description": "this document",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    },
}
