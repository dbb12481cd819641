"""The simulator's association rules without sockets: batch errors, duplicates, strict records, pairs, directions.

Requests go straight to ``HubSpotApi.handle``; time is a clock the tests move, so nothing waits.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from hubspot_sim.api import HubSpotApi
from hubspot_sim.association_types import DEFAULT_TYPE_IDS, default_type_id
from hubspot_sim.messages import Answer, Request
from hubspot_sim.object_types import canonical_type, is_object_id
from hubspot_sim.records import SeedRecord, parse_seed
from hubspot_sim.state import SimState

TOKEN = "pat-na1-unit-test-token-0001"
BATCH = "/crm/associations/2026-03/{}/{}/batch/associate/default"
V4_BATCH = "/crm/v4/associations/{}/{}/batch/associate/default"
SINGLE = "/crm/objects/2026-03/{}/{}/associations/default/{}/{}"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        """The current time."""
        return self.now


def batch(api: HubSpotApi, pairs: list[tuple[str, str]], types: tuple[str, str] = ("deals", "contacts")) -> Answer:
    """One default batch through the API handler."""
    body = {"inputs": [{"from": {"id": f}, "to": {"id": t}} for f, t in pairs]}
    return api.handle(
        Request("POST", BATCH.format(*types), body=json.dumps(body).encode(), authorization=f"Bearer {TOKEN}")
    )


def put(api: HubSpotApi, from_type: str, from_id: str, to_type: str, to_id: str) -> Answer:
    """One single default PUT through the API handler."""
    path = SINGLE.format(from_type, from_id, to_type, to_id)
    return api.handle(Request("PUT", path, authorization=f"Bearer {TOKEN}"))


def seed(object_type: str, object_id: str, visible_after_ms: int = 0) -> SeedRecord:
    """A seed record without properties."""
    return SeedRecord(object_type, object_id, {}, visible_after_ms)


def pairs_of(state: SimState) -> list[tuple[str, str, str, str]]:
    """The associations recorded, in order."""
    listed = state.associations_json()["associations"]
    return [(a["fromObjectType"], a["fromObjectId"], a["toObjectType"], a["toObjectId"]) for a in listed]


class TestWholeBatchErrors:
    """By default a batch naming any invalid id is refused whole, as integrators report HubSpot's doing."""

    def test_every_invalid_id_is_named_and_nothing_is_recorded(self) -> None:
        """A 400 VALIDATION_ERROR lists each invalid id as TYPE=id, in input order, and associates nothing."""
        state = SimState()
        state.mark_invalid(["666", "38374264688"], 400)
        answer = batch(HubSpotApi(state), [("1", "2"), ("666", "2"), ("3", "38374264688")])
        body = answer.json()
        assert answer.status == 400
        assert set(body) == {"status", "message", "correlationId", "category", "context"}
        assert (body["status"], body["category"], body["message"]) == (
            "error",
            "VALIDATION_ERROR",
            "One or more associations are invalid",
        )
        assert body["context"] == {
            "INVALID_OBJECT_IDS": ["DEAL=666 is not valid", "CONTACT=38374264688 is not valid"],
        }
        assert pairs_of(state) == []

    def test_missing_ids_are_invalid_too(self) -> None:
        """An id marked not found (404) is listed the same way in a whole-batch refusal."""
        state = SimState()
        state.mark_invalid(["777"], 404)
        answer = batch(HubSpotApi(state), [("1", "777")], types=("companies", "tickets"))
        assert (answer.status, answer.json()["context"]["INVALID_OBJECT_IDS"]) == (400, ["TICKET=777 is not valid"])

    def test_the_v4_path_behaves_the_same(self) -> None:
        """The v4 twin of the batch refuses the whole batch too."""
        state = SimState()
        state.mark_invalid(["666"], 400)
        body = json.dumps({"inputs": [{"from": {"id": "666"}, "to": {"id": "2"}}]}).encode()
        path = V4_BATCH.format("contacts", "companies")
        answer = HubSpotApi(state).handle(Request("POST", path, body=body, authorization=f"Bearer {TOKEN}"))
        assert (answer.status, answer.json()["context"]["INVALID_OBJECT_IDS"]) == (400, ["CONTACT=666 is not valid"])

    def test_per_input_mode_keeps_the_valid_inputs(self) -> None:
        """With per-input errors the valid inputs associate and each invalid one gets an errors[] entry."""
        state = SimState(batch_errors="per-input")
        state.mark_invalid(["666"], 400)
        answer = batch(HubSpotApi(state), [("1", "2"), ("666", "2")])
        body = answer.json()
        assert (answer.status, body["numErrors"]) == (200, 1)
        assert body["errors"][0]["context"]["INVALID_OBJECT_IDS"] == ["DEAL=666 is not valid"]
        assert pairs_of(state) == [("deals", "1", "contacts", "2")]

    def test_an_unknown_mode_is_refused(self) -> None:
        """batch_errors other than whole or per-input raises ValueError naming it."""
        with pytest.raises(ValueError, match="batch_errors"):
            SimState(batch_errors="partial")


