"""The labelled and removal calls of the HubSpot client, against HubSpot's 2026-03 shapes (``responses`` stubs).

The simulator does not speak these endpoints yet; the end-to-end tests for them run after its merge.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import responses

from hublink.delivery.hubspot import MAX_LABEL_PAGES, HubSpotClient
from hublink.domain.errors import NotFoundError, ValidationRejectedError

BASE = "https://api.hubapi.test"
ASSOC = f"{BASE}/crm/associations/2026-03/deals/companies"
PUT = f"{BASE}/crm/objects/2026-03/deals/1/associations/companies/2"
LABELS = f"{BASE}/crm/associations/2026-03/deals/companies/labels"
PRIMARY = ("HUBSPOT_DEFINED", 5)
#: HubSpot naming company 666 as not found in a batch answer.
MISSING_666 = {
    "status": "error",
    "category": "OBJECT_NOT_FOUND",
    "message": "company 666 not found",
    "context": {"toObjectId": ["666"]},
}


def client() -> HubSpotClient:
    """A client on the stubbed host."""
    return HubSpotClient(BASE, connect_timeout_s=1.0, read_timeout_s=2.0)


def labels_between(pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """LabelsBetweenObjectPair results for ``pairs``."""
    return [
        {"fromObjectTypeId": "0-3", "fromObjectId": f, "toObjectTypeId": "0-2", "toObjectId": t, "labels": ["Primary"]}
        for f, t in pairs
    ]


def sent(call_index: int = 0) -> Any:
    """The JSON body of a recorded call."""
    body = responses.calls[call_index].request.body
    assert body is not None
    return json.loads(body)


class TestLabelledLinks:
    """batch/create and the labelled PUT carry the types, and each input's outcome is read back."""

    @responses.activate
    def test_batch_create_201_links_every_pair_with_its_types(self) -> None:
        """A 201 lists each pair: all linked; each input carried its association types."""
        pairs = [("1", "2"), ("3", "4")]
        responses.post(
            f"{ASSOC}/batch/create", json={"status": "COMPLETE", "results": labels_between(pairs)}, status=201
        )
        result = client().create_labelled_batch("t", "deals", "companies", [(p, [PRIMARY]) for p in pairs])
        assert result.linked == frozenset(pairs) and not result.failed
        assert sent()["inputs"][0] == {
            "from": {"id": "1"},
            "to": {"id": "2"},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}],
        }

    @responses.activate
    def test_batch_create_207_is_parsed_per_input(self) -> None:
        """A 207 multi-status: the listed pair is linked, the one an error names fails with its class."""
        body = {"status": "COMPLETE", "results": labels_between([("1", "2")]), "errors": [MISSING_666], "numErrors": 1}
        responses.post(f"{ASSOC}/batch/create", json=body, status=207)
        result = client().create_labelled_batch(
            "t", "deals", "companies", [(("1", "2"), [PRIMARY]), (("3", "666"), [PRIMARY])]
        )
        assert result.linked == frozenset({("1", "2")})
        assert isinstance(result.failed[("3", "666")], NotFoundError)

    @responses.activate
    def test_the_labelled_put_sends_the_types_as_its_body(self) -> None:
        """The single labelled PUT: a 201 links the pair; the body is the list of types."""
        responses.put(PUT, json=labels_between([("1", "2")])[0], status=201)
        result = client().associate_labelled("t", "deals", "1", "companies", "2", [PRIMARY])
        assert result.linked == frozenset({("1", "2")})
        assert sent() == [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}]

    @responses.activate
    def test_the_labelled_put_refused_raises_its_error(self) -> None:
        """A 400 for the single PUT is the call's error."""
        responses.put(PUT, json={"category": "VALIDATION_ERROR", "message": "bad type"}, status=400)
        with pytest.raises(ValidationRejectedError):
            client().associate_labelled("t", "deals", "1", "companies", "2", [PRIMARY])


