"""AssociationRequest: what is accepted, what is refused, and how each refusal names its field."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hublink.domain.associations import (
    RECORD_VERSION,
    AssociationRequest,
    canonical_object_type,
    check_object_id,
    group_by_lane,
    lane_of,
    parse_api_items,
    split_lane,
)
from hublink.domain.errors import InvalidInputError
from tests.unit.strategies import (
    STANDARD_TYPE_FORMS,
    custom_type_ids,
    near_miss_object_ids,
    non_string_json,
    not_object_ids,
    object_ids,
    type_forms,
)

#: One valid item of the direct API's ``associations`` array.
GOOD_ITEM = {"fromObjectType": "deals", "fromObjectId": "123", "toObjectType": "contacts", "toObjectId": "456"}
#: The grammar of a record id, written out independently of the code under test.
OBJECT_ID_GRAMMAR = re.compile(r"[1-9][0-9]{0,19}")
#: Type fields and id fields with their JSON names and AssociationRequest.create keywords.
TYPE_FIELDS = [("fromObjectType", "from_object_type"), ("toObjectType", "to_object_type")]
ID_FIELDS = [("fromObjectId", "from_object_id"), ("toObjectId", "to_object_id")]


def build(**overrides: Any) -> AssociationRequest:
    """Create a valid deals -> contacts request, with ``overrides`` applied to create()'s keywords."""
    fields: dict[str, Any] = {
        "from_object_type": "deals",
        "from_object_id": "1",
        "to_object_type": "contacts",
        "to_object_id": "2",
        "received_at": 1_700_000_000.0,
    }
    fields.update(overrides)
    return AssociationRequest.create(**fields)


def refusal(**overrides: Any) -> InvalidInputError:
    """The InvalidInputError that create() raises for ``overrides``."""
    with pytest.raises(InvalidInputError) as info:
        build(**overrides)
    return info.value


class TestObjectTypes:
    """Object types are HubSpot names (singular or plural, any case) or type ids, canonicalised."""

    @pytest.mark.parametrize(("form", "canonical"), STANDARD_TYPE_FORMS)
    def test_every_standard_form_canonicalises_to_the_plural_name(self, form: str, canonical: str) -> None:
        """Each standard object's singular, plural and type id all become its plural name."""
        assert canonical_object_type(form) == canonical

    @pytest.mark.parametrize("form", ["deal", "deals", "0-3", "DEAL", "Deals"])
    def test_deal_spellings_share_one_lane(self, form: str) -> None:
        """deal, deals, 0-3 and their capitalisations put the request in the same lane as deals."""
        assert build(from_object_type=form).lane == "_|deals|contacts"

    @given(custom_type_ids)
    def test_custom_type_ids_are_kept_as_given(self, type_id: str) -> None:
        """A custom object type id such as 2-143967026 is its own canonical form."""
        assert canonical_object_type(type_id) == type_id

    def test_the_documented_custom_example_is_kept(self) -> None:
        """2-143967026 (docs/reference/hubspot.md §1.3's example) stays 2-143967026."""
        assert build(to_object_type="2-143967026").to_object_type == "2-143967026"

    @given(type_forms, type_forms)
    def test_create_stores_the_canonical_forms(self, source: tuple[str, str], target: tuple[str, str]) -> None:
        """create() stores both types in canonical form, whatever spelling was sent."""
        request = build(from_object_type=source[0], to_object_type=target[0])
        assert (request.from_object_type, request.to_object_type) == (source[1], target[1])

    @pytest.mark.parametrize(("json_name", "keyword"), TYPE_FIELDS)
    @pytest.mark.parametrize(
        "value",
        [
            "../x",
            "../../admin",
            "deals/1",
            "deals/../contacts",
            "%2e%2e%2fx",
            "deals?x=1",
            "deals\n",
            " deals",
            "deals\x00",
            "d\u00e9als",  # e with an acute accent
            "d\u0435als",  # Cyrillic ie
            "\uff44\uff45\uff41\uff4c\uff53",  # fullwidth "deals"
            "dealz",
            "0-",
            "0-03",
            "3-1",
            "2-" + "1" * 13,
            "",
            "x" * 100_000,
            3,
            0,
            None,
            True,
            ["deals"],
            {"name": "deals"},
        ],
        ids=lambda v: repr(v)[:20],
    )
    def test_hostile_types_are_refused_naming_the_field(self, json_name: str, keyword: str, value: object) -> None:
        """Traversal, slashes, look-alikes, unknown, empty, huge and non-string types are refused, naming the field."""
        error = refusal(**{keyword: value})
        assert [p.where for p in error.problems] == [f"/{json_name}"]
        assert error.problems[0].message.startswith(f"{json_name}: ")

    def test_a_huge_type_is_not_echoed_in_full(self) -> None:
        """A 100,000-character type is refused with a message short enough for a log line."""
        error = refusal(to_object_type="x" * 100_000)
        assert len(error.problems[0].message) < 500

    def test_a_look_alike_that_lowercases_onto_a_name_is_refused(self) -> None:
        """'TAS\\u212aS' (KELVIN SIGN, which str.lower() turns into k) is refused as non-ASCII, naming toObjectType."""
        error = refusal(to_object_type="TAS\u212aS")
        assert [p.where for p in error.problems] == ["/toObjectType"]

    @given(st.text(max_size=40))
    def test_only_the_documented_spellings_are_accepted(self, value: str) -> None:
        """Any string is accepted exactly when it is a standard name (ASCII, any case) or a 0-n / 2-n type id."""
        names = {form for form, _ in STANDARD_TYPE_FORMS}
        expected = (value.isascii() and value.lower() in names) or re.fullmatch(r"[02]-[1-9][0-9]{0,11}", value)
        try:
            canonical_object_type(value)
        except ValueError:
            assert not expected
        else:
            assert expected


