"""Inbox: accepted requests waiting for a worker, in a Redis stream that the workers read as one consumer group.

Every request that brings work ends here: webhooks (signature verified, events validated) and the direct
API (associations validated); bad input never gets in. One XADD stores the request and the sender gets
its 2xx: the cost of a request does not grow with the rules or with the associations they ask for.
Every worker runs an expander thread (``worker.loops.Expander``) that reads entries with XREADGROUP, runs the
rules, and stores the associations with ``enqueue.lua``, which acknowledges and deletes the entry in the
same atomic step. So an entry is expanded exactly once, or it is still in the stream: an entry read by a
worker that died stays pending, and after ``claim_idle_s`` any expander takes it over (XAUTOCLAIM). An
entry that cannot be expanded at all (it no longer parses, or expanding it failed ``MAX_DELIVERIES``
times) moves to ``inbox:failed`` for inspection, with the reason, and is logged.

The direct API's ``Idempotency-Key`` is stored here too, with the entry it brought, by one script
(``idempotent_add.lua``): a retry finds the first answer instead of adding the work again.

Keys owned here (see ``hublink.store.keys``): ``inbox``, ``inbox:failed`` and ``idem:<digest>``.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson
from redis import Redis
from redis.exceptions import ResponseError

from hublink import tracing
from hublink.domain.associations import AssociationRequest
from hublink.domain.errors import InvalidInputError, NotReplicatedError
from hublink.domain.events import (
    MAX_EVENTS,
    CrmEvent,
    HubSpotBatch,
    parse_form,
    parse_workflow,
    read_hubspot_batch,
)
from hublink.intake.journal import JOURNAL_SOURCE, entry_events
from hublink.store.commit_group import CommitGroup
from hublink.store.connections import store_errors, text
from hublink.store.counters import Op
from hublink.store.keys import IDEMPOTENCY_TTL_S, Keys
from hublink.store.scripts import Scripts

log = logging.getLogger("hublink.inbox")

#: The consumer group every worker's expander joins.
GROUP = "expanders"
#: ``body`` is the JSON array exactly as HubSpot sent it (validated in the request, parsed again here).
KIND_HUBSPOT = "hubspot"
#: ``body`` is a JSON list of ``CrmEvent.as_record()`` (workflow actions and forms).
KIND_EVENTS = "events"
#: ``body`` is the direct API's associations (no rules): ``{"v": 2, "c": {fields every record shares}, "a":
#: [[association id, from_object_id, to_object_id, {the record's other fields}?], ...]}``, the records of
#: ``AssociationRequest.as_record()`` with what they share said once (about 65 bytes an association where the
#: full records take about 270).
KIND_ASSOCIATIONS = "associations"
#: Record fields every association keeps in its own row of a compact associations body.
_OWN_FIELDS = ("from_object_id", "to_object_id")
#: ``body`` is one workflow or form delivery whose content HubLink could not use when it came, kept as sent
#: (JSON ``{"source", "body", "id"}``) in ``inbox:failed``: a replay parses it again.
KIND_DELIVERY = "delivery"
#: An entry whose expansion failed this many times is set aside rather than retried for ever.
MAX_DELIVERIES = 5
#: Entries kept in ``inbox:failed`` (approximately: the stream is trimmed as it grows).
FAILED_MAX = 10_000
#: How long an entry's excused deliveries are remembered (an entry is expanded within seconds normally).
EXCUSED_TTL_S = 86400


@dataclass(frozen=True, slots=True)
class HeldAnswer:
    """What an Idempotency-Key holds: the digest of the body it came with and the answer it was given."""

    body_digest: str
    status: int
    answer: Any

    def dumps(self) -> bytes:
        """The wire form stored under the key."""
        return orjson.dumps({"digest": self.body_digest, "status": self.status, "answer": self.answer})

    @classmethod
    def loads(cls, raw: bytes) -> HeldAnswer:
        """Read the wire form back (raises ValueError on anything else)."""
        try:
            data = orjson.loads(raw)
            return cls(str(data["digest"]), int(data["status"]), data["answer"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"malformed idempotency record: {exc}") from None


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """One stored request's events, as read back by an expander."""

    entry_id: str
    kind: str
    body: bytes
    received_at: float
    deliveries: int = 1
    #: The web's rules when it accepted the entry (``rules_tag``); "" when it had none.
    rules_tag: str = ""
    #: Deliveries caused by Redis trouble (an expander re-reading what it held): not the entry's fault.
    excused: int = 0
    #: The W3C traceparent of the request that stored it (``hublink.tracing``); "" when tracing was off.
    traceparent: str = ""

    @property
    def failed_deliveries(self) -> int:
        """Deliveries that count towards setting the entry aside (crashes and failed expansions, not outages)."""
        return self.deliveries - self.excused

    def _data(self) -> Any:
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInputError(f"inbox entry body is not JSON: {exc}") from None

    def associations(self) -> list[tuple[str, AssociationRequest]]:
        """An ``associations`` entry's (id, request) pairs; raises InvalidInputError when they do not parse."""
        data = self._data()
        if self.kind != KIND_ASSOCIATIONS or not isinstance(data, dict) or data.get("v") != 2:
            raise InvalidInputError("an associations entry must hold a compact body (v 2: 'c' and 'a')")
        data = _full_records(data)
        try:
            return [(str(association_id), AssociationRequest.from_record(record)) for association_id, record in data]
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"inbox entry holds a malformed association: {exc}") from None

    def events(self) -> HubSpotBatch:
        """The entry's events, and those it holds that cannot be used (HubSpot batches only).

        Raises InvalidInputError when its body does not parse (e.g. a foreign kind).
        """
        data = self._data()
        if self.kind == KIND_HUBSPOT:
            return read_hubspot_batch(data)
        if self.kind == KIND_DELIVERY and isinstance(data, dict) and data.get("source") == JOURNAL_SOURCE:
            return _journal_batch(data.get("body"))
        if self.kind == KIND_DELIVERY:
            return HubSpotBatch([_delivery_event(data, self.received_at)], [])
        if self.kind != KIND_EVENTS:
            raise InvalidInputError(f"unknown inbox entry kind {self.kind[:40]!r}")
        if not isinstance(data, list):
            raise InvalidInputError("an events entry must hold a JSON array of events")
        try:
            return HubSpotBatch([CrmEvent.from_record(record) for record in data], [])
        except TypeError as exc:
            raise InvalidInputError(f"inbox entry holds a malformed event: {exc}") from None


