"""HubSpot's error bodies as the simulator sends them (docs/reference/hubspot.md §2.3 and §3.1).

Every body carries a fresh ``correlationId`` (a uuid4), as HubSpot's do. Ordinary errors follow the spec's
``Error`` schema (``category``, ``correlationId``, ``message`` required); 429s use HubSpot's own shape
(``errorType`` and ``policyName``, plus the ``category`` integrators report); per-input batch failures
use ``StandardError``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

SCOPES_DOC_URL = "https://developers.hubspot.com/scopes"
DEFAULT_MISSING_SCOPES = ("crm.objects.deals.write",)
RATE_LIMIT_POLICIES = ("TEN_SECONDLY_ROLLING", "SECONDLY", "DAILY")

# (category, message) per status: HubSpot's wording where known (docs/reference/hubspot.md §3), plain words elsewhere.
_DEFAULTS: dict[int, tuple[str, str]] = {
    400: ("VALIDATION_ERROR", "Invalid input"),
    401: (
        "INVALID_AUTHENTICATION",
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
        "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
    ),
    403: (
        "MISSING_SCOPES",
        "This app hasn't been granted all required scopes to make this call. "
        f"Read more about required scopes here: {SCOPES_DOC_URL}.",
    ),
    404: ("OBJECT_NOT_FOUND", "Object not found"),
    405: ("METHOD_NOT_ALLOWED", "Method not allowed"),
    409: ("CONFLICT", "Conflict"),
    411: ("VALIDATION_ERROR", "Length required"),
    413: ("VALIDATION_ERROR", "Request body too large"),
    414: ("URI_TOO_LONG", "URI too long"),
    423: ("LOCKED", "The record is locked by a high-volume sync; retry in a few seconds"),
    477: ("MIGRATION_IN_PROGRESS", "This account is being migrated between data centers"),
    500: ("INTERNAL_ERROR", "Internal error"),
    501: ("NOT_IMPLEMENTED", "Not implemented"),
    502: ("INTERNAL_ERROR", "Bad gateway: processing limits reached, retry in a few seconds"),
    503: ("SERVICE_UNAVAILABLE", "Service temporarily unavailable"),
    504: ("INTERNAL_ERROR", "Gateway timeout: processing limits reached, retry in a few seconds"),
    521: ("INTERNAL_ERROR", "Web server is down"),
    522: ("INTERNAL_ERROR", "Connection timed out"),
    523: ("INTERNAL_ERROR", "Origin is unreachable"),
    524: ("INTERNAL_ERROR", "A timeout occurred"),
}
_RATE_LIMIT_MESSAGES = {
    "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
    # The exact text HubSpot's SDKs look for to recognise the search limit (docs/reference/hubspot.md §2.3).
    "SECONDLY": "You have reached your secondly limit.",
    "DAILY": "You have reached your daily limit.",
}


def correlation_id() -> str:
    """A fresh correlation id, as HubSpot puts on every answer."""
    return str(uuid.uuid4())


def error_body(
    status: int,
    *,
    message: str | None = None,
    category: str | None = None,
    sub_category: str | None = None,
    context: dict[str, list[str]] | None = None,
    links: dict[str, str] | None = None,
) -> dict[str, Any]:
    """HubSpot's standard error body for ``status``, with any field overridden."""
    fallback = ("INTERNAL_ERROR" if status >= 500 else "VALIDATION_ERROR", f"HTTP {status}")
    default_category, default_message = _DEFAULTS.get(status, fallback)
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
    if links:
        body["links"] = links
    return body


def rate_limit_body(policy: str = "TEN_SECONDLY_ROLLING") -> dict[str, Any]:
    """HubSpot's 429 body for ``policy`` (it names the policy instead of a category)."""
    return {
        "status": "error",
        "message": _RATE_LIMIT_MESSAGES.get(policy, f"You have reached your {policy.lower()} limit."),
        "errorType": "RATE_LIMIT",
        # Not in HubSpot's documented 429 body, but integrators report it (docs/reference/hubspot.md §2.3), and it lets
        # the body satisfy the spec's Error schema, which requires a category.
        "category": "RATE_LIMITS",
        "correlationId": correlation_id(),
        "policyName": policy,
        "requestId": str(uuid.uuid4()),
    }


def missing_scopes_body(scopes: Sequence[str] = DEFAULT_MISSING_SCOPES) -> dict[str, Any]:
    """A 403 naming the scopes the token lacks in ``context.missingScopes``."""
    return error_body(403, context={"missingScopes": list(scopes)}, links={"scopes": SCOPES_DOC_URL})


def expired_token_body() -> dict[str, Any]:
    """The 401 for an OAuth access token past its lifetime."""
    message = "The OAuth token used to make this call expired."
    return error_body(401, message=message, category="EXPIRED_AUTHENTICATION")


