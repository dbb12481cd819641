"""LaneStore: the lanes in Redis, each read and write one atomic Lua call (or one blocking pop).

The scripts in ``hublink/store/lua`` keep five promises that together mean "nothing acknowledged is
lost": work and its dedup marks are written together (enqueue.lua); a claimed association is leased,
never just popped (claim.lua); an expired lease goes back to its lane (sweep.lua); an outcome is applied
only to an association that still exists (settle.lua); and a drain that leaves cannot strand work added
meanwhile (finish.lua). Members are written and read by ``hublink.lanes.codec``.

Keys owned (see ``hublink.store.keys``): ``q:<lane>``, ``lane:<lane>``, ``a:<id>``, ``lanes``,
``lanejob:<lane>``, ``wake``, ``inflight``, ``leased``, ``seen:<digest>``, ``done:<day>``, plus the
dead-letter keys through settle.lua. Fails closed: raises StoreUnavailableError when Redis does not answer.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson
from redis import Redis

from hublink.lanes.codec import claimed_from, done_record, fields_of, member_id, member_of, unreadable_letter
from hublink.lanes.types import (
    UNREADABLE_CATEGORY,
    Claim,
    EnqueueResult,
    EventGroup,
    Outcome,
    PendingItem,
    SweepReport,
    UnreadableRecordError,
    new_association_id,
    pause_fields,
)
from hublink.store.clock import now_ms
from hublink.store.connections import store_errors, text
from hublink.store.counters import Counters, Op
from hublink.store.keys import Keys
from hublink.store.scripts import Scripts

log = logging.getLogger("hublink.lanes")


class LaneStore:
    """Every read and write of the lanes in Redis; each method is one atomic Lua call (or one blocking pop)."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        lease_s: float,
        dedup_window_s: int = 86400,
        dead_letter_ttl_s: float = 30 * 86400,
        dead_letter_max: int = 1_000_000,
        scripts: Scripts | None = None,
        done_ttl_s: float = 0,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts or Scripts(redis)
        self.lease_ms = int(lease_s * 1000)
        self._lease_ms = self.lease_ms
        self._dedup_window_s = dedup_window_s
        self._dl_ttl_s = max(int(dead_letter_ttl_s), 1)
        self._dl_max = dead_letter_max
        #: How long a done association's compact record is kept (``done:<day>``, for traces); 0: not kept.
        self.done_ttl_s = int(done_ttl_s)

    def enqueue(
        self,
        groups: Sequence[EventGroup],
        counters: Sequence[Op] = (),
        *,
        ack: Sequence[str] | None = None,
        aside: Sequence[str | int] | None = None,
    ) -> EnqueueResult:
        """Store every group (skipping already-seen ones) in one round-trip; return the ids per group.

        ``counters`` are metric increments applied in the same atomic step; ``ack`` (``Inbox.ack_target``)
        names the inbox entry the groups came from, acknowledged and deleted in that step too, unless it is
        already gone, in which case nothing is stored; ``aside`` (``Inbox.aside_target``) is an entry to add
        to the set-aside stream in the same step. Raises StoreUnavailableError.
        """
        now = now_ms()
        args = _Arguments(self._keys)
        ids: list[list[str]] = []
        for group in groups:
            args.group(group.dedup_key, group.on_new, group.on_dup, len(group.requests))
            group_ids = [new_association_id() for _ in group.requests]
            for association_id, request in zip(group_ids, group.requests, strict=True):
                args.item(request.lane, member_of(association_id, request, now, group.origin), "")
            ids.append(group_ids)
        return self._store(now, args, counters, ids, ack, aside)

    def enqueue_items(
        self,
        groups: Sequence[tuple[str | None, Sequence[PendingItem]]],
        counters: Sequence[Op] = (),
        *,
        ack: Sequence[str] | None = None,
    ) -> EnqueueResult:
        """Like :meth:`enqueue` for prepared items (direct-API ids, replays with their history and count)."""
        now = now_ms()
        args = _Arguments(self._keys)
        for dedup, items in groups:
            args.group(dedup, (), (), len(items))
            for item in items:
                member = member_of(item.association_id, item.request, item.first_seen_ms or now, item.origin)
                args.item(item.request.lane, member, self._replay(item))
        ids = [[item.association_id for item in items] for _, items in groups]
        return self._store(now, args, counters, ids, ack)

    def _store(
        self,
        now: int,
        args: _Arguments,
        counters: Sequence[Op],
        ids: list[list[str]],
        ack: Sequence[str] | None,
        aside: Sequence[str | int] | None = None,
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
        if aside is not None:
            header["aside"] = list(aside)
        keys = self._keys
        with store_errors():
            flags = self._scripts.enqueue(
                keys=[keys.lanes, keys.wake],
                args=[
                    now,
                    self._lease_ms,
                    max(self._dedup_window_s, 1),
                    keys.dead_letters,
                    keys.association_prefix,
                    keys.queue_prefix,
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
            "id": item.association_id,
            "attempts": item.attempts,
            "hist": json.dumps(item.history, separators=(",", ":")),
            "replays": item.replays,
        }
        if item.replaces_dead_letter:
            out["dlkey"] = self._keys.dead_letter(item.association_id)
        return orjson.dumps(out)

    def claim(self, lane: str, limit: int, *, window_ms: int = 0, probe: bool = False) -> Claim:
        """Lease up to ``limit`` due associations of ``lane``, unless it, its portal or its circuit is paused.

        ``probe``: the claim is an open circuit's probe, which the circuit itself does not stop. An
        association whose stored record cannot be read is dead-lettered here (reason ``unreadable``), before
        any HubSpot call, in one atomic step from its lease to the dead-letter store: it is never retried,
        and never fails or delays the rest of its lane. Raises StoreUnavailableError.
        """
        buried = 0
        while True:
            with store_errors():
                raw = self._scripts.claim(
                    keys=[
                        self._keys.lane(lane),
                        self._keys.inflight,
                        self._keys.lane_job(lane),
                        self._keys.queue(lane),
                        self._keys.leased,
                    ],
                    args=[
                        now_ms(),
                        limit,
                        self.lease_ms,
                        self._keys.association_prefix,
                        window_ms,
                        lane,
                        self._keys.paused,
                        *pause_fields(lane, probe=probe),
                    ],
                )
            if raw and raw[0] == b"paused":
                return Claim(paused=text(raw[1]), unreadable=buried)
            if raw and raw[0] == b"wait":
                return Claim(wait_ms=int(float(raw[1])), unreadable=buried)
            items = []
            unreadable: list[tuple[str, list[Any], str]] = []
            for i in range(0, len(raw), 2):
                fields = fields_of(raw[i], raw[i + 1])
                try:
                    items.append(claimed_from(fields, lane))
                except UnreadableRecordError as exc:
                    unreadable.append((text(fields[0]), fields, str(exc)))
            if unreadable:
                self._bury(lane, unreadable)
                buried += len(unreadable)
            # A claim that found only unreadable work claims again: the lane's readable work is not delayed.
            if items or not unreadable:
                return Claim(items=items, unreadable=buried)

    def _bury(self, lane: str, unreadable: Sequence[tuple[str, list[Any], str]]) -> None:
        """Dead-letter claimed associations that cannot be read (settle.lua's atomic "dead" outcome)."""
        now = now_ms()
        payload = self._payload(lane, now, [])
        payload["counters"] = [
            list(
                Counters(self._redis, self._keys).op(
                    "associations_dead_lettered", len(unreadable), source="unknown", category=UNREADABLE_CATEGORY
                )
            )
        ]
        payload["outcomes"] = [
            {
                "member": member,
                "kind": "dead",
                "dl": json.dumps(unreadable_letter(member_id(member), lane, fields, reason, now).to_wire()),
            }
            for member, fields, reason in unreadable
        ]
        with store_errors():
            self._scripts.settle(keys=self._settle_keys(), args=[orjson.dumps(payload)])
        for member, _, reason in unreadable:
            log.error(
                "association cannot be read; dead-lettered",
                extra={"association_id": member_id(member)[:64], "lane": lane, "reason": reason},
            )

    def _payload(self, lane: str, now: int, counters: Sequence[Op]) -> dict[str, Any]:
        """settle.lua's JSON header for one lane (its outcomes are added by the caller)."""
        return {
            "now": now,
            "dl_ttl_s": self._dl_ttl_s,
            "dl_max": self._dl_max,
            "dl_prefix": self._keys.dead_letter_prefix,
            "akey_prefix": self._keys.association_prefix,
            "lane": lane,
            "lkey": self._keys.lane(lane),
            "counters": [list(c) for c in counters],
            "outcomes": [],
        }

    def _settle_keys(self) -> list[str]:
        keys = self._keys
        return [keys.inflight, keys.lanes, keys.dead_letters, keys.dead_letters_dropped, keys.leased]

    def settle(self, lane: str, outcomes: Sequence[Outcome], counters: Sequence[Op] = ()) -> int:
        """Apply outcomes atomically; return how many still existed to be applied.

        Done outcomes travel as flat arguments (member, done record), the others as JSON: a 2,000-input call
        is nearly all done, and decoding them as JSON objects in Lua costs more than applying them.
        """
        now = now_ms()
        payload = self._payload(lane, now, counters)
        done: list[str | bytes] = []
        if self.done_ttl_s > 0:
            payload["done_key"] = self._keys.done_day(time.strftime("%Y%m%d", time.gmtime(now / 1000)))
            # The day's hash lives as long as its last record must.
            payload["done_ttl_s"] = self.done_ttl_s + 86400
        for o in outcomes:
            member = o.item.member or o.item.association_id
            if o.kind == "done":
                done += (member, done_record(o.item, now, lane) if self.done_ttl_s > 0 else "")
                continue
            wire: dict[str, Any] = {"member": member, "kind": o.kind}
            if o.kind == "retry":
                wire |= {
                    "due": o.due_ms,
                    "attempts": o.item.attempts,
                    "hist": json.dumps(o.item.history, separators=(",", ":")) if o.item.history else "[]",
                }
            elif o.kind == "dead":
                dead = o.dead_letter.to_wire() if o.dead_letter else {}
                wire["dl"] = json.dumps(dead, separators=(",", ":"))
            payload["outcomes"].append(wire)
        with store_errors():
            return int(self._scripts.settle(keys=self._settle_keys(), args=[orjson.dumps(payload), *done]))

    def finish(self, lane: str, *, park_until_ms: int = 0) -> str:
        """Leave ``lane``: park it, hand it on, schedule it for its next due item, or mark it idle."""
        with store_errors():
            result = self._scripts.finish(
                keys=[
                    self._keys.lane(lane),
                    self._keys.lane_job(lane),
                    self._keys.lanes,
                    self._keys.wake,
                    self._keys.queue(lane),
                ],
                args=[now_ms(), lane, park_until_ms, self.lease_ms],
            )
        return result.decode() if isinstance(result, bytes) else str(result)

    def sweep(self, limit: int = 1000) -> SweepReport:
        """Hand back expired leases and wake due lanes; safe to run from every worker at once."""
        with store_errors():
            reclaimed, woken, next_due = self._scripts.sweep(
                keys=[self._keys.inflight, self._keys.lanes, self._keys.wake, self._keys.leased],
                args=[
                    now_ms(),
                    self.lease_ms,
                    limit,
                    self._keys.association_prefix,
                    self._keys.lane_prefix,
                    self._keys.lane_job_prefix,
                ],
            )
        return SweepReport(int(reclaimed), int(woken), None if int(next_due) < 0 else int(next_due))

    def pop_wake(self, timeout_s: float) -> list[str]:
        """Block up to ``timeout_s`` for lanes to wake; return every lane waiting (possibly none)."""
        with store_errors():
            first = self._redis.blpop([self._keys.wake], timeout=max(timeout_s, 0.01))
            if not first:
                return []
            rest = self._redis.lpop(self._keys.wake, 1000) or []
        lanes = [text(first[1]), *(text(raw) for raw in rest)]
        return list(dict.fromkeys(lanes))


class _Arguments:
    """enqueue.lua's arguments, built group by group: flat, with lanes and count sets named by number.

    Flat because a 100-event request sent as one JSON document costs Redis more to decode than to store.
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

    def item(self, lane: str, member: str, replay: str | bytes) -> None:
        """One association of the open group, as its lane will hold it."""
        number = self.lanes.get(lane)
        if number is None:
            number = self.lanes[lane] = len(self.lanes) + 1
        self.flat += (number, member, replay)
