"""Association limits: the refusal recognised in the client, dead-lettered at once, never retried or split.

The refusal's body is the simulator's assumption (``hubspot_sim.errors.association_limit_body``, the one
place it is written), since HubSpot has not published it (docs/reference/hubspot.md §9.4).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from hublink.delivery.hubspot import (
    ASSOCIATION_LIMIT_CATEGORY,
    CallResult,
    HubSpotClient,
    error_for_entry,
    error_for_status,
)
from hublink.domain import retry_policy as rp
from hublink.domain.associations import AssociationRequest
from hublink.domain.dead_letter import HUBLINK_CATEGORIES
from hublink.domain.errors import AssociationLimitError, TransientError
from hublink.lanes import MemoryLanes
from hubspot_sim import errors as sim_errors
from tests.unit.test_drain import START, Clock, FakeHubSpot, drainer, raise_

LANE = "_|deals|companies"


def limit_body(label: str | None = None) -> dict[str, object]:
    """The simulator's refusal for a deal past 1 company (or 1 holding ``label``)."""
    return sim_errors.association_limit_body("DEAL", "COMPANY", label, 1)


def deal_to_company(company: int) -> AssociationRequest:
    """deals/7 → companies/``company``: every request names the same deal."""
    return AssociationRequest.create(
        from_object_type="deals",
        from_object_id="7",
        to_object_type="companies",
        to_object_id=str(company),
        source="api",
        received_at=START,
    )


def first_linked_others_refused(pairs: Sequence[tuple[str, str]]) -> CallResult:
    """HubSpot's per-input answer: the first pair linked, one limit entry (naming no id) per other pair."""
    body = {
        "status": "COMPLETE",
        "results": [{"from": {"id": pairs[0][0]}, "to": {"id": pairs[0][1]}}],
        "errors": [sim_errors.batch_error(400, limit_body()) for _ in pairs[1:]],
    }
    return HubSpotClient._parse_batch(body, pairs, None, "corr-1")


class TestRecognised:
    """The client turns the assumed refusal into an AssociationLimitError, wherever it comes."""

    def test_a_whole_400_is_an_association_limit_error_naming_the_pair_and_label(self) -> None:
        """The single PUT's 400: the class, HubLink's category, HubSpot's subCategory, the types and label said."""
        error = error_for_status(400, limit_body("Primary"), {}, START)
        assert isinstance(error, AssociationLimitError)
        assert error.category == ASSOCIATION_LIMIT_CATEGORY
        assert error.detail.sub_category == "ASSOCIATION_LIMIT_EXCEEDED"
        assert (error.object_types, error.label, error.limit) == (("DEAL", "COMPANY"), "Primary", "1")
        assert "DEAL→COMPANY" in error.detail.message and "'Primary'" in error.detail.message

    def test_an_errors_entry_is_an_association_limit_error(self) -> None:
        """A batch's per-input entry is recognised the same way (the one classification)."""
        assert isinstance(error_for_entry(limit_body(), None), AssociationLimitError)

    def test_a_batch_entry_without_a_sub_category_is_recognised_by_its_context(self) -> None:
        """The simulator's per-input entry carries no subCategory: its context naming a limit says it."""
        entry = sim_errors.batch_error(400, limit_body())
        assert "subCategory" not in entry
        assert isinstance(error_for_entry(entry, None), AssociationLimitError)

    def test_another_validation_error_is_not(self) -> None:
        """A 400 without the subCategory stays the generic refusal."""
        body = {"status": "error", "category": "VALIDATION_ERROR", "message": "bad"}
        assert not isinstance(error_for_status(400, body, {}, START), AssociationLimitError)

    def test_unnamed_limit_entries_go_to_the_inputs_left_without_a_result(self) -> None:
        """Three inputs, one result and two limit entries naming no id: the two others are the refused ones."""
        pairs = [("7", "1"), ("7", "2"), ("7", "3")]
        result = first_linked_others_refused(pairs)
        assert result.linked == frozenset({("7", "1")})
        assert all(isinstance(result.failed[p], AssociationLimitError) for p in pairs[1:])

    def test_fewer_limit_entries_than_missing_inputs_cannot_be_matched(self) -> None:
        """Two inputs missing and one limit entry: which one was refused is unknown, both go again."""
        pairs = [("7", "1"), ("7", "2"), ("7", "3")]
        body = {"results": [{"from": {"id": "7"}, "to": {"id": "1"}}], "errors": [limit_body()]}
        result = HubSpotClient._parse_batch(body, pairs, None, None)
        assert all(type(result.failed[p]) is TransientError for p in pairs[1:])

    def test_the_category_is_listed(self) -> None:
        """HubLink's category for it has a row in the dead-letter categories (and so in the docs)."""
        assert ASSOCIATION_LIMIT_CATEGORY in HUBLINK_CATEGORIES


class TestNeverRetried:
    """A limit refusal is permanent from its first attempt, even for a record created a moment ago."""

    def test_it_is_dead_lettered_at_once_with_its_reason(self) -> None:
        """First attempt, inside the fresh-record grace: a dead letter, reason association_limit."""
        error = error_for_status(400, limit_body(), {}, START)
        decision = rp.classify(error, attempts=1, age_s=0.0, policy=rp.RetryPolicy(), rng=random.Random(1))
        assert decision == rp.DeadLetter(rp.ASSOCIATION_LIMIT_REASON)


class TestDrained:
    """Through the drain on in-memory twins: one call, the refused pairs dead, nothing split."""

    def test_three_pending_for_one_deal_with_a_limit_of_one(self) -> None:
        """One call: one linked, two dead letters association_limit with the pair's types in the message."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        for company in (1, 2, 3):
            lanes.add(deal_to_company(company))
        hubspot = FakeHubSpot(script=[first_linked_others_refused])
        report = drainer(lanes, hubspot, clock).drain(LANE)
        assert len(hubspot.calls) == 1 and (report.linked, report.dead, report.retried) == (1, 2, 0)
        letters = list(lanes.dead_letters.values())
        assert {(d.reason, d.category) for d in letters} == {(rp.ASSOCIATION_LIMIT_REASON, "ASSOCIATION_LIMIT")}
        assert {d.association.to_object_id for d in letters} == {"2", "3"}
        assert all("DEAL→COMPANY" in d.message and d.attempt_count == 1 for d in letters)
        assert not lanes.records

    def test_a_whole_call_refused_with_a_limit_is_not_split(self) -> None:
        """A 400 limit for a call of four: no halves tried; every input is dead-lettered with it."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        for company in range(1, 5):
            lanes.add(deal_to_company(company))
        hubspot = FakeHubSpot(script=[raise_(error_for_status(400, limit_body("Primary"), {}, START))] * 10)
        report = drainer(lanes, hubspot, clock).drain(LANE)
        assert len(hubspot.calls) == 1 and report.dead == 4
        assert all("'Primary'" in d.message for d in lanes.dead_letters.values())
