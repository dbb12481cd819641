"""Event parsing: HubSpot batches, workflow bodies and forms become CrmEvents, or are refused naming the field."""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hublink.domain.errors import FieldProblem, InvalidInputError
from hublink.domain.events import MAX_EVENTS, parse_form, parse_hubspot_batch, parse_workflow, read_hubspot_batch
from tests.unit.strategies import hubspot_events, json_objects, json_values

# The v1 signature test vector's body (docs/reference/hubspot.md §4.5), byte for byte.
V1_BODY = (
    b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
    b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM",'
    b'"changeFlag":"NEW","appId":54321}]'
)
V1_EVENT: dict[str, Any] = json.loads(V1_BODY)[0]
INT_FIELDS = ["portalId", "subscriptionId", "eventId", "occurredAt", "objectId"]
#: Fields every record event must carry (subscriptionId may be missing: real association-change deliveries
#: come without it, and nothing HubLink does needs it).
REQUIRED_INT_FIELDS = ["portalId", "eventId", "occurredAt", "objectId"]


def refused(body: object) -> InvalidInputError:
    """The error a HubSpot batch is refused with."""
    with pytest.raises(InvalidInputError) as info:
        parse_hubspot_batch(body)
    return info.value


class TestHubSpotBatch:
    """App webhook deliveries: an array of up to 100 events, all or nothing."""

    def test_documented_event_parses(self) -> None:
        """HubSpot's documented v1 test body parses with its portal, ids, time, type id and composite dedup key."""
        [event] = parse_hubspot_batch(json.loads(V1_BODY))
        assert event.source == "hubspot"
        assert (event.portal_id, event.event_id, event.object_id) == ("62515", "1", "123")
        assert event.occurred_at == 1564113600.0
        assert event.subscription_type == "contact.creation"
        assert event.object_type_id == "0-1"
        assert event.dedup_key == "hubspot:62515:12345:1:123:1564113600000"

    def test_payload_keeps_every_field(self) -> None:
        """The payload is the event as sent, plus the objectTypeId derived from its type."""
        [event] = parse_hubspot_batch([V1_EVENT])
        assert event.payload == V1_EVENT | {"objectTypeId": "0-1"}

    @pytest.mark.parametrize(
        ("subscription", "type_id"),
        [
            ("contact.creation", "0-1"),
            ("company.propertyChange", "0-2"),
            ("deal.creation", "0-3"),
            ("ticket.deletion", "0-5"),
            ("product.merge", "0-7"),
            ("line_item.restore", "0-8"),
            ("conversation.creation", None),
        ],
    )
    def test_type_id_is_derived_from_the_prefix(self, subscription: str, type_id: str | None) -> None:
        """A legacy subscription type's prefix gives the object type id; an unknown prefix gives none."""
        [event] = parse_hubspot_batch([V1_EVENT | {"subscriptionType": subscription}])
        assert event.object_type_id == type_id

    def test_given_type_id_wins(self) -> None:
        """A generic object.* event keeps the objectTypeId it carries."""
        [event] = parse_hubspot_batch([V1_EVENT | {"subscriptionType": "object.creation", "objectTypeId": "2-1234"}])
        assert event.object_type_id == "2-1234"
        assert event.payload["objectTypeId"] == "2-1234"

    def test_legacy_event_type_is_an_alias(self) -> None:
        """An event naming its type in eventType parses, and its payload gains subscriptionType for the rules."""
        legacy = {k: v for k, v in V1_EVENT.items() if k != "subscriptionType"} | {"eventType": "deal.creation"}
        [event] = parse_hubspot_batch([legacy])
        assert event.subscription_type == "deal.creation"
        assert event.payload["subscriptionType"] == "deal.creation"
        assert event.payload["eventType"] == "deal.creation"

    def test_digit_strings_are_accepted(self) -> None:
        """Integer fields sent as digit strings parse to the same event as JSON numbers."""
        as_strings = V1_EVENT | {name: str(V1_EVENT[name]) for name in INT_FIELDS}
        [event] = parse_hubspot_batch([as_strings])
        [same] = parse_hubspot_batch([V1_EVENT])
        assert (event.dedup_key, event.object_id, event.occurred_at) == (same.dedup_key, same.object_id, 1564113600.0)

    def test_zero_event_id_and_time_are_accepted(self) -> None:
        """eventId and occurredAt may be 0; they name no record."""
        [event] = parse_hubspot_batch([V1_EVENT | {"eventId": 0, "occurredAt": 0}])
        assert (event.event_id, event.occurred_at) == ("0", 0.0)

    def test_an_empty_array_is_zero_events(self) -> None:
        """An empty batch parses to no events."""
        assert parse_hubspot_batch([]) == []

    def test_one_hundred_events_are_accepted(self) -> None:
        """A batch of exactly 100 events parses, in order."""
        events = parse_hubspot_batch([V1_EVENT | {"eventId": i} for i in range(MAX_EVENTS)])
        assert [e.event_id for e in events] == [str(i) for i in range(MAX_EVENTS)]

    def test_more_than_100_events_are_refused(self) -> None:
        """A batch of 101 events is refused at / with the count."""
        error = refused([V1_EVENT] * 101)
        assert [(p.where, p.message) for p in error.problems] == [("/", "expected at most 100 events, got 101")]

    @pytest.mark.parametrize("body", [V1_EVENT, None, "[]", 5, True])
    def test_not_an_array_is_refused(self, body: object) -> None:
        """An object, null, string, number or boolean instead of an array is refused at /."""
        assert [p.where for p in refused(body).problems] == ["/"]

    @pytest.mark.parametrize("item", [None, 1, "event", [V1_EVENT]])
    def test_an_item_that_is_not_an_object_is_refused(self, item: object) -> None:
        """A batch item that is not an object is refused at its index."""
        assert [p.where for p in refused([V1_EVENT, item]).problems] == ["/1"]

    @pytest.mark.parametrize("field", INT_FIELDS)
    @pytest.mark.parametrize(
        "bad", [None, "x", True, -1, 1.5, 10**20, "1" * 21, "²", "1 ", "", {"a": 1}, [1]], ids=repr
    )
    def test_each_bad_integer_field_is_refused_at_its_path(self, field: str, bad: object) -> None:
        """A null, non-numeric, boolean, negative, fractional, too long or nested integer is refused at its path."""
        if field == "subscriptionId" and bad is None:
            return  # null is absent, and subscriptionId may be absent (see test_subscription_id_may_be_absent)
        [problem] = refused([V1_EVENT | {field: bad}]).problems
        assert problem.where == f"/0/{field}"
        assert problem.message.startswith(f"{field}: expected a ")

    @pytest.mark.parametrize("field", [*REQUIRED_INT_FIELDS, "subscriptionType"])
    def test_each_missing_field_is_refused_at_its_path(self, field: str) -> None:
        """A missing required field is refused at its path, saying nothing was given."""
        [problem] = refused([{k: v for k, v in V1_EVENT.items() if k != field}]).problems
        assert problem.where == f"/0/{field}"
        assert problem.message.endswith("got nothing")

    @pytest.mark.parametrize("field", ["portalId", "subscriptionId", "objectId"])
    def test_zero_is_not_a_portal_subscription_or_record(self, field: str) -> None:
        """portalId, subscriptionId and objectId must be positive."""
        [problem] = refused([V1_EVENT | {field: 0}]).problems
        assert problem.message == f"{field}: expected a positive integer or digit string, got 0"

    @pytest.mark.parametrize("bad", [None, 5, "", "deal creation", "x" * 101, "deal.creation\n", ["deal.creation"]])
    def test_bad_subscription_type_is_refused(self, bad: object) -> None:
        """A subscription type that is not a short dotted word is refused at its path."""
        [problem] = refused([V1_EVENT | {"subscriptionType": bad}]).problems
        assert problem.where == "/0/subscriptionType"

    def test_bad_legacy_event_type_is_refused_under_its_own_name(self) -> None:
        """A bad eventType, with no subscriptionType, is refused at /0/eventType."""
        legacy = {k: v for k, v in V1_EVENT.items() if k != "subscriptionType"} | {"eventType": 7}
        assert [p.where for p in refused([legacy]).problems] == ["/0/eventType"]

    @pytest.mark.parametrize("bad", [3, "deals", "0-", "0-3-1", "1" * 30, {"id": "0-3"}])
    def test_bad_object_type_id_is_refused(self, bad: object) -> None:
        """An objectTypeId that is not a type id like 0-3 is refused at its path."""
        [problem] = refused([V1_EVENT | {"objectTypeId": bad}]).problems
        assert problem.where == "/0/objectTypeId"

    def test_every_problem_of_every_event_is_reported(self) -> None:
        """Problems of several events and fields are all reported, each at its path."""
        error = refused([V1_EVENT, V1_EVENT | {"portalId": "x", "objectId": None}, "junk"])
        assert [p.where for p in error.problems] == ["/1/portalId", "/1/objectId", "/2"]

    def test_hostile_values_give_short_messages(self) -> None:
        """A megabyte string or a huge integer is refused with a short message quoting only its start."""
        error = refused([V1_EVENT | {"objectId": "9" * 1_000_000, "eventId": 10**5000}])
        assert all(len(p.message) < 200 for p in error.problems)
        assert [p.where for p in error.problems] == ["/0/eventId", "/0/objectId"]

    def test_dedup_key_is_stable(self) -> None:
        """The same event resent, with its fields in another order and another attempt number, has the same key."""
        resent = dict(reversed(list(V1_EVENT.items()))) | {"attemptNumber": 3}
        assert parse_hubspot_batch([resent])[0].dedup_key == parse_hubspot_batch([V1_EVENT])[0].dedup_key

    @pytest.mark.parametrize("field", INT_FIELDS)
    def test_dedup_key_differs_in_every_part_of_the_composite(self, field: str) -> None:
        """Events that differ only in portal, subscription, event id, object or time have distinct keys."""
        first, second = parse_hubspot_batch([V1_EVENT, V1_EVENT | {field: V1_EVENT[field] + 1}])
        assert first.dedup_key != second.dedup_key

    @given(st.lists(hubspot_events, max_size=5))
    def test_valid_events_always_parse(self, events: list[dict[str, Any]]) -> None:
        """Any batch of valid events parses to as many events, each with its composite dedup key."""
        parsed = parse_hubspot_batch(events)
        assert [e.object_id for e in parsed] == [str(int(e["objectId"])) for e in events]
        assert all(e.dedup_key and e.dedup_key.startswith(f"hubspot:{e.portal_id}:") for e in parsed)

    @given(json_values | st.lists(json_objects | hubspot_events.map(lambda e: e | {"objectId": None}), max_size=3))
    def test_hostile_bodies_raise_only_invalid_input(self, body: object) -> None:
        """Whatever JSON arrives, parsing returns events or raises InvalidInputError with short messages."""
        problems: tuple[FieldProblem, ...] = ()
        try:
            parse_hubspot_batch(body)
        except InvalidInputError as exc:
            problems = exc.problems or (FieldProblem("?", "refused without a problem"),)
        assert all(len(p.message) < 300 for p in problems)


