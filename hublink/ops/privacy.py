"""PrivacyEraser: erase one contact's data from HubLink's Redis (``contact.privacyDeletion``, ``hublink privacy
erase``, ``POST /api/privacy/erase``).

A contact is named by its id, its email, or both. HubLink learns what it was not told where it can: the
emails that events naming the contact's id carry (``email`` fields, form fields ``{"name": "email", "value"}``),
and the ids of the contacts whose events carry the email. Then, key by key (``hublink.store.keys``):

- **history** ``ev:<entry>``: found by the record index (``evr:<n>``) for an id, without a scan; then by
  walking the history's ids (``evs``) in chunks of ``CHUNK`` (one round trip each) for what no index finds:
  emails, and ids in events not indexed under the contact (a workflow's body, another record's payload). Every
  event naming the contact (its object, an association it produced, its payload) is *redacted* in place: it
  keeps its position, outcome, source, portal and subscription type, and loses its payload, object, event id
  and associations (``"x": 1`` marks it). The request's other events stay as they were, so other people's
  traces are untouched. The record's index members are rewritten with it (history_erase.lua: the index loses
  the contact's members, the byte count follows).
- **pending work** ``q:<lane>``, ``lane:<lane>``, ``a:<id>``: every lane with work (``lanes``) is read and
  the members naming the contact are removed, with their state: a privacy deletion deletes the record in
  HubSpot, so the work could only end ``record_deleted``. Bounded by the pending work.
- **inbox** (pending entries): walked in chunks; an entry mentioning the contact is rewritten without the
  events (or associations) that do, as a new entry, and the old one acknowledged and deleted; an entry
  left with nothing is deleted.
- **dead letters** ``dl:<id>``, ``dlq``: walked by their index in chunks (no key scan); a letter naming the
  contact goes.
- **set-aside entries** ``inbox:failed``: walked in chunks (kept at about 10,000); an entry mentioning the
  contact is deleted whole (it is kept for inspection, not delivery).
- **idempotency records** ``idem:<digest>``: they hold the direct API's first answer (association ids), and
  the body only as a digest; the answer names no contact, but one whose request named it is erased (found
  through the association ids).
- **linked associations** ``done:<day>``: the associations found above are removed from every day kept.
- **record fates** ``rec:<portal>|contacts/<id>``, under every portal.
- **lookup cache** ``lookup:<digest>``: values naming the id or the email (a search by email caches the id
  found) are deleted.

Idempotency records, lookup cache entries and fates have no index: one SCAN of the prefix finds all three.

What remains names no one: counters and metrics, dedup marks (``seen:<digest>``: one-way digests), the
index's 3-byte tags of other records. Work claimed by a drain at this very moment is not in Redis: erase
again after a lease (``hublink privacy erase``) should a drain have been holding some.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import struct
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis

from hublink.domain.associations import canonical_object_type, check_object_id, split_lane
from hublink.intake.history import (
    INDEX_BUCKETS,
    INDEX_MEMBER_BYTES,
    RECORD_FORM,
    RECORD_OVERHEAD_BYTES,
    TAG_BYTES,
    EventHistory,
    decode_record,
    encode_record,
    records_named,
)
from hublink.intake.inbox import GROUP
from hublink.lanes.codec import FORM_ASSOCIATION, US
from hublink.store.connections import store_errors, text
from hublink.store.keys import Keys
from hublink.store.scripts import Scripts

log = logging.getLogger("hublink.ops.privacy")

#: Records, entries or keys read per round trip while walking.
CHUNK = 500
#: Most days of ``done:<day>`` hashes looked at (the history window is at most this long).
MAX_DONE_DAYS = 400
#: The kinds an erasure counts, as the API answers them.
KINDS = (
    "history",
    "index",
    "pending",
    "inbox",
    "deadLetters",
    "setAside",
    "idempotency",
    "done",
    "fates",
    "lookups",
)
CONTACTS = "contacts"


@dataclass(slots=True)
class Subject:
    """Whom an erasure is for: contact ids and emails (lowercase), growing as HubLink learns more."""

    ids: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)

    def mentioned_in(self, value: Any, key: str | None = "id") -> bool:
        """True when a JSON value holds an email, ``contacts/<id>``, or an id as the whole value of an id field.

        An id counts only under a key that names an id (``objectId``, ``vid``, ``ids``...: ``key``), so that
        counts and times that happen to equal it do not; a value with no key (a list of ids) counts too.
        """
        if isinstance(value, bool) or value is None or isinstance(value, float):
            return False
        if isinstance(value, int):
            return _id_key(key) and str(value) in self.ids
        if isinstance(value, str):
            if _id_key(key) and value in self.ids:
                return True
            lowered = value.lower()
            return any(e in lowered for e in self.emails) or any(f"{CONTACTS}/{i}" in value for i in self.ids)
        if isinstance(value, dict):
            return any(self.mentioned_in(k, None) or self.mentioned_in(v, str(k)) for k, v in value.items())
        if isinstance(value, list | tuple):
            return any(self.mentioned_in(v, key) for v in value)
        return self.mentioned_in(str(value), key)

    def mentioned_in_text(self, raw: bytes | str) -> bool:
        """The same for a stored value: parsed as JSON when it is some (journal bodies kept in base64 decoded)."""
        body = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        try:
            value = json.loads(body)
        except ValueError:
            # Not JSON (a body set aside because it did not parse): an id counts as a whole number in it.
            lowered = body.lower()
            return any(e in lowered for e in self.emails) or any(
                re.search(rf"(?<![0-9]){re.escape(i)}(?![0-9])", body) for i in self.ids
            )
        return self.mentioned_in(value) or self.mentioned_in(_decoded_bodies(value))


def _id_key(key: str | None) -> bool:
    """A key whose values are ids (``objectId``, ``fromObjectId``, ``vid``, ``ids``), or none (a bare value)."""
    if key is None:
        return False
    lowered = key.lower().replace("_", "")
    return lowered in ("id", "vid") or lowered.endswith(("id", "ids"))


def _decoded_bodies(value: Any) -> list[Any]:
    """Bodies kept in base64 inside a value (a journal entry set aside), decoded, parsed when they are JSON."""
    found: list[Any] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "base64" and isinstance(v, str):
                try:
                    raw = base64.b64decode(v, validate=True).decode("utf-8", "replace")
                except (ValueError, binascii.Error):
                    continue
                try:
                    found.append(json.loads(raw))
                except ValueError:
                    found.append(raw)
            else:
                found.extend(_decoded_bodies(v))
    elif isinstance(value, list):
        for v in value:
            found.extend(_decoded_bodies(v))
    return found


def emails_in(value: Any) -> set[str]:
    """The emails a payload gives as a contact's: ``email`` fields, and ``{"name": "email", "value": ...}``."""
    found: set[str] = set()
    if isinstance(value, dict):
        # Form fields ({"name", "value"}) and HubSpot's propertyChange events ({"propertyName", "propertyValue"}).
        for name_key, value_key in (("name", "value"), ("propertyName", "propertyValue")):
            name = value.get(name_key)
            if isinstance(name, str) and name.lower() == "email" and _is_email(value.get(value_key)):
                found.add(str(value[value_key]).strip().lower())
        for k, v in value.items():
            if isinstance(k, str) and k.lower() == "email" and _is_email(v):
                found.add(str(v).strip().lower())
            elif isinstance(k, str) and k.lower() == "email" and isinstance(v, dict) and _is_email(v.get("value")):
                found.add(str(v["value"]).strip().lower())  # {"email": {"value": ...}} (property history form)
            else:
                found |= emails_in(v)
    elif isinstance(value, list):
        for v in value:
            found |= emails_in(v)
    return found