def _journal_batch(body: Any) -> HubSpotBatch:
    """A journal entry kept unreadable (``hublink.intake.journal``), read again; raises InvalidInputError."""
    if isinstance(body, dict) and isinstance(body.get("base64"), str):
        try:
            raw = base64.b64decode(body["base64"], validate=True)
        except ValueError:
            raise InvalidInputError("a journal entry kept as base64 does not decode") from None
    elif isinstance(body, str):
        raw = body.encode()
    else:
        raise InvalidInputError("a journal delivery entry must hold the entry's file as text")
    events = entry_events(raw)
    batch = HubSpotBatch([], [])
    for start in range(0, len(events), MAX_EVENTS):
        part = read_hubspot_batch(events[start : start + MAX_EVENTS])
        batch.events.extend(part.events)
        batch.unusable.extend(replace(u, index=u.index + start) for u in part.unusable)
    return batch


def associations_body(items: Sequence[tuple[str, AssociationRequest]]) -> bytes:
    """The compact body of an ``associations`` entry (see :data:`KIND_ASSOCIATIONS`)."""
    records = [request.as_record() for _, request in items]
    shared: dict[str, Any] = {}
    if records:
        shared = {
            name: value
            for name, value in records[0].items()
            if name not in _OWN_FIELDS and all(name in r and r[name] == value for r in records[1:])
        }
    rows: list[list[Any]] = []
    for (association_id, _), record in zip(items, records, strict=True):
        row: list[Any] = [association_id, record["from_object_id"], record["to_object_id"]]
        rest = {name: value for name, value in record.items() if name not in shared and name not in _OWN_FIELDS}
        if rest:
            row.append(rest)
        rows.append(row)
    return orjson.dumps({"v": 2, "c": shared, "a": rows})


