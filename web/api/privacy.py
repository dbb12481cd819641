"""``POST /api/privacy/erase``: erase one contact's data from HubLink (admin), by id, email or both.

The same erasure as HubSpot's ``contact.privacyDeletion`` events start (``hublink.ops.privacy``). The answer
counts what was erased by kind and names no one; the audit entry (``privacy.erase``) names only the type:
an audit log that kept the id would keep what was just erased.
"""

from __future__ import annotations

from flask import Response, jsonify

from hublink.ops.privacy import PrivacyEraser, parse_request
from web.api.blueprint import bp
from web.audit import audit
from web.callers import requires
from web.errors import ApiError
from web.parts import Parts, parts
from web.request_parsing import parse_json, read_body, require_json_type


def eraser(p: Parts) -> PrivacyEraser:
    """The eraser on the web's Redis (its history window decides how many days of linked work to look at)."""
    return PrivacyEraser(p.redis, p.keys, p.history, history_days=p.settings.history_days, scripts=p.scripts)


@bp.post("/privacy/erase")
@requires("admin")
def erase_contact() -> Response:
    """Erase a contact's payloads, history, index entries, pending work, dead letters, set-aside entries and more."""
    p = parts()
    raw = read_body(p.settings.max_body_bytes, timeout_s=p.settings.body_timeout_s)
    require_json_type()
    try:
        ids, emails = parse_request(parse_json(raw))
    except ValueError as exc:
        raise ApiError(400, "invalid_erasure", str(exc)) from None
    erasure = eraser(p).erase(contact_ids=ids, emails=emails)
    audit("privacy.erase", "contacts")
    return jsonify(erasure.as_dict())
