"""``POST /api/rules/preview``: a rules draft run beside the published rules over the last events of the history.

Body: ``{"text", "limit"?, "source"?, "subscriptionType"?}``. Answers per event which rules match and
which associations each version would make, and the summary against the published version
(``hublink.ops.rules_preview``). Stores nothing and calls no one; a draft that does not check is a 422 with
its problems, each with its line.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from hublink.domain.rules import RulesError
from hublink.ops.rules_preview import DEFAULT_LIMIT, MAX_LIMIT, preview
from web.api.blueprint import bp
from web.callers import requires
from web.errors import ApiError
from web.parts import parts
from web.request_parsing import parse_json, read_body, require_json_type
from web.rules_drafts import draft_problems, published_rules

#: The body's fields; anything else is refused by name.
FIELDS = ("text", "limit", "source", "subscriptionType")
#: Longest filter value taken (sources and subscription types are short names).
MAX_FILTER_CHARS = 100


def _body() -> dict[str, Any]:
    """The JSON object sent, or a precise 400/413/415."""
    settings = parts().settings
    raw = read_body(settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    require_json_type()
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise ApiError(
            400, "malformed_json", 'expected a JSON object: {"text", "limit"?, "source"?, "subscriptionType"?}'
        )
    unknown = [name for name in body if name not in FIELDS]
    if unknown:
        raise ApiError(400, "unknown_field", f"{str(unknown[0])[:40]}: not a field (expected {', '.join(FIELDS)})")
    return body


def _filter(body: dict[str, Any], name: str) -> str | None:
    """An optional filter: a non-empty string of at most MAX_FILTER_CHARS characters."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value.strip()) <= MAX_FILTER_CHARS:
        raise ApiError(
            400, "invalid_parameter", f"{name}: expected a non-empty string of at most {MAX_FILTER_CHARS} characters"
        )
    return value.strip()


@bp.post("/rules/preview")
@requires("rules:read")
def preview_rules() -> Response:
    """Run the draft and the published rules over the last ``limit`` events (default 200, 1 to 1000)."""
    body = _body()
    text = body.get("text")
    if not isinstance(text, str):
        raise ApiError(400, "invalid_parameter", "text: expected the rules YAML as a string")
    limit = body.get("limit", DEFAULT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ApiError(
            400, "invalid_parameter", f"limit: expected an integer from 1 to {MAX_LIMIT}, got {str(limit)[:20]}"
        )
    source, subscription_type = _filter(body, "source"), _filter(body, "subscriptionType")
    p = parts()
    problems = draft_problems(p, text)
    if problems:
        # The shape of POST /api/rules/publish's 422: details lists each problem with its line.
        count = len(problems)
        message = f"the rules have {count} problem{'s' if count != 1 else ''}"
        raise ApiError(422, "invalid_rules", message, [problem.to_wire() for problem in problems])
    published = published_rules(p)
    try:
        result = preview(
            text,
            published.text,
            p.history,
            limit=limit,
            source=source,
            subscription_type=subscription_type,
            own_app_id=p.settings.hubspot_app_id,
        )
    except RulesError as exc:  # the published text no longer checks (a file edited in place): say so
        raise ApiError(409, "published_rules_invalid", f"the published rules do not check: {exc.problems[0]}") from None
    return jsonify({**result, "publishedVersion": published.version})