class TestDuplicates:
    """A batch naming the same association twice is refused."""

    @pytest.mark.parametrize("mode", ["whole", "per-input"])
    def test_the_duplicate_is_named_in_message_and_context(self, mode: str) -> None:
        """400 VALIDATION_ERROR naming the pair and both input positions; nothing is recorded."""
        state = SimState(batch_errors=mode)
        answer = batch(HubSpotApi(state), [("1", "2"), ("3", "4"), ("1", "2")])
        body = answer.json()
        assert (answer.status, body["category"]) == (400, "VALIDATION_ERROR")
        assert "DEAL=1 -> CONTACT=2" in body["message"]
        assert "inputs[0]" in body["message"]
        assert "inputs[2]" in body["message"]
        assert body["context"] == {"DUPLICATE_ASSOCIATIONS": ["DEAL=1 -> CONTACT=2"]}
        assert pairs_of(state) == []

    def test_the_reverse_pair_is_not_a_duplicate(self) -> None:
        """(1, 2) and (2, 1) are two associations."""
        state = SimState()
        assert batch(HubSpotApi(state), [("1", "2"), ("2", "1")]).status == 200


class TestStrictRecords:
    """With records strict, only seeded records exist."""

    def test_unseeded_ids_answer_404_on_the_single_put(self) -> None:
        """A single PUT naming an unseeded record answers 404 OBJECT_NOT_FOUND naming it."""
        state = SimState(records_mode="strict", records=[seed("deals", "1")])
        answer = put(HubSpotApi(state), "deals", "1", "contacts", "2")
        body = answer.json()
        assert (answer.status, body["category"]) == (404, "OBJECT_NOT_FOUND")
        assert body["context"] == {"objectId": ["2"], "objectType": ["CONTACT"]}
        assert pairs_of(state) == []

    def test_seeded_records_associate(self) -> None:
        """Both sides seeded: 200, and the association is recorded."""
        state = SimState(records_mode="strict", records=[seed("deals", "1"), seed("contacts", "2")])
        assert put(HubSpotApi(state), "deal", "1", "0-1", "2").status == 200
        assert pairs_of(state) == [("deal", "1", "0-1", "2")]

    def test_a_record_of_another_type_does_not_count(self) -> None:
        """A contact 2 does not make company 2 exist."""
        state = SimState(records_mode="strict", records=[seed("deals", "1"), seed("contacts", "2")])
        answer = batch(HubSpotApi(state), [("1", "2")], types=("deals", "companies"))
        assert answer.json()["context"]["INVALID_OBJECT_IDS"] == ["COMPANY=2 is not valid"]

    def test_a_batch_names_every_unseeded_id(self) -> None:
        """A whole-batch refusal lists every side not seeded."""
        state = SimState(records_mode="strict", records=[seed("deals", "1"), seed("contacts", "2")])
        answer = batch(HubSpotApi(state), [("1", "2"), ("5", "2"), ("1", "6")])
        assert answer.json()["context"]["INVALID_OBJECT_IDS"] == ["DEAL=5 is not valid", "CONTACT=6 is not valid"]

    def test_any_mode_accepts_unseeded_ids(self) -> None:
        """With records any (the default), every well-formed id exists."""
        assert put(HubSpotApi(SimState()), "deals", "1", "contacts", "2").status == 200


