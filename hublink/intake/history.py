"""Event history: every accepted request and each of its events, with what became of them, for a while.

The workers' expansion (``hublink.intake.expansion``) writes one record per inbox entry right after storing
its work: the request (entry id, kind, when accepted) and per event its source, portal, subscription type,
object, event id, and outcome: ``accepted`` (with the rules that matched and the association ids they
produced, each with its pair), ``duplicate``, ``unmatched``, ``unusable`` (with the reason), ``problem``
(a rule matched but could not be applied), ``self``, or ``record_deleted`` / ``record_merged`` (a lifecycle
event no rule matched, kept as the record's fate: ``hublink.intake.record_fates``). Direct-API requests are
kept as one ``api`` event with their ids. Records are compact JSON (short keys), zlib-compressed, kept
``HUBLINK_HISTORY_DAYS`` within ``HUBLINK_HISTORY_MAX_MB``: past the cap the oldest go first and are counted
(``evs:dropped``).

Each record is indexed under every record it names, so a record's events are found without a scan. The
index is one member per named record and request, ``tag + entry``: a 3-byte digest of the record's name
and the request's stream id packed in 5 bytes, in small sorted sets (``evr:<n>``) read by lex range. The
buckets split by linear hashing as the window fills (``evs:index``), so each stays under Redis's listpack
limit (128 members) and costs about 15 bytes a member, where a sorted set per record cost about 150 bytes
a record (its own key). A tag shared by two records only makes the trace read a request it then filters
out. The byte cap counts the index, and each record carries its own index members, so a record dropped
by age or by the cap takes them along (history_add.lua).

The history is an observation, written after the work is stored: a worker that dies in between leaves that
one request out of the history, never out of the lanes. Keys owned: ``ev:<entry>``, ``evs``, ``evs:bytes``,
``evs:dropped``, ``evr:<n>``, ``evs:index`` (history_add.lua, history_find.lua; a privacy erasure,
``hublink.ops.privacy``, rewrites records and their index members with history_erase.lua). Fails closed:
raises StoreUnavailableError without Redis.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import re
import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from redis import Redis

from hublink.domain.associations import AssociationRequest, canonical_object_type, check_object_id
from hublink.domain.events import CrmEvent
from hublink.domain.lookups import LookupRequest, Work
from hublink.domain.times import iso, parse_time
from hublink.store.connections import store_errors, text
from hublink.store.keys import Keys
from hublink.store.scripts import Scripts

#: What can become of an event.
OUTCOMES = (
    "accepted",
    "duplicate",
    "unmatched",
    "unusable",
    "problem",
    "self",
    "displaced",
    "record_deleted",
    "record_merged",
)
#: Defaults (``HUBLINK_HISTORY_DAYS``, ``HUBLINK_HISTORY_MAX_MB``).
DEFAULT_DAYS = 7.0
DEFAULT_MAX_MB = 256.0
#: Most events one page lists, and most history records one page reads to fill it.
MAX_PAGE = 1000
SCAN_CHUNK = 200
MAX_SCANNED = 20_000
#: The record index's linear hashing: buckets at level 0, and index members per bucket on average before the
#: next one splits. Unsplit buckets hold up to twice the average just before their turn: 48 keeps them
#: under Redis's ``zset-max-listpack-entries`` (128), where a member costs about 14 bytes.
INDEX_BUCKETS = 16
INDEX_LOAD = 48
#: What the byte cap counts beside a record's stored value (and an eighth of it: the allocator rounds a value up
#: to its size class), measured on Redis 7: its key, expiry and place in ``evs``; and each index member with
#: its share of its bucket (``tests/integration/test_history.py`` fills a cap and weighs every key).
RECORD_OVERHEAD_BYTES = 190
INDEX_MEMBER_BYTES = 17
#: Keys outlive the window by this much: records leave with the first write after their window (taking their
#: index members along); the TTL only clears a history that no longer receives writes.
KEY_SLACK_S = 86_400
#: Bytes of a record's tag (the index's hash: 2^24 buckets at most), and the epoch of packed entry ids (2024-01-01).
TAG_BYTES = 3
REF_EPOCH_MS = 1_704_067_200_000
#: An association id as the history packs it (32 lowercase hex characters: 16 bytes).
_HEX_ID = re.compile(r"[0-9a-f]{32}")
#: The stored record's first byte (then its index, then the zlib-compressed JSON).
RECORD_FORM = 2


def record_name(object_type: str, object_id: str) -> str:
    """The name a record is indexed under: ``deals/123`` (standard types by name, others by type id)."""
    with contextlib.suppress(ValueError):
        object_type = canonical_object_type(object_type)
    return f"{object_type}/{object_id}"


def record_tag(record: str) -> bytes:
    """The 3-byte digest a record is indexed under (``deals/123``)."""
    return hashlib.blake2b(record.encode(), digest_size=TAG_BYTES).digest()


def entry_ref(entry_id: str) -> bytes:
    """A history entry id, packed: a stream id (``<ms>-<seq>``) as 5 bytes of ms since ``REF_EPOCH_MS`` and its
    sequence (none when 0); others, and stream ids outside those 5 bytes' 34 years, as 0xFF and the text.
    """
    ms, separator, seq = entry_id.partition("-")
    if separator and ms.isdigit() and seq.isdigit() and ms == str(int(ms)) and seq == str(int(seq)):
        since, sequence = int(ms) - REF_EPOCH_MS, int(seq)
        if 0 <= since < 0xFF << 32 and sequence < 1 << 32:
            return since.to_bytes(5, "big") + sequence.to_bytes((sequence.bit_length() + 7) // 8, "big")
    return b"\xff" + entry_id.encode()


def encode_record(entry_id: str, record: Mapping[str, Any], records: Sequence[str]) -> bytes:
    """The stored form of a request's ``record``: its index, its association ids packed, the rest compressed.

    After byte ``RECORD_FORM`` come the index (member count, entry ref length, the entry ref, a 3-byte tag
    per record it names: what history_add.lua reads), the association ids as raw bytes (4-byte length
    first: 16 bytes an id, where its 32 hex characters cost about 17 compressed), then the JSON record
    without them, zlib-compressed. Raises ValueError for an entry id longer than 200 bytes.
    """
    ref = entry_ref(entry_id)
    if len(ref) > 200:
        raise ValueError(f"entry id: expected at most 200 bytes, got {len(ref)}")
    tags = sorted({record_tag(name) for name in records})[:0xFFFF]
    events, ids = _pack_ids(record.get("e", []))
    body = json.dumps({**record, "e": events}, separators=(",", ":")).encode()
    return (
        struct.pack(">BHB", RECORD_FORM, len(tags), len(ref))
        + ref
        + b"".join(tags)
        + struct.pack(">I", len(ids))
        + ids
        + zlib.compress(body)
    )


def decode_record(raw: bytes | str) -> dict[str, Any]:
    """The record a stored value holds; raises ValueError for a value that is not in the packed form."""
    if isinstance(raw, str):
        raw = raw.encode()
    if raw[:1] != bytes((RECORD_FORM,)):
        raise ValueError("a history record must open with its form byte")
    count, ref_len = struct.unpack(">HB", raw[1:4])
    at = 4 + ref_len + TAG_BYTES * count
    (ids_len,) = struct.unpack(">I", raw[at : at + 4])
    ids = raw[at + 4 : at + 4 + ids_len]
    record = dict(json.loads(zlib.decompress(raw[at + 4 + ids_len :])))
    record["e"] = _unpack_ids(record.get("e", []), ids)
    return record


def _pack_ids(events: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], bytes]:
    """Events whose produced items all have hex ids, with the ids moved to raw bytes (``ax``: where theirs start)."""
    packed = bytearray()
    out: list[dict[str, Any]] = []
    for event in events:
        items = event.get("a")
        if items and all(isinstance(item[0], str) and _HEX_ID.fullmatch(item[0]) for item in items):
            out.append({**event, "a": [item[1:] for item in items], "ax": len(packed) // 16})
            packed += b"".join(bytes.fromhex(item[0]) for item in items)
        else:
            out.append(dict(event))
    return out, bytes(packed)


def _unpack_ids(events: Sequence[dict[str, Any]], ids: bytes) -> list[dict[str, Any]]:
    """The events :func:`_pack_ids` packed, with their ids back in place."""
    for event in events:
        first = event.pop("ax", None)
        if isinstance(first, int):
            event["a"] = [
                [ids[(first + n) * 16 : (first + n + 1) * 16].hex(), *item] for n, item in enumerate(event.get("a", []))
            ]
    return list(events)


def _next_tag(tag: bytes) -> bytes | None:
    """The tag after ``tag`` in byte order (the end of its lex range), None after the last."""
    number = int.from_bytes(tag, "big") + 1
    return number.to_bytes(TAG_BYTES, "big") if number < 1 << (8 * TAG_BYTES) else None


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
        """The stored form: short keys, empty fields left out; webhook events keep their payload (for replays).

        A replay keeps only the id of the event it replayed (``rp``), never a second copy of its payload.
        """
        out: dict[str, Any] = {"i": self.index, "o": self.outcome}
        event = self.event
        if event is not None:
            out["src"] = event.source
            if event.source != "api" and not self.replay_of:
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
        for name in ("object_id", "portal"):
            # ``_`` is the portal of single-portal mode.
            if name in given and not (name == "portal" and given[name] == "_"):
                try:
                    check_object_id(given[name])
                except ValueError as exc:
                    raise ValueError(f"{name}: {exc}") from None
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
        stored = {"id": entry_id, "at": at_ms, "k": kind, "e": events}
        value = encode_record(entry_id, stored, sorted(records_named(events)))
        cutoff_ms = at_ms - self._ttl_s * 1000
        with store_errors():
            return int(
                self._scripts.history_add(
                    keys=[
                        self._keys.history,
                        self._keys.history_bytes,
                        self._keys.history_dropped,
                        self._keys.history_index_meta,
                    ],
                    args=[
                        entry_id,
                        at_ms,
                        value,
                        self._ttl_s + KEY_SLACK_S,
                        self._max_bytes,
                        cutoff_ms,
                        self._keys.history_prefix,
                        self._keys.history_index_bucket_prefix,
                        INDEX_BUCKETS,
                        INDEX_LOAD,
                        RECORD_OVERHEAD_BYTES,
                        INDEX_MEMBER_BYTES,
                    ],
                )
            )

    def entry(self, entry_id: str) -> dict[str, Any] | None:
        """One request's stored record, or None."""
        with store_errors():
            raw = self._redis.get(self._keys.history_record(entry_id))
        return decode_record(raw) if raw else None

    def entries_naming(self, record: str) -> list[tuple[int, str]]:
        """(accepted at ms, entry id) of every kept request naming ``record`` (``deals/123``), newest first.

        A request may name another record of the same tag instead; callers filter the events they
        read (``EventFilter.matches``).
        """
        return [(at, entry_id) for at, entry_id, _ in self._find(record, with_records=0)]

    def _find(self, record: str, *, with_records: int) -> list[tuple[int, str, bytes | None]]:
        """(at ms, entry id, stored record or None) naming ``record``, newest first, in one round trip.

        The records come too when there are at most ``with_records`` requests (a trace's usual case).
        """
        tag = record_tag(record)
        after = _next_tag(tag)
        with store_errors():
            ids, times, records = self._scripts.history_find(
                keys=[self._keys.history_index_meta, self._keys.history],
                args=[
                    self._keys.history_index_bucket_prefix,
                    INDEX_BUCKETS,
                    tag,
                    b"(" + after if after is not None else b"+",
                    self._keys.history_prefix,
                    with_records,
                    REF_EPOCH_MS,
                ],
            )
        found = [
            (int(float(at)), text(entry_id), (records[n] or None) if records else None)
            for n, (entry_id, at) in enumerate(zip(ids, times, strict=True))
        ]
        return sorted(found, key=lambda row: (row[0], row[1]), reverse=True)

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
        if flt.record:
            yield from self._indexed_entries(flt, start)
            return
        top: str | int = "+inf" if flt.until_ms is None else flt.until_ms
        if start is not None:
            top = start[0]
        bottom: str | int = "-inf" if flt.since_ms is None else flt.since_ms
        scanned = 0
        offset = 0
        while scanned < MAX_SCANNED:
            with store_errors():
                rows: list[tuple[bytes, float]] = self._redis.zrevrangebyscore(  # type: ignore[assignment]
                    self._keys.history, top, bottom, start=offset, num=SCAN_CHUNK, withscores=True
                )
                bodies = self._redis.mget([self._keys.history_record(text(m)) for m, _ in rows]) if rows else []
            if not rows:
                return
            for raw in bodies:
                if raw:
                    yield decode_record(raw)
            scanned += len(rows)
            offset += len(rows)

    def _indexed_entries(self, flt: EventFilter, start: tuple[int, str] | None) -> Iterator[dict[str, Any]]:
        """The records naming the filter's record, newest first, from ``start`` and within since/until."""
        assert flt.record is not None
        top = flt.until_ms if flt.until_ms is not None else None
        if start is not None:
            top = start[0]
        found = [
            (entry_id, raw)
            for at, entry_id, raw in self._find(flt.record, with_records=SCAN_CHUNK)
            if (top is None or at <= top) and (flt.since_ms is None or at >= flt.since_ms)
        ][:MAX_SCANNED]
        for first in range(0, len(found), SCAN_CHUNK):
            chunk: list[tuple[str, bytes | str | None]] = list(found[first : first + SCAN_CHUNK])
            missing = [entry_id for entry_id, raw in chunk if raw is None]
            if missing:
                with store_errors():
                    fetched = dict(
                        zip(missing, self._redis.mget([self._keys.history_record(e) for e in missing]), strict=True)
                    )
                chunk = [(entry_id, raw if raw is not None else fetched.get(entry_id)) for entry_id, raw in chunk]
            for _, raw in chunk:
                if raw:
                    yield decode_record(raw)

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
