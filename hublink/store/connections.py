"""Redis connections: one factory, so that timeouts, Sentinel and error typing are the same everywhere.

Fails closed: when Redis does not answer, or refuses writes (at ``maxmemory`` under ``noeviction``, or a
read-only replica after a failover), callers get :class:`StoreUnavailableError` (:class:`StoreFullError`
for the first) and intake answers 503 (never a 2xx, never a 500), while a worker stops taking work until
Redis is back.

With ``REDIS_SENTINELS`` and ``REDIS_SENTINEL_MASTER`` every client (web, workers, RQ and its scheduler, the
CLI and the dashboard, all built here) asks the sentinels where the primary is, and asks again after a
failover: a connection that breaks, or a write refused by a primary since demoted to replica
(``ReadOnlyError``, which redis-py's ``SentinelManagedConnection`` turns into a disconnect and a
ConnectionError), is retried, and the retry connects to whichever server the sentinels name then. Retries
last a bounded time (:class:`FailoverRetry`), so a request answers late rather than failing while the
sentinels elect a new primary, and 503 if they take longer.
Without them, the client is a plain client of ``REDIS_URL``.

Every client built here has a bounded pool (:class:`BoundedPool`): at most ``pool_size`` connections,
and a caller that finds them all in use waits up to ``pool_wait_s`` for one to come back, then gets
:class:`StoreBusyError` (the web answers 503 ``store_busy``, and the log says the pool was exhausted).
The sizes, per process:

* a web process: :data:`WEB_POOL_SIZE` connections for requests, one per request it can hold at once
  (gunicorn's ``worker_connections`` is the same number, so requests never wait for one another's
  connections), plus :data:`PROBE_POOL_SIZE` of their own for ``/readyz`` and ``/metrics``, which any
  client may call without a credential: a flood of probes waits among itself and cannot take
  intake's connections;
* a worker: :data:`DEFAULT_POOL_SIZE` (its threads make a handful of calls at once), plus RQ's own client;
* the CLI: :data:`DEFAULT_POOL_SIZE`.

With sentinels the pool is bounded the same way but does not wait (redis-py's Sentinel pool refuses at
once when it is full): the same :class:`StoreBusyError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

import redis
from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.connection import BlockingConnectionPool, SSLConnection, parse_url
from redis.exceptions import (
    MasterDownError,
    MaxConnectionsError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection, SentinelManagedSSLConnection

from hublink.domain.errors import StoreBusyError, StoreFullError, StoreUnavailableError

T = TypeVar("T")

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


#: How long RQ's own connection keeps trying through a failover before RQ sees an error (its main loop
#: quits on most errors outside its dequeue, so it must not see the few seconds a failover takes).
RQ_FAILOVER_BUDGET_S = 30.0
#: Backoff between attempts while the sentinels have not yet named a new primary.
_BACKOFF_BASE_S = 0.025
_BACKOFF_CAP_S = 0.25


#: Requests one web process holds at once: gunicorn's ``worker_connections`` (gunicorn.conf.py reads it here).
WEB_CONCURRENCY_PER_PROCESS = 1000
#: Connections a web process may open for its requests: one per request it can hold at once.
WEB_POOL_SIZE = WEB_CONCURRENCY_PER_PROCESS
#: Connections a web process keeps apart for ``/readyz`` and ``/metrics`` (open to anyone).
PROBE_POOL_SIZE = 4
#: Connections of any other client (a worker's HubLink calls, the CLI).
DEFAULT_POOL_SIZE = 32
#: How long a caller waits for a free connection before StoreBusyError: well inside HubSpot's 5 s.
POOL_WAIT_S = 2.0
#: How long a probe waits for one of its pool's connections (a probe answers quickly or says why).
PROBE_POOL_WAIT_S = 1.0


class BoundedPool(BlockingConnectionPool):
    """redis-py's blocking pool, whose "no connection came free in time" is typed (MaxConnectionsError).

    redis-py raises a plain ConnectionError for it, indistinguishable from a network failure; this one
    says how many connections the pool holds and how long the caller waited.
    """

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        """A connection of the pool, waiting up to ``timeout`` s; MaxConnectionsError when none came free."""
        try:
            return super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except MaxConnectionsError:
            raise
        except redis.ConnectionError as exc:
            # The pool's own timeout (a network failure connecting says something else).
            if str(exc) != "No connection available.":
                raise
            raise MaxConnectionsError(
                f"no Redis connection came free within {self.timeout} s (pool of {self.max_connections})"
            ) from None


class RedisAddress(Protocol):
    """Where Redis is: a URL, and optionally the sentinels that name the primary (``Settings`` is one)."""

    @property
    def redis_url(self) -> str:
        """REDIS_URL: the server, or with sentinels only its database, user, password and TLS."""

    @property
    def redis_sentinels(self) -> tuple[tuple[str, int], ...]:
        """REDIS_SENTINELS as (host, port) pairs; empty for a plain server."""

    @property
    def redis_sentinel_master(self) -> str | None:
        """REDIS_SENTINEL_MASTER: the service name the sentinels monitor."""

    @property
    def redis_sentinel_password(self) -> str | None:
        """REDIS_SENTINEL_PASSWORD: the sentinels' own password, if they have one."""


