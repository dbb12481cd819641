"""RecordFates: what HubSpot's lifecycle events said became of records, kept a while for the drains.

The expansion records each fate an event reports (``hublink.domain.record_fates``): a deletion marks the
record ``deleted``, a merge points each merged id at the new record (``merged:<new id>``), a restore forgets
the deletion. The drain reads the fates of the records a claim names (``hublink.delivery.record_fates``):
work naming a deleted record ends as ``record_deleted`` without a call, work naming a merged id goes to the
new record. A fate is written under the event's portal and under ``_`` (work that names no portal, in
single-portal mode). Keys owned: ``rec:<portal>|<type>/<id>``, ``recs:<portal>``. Fails closed: raises
StoreUnavailableError without Redis.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from redis import Redis

from hublink.domain.record_fates import RecordFate
from hublink.store.connections import store_errors, text
from hublink.store.keys import Keys

#: How long a deletion is remembered: longer than work retries, so that none of it is sent after the event.
DELETED_TTL_S = 7 * 86400
#: How long a merge is remembered: past the dead letters' default retention, so that a replay is re-targeted.
MERGED_TTL_S = 35 * 86400
#: Most merges followed from one id to the record it became at last (a merged record merged again).
MAX_HOPS = 5
#: The value of a deleted record's fate, and the prefix of a merged one's.
DELETED = "deleted"
MERGED_PREFIX = "merged:"

Record = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Fates:
    """The fates of the records one claim names: deleted ones, and merged ones with the id they became."""

    deleted: frozenset[Record] = frozenset()
    merged: dict[Record, str] | None = None

    def new_id(self, record: Record) -> str | None:
        """The id ``record`` became by merges, or None."""
        return (self.merged or {}).get(record)

    def __bool__(self) -> bool:
        return bool(self.deleted or self.merged)


class FateBook(Protocol):
    """What the expansion and the drain need of the records' fates: ``RecordFates`` or ``MemoryRecordFates``."""

    def record(self, fates: Sequence[RecordFate]) -> None:
        """Keep ``fates``."""
        ...

    def look(self, portal: str | None, records: Iterable[Record]) -> Fates:
        """The fates of ``records`` of ``portal``."""
        ...


class _Book:
    """The rules of keeping and reading fates, on a store of one value per record (with a lifetime)."""

    def _get(self, portal: str, records: Sequence[Record]) -> list[str | None]:
        raise NotImplementedError

    def _seen(self, portal: str) -> bool:
        raise NotImplementedError

    def _write(self, writes: Sequence[tuple[str, Record, str | None, int]]) -> None:
        """(portal, record, value or None to forget it, lifetime s) each."""
        raise NotImplementedError

    def record(self, fates: Sequence[RecordFate]) -> None:
        """Keep ``fates`` (a deletion never hides a merge of the same id, in this batch or an earlier one)."""
        if not fates:
            return
        merged = {(_name(f.portal), f.object_type, f.object_id) for f in fates if f.fate == "merged"}
        deletions = [f for f in fates if f.fate == "deleted"]
        # HubSpot reports a deletion for each id a merge took away: that deletion is the merge's (one read a portal).
        for portal in dict.fromkeys(_name(f.portal) for f in deletions):
            records = [(f.object_type, f.object_id) for f in deletions if _name(f.portal) == portal]
            for record, known in zip(records, self._get(portal, records), strict=True):
                if known is not None and known.startswith(MERGED_PREFIX):
                    merged.add((portal, *record))
        writes: list[tuple[str, Record, str | None, int]] = []
        for fate in fates:
            if fate.fate == "deleted" and (_name(fate.portal), fate.object_type, fate.object_id) in merged:
                continue
            record = (fate.object_type, fate.object_id)
            for portal in dict.fromkeys((_name(fate.portal), "_")):
                if fate.fate == "merged":
                    writes.append((portal, record, f"{MERGED_PREFIX}{fate.new_id}", MERGED_TTL_S))
                elif fate.fate == "deleted":
                    writes.append((portal, record, DELETED, DELETED_TTL_S))
                else:
                    writes.append((portal, record, None, 0))  # restored: a merge stays a merge, though
        self._write(writes)

    def look(self, portal: str | None, records: Iterable[Record]) -> Fates:
        """The fates of ``records`` of ``portal`` (merges followed to the record they became at last)."""
        wanted = list(dict.fromkeys(records))
        name = _name(portal)
        if not wanted or not self._seen(name):
            return Fates()
        deleted: set[Record] = set()
        merged: dict[Record, str] = {}
        for record, value in zip(wanted, self._get(name, wanted), strict=True):
            if value == DELETED:
                deleted.add(record)
            elif value is not None and value.startswith(MERGED_PREFIX):
                merged[record] = value.removeprefix(MERGED_PREFIX)
        # A merged record merged again (or deleted since): follow it, a few hops at most.
        for _ in range(MAX_HOPS):
            targets = list(dict.fromkeys((t, new) for (t, _), new in merged.items()))
            further = dict(zip(targets, self._get(name, targets), strict=True)) if targets else {}
            moved = False
            for record, new in list(merged.items()):
                value = further.get((record[0], new))
                if value == DELETED:
                    deleted.add(record)
                elif value is not None and value.startswith(MERGED_PREFIX) and value != f"{MERGED_PREFIX}{new}":
                    merged[record] = value.removeprefix(MERGED_PREFIX)
                    moved = True
            if not moved:
                break
        return Fates(frozenset(deleted), merged or None)


