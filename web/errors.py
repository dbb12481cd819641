"""The web's error answers: every refusal is ``{"error": {"code", "message", "details"}}`` JSON, and logged.

Views raise :class:`ApiError` (or a HubLink error that maps to one); nothing else builds error bodies.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from hublink.domain.errors import (
    InvalidInputError,
    InvalidSignatureError,
    NotReplicatedError,
    StoreBusyError,
    StoreFullError,
    StoreUnavailableError,
)
from hublink.store.connections import store_error
from web.parts import parts

#: Codes of the answers given because Redis failed: counting them would need the Redis that just failed.
STORE_CODES = frozenset({"store_unavailable", "store_full", "store_busy", "not_replicated"})
#: Seconds a sender is asked to wait: a lost connection comes back quickly, a full Redis needs an operator.
RETRY_AFTER_UNAVAILABLE_S = 5
RETRY_AFTER_FULL_S = 30
#: A busy pool frees up within moments.
RETRY_AFTER_BUSY_S = 1

log = logging.getLogger("hublink.web")


class ApiError(Exception):
    """An HTTP error answer: status, a stable machine-readable code, a message, optional details."""

    def __init__(
        self, status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> Response:
    """Build the JSON error answer and log the refusal (never with the body or credentials)."""
    level = logging.ERROR if status >= 500 and status != 503 else logging.WARNING if status >= 500 else logging.INFO
    if code not in STORE_CODES:
        _count_refusal(code)
    log.log(
        level,
        "request refused",
        extra={"status": status, "code": code, "path": request.path, "method": request.method, "reason": message[:200]},
    )
    response = jsonify({"error": {"code": code, "message": message, "details": details}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _count_refusal(code: str) -> None:
    """Count one refusal per reason; best effort: a refusal (a 400, a 401) must not become a 5xx because
    Redis is down, full or read-only when the counter is written."""
    try:
        p = parts()
        p.metrics.apply([p.metrics.op("requests_refused", endpoint=request.endpoint or "none", reason=code)])
    except (StoreUnavailableError, redis.RedisError, KeyError, RuntimeError) as exc:
        log.debug("refusal not counted", extra={"code": code, "error": type(exc).__name__})


def store_refusal(exc: StoreUnavailableError) -> Response:
    """The 503 for a store failure: ``store_full`` when Redis is at maxmemory, else ``store_unavailable``.

    Never a 2xx (senders, HubSpot included, retry) and never a 500. Whether the write that failed was
    applied is unknown (a timeout after Redis wrote it), which is why the direct API takes an Idempotency-Key.
    """
    if isinstance(exc, NotReplicatedError):
        # Stored on the primary, not yet on enough replicas: not acknowledged. A retry is safe (event dedup,
        # Idempotency-Key) and usually succeeds once the replicas catch up or a failover has settled.
        return error_response(
            503,
            "not_replicated",
            "the request was not confirmed by enough Redis replicas in time; retry later",
            {"replicas": exc.replicas, "wanted": exc.wanted},
            headers={"Retry-After": "1"},
        )
    if isinstance(exc, StoreBusyError):
        # Redis may be fine: this process had more Redis calls under way than its pool holds.
        return error_response(
            503,
            "store_busy",
            "no Redis connection of this process came free in time (its pool is in use); retry later",
            {"reason": str(exc)},
            headers={"Retry-After": str(RETRY_AFTER_BUSY_S)},
        )
    if isinstance(exc, StoreFullError):
        return error_response(
            503,
            "store_full",
            "the queue is full; retry later",
            headers={"Retry-After": str(RETRY_AFTER_FULL_S)},
        )
    return error_response(
        503,
        "store_unavailable",
        "the queue is unavailable; retry later",
        headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE_S)},
    )


def register(app: Flask) -> None:
    """Install the handlers that turn exceptions into JSON errors."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.errorhandler(InvalidSignatureError)
    def _bad_signature(exc: InvalidSignatureError) -> Response:
        return error_response(401, "invalid_signature", str(exc), {"reason": exc.reason})

    @app.errorhandler(InvalidInputError)
    def _invalid(exc: InvalidInputError) -> Response:
        return error_response(422, "invalid_input", exc.message, [p.as_dict() for p in exc.problems])

    @app.errorhandler(StoreUnavailableError)
    def _store_down(exc: StoreUnavailableError) -> Response:
        # 503, never 2xx: senders (HubSpot included) retry, and nothing was acknowledged.
        return store_refusal(exc)

    @app.errorhandler(redis.RedisError)
    def _redis_error(exc: redis.RedisError) -> Response:
        # A Redis call outside ``store_errors()``: typed here as it would have been there.
        typed = store_error(exc)
        if typed is not None:
            return store_refusal(typed)
        log.exception("unhandled Redis error")
        return error_response(500, "internal_error", "internal error")

    @app.errorhandler(NotReplicatedError)
    def _not_replicated(exc: NotReplicatedError) -> Response:
        # Stored on the primary, not yet on enough replicas: not acknowledged. A retry is safe (event dedup,
        # Idempotency-Key) and usually succeeds once the replicas catch up or a failover has settled.
        return error_response(
            503,
            "not_replicated",
            "the request was not confirmed by enough Redis replicas in time; retry later",
            {"replicas": exc.replicas, "wanted": exc.wanted},
            headers={"Retry-After": "1"},
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        # One name per refusal whatever raised it (a chunked body over the limit is cut off by Werkzeug).
        code = "payload_too_large" if exc.code == 413 else (exc.name or "error").lower().replace(" ", "_")
        # Keep Werkzeug's protocol headers (Allow on a 405, as RFC 9110 requires); the body is ours.
        kept = {k: v for k, v in exc.get_headers() if k.lower() not in ("content-type", "content-length")}
        return error_response(exc.code or 500, code, exc.description or exc.name or "error", headers=kept)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error")
