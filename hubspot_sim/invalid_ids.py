"""Ids marked invalid through ``/_sim/invalid-ids``: each answers a status until enough requests or time pass.

Not thread-safe on its own: ``SimState`` calls it under its lock, with its clock's ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class InvalidId:
    """An id answering ``status`` until ``remaining`` more requests have named it, or until ``until``."""

    status: int
    remaining: int | None = None
    until: float | None = None


class InvalidIds:
    """The ids marked invalid, by id."""

    def __init__(self) -> None:
        self._ids: dict[str, InvalidId] = {}

    def __bool__(self) -> bool:
        return bool(self._ids)

    def mark(self, ids: Iterable[str], status: int, ttl_requests: int | None, until: float | None) -> None:
        """Make ``ids`` answer ``status`` (see ``SimState.mark_invalid``)."""
        for object_id in ids:
            self._ids[str(object_id)] = InvalidId(status, ttl_requests, until)

    def clear(self) -> None:
        """Every id valid again."""
        self._ids.clear()

    def is_invalid(self, object_id: str, now: float) -> bool:
        """True while ``object_id`` is marked and its ``until`` has not passed (a passed one is dropped)."""
        entry = self._ids.get(object_id)
        if entry is None:
            return False
        if entry.until is not None and now >= entry.until:
            del self._ids[object_id]
            return False
        return True

    def screen(self, ids: Iterable[str], now: float) -> dict[str, int]:
        """The ids of one request that are invalid now, with their status; counts the request against each."""
        if not self._ids:  # the common case, and the benchmarks' hot path
            return {}
        bad: dict[str, int] = {}
        for object_id in dict.fromkeys(ids):
            if not self.is_invalid(object_id, now):
                continue
            entry = self._ids[object_id]
            bad[object_id] = entry.status
            if entry.remaining is not None:
                entry.remaining -= 1
                if entry.remaining <= 0:
                    del self._ids[object_id]
        return bad

    def as_json(self, now: float) -> dict[str, Any]:
        """``GET /_sim/invalid-ids``: the ids invalid now."""
        live = [(i, entry) for i, entry in list(self._ids.items()) if self.is_invalid(i, now)]
        return {
            "ids": [
                {"id": i, "status": entry.status, "ttl_requests": entry.remaining, "until": entry.until}
                for i, entry in live
            ]
        }
