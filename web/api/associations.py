"""The direct API: ``POST /api/associations``, all or nothing, with an optional Idempotency-Key."""

from __future__ import annotations

import hashlib
import re
import time

from flask import Response, jsonify, request

from hublink.domain.associations import parse_api_items
from hublink.intake.inbox import HeldAnswer
from hublink.lanes import new_association_id
from web.api.blueprint import bp
from web.api.labels import resolve_labels
from web.callers import requires
from web.errors import ApiError
from web.parts import parts
from web.request_parsing import parse_json, read_body, require_json_type

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
@requires("associations:write")
def create_associations() -> tuple[Response, int]:
    """Accept 1 to 100 associations, all or nothing; 202 once they are safely in Redis.

    With an ``Idempotency-Key``, a retry with the same key and the same body (byte for byte) within 24
    hours answers the first answer and stores nothing; the same key with another body is a 422.
    """
    p = parts()
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
