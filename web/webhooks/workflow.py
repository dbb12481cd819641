"""HubSpot workflow "Send a webhook" actions: ``POST /webhooks/workflow``, signed (v2) or with an API key."""

from __future__ import annotations

import hashlib
import time

from flask import Response

from hublink.domain.errors import InvalidInputError
from hublink.domain.events import parse_workflow
from hublink.domain.sources import SignatureAuth
from web.errors import ApiError
from web.parts import parts
from web.request_parsing import parse_json, read_body, require_json_type
from web.webhooks.blueprint import accepted, bp, check_api_key, set_aside, verify_hubspot_signature


@bp.post("/workflow")
def workflow() -> Response:
    """HubSpot workflow "Send a webhook" actions: a v2 signature, or an API key in a header or query."""
    p = parts()
    auth = p.sources.workflow
    if auth is None:
        raise ApiError(404, "not_found", "workflow webhooks are not configured (sources.workflow in the rules file)")
    raw = read_body(p.settings.max_body_bytes, timeout_s=p.settings.body_timeout_s)
    if isinstance(auth, SignatureAuth):
        # Workflow actions sign with v2 (HubSpot's documentation), so legacy versions are always accepted here.
        verify_hubspot_signature(raw, accept_legacy=True, source="workflow")
    else:
        check_api_key(auth)
    require_json_type()
    received_at = time.time()
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_input", "expected a JSON object (the workflow action's body)")
    try:
        event = parse_workflow(body, received_at=received_at)
    except InvalidInputError as exc:
        # The sender proved who it is: one bad field never loses its delivery (kept, listed, replayable).
        return set_aside("workflow", body, hashlib.sha256(raw).hexdigest(), exc, received_at)
    return accepted(1, p.inbox.add_events([event], received_at=received_at))
