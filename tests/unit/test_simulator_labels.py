"""The simulator's labelled associations and records at scale, without sockets.

Requests go straight to ``HubSpotApi.handle``; nothing waits.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from hubspot_sim.api import HubSpotApi
from hubspot_sim.association_types import LabelRegistry
from hubspot_sim.messages import Answer, Request
from hubspot_sim.object_types import canonical_type
from hubspot_sim.records import SeedRecord
from hubspot_sim.state import SimState
from hubspot_sim.synthetic_records import parse_synthetic

TOKEN = "pat-na1-unit-test-token-0001"
PAIRS = "/crm/associations/2026-03/deals/contacts/batch/"
OBJECT = "/crm/objects/2026-03/deals/{}/associations/contacts/{}"


def call(api: HubSpotApi, method: str, path: str, body: Any = None) -> Answer:
    """One API request without a socket."""
    raw = json.dumps(body).encode() if body is not None else b""
    return api.handle(Request(method, path, body=raw, authorization=f"Bearer {TOKEN}"))


def spec(type_id: int, category: str = "HUBSPOT_DEFINED") -> dict[str, Any]:
    """An AssociationSpec."""
    return {"associationCategory": category, "associationTypeId": type_id}


def created(pairs: list[tuple[str, str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """A BatchInputPublicAssociationMultiPost."""
    return {"inputs": [{"from": {"id": f}, "to": {"id": t}, "types": types} for f, t, types in pairs]}


def types_of(api: HubSpotApi, path: str) -> dict[str, list[tuple[str, int, str | None]]]:
    """The associations read at ``path``: toObjectId → [(category, typeId, label)]."""
    body = call(api, "GET", path).json()
    return {
        r["toObjectId"]: [(t["category"], t["typeId"], t.get("label")) for t in r["associationTypes"]]
        for r in body["results"]
    }


@pytest.fixture
def api() -> HubSpotApi:
    """An API over a fresh state with one user-defined deal→contact label (ids 1000 and 1001)."""
    state = SimState()
    state.create_label("deals", "contacts", "Decision maker", "Decides for")
    return HubSpotApi(state)


class TestLabelDefinitions:
    """GET /crm/v4/associations/{from}/{to}/labels lists HubSpot's types, then user-defined ones."""

    @pytest.mark.parametrize(
        ("from_type", "to_type", "expected"),
        [
            ("contacts", "companies", [(279, None), (1, "Primary")]),
            ("deals", "companies", [(341, None), (5, "Primary")]),
            ("companies", "contacts", [(280, None), (2, "Primary")]),
        ],
    )
    def test_hubspot_defined(self, from_type: str, to_type: str, expected: list[tuple[int, str | None]]) -> None:
        """The unlabelled type, then Primary, both HUBSPOT_DEFINED."""
        body = call(HubSpotApi(SimState()), "GET", f"/crm/v4/associations/{from_type}/{to_type}/labels").json()
        assert [(r["typeId"], r.get("label")) for r in body["results"]] == expected
        assert {r["category"] for r in body["results"]} == {"HUBSPOT_DEFINED"}

    def test_user_defined_labels_follow(self, api: HubSpotApi) -> None:
        """deal→contact: 3, then the user-defined label; contact→deal: 4, then its inverse."""
        forward = call(api, "GET", "/crm/v4/associations/deals/contacts/labels").json()["results"]
        backward = call(api, "GET", "/crm/v4/associations/0-1/0-3/labels").json()["results"]
        assert forward == [
            {"category": "HUBSPOT_DEFINED", "typeId": 3},
            {"category": "USER_DEFINED", "typeId": 1000, "label": "Decision maker"},
        ]
        assert backward[1] == {"category": "USER_DEFINED", "typeId": 1001, "label": "Decides for"}

    def test_a_label_name_is_unique_per_pair(self) -> None:
        """Creating the same label twice raises ValueError."""
        registry = LabelRegistry()
        registry.create("deals", "contacts", "Champion")
        with pytest.raises(ValueError, match="already has"):
            registry.create("deals", "contacts", "Champion")


