"""Event history: every accepted request and each of its events, with what became of them, for a while.

The workers' expansion (``hublink.intake.expansion``) writes one record per inbox entry right after storing
its work: the request (entry id, kind, when accepted) and per event its source, portal, subscription type,
object, event id, and outcome: ``accepted`` (with the rules that matched and the association ids they
produced, each with its pair), ``duplicate``, ``unmatched``, ``unusable`` (with the reason), ``problem``
(a rule matched but could not be applied), ``self``, or ``record_deleted`` / ``record_merged`` (a lifecycle
event no rule matched, kept as the record's fate: ``hublink.intake.record_fates``). Direct-API requests are
kept as one ``api`` event with their ids. Records are compact JSON (short keys) kept ``HUBLINK_HISTORY_DAYS``
within ``HUBLINK_HISTORY_MAX_MB``: past the cap the oldest go first and are counted (``evs:dropped``).
Each record is indexed under every record it names (``evr:<type>/<id>``), so a record's events are found
without a scan.

The history is an observation, written after the work is stored: a worker that dies in between leaves that
one request out of the history, never out of the lanes. Keys owned: ``ev:<entry>``, ``evs``, ``evs:bytes``,
``evs:dropped``, ``evr:<record>`` (history_add.lua). Fails closed: raises StoreUnavailableError without Redis.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from redis import Redis

from hublink.domain.associations import AssociationRequest, canonical_object_type
from hublink.domain.events import CrmEvent
from hublink.domain.lookups import LookupRequest, Work
from hublink.domain.times import iso, parse_time
from hublink.store.connections import store_errors, text
from hublink.store.keys import Keys
from hublink.store.scripts import Scripts

#: What can become of an event.
OUTCOMES = ("accepted", "duplicate", "unmatched", "unusable", "problem", "self", "record_deleted", "record_merged")
#: Defaults (``HUBLINK_HISTORY_DAYS``, ``HUBLINK_HISTORY_MAX_MB``).
DEFAULT_DAYS = 7.0
DEFAULT_MAX_MB = 256.0
#: Most events one page lists, and most history records one page reads to fill it.
MAX_PAGE = 1000
SCAN_CHUNK = 200
MAX_SCANNED = 20_000


def record_name(object_type: str, object_id: str) -> str:
    """The name a record is indexed under: ``deals/123`` (standard types by name, others by type id)."""
    with contextlib.suppress(ValueError):
        object_type = canonical_object_type(object_type)
    return f"{object_type}/{object_id}"


def type_of_subscription(subscription_type: str | None) -> str | None:
    """The object type a HubSpot subscription names (``deal.creation``: deals), None when it names none."""
    if not subscription_type or "." not in subscription_type:
        return None
    try:
        return canonical_object_type(subscription_type.split(".", 1)[0])
    except ValueError:
        return None


def work_entry(association_id: str, work: Work) -> list[str]:
    """One produced item, compactly: ``[id, "deals/1", "contacts/2"]`` or ``[id, "lookup", rule]``."""
    if isinstance(work, AssociationRequest):
        return [
            association_id,
            record_name(work.from_object_type, work.from_object_id),
            record_name(work.to_object_type, work.to_object_id),
        ]
    assert isinstance(work, LookupRequest)
    return [association_id, "lookup", work.rule]


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """What became of one event of a request (the history's unit)."""

    index: int
    outcome: str
    event: CrmEvent | None = None
    rules: tuple[str, ...] = ()
    produced: tuple[tuple[str, Work], ...] = ()
    problems: tuple[str, ...] = ()
    #: For a replay: the id of the event it replayed (``<entry>.<index>``).
    replay_of: str | None = None

    def compact(self) -> dict[str, Any]:
        """The stored form: short keys, empty fields left out; webhook events keep their payload (for replays)."""
        out: dict[str, Any] = {"i": self.index, "o": self.outcome}
        event = self.event
        if event is not None:
            out["src"] = event.source
            if event.source != "api":
                out["pl"] = event.payload
                if event.object_type_id:
                    out["oti"] = event.object_type_id
                if event.dedup_key:
                    out["dk"] = event.dedup_key
            for key, value in (
                ("p", event.portal_id),
                ("st", event.subscription_type),
                ("ot", event.object_type_id or type_of_subscription(event.subscription_type)),
                ("oid", event.object_id),
                ("eid", event.event_id),
                ("at", event.occurred_at),
            ):
                if value is not None:
                    out[key] = value
        if self.rules:
            out["r"] = list(self.rules)
        if self.produced:
            out["a"] = [work_entry(association_id, work) for association_id, work in self.produced]
        if self.problems:
            out["pr"] = [p[:300] for p in self.problems]
        if self.replay_of:
            out["rp"] = self.replay_of
        return out


def event_of(stored: Mapping[str, Any]) -> CrmEvent | None:
    """The event a stored one was (to run today's rules on it again); None for API requests and unusable events."""
    if "pl" not in stored or stored.get("src") in (None, "api"):
        return None
    occurred = stored.get("at")
    return CrmEvent(
        source=str(stored["src"]),
        payload=stored["pl"],
        portal_id=stored.get("p"),
        event_id=stored.get("eid"),
        occurred_at=float(occurred) if isinstance(occurred, int | float) else None,
        subscription_type=stored.get("st"),
        object_type_id=stored.get("oti"),
        object_id=stored.get("oid"),
        dedup_key=stored.get("dk"),
    )


def records_named(events: Sequence[Mapping[str, Any]]) -> set[str]:
    """Every record a request's events or produced associations name (what the index holds)."""
    names: set[str] = set()
    for event in events:
        if event.get("ot") and event.get("oid"):
            names.add(record_name(str(event["ot"]), str(event["oid"])))
        for item in event.get("a", ()):
            if item[1] != "lookup":
                names.update(item[1:3])
    return names


def expand_event(entry: Mapping[str, Any], event: Mapping[str, Any]) -> dict[str, Any]:
    """One event as the API shows it: readable names, its request's id and time."""
    object_type = event.get("ot")
    shown_type = None
    if object_type:
        shown_type = record_name(str(object_type), "x").rsplit("/", 1)[0]
    return {
        "id": f"{entry['id']}.{event['i']}",
        "entry": entry["id"],
        "index": event["i"],
        "received_at": iso(entry["at"]),
        "kind": entry.get("k"),
        "source": event.get("src"),
        "portal_id": event.get("p"),
        "subscription_type": event.get("st"),
        "object_type": shown_type,
        "object_id": event.get("oid"),
        "event_id": event.get("eid"),
        "occurred_at": iso(event["at"] * 1000) if isinstance(event.get("at"), int | float) else None,
        "outcome": event["o"],
        "rules": event.get("r", []),
        "associations": [
            {"id": a[0], "lookup": a[2]} if a[1] == "lookup" else {"id": a[0], "from": a[1], "to": a[2]}
            for a in event.get("a", [])
        ],
        "problems": event.get("pr", []),
        "replay_of": event.get("rp"),
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class EventFilter:
    """Which events a listing, a replay or a trace wants; every field optional."""

    FIELDS: ClassVar[tuple[str, ...]] = (
        "source",
        "portal",
        "subscription_type",
        "object_type",
        "object_id",
        "outcome",
        "since",
        "until",
    )
    source: str | None = None
    portal: str | None = None
    subscription_type: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    outcome: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    @classmethod
    def parse(cls, values: Mapping[str, object]) -> EventFilter:
        """Build from query arguments (or CLI options); raises ValueError naming the field."""
        given = {name: str(values[name]).strip() for name in cls.FIELDS if values.get(name) is not None}
        for name, value in given.items():
            if not value:
                raise ValueError(f"{name}: expected a value, got an empty one")
        if "outcome" in given and given["outcome"] not in OUTCOMES:
            raise ValueError(f"outcome: expected one of {', '.join(OUTCOMES)}, got {given['outcome'][:40]!r}")
        if "object_id" in given and "object_type" not in given:
            raise ValueError("object_id: give object_type too")
        if "object_type" in given:
            try:
                given["object_type"] = canonical_object_type(given["object_type"])
            except ValueError as exc:
                raise ValueError(f"object_type: {exc}") from None
        times: dict[str, int | None] = {}
        for name in ("since", "until"):
            try:
                times[name] = int(parse_time(given[name])) if name in given else None
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return cls(
            source=given.get("source"),
            portal=given.get("portal"),
            subscription_type=given.get("subscription_type"),
            object_type=given.get("object_type"),
            object_id=given.get("object_id"),
            outcome=given.get("outcome"),
            since_ms=times["since"],
            until_ms=times["until"],
        )

    @property
    def record(self) -> str | None:
        """The record an object filter names (then the index is read instead of the whole history)."""
        if self.object_type and self.object_id:
            return f"{self.object_type}/{self.object_id}"
        return None

    def matches(self, event: Mapping[str, Any]) -> bool:
        """True when a stored event (compact form) passes every given field."""
        if self.source is not None and str(event.get("src", "")).replace(":", ".") != self.source.replace(":", "."):
            return False
        if self.portal is not None and str(event.get("p") or "_") != self.portal:
            return False
        if self.subscription_type is not None and event.get("st") != self.subscription_type:
            return False
        if self.outcome is not None and event.get("o") != self.outcome:
            return False
        if self.object_type is not None:
            named = records_named([event])
            wanted = self.record
            if wanted is not None:
                return wanted in named
            return any(name.startswith(f"{self.object_type}/") for name in named)
        return True


def _cursor(score: int, entry: str, index: int) -> str:
    return base64.urlsafe_b64encode(f"{score}:{entry}:{index}".encode()).decode().rstrip("=")


def _uncursor(cursor: str) -> tuple[int, str, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        score, entry, index = raw.rsplit(":", 2)
        return int(score), entry, int(index)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValueError("cursor: not one this API gave out") from None


class EventHistory:
    """The history in Redis: written by expansions, read by the API, the CLI and traces."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        days: float = DEFAULT_DAYS,
        max_mb: float = DEFAULT_MAX_MB,
        scripts: Scripts | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts or Scripts(redis)
        self._ttl_s = max(int(days * 86400), 1)
        self._max_bytes = int(max_mb * 1024 * 1024)

    def record(self, entry_id: str, received_at: float, kind: str, outcomes: Sequence[EventOutcome]) -> int:
        """Keep one request with its events' outcomes; the number of old records the cap dropped."""
        events = [o.compact() for o in outcomes]
        at_ms = int(received_at * 1000)
        body = json.dumps({"id": entry_id, "at": at_ms, "k": kind, "e": events}, separators=(",", ":"))
        indexes = [self._keys.history_index(name) for name in sorted(records_named(events))]
        cutoff_ms = at_ms - self._ttl_s * 1000
        with store_errors():
            return int(
                self._scripts.history_add(
                    keys=[self._keys.history, self._keys.history_bytes, self._keys.history_dropped],
                    args=[
                        entry_id,
                        at_ms,
                        body,
                        self._ttl_s,
                        self._max_bytes,
                        cutoff_ms,
                        self._keys.history_prefix,
                        *indexes,
                    ],
                )
            )

    def entry(self, entry_id: str) -> dict[str, Any] | None:
        """One request's stored record, or None."""
        with store_errors():
            raw = self._redis.get(self._keys.history_record(entry_id))
        return json.loads(raw) if raw else None

    def get(self, event_id: str) -> dict[str, Any] | None:
        """A request (``<entry>``: with all its events) or one event (``<entry>.<index>``), as the API shows it."""
        entry_id, _, index = event_id.partition(".")
        entry = self.entry(entry_id)
        if entry is None:
            return None
        events = [expand_event(entry, e) for e in entry["e"]]
        if not index:
            return {"id": entry_id, "received_at": iso(entry["at"]), "kind": entry.get("k"), "events": events}
        return next((e for e in events if str(e["index"]) == index), None)

    def _entries(self, flt: EventFilter, start: tuple[int, str] | None) -> Iterator[dict[str, Any]]:
        """Stored records newest first (from the record's index when the filter names one), from ``start``."""
        key = self._keys.history_index(flt.record) if flt.record else self._keys.history
        top: str | int = "+inf" if flt.until_ms is None else flt.until_ms
        if start is not None:
            top = start[0]
        bottom: str | int = "-inf" if flt.since_ms is None else flt.since_ms
        scanned = 0
        offset = 0
        while scanned < MAX_SCANNED:
            with store_errors():
                rows: list[tuple[bytes, float]] = self._redis.zrevrangebyscore(  # type: ignore[assignment]
                    key, top, bottom, start=offset, num=SCAN_CHUNK, withscores=True
                )
                bodies = self._redis.mget([self._keys.history_record(text(m)) for m, _ in rows]) if rows else []
            if not rows:
                return
            for raw in bodies:
                if raw:
                    yield json.loads(raw)
            scanned += len(rows)
            offset += len(rows)

    def matching(self, flt: EventFilter) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """Every stored (request, event) pair matching ``flt``, newest first (at most MAX_SCANNED requests)."""
        for entry in self._entries(flt, None):
            for event in reversed(entry["e"]):
                if flt.matches(event):
                    yield entry, event

    def page(
        self, flt: EventFilter, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Events matching ``flt``, newest first, and a cursor for the next page (None: no more).

        Raises ValueError for a limit outside 1..1000 or a cursor this API did not give out.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit: expected 1 to {MAX_PAGE}, got {limit}")
        start = _uncursor(cursor) if cursor else None
        found: list[dict[str, Any]] = []
        skipping = start is not None
        for entry in self._entries(flt, (start[0], start[1]) if start else None):
            for event in reversed(entry["e"]):
                if skipping:
                    assert start is not None
                    if (entry["at"], entry["id"]) == (start[0], start[1]) and event["i"] >= start[2]:
                        continue
                    if entry["at"] == start[0] and entry["id"] > start[1]:
                        continue
                    skipping = False
                if not flt.matches(event):
                    continue
                if len(found) == limit:
                    last = found[-1]
                    return found, _cursor(last["_at"], last["entry"], last["index"])
                shown = expand_event(entry, event)
                shown["_at"] = entry["at"]
                found.append(shown)
        return found, None

    def stats(self) -> tuple[int, int, int]:
        """(records kept, bytes they hold, records the cap dropped)."""
        with store_errors():
            pipe = self._redis.pipeline(transaction=False)
            pipe.zcard(self._keys.history)
            pipe.get(self._keys.history_bytes)
            pipe.get(self._keys.history_dropped)
            count, size, dropped = pipe.execute()
        return int(count), int(size or 0), int(dropped or 0)


def strip_internal(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop the paging bookkeeping from listed events."""
    for event in events:
        event.pop("_at", None)
    return events
