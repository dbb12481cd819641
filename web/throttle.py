"""The failure throttle: failed admin authentications (dashboard logins, admin API tokens), per address and
in total. Shared by :mod:`web.admin` (logins) and :mod:`web.api` (the admin API's bearer tokens).

Counters live in Redis (``throttle:<scope>``, fixed windows), so every web process shares them: ten
gunicorn workers do not give an attacker ten times the attempts. A small counter, not Flask-Limiter:
only failures count (an operator's successful requests are never limited), the check and the count are
two round-trips on the failure path only, and it needs nothing of Flask.

Fails closed: without Redis the check raises StoreUnavailableError and the request is a 503, so a Redis
outage never turns into unlimited guessing.

Keys owned here (see ``hublink.store.keys``): ``throttle:<scope>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from hublink.store.connections import store_errors
from hublink.store.keys import Keys
from hublink.store.scripts import Scripts

#: Failures allowed from one client address per window.
PER_ADDRESS_LIMIT = 10
#: Failures allowed from all addresses together per window (a spread-out guess is still bounded).
TOTAL_LIMIT = 100
#: The window, in seconds: a counter starts at its first failure and ends this long after.
WINDOW_S = 300
#: The scope of the total counter (addresses are never this word).
TOTAL_SCOPE = "all"


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether another attempt may be made now; ``retry_after_s`` says when, if not."""

    allowed: bool
    retry_after_s: int = 0
    scope: str = ""


class FailureThrottle:
    """Failed-authentication counters for one kind of attempt (``kind``: ``login`` or ``admin_api``)."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        kind: str,
        per_address: int = PER_ADDRESS_LIMIT,
        total: int = TOTAL_LIMIT,
        window_s: int = WINDOW_S,
        scripts: Scripts | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._kind = kind
        self._per_address = per_address
        self._total = total
        self._window_s = window_s
        self._scripts = scripts or Scripts(redis)

    def _scoped(self, address: str) -> list[str]:
        return [self._keys.throttle(f"{self._kind}:{address}"), self._keys.throttle(f"{self._kind}:{TOTAL_SCOPE}")]

    def check(self, address: str) -> Verdict:
        """May ``address`` try now? No once it, or everyone together, used up the window's failures."""
        keys = self._scoped(address)
        with store_errors():
            pipe = self._redis.pipeline(transaction=False)
            for key in keys:
                pipe.get(key)
                pipe.ttl(key)
            raw = pipe.execute()
        for (scope, limit), count, ttl in zip(
            (("address", self._per_address), (TOTAL_SCOPE, self._total)), raw[0::2], raw[1::2], strict=True
        ):
            if count is not None and int(count) >= limit:
                return Verdict(False, max(int(ttl), 1), scope)
        return Verdict(True)

    def fail(self, address: str) -> tuple[int, int]:
        """Count one failure from ``address``; return the counts (address, total) in the window."""
        with store_errors():
            counts = self._scripts.throttle_fail(keys=self._scoped(address), args=[self._window_s])
        return int(counts[0]), int(counts[1])