class TestWorkflow:
    """Workflow "Send a webhook" bodies: any JSON object, deduplicated by content."""

    BODY: ClassVar[dict[str, Any]] = {"objectId": 5001, "portalId": 62515, "properties": {"dealname": "Acme"}}

    def test_default_body_parses(self) -> None:
        """The body's portal and object become the event's, the time is the receipt time, the payload is the body."""
        event = parse_workflow(self.BODY, received_at=1700000000.5)
        assert (event.source, event.portal_id, event.object_id) == ("workflow", "62515", "5001")
        assert event.occurred_at == 1700000000.5
        assert event.payload == self.BODY
        assert event.subscription_type is None

    def test_custom_body_without_ids_parses(self) -> None:
        """A custom body with no portal or object id parses with neither."""
        event = parse_workflow({"contact_id": "7"}, received_at=0)
        assert (event.portal_id, event.object_id, event.event_id) == (None, None, None)

    def test_portal_id_spelling_is_accepted(self) -> None:
        """portal_id works as well as portalId, as a number or a digit string."""
        assert parse_workflow({"portal_id": "62515"}, received_at=0).portal_id == "62515"

    @pytest.mark.parametrize("bad", ["abc", 0, -3, True, [1], 1.5])
    def test_bad_portal_is_refused(self, bad: object) -> None:
        """A portalId that is not a positive integer is refused at /portalId."""
        with pytest.raises(InvalidInputError) as info:
            parse_workflow({"portalId": bad}, received_at=0)
        assert [p.where for p in info.value.problems] == ["/portalId"]

    def test_odd_object_id_is_left_to_the_rules(self) -> None:
        """A non-id objectId is not refused: the event has no object id and the rules decide."""
        assert parse_workflow({"objectId": "abc"}, received_at=0).object_id is None

    def test_callback_id_is_the_event_id(self) -> None:
        """callbackId, as a string or number, becomes the event id."""
        assert parse_workflow({"callbackId": "cb-1"}, received_at=0).event_id == "cb-1"
        assert parse_workflow({"callbackId": 77}, received_at=0).event_id == "77"

    @pytest.mark.parametrize("body", [[1], "text", None, 5])
    def test_body_must_be_an_object(self, body: object) -> None:
        """A workflow body that is not a JSON object is refused at /."""
        with pytest.raises(InvalidInputError) as info:
            parse_workflow(body, received_at=0)
        assert [p.where for p in info.value.problems] == ["/"]

    def test_identical_bodies_share_a_dedup_key(self) -> None:
        """A resent identical body is a redelivery whatever its key order; a different body is not."""
        a = parse_workflow({"objectId": 1, "x": [1, {"b": 2, "a": 1}]}, received_at=0)
        b = parse_workflow({"x": [1, {"a": 1, "b": 2}], "objectId": 1}, received_at=5)
        c = parse_workflow({"objectId": 2, "x": [1, {"a": 1, "b": 2}]}, received_at=0)
        assert a.dedup_key == b.dedup_key != c.dedup_key
        canonical = b'{"objectId":1,"x":[1,{"a":1,"b":2}]}'
        assert a.dedup_key == "workflow:" + hashlib.sha256(canonical).hexdigest()

    def test_dedup_header_wins(self) -> None:
        """A dedup header value, when given, is the key, whatever the body."""
        event = parse_workflow(self.BODY, received_at=0, dedup_header="run-42")
        assert event.dedup_key == "workflow:run-42"

    def test_blank_dedup_header_is_ignored(self) -> None:
        """A blank dedup header falls back to the body's digest."""
        event = parse_workflow(self.BODY, received_at=0, dedup_header="  ")
        assert event.dedup_key == parse_workflow(self.BODY, received_at=0).dedup_key

    def test_long_dedup_header_is_replaced_by_its_digest(self) -> None:
        """A header longer than 200 characters becomes a digest, so distinct long values stay distinct."""
        a = parse_workflow({}, received_at=0, dedup_header="a" * 300)
        b = parse_workflow({}, received_at=0, dedup_header="a" * 299 + "b")
        assert a.dedup_key != b.dedup_key
        assert a.dedup_key is not None and len(a.dedup_key) < 100

    def test_unserialisable_body_is_refused_not_crashed(self) -> None:
        """A body with an integer too large to print is refused with InvalidInputError."""
        with pytest.raises(InvalidInputError):
            parse_workflow({"n": 10**5000}, received_at=0)

    @given(json_objects)
    def test_any_json_object_parses(self, body: dict[str, Any]) -> None:
        """Any JSON object without a portal field parses, with a dedup key."""
        body = {k: v for k, v in body.items() if k not in ("portalId", "portal_id")}
        assert parse_workflow(body, received_at=0).dedup_key


