"""Blueprint: the direct API (``POST /api/associations``) and the dead-letter API (``/api/dead-letters``)."""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

from flask import Blueprint, Response, jsonify, request

from hublink.domain.associations import parse_api_items
from hublink.intake.inbox import HeldAnswer
from hublink.lanes import new_association_id
from hublink.ops.dead_letters import MAX_LIST_LIMIT, DeadLetterFilter
from web.container import parts
from web.errors import ApiError
from web.labels import resolve_labels
from web.requests_in import parse_json, read_body, require_bearer, require_json_type

bp = Blueprint("api", __name__, url_prefix="/api")

#: The header that makes a retry of ``POST /api/associations`` safe.
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: 1 to 255 printable ASCII characters (space to tilde).
_IDEMPOTENCY_KEY = re.compile(r"\A[\x20-\x7e]{1,255}\Z")


def _idempotency_key() -> str | None:
    """The request's Idempotency-Key, None without one; 400 ``invalid_idempotency_key`` when malformed."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY.match(key):
        raise ApiError(
            400,
            "invalid_idempotency_key",
            f"{IDEMPOTENCY_HEADER}: expected 1 to 255 printable ASCII characters",
        )
    return key


def _replay(held: HeldAnswer, body_digest: str) -> tuple[Response, int]:
    """The first answer again for the same body; 422 ``idempotency_key_reused`` for another body."""
    if held.body_digest != body_digest:
        raise ApiError(
            422,
            "idempotency_key_reused",
            f"this {IDEMPOTENCY_HEADER} was used with another body in the last 24 hours; use a new key",
        )
    response = jsonify(held.answer)
    response.headers["Idempotent-Replayed"] = "true"
    return response, held.status


@bp.post("/associations")
def create_associations() -> tuple[Response, int]:
    """Accept 1 to 100 associations, all or nothing; 202 once they are safely in Redis.

    With an ``Idempotency-Key``, a retry with the same key and the same body (byte for byte) within 24
    hours answers the first answer and stores nothing; the same key with another body is a 422.
    """
    p = parts()
    require_bearer(p.settings.api_token, realm="the direct API")
    idempotency_key = _idempotency_key()
    raw = read_body(p.settings.max_body_bytes, timeout_s=p.settings.body_timeout_s)
    require_json_type()
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise ApiError(400, "malformed_json", "expected a JSON object with an 'associations' array")
    received_at = time.time()
    requests_ = parse_api_items(body.get("associations"), received_at=received_at, max_items=p.settings.max_items)
    requests_ = resolve_labels(p.labels, requests_)
    body_digest = hashlib.sha256(raw).hexdigest() if idempotency_key is not None else ""
    if idempotency_key is not None and (held := p.inbox.held_answer(idempotency_key)) is not None:
        return _replay(held, body_digest)
    ids = [new_association_id() for _ in requests_]
    answer = {"accepted": len(ids), "ids": ids}
    items = list(zip(ids, requests_, strict=True))
    if idempotency_key is None:
        # Into the inbox like every other request (one XADD); a worker puts them in their lanes under these ids.
        p.inbox.add_associations(items, received_at=received_at)
    else:
        # The entry and the key in one script: a concurrent duplicate finds the key and stores nothing.
        held = p.inbox.add_associations_once(
            items, received_at=received_at, idempotency_key=idempotency_key, answer=HeldAnswer(body_digest, 202, answer)
        )
        if held is not None:
            return _replay(held, body_digest)
    return jsonify(answer), 202


def _filter_from(args: Any) -> DeadLetterFilter:
    """Build a filter from query arguments (or a JSON object with the same names); 400 naming a bad field."""
    try:
        return DeadLetterFilter.parse(args, blank_is_any=False)
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
    p = parts()
    require_bearer(p.settings.admin_token, realm="the admin API", throttle=p.api_throttle)


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
    return jsonify({"items": [letter.to_wire() for letter in items], "next_cursor": cursor, "count": len(items)})


@bp.get("/dead-letters/<string(length=32):letter_id>")
def show_dead_letter(letter_id: str) -> Response:
    """One dead letter with its full attempt history."""
    _admin()
    letter = parts().dead_letters.get(letter_id)
    if letter is None:
        raise ApiError(404, "not_found", f"no dead letter {letter_id!r}")
    return jsonify(letter.to_wire())


@bp.post("/dead-letters/<string(length=32):letter_id>/replay")
def replay_dead_letter(letter_id: str) -> tuple[Response, int]:
    """Replay one dead letter with a fresh attempt budget."""
    _admin()
    try:
        replayed = parts().dead_letters.replay(letter_id)
    except ValueError as exc:
        raise ApiError(409, "not_replayable", str(exc)) from None
    if not replayed:
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