def _is_email(value: Any) -> bool:
    return isinstance(value, str) and 3 <= len(value.strip()) <= 320 and "@" in value


def _is_contact_type(value: Any) -> bool:
    try:
        return canonical_object_type(str(value)) == CONTACTS
    except ValueError:
        return False


def event_names(subject: Subject, event: dict[str, Any]) -> bool:
    """True when a stored history event (compact form) names the contact."""
    if event.get("x"):
        return False
    # A workflow's event says no type: its objectId counts too (erring towards erasing, never towards keeping).
    named = event.get("oid") is not None and str(event["oid"]) in subject.ids
    if named and (event.get("ot") is None or _is_contact_type(event.get("ot"))):
        return True
    for item in event.get("a", ()):
        if item[1] != "lookup" and any(side in {f"{CONTACTS}/{i}" for i in subject.ids} for side in item[1:3]):
            return True
    payload = event.get("pl")
    if payload is None:
        return False
    if subject.emails and subject.mentioned_in([v for v in _strings(payload) if "@" in v]):
        return True
    # A contact's id in another event's payload counts where the payload says it is a contact's.
    return _contact_id_fields(payload) & subject.ids != set()


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _contact_id_fields(value: Any) -> set[str]:
    """Ids under keys that say a contact's (``contactId``, ``vid``, ``contact_id``...)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            key = str(k).lower().replace("_", "")
            if (key in ("vid", "contactid", "hscontactid") or key.endswith("contactid")) and isinstance(v, int | str):
                if not isinstance(v, bool):
                    found.add(str(v))
            else:
                found |= _contact_id_fields(v)
    elif isinstance(value, list):
        for v in value:
            found |= _contact_id_fields(v)
    return found


def record_body(raw: bytes | str) -> bytes | None:
    """A stored history record's JSON (decompressed, association ids left packed), or None if it is not one."""
    if isinstance(raw, str):
        raw = raw.encode()
    try:
        if raw[:1] != bytes((RECORD_FORM,)):
            return None
        count, ref_len = struct.unpack(">HB", raw[1:4])
        at = 4 + ref_len + TAG_BYTES * count
        (ids_len,) = struct.unpack(">I", raw[at : at + 4])
        return zlib.decompress(raw[at + 4 + ids_len :])
    except (struct.error, zlib.error):
        return None