class TestVisibleAfter:
    """A record seeded with visibleAfterMs does not exist for the API until then."""

    @pytest.mark.parametrize("mode", ["any", "strict"])
    def test_invalid_until_visible(self, mode: str) -> None:
        """Before the delay: refused (batch 400, PUT 404, read 404); after: associated and readable."""
        clock = Clock()
        state = SimState(records_mode=mode, clock=clock, records=[seed("deals", "1")])
        state.seed_records([seed("contacts", "2", visible_after_ms=1500)])
        api = HubSpotApi(state)
        assert batch(api, [("1", "2")]).json()["context"]["INVALID_OBJECT_IDS"] == ["CONTACT=2 is not valid"]
        assert put(api, "deals", "1", "contacts", "2").status == 404
        assert state.read_record("contacts", "2", []) is None
        clock.now += 1.5
        assert put(api, "deals", "1", "contacts", "2").status == 200
        assert state.read_record("contacts", "2", []) is not None

    def test_the_seed_body_accepts_it_at_the_top_and_per_record(self) -> None:
        """visibleAfterMs at the top applies to every record; a record's own value wins."""
        raw = {
            "visibleAfterMs": 100,
            "records": [{"objectType": "deals", "id": "1"}, {"objectType": "deals", "id": "2", "visibleAfterMs": 0}],
        }
        assert [r.visible_after_ms for r in parse_seed(raw, canonical_type, is_object_id)] == [100, 0]

    @pytest.mark.parametrize("value", [-1, "10", True, 1.5])
    def test_a_bad_delay_is_refused(self, value: Any) -> None:
        """visibleAfterMs must be whole milliseconds of at least 0."""
        with pytest.raises(ValueError, match="visibleAfterMs"):
            parse_seed({"records": [], "visibleAfterMs": value}, canonical_type, is_object_id)


class TestDefaultPairs:
    """Default associations exist only for the pairs HubSpot defines them for."""

    @pytest.mark.parametrize(
        ("from_type", "to_type"),
        [("contacts", "products"), ("line_items", "contacts"), ("notes", "calls"), ("leads", "deals")],
    )
    def test_other_standard_pairs_are_refused(self, from_type: str, to_type: str) -> None:
        """A pair outside HubSpot's table answers 400 VALIDATION_ERROR, single and batch, recording nothing."""
        state = SimState()
        api = HubSpotApi(state)
        single = put(api, from_type, "1", to_type, "2")
        assert (single.status, single.json()["category"]) == (400, "VALIDATION_ERROR")
        assert "No default association" in single.json()["message"]
        assert batch(api, [("1", "2")], types=(from_type, to_type)).status == 400
        assert pairs_of(state) == []

    def test_the_table_lists_both_directions(self) -> None:
        """Every pair in the table has its reverse, with a different type id."""
        for (from_type, to_type), type_id in DEFAULT_TYPE_IDS.items():
            reverse = DEFAULT_TYPE_IDS[(to_type, from_type)]
            assert reverse != type_id or from_type == to_type

    def test_custom_types_need_declaring(self) -> None:
        """A custom type's pair is refused until the type is declared, then gets a stable made-up id."""
        state = SimState()
        api = HubSpotApi(state)
        assert put(api, "contacts", "1", "2-77", "2").status == 400
        state.declare_object_types(["2-77"])
        answer = put(api, "contacts", "1", "2-77", "2")
        assert answer.status == 200
        assert answer.json()["results"][0]["associationSpec"]["associationTypeId"] == default_type_id(
            "contacts", "2-77", {"2-77"}
        )

    def test_seeding_a_custom_record_declares_its_type(self) -> None:
        """A seeded record of type 2-<n> makes the type known."""
        state = SimState(records=[seed("2-88", "5")])
        assert put(HubSpotApi(state), "2-88", "5", "deals", "1").status == 200
        assert state.object_types_json() == {"objectTypes": ["2-88"]}

    def test_two_custom_types_both_need_declaring(self) -> None:
        """A pair of custom types has a default only when both are known."""
        assert default_type_id("2-1", "2-2", {"2-1"}) is None
        assert default_type_id("2-1", "2-2", {"2-1", "2-2"}) is not None


class TestBothDirections:
    """Batch answers list both directions of each pair, as HubSpot's do."""

    def test_each_pair_gives_its_forward_and_reverse_result(self) -> None:
        """deal→contact (3) then contact→deal (4) for each input, in input order."""
        body = batch(HubSpotApi(SimState()), [("1", "2"), ("3", "4")]).json()
        got = [(r["associationSpec"]["associationTypeId"], r["from"]["id"], r["to"]["id"]) for r in body["results"]]
        assert got == [(3, "1", "2"), (4, "2", "1"), (3, "3", "4"), (4, "4", "3")]

    def test_the_single_put_answers_its_own_direction(self) -> None:
        """The single PUT answers one result, the direction asked for."""
        body = put(HubSpotApi(SimState()), "companies", "1", "contacts", "2").json()
        assert [r["associationSpec"]["associationTypeId"] for r in body["results"]] == [280]
