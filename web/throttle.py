"""The failure throttle: failed admin authentications (dashboard logins, admin API tokens), per address and
in total. Shared by :mod:`web.admin` (logins) and :mod:`web.api` (the admin API's bearer tokens).

Counters live in Redis (``throttle:<scope>``, fixed windows), so every web process shares them: ten
gunicorn workers do not give an attacker ten times the attempts. Each attempt is checked and counted in
one atomic step *before* the token is compared (``throttle_take.lua``), so wrong tokens sent all at once
get at most ``PER_ADDRESS_LIMIT`` comparisons per address per window, however they interleave; a right
token gives its attempt back (``throttle_refund.lua``), so only failures use the window up and an
operator's successful requests are never limited. A small counter, not Flask-Limiter.

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
    #: Attempts counted in the window, this one included (address, total), when allowed.
    counts: tuple[int, int] = (0, 0)


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

    def take(self, address: str) -> Verdict:
        """Count an attempt from ``address`` now, before its token is compared; refused once a window is used up.

        Call :meth:`refund` when the token was right. Raises StoreUnavailableError without Redis.
        """
        with store_errors():
            answer = self._scripts.throttle_take(
                keys=self._scoped(address), args=[self._window_s, self._per_address, self._total]
            )
        if int(answer[0]) == 1:
            return Verdict(True, counts=(int(answer[1]), int(answer[2])))
        scope = ("address", TOTAL_SCOPE)[int(answer[2]) - 1]
        return Verdict(False, max(int(answer[1]), 1), scope)

    def refund(self, address: str) -> None:
        """Give back the attempt :meth:`take` counted: the token was right (a success never uses the window)."""
        with store_errors():
            self._scripts.throttle_refund(keys=self._scoped(address))
