"""API clients over HTTP (``/api/api-clients``), scope ``admin``: create, list, rotate and revoke.

A token is in the answer that creates or rotates it, once: only its hash is kept
(:mod:`hublink.ops.api_clients`). A list never shows a token or a hash. Every change is audited.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from hublink.ops.api_clients import ApiClientError
from web.api.blueprint import bp, bulk_args
from web.audit import audit
from web.callers import api_clients, requires
from web.errors import ApiError

#: ApiClientError kinds and their answers.
_STATUS = {"invalid": 400, "exists": 409, "unknown": 404, "rotating": 409, "no_old_token": 409}
_CODES = {
    "invalid": "invalid_parameter",
    "exists": "conflict",
    "unknown": "not_found",
    "rotating": "conflict",
    "no_old_token": "conflict",
}
#: The rotation window when none is given: a day for every caller to switch.
DEFAULT_WINDOW_S = 86_400


def refusal(exc: ApiClientError) -> ApiError:
    """The HTTP answer to a refused client operation."""
    return ApiError(_STATUS[exc.kind], _CODES[exc.kind], exc.message)


def _scopes(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [s.strip() for s in value.split(",") if s.strip()]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ApiError(400, "invalid_parameter", "scopes: expected a list of scope names")
    return value


@bp.post("/api-clients")
@requires("admin")
def create_client() -> tuple[Response, int]:
    """Create an API client; the answer holds its token, once."""
    args = bulk_args()
    name = args.get("name")
    if not isinstance(name, str):
        raise ApiError(400, "invalid_parameter", "name: required, a string")
    try:
        client, token = api_clients().create(name, _scopes(args.get("scopes")))
    except ApiClientError as exc:
        raise refusal(exc) from None
    audit("api_client.create", name)
    return jsonify({**client.as_json(), "token": token}), 201


@bp.get("/api-clients")
@requires("admin")
def list_clients() -> Response:
    """Every API client, oldest first: names, scopes, times, token ids; never a token."""
    return jsonify({"items": [c.as_json() for c in api_clients().every()]})


@bp.delete("/api-clients/<name>")
@requires("admin")
def revoke_client(name: str) -> Response:
    """Revoke a client (every token at once), or with ``?token=old`` only the old token of a rotation."""
    which = bulk_args().get("token", "all")
    if which not in ("all", "old"):
        raise ApiError(400, "invalid_parameter", "token: expected all or old")
    try:
        if which == "old":
            ended = api_clients().revoke_old(name)
            audit("api_client.revoke", f"{name} (old token)")
            return jsonify({"name": name, "revoked": ended})
        client = api_clients().revoke(name)
    except ApiClientError as exc:
        raise refusal(exc) from None
    audit("api_client.revoke", name)
    return jsonify({"name": name, "revoked": [t.id for t in client.tokens]})


@bp.post("/api-clients/<name>/rotate")
@requires("admin")
def rotate_client(name: str) -> tuple[Response, int]:
    """A second token for a client: the current one keeps working for ``window_s`` seconds (default a day)."""
    window = bulk_args().get("window_s", DEFAULT_WINDOW_S)
    try:
        if isinstance(window, bool):
            raise TypeError("a boolean is not a number of seconds")
        window_s = float(window)
    except (TypeError, ValueError):
        raise ApiError(400, "invalid_parameter", "window_s: expected a number of seconds") from None
    try:
        client, token = api_clients().rotate(name, window_s)
    except ApiClientError as exc:
        raise refusal(exc) from None
    audit("api_client.rotate", name)
    return jsonify({**client.as_json(), "token": token}), 201