class TestForms:
    """Form submissions: deduplicated by their id field, an id header, or the raw body."""

    def test_fields_become_the_payload(self) -> None:
        """The decoded fields are the payload and the source names the form."""
        event = parse_form("demo", {"email": "a@b.example"}, id_field=None, id_value=None, raw_body=b"x")
        assert (event.source, dict(event.payload)) == ("forms:demo", {"email": "a@b.example"})

    def test_id_field_is_the_dedup_key(self) -> None:
        """The configured id field's value is the dedup key and the event id."""
        event = parse_form("demo", {"submission_id": "s-1"}, id_field="submission_id", id_value=None, raw_body=b"a")
        assert (event.dedup_key, event.event_id) == ("forms:demo:s-1", "s-1")

    def test_numeric_id_field_is_accepted(self) -> None:
        """A JSON number in the id field is used as its decimal text."""
        event = parse_form("demo", {"n": 81}, id_field="n", id_value=None, raw_body=b"a")
        assert event.dedup_key == "forms:demo:81"

    def test_header_value_is_used_without_an_id_field(self) -> None:
        """Without an id field value, the id header's value is the key."""
        event = parse_form("demo", {}, id_field="submission_id", id_value="h-9", raw_body=b"a")
        assert event.dedup_key == "forms:demo:h-9"

    def test_id_field_wins_over_the_header(self) -> None:
        """When both are present, the configured id field wins."""
        event = parse_form("demo", {"sid": "s-1"}, id_field="sid", id_value="h-9", raw_body=b"a")
        assert event.dedup_key == "forms:demo:s-1"

    @pytest.mark.parametrize("value", ["", "  ", ["a", "b"], None, True, {"x": 1}])
    def test_unusable_id_falls_back_to_the_body(self, value: object) -> None:
        """An empty, repeated (list), null, boolean or nested id field falls back to the body's digest."""
        event = parse_form("demo", {"sid": value}, id_field="sid", id_value=None, raw_body=b"body")
        assert event.dedup_key == "forms:demo:" + hashlib.sha256(b"body").hexdigest()
        assert event.event_id is None

    def test_identical_bodies_share_a_key(self) -> None:
        """Without any id, the same raw body gives the same key and another body another."""
        keys = [parse_form("demo", {}, id_field=None, id_value=None, raw_body=b).dedup_key for b in (b"a", b"a", b"b")]
        assert keys[0] == keys[1] != keys[2]

    def test_form_portal_field_is_read(self) -> None:
        """A portalId field names the portal; a bad one is refused at /portalId."""
        assert (
            parse_form("demo", {"portalId": "62515"}, id_field=None, id_value=None, raw_body=b"").portal_id == "62515"
        )
        with pytest.raises(InvalidInputError) as info:
            parse_form("demo", {"portalId": "x"}, id_field=None, id_value=None, raw_body=b"")
        assert [p.where for p in info.value.problems] == ["/portalId"]

    @pytest.mark.parametrize("name", ["", "Demo", "a:b", "x" * 65, "../x"])
    def test_bad_source_name_is_refused(self, name: str) -> None:
        """A form source name that is not a slug is refused at /source."""
        with pytest.raises(InvalidInputError) as info:
            parse_form(name, {}, id_field=None, id_value=None, raw_body=b"")
        assert [p.where for p in info.value.problems] == ["/source"]


