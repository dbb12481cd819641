"""The rules document over HTTP: read the published version and the history, check a draft, publish, roll back.

``GET /api/rules``, ``GET /api/rules/versions``, ``GET /api/rules/versions/<n>`` and ``POST
/api/rules/check`` need ``rules:read``; ``POST /api/rules/publish`` and ``POST /api/rules/rollback``
need ``rules:write`` and are audited (``rules.publish`` / ``rules.rollback``, target ``v<n>``), the caller
being the version's author. Publishing and rolling back need ``HUBLINK_RULES_SOURCE=redis`` (409
otherwise: the rules file is the source, and a version in Redis would be read by no process). With the
file source, ``GET /api/rules`` answers the file as version 0.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from hublink.config.rule_versions import MAX_COMMENT_CHARS, RulesRejected, RuleVersion, check, subscriptions_needed
from hublink.intake.rule_versions import MAX_LISTED
from web.api.blueprint import bp
from web.audit import actor, audit
from web.callers import requires
from web.errors import ApiError
from web.parts import parts
from web.request_parsing import parse_json, read_body, require_json_type

#: The hint every publish answer carries: what the app holds takes a HubSpot call.
APPLY_HINT = "hublink hubspot subscriptions apply --dry-run"


def _body(*required: str) -> dict[str, Any]:
    """The request's JSON object; 400 naming the first required field missing."""
    settings = parts().settings
    raw = read_body(settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    require_json_type()
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise ApiError(400, "malformed_json", "expected a JSON object")
    for name in required:
        if name not in body:
            raise ApiError(400, "invalid_parameter", f"{name}: required")
    return body


def _text(body: dict[str, Any]) -> str:
    """The draft's ``text``: a string."""
    text = body["text"]
    if not isinstance(text, str):
        raise ApiError(400, "invalid_parameter", "text: expected the rules document as a string")
    return text


def _comment(body: dict[str, Any]) -> str:
    """The optional ``comment``: a string of at most MAX_COMMENT_CHARS characters."""
    comment = body.get("comment", "")
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS:
        raise ApiError(
            400, "invalid_parameter", f"comment: expected a string of at most {MAX_COMMENT_CHARS} characters"
        )
    return comment


def _refused(exc: RulesRejected) -> ApiError:
    """The 422 naming every problem with its line."""
    count = len(exc.problems)
    return ApiError(
        422,
        "invalid_rules",
        f"the rules have {count} problem{'s' if count != 1 else ''}",
        [p.to_wire() for p in exc.problems],
    )


def _require_redis_source(action: str) -> None:
    """409 unless the rules live in Redis (HUBLINK_RULES_SOURCE=redis)."""
    if parts().live_rules.source != "redis":
        raise ApiError(
            409,
            "rules_source_file",
            f"cannot {action}: HUBLINK_RULES_SOURCE is file (the rules file is read at start); "
            "set HUBLINK_RULES_SOURCE=redis on the web and the workers to publish rules",
        )


@bp.get("/rules")
@requires("rules:read")
def published() -> Response:
    """The published rules: ``{"version", "text", "author", "publishedAt", "comment", "source"}``."""
    p = parts()
    if p.live_rules.source == "file":
        text = p.live_rules.current().text
        if not text:
            raise ApiError(404, "not_found", "no rules: HUBLINK_RULES_FILE is not set")
        return jsonify(
            {
                "version": 0,
                "text": text,
                "author": "",
                "publishedAt": None,
                "comment": "HUBLINK_RULES_FILE",
                "source": "file",
            }
        )
    p.live_rules.current()  # seeds version 1 from the file on a fresh Redis
    version = p.rule_versions.published()
    if version is None:
        raise ApiError(404, "not_found", "no rules published yet")
    wire = version.to_wire(with_text=True)
    del wire["diff"]
    return jsonify(wire | {"source": "redis"})


@bp.get("/rules/versions")
@requires("rules:read")
def versions() -> Response:
    """Every version, newest first, without its text: ``{"items": [{"version", "author", "publishedAt", ...}]}``."""
    unknown = sorted(set(request.args) - {"limit"})
    if unknown:
        raise ApiError(400, "invalid_parameter", f"unknown query parameter {unknown[0][:40]!r} (expected limit)")
    raw = request.args.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LISTED:
        raise ApiError(400, "invalid_parameter", f"limit: expected 1 to {MAX_LISTED}")
    return jsonify({"items": [v.to_wire() for v in parts().rule_versions.versions(int(raw))]})


@bp.get("/rules/versions/<int:number>")
@requires("rules:read")
def version(number: int) -> Response:
    """One version with its ``text`` and its ``diff`` against the version before it."""
    found = parts().rule_versions.get(number)
    if found is None:
        raise ApiError(404, "not_found", f"no rules version {number}")
    return jsonify(found.to_wire(with_text=True))


@bp.post("/rules/check")
@requires("rules:read")
def check_draft() -> Response:
    """Every problem of a draft with its line (``{"problems": []}`` when it is valid); stores nothing."""
    text = _text(_body("text"))
    problems = check(text, environ=parts().live_rules.environ)
    return jsonify({"problems": [p.to_wire() for p in problems]})


@bp.post("/rules/publish")
@requires("rules:write")
def publish() -> tuple[Response, int]:
    """Publish a draft as the next version (201 ``{"version", "subscriptionsNeeded"}``); 422 with its problems."""
    body = _body("text")
    text, comment = _text(body), _comment(body)
    _require_redis_source("publish")
    p = parts()
    try:
        published = p.rule_versions.publish(text, author=actor(), comment=comment, environ=p.live_rules.environ)
    except RulesRejected as exc:
        audit("rules.publish", "draft", outcome="refused")
        raise _refused(exc) from None
    audit("rules.publish", published.tag)
    p.live_rules.refresh()  # this process at once; the others within a second
    return _published(published), 201


@bp.post("/rules/rollback")
@requires("rules:write")
def rollback() -> tuple[Response, int]:
    """Publish an old version's text again, as a new version (201 ``{"version", "subscriptionsNeeded"}``)."""
    body = _body("version")
    number = body["version"]
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ApiError(400, "invalid_parameter", "version: expected a version number (1 or more)")
    comment = _comment(body)
    _require_redis_source("roll back")
    p = parts()
    try:
        published = p.rule_versions.rollback(number, author=actor(), comment=comment, environ=p.live_rules.environ)
    except KeyError:
        raise ApiError(404, "not_found", f"no rules version {number}") from None
    except RulesRejected as exc:
        audit("rules.rollback", f"v{number}", outcome="refused")
        raise _refused(exc) from None
    audit("rules.rollback", published.tag)
    p.live_rules.refresh()
    return _published(published), 201


def _published(published: RuleVersion) -> Response:
    """The answer to a publish or rollback: the version, and the subscriptions its rules need that the
    version just before it did not (whether the app holds them takes a HubSpot call: APPLY_HINT)."""
    before = parts().rule_versions.get(published.version - 1)
    return jsonify(
        {
            "version": published.version,
            "subscriptionsNeeded": subscriptions_needed(published.text, before.text if before else None),
            "subscriptionsHint": APPLY_HINT,
        }
    )
