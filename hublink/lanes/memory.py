"""MemoryLanes: the lanes in process memory, with the Lua scripts' semantics (the unit tests' twin)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from hublink.domain.dead_letter import DeadLetter
from hublink.domain.lookups import Work
from hublink.lanes.types import Claim, Claimed, EnqueueResult, EventGroup, Outcome, new_association_id, pause_fields
from hublink.store.counters import Op


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