class TestObjectIds:
    """Ids are positive decimal integers sent as strings, at most 20 digits, no leading zero."""

    @given(object_ids)
    def test_any_id_in_the_grammar_is_accepted_unchanged(self, value: str) -> None:
        """Any string matching [1-9][0-9]{0,19} is accepted and stored exactly as sent."""
        request = build(from_object_id=value, to_object_id=value)
        assert (request.from_object_id, request.to_object_id) == (value, value)

    @given(st.one_of(not_object_ids, near_miss_object_ids))
    def test_any_other_string_is_refused_naming_the_field(self, value: str) -> None:
        """Any string outside [1-9][0-9]{0,19} is refused, naming fromObjectId."""
        assert not OBJECT_ID_GRAMMAR.fullmatch(value)
        error = refusal(from_object_id=value)
        assert [p.where for p in error.problems] == ["/fromObjectId"]
        assert error.problems[0].message.startswith("fromObjectId: ")

    @given(non_string_json)
    def test_non_strings_are_refused(self, value: object) -> None:
        """A JSON number, boolean, null, array or object as an id is refused, naming toObjectId."""
        error = refusal(to_object_id=value)
        assert [p.where for p in error.problems] == ["/toObjectId"]

    @pytest.mark.parametrize(("json_name", "keyword"), ID_FIELDS)
    @pytest.mark.parametrize(
        "value",
        ["0", "012", "-1", "+1", "1.0", "1e3", "1" * 21, "", " 1", "1 ", "1\n", "\u0661\u0662", 123, 1.0, True, False],
        ids=repr,
    )
    def test_named_bad_ids_are_refused_naming_the_field(self, json_name: str, keyword: str, value: object) -> None:
        """Zero, leading zeros, signs, decimals, 21 digits, spaces, non-ASCII digits, numbers, booleans: all refused."""
        error = refusal(**{keyword: value})
        assert [p.where for p in error.problems] == [f"/{json_name}"]
        assert error.problems[0].message.startswith(f"{json_name}: ")

    @pytest.mark.parametrize("value", ["1" + "0" * 19, "9" * 20])
    def test_twenty_digits_are_accepted(self, value: str) -> None:
        """A 20-digit id is the longest accepted, and is returned unchanged."""
        assert check_object_id(value) == value

    def test_every_bad_field_is_named_at_once(self) -> None:
        """A request with four bad fields names all four in one refusal, in field order."""
        error = refusal(from_object_type="?", from_object_id="0", to_object_type=None, to_object_id=7)
        assert [p.where for p in error.problems] == ["/fromObjectType", "/fromObjectId", "/toObjectType", "/toObjectId"]