class RecordFates(_Book):
    """Record fates in Redis: written by the expansion, read by the drains' claims (one MGET per claim)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    def _get(self, portal: str, records: Sequence[Record]) -> list[str | None]:
        with store_errors():
            values = self._redis.mget([self._keys.record_fate(f"{portal}|{t}/{i}") for t, i in records])
        return [text(v) if v is not None else None for v in values]

    def _seen(self, portal: str) -> bool:
        with store_errors():
            return bool(self._redis.exists(self._keys.record_fates_seen(portal)))

    def _write(self, writes: Sequence[tuple[str, Record, str | None, int]]) -> None:
        keys = self._keys
        with store_errors():
            pipe = self._redis.pipeline(transaction=False)
            for portal, (object_type, object_id), value, ttl_s in writes:
                key = keys.record_fate(f"{portal}|{object_type}/{object_id}")
                if value is None:
                    pipe.delete(key)
                    continue
                pipe.set(key, value, ex=ttl_s)
                pipe.set(keys.record_fates_seen(portal), 1, ex=MERGED_TTL_S)
            pipe.execute()

    def fate(self, portal: str | None, object_type: str, object_id: str) -> str | None:
        """One record's fate as stored (``deleted``, ``merged:<id>``), or None: for traces."""
        [value] = self._get(_name(portal), [(object_type, object_id)])
        return value


class MemoryRecordFates(_Book):
    """The same in process memory, for unit tests (lifetimes measured on ``clock``)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._values: dict[tuple[str, Record], tuple[str, float]] = {}
        self.reads = 0

    def _get(self, portal: str, records: Sequence[Record]) -> list[str | None]:
        self.reads += 1
        now = self._clock()
        found = [self._values.get((portal, r)) for r in records]
        return [v[0] if v is not None and v[1] > now else None for v in found]

    def _seen(self, portal: str) -> bool:
        now = self._clock()
        return any(p == portal and until > now for (p, _), (_, until) in self._values.items())

    def _write(self, writes: Sequence[tuple[str, Record, str | None, int]]) -> None:
        for portal, record, value, ttl_s in writes:
            if value is None:
                self._values.pop((portal, record), None)
            else:
                self._values[(portal, record)] = (value, self._clock() + ttl_s)


def _name(portal: str | None) -> str:
    """A portal as the fate keys name it: its id, or ``_``."""
    return portal or "_"


class ContactEraser(Protocol):
    """Erases a contact's data when HubSpot says ``contact.privacyDeletion`` (``hublink.ops.privacy.PrivacyEraser``).

    A Protocol here because intake may not import ``hublink.ops`` (the import-linter layers); the worker's
    runtime wires the eraser in.
    """

    def erase(
        self, *, contact_ids: Iterable[str] = (), emails: Iterable[str] = (), skip_inbox: Iterable[str] = ()
    ) -> Any:
        """Erase the contacts ``contact_ids`` (and ``emails``), leaving the inbox entries ``skip_inbox`` alone;
        the answer's ``subject`` is what :meth:`redact_entries` is given."""
        ...

    def redact_entries(self, entry_ids: Sequence[str], subject: Any) -> int:
        """Redact only the history records ``entry_ids`` (written after the erasure) for ``subject``."""
        ...


def without_erased(fates: Sequence[RecordFate], erased: Iterable[tuple[str | None, str]]) -> list[RecordFate]:
    """``fates`` less the deletions of contacts erased in the same batch: their fate would keep the id."""
    gone = set(erased)
    return [
        f
        for f in fates
        if not (f.fate == "deleted" and f.object_type == "contacts" and (f.portal, f.object_id) in gone)
    ]
