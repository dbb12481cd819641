"""Pauses: an operator (or a portal's circuit breaker) stops a portal's or a lane's deliveries; intake goes on.

A pause is one field of the ``paused`` hash (``portal:<p>``, ``lane:<lane>``, ``circuit:<p>``; see
``hublink.store.keys.pause_field``) holding why and since when. claim.lua reads the hash on every claim,
so a paused lane's drain claims nothing, spends no attempt and parks the lane (``PAUSE_PARK_S``, a safety
net); resuming removes the field and wakes the lanes it held at once (resume.lua). Work keeps arriving
in the lanes meanwhile. The portal ``_`` is single-portal mode's.

Keys owned: ``paused`` (through resume.lua and HSET). Fails closed: raises StoreUnavailableError when
Redis does not answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis import Redis

from hublink.domain.associations import is_object_id
from hublink.lanes import MemoryLanes
from hublink.store.clock import now_ms
from hublink.store.connections import store_errors, text
from hublink.store.keys import PAUSE_SCOPES, Keys, pause_field
from hublink.store.scripts import Scripts

#: A paused lane is parked this long at a time, then looks again (resuming wakes it at once anyway).
PAUSE_PARK_S = 60.0
#: What an operator may pause (``circuit`` is the breaker's own).
OPERATOR_SCOPES = ("portal", "lane")
MAX_REASON = 200


def _is_portal(name: str) -> bool:
    """A portal id, or ``_`` (single-portal mode)."""
    return name == "_" or is_object_id(name)


@dataclass(frozen=True, slots=True)
class Pause:
    """One pause: what it holds (``scope`` and ``name``), since when (epoch ms), and why."""

    scope: str
    name: str
    since_ms: int = 0
    reason: str = ""

    @classmethod
    def target(cls, scope: str, name: str) -> Pause:
        """Check what a pause would hold; raises ValueError naming the field and what was expected."""
        if scope not in PAUSE_SCOPES:
            raise ValueError(f"scope: expected one of {PAUSE_SCOPES}, got {scope!r}")
        if scope == "lane":
            parts = name.split("|")
            if len(parts) != 3 or not all(parts) or not _is_portal(parts[0]) or len(name) > 200:
                raise ValueError(f"lane: expected <portal>|<fromType>|<toType>, got {name[:80]!r}")
        elif not _is_portal(name):
            raise ValueError(f"portal: expected 1-20 decimal digits or '_' (single-portal mode), got {name[:40]!r}")
        return cls(scope, name)

    @property
    def field(self) -> str:
        """Its field in the ``paused`` hash."""
        return pause_field(self.scope, self.name)

    def as_json(self) -> dict[str, object]:
        """The JSON form the API and the CLI show."""
        return {"scope": self.scope, "name": self.name, "since_ms": self.since_ms, "reason": self.reason}


def _parse(field: str, raw: str) -> Pause:
    scope, _, name = field.partition(":")
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    return Pause(scope, name, int(body.get("since_ms") or 0), str(body.get("reason") or ""))


def lane_target(pause: Pause) -> tuple[str, bool]:
    """What resume.lua wakes for ``pause``: one lane (True), or every lane starting with a portal's prefix."""
    if pause.scope == "lane":
        return pause.name, True
    return f"{pause.name}|", False


class Pauses(Protocol):
    """Pausing and resuming: :class:`PauseStore` in Redis, :class:`MemoryPauses` for unit tests."""

    def pause(self, scope: str, name: str, reason: str = "") -> bool:
        """Pause; True if it was not paused already."""
        ...

    def resume(self, scope: str, name: str) -> bool:
        """Resume and wake its lanes; True if it was paused."""
        ...

    def list(self) -> list[Pause]:
        """Everything paused now."""
        ...


class PauseStore:
    """The ``paused`` hash in Redis."""

    def __init__(self, redis: Redis, keys: Keys, *, lease_s: float = 30.0, scripts: Scripts | None = None) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts or Scripts(redis)
        self._lease_ms = int(lease_s * 1000)

    def pause(self, scope: str, name: str, reason: str = "") -> bool:
        """Pause ``scope`` ``name`` (ValueError if it names nothing pausable); True if it was not paused."""
        target = Pause.target(scope, name)
        body = json.dumps({"since_ms": now_ms(), "reason": reason[:MAX_REASON]})
        with store_errors():
            return bool(self._redis.hsetnx(self._keys.paused, target.field, body))

    def resume(self, scope: str, name: str) -> bool:
        """Lift the pause and wake the lanes it held; True if it was paused."""
        target = Pause.target(scope, name)
        lane, exact = lane_target(target)
        with store_errors():
            removed, _ = self._scripts.resume(
                keys=[self._keys.paused, self._keys.lanes, self._keys.wake],
                args=[target.field, now_ms(), self._lease_ms, self._keys.lane_job_prefix, lane, "1" if exact else "0"],
            )
        return bool(removed)

    def list(self) -> list[Pause]:
        """Everything paused now, by scope and name."""
        with store_errors():
            raw = self._redis.hgetall(self._keys.paused)
        return sorted((_parse(text(k), text(v)) for k, v in raw.items()), key=lambda p: (p.scope, p.name))

    def get(self, scope: str, name: str) -> Pause | None:
        """One pause, or None."""
        with store_errors():
            raw = self._redis.hget(self._keys.paused, pause_field(scope, name))
        return None if raw is None else _parse(pause_field(scope, name), text(raw))


class MemoryPauses:
    """Pauses kept in a :class:`MemoryLanes` twin's ``paused`` dict, as claim.lua reads them."""

    def __init__(self, lanes: MemoryLanes, clock: Callable[[], float] = time.time) -> None:
        self._lanes = lanes
        self._clock = clock
        self.resumed: list[str] = []

    def pause(self, scope: str, name: str, reason: str = "") -> bool:
        """Pause; True if it was not paused already."""
        target = Pause.target(scope, name)
        if target.field in self._lanes.paused:
            return False
        self._lanes.paused[target.field] = json.dumps({"since_ms": int(self._clock() * 1000), "reason": reason})
        return True

    def resume(self, scope: str, name: str) -> bool:
        """Resume (the lanes need no waking here: tests drain them by hand); True if it was paused."""
        target = Pause.target(scope, name)
        self.resumed.append(target.field)
        return self._lanes.paused.pop(target.field, None) is not None

    def list(self) -> list[Pause]:
        """Everything paused now."""
        return sorted((_parse(k, v) for k, v in self._lanes.paused.items()), key=lambda p: (p.scope, p.name))
