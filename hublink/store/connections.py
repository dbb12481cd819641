"""Redis connections: one factory, so that timeouts and error typing are the same everywhere.

Fails closed: when Redis does not answer, callers get :class:`StoreUnavailableError` and intake
answers 503 (never a 2xx), while a worker stops taking work until Redis is back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis import Redis

from hublink.domain.errors import StoreUnavailableError

#: The errors that mean "Redis did not answer": network trouble, timeouts, a server still loading.
UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


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


@contextmanager
def store_errors() -> Iterator[None]:
    """Turn Redis connection failures into :class:`StoreUnavailableError` at the boundary."""
    try:
        yield
    except UNAVAILABLE as exc:
        raise StoreUnavailableError(f"Redis did not answer: {type(exc).__name__}") from exc
