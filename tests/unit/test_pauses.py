"""Pausing a portal or a lane on the in-memory twins: the drain claims nothing, spends no attempt, parks."""

from __future__ import annotations

import pytest

from hublink.delivery.pauses import PAUSE_PARK_S, MemoryPauses, Pause
from hublink.lanes import MemoryLanes, pause_fields
from tests.unit.test_drain import LANE, Clock, FakeHubSpot, association, drainer


class TestPausedDrain:
    """A paused lane waits; a resumed one drains."""

    @pytest.mark.parametrize(("scope", "name"), [("portal", "_"), ("lane", LANE)])
    def test_a_paused_lane_is_parked_without_a_call_or_an_attempt(self, scope: str, name: str) -> None:
        """Paused by portal or by lane: no HubSpot call, nothing claimed, the lane parked for the recheck."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        ids = [lanes.add(association(n)) for n in range(1, 4)]
        MemoryPauses(lanes, clock).pause(scope, name, "maintenance")
        hubspot = FakeHubSpot()
        report = drainer(lanes, hubspot, clock).drain(LANE)
        assert hubspot.calls == []
        assert report.paused == f"{scope}:{name}" and report.ended == "parked"
        assert all(lanes.records[i].attempts == 0 for i in ids) and not lanes.inflight
        assert lanes.pending(LANE) == ids  # still waiting, in the order they came
        assert report.as_dict()["paused"] == f"{scope}:{name}"
        assert PAUSE_PARK_S > 0

    def test_resuming_lets_the_next_drain_link_everything(self) -> None:
        """After resume the same lane drains in one batch call."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        for n in range(1, 4):
            lanes.add(association(n))
        pauses = MemoryPauses(lanes, clock)
        assert pauses.pause("portal", "_") is True
        assert pauses.pause("portal", "_") is False
        hubspot = FakeHubSpot()
        drainer(lanes, hubspot, clock).drain(LANE)
        assert pauses.resume("portal", "_") is True
        assert pauses.resume("portal", "_") is False
        report = drainer(lanes, hubspot, clock).drain(LANE)
        assert report.linked == 3 and len(hubspot.calls) == 1 and not lanes.records

    def test_another_portals_pause_does_not_hold_this_lane(self) -> None:
        """A pause names one portal or lane; other lanes drain as usual."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        lanes.add(association(1))
        pauses = MemoryPauses(lanes, clock)
        pauses.pause("portal", "777")
        pauses.pause("lane", "_|deals|companies")
        assert drainer(lanes, FakeHubSpot(), clock).drain(LANE).linked == 1

    def test_the_pause_list_shows_scope_name_time_and_reason(self) -> None:
        """Listing gives each pause with its since time (ms) and its reason."""
        clock = Clock()
        pauses = MemoryPauses(MemoryLanes(clock=clock), clock)
        pauses.pause("lane", LANE, "why not")
        (only,) = pauses.list()
        assert only.as_json() == {"scope": "lane", "name": LANE, "since_ms": int(clock() * 1000), "reason": "why not"}


class TestPauseTargets:
    """What may be paused is checked before anything is written."""

    @pytest.mark.parametrize(
        ("scope", "name", "field"),
        [
            ("portal", "12a", "portal"),
            ("portal", "", "portal"),
            ("lane", "12345|deals", "lane"),
            ("lane", "x|deals|contacts", "lane"),
            ("lane", "1||contacts", "lane"),
            ("everything", "1", "scope"),
        ],
    )
    def test_a_bad_target_is_refused_naming_the_field(self, scope: str, name: str, field: str) -> None:
        """Each malformed portal, lane or scope is a ValueError naming what was wrong."""
        with pytest.raises(ValueError, match=f"^{field}:"):
            Pause.target(scope, name)

    def test_a_lane_is_stopped_by_itself_its_portal_and_its_circuit(self) -> None:
        """claim.lua reads three fields; a circuit's probe reads only the first two."""
        assert pause_fields("42|deals|contacts") == ["lane:42|deals|contacts", "portal:42", "circuit:42"]
        assert pause_fields("_|deals|contacts", probe=True) == ["lane:_|deals|contacts", "portal:_"]