def connect(
    target: str | RedisAddress,
    *,
    timeout_s: float,
    blocking_s: float = 0.0,
    pool_size: int = DEFAULT_POOL_SIZE,
    pool_wait_s: float = POOL_WAIT_S,
) -> Redis:
    """Return a client for ``target`` that gives up after ``timeout_s`` (plus ``blocking_s`` for blocking calls).

    ``target`` is a URL (a plain server) or an address such as ``Settings``: with sentinels, the client
    follows the primary, and keeps retrying for about ``timeout_s`` while a failover is under way (a
    request then answers late rather than failing). Responses stay bytes: RQ does not support
    ``decode_responses=True``, and one kind of client is simpler than two. The client opens at most
    ``pool_size`` connections; a call that finds them all in use waits ``pool_wait_s`` for one, then
    raises MaxConnectionsError (typed :class:`StoreBusyError` by :func:`store_errors`).
    """
    options: dict[str, Any] = {
        "socket_connect_timeout": timeout_s,
        "socket_timeout": timeout_s + blocking_s,
        "health_check_interval": 30,
        "retry_on_timeout": False,
    }
    if isinstance(target, str) or not target.redis_sentinels:
        url = target if isinstance(target, str) else target.redis_url
        pool = BoundedPool.from_url(url, max_connections=pool_size, timeout=pool_wait_s, **options)
        return redis.Redis(connection_pool=pool)
    return _primary(
        target, budget_s=timeout_s, connect_timeout_s=timeout_s, options={**options, "max_connections": pool_size}
    )


def connect_rq(target: str | RedisAddress, *, connect_timeout_s: float) -> Redis:
    """The client RQ's worker, queue and scheduler use: no socket timeout (RQ blocks on its queue for minutes).

    RQ's scheduler process rebuilds its connection from this client's pool (class and arguments), so with
    sentinels it too finds the primary through them.
    """
    if isinstance(target, str) or not target.redis_sentinels:
        return redis.Redis.from_url(target if isinstance(target, str) else target.redis_url)
    return _primary(
        target,
        budget_s=RQ_FAILOVER_BUDGET_S,
        connect_timeout_s=connect_timeout_s,
        options={"socket_connect_timeout": connect_timeout_s, "health_check_interval": 30},
    )


