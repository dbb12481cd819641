"""Replaying past events through today's rules: one event, or every event a history filter matches.

Each event kept in the history (``hublink.intake.history``) is run through the rules file loaded now; the
work it asks for is stored in the lanes like any new work, so it goes out through the shared rate limit
and the normal retries, but without a dedup mark: the event was seen before, and a replay is asked for on
purpose. A dry run stores nothing and says, per event, what would be produced now beside what was produced
then. Requests of the direct API carry no event to run rules on and are skipped; so are unusable events.
Every replay is kept in the history too (kind ``replay``): each of its events names the event it replayed
(``rp``) and stores no second copy of its payload; replaying a replay follows that reference.

A bulk replay walks a snapshot: the ids of the matching events are read before anything is replayed, so
the replay's own history records, live intake and the history's size cap cannot make it see an event twice
or skip one still stored; and each original event is replayed once, whether it was matched itself or
through earlier replays of it.
Fails closed: raises StoreUnavailableError without Redis.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hublink import tracing
from hublink.domain.associations import AssociationRequest
from hublink.domain.lookups import LookupRequest, Work
from hublink.domain.rules import RuleSet
from hublink.intake.expansion import plan_named, source_slug
from hublink.intake.history import EventFilter, EventHistory, EventOutcome, event_of, work_entry
from hublink.lanes import EventGroup, LaneStore
from hublink.store.counters import CounterOps, Op

#: Events replayed per round-trip (one enqueue.lua call, one history record).
CHUNK = 100
#: Per-event lines a dry run returns (the counts cover everything).
MAX_ITEMS = 1000


def described(work: Work) -> str:
    """One produced item as operators read it: ``deals/1 -> contacts/2`` or ``lookup <rule>``."""
    entry = work_entry("", work)
    return f"lookup {entry[2]}" if entry[1] == "lookup" else f"{entry[1]} -> {entry[2]}"


def described_then(stored: dict[str, Any]) -> list[str]:
    """What an event produced when it was first processed, in the same words."""
    return [f"lookup {a[2]}" if a[1] == "lookup" else f"{a[1]} -> {a[2]}" for a in stored.get("a", [])]


@dataclass(slots=True)
class ReplayReport:
    """What a replay did (or, dry, would do)."""

    dry_run: bool
    matched: int = 0
    replayed: int = 0
    skipped: int = 0
    associations: int = 0
    items: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "dry_run": self.dry_run,
            "matched": self.matched,
            "replayed": self.replayed,
            "skipped": self.skipped,
            "associations": self.associations,
            "items": self.items,
        }


class EventReplayer:
    """Runs stored events through the current rules and stores the work they ask for."""

    def __init__(
        self,
        history: EventHistory,
        rules: RuleSet | Callable[[], RuleSet],
        lanes: LaneStore,
        counters: CounterOps | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._history = history
        # A callable follows the published rules version (HUBLINK_RULES_SOURCE=redis): read per replay.
        self._rules: Callable[[], RuleSet] = rules if callable(rules) else (lambda: rules)
        self._lanes = lanes
        self._counters = counters
        self._clock = clock
        self._seq = 0

    def select(
        self, event_id: str | None = None, flt: EventFilter | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """The stored events to replay: one (``<entry>.<index>``, or every event of ``<entry>``), or a filter's.

        The ids are read now (the snapshot); each event is read from the history when the replay reaches it.
        """
        if event_id is not None:
            entry_id, _, index = event_id.partition(".")
            entry = self._history.entry(entry_id)
            ids = [(entry_id, int(e["i"])) for e in (entry or {}).get("e", []) if not index or str(e["i"]) == index]
        else:
            ids = list(
                dict.fromkeys((str(e["id"]), int(ev["i"])) for e, ev in self._history.matching(flt or EventFilter()))
            )
        return self._events(ids)

    def _events(self, ids: list[tuple[str, int]]) -> Iterator[tuple[str, dict[str, Any]]]:
        """Each listed event as stored now (an id the history no longer holds is left out), its replays resolved."""
        cached: tuple[str, dict[str, Any] | None] = ("", None)
        replayed: set[str] = set()
        for entry_id, index in ids:
            if cached[0] != entry_id:
                cached = (entry_id, self._history.entry(entry_id))
            stored = next((e for e in (cached[1] or {}).get("e", []) if e.get("i") == index), None)
            if stored is None:
                continue
            stored = self._original(stored)
            original = str(stored.get("rp") or f"{entry_id}.{index}")
            if original in replayed:
                continue
            replayed.add(original)
            yield f"{entry_id}.{index}", stored

    def _original(self, stored: dict[str, Any]) -> dict[str, Any]:
        """A replay's event with the payload of the event it replayed (a reference, see :meth:`select`)."""
        reference = stored.get("rp")
        if not isinstance(reference, str) or "pl" in stored:
            return stored
        entry_id, _, index = reference.partition(".")
        for event in (self._history.entry(entry_id) or {}).get("e", []):
            if str(event.get("i")) == index:
                return {**event, "rp": reference}
        return stored

    def replay(
        self,
        events: Iterable[tuple[str, dict[str, Any]]],
        *,
        dry_run: bool,
        progress: Callable[[int], None] | None = None,
    ) -> ReplayReport:
        """Replay ``events`` (from :meth:`select`) in chunks; ``progress`` is told how many were done each time."""
        report = ReplayReport(dry_run=dry_run)
        rules = self._rules()  # one replay runs under one version of the rules, whatever is published meanwhile
        chunk: list[tuple[str, dict[str, Any]]] = []
        for item in events:
            chunk.append(item)
            if len(chunk) == CHUNK:
                self._chunk(chunk, rules, report, progress)
                chunk = []
        if chunk:
            self._chunk(chunk, rules, report, progress)
        return report

    def _chunk(
        self,
        chunk: list[tuple[str, dict[str, Any]]],
        rules: RuleSet,
        report: ReplayReport,
        progress: Callable[[int], None] | None,
    ) -> None:
        now = self._clock()
        dry_run = report.dry_run
        groups: list[EventGroup] = []
        # Tracing on: the replay's drains link to the request that asked for it.
        origin = tracing.origin(tracing.traceparent())
        outcomes: list[EventOutcome] = []
        for original_id, stored in chunk:
            report.matched += 1
            event = event_of(stored)
            if event is None:
                report.skipped += 1
                continue
            work, problems, matched = plan_named(event, rules, now)
            report.associations += len(work)
            if dry_run:
                if len(report.items) < MAX_ITEMS:
                    report.items.append(
                        {
                            "id": original_id,
                            "then": described_then(stored),
                            "now": [described(w) for w in work],
                            "rules_now": list(matched),
                            "problems_now": problems,
                        }
                    )
                continue
            report.replayed += 1
            groups.append(EventGroup(work, dedup_key=None, on_new=self._ops(event.source, work, now), origin=origin))
            outcome = "accepted" if matched and (work or not problems) else ("problem" if matched else "unmatched")
            replay_of = str(stored.get("rp") or original_id)
            outcomes.append(EventOutcome(len(outcomes), outcome, event, matched, (), tuple(problems), replay_of))
        if not dry_run and groups:
            result = self._lanes.enqueue(groups)
            stored_outcomes = [
                EventOutcome(
                    o.index,
                    o.outcome,
                    o.event,
                    o.rules,
                    tuple(zip(ids or (), g.requests, strict=True)),
                    o.problems,
                    o.replay_of,
                )
                for o, g, ids in zip(outcomes, groups, result.ids, strict=True)
            ]
            self._seq += 1
            self._history.record(f"replay-{int(now * 1000)}-{self._seq}", now, "replay", stored_outcomes)
        if progress is not None:
            progress(len(chunk))

    def _ops(self, source: str, work: list[Work], now: float) -> list[Op]:
        """The enqueue counts of one replayed event's work (no events_received: it was received before)."""
        if self._counters is None or not work:
            return []
        slug = source_slug(source)
        n_assoc = sum(1 for w in work if isinstance(w, AssociationRequest))
        n_lookup = sum(1 for w in work if isinstance(w, LookupRequest))
        ops = [self._counters.series_op("enqueued", n_assoc + n_lookup, at_s=now)]
        if n_assoc:
            ops.append(self._counters.op("associations_enqueued", n_assoc, source=slug, kind="association"))
        if n_lookup:
            ops.append(self._counters.op("associations_enqueued", n_lookup, source=slug, kind="lookup"))
        return ops