class TestOptionalFields:
    """portalId, source and sourceEventId."""

    @pytest.mark.parametrize(("value", "stored"), [("62515", "62515"), (62515, "62515")])
    def test_portal_ids_are_stored_as_strings(self, value: object, stored: str) -> None:
        """A portal id sent as a string or a JSON integer is stored as its decimal string."""
        assert build(portal_id=value).portal_id == stored

    @pytest.mark.parametrize("value", ["0", "062515", "-1", 0, -5, True, 1.5, "abc"], ids=repr)
    def test_bad_portal_ids_are_refused(self, value: object) -> None:
        """Zero, leading zeros, negatives, booleans, decimals and words are refused as portalId."""
        assert [p.where for p in refusal(portal_id=value).problems] == ["/portalId"]

    @pytest.mark.parametrize("value", ["", "x" * 201, 5])
    def test_bad_source_event_ids_are_refused(self, value: object) -> None:
        """An empty, over-long (201 characters) or non-string sourceEventId is refused."""
        assert [p.where for p in refusal(source_event_id=value).problems] == ["/sourceEventId"]

    @pytest.mark.parametrize("value", ["", "Hub Spot", "-x", "x" * 65])
    def test_bad_sources_are_refused(self, value: str) -> None:
        """A source that is not a short lower-case slug is refused."""
        assert [p.where for p in refusal(source=value).problems] == ["/source"]


class TestApiItems:
    """The direct API's array: 1 to max_items objects, all or nothing, each problem located."""

    def test_valid_items_parse_in_order(self) -> None:
        """Valid items become requests in order, with source api and the intake time."""
        parsed = parse_api_items([GOOD_ITEM, {**GOOD_ITEM, "toObjectId": "9"}], received_at=5.0, max_items=100)
        assert [r.pair for r in parsed] == [("123", "456"), ("123", "9")]
        assert {(r.source, r.received_at, r.portal_id) for r in parsed} == {("api", 5.0, None)}

    @pytest.mark.parametrize("count", [1, 100])
    def test_one_and_max_items_are_accepted(self, count: int) -> None:
        """One item and exactly max_items (100) items are both accepted."""
        assert len(parse_api_items([GOOD_ITEM] * count, received_at=0, max_items=100)) == count

    @pytest.mark.parametrize("count", [0, 101])
    def test_zero_and_too_many_items_are_refused(self, count: int) -> None:
        """An empty array and 101 items (max_items 100) are refused at /associations, saying the limits."""
        with pytest.raises(InvalidInputError) as info:
            parse_api_items([GOOD_ITEM] * count, received_at=0, max_items=100)
        assert [p.where for p in info.value.problems] == ["/associations"]
        assert f"1 to 100 items, got {count}" in info.value.problems[0].message

    @pytest.mark.parametrize("items", ["x", {"a": 1}, None, 5, GOOD_ITEM], ids=repr)
    def test_a_non_array_is_refused(self, items: object) -> None:
        """A string, object, null or number where the array belongs is refused at /associations."""
        with pytest.raises(InvalidInputError) as info:
            parse_api_items(items, received_at=0, max_items=100)
        assert [p.where for p in info.value.problems] == ["/associations"]
        assert "array" in info.value.problems[0].message

    @pytest.mark.parametrize(("item", "type_name"), [(7, "int"), ("x", "str"), (None, "NoneType"), ([], "list")])
    def test_a_non_object_item_is_refused_at_its_index(self, item: object, type_name: str) -> None:
        """An item that is not an object is refused at /associations/<i>, saying what it was."""
        with pytest.raises(InvalidInputError) as info:
            parse_api_items([GOOD_ITEM, item], received_at=0, max_items=100)
        assert [p.where for p in info.value.problems] == ["/associations/1"]
        assert type_name in info.value.problems[0].message

    def test_every_bad_field_of_every_item_is_located(self) -> None:
        """Problems carry /associations/<i>/<field> for each bad field of each bad item, and only those."""
        items = [
            GOOD_ITEM,
            {**GOOD_ITEM, "fromObjectId": 1, "toObjectType": "../x"},
            7,
            {**GOOD_ITEM, "toObjectId": "0"},
        ]
        with pytest.raises(InvalidInputError) as info:
            parse_api_items(items, received_at=0, max_items=100)
        assert [p.where for p in info.value.problems] == [
            "/associations/1/fromObjectId",
            "/associations/1/toObjectType",
            "/associations/2",
            "/associations/3/toObjectId",
        ]

    def test_missing_fields_are_located(self) -> None:
        """An empty object is refused with one problem per required field."""
        with pytest.raises(InvalidInputError) as info:
            parse_api_items([{}], received_at=0, max_items=100)
        assert [p.where for p in info.value.problems] == [
            "/associations/0/fromObjectType",
            "/associations/0/fromObjectId",
            "/associations/0/toObjectType",
            "/associations/0/toObjectId",
        ]

    @pytest.mark.parametrize("name", ["portalId", "sourceEventId"])
    def test_optional_fields_sent_as_null_are_refused(self, name: str) -> None:
        """An optional field may be left out but not sent as null."""
        with pytest.raises(InvalidInputError) as info:
            parse_api_items([{**GOOD_ITEM, name: None}], received_at=0, max_items=100)
        assert [p.where for p in info.value.problems] == [f"/associations/0/{name}"]

    @given(st.integers(min_value=0, max_value=99))
    def test_one_bad_item_refuses_the_whole_array(self, bad_index: int) -> None:
        """One bad item among 100 refuses the array, and the problems name only that item (all or nothing)."""
        items: list[object] = [GOOD_ITEM] * 100
        items[bad_index] = {**GOOD_ITEM, "fromObjectId": "012"}
        with pytest.raises(InvalidInputError) as info:
            parse_api_items(items, received_at=0, max_items=100)
        assert [p.where for p in info.value.problems] == [f"/associations/{bad_index}/fromObjectId"]


