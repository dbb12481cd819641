"""Redis connections: one factory; plain URLs stay plain, sentinels make every client follow the primary."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from redis.sentinel import SentinelConnectionPool, SentinelManagedConnection, SentinelManagedSSLConnection

from hublink.config.settings import Settings
from hublink.domain.errors import StoreBusyError, StoreUnavailableError
from hublink.store.connections import (
    BoundedPool,
    connect,
    connect_rq,
    failover_retry,
    store_errors,
    unavailable_reason,
)

SENTINELS = {"redis_sentinels": (("127.0.0.1", 26379), ("127.0.0.1", 26380)), "redis_sentinel_master": "hublink"}


class TestPlain:
    """Without sentinels the client is redis-py's for the URL, with a bounded pool that waits for a connection."""

    def test_a_url_gives_a_plain_client_with_the_timeouts(self) -> None:
        """A URL connects directly, with the connect and socket timeouts asked for."""
        client = connect("redis://127.0.0.1:6379/3", timeout_s=1.5, blocking_s=2.0)
        kwargs = client.connection_pool.connection_kwargs
        assert type(client.connection_pool) is BoundedPool
        assert (kwargs["socket_connect_timeout"], kwargs["socket_timeout"], kwargs["db"]) == (1.5, 3.5, 3)

    def test_settings_without_sentinels_are_their_url(self, make_settings: Callable[..., Settings]) -> None:
        """Settings with no sentinels give the same client as their REDIS_URL."""
        client = connect(make_settings(redis_url="redis://127.0.0.1:6390/2"), timeout_s=1.0)
        assert type(client.connection_pool) is BoundedPool
        assert client.connection_pool.connection_kwargs["port"] == 6390

    def test_the_pool_has_the_size_and_wait_asked_for(self) -> None:
        """``pool_size`` caps the connections, ``pool_wait_s`` is how long a call waits for a free one."""
        pool = connect("redis://127.0.0.1:6379/0", timeout_s=1.0, pool_size=7, pool_wait_s=0.5).connection_pool
        assert isinstance(pool, BoundedPool)
        assert (pool.max_connections, pool.timeout) == (7, 0.5)

    def test_an_exhausted_pool_is_typed_store_busy(self) -> None:
        """A call that waited the whole pool wait gets StoreBusyError naming the pool, not a network error."""
        client = connect("redis://127.0.0.1:6379/0", timeout_s=1.0, pool_size=1, pool_wait_s=0.01)
        pool = client.connection_pool
        assert isinstance(pool, BoundedPool)
        pool.pool.get_nowait()  # the one connection's place, taken without a socket (unit tests have none)
        with pytest.raises(StoreBusyError, match="pool of 1"), store_errors():
            client.get("x")

    def test_rq_gets_no_socket_timeout(self, make_settings: Callable[..., Settings]) -> None:
        """RQ's client blocks on its queue for minutes, so it has no socket timeout."""
        client = connect_rq(make_settings(), connect_timeout_s=5.0)
        assert client.connection_pool.connection_kwargs.get("socket_timeout") is None


class TestSentinel:
    """With sentinels, every client asks them for the primary."""

    def test_the_client_follows_the_primary_the_sentinels_name(self, make_settings: Callable[..., Settings]) -> None:
        """The pool is a Sentinel pool for the service, with the database and password of REDIS_URL."""
        client = connect(make_settings(redis_url="redis://:pw@ignored:1/4", **SENTINELS), timeout_s=2.0)
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        assert (pool.service_name, pool.is_master) == ("hublink", True)
        assert pool.connection_class is SentinelManagedConnection
        assert (pool.connection_kwargs["db"], pool.connection_kwargs["password"]) == (4, "pw")
        assert [s.connection_pool.connection_kwargs["port"] for s in pool.sentinel_manager.sentinels] == [26379, 26380]

    def test_rediss_keeps_tls(self, make_settings: Callable[..., Settings]) -> None:
        """A rediss:// URL makes the connections to the primary TLS connections."""
        client = connect(make_settings(redis_url="rediss://h:1/0", **SENTINELS), timeout_s=2.0)
        assert client.connection_pool.connection_class is SentinelManagedSSLConnection

    def test_the_sentinels_get_their_own_password(self, make_settings: Callable[..., Settings]) -> None:
        """REDIS_SENTINEL_PASSWORD goes to the sentinels, REDIS_URL's password to the primary."""
        settings = make_settings(redis_url="redis://:primary@h:1/0", redis_sentinel_password="sentinel", **SENTINELS)
        pool = connect(settings, timeout_s=2.0).connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        assert {s.connection_pool.connection_kwargs["password"] for s in pool.sentinel_manager.sentinels} == {
            "sentinel"
        }
        assert pool.connection_kwargs["password"] == "primary"

    def test_rq_and_its_scheduler_follow_the_primary_too(self, make_settings: Callable[..., Settings]) -> None:
        """RQ's client is a Sentinel client; the class and arguments its scheduler rebuilds it from are too."""
        from rq.connections import parse_connection

        client = connect_rq(make_settings(**SENTINELS), connect_timeout_s=5.0)
        assert isinstance(client.connection_pool, SentinelConnectionPool)
        assert client.connection_pool.connection_kwargs.get("socket_timeout") is None
        _, connection_class, kwargs = parse_connection(client)
        assert connection_class is SentinelManagedConnection
        assert kwargs["connection_pool"] is client.connection_pool.proxy