def _full_records(data: dict[str, Any]) -> list[Any]:
    """A compact associations body as ``[id, record]`` pairs; raises InvalidInputError when it is malformed."""
    shared, rows = data.get("c"), data.get("a")
    if not isinstance(shared, dict) or not isinstance(rows, list):
        raise InvalidInputError("a compact associations entry must hold 'c' (an object) and 'a' (an array)")
    out: list[Any] = []
    for row in rows:
        if not isinstance(row, list) or not 3 <= len(row) <= 4 or (len(row) == 4 and not isinstance(row[3], dict)):
            raise InvalidInputError("inbox entry holds a malformed association: expected [id, from, to, {fields}?]")
        out.append(
            [row[0], {**shared, **(row[3] if len(row) == 4 else {}), "from_object_id": row[1], "to_object_id": row[2]}]
        )
    return out


def _delivery_event(data: Any, received_at: float) -> CrmEvent:
    """The event a kept workflow or form delivery makes; raises InvalidInputError when it still cannot be used."""
    if not isinstance(data, dict) or not isinstance(data.get("source"), str):
        raise InvalidInputError("a delivery entry must hold a JSON object with its source")
    source, body, delivery_id = data["source"], data.get("body"), data.get("id")
    if source == "workflow":
        return parse_workflow(body, received_at=received_at, dedup_header=delivery_id)
    if source.startswith("forms:") and isinstance(body, dict):
        return parse_form(source[6:], body, id_field=None, id_value=delivery_id, raw_body=b"")
    raise InvalidInputError(f"a delivery entry names an unknown source {source[:40]!r}")


