"""The event history's pure parts: the compact record, what it indexes, and the filter."""

from __future__ import annotations

import pytest

from hublink.domain.associations import AssociationRequest
from hublink.domain.events import CrmEvent
from hublink.intake.history import (
    RECORD_FORM,
    EventFilter,
    EventOutcome,
    decode_record,
    encode_record,
    entry_ref,
    event_of,
    record_tag,
    records_named,
    type_of_subscription,
)


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


class TestTheStoredForm:
    """The record as Redis keeps it: its index first, ids packed, the rest compressed; read back equal."""

    @pytest.mark.parametrize("entry_id", ["1733540000000-0", "1733540000000-7", "1-300", "replay-1733540000000-2"])
    def test_a_record_reads_back_equal_whatever_its_entry_id(self, entry_id: str) -> None:
        """Hex ids packed and restored, other items left alone, the JSON fields as written."""
        record = {
            "id": entry_id,
            "at": 1_733_540_000_000,
            "k": "associations",
            "e": [
                {
                    "i": 0,
                    "o": "accepted",
                    "src": "api",
                    "a": [["ab" * 16, "deals/1", "contacts/2"], ["cd" * 16, "deals/3", "contacts/4"]],
                },
                {"i": 1, "o": "accepted", "a": [["x", "lookup", "rule"]]},
                {"i": 2, "o": "unmatched"},
            ],
        }
        raw = encode_record(entry_id, record, ["deals/1", "contacts/2", "deals/3", "contacts/4"])
        assert raw[0] == RECORD_FORM and decode_record(raw) == record
        assert int.from_bytes(raw[1:3], "big") == 4  # one tag per record named, for history_add.lua

    def test_a_stream_id_packs_into_six_bytes_and_its_sequence(self) -> None:
        """Milliseconds since 2024 in 5 bytes, a zero sequence in none; anything else as text after 0xFF."""
        since = (1_733_540_000_000 - 1_704_067_200_000).to_bytes(5, "big")
        assert entry_ref("1733540000000-0") == since
        assert entry_ref("1733540000000-258") == since + b"\x01\x02"
        assert entry_ref("1000-0") == b"\xff1000-0"
        assert entry_ref("replay-1-2") == b"\xffreplay-1-2"
        assert entry_ref("01-0") == b"\xff01-0"

    def test_a_value_without_the_form_byte_is_refused(self) -> None:
        """Only the packed form is a history record: plain JSON is refused, not guessed at."""
        with pytest.raises(ValueError, match="form byte"):
            decode_record(b'{"id":"1-0","at":1,"k":"hubspot","e":[]}')

    def test_tags_are_three_bytes_and_stable(self) -> None:
        """The same record always has the same 3-byte tag (the index's hash)."""
        assert len(record_tag("deals/1")) == 3 and record_tag("deals/1") == record_tag("deals/1")
        assert record_tag("deals/1") != record_tag("deals/2")
