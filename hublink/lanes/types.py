"""What the lanes hold and promise: work as it is written and claimed, outcomes, and the Lanes protocol.

A drain depends on :class:`Lanes` only; :class:`~hublink.lanes.store.LaneStore` keeps the promise in
Redis and :class:`~hublink.lanes.memory.MemoryLanes` in process memory for unit tests.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from hublink.domain.associations import split_lane
from hublink.domain.dead_letter import DeadLetter
from hublink.domain.lookups import Work
from hublink.store.counters import Op
from hublink.store.keys import pause_field

#: The dead-letter reason and category of an association whose stored record cannot be read.
UNREADABLE = "unreadable"
UNREADABLE_CATEGORY = "UNREADABLE"


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
    #: The request's span context its members carry (``hublink.tracing.origin``); "" with tracing off.
    origin: str = ""


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
    #: The request's span context its member carries (``hublink.tracing.origin``); "" with tracing off.
    origin: str = ""


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
    #: The association as its lane stores it (``hublink.lanes.codec``); "" for work that never was stored.
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
    """What a drain needs of the lanes: ``LaneStore`` in Redis, ``MemoryLanes`` in unit tests."""

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