class TestRetryBudget:
    """While the sentinels elect a new primary, a command keeps trying for about its budget, no longer."""

    @pytest.mark.parametrize("budget_s", [0.1, 2.0, 5.0, 30.0])
    def test_the_waits_add_up_to_the_budget(self, budget_s: float) -> None:
        """The backoff waits of every retry add up to the budget, give or take one step."""
        retry = failover_retry(budget_s)
        waits = sum(min(0.25, 0.025 * 2**n) for n in range(1, retry.get_retries() + 1))
        assert budget_s <= waits < budget_s + 0.25


class TestRetryDeadline:
    """A retry gives up when its time is spent, whatever its count."""

    def test_attempts_stop_at_the_deadline(self) -> None:
        """An operation that keeps failing is given up about its budget after it began."""
        import time

        attempts: list[float] = []

        def refuse() -> None:
            """Fail as a dead primary does."""
            attempts.append(time.monotonic())
            raise redis.ConnectionError("refused")

        retry = failover_retry(0.2)
        with pytest.raises(redis.ConnectionError):
            retry.call_with_retry(refuse, lambda _error: None)
        assert 1 < len(attempts) <= retry.get_retries() + 1
        assert attempts[-1] - attempts[0] <= 0.2

    def test_a_success_after_failures_is_returned(self) -> None:
        """The first success ends the retries and is the answer."""
        answers = iter([redis.ConnectionError("refused"), redis.ConnectionError("refused"), "ok"])

        def flaky() -> str:
            """Fail twice, then answer."""
            answer = next(answers)
            if isinstance(answer, Exception):
                raise answer
            return answer

        assert failover_retry(1.0).call_with_retry(flaky, lambda _error: None) == "ok"


class TestStoreErrors:
    """Redis failures become StoreUnavailableError at the boundary."""

    @pytest.mark.parametrize(
        "error",
        [
            redis.ConnectionError("refused"),
            redis.TimeoutError("slow"),
            redis.exceptions.ReadOnlyError("You can't write against a read only replica."),
        ],
    )
    def test_unavailable_and_demoted_servers_are_store_unavailable(self, error: Exception) -> None:
        """A refused or slow connection, and a write refused by a demoted primary, are StoreUnavailableError."""
        with pytest.raises(StoreUnavailableError), store_errors():
            raise error

    def test_other_redis_errors_pass_through(self) -> None:
        """A Redis error that is a bug (a wrong command) is not disguised as an outage."""
        with pytest.raises(redis.ResponseError), store_errors():
            raise redis.ResponseError("ERR unknown command")


class TestUnavailableReason:
    """What a worker's loop logs when a turn finds Redis unavailable: the cause in words, never the server's text."""

    def test_a_full_redis_says_so(self) -> None:
        """An OOM refusal, raw or typed at the boundary, reads "Redis is full" (what an operator greps for)."""
        raw = redis.exceptions.OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'. key:secret")
        assert unavailable_reason(raw) == "StoreFullError: Redis is full (maxmemory): writes are refused"
        with pytest.raises(StoreUnavailableError) as typed, store_errors():
            raise raw
        assert unavailable_reason(typed.value) == unavailable_reason(raw)

    def test_a_wrapped_outage_is_found_through_its_cause(self) -> None:
        """An outage raised from inside another error is named by the cause, not the wrapper."""
        wrapper = RuntimeError("turn failed")
        wrapper.__cause__ = redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379")
        assert unavailable_reason(wrapper) == "StoreUnavailableError: Redis did not answer: ConnectionError"

    def test_anything_else_is_its_type_name(self) -> None:
        """An error no rule types is named by its type alone: its text could carry anything."""
        assert unavailable_reason(ValueError("token=abc")) == "ValueError"
