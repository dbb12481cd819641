"""Lanes: the one owner of lane keys. Intake's expansion writes work into them; drains claim, settle and leave.

A lane holds the associations that one batch call could carry (same portal, same object-type pair, see
``domain.associations.lane_of``), scored by when each is due. Work waits in lanes rather than as one RQ
job per association: a lane is what one batch call can carry, retries and dead letters stay per
association, and storing a request's work costs one EVALSHA however many events it holds. An idle lane
is woken through the ``wake`` list, which workers turn into RQ drain jobs.

The scripts in ``hublink/store/lua`` keep five promises that together mean "nothing acknowledged is
lost": work and its dedup marks are written together (enqueue.lua); a claimed association is leased,
never just popped (claim.lua); an expired lease goes back to its lane (sweep.lua); an outcome is applied
only to an association that still exists (settle.lua); and a drain that leaves cannot strand work added
meanwhile (finish.lua).

A pending association is stored as one string, its *member*: ``<id> US <first seen ms> US a US <from id>
US <to id> US <source> US <received_at> US <occurred_at> US <extras JSON> US <source event id>`` (US is
the unit separator, 0x1F; portal and object types are the lane's own), or ``... US j US <record JSON>``
for other work (lookups). Fresh work is a list item of ``q:<lane>``, about 120 bytes of Redis, against
about 645 for the hash-per-association form it replaced: a first attempt needs no other state. Retried
and reclaimed work waits in the ``lane:<lane>`` zset by due time, and an association's state (attempts,
history, replays) lives in ``a:<id>`` only once it has some. Bare ids in ``lane:<lane>`` with their
record in ``a:<id>`` (the form written before 2026-12) are still read, so an upgrade loses nothing.

Keys owned (see ``hublink.store.keys``): ``q:<lane>``, ``lane:<lane>``, ``a:<id>``, ``lanes``,
``lanejob:<lane>``, ``wake``, ``inflight``, ``leased``, ``seen:<digest>``, plus the dead-letter keys
through settle.lua. Fails closed: raises StoreUnavailableError when Redis does not answer.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

import orjson
from redis import Redis

from hublink.domain.associations import (
    MAX_EVENT_ID_CHARS,
    AssociationRequest,
    action_extras,
    canonical_object_type,
    check_object_id,
    is_object_id,
    is_portal_id,
    is_source,
    split_lane,
)
from hublink.domain.dead_letter import DeadLetter, DeadPair
from hublink.domain.errors import InvalidInputError
from hublink.domain.lookups import Work, work_from_record
from hublink.store.clock import now_ms
from hublink.store.connections import store_errors, text
from hublink.store.counters import Counters, Op
from hublink.store.keys import Keys, pause_field
from hublink.store.scripts import Scripts

log = logging.getLogger("hublink.lanes")


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


@dataclass(slots=True)
class Claimed:
    """One leased association with its retry state."""

    association_id: str
    request: Work
    attempts: int
    history: list[dict[str, Any]]
    first_seen_ms: int
    replays: int
    #: The association as its lane stores it (see the module docstring); "" for work that never was stored.
    member: str = ""


@dataclass(frozen=True, slots=True)
class Claim:
    """What a claim returned: leased items, or how long the batch window asks to wait."""

    items: list[Claimed] = field(default_factory=list)
    wait_ms: int = 0
    #: Associations that could not be read, dead-lettered by the claim (never handed to a drain).
    unreadable: int = 0

    #: The ``paused`` field that stopped the claim (``lane:<lane>``, ``portal:<p>``, ``circuit:<p>``), or "".
    paused: str = ""


#: The dead-letter reason and category of an association whose stored record cannot be read.
UNREADABLE = "unreadable"
UNREADABLE_CATEGORY = "UNREADABLE"


class UnreadableRecordError(Exception):
    """A stored association cannot be rebuilt (a corrupt or foreign record): it is dead-lettered, never sent."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """The settled fate of one claimed association."""

    item: Claimed
    kind: Literal["done", "retry", "dead"]
    due_ms: int = 0
    dead_letter: DeadLetter | None = None


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one sweep did, and how long until something else falls due (None: nothing pending)."""

    reclaimed: int
    woken: int
    next_due_ms: int | None


