"""A displaced Primary: what HubLink's write of a single-valued type moved, read before the write.

On the in-memory twins: the read is made only for labelled creates naming a single-valued type, and what
the write moved is kept (the event history's entry in the real worker; a list here) and shown in a trace.
"""

from __future__ import annotations

import dataclasses
import random

from hublink.delivery.credentials import StaticCredentials
from hublink.delivery.displacements import (
    DISPLACED,
    Displacement,
    MemoryDisplacements,
    moved,
    watched,
)
from hublink.delivery.drain import DrainSettings, LaneDrainer
from hublink.delivery.rate_limit import MemoryLimiter
from hublink.domain import retry_policy as rp
from hublink.domain.associations import AssociationRequest, AssociationType
from hublink.domain.limits import RateLimit
from hublink.lanes import MemoryLanes
from hublink.ops.trace import timeline
from hublink.store.counters import CounterOps
from hublink.store.keys import Keys
from tests.unit.test_drain import START, Clock, FakeResolver
from tests.unit.test_drain_kinds import LabelledHubSpot

LANE = "_|deals|companies"
PRIMARY: AssociationType = ("HUBSPOT_DEFINED", 5)
UNLABELLED: AssociationType = ("HUBSPOT_DEFINED", 341)
CUSTOM: AssociationType = ("USER_DEFINED", 9)


def write(company: str, *types: AssociationType) -> AssociationRequest:
    """deals/7 → companies/``company`` with ``types`` (a labelled create)."""
    request = AssociationRequest.create(
        from_object_type="deals",
        from_object_id="7",
        to_object_type="companies",
        to_object_id=company,
        source="api",
        received_at=START,
    )
    return dataclasses.replace(request, types=tuple(types))


def drain(hubspot: LabelledHubSpot, *requests: AssociationRequest) -> MemoryDisplacements:
    """Drain the lane holding ``requests``; what was kept of displacements."""
    clock = Clock()
    lanes = MemoryLanes(clock=clock)
    for request in requests:
        lanes.add(request)
    kept = MemoryDisplacements()
    LaneDrainer(
        lanes=lanes,
        limiter=MemoryLimiter(clock=clock),
        client=hubspot,
        credentials=StaticCredentials("pat-test-token"),
        resolver=FakeResolver(),
        policy=rp.RetryPolicy(max_attempts=3),
        settings=DrainSettings(batch_size=100, rate_limit=RateLimit(100, 10.0), budget_s=10.0),
        rng=random.Random(7),
        clock=clock,
        sleep=clock.sleep,
        metrics=CounterOps(Keys("hl:")),
        displacements=kept,
    ).drain(LANE)
    assert not lanes.records and not lanes.dead_letters
    return kept


class TestWorthARead:
    """Which writes are worth the read, and what the read says moved."""

    def test_only_single_valued_hubspot_types_are_watched(self) -> None:
        """Primary (deal → company, 5) is; an unlabelled or user-defined type is not, nor 5 on another pair."""
        types = {("7", "2"): [PRIMARY, UNLABELLED], ("7", "3"): [CUSTOM]}
        assert watched("deals", "companies", types) == {("7", "2"): (5,)}
        assert watched("contacts", "companies", {("7", "2"): [PRIMARY]}) == {}

    def test_a_holder_other_than_the_new_record_was_displaced(self) -> None:
        """The deal held Primary with company 1: writing it with company 2 moved it from 1."""
        existing = {"7": [("1", (PRIMARY, UNLABELLED)), ("4", (UNLABELLED,))]}
        found = moved(
            existing, {("7", "2"): (5,)}, [(("7", "2"), "a-1")], portal_id=None, from_type="deals", to_type="companies"
        )
        assert [(d.old_to_id, d.new_to_id, d.association_id) for d in found] == [("1", "2", "a-1")]
        assert found[0].text == "Primary of deals/7 moved from companies/1 to companies/2 by HubLink's write"

    def test_writing_it_again_with_its_holder_moves_nothing(self) -> None:
        """Company 2 already held Primary: nothing moved."""
        existing = {"7": [("2", (PRIMARY,))]}
        assert not moved(
            existing, {("7", "2"): (5,)}, [(("7", "2"), "a")], portal_id=None, from_type="deals", to_type="companies"
        )


class TestDrained:
    """Through the drain: one read before the labelled create, and what moved kept."""

    def test_a_primary_write_reads_first_and_keeps_what_it_moved(self) -> None:
        """A read, then the labelled PUT; the displacement from company 1 is kept."""
        hubspot = LabelledHubSpot(existing={"7": [("1", (PRIMARY, UNLABELLED))]})
        kept = drain(hubspot, write("2", PRIMARY))
        assert [kind for kind, _ in hubspot.calls] == ["read", "labelled"]
        assert [(d.from_id, d.old_to_id, d.new_to_id, d.type_id) for d in kept.kept] == [("7", "1", "2", 5)]

    def test_a_custom_label_costs_no_read(self) -> None:
        """A user-defined label is not single-valued: no read, nothing kept."""
        hubspot = LabelledHubSpot()
        kept = drain(hubspot, write("2", CUSTOM))
        assert [kind for kind, _ in hubspot.calls] == ["labelled"] and not kept.kept

    def test_a_deal_without_a_primary_moves_nothing(self) -> None:
        """The read finds no holder: the write goes on and nothing is kept."""
        hubspot = LabelledHubSpot(existing={"7": [("4", (UNLABELLED,))]})
        kept = drain(hubspot, write("2", PRIMARY))
        assert [kind for kind, _ in hubspot.calls] == ["read", "labelled"] and not kept.kept


class TestTrace:
    """A displacement's history entry reads as one timeline row saying what moved."""

    def test_the_timeline_row_names_what_moved(self) -> None:
        """Outcome ``displaced``: the row's detail is the sentence, not an event's source."""
        d = Displacement(
            portal_id=None,
            association_id="a-1",
            from_type="deals",
            from_id="7",
            to_type="companies",
            old_to_id="1",
            new_to_id="2",
            type_id=5,
        )
        event = {
            "id": "displaced-a-1-5-1.0",
            "received_at": "2026-12-07T02:00:00.000Z",
            "source": None,
            "outcome": DISPLACED,
            "rules": [],
            "associations": [],
            "problems": [d.text],
        }
        (row,) = timeline([event], [])
        assert row["what"] == DISPLACED and "moved from companies/1 to companies/2" in row["detail"]