class TestStoredForm:
    """CrmEvent.as_record / from_record: the inbox's wire format."""

    @given(st.lists(json_objects, max_size=3))
    def test_a_workflow_event_survives_the_inbox(self, bodies: list[dict[str, Any]]) -> None:
        """Any accepted workflow body comes back from its JSON record as the same event."""
        for body in bodies:
            try:
                event = parse_workflow(body, received_at=1764331200.5, dedup_header="d-1")
            except InvalidInputError:
                continue  # not accepted (a portalId that is not a portal id): it never reaches the inbox
            record = json.loads(json.dumps(event.as_record()))
            assert type(event).from_record(record) == event

    def test_a_form_event_survives_the_inbox(self) -> None:
        """A form event, with its id and portal, comes back equal."""
        event = parse_form(
            "demo",
            {"submission_id": "s1", "portalId": 7, "x": [1, 2]},
            id_field="submission_id",
            id_value=None,
            raw_body=b"",
        )
        assert type(event).from_record(json.loads(json.dumps(event.as_record()))) == event

    def test_fields_a_newer_version_added_are_ignored(self) -> None:
        """A record with an unknown field (written by a newer version) still reads."""
        event = parse_workflow({"objectId": 5}, received_at=1.0)
        record = event.as_record() | {"added_later": True}
        assert type(event).from_record(record) == event