class Lanes(Protocol):
    """What a drain needs of the lanes: :class:`LaneStore` in Redis, :class:`MemoryLanes` in unit tests."""

    def enqueue(
        self, groups: Sequence[EventGroup], counters: Sequence[Op] = (), *, ack: Sequence[str] | None = None
    ) -> EnqueueResult:
        """Store every group (skipping already-seen ones); the ids per group."""
        ...

    def claim(self, lane: str, limit: int, *, window_ms: int = 0, probe: bool = False) -> Claim:
        """Lease up to ``limit`` due associations of ``lane`` (nothing, with ``paused`` set, while it is paused)."""
        ...

    def settle(self, lane: str, outcomes: Sequence[Outcome], counters: Sequence[Op] = ()) -> int:
        """Apply outcomes atomically; return how many still existed to be applied."""
        ...

    def finish(self, lane: str, *, park_until_ms: int = 0) -> str:
        """Leave ``lane``: parked, idle, handed-on or scheduled."""
        ...


class LaneStore:
    """Every read and write of the lanes; each method is one atomic Lua call (or one blocking pop)."""

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
        #: How long a done association's compact record is kept (``done:<id>``, for traces); 0: not kept.
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
                args.item(request.lane, member_of(association_id, request, now), "")
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
                member = member_of(item.association_id, item.request, item.first_seen_ms or now)
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
                fields = _fields(raw[i], raw[i + 1])
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
                "dl": json.dumps(_unreadable_letter(_member_id(member), lane, fields, reason, now).to_wire()),
            }
            for member, fields, reason in unreadable
        ]
        with store_errors():
            self._scripts.settle(keys=self._settle_keys(), args=[orjson.dumps(payload)])
        for member, _, reason in unreadable:
            log.error(
                "association cannot be read; dead-lettered",
                extra={"association_id": _member_id(member)[:64], "lane": lane, "reason": reason},
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
        is nearly all done, and decoding them as JSON objects in Lua cost more than applying them.
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
                done += (member, _done_record(o.item, now, lane) if self.done_ttl_s > 0 else "")
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


#: Separates a member's fields (ASCII unit separator: no id, type, slug or number holds it, and JSON escapes it).
US = "\x1f"
#: The member forms: an association's fields (portal and types are the lane's), or any work's record JSON.
FORM_ASSOCIATION = "a"
FORM_RECORD = "j"


def member_of(association_id: str, request: Work, first_seen_ms: int) -> str:
    """The association as its lane stores it (see the module docstring): everything a first attempt needs.

    Floats are written with ``repr``, which reads back to the same float. A request whose source holds a
    separator (never one intake validated) is written in the record form, which holds anything.
    """
    if isinstance(request, AssociationRequest) and US not in request.source:
        extras = action_extras(request.action, request.label, request.types, request.mode)
        return US.join(
            (
                association_id,
                str(first_seen_ms),
                FORM_ASSOCIATION,
                request.from_object_id,
                request.to_object_id,
                request.source,
                repr(request.received_at),
                "" if request.occurred_at is None else repr(request.occurred_at),
                orjson.dumps(extras).decode() if extras else "",
                request.source_event_id or "",  # last: it may hold anything, the separator included
            )
        )
    return US.join((association_id, str(first_seen_ms), FORM_RECORD, orjson.dumps(request.as_record()).decode()))


def _done_record(item: Claimed, now: int, lane: str) -> bytes:
    """A done association's record, for its trace: when, after which attempts, first seen when."""
    if not (item.history or item.attempts or item.replays):
        return b'{"at":%d,"first_seen":%d}' % (now, item.first_seen_ms)
    return orjson.dumps(
        {
            "at": now,
            "first_seen": item.first_seen_ms,
            "replays": item.replays,
            "attempts": item.attempts,
            "hist": json.dumps(item.history, separators=(",", ":")),
            "lane": lane,
        }
    )


def _member_id(member: str) -> str:
    """The association id a member starts with (a bare id is its own)."""
    return member.partition(US)[0]


def _finite(value: str, name: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name}: expected a finite number, got {value!r:.40}")
    return number


@functools.lru_cache(maxsize=4096)
def _lane_parts(lane: str) -> tuple[str | None, str, str]:
    """A lane's portal and object types, checked as intake checks them (once per lane, not per member)."""
    portal, from_type, to_type = split_lane(lane)
    if portal is not None and not is_portal_id(portal):
        raise ValueError(f"lane: bad portal id {portal!r:.30}")
    if canonical_object_type(from_type) != from_type or canonical_object_type(to_type) != to_type:
        raise ValueError(f"lane: object types not in canonical form: {lane!r:.80}")
    return portal, from_type, to_type


def _from_member(body: str, lane: str) -> tuple[AssociationRequest, bool]:
    """An association from the fields of its member's association form, and the lane it waits in.

    Checks what intake checked, field by field, at a fraction of ``AssociationRequest.create``'s cost (a
    2,000-input claim reads 2,000 of these). Returns the request and whether it has optional fields, which
    the caller checks with ``create``.
    """
    from_id, to_id, source, received, occurred, extras, event_id = body.split(US, 6)
    portal, from_type, to_type = _lane_parts(lane)
    if not (is_object_id(from_id) and is_object_id(to_id)):
        check_object_id(from_id)  # raises, naming what is wrong
        check_object_id(to_id)
    if not is_source(source):
        raise ValueError(f"source: expected a short slug, got {source!r:.40}")
    if len(event_id) > MAX_EVENT_ID_CHARS:
        raise ValueError(f"source event id: longer than {MAX_EVENT_ID_CHARS} characters")
    fields: dict[str, Any] = {
        "from_object_type": from_type,
        "from_object_id": from_id,
        "to_object_type": to_type,
        "to_object_id": to_id,
        "portal_id": portal,
        "source": source,
        "source_event_id": event_id or None,
        "received_at": _finite(received, "received_at"),
        "occurred_at": _finite(occurred, "occurred_at") if occurred else None,
    }
    if not extras:
        return AssociationRequest(**fields), False
    more = json.loads(extras)
    if not isinstance(more, dict):
        raise TypeError("extras: expected a JSON object")
    return AssociationRequest.from_record(fields | more), True


def _fields(member: Any, state: Any) -> list[Any]:
    """claim.lua's member and state as claimed_from's fields: member, req, attempts, hist, first_seen, replays."""
    raw = text(state or b"")
    if not raw:
        return [member, None, None, None, None, None]
    if raw.startswith("!"):
        return [member, None, raw, None, None, None]
    try:
        values = json.loads(raw)
    except ValueError:
        values = None
    if not isinstance(values, list) or len(values) != 5:
        return [member, None, f"!state: not the five fields claim.lua reads: {raw[:80]}", None, None, None]
    return [member, *(None if v is False else v for v in values)]


def _first_attempt(raw_member: Any, lane: str) -> Claimed | None:
    """The common case, read in a few microseconds: a plain link's member and no state; None otherwise."""
    try:
        member = raw_member.decode() if isinstance(raw_member, bytes) else str(raw_member)
        parts = member.split(US, 3)
        if len(parts) != 4 or parts[2] != FORM_ASSOCIATION:
            return None
        request, extras = _from_member(parts[3], lane)
        if extras:
            return None
        return Claimed(parts[0], request, 0, [], int(parts[1]), 0, member)
    except (ValueError, TypeError, UnicodeDecodeError):
        return None  # the full reading below says what is wrong


def claimed_from(fields: Sequence[Any], lane: str) -> Claimed:
    """One claimed association from claim.lua's fields; raises UnreadableRecordError naming what is wrong.

    Everything a drain will use is checked here, so that a corrupt member or field fails the claim of
    that one association, not the settling of a whole batch after its HubSpot call.
    """
    raw_member, req, attempts, hist, first_seen, replays = fields
    if req is None and attempts is None and hist is None and replays is None:
        fast = _first_attempt(raw_member, lane)
        if fast is not None:
            return fast
    request: Work
    checked = False  # True once the request was checked as intake checks it
    try:
        member = text(raw_member)
        if text(attempts or "").startswith("!"):
            raise UnreadableRecordError(f"state: {text(attempts)[1:]}"[:300])
        association_id, separator, rest = member.partition(US)
        if separator:
            seen, _, rest = rest.partition(US)
            form, _, body = rest.partition(US)
            first_seen = seen
            if form == FORM_ASSOCIATION:
                request, extras = _from_member(body, lane)
                checked = not extras
            elif form == FORM_RECORD:
                record = json.loads(body)
                if not isinstance(record, dict):
                    raise TypeError(f"member: expected a JSON object, got {type(record).__name__}")
                request = work_from_record(record)
            else:
                raise ValueError(f"member: unknown form {form!r:.20}")
        else:
            # The bare-id form written before 2026-12: the record is in the association's hash.
            if not req:
                raise UnreadableRecordError("req: missing (the association's key holds no record, or is not a hash)")
            record = json.loads(req)
            if not isinstance(record, dict):
                raise TypeError(f"req: expected a JSON object, got {type(record).__name__}")
            request = work_from_record(record)
        if isinstance(request, AssociationRequest) and not checked:
            # The constructor trusts its caller; create() checks types, ids and portal as intake does.
            AssociationRequest.create(
                from_object_type=request.from_object_type,
                from_object_id=request.from_object_id,
                to_object_type=request.to_object_type,
                to_object_id=request.to_object_id,
                portal_id=request.portal_id,
                source=request.source if isinstance(request.source, str) else "?",
                source_event_id=request.source_event_id,
                received_at=0.0,
            )
        for name in ("received_at", "occurred_at"):
            value = getattr(request, name)
            if not (value is None and name == "occurred_at") and (
                not isinstance(value, int | float) or isinstance(value, bool)
            ):
                raise TypeError(f"req.{name}: expected a number, got {value!r:.40}")
        history = json.loads(hist) if hist and hist not in (b"[]", "[]") else []
        if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
            raise TypeError("hist: expected a JSON array of objects")
        claimed = Claimed(
            association_id=association_id,
            request=request,
            attempts=int(attempts or 0),
            history=history,
            first_seen_ms=int(first_seen or 0),
            replays=int(replays or 0),
            member=member,
        )
    except UnreadableRecordError:
        raise
    except InvalidInputError as exc:
        problems = "; ".join(p.message for p in exc.problems) or exc.message
        raise UnreadableRecordError(f"req: {problems}") from None
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as exc:
        raise UnreadableRecordError(f"{type(exc).__name__}: {exc}"[:300]) from None
    if claimed.attempts < 0 or claimed.replays < 0:
        raise UnreadableRecordError("attempts and replays must not be negative")
    return claimed


def _unreadable_letter(association_id: str, lane: str, fields: Sequence[Any], reason: str, now: int) -> DeadLetter:
    """The dead letter of an association that cannot be read: what was stored, as text, and why."""
    stored = dict(zip(("member", "req", "attempts", "hist", "first_seen", "replays"), fields, strict=True))
    stored = {k: v for k, v in stored.items() if v not in ("", b"", None)}
    portal, _, types = lane.partition("|")
    from_type, _, to_type = types.partition("|")
    return DeadLetter(
        id=association_id,
        kind="association",
        association=DeadPair(
            portal_id=None if portal == "_" else portal,
            from_object_type=from_type,
            from_object_id="",
            to_object_type=to_type,
            to_object_id="",
        ),
        source="unknown",
        source_event_id=None,
        reason=f"{UNREADABLE}: {reason}",
        error=UnreadableRecordError.__name__,
        status=None,
        category=UNREADABLE_CATEGORY,
        sub_category=None,
        message=reason[:500],
        correlation_id=None,
        first_seen_ms=now,
        dead_at_ms=now,
        stored={k: text(v)[:2000] for k, v in stored.items()},
    )


@dataclass(frozen=True, slots=True)
class LaneDepth:
    """How much waits in one lane, and since when."""

    lane: str
    waiting: int
    #: The earliest first-seen (fresh work) or due time (retries) in the lane, epoch ms; None when empty.
    oldest_ms: int | None


def lane_depths(redis: Redis, keys: Keys, lanes: Sequence[str]) -> list[LaneDepth]:
    """The depth of each lane (queue and retry zset together), in one pipeline. Raises redis errors."""
    pipe = redis.pipeline(transaction=False)
    for lane in lanes:
        pipe.llen(keys.queue(lane))
        pipe.lindex(keys.queue(lane), 0)
        pipe.zcard(keys.lane(lane))
        pipe.zrange(keys.lane(lane), 0, 0, withscores=True)
    raw = pipe.execute()
    out = []
    for n, lane in enumerate(lanes):
        fresh, head, retries, first = raw[4 * n : 4 * n + 4]
        times = [int(first[0][1])] if first else []
        if head is not None:
            seen = text(head).split(US, 2)[1:2]
            if seen and seen[0].isdigit():
                times.append(int(seen[0]))
        out.append(LaneDepth(lane, int(fresh) + int(retries), min(times) if times else None))
    return out


def pending_ids(redis: Redis, keys: Keys, lane: str) -> list[str]:
    """The ids waiting in ``lane``: retries by due time, then fresh work in the order accepted (for tools)."""
    with store_errors():
        pipe = redis.pipeline(transaction=False)
        pipe.zrange(keys.lane(lane), 0, -1)
        pipe.lrange(keys.queue(lane), 0, -1)
        retries, fresh = pipe.execute()
    return [_member_id(text(m)) for m in (*retries, *fresh)]


def peek(redis: Redis, keys: Keys, lane: str, limit: int = 100) -> list[Claimed]:
    """Up to ``limit`` associations waiting in ``lane``, read without claiming them (retries first).

    For tools and tests; what cannot be read is left out (a claim dead-letters it).
    """
    with store_errors():
        pipe = redis.pipeline(transaction=False)
        pipe.zrange(keys.lane(lane), 0, limit - 1)
        pipe.lrange(keys.queue(lane), 0, limit - 1)
        retries, fresh = pipe.execute()
        members = [text(m) for m in (*retries, *fresh)][:limit]
        pipe = redis.pipeline(transaction=False)
        for member in members:
            pipe.hmget(keys.association(_member_id(member)), "req", "attempts", "hist", "first_seen", "replays")
        states = pipe.execute(raise_on_error=False)
    out = []
    for member, state in zip(members, states, strict=True):
        try:
            out.append(claimed_from([member, *(state if isinstance(state, list) else [None] * 5)], lane))
        except UnreadableRecordError:
            continue
    return out


def portal_name(portal: str | None) -> str:
    """A lane's portal as pauses and circuits name it: the id, or ``_`` in single-portal mode."""
    return portal or "_"


def pause_fields(lane: str, *, probe: bool = False) -> list[str]:
    """The ``paused`` fields any of which stops ``lane``: itself, its portal, its portal's circuit."""
    portal = portal_name(split_lane(lane)[0])
    fields = [pause_field("lane", lane), pause_field("portal", portal)]
    if not probe:
        fields.append(pause_field("circuit", portal))
    return fields


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

    def item(self, lane: str, member: str, replay: str | bytes) -> None:
        """One association of the open group, as its lane will hold it."""
        number = self.lanes.get(lane)
        if number is None:
            number = self.lanes[lane] = len(self.lanes) + 1
        self.flat += (number, member, replay)


class MemoryLanes:
    """The lanes in process memory, with the Lua scripts' semantics: the unit tests' twin of LaneStore.

    ``clock`` gives epoch seconds (a fake clock in tests). Dead letters and counters are kept in plain
    attributes for assertions: ``dead_letters`` by id, ``counters`` as applied increments.
    """

    def __init__(self, *, lease_s: float = 30.0, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lease_ms = int(lease_s * 1000)
        #: association id -> (lane, record, attempts, history, first_seen_ms, replays)
        self.records: dict[str, Claimed] = {}
        self.lane_of: dict[str, str] = {}
        self.due: dict[str, int] = {}
        self.inflight: dict[str, int] = {}
        self.seen: set[str] = set()
        self.dead_letters: dict[str, DeadLetter] = {}
        self.counters: list[Op] = []
        self.finished: list[tuple[str, str]] = []
        #: What is paused, as the ``paused`` hash holds it: field -> why.
        self.paused: dict[str, str] = {}

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def add(self, request: Work, *, association_id: str | None = None, due_ms: int | None = None) -> str:
        """Put one association in its lane (due now unless ``due_ms``); return its id."""
        association_id = association_id or new_association_id()
        self.records[association_id] = Claimed(association_id, request, 0, [], self._now_ms(), 0)
        self.lane_of[association_id] = request.lane
        self.due[association_id] = self._now_ms() if due_ms is None else due_ms
        return association_id

    def pending(self, lane: str) -> list[str]:
        """Ids waiting in ``lane``, by due time."""
        # By due time, then in the order added (as enqueue.lua scores the items of one call).
        return sorted((i for i in self.due if self.lane_of[i] == lane), key=lambda i: self.due[i])

    def enqueue(
        self, groups: Sequence[EventGroup], counters: Sequence[Op] = (), *, ack: Sequence[str] | None = None
    ) -> EnqueueResult:
        """Store every group not seen before, as enqueue.lua does (``ack`` is ignored: there is no inbox)."""
        ids: list[tuple[str, ...] | None] = []
        for group in groups:
            if group.dedup_key is not None and group.dedup_key in self.seen:
                ids.append(None)
                self.counters.extend(group.on_dup)
                continue
            if group.dedup_key is not None:
                self.seen.add(group.dedup_key)
            ids.append(tuple(self.add(request) for request in group.requests))
            self.counters.extend(group.on_new)
        self.counters.extend(counters)
        return EnqueueResult(tuple(ids))

    def claim(self, lane: str, limit: int, *, window_ms: int = 0, probe: bool = False) -> Claim:
        """Lease up to ``limit`` due associations, oldest first; honour pauses and the batch window like claim.lua."""
        for name in pause_fields(lane, probe=probe):
            if name in self.paused:
                return Claim(paused=name)
        now = self._now_ms()
        due = [i for i in self.pending(lane) if self.due[i] <= now][:limit]
        if window_ms > 0 and due and len(due) < limit and now - self.due[due[0]] < window_ms:
            return Claim(wait_ms=self.due[due[0]] + window_ms - now)
        for association_id in due:
            del self.due[association_id]
            self.inflight[association_id] = now + self._lease_ms
        return Claim(items=[replace(self.records[i], history=list(self.records[i].history)) for i in due])

    def settle(self, lane: str, outcomes: Sequence[Outcome], counters: Sequence[Op] = ()) -> int:
        """Apply outcomes to associations that still exist, as settle.lua does."""
        applied = 0
        for outcome in outcomes:
            association_id = outcome.item.association_id
            self.inflight.pop(association_id, None)
            if association_id not in self.records:
                continue
            applied += 1
            if outcome.kind == "retry":
                self.records[association_id] = outcome.item
                self.due[association_id] = outcome.due_ms
                continue
            self.due.pop(association_id, None)
            del self.records[association_id]
            if outcome.kind == "dead" and outcome.dead_letter is not None:
                self.dead_letters[association_id] = outcome.dead_letter
        self.counters.extend(counters)
        return applied

    def finish(self, lane: str, *, park_until_ms: int = 0) -> str:
        """Leave ``lane``; the answer finish.lua would give."""
        now = self._now_ms()
        pending = self.pending(lane)
        if park_until_ms > now:
            ended = "parked"
        elif not pending:
            ended = "idle"
        else:
            ended = "handed-on" if self.due[pending[0]] <= now else "scheduled"
        self.finished.append((lane, ended))
        return ended
