"""Rolling-window rate limits per caller: the limit value (``100/10s``) and the windows that enforce it.

Only accepted requests enter a window: a request answered 429 is not counted, so a client that keeps
retrying into the limit does not push its own recovery further out. The windows are not thread-safe on
their own; ``SimState`` calls them under its lock.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m)\s*")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0}


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``max_requests`` accepted requests in any rolling ``window_s`` seconds."""

    max_requests: int
    window_s: float

    def __post_init__(self) -> None:
        if self.max_requests < 1:
            raise ValueError(f"rate limit: expected at least 1 request per window, got {self.max_requests}")
        if self.window_s <= 0:
            raise ValueError(f"rate limit: expected a window longer than 0 s, got {self.window_s}")

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """``100/10s``, ``5/1s``, ``5/s``, ``100/10000ms`` or ``600/1m``.

        Raises ValueError naming the text when it is not of that form.
        """
        match = _RATE.fullmatch(text)
        if not match:
            raise ValueError(f"rate limit: expected N/<window>, e.g. 100/10s or 5/1s, got {text!r}")
        count, amount, unit = match.groups()
        return cls(int(count), float(amount or 1) * _UNIT_S[unit])

    @property
    def window_ms(self) -> int:
        """The window in milliseconds, as ``X-HubSpot-RateLimit-Interval-Milliseconds`` states it."""
        return round(self.window_s * 1000)

    def __str__(self) -> str:
        window = f"{self.window_s:g}s" if self.window_s >= 1 else f"{self.window_ms}ms"
        return f"{self.max_requests}/{window}"

    def headers(self, remaining: int) -> dict[str, str]:
        """HubSpot's rate-limit headers, ``remaining`` requests being left (docs/reference/hubspot.md §2.2)."""
        return {
            "X-HubSpot-RateLimit-Max": str(self.max_requests),
            "X-HubSpot-RateLimit-Remaining": str(max(remaining, 0)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(self.window_ms),
        }


def parse_rate_limit(value: str | RateLimit | None) -> RateLimit | None:
    """A RateLimit from text (None or empty text: no limit). Raises ValueError on malformed text."""
    if value is None or isinstance(value, RateLimit):
        return value
    if not value.strip():
        return None
    return RateLimit.parse(value)


class RollingWindows:
    """The accepted-request times of each key (a token, or an OAuth portal) under one limit."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._times: dict[str, deque[float]] = {}

    def _window(self, key: str, now: float) -> deque[float]:
        times = self._times.setdefault(key, deque())
        horizon = now - self.limit.window_s
        # Each time is appended once and popped once: amortised O(1) per request.
        while times and times[0] <= horizon:
            times.popleft()
        return times

    def take(self, key: str, now: float) -> tuple[bool, int]:
        """Count one request if the window has room: (accepted, requests remaining after it)."""
        times = self._window(key, now)
        if len(times) >= self.limit.max_requests:
            return False, 0
        times.append(now)
        return True, self.limit.max_requests - len(times)

    def remaining(self, key: str, now: float) -> int:
        """Requests left in ``key``'s window now, without counting one."""
        return self.limit.max_requests - len(self._window(key, now))
