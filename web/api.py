"""Blueprint: the direct API (``POST /api/associations``) and the dead-letter API (``/api/dead-letters``)."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, jsonify, request

from hublink.domain.associations import parse_api_items
from hublink.domain.times import parse_time
from hublink.lanes import new_association_id
from hublink.ops.dead_letters import MAX_LIST_LIMIT, DeadLetterFilter
from web.container import parts
from web.errors import ApiError
from web.requests_in import parse_json, read_body, require_bearer, require_json_type

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.post("/associations")
def create_associations() -> tuple[Response, int]:
    """Accept 1 to 100 associations, all or nothing; 202 once they are safely in Redis."""
    p = parts()
    require_bearer(p.settings.api_token, realm="the direct API")
    raw = read_body(p.settings.max_body_bytes, timeout_s=p.settings.body_timeout_s)
    require_json_type()
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise ApiError(400, "malformed_json", "expected a JSON object with an 'associations' array")
    received_at = time.time()
    requests_ = parse_api_items(body.get("associations"), received_at=received_at, max_items=p.settings.max_items)
    ids = [new_association_id() for _ in requests_]
    # Into the inbox like every other request (one XADD); a worker puts them in their lanes under these ids.
    p.inbox.add_associations(list(zip(ids, requests_, strict=True)), received_at=received_at)
    return jsonify({"accepted": len(ids), "ids": ids}), 202


def _filter_from(args: Any) -> DeadLetterFilter:
    """Build a filter from query arguments (or a JSON object with the same names)."""

    def text(name: str) -> str | None:
        value = args.get(name)
        if value is None:
            return None
        if str(value) == "":
            raise ApiError(400, "invalid_filter", f"bad filter: {name} is empty")
        return str(value)

    status = text("status")
    try:
        since = text("since")
        until = text("until")
        return DeadLetterFilter(
            source=text("source"),
            status=int(status) if status is not None else None,
            category=text("category"),
            since_ms=parse_time(since) if since else None,
            until_ms=parse_time(until) if until else None,
        )
    except ValueError as exc:
        raise ApiError(400, "invalid_filter", f"bad filter: {exc}") from None


def _flag(args: Any, name: str) -> bool:
    """A boolean parameter: absent is false; anything but true/false (or 1/0) is a 400."""
    value = args.get(name)
    if value is None or isinstance(value, bool):
        return bool(value)
    lowered = str(value).lower()
    if lowered not in {"1", "true", "0", "false"}:
        raise ApiError(400, "invalid_parameter", f"{name}: expected true or false, got {str(value)[:20]!r}")
    return lowered in {"1", "true"}


def _admin() -> None:
    require_bearer(parts().settings.admin_token, realm="the admin API")


def _bulk_args() -> Any:
    """Filters for bulk operations: the query string, overlaid by a JSON body if one was sent."""
    merged: dict[str, Any] = dict(request.args)
    raw = read_body(parts().settings.max_body_bytes, timeout_s=parts().settings.body_timeout_s)
    if raw.strip():
        require_json_type()
        body = parse_json(raw)
        if not isinstance(body, dict):
            raise ApiError(400, "malformed_json", "expected a JSON object of filters")
        merged.update(body)
    return merged


@bp.get("/dead-letters")
def list_dead_letters() -> Response:
    """List dead letters, newest first, filtered and paginated by cursor."""
    _admin()
    flt = _filter_from(request.args)
    try:
        limit = int(request.args.get("limit", 100))
        items, cursor = parts().dead_letters.page(flt, limit=limit, cursor=request.args.get("cursor"))
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", f"{exc} (limit is 1 to {MAX_LIST_LIMIT})") from None
    return jsonify({"items": items, "next_cursor": cursor, "count": len(items)})


@bp.get("/dead-letters/<string(length=32):letter_id>")
def show_dead_letter(letter_id: str) -> Response:
    """One dead letter with its full attempt history."""
    _admin()
    letter = parts().dead_letters.get(letter_id)
    if letter is None:
        raise ApiError(404, "not_found", f"no dead letter {letter_id!r}")
    return jsonify(letter)


@bp.post("/dead-letters/<string(length=32):letter_id>/replay")
def replay_dead_letter(letter_id: str) -> tuple[Response, int]:
    """Replay one dead letter with a fresh attempt budget."""
    _admin()
    if not parts().dead_letters.replay(letter_id):
        raise ApiError(404, "not_found", f"no dead letter {letter_id!r}")
    return jsonify({"replayed": 1, "ids": [letter_id]}), 202


@bp.post("/dead-letters/replay")
def replay_dead_letters() -> tuple[Response, int]:
    """Replay every dead letter matching the filters (or count them with ``dry_run``)."""
    _admin()
    args = _bulk_args()
    dry_run = _flag(args, "dry_run")
    count = parts().dead_letters.replay_matching(_filter_from(args), dry_run=dry_run)
    return jsonify({"matched": count, "replayed": 0 if dry_run else count, "dry_run": dry_run}), (
        200 if dry_run else 202
    )


@bp.delete("/dead-letters/<string(length=32):letter_id>")
def delete_dead_letter(letter_id: str) -> Response:
    """Delete one dead letter."""
    _admin()
    if not parts().dead_letters.delete(letter_id):
        raise ApiError(404, "not_found", f"no dead letter {letter_id!r}")
    return jsonify({"purged": 1, "ids": [letter_id]})


@bp.delete("/dead-letters")
def purge_dead_letters() -> Response:
    """Delete every dead letter matching the filters; with no filter, only when ``all=true`` says so."""
    _admin()
    args = _bulk_args()
    flt = _filter_from(args)
    everything, dry_run = _flag(args, "all"), _flag(args, "dry_run")
    if flt == DeadLetterFilter() and not everything:
        raise ApiError(400, "filter_required", "give a filter, or all=true to purge every dead letter")
    count = parts().dead_letters.purge_matching(flt, dry_run=dry_run)
    return jsonify({"matched": count, "purged": 0 if dry_run else count, "dry_run": dry_run})
