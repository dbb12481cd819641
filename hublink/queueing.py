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
    #: True when the inbox entry to acknowledge was already gone: another expander stored its work.
    already_expanded: bool = False

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

    def enqueue(
        self, groups: Sequence[EventGroup], counters: Sequence[Op] = (), *, ack: Sequence[str] | None = None
    ) -> EnqueueResult:
        """Store every group (skipping already-seen ones) in one round-trip; return the ids per group.

        ``counters`` are metric increments applied in the same atomic step; ``ack`` (``Inbox.ack_target``)
        names the inbox entry the groups came from, acknowledged and deleted in that step too, unless it is
        already gone, in which case nothing is stored. Raises StoreUnavailableError.
        """
        args = _Arguments(self._keys)
        ids: list[list[str]] = []
        for group in groups:
            args.group(group.dedup_key, group.on_new, group.on_dup, len(group.requests))
            group_ids = [new_association_id() for _ in group.requests]
            for association_id, request in zip(group_ids, group.requests, strict=True):
                args.item(association_id, request, "", "")
            ids.append(group_ids)
        return self._store(args, counters, ids, ack)

    def enqueue_items(
        self,
        groups: Sequence[tuple[str | None, Sequence[PendingItem]]],
        counters: Sequence[Op] = (),
        *,
        ack: Sequence[str] | None = None,
    ) -> EnqueueResult:
        """Like :meth:`enqueue` for prepared items (direct-API ids, replays with their history and count)."""
        args = _Arguments(self._keys)
        for dedup, items in groups:
            args.group(dedup, (), (), len(items))
            for item in items:
                args.item(item.association_id, item.request, item.first_seen_ms or "", self._replay(item))
        return self._store(args, counters, [[item.association_id for item in items] for _, items in groups], ack)

    def _store(
        self, args: _Arguments, counters: Sequence[Op], ids: list[list[str]], ack: Sequence[str] | None
    ) -> EnqueueResult:
        """Run enqueue.lua over the prepared arguments; the ids of each stored group, None for duplicates."""
        counters_set = args.set_number(counters)  # numbered before the sets are listed
        header: dict[str, Any] = {
            "lanes": list(args.lanes),
            "sets": [list(map(list, ops)) for ops in args.sets],
            "counters": counters_set,
        }
        if ack is not None:
            header["ack"] = list(ack)
        keys = self._keys
        with store_errors():
            flags = self._scripts.enqueue(
                keys=[keys.lanes, keys.wake],
                args=[
                    int(time.time() * 1000),
                    self._lease_ms,
                    max(self._dedup_window_s, 1),
                    keys.dead_letters,
                    keys.association_prefix,
                    keys.lane_prefix,
                    keys.lane_job_prefix,
                    orjson.dumps(header),
                    *args.flat,
                ],
            )
        if flags == [-1]:
            return EnqueueResult((), already_expanded=True)
        return EnqueueResult(tuple(tuple(group) if flag else None for group, flag in zip(ids, flags, strict=True)))

    def _replay(self, item: PendingItem) -> str | bytes:
        """What a replayed item keeps (its history, counts and dead letter to remove); '' for new work."""
        if not (item.history or item.attempts or item.replays or item.replaces_dead_letter):
            return ""
        out: dict[str, Any] = {
            "attempts": item.attempts,
            "hist": json.dumps(item.history, separators=(",", ":")),
            "replays": item.replays,
        }
        if item.replaces_dead_letter:
            out["dlkey"] = self._keys.dead_letter(item.association_id)
        return orjson.dumps(out)


class _Arguments:
    """enqueue.lua's arguments, built group by group: flat, with lanes and count sets named by number.

    Flat because a 100-event request sent as one JSON document cost Redis more to decode than to store.
    """

    def __init__(self, keys: Keys) -> None:
        self._seen = keys.seen
        self.lanes: dict[str, int] = {}
        self.sets: dict[tuple[Op, ...], int] = {}
        self.flat: list[str | int | bytes] = []

    def set_number(self, ops: Sequence[Op]) -> int:
        """The 1-based number of a list of metric increments (0 for none); equal lists share a number."""
        if not ops:
            return 0
        key = tuple(ops)
        number = self.sets.get(key)
        if number is None:
            number = self.sets[key] = len(self.sets) + 1
        return number

    def group(self, dedup_key: str | None, on_new: Sequence[Op], on_dup: Sequence[Op], size: int) -> None:
        """Open a group of ``size`` items; ``dedup_key`` (if any) marks its event seen."""
        self.flat += (
            self._seen(dedup_key) if dedup_key else "",
            self.set_number(on_new),
            self.set_number(on_dup),
            size,
        )

    def item(self, association_id: str, request: Work, first_seen: int | str, replay: str | bytes) -> None:
        """One association of the open group."""
        lane = request.lane
        number = self.lanes.get(lane)
        if number is None:
            number = self.lanes[lane] = len(self.lanes) + 1
        self.flat += (association_id, number, orjson.dumps(request.as_record()), first_seen, replay)
