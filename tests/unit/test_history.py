"""The event history's pure parts: the compact record, what it indexes, and the filter."""

from __future__ import annotations

import pytest

from hublink.domain.associations import AssociationRequest
from hublink.domain.events import CrmEvent
from hublink.intake.history import EventFilter, EventOutcome, event_of, records_named, type_of_subscription


def deal_to_contact() -> AssociationRequest:
    """deals/1 → contacts/2."""
    return AssociationRequest.create(
        from_object_type="deals",
        from_object_id="1",
        to_object_type="contacts",
        to_object_id="2",
        source="hubspot",
        received_at=0,
    )


class TestTheRecord:
    """Compact, and naming every record it touches."""

    def test_an_accepted_event_keeps_its_rules_pairs_and_ids(self) -> None:
        """Short keys, empty fields left out, each produced association as [id, from, to]."""
        event = CrmEvent(
            source="hubspot", portal_id="7", object_id="1", subscription_type="deal.creation", event_id="9"
        )
        compact = EventOutcome(0, "accepted", event, ("r1",), (("x" * 32, deal_to_contact()),)).compact()
        assert compact == {
            "i": 0,
            "o": "accepted",
            "src": "hubspot",
            "pl": {},
            "p": "7",
            "st": "deal.creation",
            "ot": "deals",
            "oid": "1",
            "eid": "9",
            "r": ["r1"],
            "a": [["x" * 32, "deals/1", "contacts/2"]],
        }
        assert records_named([compact]) == {"deals/1", "contacts/2"}

    @pytest.mark.parametrize(
        ("subscription", "expected"),
        [("deal.creation", "deals"), ("contact.propertyChange", "contacts"), ("object.creation", None), (None, None)],
    )
    def test_the_object_type_comes_from_the_subscription_when_the_event_names_none(
        self, subscription: str | None, expected: str | None
    ) -> None:
        """deal.* names deals; a generic or missing subscription names nothing."""
        assert type_of_subscription(subscription) == expected


class TestTheFilter:
    """Each field checked, and matching on the compact form."""

    @pytest.mark.parametrize(
        ("values", "field"),
        [
            ({"outcome": "lost"}, "outcome"),
            ({"object_id": "1"}, "object_id"),
            ({"object_type": "widgets"}, "object_type"),
            ({"since": "yesterday"}, "since"),
        ],
    )
    def test_a_bad_value_is_refused_naming_its_field(self, values: dict[str, str], field: str) -> None:
        """A ValueError that starts with the field's name."""
        with pytest.raises(ValueError, match=f"^{field}:"):
            EventFilter.parse(values)

    def test_matching_on_portal_source_and_record(self) -> None:
        """Portal '_' is single-portal mode; forms sources match with or without the colon; records by index."""
        event = {"i": 0, "o": "accepted", "src": "forms:demo", "a": [["x", "contacts/5", "companies/6"]]}
        assert EventFilter.parse({"portal": "_", "source": "forms.demo"}).matches(event)
        assert EventFilter.parse({"object_type": "company", "object_id": "6"}).matches(event)
        assert not EventFilter.parse({"object_type": "companies", "object_id": "7"}).matches(event)
        assert not EventFilter.parse({"outcome": "duplicate"}).matches(event)


class TestReplayInput:
    """A stored event is the event again, ready for today's rules."""

    def test_a_stored_webhook_event_comes_back_whole(self) -> None:
        """Source, payload, portal, ids, type and dedup key survive the compact form."""
        event = CrmEvent(
            source="hubspot",
            payload={"objectId": 1, "to_contact": 2},
            portal_id="7",
            event_id="9",
            occurred_at=1_700_000_000.0,
            subscription_type="deal.creation",
            object_type_id="0-3",
            object_id="1",
            dedup_key="k",
        )
        assert event_of(EventOutcome(0, "unmatched", event).compact()) == event

    def test_api_requests_and_unusable_events_are_not_replayable(self) -> None:
        """No event, nothing to run rules on."""
        assert event_of(EventOutcome(0, "accepted", CrmEvent(source="api")).compact()) is None
        assert event_of(EventOutcome(1, "unusable", problems=("bad",)).compact()) is None
