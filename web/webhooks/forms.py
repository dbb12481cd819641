"""Third-party form submissions: ``POST /webhooks/forms/<source>``, JSON or urlencoded, authenticated per source."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from flask import Response, request
from werkzeug.datastructures import MultiDict

from hublink.domain.errors import InvalidInputError
from hublink.domain.events import parse_form
from hublink.domain.sources import verify_form
from web.errors import ApiError
from web.parts import parts
from web.request_parsing import parse_json, read_body, require_json_type
from web.webhooks.blueprint import accepted, bp, headers, set_aside
from web.webhooks.secret_use import secret_use


@bp.post("/forms/<source>")
def form(source: str) -> Response:
    """Third-party form submissions, JSON or urlencoded, authenticated per source."""
    p = parts()
    config = p.sources.forms.get(source)
    if config is None:
        raise ApiError(404, "unknown_source", f"no form source named {source[:64]!r} is configured")
    raw = read_body(p.settings.max_body_bytes, timeout_s=p.settings.body_timeout_s)
    secret_use().count(f"forms.{source}", verify_form(config, raw, headers(), time.time()))
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
        return set_aside(f"forms:{source}", dict(fields), delivery_id, exc, time.time())
    return accepted(1, p.inbox.add_events([event], received_at=time.time()))


def _form_fields(raw: bytes) -> dict[str, Any]:
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=1000)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "malformed_form", f"body is not a valid urlencoded form: {exc}") from None
    multi: MultiDict[str, str] = MultiDict(pairs)
    return {k: (v[0] if len(v) == 1 else v) for k, v in multi.to_dict(flat=False).items()}
