"""Records' fates: lifecycle events read, kept, and applied by the drain (merged ids re-targeted, deleted ends)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytest

from hublink.delivery.hubspot import ECHOED, CallResult, HubSpotClient
from hublink.delivery.record_fates import MERGED_OUTCOME, RecordFatesGate
from hublink.domain import retry_policy as rp
from hublink.domain.associations import AssociationRequest
from hublink.domain.errors import HubSpotErrorDetail, NotFoundError, RecordDeletedError, ValidationRejectedError
from hublink.domain.events import CrmEvent
from hublink.domain.record_fates import RECORD_DELETED, RECORD_MERGED, RecordFate, batch_fates, fates_of
from hublink.intake.record_fates import DELETED_TTL_S, MemoryRecordFates
from hublink.lanes import MemoryLanes
from tests.unit.test_drain import LANE, START, Clock, FakeHubSpot, association, drainer
from tests.unit.test_gates import claimed

PORTAL = "62515"
PORTAL_LANE = f"{PORTAL}|deals|contacts"


def event(subscription: str, **payload: object) -> CrmEvent:
    """A HubSpot event of ``subscription`` with ``payload`` (its ``objectId`` is the event's object id)."""
    object_id = payload.get("objectId")
    return CrmEvent(
        source="hubspot",
        payload={"subscriptionType": subscription, **payload},
        portal_id=PORTAL,
        event_id="1",
        subscription_type=subscription,
        object_id=str(object_id) if object_id is not None else None,
    )


def merge(object_type: str, new_id: int, primary: int, *merged: int) -> CrmEvent:
    """A ``<type>.merge`` event as HubSpot sends it (``objectId`` is the new record)."""
    return event(
        f"{object_type}.merge",
        objectId=new_id,
        newObjectId=new_id,
        primaryObjectId=primary,
        mergedObjectIds=list(merged),
    )


def in_portal(n: int, *, to: int | None = None, at: float = START) -> AssociationRequest:
    """deals/n → contacts/(to or 1000 + n) of the portal 62515, received at ``at``."""
    return AssociationRequest.create(
        from_object_type="deals",
        from_object_id=str(n),
        to_object_type="contacts",
        to_object_id=str(to if to is not None else 1000 + n),
        portal_id=PORTAL,
        source="hubspot",
        received_at=at,
    )


class TestEvents:
    """Which events report a fate, and what each says."""

    def test_a_deletion_a_restore_and_a_merge(self) -> None:
        """A deletion and a restore name their record; a merge points the primary and the merged ids at the new one."""
        assert fates_of(event("contact.deletion", objectId=5)) == [RecordFate(PORTAL, "contacts", "5", "deleted")]
        assert fates_of(event("deal.restore", objectId=6)) == [RecordFate(PORTAL, "deals", "6", "restored")]
        assert fates_of(merge("company", 900, 1, 2, 3)) == [
            RecordFate(PORTAL, "companies", i, "merged", "900") for i in ("2", "3", "1")
        ]

    def test_a_merge_that_kept_the_primarys_id_moves_only_the_others(self) -> None:
        """Deals and tickets used to keep the primary's id: it is not pointed at itself."""
        assert fates_of(merge("deal", 1, 1, 2)) == [RecordFate(PORTAL, "deals", "2", "merged", "1")]

    @pytest.mark.parametrize(
        "raw",
        [
            event("deal.creation", objectId=1),
            event("deal.merge", objectId="x"),
            event("widget.deletion", objectId=1),
            CrmEvent(source="workflow", payload={"objectId": 1}, subscription_type="deal.deletion"),
        ],
    )
    def test_other_events_report_nothing(self, raw: CrmEvent) -> None:
        """Creations, unreadable merges, unknown types and other sources report no fate."""
        assert fates_of(raw) == []

    def test_a_merges_own_deletions_are_merges(self) -> None:
        """HubSpot's deletion of a merged id, in the same batch, is the merge's: not a deletion."""
        fates, outcomes = batch_fates(
            [
                event("contact.deletion", objectId=2),
                merge("contact", 900, 1, 2),
                event("contact.deletion", objectId=3),
            ]
        )
        assert [(f.object_id, f.fate) for f in fates] == [("2", "merged"), ("1", "merged"), ("3", "deleted")]
        assert outcomes == {0: RECORD_MERGED, 1: RECORD_MERGED, 2: RECORD_DELETED}


class TestTheBook:
    """What the fates store keeps and how long."""

    def test_a_deletion_is_kept_for_the_portal_and_for_work_naming_no_portal(self) -> None:
        """Kept under the event's portal and under ``_``; forgotten after its lifetime; other portals unaffected."""
        clock = Clock()
        book = MemoryRecordFates(clock)
        book.record([RecordFate(PORTAL, "deals", "1", "deleted")])
        assert book.look(PORTAL, [("deals", "1"), ("deals", "2")]).deleted == {("deals", "1")}
        assert book.look(None, [("deals", "1")]).deleted == {("deals", "1")}
        assert not book.look("999", [("deals", "1")])
        clock.now += DELETED_TTL_S + 1
        assert not book.look(PORTAL, [("deals", "1")])

    def test_a_portal_without_fates_costs_no_read_of_its_records(self) -> None:
        """Nothing kept for the portal: the claim's records are not read at all."""
        book = MemoryRecordFates(Clock())
        assert not book.look(PORTAL, [("deals", "1")])
        assert book.reads == 0

    def test_a_deletion_after_a_merge_of_the_same_id_leaves_the_merge(self) -> None:
        """HubSpot's deletion of a merged id, in a later batch, does not turn the merge into a deletion."""
        book = MemoryRecordFates(Clock())
        book.record([RecordFate(PORTAL, "contacts", "2", "merged", "900")])
        book.record([RecordFate(PORTAL, "contacts", "2", "deleted")])
        fates = book.look(PORTAL, [("contacts", "2")])
        assert fates.new_id(("contacts", "2")) == "900" and not fates.deleted

    def test_merges_are_followed_to_the_last_record(self) -> None:
        """1 merged into 5, 5 into 9: work naming 1 goes to 9; a merge into a deleted record is deleted."""
        book = MemoryRecordFates(Clock())
        book.record([RecordFate(PORTAL, "contacts", "1", "merged", "5")])
        book.record([RecordFate(PORTAL, "contacts", "5", "merged", "9")])
        book.record(
            [RecordFate(PORTAL, "contacts", "3", "merged", "4"), RecordFate(PORTAL, "contacts", "4", "deleted")]
        )
        fates = book.look(PORTAL, [("contacts", "1"), ("contacts", "3")])
        assert fates.new_id(("contacts", "1")) == "9"
        assert ("contacts", "3") in fates.deleted

    def test_a_restore_forgets_the_deletion(self) -> None:
        """A restored record's work is sent again."""
        book = MemoryRecordFates(Clock())
        book.record([RecordFate(PORTAL, "deals", "1", "deleted")])
        book.record([RecordFate(PORTAL, "deals", "1", "restored")])
        assert not book.look(PORTAL, [("deals", "1")])


def deleted(book: MemoryRecordFates, *records: tuple[str, str]) -> None:
    """Mark ``records`` of the portal deleted."""
    book.record([RecordFate(PORTAL, t, i, "deleted") for t, i in records])


class TestTheGate:
    """Before the call: deleted records' work answered, merged ids re-targeted."""

    def test_work_naming_a_deleted_record_is_answered_record_deleted_and_not_sent(self) -> None:
        """deals/1 deleted: its work is answered RecordDeletedError; deals/2's is left to send."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        lanes.add(in_portal(1))
        lanes.add(in_portal(2))
        book = MemoryRecordFates(clock)
        deleted(book, ("deals", "1"))
        batch = claimed(lanes, PORTAL_LANE)
        assert RecordFatesGate(book, clock=clock).before_call(batch).value == "go"
        [answer] = batch.sent.answers
        assert isinstance(answer.error, RecordDeletedError) and "deals/1" in answer.error.detail.message
        assert [item.request.from_object_id for item in batch.items] == ["2"]

    def test_work_naming_a_merged_id_is_re_targeted_once_with_a_history_entry(self) -> None:
        """contacts/1001 merged into 7: the work names 7, and its history says so once however often claimed."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        lanes.add(in_portal(1))
        book = MemoryRecordFates(clock)
        book.record([RecordFate(PORTAL, "contacts", "1001", "merged", "7")])
        gate = RecordFatesGate(book, clock=clock)
        batch = claimed(lanes, PORTAL_LANE)
        gate.before_call(batch)
        gate.before_call(batch)
        [item] = batch.items
        assert (item.request.from_object_id, item.request.to_object_id) == ("1", "7")
        [entry] = [h for h in item.history if h["outcome"] == MERGED_OUTCOME]
        assert "contacts/1001" in entry["message"] and "contacts/7" in entry["message"]


class TestTheDrain:
    """The drain with the fates: no call for deleted records' work, calls on merged records' new ids."""

    def test_a_deleted_records_work_is_dead_lettered_record_deleted_without_a_call_or_a_failure(self) -> None:
        """Only the live pair is sent; the other is a record_deleted dead letter, counted apart from failures."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        gone = lanes.add(association(1))
        lanes.add(association(2))
        book = MemoryRecordFates(clock)
        book.record([RecordFate(None, "contacts", "1001", "deleted")])
        hubspot = FakeHubSpot()
        report = drainer(lanes, hubspot, clock, fates=book).drain(LANE)
        assert hubspot.calls == [("single", [("2", "1002")])]
        letter = lanes.dead_letters[gone]
        assert (letter.reason, letter.category, letter.attempt_count) == ("record_deleted", "RECORD_DELETED", 0)
        names = {op[0] + ":" + op[1] for op in lanes.counters}
        assert "hl:m:associations_record_deleted:source=api" in names
        assert not any("associations_failed" in n or "associations_dead_lettered" in n for n in names)
        assert (report.linked, report.dead) == (1, 1)

    def test_merged_ids_are_sent_as_the_new_record(self) -> None:
        """Work queued before a merge reaches HubSpot on the new id and ends linked."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        lanes.add(association(1))
        book = MemoryRecordFates(clock)
        book.record([RecordFate(None, "deals", "1", "merged", "77")])
        hubspot = FakeHubSpot()
        report = drainer(lanes, hubspot, clock, fates=book).drain(LANE)
        assert hubspot.calls == [("single", [("77", "1001")])]
        assert report.linked == 1 and not lanes.records


def invalid(object_type: str, object_id: str) -> ValidationRejectedError:
    """HubSpot's 400 naming one invalid id."""
    return ValidationRejectedError(
        HubSpotErrorDetail(
            status=400,
            category="VALIDATION_ERROR",
            message="invalid ids",
            context={"INVALID_OBJECT_IDS": [f"{object_type}={object_id} is not valid"]},
        )
    )


class Reader(FakeHubSpot):
    """The fake HubSpot, answering record reads: 404 for ``gone``, another id for ``merged``."""

    def __init__(
        self, gone: Sequence[str] = (), merged: dict[str, str] | None = None, unknown: Sequence[str] = ()
    ) -> None:
        super().__init__()
        self.gone = set(gone)
        self.merged = merged or {}
        self.unknown = set(unknown)
        self.reads: list[str] = []

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
        """GET the record: a gone one only with ``archived``, an unknown one never, a merged one as the new record."""
        self.reads.append(f"{object_type}/{object_id}" + (" archived" if archived else ""))
        if object_id in self.unknown or (object_id in self.gone) != archived:
            raise NotFoundError(HubSpotErrorDetail(status=404, message="not found"))
        return {"hs_object_id": self.merged.get(object_id, object_id)}


class TestReadsConfirm:
    """An INVALID_OBJECT_IDS past the fresh-record grace is read: 404 ends the work, another id re-targets it."""

    def refused(self, object_type: str, object_id: str) -> list[Callable[[Sequence[tuple[str, str]]], CallResult]]:
        """A script answering the first call with a 400 naming one id, then linking."""

        def answer(pairs: Sequence[tuple[str, str]]) -> CallResult:
            """Refuse the call naming the id."""
            raise invalid(object_type, object_id)

        return [answer]

    def test_a_404_past_the_grace_ends_the_work_record_deleted(self) -> None:
        """contacts/1001 answered invalid, read 404, found archived: dead letter record_deleted, the fate kept."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        gone = lanes.add(association(1, at=START - 600))
        hubspot = Reader(gone=["1001"])
        hubspot.script = self.refused("CONTACT", "1001")
        book = MemoryRecordFates(clock)
        drainer(lanes, hubspot, clock, fates=book).drain(LANE)
        assert hubspot.reads == ["contacts/1001", "contacts/1001 archived"]
        assert lanes.dead_letters[gone].reason == "record_deleted"
        assert book.look(None, [("contacts", "1001")]).deleted == {("contacts", "1001")}

    def test_a_read_answering_another_id_is_a_merge_and_the_work_goes_there(self) -> None:
        """contacts/1001 answered invalid, read as contacts/55: sent again on 55 without spending an attempt."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        lanes.add(association(1, at=START - 600))
        hubspot = Reader(merged={"1001": "55"})
        hubspot.script = self.refused("CONTACT", "1001")
        book = MemoryRecordFates(clock)
        report = drainer(lanes, hubspot, clock, fates=book).drain(LANE)
        assert [pairs for _, pairs in hubspot.calls] == [[("1", "1001")], [("1", "55")]]
        assert report.linked == 1 and not lanes.dead_letters

    def test_an_id_hubspot_never_had_keeps_hubspots_refusal(self) -> None:
        """404 both ways: the usual dead letter naming the invalid id, counted as a failure; no fate kept."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        dead = lanes.add(association(1, at=START - 600))
        hubspot = Reader(unknown=["1001"])
        hubspot.script = self.refused("CONTACT", "1001")
        book = MemoryRecordFates(clock)
        drainer(lanes, hubspot, clock, fates=book).drain(LANE)
        letter = lanes.dead_letters[dead]
        assert (letter.reason, letter.category) == ("permanent: ValidationRejectedError", "VALIDATION_ERROR")
        assert not book.look(None, [("contacts", "1001")])

    def test_inside_the_grace_nothing_is_read(self) -> None:
        """A fresh record may not be visible yet: the usual retry, no read."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        association_id = lanes.add(association(1))
        hubspot = Reader(gone=["1001"])
        hubspot.script = self.refused("CONTACT", "1001")
        drainer(lanes, hubspot, clock, fates=MemoryRecordFates(clock)).drain(LANE)
        assert hubspot.reads == [] and lanes.records[association_id].attempts == 1


def test_the_retry_policy_dead_letters_a_deleted_record_at_once() -> None:
    """RecordDeletedError: dead letter ``record_deleted``, whatever the attempts or age."""
    decision = rp.classify(
        RecordDeletedError("deals/1"), attempts=0, age_s=0.0, policy=rp.RetryPolicy(), rng=random.Random()
    )
    assert decision == rp.DeadLetter("record_deleted")


class TestEchoes:
    """A pair HubSpot answered on a merged record's new id is linked, the merge kept."""

    def test_the_client_keeps_what_hubspot_answered_instead_of_a_pair(self) -> None:
        """Asked 1→1001, answered 77→1001: the pair is missing, its error lists the answer; a reverse is not listed."""
        body = {"results": [{"from": {"id": "77"}, "to": {"id": "1001"}}, {"from": {"id": "1002"}, "to": {"id": "2"}}]}
        result = HubSpotClient._parse_batch(body, [("1", "1001"), ("2", "1002")], None, None)
        error = result.failed[("1", "1001")]
        assert error.detail.context[ECHOED] == [["77", "1001"]]

    def test_an_answer_on_the_new_id_is_linked_and_the_merge_learnt(self) -> None:
        """deals/1 answered as deals/77: linked, no retry, and deals/1 is now known as merged into 77."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        lanes.add(association(1))
        lanes.add(association(2))
        hubspot = FakeHubSpot(script=[echoing({("1", "1001"): ("77", "1001")})])
        book = MemoryRecordFates(clock)
        report = drainer(lanes, hubspot, clock, fates=book).drain(LANE)
        assert (report.linked, report.retried, len(hubspot.calls)) == (2, 0, 1)
        assert book.look(None, [("deals", "1")]).new_id(("deals", "1")) == "77"

    def test_answers_that_could_be_either_are_linked_only_by_known_merges(self) -> None:
        """1→1001 and 3→1001 answered as 77→1001 and 78→1001: ambiguous, unless the merges are known."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        lanes.add(to_contact(1, 1001))
        lanes.add(to_contact(3, 1001))
        answer = echoing({("1", "1001"): ("77", "1001"), ("3", "1001"): ("78", "1001")})
        report = drainer(lanes, FakeHubSpot(script=[answer]), clock, fates=MemoryRecordFates(clock)).drain(LANE)
        assert (report.linked, report.retried) == (0, 2)

        clock = Clock()
        lanes, book = MemoryLanes(clock=clock), MemoryRecordFates(clock)
        lanes.add(to_contact(1, 1001))
        lanes.add(to_contact(3, 1001))

        def merged_meanwhile(pairs: Sequence[tuple[str, str]]) -> CallResult:
            """The merge events come in while the call is out."""
            book.record(
                [RecordFate(None, "deals", "1", "merged", "77"), RecordFate(None, "deals", "3", "merged", "78")]
            )
            return answer(pairs)

        report = drainer(lanes, FakeHubSpot(script=[merged_meanwhile]), clock, fates=book).drain(LANE)
        assert (report.linked, report.retried) == (2, 0)


def to_contact(n: int, to: int) -> AssociationRequest:
    """deals/n → contacts/to, naming no portal."""
    return AssociationRequest.create(
        from_object_type="deals",
        from_object_id=str(n),
        to_object_type="contacts",
        to_object_id=str(to),
        source="api",
        received_at=START,
    )


def echoing(instead: dict[tuple[str, str], tuple[str, str]]) -> Callable[[Sequence[tuple[str, str]]], CallResult]:
    """A batch answer as HubSpot's body, each pair of ``instead`` answered as its new pair."""

    def answer(pairs: Sequence[tuple[str, str]]) -> CallResult:
        """Parse the answer the way the client does."""
        results = [{"from": {"id": f}, "to": {"id": t}} for f, t in (instead.get(p, p) for p in pairs)]
        return HubSpotClient._parse_batch({"results": results}, pairs, None, None)

    return answer