class TestLabelledPut:
    """PUT .../associations/{toType}/{toId} with a body of types."""

    def test_a_label_brings_the_unlabelled_type_and_both_directions(self, api: HubSpotApi) -> None:
        """201 LabelsBetweenObjectPair naming the label; both records see both types."""
        answer = call(api, "PUT", OBJECT.format(1, 2), [spec(1000, "USER_DEFINED")])
        assert (answer.status, answer.json()) == (
            201,
            {
                "fromObjectTypeId": "0-3",
                "fromObjectId": "1",
                "toObjectTypeId": "0-1",
                "toObjectId": "2",
                "labels": ["Decision maker"],
            },
        )
        assert types_of(api, "/crm/objects/2026-03/deals/1/associations/contacts") == {
            "2": [("HUBSPOT_DEFINED", 3, None), ("USER_DEFINED", 1000, "Decision maker")]
        }
        assert types_of(api, "/crm/objects/2026-03/contacts/2/associations/deals") == {
            "1": [("HUBSPOT_DEFINED", 4, None), ("USER_DEFINED", 1001, "Decides for")]
        }

    @pytest.mark.parametrize(
        ("body", "named"),
        [
            ([spec(279)], "associationTypeId"),
            ([spec(9999, "USER_DEFINED")], "associationTypeId"),
            ([], "body"),
            ([{"associationCategory": "MADE_UP", "associationTypeId": 3}], "associationCategory"),
            ([{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": "3"}], "associationTypeId"),
        ],
    )
    def test_types_the_pair_lacks_are_refused(self, api: HubSpotApi, body: Any, named: str) -> None:
        """400 VALIDATION_ERROR naming the bad field; nothing is associated."""
        answer = call(api, "PUT", OBJECT.format(1, 2), body)
        assert (answer.status, answer.json()["category"]) == (400, "VALIDATION_ERROR")
        assert named in answer.json()["message"]
        assert call(api, "GET", "/crm/objects/2026-03/deals/1/associations/contacts").json() == {"results": []}

    def test_invalid_ids_answer_as_the_default_put_does(self, api: HubSpotApi) -> None:
        """An id marked invalid answers 400 INVALID_OBJECT_IDS."""
        api.state.mark_invalid(["2"], 400)
        answer = call(api, "PUT", OBJECT.format(1, 2), [spec(3)])
        assert answer.json()["context"]["INVALID_OBJECT_IDS"] == ["CONTACT=2 is not valid"]

    def test_delete_removes_every_type_both_ways(self, api: HubSpotApi) -> None:
        """DELETE answers 204 with no body; neither record sees the other; /_sim/associations forgets it."""
        call(api, "PUT", OBJECT.format(1, 2), [spec(1000, "USER_DEFINED")])
        answer = call(api, "DELETE", OBJECT.format(1, 2))
        assert (answer.status, answer.payload()) == (204, b"")
        assert types_of(api, "/crm/objects/2026-03/contacts/2/associations/deals") == {}
        assert api.state.associations_json()["total"] == 0

    def test_every_spelling_is_listed_and_removed_together(self, api: HubSpotApi) -> None:
        """The same pair sent as deal/0-1 and deals/contacts is listed twice; one DELETE removes both."""
        call(api, "PUT", "/crm/objects/2026-03/deal/1/associations/default/0-1/2")
        call(api, "PUT", "/crm/objects/2026-03/deals/1/associations/default/contacts/2")
        listed = api.state.associations_json()["associations"]
        assert [(a["fromObjectType"], a["toObjectType"]) for a in listed] == [("deal", "0-1"), ("deals", "contacts")]
        assert call(api, "DELETE", "/crm/v4/objects/0-1/2/associations/0-3/1").status == 204
        assert api.state.associations_json() == {"total": 0, "associations": []}

    def test_the_control_listing_shows_labels(self, api: HubSpotApi) -> None:
        """GET /_sim/associations lists each association's types with their labels."""
        call(api, "PUT", OBJECT.format(1, 2), [spec(1000, "USER_DEFINED")])
        listed = api.state.associations_json()["associations"]
        assert listed[0]["labels"] == [
            {"category": "HUBSPOT_DEFINED", "typeId": 3},
            {"category": "USER_DEFINED", "typeId": 1000, "label": "Decision maker"},
        ]


class TestReadPaging:
    """GET .../associations/{toType} pages with limit and after."""

    def test_pages(self, api: HubSpotApi) -> None:
        """Three contacts read two at a time: a next cursor, then the last one."""
        body = {"inputs": [{"from": {"id": "1"}, "to": {"id": str(i)}} for i in (5, 6, 7)]}
        call(api, "POST", PAIRS + "associate/default", body)
        first = call(api, "GET", "/crm/objects/2026-03/deals/1/associations/contacts", None)
        assert len(first.json()["results"]) == 3
        page = api.handle(
            Request(
                "GET", "/crm/objects/2026-03/deals/1/associations/contacts", "limit=2", authorization=f"Bearer {TOKEN}"
            )
        ).json()
        assert ([r["toObjectId"] for r in page["results"]], page["paging"]["next"]["after"]) == (["5", "6"], "2")
        rest = api.handle(
            Request(
                "GET", "/crm/objects/2026-03/deals/1/associations/contacts", "after=2", authorization=f"Bearer {TOKEN}"
            )
        ).json()
        assert [r["toObjectId"] for r in rest["results"]] == ["7"]
        assert "paging" not in rest


class TestBatchEndpoints:
    """batch/create, batch/archive, batch/labels/archive and batch/read."""

    @pytest.mark.parametrize("status", [200, 201])
    def test_create_answers_200_or_201_with_both_directions(self, api: HubSpotApi, status: int) -> None:
        """All good: 200 as HubSpot answers now (201 with batch_create_status 201), both directions listed."""
        if status == 201:
            api.state.configure({"batch_create_status": 201})
        answer = call(api, "POST", PAIRS + "create", created([("1", "2", [spec(1000, "USER_DEFINED")])]))
        body = answer.json()
        assert answer.status == status
        assert [(r["fromObjectId"], r["toObjectId"], r["labels"]) for r in body["results"]] == [
            ("1", "2", ["Decision maker"]),
            ("2", "1", ["Decides for"]),
        ]
        assert body["status"] == "COMPLETE"

    def test_create_answers_207_with_per_input_errors(self, api: HubSpotApi) -> None:
        """One invalid id: 207, the valid input created, one errors[] entry naming the bad one."""
        api.state.mark_invalid(["666"], 400)
        answer = call(api, "POST", PAIRS + "create", created([("1", "2", [spec(3)]), ("666", "2", [spec(3)])]))
        body = answer.json()
        assert (answer.status, body["numErrors"]) == (207, 1)
        assert body["errors"][0]["context"]["INVALID_OBJECT_IDS"] == ["DEAL=666 is not valid"]
        assert [r["fromObjectId"] for r in body["results"]] == ["1", "2"]

    def test_create_refuses_an_unknown_type_whole(self, api: HubSpotApi) -> None:
        """A type the pair lacks is a 400 for the whole batch."""
        answer = call(api, "POST", PAIRS + "create", created([("1", "2", [spec(3)]), ("3", "4", [spec(5)])]))
        assert answer.status == 400
        assert api.state.associations_json()["total"] == 0

    def test_labels_archive_keeps_the_unlabelled_type(self, api: HubSpotApi) -> None:
        """Archiving the label leaves the plain association; archiving the unlabelled type removes it."""
        call(api, "POST", PAIRS + "create", created([("1", "2", [spec(1000, "USER_DEFINED")])]))
        answer = call(api, "POST", PAIRS + "labels/archive", created([("1", "2", [spec(1000, "USER_DEFINED")])]))
        assert answer.status == 200
        assert types_of(api, "/crm/objects/2026-03/contacts/2/associations/deals") == {
            "1": [("HUBSPOT_DEFINED", 4, None)]
        }
        call(api, "POST", PAIRS + "labels/archive", created([("1", "2", [spec(3)])]))
        assert types_of(api, "/crm/objects/2026-03/deals/1/associations/contacts") == {}

    def test_archive_removes_the_associations(self, api: HubSpotApi) -> None:
        """batch/archive removes each from → to[] association, every type, both ways."""
        call(api, "POST", PAIRS + "create", created([("1", "2", [spec(3)]), ("1", "3", [spec(3)])]))
        body = {"inputs": [{"from": {"id": "1"}, "to": [{"id": "2"}, {"id": "3"}]}]}
        answer = call(api, "POST", PAIRS + "archive", body)
        assert (answer.status, answer.json()["results"]) == (200, [])
        assert types_of(api, "/crm/objects/2026-03/deals/1/associations/contacts") == {}

    def test_read_lists_each_input_and_names_those_without(self, api: HubSpotApi) -> None:
        """An id with associations is listed; one without gets an errors[] entry and the answer is 207."""
        call(api, "POST", PAIRS + "create", created([("1", "2", [spec(3)])]))
        answer = call(api, "POST", PAIRS + "read", {"inputs": [{"id": "1"}, {"id": "9"}]})
        body = answer.json()
        assert answer.status == 207
        assert body["results"] == [
            {
                "from": {"id": "1"},
                "to": [{"toObjectId": "2", "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 3}]}],
            }
        ]
        assert body["errors"][0]["context"] == {"fromObjectId": ["9"]}

    def test_read_takes_at_most_1000_inputs(self, api: HubSpotApi) -> None:
        """1,001 inputs are refused naming the cap."""
        answer = call(api, "POST", PAIRS + "read", {"inputs": [{"id": str(i)} for i in range(1, 1002)]})
        assert answer.status == 400
        assert "1000" in answer.json()["message"]


class TestSyntheticRecords:
    """--synthetic-records deals:1000000: ids generated on demand, searched by hs_object_id."""

    @pytest.fixture
    def scaled(self) -> HubSpotApi:
        """A million synthetic deals, strict records, one seeded deal shadowing its synthetic twin."""
        seeded = [SeedRecord("deals", "10", {"dealname": "Seeded"})]
        return HubSpotApi(SimState(synthetic={"deals": 1_000_000}, records_mode="strict", records=seeded))

    def search(self, api: HubSpotApi, body: dict[str, Any]) -> Answer:
        """POST a deal search."""
        return call(api, "POST", "/crm/objects/2026-03/deals/search", body)

    def test_ids_in_range_exist(self, scaled: HubSpotApi) -> None:
        """Deal 1,000,000 reads and associates under strict records; deal 1,000,001 does not exist."""
        assert (
            call(scaled, "GET", "/crm/objects/2026-03/deals/1000000").json()["properties"]["hs_object_id"] == "1000000"
        )
        assert call(scaled, "GET", "/crm/objects/2026-03/deals/1000001").status == 404
        scaled.state.seed_records([SeedRecord("contacts", "2", {})])
        assert call(scaled, "PUT", "/crm/objects/2026-03/deals/999/associations/default/contacts/2").status == 200

    def test_search_pages_by_id(self, scaled: HubSpotApi) -> None:
        """hs_object_id GT 999,997 sorted ascending: 999,998 then 999,999 and a cursor, total 3."""
        query = {
            "filterGroups": [{"filters": [{"propertyName": "hs_object_id", "operator": "GT", "value": "999997"}]}],
            "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            "limit": 2,
        }
        body = self.search(scaled, query).json()
        assert ([r["id"] for r in body["results"]], body["total"], body["paging"]["next"]["after"]) == (
            ["999998", "999999"],
            3,
            "2",
        )
        rest = self.search(scaled, {**query, "after": "2"}).json()
        assert ([r["id"] for r in rest["results"]], "paging" in rest) == (["1000000"], False)

    def test_ranges_intersect_and_seeded_records_shadow(self, scaled: HubSpotApi) -> None:
        """GTE 9 and LT 12 give 9, 10, 11, and deal 10 shows its seeded properties."""
        filters = [
            {"propertyName": "hs_object_id", "operator": "GTE", "value": "9"},
            {"propertyName": "hs_object_id", "operator": "LT", "value": "12"},
        ]
        body = self.search(scaled, {"filterGroups": [{"filters": filters}], "properties": ["dealname"]}).json()
        assert [r["properties"]["dealname"] for r in body["results"]] == ["deals 9", "Seeded", "deals 11"]

    def test_descending(self, scaled: HubSpotApi) -> None:
        """A descending sort starts at the highest id."""
        body = self.search(scaled, {"sorts": [{"propertyName": "hs_object_id", "direction": "DESCENDING"}], "limit": 1})
        assert body.json()["results"][0]["id"] == "1000000"

    def test_the_10000_results_cap(self, scaled: HubSpotApi) -> None:
        """A page may end at result 10,000 but not go past it; after 10,000 is HubSpot's 400."""
        last = self.search(scaled, {"limit": 200, "after": "9900"}).json()
        assert (len(last["results"]), "paging" in last, last["total"]) == (100, False, 1_000_000)
        refused = self.search(scaled, {"limit": 200, "after": "10000"})
        assert (refused.status, refused.json()["category"]) == (400, "VALIDATION_ERROR")
        assert "10,000" in refused.json()["message"]

    @pytest.mark.parametrize(
        "query",
        [
            {"filterGroups": [{"filters": [{"propertyName": "dealname", "operator": "EQ", "value": "x"}]}]},
            {"sorts": [{"propertyName": "createdate", "direction": "ASCENDING"}]},
            {"filterGroups": [{"filters": []}, {"filters": []}]},
        ],
    )
    def test_other_queries_are_refused(self, scaled: HubSpotApi, query: dict[str, Any]) -> None:
        """Filters, sorts or groups beyond hs_object_id answer 400."""
        assert self.search(scaled, query).status == 400

    @pytest.mark.parametrize(
        ("text", "expected"),
        [("deals:1000000", ("deals", 1_000_000)), ("0-1:5", ("contacts", 5)), ("deal:2", ("deals", 2))],
    )
    def test_the_flag_value(self, text: str, expected: tuple[str, int]) -> None:
        """TYPE:COUNT with any spelling of the type."""
        assert parse_synthetic(text, canonical_type) == expected

    @pytest.mark.parametrize("text", ["deals", "deals:0", "widgets:5", "deals:-1"])
    def test_bad_flag_values(self, text: str) -> None:
        """Anything else raises ValueError."""
        with pytest.raises(ValueError, match="synthetic records"):
            parse_synthetic(text, canonical_type)


class TestSearchSortsAndCap:
    """Seeded records' search honours sorts and the 10,000 cap too."""

    def test_sorted_by_a_number_property(self) -> None:
        """Sorting by amount descending orders numerically."""
        seeded = [SeedRecord("deals", str(i), {"amount": str(a)}) for i, a in ((1, 5), (2, 100), (3, 20))]
        api = HubSpotApi(SimState(records=seeded))
        body = call(
            api,
            "POST",
            "/crm/objects/2026-03/deals/search",
            {"sorts": [{"propertyName": "amount", "direction": "DESCENDING"}]},
        )
        assert [r["id"] for r in body.json()["results"]] == ["2", "3", "1"]

    def test_after_past_the_cap_is_refused(self) -> None:
        """after 10,000 answers 400 even with few records."""
        assert (
            call(HubSpotApi(SimState()), "POST", "/crm/objects/2026-03/deals/search", {"after": "10000"}).status == 400
        )
