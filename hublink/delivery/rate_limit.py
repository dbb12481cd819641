"""RateLimiter: one HubSpot request budget shared by every worker on every machine.

State lives in Redis (``rl:<bucket>``, ``rl:<bucket>:block``, ``rl:<bucket>:max``) and changes only in
Lua, so the check and the take are one atomic step. A bucket is one HubSpot app/token (and portal, for
OAuth apps): the unit HubSpot counts. The limiter also learns from HubSpot's headers (other apps on the
account use the same budget) and is blocked outright after a 429 until the time HubSpot named.

Fails closed: without Redis it raises StoreUnavailableError, and the worker sends nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Protocol

from redis import Redis

from hublink.domain.errors import RateHeaders
from hublink.domain.limits import RateLimit
from hublink.store.clock import now_ms
from hublink.store.connections import store_errors
from hublink.store.keys import Keys
from hublink.store.scripts import Scripts


class Limiter(Protocol):
    """What the drainer needs from a rate limiter."""

    def acquire(self, bucket: str, limit: RateLimit) -> int:
        """Take one token, or return milliseconds to wait (0 = taken)."""
        ...

    def wait_ms(self, bucket: str, limit: RateLimit) -> int:
        """How long until a token may be free (0: now), without taking one."""
        ...

    def observe(self, bucket: str, limit: RateLimit, headers: RateHeaders) -> None:
        """Correct the bucket with HubSpot's headers."""
        ...

    def block(self, bucket: str, seconds: float) -> None:
        """Send nothing from ``bucket`` for ``seconds`` (after a 429)."""
        ...


class RedisRateLimiter:
    """A sliding-log limiter in Redis; see ``hublink/store/lua/rate_limit.lua`` for why a sliding log."""

    def __init__(self, redis: Redis, keys: Keys, *, margin: float, scripts: Scripts | None = None) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts or Scripts(redis)
        self._margin = margin

    def allowed(self, limit: RateLimit) -> int:
        """Requests per (stretched) window HubLink allows itself under ``limit``: all of them, see window_ms."""
        return max(1, limit.requests)

    def window_ms(self, limit: RateLimit) -> int:
        """The sliding log's window: HubSpot's, stretched so that the margin is kept free on average.

        The margin is time, not a count: 100 per 10 s becomes 100 per 10.53 s, and 5 per second 5 per
        1.053 s (4.75/s). Rounding the count down instead (int(5 x 0.95) = 4) would leave 20 % of a small
        limit unused, a backfill's search walk among them. No 10 s window sent into ever holds more than the limit.
        """
        return int(limit.window_s * 1000 / (1 - self._margin))

    def acquire(self, bucket: str, limit: RateLimit) -> int:
        """Take one token from ``bucket``; return 0, or milliseconds until one may be free."""
        with store_errors():
            wait = self._scripts.rate_limit(
                keys=[
                    self._keys.rate_window(bucket),
                    self._keys.rate_block(bucket),
                    self._keys.rate_learned_max(bucket),
                ],
                args=[now_ms(), self.window_ms(limit), self.allowed(limit), uuid.uuid4().hex],
            )
        return int(wait)

    def wait_ms(self, bucket: str, limit: RateLimit) -> int:
        """How long until a token may be free (0: now), read without taking one (rate_limit.lua's arithmetic)."""
        now, window = now_ms(), self.window_ms(limit)
        with store_errors():
            pipe = self._redis.pipeline(transaction=False)
            pipe.get(self._keys.rate_block(bucket))
            pipe.get(self._keys.rate_learned_max(bucket))
            pipe.zcount(self._keys.rate_window(bucket), f"({now - window}", "+inf")
            pipe.zrangebyscore(
                self._keys.rate_window(bucket), f"({now - window}", "+inf", start=0, num=1, withscores=True
            )
            blocked, learned, used, oldest = pipe.execute()
        if blocked and int(blocked) > now:
            return int(blocked) - now
        allowed = self.allowed(limit)
        if learned and 0 < int(learned) < allowed:
            allowed = int(learned)
        if used < allowed or not oldest:
            return 0
        return max(int(oldest[0][1]) + window - now, 1)

    def observe(self, bucket: str, limit: RateLimit, headers: RateHeaders) -> None:
        """Fold HubSpot's view of the window into the bucket (see rate_observe.lua)."""
        if headers.interval_ms <= 0 or headers.max <= 0:
            return
        with store_errors():
            self._scripts.rate_observe(
                keys=[
                    self._keys.rate_window(bucket),
                    self._keys.rate_learned_max(bucket),
                    self._keys.rate_seen(bucket),
                ],
                args=[
                    now_ms(),
                    headers.interval_ms,
                    headers.max,
                    max(headers.remaining, 0),
                    self._margin,
                    f"hs-{uuid.uuid4().hex}-",
                ],
            )

    def block(self, bucket: str, seconds: float) -> None:
        """Hold every worker off ``bucket`` for ``seconds``, never shortening a longer block (rate_block.lua)."""
        now = now_ms()
        with store_errors():
            self._scripts.rate_block(keys=[self._keys.rate_block(bucket)], args=[now + int(seconds * 1000), now])


class MemoryLimiter:
    """The limiter in process memory, with the same rules as the Lua one: the unit tests' twin.

    A sliding log per bucket, the safety margin kept free, and blocks that are only ever lengthened.
    ``clock`` gives epoch seconds (a fake clock in tests); ``observed`` keeps what HubSpot's headers said.
    """

    def __init__(self, *, margin: float = 0.0, clock: Callable[[], float] = time.time) -> None:
        self._margin = margin
        self._clock = clock
        self._sent: dict[str, list[int]] = {}
        self.blocked_until_ms: dict[str, int] = {}
        self.observed: list[tuple[str, RateHeaders]] = []

    def acquire(self, bucket: str, limit: RateLimit) -> int:
        """Take one token from ``bucket``; return 0, or milliseconds until one may be free."""
        wait = self.wait_ms(bucket, limit)
        if wait == 0:
            self._sent[bucket].append(int(self._clock() * 1000))
        return wait

    def wait_ms(self, bucket: str, limit: RateLimit) -> int:
        """How long until a token may be free (0: now), without taking one."""
        now = int(self._clock() * 1000)
        blocked = self.blocked_until_ms.get(bucket, 0)
        if blocked > now:
            return blocked - now
        # The margin is time: the window stretched, the whole count allowed (as RedisRateLimiter.window_ms).
        window_ms = int(limit.window_s * 1000 / (1 - self._margin))
        sent = [t for t in self._sent.get(bucket, []) if t > now - window_ms]
        self._sent[bucket] = sent
        if len(sent) >= max(1, limit.requests):
            return sent[0] + window_ms - now
        return 0

    def observe(self, bucket: str, limit: RateLimit, headers: RateHeaders) -> None:
        """Remember what HubSpot's headers said (the Redis limiter folds them into the window)."""
        self.observed.append((bucket, headers))

    def block(self, bucket: str, seconds: float) -> None:
        """Hold ``bucket`` for ``seconds``, never shortening a longer block."""
        until = int(self._clock() * 1000) + int(seconds * 1000)
        self.blocked_until_ms[bucket] = max(self.blocked_until_ms.get(bucket, 0), until)
