"""Redis connections: one factory, so that timeouts and error typing are the same everywhere.

Fails closed: when Redis does not answer, or refuses writes (at ``maxmemory`` under ``noeviction``, or a
read-only replica after a failover), callers get :class:`StoreUnavailableError` (:class:`StoreFullError`
for the first) and intake answers 503 (never a 2xx, never a 500), while a worker stops taking work until
Redis is back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis import Redis
from redis.exceptions import MasterDownError, OutOfMemoryError, ReadOnlyError, ResponseError, TryAgainError

from hublink.domain.errors import StoreFullError, StoreUnavailableError

#: The errors that mean "Redis cannot take this now": network trouble, timeouts, a server still loading,
#: a full server (OOM), a read-only replica (after a failover), a replica cut off from its master.
UNAVAILABLE = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.BusyLoadingError,
    OutOfMemoryError,
    ReadOnlyError,
    MasterDownError,
    TryAgainError,
)

# Error codes Redis sends when it refuses a write; a Lua script or a MULTI may hand them back inside a
# plain ResponseError (the code then starts the message, or follows "script:" wrapping).
_FULL_CODES = ("OOM ", "OOM command not allowed")
_REFUSED_CODES = ("READONLY ", "MASTERDOWN ", "LOADING ", "TRYAGAIN ")


def connect(url: str, *, timeout_s: float, blocking_s: float = 0.0) -> Redis:
    """Return a client for ``url`` that gives up after ``timeout_s`` (plus ``blocking_s`` for BLPOP users).

    Responses stay bytes: RQ does not support ``decode_responses=True``, and one kind of client is
    simpler than two.
    """
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s + blocking_s,
        health_check_interval=30,
        retry_on_timeout=False,
    )


def text(value: Any) -> str:
    """A Redis answer as text: responses are bytes (RQ forbids decode_responses), names are UTF-8."""
    return value.decode() if isinstance(value, bytes) else str(value)


def store_error(exc: BaseException) -> StoreUnavailableError | None:
    """The typed error for a Redis failure that means "not now" (None for any other error, e.g. a bug).

    :class:`StoreFullError` for OOM (the server is at ``maxmemory``), :class:`StoreUnavailableError` for
    the rest of :data:`UNAVAILABLE` and their codes inside a script's or transaction's ResponseError.
    """
    message = str(exc)
    if isinstance(exc, OutOfMemoryError) or (isinstance(exc, ResponseError) and _has_code(message, _FULL_CODES)):
        return StoreFullError("Redis is full (maxmemory): writes are refused")
    if isinstance(exc, UNAVAILABLE):
        return StoreUnavailableError(f"Redis did not answer: {type(exc).__name__}")
    if isinstance(exc, ResponseError) and _has_code(message, _REFUSED_CODES):
        return StoreUnavailableError(f"Redis refused the write: {message.split(' ', 1)[0][:20]}")
    return None


def _has_code(message: str, codes: tuple[str, ...]) -> bool:
    """True when ``message`` starts with one of ``codes`` or carries it after a script's wrapping."""
    return message.startswith(codes) or any(f" {code}" in message or f"-{code}" in message for code in codes)


def is_store_error(exc: BaseException) -> bool:
    """True for a Redis error that :func:`store_error` types (the web's last-resort handler asks)."""
    return isinstance(exc, redis.RedisError) and store_error(exc) is not None


@contextmanager
def store_errors() -> Iterator[None]:
    """Type Redis's "not now" failures at the boundary: :class:`StoreUnavailableError` or :class:`StoreFullError`."""
    try:
        yield
    except redis.RedisError as exc:
        typed = store_error(exc)
        if typed is None:
            raise
        raise typed from exc