def invalid_ids_context(bad: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """The context HubSpot gives for ids that are not valid; ``bad`` holds (label, id) pairs."""
    return {
        "INVALID_OBJECT_IDS": [f"{lbl}={object_id} is not valid" for lbl, object_id in bad],
        "objectId": [object_id for _, object_id in bad],
        "objectType": list(dict.fromkeys(lbl for lbl, _ in bad)),
    }


def invalid_ids_body(bad: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The 400 for an association naming ids that do not exist (docs/reference/hubspot.md §3.1, the reported body)."""
    return error_body(
        400,
        message="One or more associations are invalid",
        category="VALIDATION_ERROR",
        sub_category="INVALID_OBJECT_IDS",
        context=invalid_ids_context(bad),
    )


def invalid_batch_body(bad: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The 400 refusing a whole default batch that names ids that are not valid (docs/reference/hubspot.md §8)."""
    context = {"INVALID_OBJECT_IDS": [f"{lbl}={object_id} is not valid" for lbl, object_id in bad]}
    return error_body(400, message="One or more associations are invalid", context=context)


def duplicate_inputs_body(named: str, first: int, again: int) -> dict[str, Any]:
    """The 400 refusing a batch that names the same association twice (docs/reference/hubspot.md §8)."""
    message = f"Duplicate association in the batch: {named} (inputs[{first}] and inputs[{again}])"
    return error_body(400, message=message, context={"DUPLICATE_ASSOCIATIONS": [named]})


def not_found_body(bad: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The 404 for records that do not exist, naming them in ``context.objectId``."""
    names = ", ".join(f"{lbl}={object_id}" for lbl, object_id in bad)
    context = {"objectId": [i for _, i in bad], "objectType": list(dict.fromkeys(lbl for lbl, _ in bad))}
    return error_body(404, message=f"Object not found: {names}", context=context)


def batch_error(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """An error body reshaped as one ``errors[]`` entry of a batch answer (the spec's ``StandardError``).

    ``subCategory`` is left out: StandardError declares it an object, not the string Error uses, and
    HubSpot's reported per-input bodies carry none.
    """
    return {
        "status": "error",
        "category": body.get("category", "VALIDATION_ERROR"),
        "message": body.get("message", f"HTTP {status}"),
        "context": body.get("context", {}),
        "errors": [],
        "links": {},
        "id": body.get("correlationId") or correlation_id(),
    }


def oauth_error_body(status_name: str, message: str) -> dict[str, Any]:
    """HubSpot's OAuth refusal, whose ``status`` names the reason (e.g. BAD_REFRESH_TOKEN).

    ``category`` is added so that the body also satisfies the ``Error`` schema the OAuth spec declares.
    """
    return {
        "status": status_name,
        "message": message,
        "correlationId": correlation_id(),
        "requestId": str(uuid.uuid4()),
        "category": "VALIDATION_ERROR",
    }


def body_for_status(
    status: int,
    *,
    policy: str | None = None,
    missing_scopes: Sequence[str] | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    """HubSpot's own body for an injected or scripted ``status``."""
    if status == 429:
        body = rate_limit_body(policy or "TEN_SECONDLY_ROLLING")
    elif status == 403:
        body = missing_scopes_body(missing_scopes or DEFAULT_MISSING_SCOPES)
    else:
        body = error_body(status)
    if message:
        body["message"] = message
    return body


#: The subCategory of a refusal past an association limit. HubSpot has not published the body of this
#: refusal (docs/reference/hubspot.md §9.4: "an error informing you of the error details"), so this function
#: is the simulator's assumption, kept here alone: one captured real answer corrects it.
ASSOCIATION_LIMIT_SUB_CATEGORY = "ASSOCIATION_LIMIT_EXCEEDED"


def association_limit_body(from_label: str, to_label: str, label: str | None, limit: int) -> dict[str, Any]:
    """The 400 for an input that would take a record past an association limit.

    Its ``context`` names the object types, the label and the limit, never a record id, as the brief for the
    field's answer asks (the ids are the request's own).
    """
    what = f"{to_label} records labelled {label!r}" if label else f"{to_label} records"
    context = {"fromObjectType": [from_label], "toObjectType": [to_label], "limit": [str(limit)]}
    if label:
        context["label"] = [label]
    return error_body(
        400,
        message=f"Association limit reached: a {from_label} can be associated with at most {limit} {what}",
        category="VALIDATION_ERROR",
        sub_category=ASSOCIATION_LIMIT_SUB_CATEGORY,
        context=context,
    )


def token_rate_limit_body() -> dict[str, Any]:
    """The OAuth token endpoint's 429, as reported in the field (docs/reference/hubspot.md §9.6)."""
    return {**rate_limit_body("TEN_SECONDLY_ROLLING"), "message": "You have reached your rate limit."}


def app_token_body(message: str) -> dict[str, Any]:
    """The 403 for a token of the wrong kind: a portal token on the journal, an app token on the CRM."""
    return error_body(403, message=message, category="MISSING_SCOPES")
