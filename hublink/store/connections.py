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

#: The errors that mean "Redis cannot take this now": network trouble, timeouts, a server still loading,
#: out of memory (``maxmemory`` reached) or read-only (a replica after a failover). All pass: callers wait
#: and try again, and none of them says anything about the work being asked for.
UNAVAILABLE = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.BusyLoadingError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
)


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


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` (or what it was raised from) says Redis could not take the command, for now."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (*UNAVAILABLE, StoreUnavailableError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
