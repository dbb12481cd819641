"""The count of API requests the simulator answered (``GET /_sim/requests``), with the last 200 in detail.

Not thread-safe on its own: ``SimState`` calls it under its lock.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

RECENT_REQUESTS = 200


def token_hint(token: str | None) -> str:
    """The last 4 characters of a token, and nothing for short ones (where 4 would give too much away)."""
    return token[-4:] if token and len(token) > 8 else ""


@dataclass(slots=True)
class RequestLog:
    """Counts of API requests by status and endpoint, association inputs answered 200, and the recent ones."""

    total: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_endpoint: Counter[str] = field(default_factory=Counter)
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT_REQUESTS))
    inputs_total: int = 0
    first_at: float | None = None
    last_at: float | None = None

    def record(self, entry: dict[str, Any], token: str | None) -> None:
        """Count one request: ``entry`` holds method, path, status, at, endpoint, inputs, correlation_id."""
        self.total += 1
        self.by_status[str(entry["status"])] += 1
        self.by_endpoint[entry["endpoint"]] += 1
        if entry["status"] == 200:
            self.inputs_total += entry["inputs"]
        if self.first_at is None:
            self.first_at = entry["at"]
        self.last_at = entry["at"]
        self.recent.append({**entry, "token_hint": token_hint(token)})

    def as_dict(self) -> dict[str, Any]:
        """JSON form (``GET /_sim/requests``)."""
        return {
            "total": self.total,
            "by_status": dict(self.by_status),
            "by_endpoint": dict(self.by_endpoint),
            "recent": list(self.recent),
            "inputs_total": self.inputs_total,
            "first_at": self.first_at,
            "last_at": self.last_at,
        }