#: A real-shaped legacy association-change delivery: neither objectId nor subscriptionId (docs/reference/hubspot.md §8).
ASSOCIATION_CHANGE: dict[str, Any] = {
    "eventId": 3781247215,
    "portalId": 62515,
    "occurredAt": 1764331200123,
    "subscriptionType": "deal.associationChange",
    "attemptNumber": 0,
    "changeSource": "USER",
    "associationType": "DEAL_TO_CONTACT",
    "fromObjectId": 9876543210,
    "toObjectId": 1234567,
    "associationRemoved": False,
    "isPrimaryAssociation": False,
}


class TestTolerantBatch:
    """A genuine delivery is read event by event: what cannot be used is set aside, the rest goes on."""

    def test_a_creation_and_a_real_association_change_both_parse(self) -> None:
        """deal.creation plus a captured deal.associationChange (no objectId, no subscriptionId): two events."""
        batch = read_hubspot_batch([V1_EVENT | {"subscriptionType": "deal.creation"}, ASSOCIATION_CHANGE])
        assert batch.unusable == []
        creation, change = batch.events
        assert creation.subscription_type == "deal.creation"
        assert change.object_id == "9876543210"
        assert change.payload["toObjectId"] == 1234567 and change.object_type_id == "0-3"

    def test_the_generic_association_change_parses_with_its_type_id(self) -> None:
        """object.associationChange with associationTypeId and category is an event the rules can see."""
        event = ASSOCIATION_CHANGE | {
            "subscriptionType": "object.associationChange",
            "associationTypeId": 3,
            "associationCategory": "HUBSPOT_DEFINED",
            "associationRemoved": True,
        }
        (parsed,) = parse_hubspot_batch([event])
        assert parsed.payload["associationRemoved"] is True

    def test_an_added_and_a_removed_association_are_two_events_not_duplicates(self) -> None:
        """The dedup key of an association change names the pair, its type and whether it was removed."""
        added, removed = parse_hubspot_batch([ASSOCIATION_CHANGE, ASSOCIATION_CHANGE | {"associationRemoved": True}])
        assert added.dedup_key != removed.dedup_key

    def test_subscription_id_may_be_absent(self) -> None:
        """A record event without subscriptionId parses; its dedup key marks the missing part."""
        event = {k: v for k, v in V1_EVENT.items() if k != "subscriptionId"}
        (parsed,) = parse_hubspot_batch([event])
        assert parsed.dedup_key == "hubspot:62515:-:1:123:1564113600000"

    def test_one_unusable_event_never_sinks_the_others(self) -> None:
        """An event without objectId and a non-object sit beside a good event: one event, two set aside."""
        broken = {k: v for k, v in V1_EVENT.items() if k != "objectId"}
        batch = read_hubspot_batch([broken, V1_EVENT, "junk"])
        assert [e.object_id for e in batch.events] == ["123"]
        assert [(u.index, u.reason[:9]) for u in batch.unusable] == [(0, "objectId:"), (2, "expected ")]

    @pytest.mark.parametrize(
        ("field", "bad"),
        [
            ("associationRemoved", "yes"),
            ("isPrimaryAssociation", 1),
            ("associationType", 5),
            ("associationTypeId", "x"),
        ],
    )
    def test_a_badly_typed_association_field_makes_that_event_unusable(self, field: str, bad: object) -> None:
        """An association-change field of the wrong JSON type sets the event aside, naming the field."""
        batch = read_hubspot_batch([ASSOCIATION_CHANGE | {field: bad}])
        assert batch.events == [] and batch.unusable[0].reason.startswith(f"{field}: expected")

    def test_only_the_shape_of_the_whole_body_is_refused(self) -> None:
        """Not an array, or more than 100 items: the only refusals left."""
        for body in ({"a": 1}, [V1_EVENT] * (MAX_EVENTS + 1)):
            with pytest.raises(InvalidInputError):
                read_hubspot_batch(body)