def may_name(subject: Subject, body: bytes) -> bool:
    """Whether a record's JSON could name the contact (no false negatives: ids and emails appear as text)."""
    if not all(e.isascii() for e in subject.emails):
        return True  # the stored JSON escapes what is not ASCII: only parsing finds it
    lowered = body.lower()
    return any(e.encode() in lowered for e in subject.emails) or any(i.encode() in body for i in subject.ids)


def _decoded(raw: bytes | str) -> dict[str, Any] | None:
    """A stored history record, or None when it cannot be read (an erasure is not stopped by one bad record)."""
    try:
        return decode_record(raw)
    except (ValueError, TypeError, KeyError, IndexError, struct.error, zlib.error):
        return None


def _learn(subject: Subject, records: Iterable[Any]) -> None:
    """Add to ``subject`` the emails its events carry, and the contacts events carrying its emails name."""
    for raw in records:
        for event in (_decoded(raw) or {}).get("e", []):
            if event_names(subject, event):
                carried = emails_in(event.get("pl"))
                subject.emails |= carried
                if subject.emails & carried:
                    subject.ids |= _contacts_of(event)


def _contacts_of(event: dict[str, Any]) -> set[str]:
    """The contacts an event carrying an email gives it to: its own object, or the contacts it was linked as.

    A contact's event (a property change) or a form that named the contact and produced its association.
    """
    found: set[str] = set()
    if event.get("oid") is not None and _is_contact_type(event.get("ot")):
        found.add(str(event["oid"]))
    for item in event.get("a", ()):
        if item[1] != "lookup":
            found.update(side.split("/", 1)[1] for side in item[1:3] if side.startswith(f"{CONTACTS}/"))
    return found


