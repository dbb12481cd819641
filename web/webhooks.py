"""Blueprint: the signed webhook endpoints: HubSpot app webhooks, workflow webhooks and third-party forms.

Each view: read the raw body once (bounded), verify the sender before parsing anything, validate every
event, store them in the inbox with one XADD, answer 200. The rules run in the workers (``worker.loops.Expander``),
so a request costs the same whatever the rules ask for. Every refusal is a precise 4xx (or 503 without
Redis), and nothing refused reaches Redis.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.datastructures import MultiDict

from hublink.domain import signatures
from hublink.domain.errors import InvalidInputError, InvalidSignatureError
from hublink.domain.events import parse_form, parse_workflow, read_hubspot_batch
from hublink.domain.sources import ApiKeyAuth, SignatureAuth, verify_form
from web.container import parts
from web.errors import ApiError
from web.requests_in import parse_json, read_body, require_json_type

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


def public_uri() -> str:
    """The URI the sender called, as HubSpot signs it.

    HUBLINK_PUBLIC_URL (the base URL HubSpot calls) wins; with HUBLINK_TRUST_PROXY the scheme and host
    come from X-Forwarded-Proto/-Host (applied by ProxyFix in create_app); otherwise the request's own.
    The path and query are taken as sent (gunicorn's RAW_URI), not as Werkzeug re-quotes them.
    """
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.full_path.rstrip("?")
    public = parts().settings.public_url
    if public:
        return public.rstrip("/") + raw
    return request.host_url.rstrip("/") + raw


def _headers() -> Mapping[str, str]:
    return {k: v for k, v in request.headers.items()}


def _secret() -> str:
    secret = parts().settings.hubspot_client_secret
    if not secret:
        raise ApiError(
            401,
            "invalid_signature",
            "HUBSPOT_CLIENT_SECRET is not configured: signed requests cannot be verified",
            {"reason": "missing"},
        )
    return secret


def verify_hubspot_signature(raw: bytes, *, accept_legacy: bool) -> None:
    """Verify HubSpot's signature over this request (raises InvalidSignatureError: a 401 with the reason)."""
    signatures.verify_hubspot(
        _secret(),
        request.method,
        public_uri(),
        raw,
        _headers(),
        now_s=time.time(),
        tolerance_s=signatures.DEFAULT_TOLERANCE_S,
        accept_legacy=accept_legacy,
    )


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
        verify_hubspot_signature(raw, accept_legacy=True)
    else:
        _check_api_key(auth)
    require_json_type()
    received_at = time.time()
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_input", "expected a JSON object (the workflow action's body)")
    try:
        event = parse_workflow(body, received_at=received_at)
    except InvalidInputError as exc:
        # The sender proved who it is: one bad field never loses its delivery (kept, listed, replayable).
        return _set_aside("workflow", body, hashlib.sha256(raw).hexdigest(), exc, received_at)
    return _accepted(1, p.inbox.add_events([event], received_at=received_at))


def _check_api_key(auth: ApiKeyAuth) -> None:
    presented = request.headers.get(auth.name) if auth.location == "header" else request.args.get(auth.name)
    if presented is not None and auth.location == "header" and auth.name.lower() == "authorization":
        presented = presented.removeprefix("Bearer ").strip()
    try:
        signatures.verify_static_token(auth.key, presented)
    except InvalidSignatureError as exc:
        raise ApiError(401, "unauthorized", f"API key {exc.reason}", {"reason": exc.reason}) from None


@bp.post("/forms/<source>")
def form(source: str) -> Response:
    """Third-party form submissions, JSON or urlencoded, authenticated per source."""
    p = parts()
    config = p.sources.forms.get(source)
    if config is None:
        raise ApiError(404, "unknown_source", f"no form source named {source[:64]!r} is configured")
    raw = read_body(p.settings.max_body_bytes, timeout_s=p.settings.body_timeout_s)
    verify_form(config, raw, _headers(), time.time())
    fields: Mapping[str, Any]
    if request.mimetype == "application/x-www-form-urlencoded":
        fields = _form_fields(raw)
    else:
        require_json_type()
        body = parse_json(raw)
        if not isinstance(body, dict):
            raise ApiError(400, "malformed_json", "expected a JSON object of form fields")
        fields = body
    id_value = request.headers.get(config.id_header) if config.id_header else None
    try:
        event = parse_form(source, fields, id_field=config.id_field, id_value=id_value, raw_body=raw)
    except InvalidInputError as exc:
        delivery_id = str(fields.get(config.id_field) or "") if config.id_field else ""
        delivery_id = delivery_id or id_value or hashlib.sha256(raw).hexdigest()
        return _set_aside(f"forms:{source}", dict(fields), delivery_id, exc, time.time())
    return _accepted(1, p.inbox.add_events([event], received_at=time.time()))


def _set_aside(source: str, body: Any, delivery_id: str, exc: InvalidInputError, received_at: float) -> Response:
    """200 for a verified delivery HubLink cannot use: kept in inbox:failed with the reason, counted, logged."""
    p = parts()
    reason = "; ".join(problem.message for problem in exc.problems) or exc.message
    slug = source.replace(":", ".")
    counters = [p.metrics.op("events_received", source=slug, outcome="unusable")]
    entry = p.inbox.set_aside_delivery(source, body, delivery_id, reason, received_at=received_at, counters=counters)
    return jsonify({"received": 1, "unusable": 1, "entry": entry})


def _accepted(received: int, entry: str) -> Response:
    """200 once the events are in the inbox; ``entry`` names them in the workers' logs."""
    return jsonify({"received": received, "entry": entry})


def _form_fields(raw: bytes) -> dict[str, Any]:
    from urllib.parse import parse_qsl

    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=1000)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "malformed_form", f"body is not a valid urlencoded form: {exc}") from None
    multi: MultiDict[str, str] = MultiDict(pairs)
    return {k: (v[0] if len(v) == 1 else v) for k, v in multi.to_dict(flat=False).items()}
