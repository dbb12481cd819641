"""HubSpot's error bodies (hubspot-api.md §3.1 and §2.3), as the simulator sends them."""

from __future__ import annotations

import uuid
from typing import Any

_MESSAGES = {
    400: ("VALIDATION_ERROR", "Invalid input"),
    401: (
        "INVALID_AUTHENTICATION",
        "Authentication credentials not found. This API supports OAuth 2.0 "
        "authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
    ),
    403: ("MISSING_SCOPES", "This app hasn't been granted all required scopes to make this call."),
    404: ("OBJECT_NOT_FOUND", "Object not found"),
    405: ("METHOD_NOT_ALLOWED", "Method not allowed"),
    409: ("CONFLICT", "Conflict"),
    414: ("URI_TOO_LONG", "URI too long"),
    423: ("LOCKED", "The record is locked by a high-volume sync; retry in a few seconds"),
    477: ("MIGRATION_IN_PROGRESS", "Migration in progress"),
}


def correlation_id() -> str:
    """A fresh correlation id, as HubSpot puts on every answer."""
    return str(uuid.uuid4())


def error_body(
    status: int,
    *,
    message: str | None = None,
    category: str | None = None,
    context: dict[str, list[str]] | None = None,
    sub_category: str | None = None,
) -> dict[str, Any]:
    """HubSpot's standard error body for ``status``."""
    default_category, default_message = _MESSAGES.get(
        status, ("INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST", f"HTTP {status}")
    )
    body: dict[str, Any] = {
        "status": "error",
        "message": message or default_message,
        "correlationId": correlation_id(),
        "category": category or default_category,
    }
    if sub_category:
        body["subCategory"] = sub_category
    if context:
        body["context"] = context
    return body


def rate_limit_body(policy: str = "TEN_SECONDLY_ROLLING") -> dict[str, Any]:
    """HubSpot's 429 body (it uses errorType and policyName rather than category)."""
    message = (
        "You have reached your daily limit."
        if policy == "DAILY"
        else (
            "You have reached your secondly limit."
            if policy == "SECONDLY"
            else "You have reached your ten_secondly_rolling limit."
        )
    )
    return {
        "status": "error",
        "message": message,
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id(),
        "policyName": policy,
        "requestId": str(uuid.uuid4()),
    }


def invalid_ids_body(object_type: str, ids: list[str]) -> dict[str, Any]:
    """The answer HubSpot gives an association naming ids that do not exist (hubspot-api.md §3.1)."""
    label = object_type.upper().rstrip("S") if object_type else "OBJECT"
    return error_body(
        400,
        message="One or more associations are invalid",
        category="VALIDATION_ERROR",
        sub_category="INVALID_OBJECT_IDS",
        context={
            "INVALID_OBJECT_IDS": [f"{label}={i} is not valid" for i in ids],
            "objectId": list(ids),
            "objectType": [label],
        },
    )


def standard_error(body: dict[str, Any]) -> dict[str, Any]:
    """An error body reshaped as a batch answer's ``errors[]`` entry (the spec's StandardError)."""
    return {
        "status": "error",
        "category": body.get("category", "VALIDATION_ERROR"),
        "subCategory": {},
        "message": body.get("message", ""),
        "context": body.get("context", {}),
        "errors": [],
        "links": {},
        "id": body.get("correlationId", ""),
    }


def missing_scopes_body(scopes: list[str]) -> dict[str, Any]:
    """A 403 naming the scopes the token lacks."""
    return error_body(403, context={"missingScopes": scopes})


def body_for_status(status: int, policy: str | None = None, missing_scopes: list[str] | None = None) -> dict[str, Any]:
    """HubSpot's own body for a scripted or injected status."""
    if status == 429:
        return rate_limit_body(policy or "TEN_SECONDLY_ROLLING")
    if status == 403:
        return missing_scopes_body(missing_scopes or ["crm.objects.deals.write"])
    return error_body(status)
