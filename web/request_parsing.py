"""Reading requests safely: bearer tokens, body size, content type and JSON, each refused precisely.

The raw body is read once, here, before anything parses it (signatures are computed over those bytes).
"""

from __future__ import annotations

import hmac
import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import cache
from typing import Any, TypeVar

import orjson
from flask import request

from hublink.domain.json_nesting import MAX_DEPTH, is_too_deep
from web.errors import ApiError
from web.throttle import FailureThrottle

log = logging.getLogger("hublink.web")

Found = TypeVar("Found")


def require_bearer(expected: str | None, *, realm: str, throttle: FailureThrottle | None = None) -> None:
    """Refuse (401) unless ``Authorization: Bearer <expected>``; constant-time comparison.

    With ``throttle``, wrong tokens are counted as :func:`check_bearer` says.
    """
    if not expected:
        raise ApiError(401, "unauthorized", f"{realm} is not enabled: no token is configured")
    wanted = expected.encode()
    check_bearer(lambda presented: True if hmac.compare_digest(presented.encode(), wanted) else None, throttle=throttle)


def presented_bearer() -> str:
    """The request's bearer token, stripped; 401 when there is none (a missing token is not a guess)."""
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise ApiError(401, "unauthorized", "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    return presented.strip()


def check_bearer(match: Callable[[str], Found | None], *, throttle: FailureThrottle | None = None) -> Found:
    """What ``match`` finds for the request's bearer token; 401 when it finds nothing (or no token is sent).

    With ``throttle``, wrong tokens are counted per client address and in total, and once either count
    is used up every token is refused with 429 ``too_many_attempts`` (and Retry-After) until the window
    ends, the right one too: otherwise guessing could go on. A missing token is not a guess, and is not counted.
    """
    presented = presented_bearer()
    address = request.remote_addr or "unknown"
    verdict = None
    if throttle is not None:
        # Counted before the comparison, in the same step as the check: see web.throttle.
        verdict = throttle.take(address)
        if not verdict.allowed:
            log.warning(
                "admin token throttled",
                extra={"path": request.path, "client": address, "scope": verdict.scope},
            )
            raise ApiError(
                429,
                "too_many_attempts",
                f"too many wrong tokens; retry in {verdict.retry_after_s} s",
                headers={"Retry-After": str(verdict.retry_after_s)},
            )
    found = match(presented)
    if found is None:
        if verdict is not None:
            by_address, in_total = verdict.counts
            log.info(
                "admin token refused",
                extra={"path": request.path, "client": address, "failures": by_address, "failures_total": in_total},
            )
        raise ApiError(401, "unauthorized", "wrong bearer token", headers={"WWW-Authenticate": "Bearer"})
    if throttle is not None:
        throttle.refund(address)
    return found


class BodyTimeoutError(Exception):
    """The body did not arrive within its deadline (raised inside the read, turned into a 408)."""


@contextmanager
def deadline(timeout_s: float) -> Iterator[None]:
    """Raise :class:`BodyTimeoutError` in the block when it runs longer than ``timeout_s`` seconds.

    Under the gevent server (the Procfile's ``web:``, see ``gunicorn.conf.py``) a request is a greenlet and
    gevent's Timeout interrupts a read blocked on a slow client; elsewhere (Flask's test client, a server
    without gevent) there is no deadline to enforce and the block runs as is.
    """
    timeout = _gevent_timeout()
    if timeout is None:
        yield
        return
    with timeout(timeout_s, BodyTimeoutError):
        yield


@cache
def _gevent_timeout() -> Any:
    """gevent's Timeout class when this process runs under gevent (its sockets patched), else None; once."""
    try:
        from gevent import Timeout, monkey  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - gevent is a runtime requirement
        return None
    return Timeout if monkey.is_module_patched("socket") else None


def read_body(max_bytes: int, *, timeout_s: float) -> bytes:
    """The raw body, whole, or a refusal: nothing short of the whole body is ever handed on.

    - Content-Length over ``max_bytes``: 413 ``payload_too_large`` before reading anything.
    - No Content-Length (chunked, or framed by closing the connection): read at most ``max_bytes + 1``
      bytes (``MAX_CONTENT_LENGTH`` is set one above the limit in ``create_app``); one byte more than the
      limit is a 413, so an oversized body is refused rather than cut at the limit and processed.
    - Fewer bytes than Content-Length announced (the client went away or lied): 400 ``incomplete_body``.
    - Not received within ``timeout_s`` (HUBLINK_BODY_TIMEOUT_S): 408 ``request_timeout``, and the
      connection is closed for reading, so a client trickling its body holds nothing once answered.

    Every refusal closes the connection (``Connection: close``): under keep-alive, an unread rest of the
    body must never be taken for a next request.
    """
    close = {"Connection": "close"}
    length = request.content_length
    if length is not None and length > max_bytes:
        raise ApiError(
            413, "payload_too_large", f"body of {length} bytes exceeds the limit of {max_bytes}", headers=close
        )
    try:
        with deadline(timeout_s):
            raw = request.get_data(cache=True)
    except BodyTimeoutError:
        sock = request.environ.get("gunicorn.socket")
        if sock is not None:
            # The server would otherwise read (and wait for) the rest of the body before the next request.
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RD)
        raise ApiError(
            408, "request_timeout", f"the request body was not received within {timeout_s:g} s", headers=close
        ) from None
    if len(raw) > max_bytes:
        raise ApiError(413, "payload_too_large", f"body exceeds the limit of {max_bytes} bytes", headers=close)
    if length is not None and len(raw) != length:
        raise ApiError(
            400, "incomplete_body", f"body ended after {len(raw)} of {length} announced bytes", headers=close
        )
    return raw


def require_json_type() -> None:
    """Refuse (415) anything not declared as JSON."""
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ApiError(
            415, "unsupported_media_type", f"expected Content-Type application/json, got {mimetype or 'none'!r}"
        )


def parse_json(raw: bytes) -> Any:
    """Parse JSON strictly; refuse (400) anything malformed, including non-UTF-8, NaN and absurd nesting.

    orjson, because a 100-event HubSpot batch is parsed on every delivery: it is several times faster than
    the standard library and as strict (it refuses NaN, Infinity and invalid UTF-8 by itself).
    """
    if is_too_deep(raw):
        # Refused before parsing: code that walks a parsed document recurses once per level.
        raise ApiError(400, "too_deep", f"body nests objects and arrays more than {MAX_DEPTH} levels deep")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"body is not valid JSON: {str(exc)[:200]}") from None