class TestStoredForm:
    """as_record is the wire format of queued work: fields are added, never renamed."""

    def test_round_trip_keeps_every_field(self) -> None:
        """from_record(as_record(r)) == r, for a request with every optional field set."""
        request = build(portal_id=62515, source="hubspot", source_event_id="e-1", occurred_at=1_699_999_999.5)
        assert AssociationRequest.from_record(request.as_record()) == request

    def test_the_record_is_json_and_versioned(self) -> None:
        """The record survives JSON encoding unchanged and carries the record version."""
        record = build(portal_id="62515").as_record()
        assert json.loads(json.dumps(record)) == record
        assert record["v"] == RECORD_VERSION

    @given(object_ids, object_ids, st.none() | object_ids, type_forms, type_forms)
    def test_round_trip_through_json(
        self, from_id: str, to_id: str, portal: str | None, source: tuple[str, str], target: tuple[str, str]
    ) -> None:
        """Any valid request, stored as JSON and loaded again, is the same request."""
        request = build(
            from_object_type=source[0],
            from_object_id=from_id,
            to_object_type=target[0],
            to_object_id=to_id,
            portal_id=portal,
        )
        assert AssociationRequest.from_record(json.loads(json.dumps(request.as_record()))) == request

    def test_unknown_future_fields_are_ignored(self) -> None:
        """A record written by a newer version, with fields this one does not know, still loads."""
        request = build(portal_id="62515")
        record = request.as_record() | {"v": RECORD_VERSION + 1, "label_ids": [3], "priority": "high"}
        assert AssociationRequest.from_record(record) == request

    def test_fields_an_older_version_lacked_take_their_defaults(self) -> None:
        """A record holding only the four required fields loads with the documented defaults."""
        record = {"from_object_type": "deals", "from_object_id": "1", "to_object_type": "contacts", "to_object_id": "2"}
        loaded = AssociationRequest.from_record(record)
        assert (loaded.portal_id, loaded.source, loaded.source_event_id, loaded.occurred_at) == (
            None,
            "api",
            None,
            None,
        )


class TestLanes:
    """A lane names the portal and the type pair: the work one batch call may carry."""

    def test_single_portal_lane(self) -> None:
        """Without a portal the lane is '_|from|to', and splits back with portal None."""
        lane = lane_of(build())
        assert lane == "_|deals|contacts"
        assert split_lane(lane) == (None, "deals", "contacts")

    def test_multi_portal_lane(self) -> None:
        """With a portal the lane starts with the portal id, and splits back to it."""
        lane = lane_of(build(portal_id="62515"))
        assert lane == "62515|deals|contacts"
        assert split_lane(lane) == ("62515", "deals", "contacts")

    @given(st.none() | object_ids, type_forms, type_forms)
    def test_split_lane_inverts_lane_of(
        self, portal: str | None, source: tuple[str, str], target: tuple[str, str]
    ) -> None:
        """split_lane(lane_of(r)) gives back r's portal and canonical types, with or without a portal."""
        request = build(portal_id=portal, from_object_type=source[0], to_object_type=target[0])
        assert split_lane(lane_of(request)) == (portal, source[1], target[1])

    def test_grouping_keeps_order_within_each_lane(self) -> None:
        """group_by_lane puts deal/0-3 spellings together and keeps arrival order inside a lane."""
        first, other, second = build(to_object_id="1"), build(to_object_type="companies"), build(from_object_type="0-3")
        assert group_by_lane([first, other, second]) == {
            "_|deals|contacts": [first, second],
            "_|deals|companies": [other],
        }
