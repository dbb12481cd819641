"""AssociationRequest: what is accepted, what is refused, and how each refusal names its field."""

from __future__ import annotations

import pytest
from hypothesis import given

from hublink.domain.associations import (
    AssociationRequest,
    canonical_object_type,
    lane_of,
    parse_api_items,
    split_lane,
)
from hublink.domain.errors import InvalidInputError
from tests.unit.strategies import not_object_ids, object_ids

GOOD = {"fromObjectType": "deals", "fromObjectId": "123", "toObjectType": "contacts", "toObjectId": "456"}


def build(**overrides: object) -> AssociationRequest:
    """Create a request from GOOD with overrides."""
    fields = {"from_object_type": "deals", "from_object_id": "1", "to_object_type": "contacts", "to_object_id": "2"}
    fields.update(overrides)  # type: ignore[arg-type]
    return AssociationRequest.create(received_at=0.0, **fields)  # type: ignore[arg-type]


class TestObjectTypes:
    """Object types are HubSpot names or type ids, canonicalised."""

    @pytest.mark.parametrize("value", ["deal", "deals", "DEALS", "0-3"])
    def test_deal_forms_are_one_type(self, value: str) -> None:
        """deal, deals, DEALS and 0-3 all mean deals."""
        assert canonical_object_type(value) == "deals"

    @pytest.mark.parametrize(
        "value",
        [
            "contacts",
            "companies",
            "tickets",
            "line_items",
            "products",
            "notes",
            "calls",
            "emails",
            "meetings",
            "tasks",
            "leads",
        ],
    )
    def test_every_standard_name_is_accepted(self, value: str) -> None:
        """Every standard object name is its own canonical form, and its singular maps to it."""
        assert canonical_object_type(value) == value
        singular = {"companies": "company"}.get(value, value[:-1])
        assert canonical_object_type(singular) == value

    def test_custom_type_id_is_kept(self) -> None:
        """A custom object type id stays as given."""
        assert canonical_object_type("2-143967026") == "2-143967026"

    @pytest.mark.parametrize(
        "value", ["../admin", "deals/1", "dealz", "", "0-", "3-1", "2-" + "1" * 13, "déals", 3, None, "x" * 10_000]
    )
    def test_hostile_types_are_refused_naming_the_field(self, value: object) -> None:
        """Unknown, traversal-like, unicode, empty, huge and non-string types are refused naming the field."""
        with pytest.raises(InvalidInputError) as info:
            build(to_object_type=value)
        assert info.value.problems[0].where == "/toObjectType"
        assert len(info.value.problems[0].message) < 400


class TestObjectIds:
    """Ids are positive decimal integers as strings, at most 20 digits."""

    @given(object_ids)
    def test_valid_ids_are_accepted_unchanged(self, value: str) -> None:
        """Any 1-20 digit string without a leading zero is accepted as is."""
        assert build(from_object_id=value).from_object_id == value

    @given(not_object_ids)
    def test_everything_else_is_refused(self, value: str) -> None:
        """Any other string is refused, naming fromObjectId."""
        with pytest.raises(InvalidInputError) as info:
            build(from_object_id=value)
        assert info.value.problems[0].message.startswith("fromObjectId:")

    @pytest.mark.parametrize("value", ["0", "012", "-1", "1.0", "1" * 21, 123, True, None])
    def test_named_bad_ids(self, value: object) -> None:
        """Zero, leading zeros, negatives, decimals, 21 digits, JSON numbers and booleans are refused."""
        with pytest.raises(InvalidInputError):
            build(to_object_id=value)


class TestApiItems:
    """The direct API's array: 1 to 100 items, all or nothing, each problem located."""

    def test_valid_items_parse_in_order(self) -> None:
        """Valid items become requests in order, with source api."""
        parsed = parse_api_items([GOOD, {**GOOD, "toObjectId": "9"}], received_at=5.0, max_items=100)
        assert [r.to_object_id for r in parsed] == ["456", "9"]
        assert parsed[0].source == "api"
        assert parsed[0].received_at == 5.0

    @pytest.mark.parametrize("items", [[], [GOOD] * 101, "x", {"a": 1}])
    def test_bad_counts_and_shapes_are_refused(self, items: object) -> None:
        """Zero items, 101 items and a non-array are refused at /associations."""
        with pytest.raises(InvalidInputError) as info:
            parse_api_items(items, received_at=0, max_items=100)
        assert info.value.problems[0].where == "/associations"

    def test_every_bad_field_of_every_item_is_reported(self) -> None:
        """Problems carry /associations/<i>/<field> for every bad field, and nothing is returned."""
        with pytest.raises(InvalidInputError) as info:
            parse_api_items([GOOD, {**GOOD, "fromObjectId": "x", "toObjectType": "?"}, 7], received_at=0, max_items=100)
        where = [p.where for p in info.value.problems]
        assert where == ["/associations/1/fromObjectId", "/associations/1/toObjectType", "/associations/2"]


class TestStoredForm:
    """The stored form is a wire format."""

    def test_round_trip(self) -> None:
        """as_record then from_record gives the same request."""
        request = build(portal_id=62515, source_event_id="e1")
        assert AssociationRequest.from_record(request.as_record()) == request

    def test_unknown_future_fields_are_ignored(self) -> None:
        """A record written by a newer version, with extra fields, still loads."""
        record = build().as_record() | {"added_in_v2": "x"}
        assert AssociationRequest.from_record(record) == build()

    def test_lanes_round_trip_with_and_without_portal(self) -> None:
        """A lane names portal and type pair, and splits back; no portal is '_'."""
        assert lane_of(build()) == "_|deals|contacts"
        assert split_lane(lane_of(build(portal_id="62515"))) == ("62515", "deals", "contacts")
        assert split_lane("_|deals|contacts") == (None, "deals", "contacts")