def redacted(event: dict[str, Any]) -> dict[str, Any]:
    """A history event with nothing left that names anyone: where, when in the request, what became of it."""
    kept: dict[str, Any] = {k: event[k] for k in ("i", "o", "src", "p", "st") if k in event}
    return {**kept, "x": 1}


@dataclass(slots=True)
class Erasure:
    """What one erasure did: counts by kind, how much it learned, and the association ids it found."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    associations: set[str] = field(default_factory=set)
    learned_ids: int = 0
    learned_emails: int = 0
    #: Work naming the contact that a drain held during the erasure (not erased: see ``PrivacyEraser.erase``).
    in_flight: int = 0
    #: Everything the erasure ended up seeking (the ids and emails given, and those learned): never answered.
    subject: Subject = field(default_factory=lambda: Subject())

    def as_dict(self) -> dict[str, Any]:
        """The API's answer (counts only: the answer names no one either)."""
        return {
            "erased": dict(self.counts),
            "learned": {"ids": self.learned_ids, "emails": self.learned_emails},
            "inFlight": self.in_flight,
        }


class PrivacyEraser:
    """Erases a contact's data from HubLink's Redis (see the module docstring for each key)."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        history: EventHistory,
        *,
        history_days: float = 7.0,
        scripts: Scripts | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._history = history
        self._days = min(int(history_days) + 2, MAX_DONE_DAYS)
        self._scripts = scripts or Scripts(redis)

    def erase(
        self,
        *,
        contact_ids: Iterable[str] = (),
        emails: Iterable[str] = (),
        skip_inbox: Iterable[str] = (),
    ) -> Erasure:
        """Erase the contacts named (ids, emails); ``skip_inbox``: inbox entries being expanded now (acked then).

        Work a drain holds (claimed, in ``leased``) is counted in ``in_flight``, not erased: the drain settles
        it within its lease, and what it leaves (a dead letter, a linked record) goes with an erasure run again.
        """
        subject = Subject({str(i) for i in contact_ids}, {e.strip().lower() for e in emails if e.strip()})
        if not subject.ids and not subject.emails:
            raise ValueError("name a contact: an id or an email")
        given = (len(subject.ids), len(subject.emails))
        out = Erasure(subject=subject)
        with store_errors():
            self._history_pass(subject, out)
            out.learned_ids = len(subject.ids) - given[0]
            out.learned_emails = len(subject.emails) - given[1]
            self._pending(subject, out)
            self._inbox(subject, out, set(skip_inbox))
            self._dead_letters(subject, out)
            self._set_aside(subject, out)
            self._done(out)
            self._keyspace(subject, out)
            out.in_flight = self._in_flight(subject)
        # The log names no one either: logs are kept, and shipped, beyond Redis.
        log.info("privacy erasure done", extra={"erased": out.counts, "in_flight": out.in_flight})
        if out.in_flight:
            log.warning(
                "work naming an erased contact was in flight: erase again after the lease (hublink privacy erase)",
                extra={"in_flight": out.in_flight},
            )
        return out

    def _in_flight(self, subject: Subject) -> int:
        """Claimed work naming the contact (``leased``: id -> lane RS member)."""
        held = 0
        for _, value in self._redis.hscan_iter(self._keys.leased, count=CHUNK):
            lane, _, member = text(value).partition("\x1e")
            held += self._member_names(subject, lane, member)
        return held

    # --- history ---

    def _history_pass(self, subject: Subject, out: Erasure) -> None:
        """Find the records naming the contact (index by id, walk by email), learn, then redact them."""
        candidates: dict[str, Any] = {}
        searched_ids: set[str] = set()
        walked = Subject()
        for _ in range(3):  # id -> emails -> ids: a fixed point in a few rounds
            for contact_id in sorted(subject.ids - searched_ids):
                searched_ids.add(contact_id)
                entries = [entry_id for _, entry_id in self._history.entries_naming(f"{CONTACTS}/{contact_id}")]
                self._load(entries, candidates)
            _learn(subject, candidates.values())
            # The walk finds what the index cannot: emails, and ids in events not indexed under the contact (a
            # workflow's, another record's payload). Only what is new since the last walk is sought again.
            fresh = Subject(subject.ids - walked.ids, subject.emails - walked.emails)
            if not fresh.ids and not fresh.emails:
                break
            walked.ids |= fresh.ids
            walked.emails |= fresh.emails
            self._walk_history(fresh, candidates)
            _learn(subject, candidates.values())
        self._redact(subject, candidates, out)

    def redact_entries(self, entry_ids: Sequence[str], subject: Subject) -> int:
        """Redact only the history records ``entry_ids`` for ``subject`` (an :class:`Erasure`'s): how many changed.

        For the records written after an erasure ran, such as the privacy deletion's own batch: the rest of
        Redis was erased already, and walking the whole history again would cost the worker seconds for one.
        """
        candidates: dict[str, Any] = {}
        out = Erasure(subject=subject)
        with store_errors():
            self._load(entry_ids, candidates)
            self._redact(subject, candidates, out)
        return out.counts["history"]

    def _redact(self, subject: Subject, candidates: dict[str, Any], out: Erasure) -> None:
        """Rewrite the ``candidates`` records (entry id -> stored record) without the events naming ``subject``."""
        changes: list[str | bytes] = []
        for entry_id, raw in candidates.items():
            record = decode_record(raw)
            events = record.get("e", [])
            touched = False
            new_events = []
            for event in events:
                if event_names(subject, event):
                    touched = True
                    out.associations.update(str(item[0]) for item in event.get("a", ()))
                    new_events.append(redacted(event))
                else:
                    new_events.append(event)
            if not touched:
                continue
            old_names = records_named(events)
            new_names = records_named(new_events)
            out.counts["index"] += len(old_names) - len(new_names)
            value = encode_record(entry_id, {**record, "e": new_events}, sorted(new_names))
            changes.extend([entry_id, value])
            out.counts["history"] += 1
        for start in range(0, len(changes), 2 * CHUNK):
            self._scripts.history_erase(
                keys=[self._keys.history, self._keys.history_bytes, self._keys.history_index_meta],
                args=[
                    self._keys.history_prefix,
                    self._keys.history_index_bucket_prefix,
                    INDEX_BUCKETS,
                    RECORD_OVERHEAD_BYTES,
                    INDEX_MEMBER_BYTES,
                    *changes[start : start + 2 * CHUNK],
                ],
            )

    def _load(self, entry_ids: Sequence[str], into: dict[str, Any]) -> None:
        wanted = [e for e in entry_ids if e not in into]
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            for entry_id, raw in zip(
                chunk, self._redis.mget([self._keys.history_record(e) for e in chunk]), strict=True
            ):
                if raw and _decoded(raw) is not None:  # a record HubLink cannot read is left to its expiry
                    into[entry_id] = raw

    def _walk_history(self, subject: Subject, into: dict[str, Any]) -> None:
        """Every kept record, CHUNK a round trip: the history has no index by email."""
        start = 0
        while True:
            ids = [text(m) for m in self._redis.zrange(self._keys.history, start, start + CHUNK - 1)]
            if not ids:
                return
            start += len(ids)
            for entry_id, raw in zip(ids, self._redis.mget([self._keys.history_record(e) for e in ids]), strict=True):
                if not raw or entry_id in into:
                    continue
                # Cheap first: most records name no one sought, and a substring test spares parsing them.
                body = record_body(raw)
                if body is not None and not may_name(subject, body):
                    continue
                record = _decoded(raw)
                if record is None:
                    continue
                if any(event_names(subject, event) for event in record.get("e", [])):
                    into[entry_id] = raw

    # --- pending work ---

    def _pending(self, subject: Subject, out: Erasure) -> None:
        """Members of every lane with work that name the contact, with their state."""
        lanes = [text(m) for m in self._redis.zrange(self._keys.lanes, 0, -1)]
        for lane in lanes:
            pipe = self._redis.pipeline(transaction=False)
            pipe.lrange(self._keys.queue(lane), 0, -1)
            pipe.zrange(self._keys.lane(lane), 0, -1)
            fresh, retried = pipe.execute()
            doomed_fresh = [m for m in fresh if self._member_names(subject, lane, text(m))]
            doomed_retried = [m for m in retried if self._member_names(subject, lane, text(m))]
            if not doomed_fresh and not doomed_retried:
                continue
            pipe = self._redis.pipeline(transaction=False)
            for member in doomed_fresh:
                pipe.lrem(self._keys.queue(lane), 0, member)
            if doomed_retried:
                pipe.zrem(self._keys.lane(lane), *doomed_retried)
            for member in [*doomed_fresh, *doomed_retried]:
                association_id = text(member).partition(US)[0]
                out.associations.add(association_id)
                pipe.delete(self._keys.association(association_id))
            removed = pipe.execute()
            out.counts["pending"] += sum(int(n) for n in removed[: len(doomed_fresh) + bool(doomed_retried)])

    @staticmethod
    def _member_names(subject: Subject, lane: str, member: str) -> bool:
        parts = member.split(US)
        if len(parts) >= 5 and parts[2][:1] == FORM_ASSOCIATION:
            try:
                _, from_type, to_type = split_lane(lane)
            except ValueError:
                from_type = to_type = ""
            if (_is_contact_type(from_type) and parts[3] in subject.ids) or (
                _is_contact_type(to_type) and parts[4] in subject.ids
            ):
                return True
            rest = US.join(parts[5:]).lower()  # source, times, options, event id: an email could only be here
            return any(e in rest for e in subject.emails)
        body = US.join(parts[3:])
        try:
            record = json.loads(body)
        except ValueError:
            return subject.mentioned_in_text(body)
        return subject.mentioned_in(record)

    # --- streams ---

    def _stream(self, key: str) -> Iterator[tuple[str, dict[bytes, bytes]]]:
        """Every entry of a stream, CHUNK a round trip."""
        start = "-"
        while True:
            rows: list[Any] = list(self._redis.xrange(key, start, "+", count=CHUNK) or [])
            for entry_id, fields in rows:
                yield text(entry_id), fields
            if len(rows) < CHUNK:
                return
            start = "(" + text(rows[-1][0])

    def _inbox(self, subject: Subject, out: Erasure, skip: set[str]) -> None:
        """Pending inbox entries: rewritten without what names the contact (or deleted when nothing is left)."""
        for entry_id, fields in list(self._stream(self._keys.inbox)):
            if entry_id in skip or not fields:
                continue
            body = fields.get(b"body", b"")
            if not subject.mentioned_in_text(body):
                continue
            kept = _without(subject, text(fields.get(b"kind", b"")), body)
            pipe = self._redis.pipeline(transaction=True)
            if kept is not None:
                pipe.xadd(self._keys.inbox, {**fields, b"body": kept})  # type: ignore[dict-item]
            pipe.xack(self._keys.inbox, GROUP, entry_id)
            pipe.xdel(self._keys.inbox, entry_id)
            pipe.execute()
            out.counts["inbox"] += 1

    def _set_aside(self, subject: Subject, out: Erasure) -> None:
        doomed = [
            entry_id
            for entry_id, fields in self._stream(self._keys.inbox_failed)
            if any(subject.mentioned_in_text(v) for k, v in fields.items() if k != b"reason")
            or subject.mentioned_in_text(fields.get(b"reason", b""))
        ]
        for start in range(0, len(doomed), CHUNK):
            out.counts["setAside"] += int(self._redis.xdel(self._keys.inbox_failed, *doomed[start : start + CHUNK]))

    # --- dead letters ---

    def _dead_letters(self, subject: Subject, out: Erasure) -> None:
        """Every dead letter, by its index (CHUNK a round trip): those naming the contact go."""
        start = 0
        doomed: list[str] = []
        while True:
            ids = [text(m) for m in self._redis.zrange(self._keys.dead_letters, start, start + CHUNK - 1)]
            if not ids:
                break
            start += len(ids)
            bodies = self._redis.mget([self._keys.dead_letter(i) for i in ids])
            for letter_id, raw in zip(ids, bodies, strict=True):
                if letter_id in out.associations or (raw and self._letter_names(subject, raw)):
                    doomed.append(letter_id)
        for start in range(0, len(doomed), CHUNK):
            chunk = doomed[start : start + CHUNK]
            pipe = self._redis.pipeline(transaction=True)
            pipe.delete(*[self._keys.dead_letter(i) for i in chunk])
            pipe.zrem(self._keys.dead_letters, *chunk)
            deleted, _ = pipe.execute()
            out.counts["deadLetters"] += int(deleted)
            out.associations.update(chunk)

    @staticmethod
    def _letter_names(subject: Subject, raw: bytes | str) -> bool:
        try:
            wire = json.loads(raw)
        except ValueError:
            return subject.mentioned_in_text(raw)
        association = wire.get("association") if isinstance(wire, dict) else None
        if isinstance(association, dict):
            for side in ("from", "to"):
                if _is_contact_type(association.get(f"{side}ObjectType")) and (
                    str(association.get(f"{side}ObjectId")) in subject.ids
                ):
                    return True
        return subject.mentioned_in(wire)

    # --- keys found by one SCAN ---

    def _keyspace(self, subject: Subject, out: Erasure) -> None:
        """Idempotency records, lookup cache entries and record fates: one SCAN of HubLink's keys, CHUNK a step.

        These keys are named by digests (or, for fates, by portal) and have no index to read instead.
        """
        idem = self._keys.idempotency("x").rsplit(":", 1)[0] + ":"
        lookup = self._keys.lookup_cache("x").rsplit(":", 1)[0] + ":"
        fate = self._keys.record_fate("")
        fate_ends = tuple(f"|{CONTACTS}/{i}" for i in subject.ids)
        cursor: int = 0
        while True:
            cursor, found = self._redis.scan(cursor, match=self._keys.prefix + "*", count=CHUNK)
            names = [text(k) for k in found]
            fates = [k for k in names if k.startswith(fate) and fate_ends and k.endswith(fate_ends)]
            if fates:
                out.counts["fates"] += int(self._redis.delete(*fates))
            for kind, prefix in (("idempotency", idem), ("lookups", lookup)):
                wanted = [k for k in names if k.startswith(prefix)]
                if not wanted:
                    continue
                values = self._redis.mget(wanted)
                doomed = [k for k, raw in zip(wanted, values, strict=True) if raw and self._holds(subject, out, raw)]
                if doomed:
                    out.counts[kind] += int(self._redis.delete(*doomed))
            if int(cursor) == 0:
                return

    @staticmethod
    def _holds(subject: Subject, out: Erasure, raw: bytes | str) -> bool:
        """An idempotency record whose answer gave one of the associations found, or a value naming the contact."""
        try:
            data = json.loads(raw)
        except ValueError:
            return subject.mentioned_in_text(raw)
        answer = data.get("answer") if isinstance(data, dict) else None
        ids = answer.get("ids") if isinstance(answer, dict) else None
        if isinstance(ids, list) and {str(i) for i in ids} & out.associations:
            return True
        return subject.mentioned_in(data)

    # --- keys named by what was found ---

    def _done(self, out: Erasure) -> None:
        """Every association found, out of each day's linked associations still kept (one round trip)."""
        if not out.associations:
            return
        today = datetime.now(UTC).date()
        ids = sorted(out.associations)
        pipe = self._redis.pipeline(transaction=False)
        for back in range(self._days):
            day = (today - timedelta(days=back)).strftime("%Y%m%d")
            for start in range(0, len(ids), CHUNK):
                pipe.hdel(self._keys.done_day(day), *ids[start : start + CHUNK])
        out.counts["done"] += sum(int(n) for n in pipe.execute())
        # Retry state of work found elsewhere (a dead letter's association has none; pending work's went above).
        for start in range(0, len(ids), CHUNK):
            self._redis.delete(*[self._keys.association(i) for i in ids[start : start + CHUNK]])


def _without(subject: Subject, kind: str, body: bytes) -> bytes | None:
    """An inbox entry's body without what names the contact; None when nothing would be left (or it is opaque)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if isinstance(data, list):
        kept = [item for item in data if not _item_names(subject, item)]
        return json.dumps(kept, separators=(",", ":")).encode() if kept else None
    if isinstance(data, dict) and data.get("v") == 2 and isinstance(data.get("a"), list):
        if subject.mentioned_in(data.get("c")):
            return None
        rows = [row for row in data["a"] if not _row_names(subject, data.get("c") or {}, row)]
        return json.dumps({**data, "a": rows}, separators=(",", ":")).encode() if rows else None
    return None


def _item_names(subject: Subject, item: Any) -> bool:
    """One event of an inbox entry (HubSpot's form, or ``CrmEvent.as_record()``) names the contact.

    Its ``objectId`` counts whatever the event's type: erring towards erasing another record's event
    whose id is the same number, never towards keeping the contact's.
    """
    return subject.mentioned_in(item)


def _row_names(subject: Subject, common: dict[str, Any], row: Any) -> bool:
    """One association of a direct-API entry names the contact (on either side)."""
    if not isinstance(row, list) or len(row) < 3:
        return subject.mentioned_in(row)
    fields = {**common, **(row[3] if len(row) > 3 and isinstance(row[3], dict) else {})}
    for side, value in (("from", row[1]), ("to", row[2])):
        if _is_contact_type(fields.get(f"{side}_object_type")) and str(value) in subject.ids:
            return True
    return subject.mentioned_in(row)


#: The fields ``POST /api/privacy/erase`` takes.
REQUEST_FIELDS = ("objectType", "objectId", "email")
MAX_EMAIL_CHARS = 320


def check_email(value: object) -> str:
    """An email as an erasure names it (trimmed, lowercase); ValueError saying what was expected."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected an email address as a non-empty string")
    email = value.strip().lower()
    if len(email) > MAX_EMAIL_CHARS or "@" not in email[1:-1] or any(c.isspace() for c in email):
        raise ValueError(f"expected an email address (local@domain, at most {MAX_EMAIL_CHARS} characters)")
    return email


def parse_request(body: object) -> tuple[list[str], list[str]]:
    """(contact ids, emails) of an erasure request ``{"objectType": "contacts", "objectId"?, "email"?}``.

    Raises ValueError naming the field at fault: an object is expected, ``objectType`` must be ``contacts``
    (HubSpot's privacy deletions are for contacts only), and ``objectId``, ``email`` or both must be given.
    """
    if not isinstance(body, dict):
        raise ValueError('body: expected a JSON object {"objectType": "contacts", "objectId"?, "email"?}')
    unknown = sorted(str(k) for k in body if k not in REQUEST_FIELDS)
    if unknown:
        raise ValueError(f"{unknown[0][:40]}: unknown field (expected {', '.join(REQUEST_FIELDS)})")
    if "objectType" not in body:
        raise ValueError("objectType: required (contacts)")
    if not _is_contact_type(body["objectType"]) or not isinstance(body["objectType"], str):
        raise ValueError(f"objectType: only contacts can be erased, got {str(body['objectType'])[:40]!r}")
    # Present means given: a null is a mistake to name, not a field to ignore (the contract says string).
    if "objectId" not in body and "email" not in body:
        raise ValueError("objectId: give objectId, email, or both")
    ids: list[str] = []
    emails: list[str] = []
    if "objectId" in body:
        try:
            ids.append(check_object_id(body["objectId"]))
        except ValueError as exc:
            raise ValueError(f"objectId: {exc}") from None
    if "email" in body:
        try:
            emails.append(check_email(body["email"]))
        except ValueError as exc:
            raise ValueError(f"email: {exc}") from None
    return ids, emails
