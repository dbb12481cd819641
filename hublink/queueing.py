"""Queueing: put one HTTP request's associations into Redis in one round-trip.

Work waits in lanes (one per portal and object-type pair, see ``domain.associations.lane_of``) rather
than as one RQ job per association: a lane is what one batch call can carry, retries and dead letters
stay per association, and intake costs one EVALSHA however many events a request holds. An idle lane is
woken through the ``wake`` list, which workers turn into RQ drain jobs (``hublink.lanes``).

Keys owned here (see ``hublink.keys``): ``a:<id>``, ``lane:<lane>``, ``lanes``, ``lanejob:<lane>``,
``wake``, ``seen:<digest>``. Fails closed: raises StoreUnavailableError when Redis does not answer.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis import Redis

from hublink.connections import store_errors
from hublink.domain.lookups import Work
from hublink.keys import Keys
from hublink.metrics import Op
from hublink.scripts import Scripts


def new_association_id() -> str:
    """A fresh association id: 32 hex characters (128 random bits), also a valid RQ job id and key suffix."""
    return os.urandom(16).hex()


@dataclass(frozen=True, slots=True)
class EventGroup:
    """The associations one source event produced, and the key that deduplicates the event (if any)."""

    requests: Sequence[Work]
    dedup_key: str | None = None
    on_new: Sequence[Op] = ()
    on_dup: Sequence[Op] = ()


@dataclass(slots=True)
class PendingItem:
    """An association as written to a lane; replays carry their earlier history and id."""

    request: Work
    association_id: str = field(default_factory=new_association_id)
    attempts: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    replays: int = 0
    first_seen_ms: int | None = None
    replaces_dead_letter: bool = False


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    """Per group: the ids stored, or None for a group that was a duplicate."""

    ids: tuple[tuple[str, ...] | None, ...]

    @property
    def accepted_ids(self) -> list[str]:
        """Every id stored, in order."""
        return [i for group in self.ids if group for i in group]

    @property
    def duplicates(self) -> int:
        """How many groups were already seen."""
        return sum(1 for group in self.ids if group is None)


class Queueing:
    """Writes work into Redis lanes atomically (one EVALSHA per call)."""

    def __init__(
        self, redis: Redis, keys: Keys, *, lease_s: float, dedup_window_s: int, scripts: Scripts | None = None
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts or Scripts(redis)
        self._lease_ms = int(lease_s * 1000)
        self._dedup_window_s = dedup_window_s

    def enqueue(self, groups: Sequence[EventGroup], counters: Sequence[Op] = ()) -> EnqueueResult:
        """Store every group (skipping already-seen ones) in one round-trip; return the ids per group.

        ``counters`` are metric increments applied in the same atomic step. Raises StoreUnavailableError.
        """
        items = [[PendingItem(r) for r in g.requests] for g in groups]
        return self.enqueue_items(
            list(zip([g.dedup_key for g in groups], items, strict=True)),
            counters,
            [(list(g.on_new), list(g.on_dup)) for g in groups],
        )

    def enqueue_items(
        self,
        groups: Sequence[tuple[str | None, Sequence[PendingItem]]],
        counters: Sequence[Op] = (),
        group_counters: Sequence[tuple[list[Op], list[Op]]] = (),
    ) -> EnqueueResult:
        """Like :meth:`enqueue` for prepared items (replays keep id, history and replay count)."""
        now_ms = int(time.time() * 1000)
        payload = {
            "now": now_ms,
            "lease_ms": self._lease_ms,
            "dedup_ttl_s": max(self._dedup_window_s, 1),
            "counters": [list(c) for c in counters],
            "dlq": self._keys.dead_letters,
            "groups": [
                {
                    "seen": self._keys.seen(dedup) if dedup else False,
                    "items": [self._item(it, now_ms) for it in group],
                    "on_new": [list(c) for c in group_counters[i][0]] if group_counters else [],
                    "on_dup": [list(c) for c in group_counters[i][1]] if group_counters else [],
                }
                for i, (dedup, group) in enumerate(groups)
            ],
        }
        with store_errors():
            # orjson: the payload of a 100-event request is ~30 KB, and the stdlib encoder cost ~1 ms of it.
            flags = self._scripts.enqueue(keys=[self._keys.lanes, self._keys.wake], args=[orjson.dumps(payload)])
        return EnqueueResult(
            tuple(
                tuple(it.association_id for it in group) if flag else None
                for (_, group), flag in zip(groups, flags, strict=True)
            )
        )

    def _item(self, item: PendingItem, now_ms: int) -> dict[str, Any]:
        lane = item.request.lane
        out: dict[str, Any] = {
            "id": item.association_id,
            "akey": self._keys.association(item.association_id),
            "lane": lane,
            "lkey": self._keys.lane(lane),
            "mkey": self._keys.lane_job(lane),
            "rec": item.request.as_record(),
            "first_seen": item.first_seen_ms or now_ms,
        }
        if item.history or item.attempts or item.replays:
            out["attempts"] = item.attempts
            out["hist"] = json.dumps(item.history, separators=(",", ":"))
            out["replays"] = item.replays
        if item.replaces_dead_letter:
            out["dlkey"] = self._keys.dead_letter(item.association_id)
        return out
