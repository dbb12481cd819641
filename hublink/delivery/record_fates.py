"""RecordFatesGate: work naming a deleted record ends without a call; work naming a merged id goes to the new one.

HubSpot's lifecycle events say what became of records (``hublink.intake.record_fates`` keeps it). Before the
call, the gate reads the fates of the records a claim names, in one read (none when the portal has no fates):

- work naming a **merged** id is re-targeted to the record the merge made (its history says so, and so its
  trace): pending, retrying and replayed work alike, whatever was queued before the merge, because it is
  re-targeted when it is claimed rather than rewritten where it waits;
- work naming a **deleted** record ends at once as ``record_deleted`` (a dead letter, kept should the
  record be restored; no call, no attempt spent, not counted as a failure).

After the call, a pair HubSpot answered on a merged record's new id (instead of the id asked for) is
linked, and the merge it shows kept. An ``INVALID_OBJECT_IDS`` answer past the fresh-record grace is checked
by reading the record (``docs/reference/hubspot.md`` §9.2, §9.3): a 404, then the record read with
``archived=true``, confirms it deleted (its work ends ``record_deleted`` and the fate is kept for other work);
a 404 both ways is an id HubSpot never had (its refusal stands); an answer for another id is a merge (the
work goes back, no attempt spent, and its next claim re-targets it). Inside the grace a record may not be
visible yet: the usual retry, and nothing is read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, Protocol

from hublink.delivery.batch import Batch
from hublink.delivery.credentials import Credential
from hublink.delivery.gates import GO, Gate, LimiterGate, Verdict
from hublink.delivery.hubspot import ECHOED
from hublink.delivery.outcomes import Result, association_of, invalid_ids, request_ops
from hublink.domain.associations import AssociationRequest
from hublink.domain.errors import DeliveryError, NotFoundError, RecordDeletedError, ValidationRejectedError
from hublink.domain.record_fates import RecordFate
from hublink.domain.times import iso
from hublink.intake.record_fates import FateBook, Fates
from hublink.lanes import Claimed
from hublink.store.counters import CounterOps, Op

log = logging.getLogger("hublink.delivery.drain")

#: Most records one batch reads to confirm an ``INVALID_OBJECT_IDS`` (each read takes a rate-limit token).
MAX_CONFIRM_READS = 10
#: The history entry's ``outcome`` of work re-targeted to a merged record.
MERGED_OUTCOME = "merged"


class RecordReader(Protocol):
    """Reads one record (``hublink.delivery.hubspot.HubSpotClient.read_object``)."""

    def read_object(
        self,
        token: str,
        object_type: str,
        object_id: str,
        properties: Iterable[str],
        *,
        base_url: str | None = None,
        archived: bool = False,
    ) -> dict[str, Any]:
        """The record's properties (``archived``: only a deleted one); raises NotFoundError when there is none."""
        ...


def retargeted(item: Claimed, fates: Fates, now: float) -> bool:
    """Point ``item`` at the records its merged ids became (its history says so once); True if it moved."""
    request = association_of(item)
    new_from = fates.new_id((request.from_object_type, request.from_object_id))
    new_to = fates.new_id((request.to_object_type, request.to_object_id))
    if new_from is None and new_to is None:
        return False
    moved = replace(
        request, from_object_id=new_from or request.from_object_id, to_object_id=new_to or request.to_object_id
    )
    item.request = moved
    detail = (
        f"{request.from_object_type}/{request.from_object_id} -> {request.to_object_type}/{request.to_object_id} "
        f"now {moved.from_object_type}/{moved.from_object_id} -> {moved.to_object_type}/{moved.to_object_id} "
        "(merged in HubSpot)"
    )
    if not any(h.get("outcome") == MERGED_OUTCOME and h.get("message") == detail for h in item.history):
        item.history = [*item.history, {"at": iso(now * 1000), "outcome": MERGED_OUTCOME, "message": detail}]
    return True


def deleted_side(request: AssociationRequest, fates: Fates) -> str | None:
    """The record of ``request`` that was deleted (``contacts/1``), or None."""
    for object_type, object_id in (
        (request.from_object_type, request.from_object_id),
        (request.to_object_type, request.to_object_id),
    ):
        if (object_type, object_id) in fates.deleted:
            return f"{object_type}/{object_id}"
    return None


