"""Reading requests safely: bearer tokens, body size, content type and JSON, each refused precisely.

The raw body is read once, here, before anything parses it (signatures are computed over those bytes).
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from flask import request

from web.errors import ApiError


def require_bearer(expected: str | None, *, realm: str) -> None:
    """Refuse (401) unless ``Authorization: Bearer <expected>``; constant-time comparison."""
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if not expected:
        raise ApiError(401, "unauthorized", f"{realm} is not enabled: no token is configured")
    if scheme.lower() != "bearer" or not presented:
        raise ApiError(401, "unauthorized", "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(presented.strip().encode(), expected.encode()):
        raise ApiError(401, "unauthorized", "wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


def read_body(max_bytes: int) -> bytes:
    """The raw body, refusing (413) before reading when Content-Length says it is too large.

    A body without Content-Length (chunked) is cut off by Flask's MAX_CONTENT_LENGTH at the same size.
    """
    length = request.content_length
    if length is not None and length > max_bytes:
        raise ApiError(413, "payload_too_large", f"body of {length} bytes exceeds the limit of {max_bytes}")
    return request.get_data(cache=True)


def require_json_type() -> None:
    """Refuse (415) anything not declared as JSON."""
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ApiError(
            415, "unsupported_media_type", f"expected Content-Type application/json, got {mimetype or 'none'!r}"
        )


def parse_json(raw: bytes) -> Any:
    """Parse JSON strictly; refuse (400) anything malformed, including non-UTF-8 and absurd nesting."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise ApiError(400, "malformed_json", "body is not UTF-8") from None
    except RecursionError:
        raise ApiError(400, "malformed_json", "JSON nested too deeply") from None
    except ValueError as exc:
        raise ApiError(400, "malformed_json", f"body is not valid JSON: {exc}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
