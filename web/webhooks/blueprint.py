"""The webhooks' blueprint and what every intake view shares: verifying the sender, and the 200 answers."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, jsonify, request

from hublink.domain import signatures
from hublink.domain.errors import InvalidInputError, InvalidSignatureError
from hublink.domain.sources import ApiKeyAuth
from web.errors import ApiError
from web.parts import parts
from web.webhooks.secret_use import secret_use

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


def headers() -> Mapping[str, str]:
    """The request's headers as a plain mapping (what the signature checks read)."""
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


def verify_hubspot_signature(raw: bytes, *, accept_legacy: bool, source: str = "hubspot") -> signatures.Which:
    """Verify HubSpot's signature over this request (raises InvalidSignatureError: a 401 with the reason).

    HUBSPOT_CLIENT_SECRET_PREVIOUS, when set, is accepted too (a rotation); which one matched is counted.
    """
    uri, presented, now_s = public_uri(), headers(), time.time()

    def verify(secret: str) -> None:
        signatures.verify_hubspot(
            secret,
            request.method,
            uri,
            raw,
            presented,
            now_s=now_s,
            tolerance_s=signatures.DEFAULT_TOLERANCE_S,
            accept_legacy=accept_legacy,
        )

    which = signatures.verify_either(verify, _secret(), parts().settings.hubspot_client_secret_previous)
    secret_use().count(source, which)
    return which


def check_api_key(auth: ApiKeyAuth) -> None:
    """Refuse (401, with the reason) unless the request presents the source's static API key."""
    presented = request.headers.get(auth.name) if auth.location == "header" else request.args.get(auth.name)
    if presented is not None and auth.location == "header" and auth.name.lower() == "authorization":
        presented = presented.removeprefix("Bearer ").strip()
    try:
        which = signatures.verify_either(
            lambda key: signatures.verify_static_token(key, presented), auth.key, auth.key_previous
        )
    except InvalidSignatureError as exc:
        raise ApiError(401, "unauthorized", f"API key {exc.reason}", {"reason": exc.reason}) from None
    secret_use().count("workflow", which)


def set_aside(source: str, body: Any, delivery_id: str, exc: InvalidInputError, received_at: float) -> Response:
    """200 for a verified delivery HubLink cannot use: kept in inbox:failed with the reason, counted, logged."""
    p = parts()
    reason = "; ".join(problem.message for problem in exc.problems) or exc.message
    slug = source.replace(":", ".")
    counters = [p.metrics.op("events_received", source=slug, outcome="unusable")]
    entry = p.inbox.set_aside_delivery(source, body, delivery_id, reason, received_at=received_at, counters=counters)
    return jsonify({"received": 1, "unusable": 1, "entry": entry})


def accepted(received: int, entry: str) -> Response:
    """200 once the events are in the inbox; ``entry`` names them in the workers' logs."""
    return jsonify({"received": received, "entry": entry})