class RecordFatesGate(Gate):
    """Applies the records' fates to a claim before the call, and confirms ``INVALID_OBJECT_IDS`` after it."""

    def __init__(
        self,
        fates: FateBook,
        *,
        reader: RecordReader | None = None,
        limiter: LimiterGate | None = None,
        fresh_record_grace_s: float = 120.0,
        clock: Callable[[], float] = time.time,
        metrics: CounterOps | None = None,
    ) -> None:
        self._fates = fates
        self._reader = reader
        self._limiter = limiter
        #: Every read is a HubSpot request and is counted as one (``hublink_hubspot_requests_total``).
        self._metrics = metrics
        self._grace_s = fresh_record_grace_s
        self._clock = clock

    def before_call(self, batch: Batch) -> Verdict:
        """Re-target work naming merged ids; answer work naming deleted records as ``record_deleted``."""
        if batch.is_lookup or not batch.items:
            return GO
        requests = [association_of(item) for item in batch.items]
        records = [
            record
            for r in requests
            for record in ((r.from_object_type, r.from_object_id), (r.to_object_type, r.to_object_id))
        ]
        fates = self._fates.look(batch.portal, records)
        if not fates:
            return GO
        now = self._clock()
        keep: list[Claimed] = []
        moved = 0
        for item in batch.items:
            moved += retargeted(item, fates, now)
            record = deleted_side(association_of(item), fates)
            if record is None:
                keep.append(item)
                continue
            batch.sent.answer([item], RecordDeletedError(record))
            log.info(
                "association names a deleted record", extra={"association_id": item.association_id, "record": record}
            )
        if moved:
            log.info("work re-targeted to merged records", extra={"lane": batch.lane, "moved": moved})
        batch.items = keep
        return GO

    def after_call(self, batch: Batch) -> None:
        """Recognise answers on merged records; read the records an ``INVALID_OBJECT_IDS`` named."""
        if batch.is_lookup or not batch.called:
            return
        self._echoes(batch)
        if self._reader is None or self._limiter is None or batch.credential is None:
            return
        self._confirm(batch)

    def _echoes(self, batch: Batch) -> None:
        """A pair HubSpot answered on the new id of a merged one is linked (``merged_ids`` as an alias).

        The new id is the one the fates know, or else the one answer that differs from the pair on one side
        only, which is then kept as the merge it shows.
        """
        sent, now = batch.sent, self._clock()
        missing = [
            index
            for index in range(sent.call_from, len(sent.answers))
            if (error := sent.answers[index].error) is not None and error.detail.context.get(ECHOED)
        ]
        if not missing:
            return
        requests = {index: association_of(sent.answers[index].item) for index in missing}
        known = self._fates.look(
            batch.portal,
            [
                side
                for r in requests.values()
                for side in ((r.from_object_type, r.from_object_id), (r.to_object_type, r.to_object_id))
            ],
        )
        merged = dict(known.merged or {})
        learnt: list[RecordFate] = []
        for index in missing:
            request, error = requests[index], sent.answers[index].error
            assert error is not None
            echoed = {
                (str(p[0]), str(p[1]))
                for p in error.detail.context[ECHOED]
                if isinstance(p, list | tuple) and len(p) == 2
            }
            from_side = (request.from_object_type, request.from_object_id)
            to_side = (request.to_object_type, request.to_object_id)
            pair = (merged.get(from_side, request.from_object_id), merged.get(to_side, request.to_object_id))
            if pair == request.pair or pair not in echoed:
                candidates = [e for e in echoed if (e[0] == request.from_object_id) != (e[1] == request.to_object_id)]
                if len(candidates) != 1:
                    continue  # nothing known, nothing certain: the usual retry
                [(new_from, new_to)] = candidates
                side, new_id = (to_side, new_to) if new_from == request.from_object_id else (from_side, new_from)
                merged[side] = new_id
                learnt.append(RecordFate(batch.portal, side[0], side[1], "merged", new_id))
            item = sent.answers[index].item
            retargeted(item, Fates(merged=merged), now)
            sent.answers[index] = Result(item, None)
        if learnt:
            self._fates.record(learnt)
            log.info("merges learnt from HubSpot's answers", extra={"lane": batch.lane, "records": len(learnt)})

    def _confirm(self, batch: Batch) -> None:
        """Read the records an ``INVALID_OBJECT_IDS`` named: archived ends the work, merged sends it back."""
        assert batch.credential is not None
        sent, now = batch.sent, self._clock()
        suspects: dict[tuple[str, str], list[int]] = {}
        for index in range(sent.call_from, len(sent.answers)):
            result = sent.answers[index]
            error = result.error
            if not isinstance(error, ValidationRejectedError | NotFoundError) or not _past_grace(
                result, now, self._grace_s
            ):
                continue
            request = association_of(result.item)
            for object_type, object_id, _ in invalid_ids(error):
                for side_type, side_id in (
                    (request.from_object_type, request.from_object_id),
                    (request.to_object_type, request.to_object_id),
                ):
                    if side_id == object_id and object_type in (None, side_type):
                        suspects.setdefault((side_type, side_id), []).append(index)
        if not suspects:
            return
        learnt: list[RecordFate] = []
        ended: dict[int, DeliveryError] = {}
        back: set[int] = set()
        for (object_type, object_id), indexes in list(suspects.items())[:MAX_CONFIRM_READS]:
            found = self._read(batch.credential, object_type, object_id, sent.ops)
            if found is None:
                continue
            if found == "":
                learnt.append(RecordFate(batch.portal, object_type, object_id, "deleted"))
                for index in indexes:
                    ended[index] = RecordDeletedError(f"{object_type}/{object_id}", how="a read found it archived")
            elif found != object_id:
                learnt.append(RecordFate(batch.portal, object_type, object_id, "merged", found))
                back.update(indexes)
        if learnt:
            self._fates.record(learnt)
            log.info("records' fates confirmed by reads", extra={"lane": batch.lane, "records": len(learnt)})
        if back:
            sent.back += [sent.answers[i].item for i in sorted(back) if i not in ended]
            sent.back_due_ms = sent.back_due_ms or int(now * 1000)
        sent.answers = [
            Result(r.item, ended[i]) if i in ended else r
            for i, r in enumerate(sent.answers)
            if i in ended or i not in back
        ]

    def _read(self, credential: Credential, object_type: str, object_id: str, ops: list[Op]) -> str | None:
        """The id HubSpot answers for the record, "" when it is archived, or None (not read, or not known).

        Each read made adds its request counters to ``ops`` (settled with the batch).
        """
        assert self._reader is not None
        assert self._limiter is not None
        for archived in (False, True):
            if self._limiter.take_for(credential):
                return None  # no token near: the usual retry will ask again
            try:
                properties = self._reader.read_object(
                    credential.token,
                    object_type,
                    object_id,
                    ["hs_object_id"],
                    base_url=credential.base_url,
                    archived=archived,
                )
            except NotFoundError as exc:
                # A 404 is a deleted record or one that never was: only the archived read tells them apart.
                ops.extend(request_ops(self._metrics, "read_object", exc.status, exc, self._clock()))
                continue
            except DeliveryError as exc:
                ops.extend(request_ops(self._metrics, "read_object", exc.status, exc, self._clock()))
                record = f"{object_type}/{object_id}"
                log.info("record read failed", extra={"record": record, "error": type(exc).__name__})
                return None
            ops.extend(request_ops(self._metrics, "read_object", 200, None, self._clock()))
            if archived:
                return ""
            found = properties.get("hs_object_id")
            return str(found) if found is not None else object_id
        return None  # no such record, live or archived: HubSpot's refusal stands


def _past_grace(result: Result, now: float, grace_s: float) -> bool:
    """True when the work's event is older than the fresh-record grace (a 404 then means gone, not late)."""
    request = result.item.request
    event_time = request.occurred_at or request.received_at or result.item.first_seen_ms / 1000
    return now - event_time >= grace_s