class Inbox:
    """The stream and its consumer group; every method raises StoreUnavailableError when Redis does not answer.

    With ``min_replicas`` (HUBLINK_REDIS_MIN_REPLICAS) the web's adds also wait, in the same round-trip,
    until that many replicas hold the entry (``WAIT``, at most ``wait_ms``), and raise NotReplicatedError
    otherwise: a 2xx then means the request survives the loss of the primary. With 0 (the default) an add
    is one XADD, as before.
    """

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        claim_idle_s: float,
        rules_tag: str | Callable[[], str] = "",
        scripts: Scripts | None = None,
        min_replicas: int = 0,
        wait_ms: int = 500,
    ) -> None:
        self._redis = redis
        self._min_replicas = min_replicas
        self._wait_ms = wait_ms
        self._keys = keys
        self._claim_idle_ms = max(int(claim_idle_s * 1000), 1)
        # A callable follows the published rules version (``hublink.intake.live_rules``): read per entry.
        self._rules_tag: Callable[[], str] = rules_tag if callable(rules_tag) else (lambda: rules_tag)
        self._scripts = scripts or Scripts(redis)
        # Where the next XAUTOCLAIM scan starts: each call looks at a bounded stretch of the pending list.
        self._claim_cursor = "0-0"
        # Concurrent adds share a round trip; with min_replicas one WAIT closes each group, covering it all.
        self._writes = CommitGroup(redis, trailer=("WAIT", min_replicas, wait_ms) if min_replicas else None)

    # --- the web side ---

    def add_hubspot(self, raw: bytes, *, received_at: float) -> str:
        """Store a validated HubSpot batch as received; return the entry id."""
        return self._add(KIND_HUBSPOT, raw, received_at)

    def add_events(self, events: Sequence[CrmEvent], *, received_at: float) -> str:
        """Store parsed events (workflow actions, forms); return the entry id."""
        records = [event.as_record() for event in events]
        try:
            body = orjson.dumps(records)
        except orjson.JSONEncodeError:
            # orjson refuses integers beyond 64 bits, which a caller other than the JSON parser could pass.
            body = json.dumps(records, separators=(",", ":")).encode()
        return self._add(KIND_EVENTS, body, received_at)

    def add_associations(self, items: Sequence[tuple[str, AssociationRequest]], *, received_at: float) -> str:
        """Store validated direct-API associations with the ids already given to the caller."""
        return self._add(KIND_ASSOCIATIONS, associations_body(items), received_at)

    def held_answer(self, idempotency_key: str) -> HeldAnswer | None:
        """The answer an Idempotency-Key already holds, or None (a fast path: the add checks again, atomically)."""
        with store_errors():
            raw = self._redis.get(self._keys.idempotency(idempotency_key))
        return HeldAnswer.loads(raw) if raw else None  # type: ignore[arg-type]

    def add_associations_once(
        self,
        items: Sequence[tuple[str, AssociationRequest]],
        *,
        received_at: float,
        idempotency_key: str,
        answer: HeldAnswer,
        ttl_s: int = IDEMPOTENCY_TTL_S,
    ) -> HeldAnswer | None:
        """Store the associations and ``answer`` under ``idempotency_key`` in one atomic step.

        Returns None when they were stored now, or the answer the key already held (nothing is stored
        then). Raises StoreUnavailableError (StoreFullError) when Redis refuses: then neither was stored.
        """
        fields = self._fields(KIND_ASSOCIATIONS, associations_body(items), received_at)
        flat: list[Any] = [value for pair in fields.items() for value in pair]
        with tracing.inbox_add(KIND_ASSOCIATIONS), store_errors():
            stored, value = self._scripts.idempotent_add(
                keys=[self._keys.idempotency(idempotency_key), self._keys.inbox],
                args=[answer.dumps(), ttl_s, *flat],
            )
            replicas = self._redis.wait(self._min_replicas, self._wait_ms) if self._min_replicas else 0
        if int(stored) == 1 and int(replicas) < self._min_replicas:
            raise NotReplicatedError(idempotency_key[:40], replicas=int(replicas), wanted=self._min_replicas)
        return None if int(stored) == 1 else HeldAnswer.loads(value)

    def _fields(self, kind: str, body: bytes, received_at: float) -> dict[str, Any]:
        fields = {"kind": kind, "body": body, "at": repr(received_at), "rules": self._rules_tag()}
        traceparent = tracing.traceparent()
        if traceparent:  # only with tracing on: the request's span, for the expansion and the drains to follow
            fields[tracing.ENTRY_FIELD] = traceparent
        return fields

    def _add(self, kind: str, body: bytes, received_at: float) -> str:
        fields = self._fields(kind, body, received_at)
        command: list[Any] = ["XADD", self._keys.inbox, "*"]
        for pair in fields.items():
            command.extend(pair)
        with tracing.inbox_add(kind) as span, store_errors():
            entry_id, replicas = self._writes.execute(*command)
            if span is not None:
                span.set_attribute("messaging.message.id", text(entry_id))
        if self._min_replicas and int(replicas) < self._min_replicas:
            raise NotReplicatedError(text(entry_id), replicas=int(replicas), wanted=self._min_replicas)
        return text(entry_id)

    # --- the expander side ---

    def ack_target(self, entry_id: str) -> list[str]:
        """What enqueue.lua needs to acknowledge and delete an entry in the step that stores its work."""
        return [self._keys.inbox, GROUP, entry_id]

    def aside_target(self, entry: InboxEntry, body: bytes, reason: str) -> list[str | int]:
        """What enqueue.lua needs to keep part of ``entry`` (``body``, same kind) set aside with ``reason``."""
        return [
            self._keys.inbox_failed,
            FAILED_MAX,
            "kind",
            entry.kind,
            "body",
            body.decode("utf-8", "replace"),
            "at",
            repr(entry.received_at),
            "rules",
            entry.rules_tag,
            "entry",
            entry.entry_id,
            "reason",
            reason[:500],
        ]

    def ensure_group(self) -> None:
        """Create the consumer group (and the stream) unless they exist; from id 0, so nothing added is missed."""
        with store_errors():
            try:
                self._redis.xgroup_create(self._keys.inbox, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def read(self, consumer: str, *, count: int, block_ms: int, own_pending: bool = False) -> list[InboxEntry]:
        """New entries for ``consumer``, waiting up to ``block_ms`` for the first one.

        With ``own_pending``, the entries already delivered to ``consumer`` and not acknowledged instead
        (what it was holding when Redis went away, or when a process of the same name stopped), at once.
        """
        with store_errors():
            try:
                answer = self._redis.xreadgroup(
                    GROUP,
                    consumer,
                    {self._keys.inbox: "0" if own_pending else ">"},
                    count=count,
                    block=None if own_pending else max(block_ms, 1),
                )
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # The stream or its group was deleted (a flushed Redis): make them again, nothing was lost.
                self.ensure_group()
                return []
        streams: list[Any] = list(answer or [])  # in RESP2, [[stream, [(id, fields), ...]]]
        found = [(entry_id, fields) for _, messages in streams for entry_id, fields in messages if fields]
        if not own_pending:
            return [_entry(entry_id, fields) for entry_id, fields in found]
        # Read again, so delivered again: the count is what stops an entry that crashes its reader for ever.
        deliveries = self._deliveries([entry_id for entry_id, _ in found])
        return [_entry(entry_id, fields, *deliveries.get(text(entry_id), (1, 0))) for entry_id, fields in found]

    def reclaim(self, consumer: str, *, count: int) -> list[InboxEntry]:
        """Entries pending longer than the claim idle time (their reader died), now ``consumer``'s."""
        with store_errors():
            try:
                answer = self._redis.xautoclaim(
                    self._keys.inbox, GROUP, consumer, self._claim_idle_ms, start_id=self._claim_cursor, count=count
                )
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                return []
            self._claim_cursor = text(answer[0])  # "0-0" once the whole pending list has been scanned
            claimed = [(entry_id, fields) for entry_id, fields in answer[1] if fields]
        if not claimed:
            return []
        deliveries = self._deliveries([entry_id for entry_id, _ in claimed])
        return [_entry(entry_id, fields, *deliveries.get(text(entry_id), (1, 0))) for entry_id, fields in claimed]

    def _deliveries(self, entry_ids: Sequence[Any]) -> dict[str, tuple[int, int]]:
        """Per pending entry: times delivered (one XPENDING each: a range could be crowded out), and excused."""
        if not entry_ids:
            return {}
        with store_errors():
            pipe = self._redis.pipeline(transaction=False)
            for entry_id in entry_ids:
                pipe.xpending_range(self._keys.inbox, GROUP, min=entry_id, max=entry_id, count=1)
            for entry_id in entry_ids:
                pipe.get(self._keys.inbox_excused(text(entry_id)))
            answers = pipe.execute()
        n = len(entry_ids)
        excused = {text(entry_id): int(raw or 0) for entry_id, raw in zip(entry_ids, answers[n:], strict=True)}
        pending = [p for answer in answers[:n] for p in answer]
        return {
            text(p["message_id"]): (int(p["times_delivered"]), excused.get(text(p["message_id"]), 0)) for p in pending
        }

    def excuse(self, entry_ids: Sequence[str]) -> None:
        """Record that the next delivery of each entry is caused by Redis trouble, not by the entry.

        An expander that lost Redis while holding entries reads them again once it is back, and every
        read counts as a delivery: without this, five outages would set a sound entry aside.
        """
        if not entry_ids:
            return
        with store_errors():
            pipe = self._redis.pipeline(transaction=False)
            for entry_id in entry_ids:
                key = self._keys.inbox_excused(entry_id)
                pipe.incr(key)
                pipe.expire(key, EXCUSED_TTL_S)
            pipe.execute()

    def fail(self, entry: InboxEntry, reason: str) -> bool:
        """Set an entry aside in ``inbox:failed`` with ``reason`` (atomically, only while it is still pending).

        Returns False when it was already gone: another worker expanded or set it aside in the meantime.
        """
        with store_errors():
            moved = self._scripts.set_aside(
                keys=[self._keys.inbox, self._keys.inbox_failed],
                args=[GROUP, entry.entry_id, reason[:500], FAILED_MAX],
            )
        if moved:
            log.error("inbox entry set aside", extra={"entry": entry.entry_id, "kind": entry.kind, "reason": reason})
        return bool(moved)

    def set_aside_delivery(
        self,
        source: str,
        body: Any,
        delivery_id: str,
        reason: str,
        *,
        received_at: float,
        counters: Sequence[Op] = (),
    ) -> str:
        """Keep a workflow or form delivery HubLink cannot use in ``inbox:failed`` with ``reason``; its id.

        A sender that proved who it is never loses a whole delivery to one bad field: it is answered 2xx,
        and an operator lists and replays what was kept (``hublink inbox list|replay``).
        ``delivery_id`` is what deduplicates a replay (the sender's id, or a digest of the body).
        """
        payload = json.dumps({"source": source, "body": body, "id": delivery_id}, separators=(",", ":"))
        fields = {**self._fields(KIND_DELIVERY, payload.encode(), received_at), "reason": reason[:500]}
        with store_errors():
            pipe = self._redis.pipeline(transaction=True)
            pipe.xadd(self._keys.inbox_failed, fields, maxlen=FAILED_MAX, approximate=True)  # type: ignore[arg-type]
            for key, field, n, _ in counters:
                pipe.hincrby(key, field, n)
            failed_id = pipe.execute()[0]
        log.warning("delivery set aside as unusable", extra={"entry": text(failed_id), "reason": reason[:300]})
        return text(failed_id)

    # --- operators ---

    def failed_entries(self, limit: int = 100) -> list[dict[str, str]]:
        """The newest entries set aside (id, original entry id, kind, reason, when accepted), newest first."""
        with store_errors():
            rows: list[Any] = list(self._redis.xrevrange(self._keys.inbox_failed, count=limit) or [])
        out = []
        for failed_id, fields in rows:
            out.append(
                {
                    "id": text(failed_id),
                    "entry": text(fields.get(b"entry", b"")),
                    "kind": text(fields.get(b"kind", b"")),
                    "reason": text(fields.get(b"reason", b"")),
                    "at": text(fields.get(b"at", b"")),
                }
            )
        return out

    def replay_failed(self, failed_ids: Sequence[str]) -> int:
        """Put entries set aside back in the inbox (as new entries), each atomically; return how many."""
        replayed = 0
        with store_errors():
            for failed_id in failed_ids:
                found: list[Any] = list(self._redis.xrange(self._keys.inbox_failed, failed_id, failed_id) or [])
                if not found or not found[0][1]:
                    continue
                fields = {k: v for k, v in found[0][1].items() if k not in (b"entry", b"reason")}
                pipe = self._redis.pipeline(transaction=True)
                pipe.xadd(self._keys.inbox, fields)
                pipe.xdel(self._keys.inbox_failed, failed_id)
                pipe.execute()
                replayed += 1
        return replayed

    def depth(self) -> int:
        """Entries not yet expanded (read or not)."""
        with store_errors():
            return int(self._redis.xlen(self._keys.inbox))

    def failed(self) -> int:
        """Entries set aside."""
        with store_errors():
            return int(self._redis.xlen(self._keys.inbox_failed))


def _entry(entry_id: Any, fields: dict[Any, Any], deliveries: int = 1, excused: int = 0) -> InboxEntry:
    """An InboxEntry from XREADGROUP/XAUTOCLAIM's answer (bytes keys and values)."""
    at = fields.get(b"at", b"0")
    try:
        received_at = float(at)
    except ValueError:
        received_at = 0.0
    return InboxEntry(
        entry_id=text(entry_id),
        kind=text(fields.get(b"kind", b"")),
        body=fields.get(b"body", b""),
        received_at=received_at,
        deliveries=deliveries,
        rules_tag=text(fields.get(b"rules", b"")),
        excused=excused,
        traceparent=text(fields.get(b"tp", b"")),
    )