def _primary(address: RedisAddress, *, budget_s: float, connect_timeout_s: float, options: dict[str, Any]) -> Redis:
    """A client of the primary that ``address``'s sentinels name, retrying for about ``budget_s``."""
    from_url: dict[str, Any] = parse_url(address.redis_url)  # type: ignore[no-untyped-call]
    from_url.pop("host", None)
    from_url.pop("port", None)
    tls = from_url.pop("connection_class", None) is SSLConnection
    sentinel_options: dict[str, Any] = {
        "socket_connect_timeout": connect_timeout_s,
        "socket_timeout": connect_timeout_s,
    }
    if address.redis_sentinel_password:
        sentinel_options["password"] = address.redis_sentinel_password
    sentinel = Sentinel(list(address.redis_sentinels), sentinel_kwargs=sentinel_options)  # type: ignore[no-untyped-call]
    client: Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        address.redis_sentinel_master,
        connection_class=SentinelManagedSSLConnection if tls else SentinelManagedConnection,
        retry=failover_retry(budget_s),
        **from_url,
        **options,
    )
    return client


class FailoverRetry(Retry):
    """redis-py's Retry, bounded by time as well as by count: an operation gives up ``budget_s`` after it began.

    redis-py retries twice over: a command's attempts, and inside each the connect to the primary (the
    sentinels' answer). With counts alone the two multiply; with a deadline on each, a command that cannot
    reach any primary fails after at most about twice its budget.
    """

    def __init__(self, budget_s: float) -> None:
        waits, retries = 0.0, 0
        while waits < budget_s:
            retries += 1
            waits += min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**retries)
        super().__init__(ExponentialBackoff(cap=_BACKOFF_CAP_S, base=_BACKOFF_BASE_S), max(retries, 1))
        self.budget_s = budget_s

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        """Call ``do`` until it succeeds, the error is not retryable, or the count or the time is spent."""
        deadline = time.monotonic() + self.budget_s
        self._backoff.reset()  # type: ignore[no-untyped-call]
        failures = 0
        while True:
            try:
                return do()
            except self._supported_errors as error:
                if is_retryable and not is_retryable(error):
                    raise
                failures += 1
                if with_failure_count:
                    fail(error, failures)
                else:
                    fail(error)
                wait_s = self._backoff.compute(failures)
                if failures > self._retries or time.monotonic() + wait_s > deadline:
                    raise
                time.sleep(wait_s)


def failover_retry(budget_s: float) -> FailoverRetry:
    """A retry policy for about ``budget_s``: waits of 25 ms doubling to 250 ms, then 250 ms steps."""
    return FailoverRetry(budget_s)


def text(value: Any) -> str:
    """A Redis answer as text: responses are bytes (RQ forbids decode_responses), names are UTF-8."""
    return value.decode() if isinstance(value, bytes) else str(value)


def store_error(exc: BaseException) -> StoreUnavailableError | None:
    """The typed error for a Redis failure that means "not now" (None for any other error, e.g. a bug).

    :class:`StoreBusyError` when the process's pool had no connection free in time (Redis itself was not
    asked), :class:`StoreFullError` for OOM (the server is at ``maxmemory``), :class:`StoreUnavailableError` for
    the rest of :data:`UNAVAILABLE` and their codes inside a script's or transaction's ResponseError.
    """
    message = str(exc)
    if isinstance(exc, MaxConnectionsError):
        return StoreBusyError(f"no free Redis connection in this process's pool: {message}")
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


def unavailable_cause(exc: BaseException) -> StoreUnavailableError | None:
    """The typed "not now" failure ``exc`` is or was raised from (None when nothing in its chain is one)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, StoreUnavailableError):
            return seen
        typed = store_error(seen) if isinstance(seen, redis.RedisError) else None
        if typed is not None:
            return typed
        seen = seen.__cause__ or seen.__context__
    return None


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` (or what it was raised from) says Redis could not take the command, for now."""
    return unavailable_cause(exc) is not None


def unavailable_reason(exc: BaseException) -> str:
    """What an "unavailable" failure says, in HubLink's own words (never a server's text, which may echo a key).

    ``StoreFullError: Redis is full (maxmemory): writes are refused`` for OOM, so an operator reading a
    worker's log sees the cause without decoding a type name; the type name for anything else.
    """
    cause = unavailable_cause(exc)
    return type(exc).__name__ if cause is None else f"{type(cause).__name__}: {cause}"
