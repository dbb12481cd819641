"""HubSpot app webhooks: ``POST /webhooks/hubspot``, a signed JSON array of up to 100 events."""

from __future__ import annotations

import time

from flask import Response, jsonify

from hublink.domain.events import read_hubspot_batch
from web.parts import parts
from web.request_parsing import parse_json, read_body, require_json_type
from web.webhooks.blueprint import bp, verify_hubspot_signature


@bp.post("/hubspot")
def hubspot() -> Response:
    """HubSpot app webhooks: a signed JSON array of up to 100 events."""
    p = parts()
    raw = read_body(p.settings.max_body_bytes, timeout_s=p.settings.body_timeout_s)
    verify_hubspot_signature(raw, accept_legacy=p.settings.accept_legacy_signatures)
    require_json_type()
    # Only the shape of the whole body can be refused: one event HubLink cannot use never sinks the others
    # (HubSpot drops a batch refused for 24 hours, with every valid event in it). The workers set such
    # events aside with their reason, count and log them.
    batch = read_hubspot_batch(parse_json(raw))
    # Stored as received: the workers parse it again, which costs less than re-encoding it.
    entry = p.inbox.add_hubspot(raw, received_at=time.time())
    return jsonify(
        {"received": len(batch.events) + len(batch.unusable), "unusable": len(batch.unusable), "entry": entry}
    )
