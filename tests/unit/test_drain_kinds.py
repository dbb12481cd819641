"""The drain with mixed work in one lane: runs of one call kind, in the order accepted, labels resolved."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from hublink.delivery.credentials import StaticCredentials
from hublink.delivery.drain import DrainSettings, LaneDrainer
from hublink.delivery.hubspot import CallResult
from hublink.delivery.labels import UNKNOWN_LABEL_CATEGORY, MemoryLabelCatalog
from hublink.delivery.rate_limit import MemoryLimiter
from hublink.domain import retry_policy as rp
from hublink.domain.associations import AssociationRequest, AssociationType
from hublink.domain.errors import HubSpotErrorDetail, ServerError
from hublink.domain.limits import RateLimit
from hublink.lanes import MemoryLanes
from hublink.store.counters import CounterOps
from hublink.store.keys import Keys
from tests.unit.test_drain import START, Clock, FakeHubSpot, FakeResolver, association, raise_

LANE = "_|deals|contacts"
DECISION = ("USER_DEFINED", 9)


@dataclass
class LabelledHubSpot(FakeHubSpot):
    """The fake HubSpot, also answering labelled creates, removals and reads (recorded with their kind)."""

    existing: dict[str, list[tuple[str, tuple[AssociationType, ...]]]] = field(default_factory=dict)

    def read_associations_batch(
        self, token: str, from_type: str, to_type: str, from_ids: Sequence[str], *, base_url: str | None = None
    ) -> dict[str, list[tuple[str, tuple[AssociationType, ...]]]]:
        """batch/read from ``existing``."""
        self.calls.append(("read", [(i, "") for i in from_ids]))
        return {i: self.existing.get(i, []) for i in from_ids}

    def associate_labelled(
        self,
        token: str,
        from_type: str,
        from_id: str,
        to_type: str,
        to_id: str,
        types: Sequence[AssociationType],
        *,
        base_url: str | None = None,
    ) -> CallResult:
        """The labelled PUT."""
        self.calls.append(("labelled", [(from_id, to_id)]))
        return self._answer([(from_id, to_id)])

    def create_labelled_batch(
        self,
        token: str,
        from_type: str,
        to_type: str,
        inputs: Sequence[tuple[tuple[str, str], Sequence[AssociationType]]],
        *,
        base_url: str | None = None,
    ) -> CallResult:
        """batch/create."""
        self.calls.append(("create", [p for p, _ in inputs]))
        return self._answer([p for p, _ in inputs])

    def archive_batch(
        self, token: str, from_type: str, to_type: str, pairs: Sequence[tuple[str, str]], *, base_url: str | None = None
    ) -> CallResult:
        """batch/archive."""
        self.calls.append(("archive", list(pairs)))
        return self._answer(list(pairs))

    def archive_labels_batch(
        self,
        token: str,
        from_type: str,
        to_type: str,
        inputs: Sequence[tuple[tuple[str, str], Sequence[AssociationType]]],
        *,
        base_url: str | None = None,
    ) -> CallResult:
        """batch/labels/archive."""
        self.calls.append(("labels_archive", [p for p, _ in inputs]))
        return self._answer([p for p, _ in inputs])


def drainer(lanes: MemoryLanes, hubspot: FakeHubSpot, clock: Clock) -> LaneDrainer:
    """A drainer with a label catalog defining 'Decision maker' for deals -> contacts."""
    return LaneDrainer(
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
        labels=MemoryLabelCatalog({(None, "deals", "contacts"): [("USER_DEFINED", 9, "Decision maker")]}),
    )


def with_(request: AssociationRequest, **changes: object) -> AssociationRequest:
    """``request`` with an action, label or types."""
    return dataclasses.replace(request, **changes)  # type: ignore[arg-type]


class TestMixedLanes:
    """A lane holding links and unlinks sends them as runs of one kind, in the order they were accepted."""

    def test_each_run_is_one_kind_of_call_in_accepted_order(self) -> None:
        """link, link, labelled link, unlink, link: four calls, each of one kind, in that order."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        plan = [
            association(1),
            association(2),
            with_(association(3), label="decision maker"),
            with_(association(1), action="unlink"),
            association(4),
        ]
        for offset, request in enumerate(plan):
            lanes.add(request, due_ms=int(START * 1000) - 10 + offset)
        hubspot = LabelledHubSpot()
        report = drainer(lanes, hubspot, clock).drain(LANE)
        assert hubspot.calls == [
            ("batch", [("1", "1001"), ("2", "1002")]),
            ("labelled", [("3", "1003")]),
            ("archive", [("1", "1001")]),
            ("single", [("4", "1004")]),
        ]
        assert report.linked == 5 and not lanes.records

    def test_a_labelled_unlink_goes_through_labels_archive_with_its_types(self) -> None:
        """An unlink with explicit types removes only that label."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        lanes.add(with_(association(1), action="unlink", types=(DECISION,)))
        hubspot = LabelledHubSpot()
        drainer(lanes, hubspot, clock).drain(LANE)
        assert hubspot.calls == [("labels_archive", [("1", "1001")])]

    def test_an_unknown_label_dead_letters_its_item_naming_the_known_ones(self) -> None:
        """No call is made for it; its dead letter says which labels exist."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        dead = lanes.add(with_(association(1), label="Champion"))
        hubspot = LabelledHubSpot()
        drainer(lanes, hubspot, clock).drain(LANE)
        letter = lanes.dead_letters[dead]
        assert hubspot.calls == []
        assert letter.category == UNKNOWN_LABEL_CATEGORY and "'Decision maker'" in letter.message

    def test_an_unlink_waits_behind_the_failed_link_of_its_pair(self) -> None:
        """The link fails with a 503: the later unlink of the same pair is not sent, and is due after it."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        link = lanes.add(association(1), due_ms=int(START * 1000) - 2)
        unlink = lanes.add(with_(association(1), action="unlink"), due_ms=int(START * 1000) - 1)
        hubspot = LabelledHubSpot(script=[raise_(ServerError(HubSpotErrorDetail(status=503)))])
        drainer(lanes, hubspot, clock).drain(LANE)
        assert hubspot.calls == [("single", [("1", "1001")])]
        assert lanes.records[unlink].attempts == 0
        assert lanes.due[unlink] > lanes.due[link] > START * 1000


class TestReconcileInTheDrain:
    """Replace work in a lane runs as a reconcile: read, remove, create, and the removal is counted."""

    def test_a_replace_moves_the_label_and_counts_the_removal(self) -> None:
        """Contact 1001 becomes the decision maker instead of 1500: one read, one label removal, one PUT."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        lanes.add(with_(association(1), label="Decision maker", mode="replace"))
        hubspot = LabelledHubSpot(existing={"1": [("1500", (DECISION,))]})
        report = drainer(lanes, hubspot, clock).drain(LANE)
        assert hubspot.calls == [
            ("read", [("1", "")]),
            ("labels_archive", [("1", "1500")]),
            ("labelled", [("1", "1001")]),
        ]
        assert report.linked == 1 and report.calls == 3 and not lanes.records
        assert ("hl:m:reconcile_removed", "source=api", 1, 0) in lanes.counters


class TestBatchSize:
    """Batches at HubSpot's size: the default claim fills a 2,000-input create call."""

    def test_a_backlog_goes_out_in_calls_of_two_thousand_by_default(self) -> None:
        """2,500 pending default links with the default settings: one call of 2,000, one of 500."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        for n in range(1, 2501):
            lanes.add(association(n))
        hubspot = LabelledHubSpot()
        default = LaneDrainer(
            lanes=lanes,
            limiter=MemoryLimiter(clock=clock),
            client=hubspot,
            credentials=StaticCredentials("pat-test-token"),
            resolver=FakeResolver(),
            policy=rp.RetryPolicy(max_attempts=3),
            settings=DrainSettings(),
            clock=clock,
            sleep=clock.sleep,
        )
        default.drain(LANE)
        assert [len(pairs) for _, pairs in hubspot.calls] == [2000, 500]
