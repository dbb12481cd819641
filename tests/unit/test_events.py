"""Event parsing: HubSpot batches, workflow bodies and forms, and their dedup keys."""

from __future__ import annotations

import json

import pytest

from hublink.domain.errors import InvalidInputError
from hublink.domain.events import parse_form, parse_hubspot_batch, parse_workflow

V1_EVENT = json.loads(
    '[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
    '"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM",'
    '"changeFlag":"NEW","appId":54321}]'
)


class TestHubSpotBatch:
    """App webhook deliveries."""

    def test_documented_event_parses(self) -> None:
        """HubSpot's documented event parses with its portal, ids, time and type id."""
        [event] = parse_hubspot_batch(V1_EVENT)
        assert (event.portal_id, event.event_id, event.object_id) == ("62515", "1", "123")
        assert event.occurred_at == 1564113600.0
        assert event.object_type_id == "0-1"
        assert event.dedup_key == "hubspot:62515:12345:1:123:1564113600000"

    def test_more_than_100_events_are_refused(self) -> None:
        """A batch of 101 events is refused at /."""
        with pytest.raises(InvalidInputError) as info:
            parse_hubspot_batch(V1_EVENT * 101)
        assert info.value.problems[0].where == "/"

    @pytest.mark.parametrize("field", ["portalId", "subscriptionId", "eventId", "occurredAt", "objectId"])
    def test_each_required_field_is_checked(self, field: str) -> None:
        """A missing or wrong-typed required field is refused at its path."""
        for bad in (None, "x", True, -1, {"a": 1}):
            event = dict(V1_EVENT[0]) | {field: bad}
            with pytest.raises(InvalidInputError) as info:
                parse_hubspot_batch([event])
            assert info.value.problems[0].where == f"/0/{field}"

    def test_distinct_composites_dedupe_separately(self) -> None:
        """The same eventId on another object is another event."""
        other = dict(V1_EVENT[0]) | {"objectId": 124}
        keys = {e.dedup_key for e in parse_hubspot_batch([V1_EVENT[0], other])}
        assert len(keys) == 2

    def test_not_an_array(self) -> None:
        """An object instead of an array is refused."""
        with pytest.raises(InvalidInputError):
            parse_hubspot_batch(V1_EVENT[0])


class TestWorkflowAndForms:
    """Workflow bodies and form submissions."""

    def test_identical_workflow_bodies_share_a_dedup_key(self) -> None:
        """A resent identical body is a redelivery; a different body is not."""
        a = parse_workflow({"objectId": 1, "x": [1, 2]}, received_at=0)
        b = parse_workflow({"x": [1, 2], "objectId": 1}, received_at=5)
        c = parse_workflow({"objectId": 2}, received_at=0)
        assert a.dedup_key == b.dedup_key != c.dedup_key

    def test_workflow_must_be_an_object(self) -> None:
        """A workflow body that is not an object is refused."""
        with pytest.raises(InvalidInputError):
            parse_workflow([1], received_at=0)

    def test_forms_dedupe_on_id_field_header_or_body(self) -> None:
        """The configured id field wins, then a header value, else a hash of the body."""
        by_field = parse_form("demo", {"submission_id": "s-1"}, id_field="submission_id", id_value=None, raw_body=b"a")
        by_header = parse_form("demo", {}, id_field=None, id_value="h-9", raw_body=b"a")
        by_body = parse_form("demo", {}, id_field=None, id_value=None, raw_body=b"a")
        assert by_field.dedup_key == "forms:demo:s-1"
        assert by_header.dedup_key == "forms:demo:h-9"
        assert by_body.dedup_key is not None
        assert by_body.dedup_key.startswith("forms:demo:")
        assert by_body.source == "forms:demo"