class TestRemovals:
    """batch/archive and batch/labels/archive: a pair no error names is done."""

    @responses.activate
    def test_archive_groups_the_to_ids_by_from_and_a_204_removes_all(self) -> None:
        """Inputs are {from, to: [...]}; an empty answer means every pair was removed."""
        responses.post(f"{ASSOC}/batch/archive", body="", status=204)
        pairs = [("1", "2"), ("1", "3"), ("4", "5")]
        result = client().archive_batch("t", "deals", "companies", pairs)
        assert result.linked == frozenset(pairs)
        assert sent()["inputs"] == [
            {"from": {"id": "1"}, "to": [{"id": "2"}, {"id": "3"}]},
            {"from": {"id": "4"}, "to": [{"id": "5"}]},
        ]

    @responses.activate
    def test_labels_archive_fails_only_the_pair_an_error_names(self) -> None:
        """The named pair fails; the other had its label removed."""
        responses.post(
            f"{ASSOC}/batch/labels/archive", json={"status": "COMPLETE", "results": [], "errors": [MISSING_666]}
        )
        inputs = [(("1", "2"), [PRIMARY]), (("3", "666"), [PRIMARY])]
        result = client().archive_labels_batch("t", "deals", "companies", inputs)
        assert result.linked == frozenset({("1", "2")}) and isinstance(result.failed[("3", "666")], NotFoundError)
        assert sent()["inputs"][1]["types"] == [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}]

    @responses.activate
    def test_an_error_naming_no_input_sends_every_removal_again(self) -> None:
        """Which input failed is unknown: none counts as removed (removing again is harmless)."""
        responses.post(
            f"{ASSOC}/batch/archive", json={"status": "COMPLETE", "results": [], "errors": [{"message": "?"}]}
        )
        result = client().archive_batch("t", "deals", "companies", [("1", "2"), ("3", "4")])
        assert result.linked == frozenset() and set(result.failed) == {("1", "2"), ("3", "4")}


class TestLabelDefinitions:
    """The 2026-03 labels listing, every page, read defensively."""

    @responses.activate
    def test_definitions_are_listed_with_the_unlabelled_type_unnamed(self) -> None:
        """Each (category, typeId, label) is returned; odd entries are skipped."""
        body = {
            "results": [
                {"category": "HUBSPOT_DEFINED", "typeId": 341, "label": None},
                {"category": "HUBSPOT_DEFINED", "typeId": 5, "label": "Primary"},
                {"category": "USER_DEFINED", "typeId": "x", "label": "Bad"},
                "junk",
            ]
        }
        responses.get(LABELS, json=body)
        assert client().association_labels("t", "deals", "companies") == [
            ("HUBSPOT_DEFINED", 341, None),
            ("HUBSPOT_DEFINED", 5, "Primary"),
        ]

    @responses.activate
    def test_every_page_is_read_on_the_2026_03_path(self) -> None:
        """Definitions are read page after page while ``paging.next.after`` names one, never on the v4 path."""
        first = {"results": [{"category": "HUBSPOT_DEFINED", "typeId": 341}], "paging": {"next": {"after": "1"}}}
        second = {"results": [{"category": "USER_DEFINED", "typeId": 1000, "label": "Decision maker"}]}
        responses.get(LABELS, json=first, match=[responses.matchers.query_param_matcher({"limit": "500"})])
        responses.get(
            LABELS, json=second, match=[responses.matchers.query_param_matcher({"limit": "500", "after": "1"})]
        )
        assert client().association_labels("t", "deals", "companies") == [
            ("HUBSPOT_DEFINED", 341, None),
            ("USER_DEFINED", 1000, "Decision maker"),
        ]
        assert len(responses.calls) == 2

    @responses.activate
    def test_a_cursor_that_never_ends_stops_at_the_page_cap(self) -> None:
        """A HubSpot answer that always names a next page is read at most MAX_LABEL_PAGES times."""
        body = {"results": [], "paging": {"next": {"after": "1"}}}
        responses.get(LABELS, json=body)
        assert client().association_labels("t", "deals", "companies") == []
        assert len(responses.calls) == MAX_LABEL_PAGES


class TestBatchCreateStatus:
    """batch/create answers 200 since 2025-08 and 201 before: both are success."""

    @pytest.mark.parametrize("status", [200, 201])
    @responses.activate
    def test_batch_create_accepts_200_and_201(self, status: int) -> None:
        """Every pair HubSpot lists is linked, whichever of the two success statuses it answered."""
        responses.post(
            f"{ASSOC}/batch/create", json={"status": "COMPLETE", "results": labels_between([("1", "2")])}, status=status
        )
        result = client().create_labelled_batch("t", "deals", "companies", [(("1", "2"), [PRIMARY])])
        assert result.linked == frozenset({("1", "2")}) and not result.failed
