"""The dead-letter API under ``/api/dead-letters``, behind the admin token: list, show, replay, purge."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request

from hublink.ops.dead_letters import MAX_LIST_LIMIT, DeadLetterFilter
from web.api.blueprint import bp, bulk_args, flag
from web.audit import audit, done_count, matching
from web.callers import requires
from web.errors import ApiError
from web.parts import parts


def _filter_from(args: Any) -> DeadLetterFilter:
    """Build a filter from query arguments (or a JSON object with the same names); 400 naming a bad field."""
    try:
        return DeadLetterFilter.parse(args, blank_is_any=False)
    except ValueError as exc:
        raise ApiError(400, "invalid_filter", f"bad filter: {exc}") from None


@bp.get("/dead-letters")
@requires("dead-letters:read")
def list_dead_letters() -> Response:
    """List dead letters, newest first, filtered and paginated by cursor."""
    flt = _filter_from(request.args)
    try:
        limit = int(request.args.get("limit", 100))
        items, cursor = parts().dead_letters.page(flt, limit=limit, cursor=request.args.get("cursor"))
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", f"{exc} (limit is 1 to {MAX_LIST_LIMIT})") from None
    return jsonify({"items": [letter.to_wire() for letter in items], "next_cursor": cursor, "count": len(items)})


@bp.get("/dead-letters/<string(length=32):letter_id>")
@requires("dead-letters:read")
def show_dead_letter(letter_id: str) -> Response:
    """One dead letter with its full attempt history."""
    letter = parts().dead_letters.get(letter_id)
    if letter is None:
        raise ApiError(404, "not_found", f"no dead letter {letter_id!r}")
    return jsonify(letter.to_wire())


@bp.post("/dead-letters/<string(length=32):letter_id>/replay")
@requires("dead-letters:write")
def replay_dead_letter(letter_id: str) -> tuple[Response, int]:
    """Replay one dead letter with a fresh attempt budget."""
    try:
        replayed = parts().dead_letters.replay(letter_id)
    except ValueError as exc:
        audit("replay", f"dead-letter {letter_id}", f"refused: {exc}")
        raise ApiError(409, "not_replayable", str(exc)) from None
    audit("replay", f"dead-letter {letter_id}", "ok" if replayed else "refused: not found")
    if not replayed:
        raise ApiError(404, "not_found", f"no dead letter {letter_id!r}")
    return jsonify({"replayed": 1, "ids": [letter_id]}), 202


@bp.post("/dead-letters/replay")
@requires("dead-letters:write")
def replay_dead_letters() -> tuple[Response, int]:
    """Replay every dead letter matching the filters (or count them with ``dry_run``)."""
    args = bulk_args()
    dry_run = flag(args, "dry_run")
    count = parts().dead_letters.replay_matching(_filter_from(args), dry_run=dry_run)
    if not dry_run:
        audit("replay", matching("dead-letters", args, DeadLetterFilter.FIELDS), done_count("replay", count))
    return jsonify({"matched": count, "replayed": 0 if dry_run else count, "dry_run": dry_run}), (
        200 if dry_run else 202
    )


@bp.delete("/dead-letters/<string(length=32):letter_id>")
@requires("dead-letters:write")
def delete_dead_letter(letter_id: str) -> Response:
    """Delete one dead letter."""
    deleted = parts().dead_letters.delete(letter_id)
    audit("purge", f"dead-letter {letter_id}", "ok" if deleted else "refused: not found")
    if not deleted:
        raise ApiError(404, "not_found", f"no dead letter {letter_id!r}")
    return jsonify({"purged": 1, "ids": [letter_id]})


@bp.delete("/dead-letters")
@requires("dead-letters:write")
def purge_dead_letters() -> Response:
    """Delete every dead letter matching the filters; with no filter, only when ``all=true`` says so."""
    args = bulk_args()
    flt = _filter_from(args)
    everything, dry_run = flag(args, "all"), flag(args, "dry_run")
    if flt == DeadLetterFilter() and not everything:
        raise ApiError(400, "filter_required", "give a filter, or all=true to purge every dead letter")
    count = parts().dead_letters.purge_matching(flt, dry_run=dry_run)
    if not dry_run:
        audit("purge", matching("dead-letters", args, DeadLetterFilter.FIELDS), done_count("purge", count))
    return jsonify({"matched": count, "purged": 0 if dry_run else count, "dry_run": dry_run})
