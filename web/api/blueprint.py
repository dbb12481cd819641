"""The API's blueprint and what its admin routes share: the arguments of bulk actions (scopes: :mod:`web.callers`)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from web.errors import ApiError
from web.parts import parts
from web.request_parsing import parse_json, read_body, require_json_type

bp = Blueprint("api", __name__, url_prefix="/api")


def bulk_args() -> Any:
    """Filters for bulk operations: the query string, overlaid by a JSON body if one was sent."""
    merged: dict[str, Any] = dict(request.args)
    settings = parts().settings
    raw = read_body(settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    if raw.strip():
        require_json_type()
        body = parse_json(raw)
        if not isinstance(body, dict):
            raise ApiError(400, "malformed_json", "expected a JSON object of filters")
        merged.update(body)
    return merged


def flag(args: Any, name: str) -> bool:
    """A boolean parameter: absent is false; anything but true/false (or 1/0) is a 400."""
    value = args.get(name)
    if value is None or isinstance(value, bool):
        return bool(value)
    lowered = str(value).lower()
    if lowered not in {"1", "true", "0", "false"}:
        raise ApiError(400, "invalid_parameter", f"{name}: expected true or false, got {str(value)[:20]!r}")
    return lowered in {"1", "true"}
