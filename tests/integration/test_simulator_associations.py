"""The rest of the association surface (issue 13) from the simulator process, checked against the 2026-03 specs.

The simulator runs as ``python -m hubspot_sim --synthetic-records deals:1000000``. The specs' schemas are in
``tests/contracts/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
import requests
from jsonschema import Draft4Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from tests.conftest import HUBSPOT_TOKEN
from tests.integration.conftest import Sim, start_sim
from tests.support.processes import REPO

pytestmark = pytest.mark.integration

SPECS = REPO / "tests" / "contracts"  # HubSpot's component schemas (tests/contracts/README.md)
ASSOCIATIONS = "crm-associations-2026-03.json"
AUTH = {"Authorization": f"Bearer {HUBSPOT_TOKEN}"}
PAIRS = "/crm/associations/2026-03/deals/contacts/batch/"
OBJECT = "/crm/objects/2026-03/deals/{}/associations/contacts/{}"


@cache
def _validator(spec_file: str, schema: str) -> Draft4Validator:
    """A validator for one component schema (OpenAPI 3.0 schemas are draft 4 plus ignored keywords)."""
    spec = json.loads((SPECS / spec_file).read_text(encoding="utf-8"))
    registry = Registry().with_resource("spec", Resource.from_contents(spec, default_specification=DRAFT4))
    return Draft4Validator(
        {"$ref": f"spec#/components/schemas/{schema}"}, registry=registry, format_checker=FormatChecker()
    )


def check(schema: str, body: Any, spec_file: str = ASSOCIATIONS) -> None:
    """Fail with every schema violation of ``body`` listed."""
    problems = sorted(_validator(spec_file, schema).iter_errors(body), key=str)
    assert not problems, "\n".join(f"{list(e.path)}: {e.message}" for e in problems)


@pytest.fixture(scope="module")
def scaled_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    """A simulator with a million synthetic deals."""
    sim = start_sim(tmp_path_factory.mktemp("scaled-sim"), "--synthetic-records", "deals:1000000")
    yield sim
    sim.process.stop()


@pytest.fixture
def sim(scaled_sim: Sim) -> Sim:
    """The scaled simulator, reset, with a user-defined deal→contact label."""
    scaled_sim.post("/_sim/reset")
    labels = scaled_sim.post(
        "/_sim/labels",
        {
            "fromObjectType": "deals",
            "toObjectType": "contacts",
            "label": "Decision maker",
            "inverseLabel": "Decides for",
        },
    )
    assert [r["typeId"] for r in labels["results"]] == [1000, 1001]
    return scaled_sim


def api(method: str, sim: Sim, path: str, body: Any = None) -> requests.Response:
    """Call the API with the test token."""
    return requests.request(method, sim.url + path, json=body, headers=AUTH, timeout=10)


def spec(type_id: int, category: str = "HUBSPOT_DEFINED") -> dict[str, Any]:
    """An AssociationSpec."""
    return {"associationCategory": category, "associationTypeId": type_id}


class TestShapes:
    """Each endpoint answers what the spec declares."""

    def test_labelled_put_read_and_delete(self, sim: Sim) -> None:
        """201 LabelsBetweenObjectPair, a read in the forward-paging collection, then 204 and nothing left."""
        put = api("PUT", sim, OBJECT.format(1, 2), [spec(1000, "USER_DEFINED")])
        assert put.status_code == 201
        check("LabelsBetweenObjectPair", put.json())
        read = api("GET", sim, "/crm/objects/2026-03/contacts/2/associations/deals")
        check("CollectionResponseMultiAssociatedObjectWithLabelForwardPaging", read.json())
        assert [t.get("label") for t in read.json()["results"][0]["associationTypes"]] == [None, "Decides for"]
        listed = sim.associations()
        assert listed[0]["labels"][1] == {"category": "USER_DEFINED", "typeId": 1000, "label": "Decision maker"}
        deleted = api("DELETE", sim, OBJECT.format(1, 2))
        assert (deleted.status_code, deleted.content) == (204, b"")
        assert sim.associations() == []

    def test_batch_create_200_and_207(self, sim: Sim) -> None:
        """All good: 200 (HubSpot's since 2025-08) BatchResponseLabelsBetweenObjectPair; one invalid id: 207."""
        good = {"inputs": [{"from": {"id": "1"}, "to": {"id": "2"}, "types": [spec(3)]}]}
        check("BatchInputPublicAssociationMultiPost", good)
        created = api("POST", sim, PAIRS + "create", good)
        assert created.status_code == 200
        check("BatchResponseLabelsBetweenObjectPair", created.json())
        sim.post("/_sim/invalid-ids", {"ids": ["666"]})
        mixed = {"inputs": [*good["inputs"], {"from": {"id": "666"}, "to": {"id": "2"}, "types": [spec(3)]}]}
        partial = api("POST", sim, PAIRS + "create", mixed)
        assert partial.status_code == 207
        check("BatchResponseLabelsBetweenObjectPairWithErrors", partial.json())

    def test_batch_read_archive_and_labels_archive(self, sim: Sim) -> None:
        """batch/read answers 200 (207 with an id without associations); the archives answer BatchResponse."""
        api(
            "POST",
            sim,
            PAIRS + "create",
            {"inputs": [{"from": {"id": "1"}, "to": {"id": "2"}, "types": [spec(1000, "USER_DEFINED")]}]},
        )
        read = api("POST", sim, PAIRS + "read", {"inputs": [{"id": "1"}]})
        assert read.status_code == 200
        check("BatchResponsePublicAssociationMultiWithLabel", read.json())
        partly = api("POST", sim, PAIRS + "read", {"inputs": [{"id": "1"}, {"id": "5"}]})
        assert partly.status_code == 207
        check("BatchResponsePublicAssociationMultiWithLabelWithErrors", partly.json())
        body = {"inputs": [{"from": {"id": "1"}, "to": {"id": "2"}, "types": [spec(1000, "USER_DEFINED")]}]}
        labels_archived = api("POST", sim, PAIRS + "labels/archive", body)
        assert labels_archived.status_code == 200
        check("BatchResponse", labels_archived.json())
        archive = {"inputs": [{"from": {"id": "1"}, "to": [{"id": "2"}]}]}
        check("BatchInputPublicAssociationMultiArchive", archive)
        archived = api("POST", sim, PAIRS + "archive", archive)
        assert archived.status_code == 200
        check("BatchResponse", archived.json())
        assert sim.associations() == []

    def test_label_definitions(self, sim: Sim) -> None:
        """v4 labels: each entry an AssociationSpecWithLabel; HubSpot's first."""
        body = api("GET", sim, "/crm/v4/associations/deals/contacts/labels").json()
        for entry in body["results"]:
            check("AssociationSpecWithLabel", entry)
        assert [r["typeId"] for r in body["results"]] == [3, 1000]

    def test_errors(self, sim: Sim) -> None:
        """An unknown type id and a too-large batch read both answer the Error schema with 400."""
        for response in (
            api("PUT", sim, OBJECT.format(1, 2), [spec(4)]),
            api("POST", sim, PAIRS + "read", {"inputs": [{"id": str(i)} for i in range(1, 1002)]}),
        ):
            assert response.status_code == 400
            check("Error", response.json())


class TestRecordsAtScale:
    """A million synthetic deals, searched and paged the way a client pages a large type."""

    def test_paging_by_id_through_the_cap(self, sim: Sim) -> None:
        """Pages of 200 ids GT the last one seen; after 10,000 is a 400 Error; every answer fits the spec."""
        query = {
            "filterGroups": [{"filters": [{"propertyName": "hs_object_id", "operator": "GT", "value": "500000"}]}],
            "sorts": ["hs_object_id"],  # the spec's form: property names
            "properties": ["dealname"],
            "limit": 200,
            "after": "0",
        }
        check("PublicObjectSearchRequest", query, "crm-objects-2026-03.json")
        page = api("POST", sim, "/crm/objects/2026-03/deals/search", query)
        check("CollectionResponseWithTotalSimplePublicObject", page.json(), "crm-objects-2026-03.json")
        ids = [r["id"] for r in page.json()["results"]]
        assert (ids[0], ids[-1], page.json()["total"]) == ("500001", "500200", 500_000)
        capped = api("POST", sim, "/crm/objects/2026-03/deals/search", {**query, "after": "10000"})
        assert capped.status_code == 400
        check("Error", capped.json(), "crm-objects-2026-03.json")
        assert api("GET", sim, "/crm/objects/2026-03/deals/1000000").status_code == 200
        assert sim.get("/_sim/config")["synthetic_records"] == {"deals": 1_000_000}
