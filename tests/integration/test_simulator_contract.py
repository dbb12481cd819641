"""The simulator and the client against HubSpot's official 2026-03 OpenAPI specs, so neither can drift.

The specs' schemas are in ``tests/contracts/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from hublink.delivery.hubspot import HubSpotClient
from tests.conftest import HUBSPOT_TOKEN
from tests.integration.conftest import Sim

pytestmark = pytest.mark.integration
SPECS = Path(__file__).resolve().parents[1] / "contracts"  # HubSpot's component schemas (tests/contracts/README.md)


def validator(spec_file: str, schema: str) -> Draft202012Validator:
    """A validator for one component schema of one spec, resolving its $refs inside the spec."""
    spec = json.loads((SPECS / spec_file).read_text())
    registry = Registry().with_resource("spec", Resource.from_contents(spec, default_specification=_DRAFT))
    return Draft202012Validator({"$ref": f"spec#/components/schemas/{schema}"}, registry=registry)


_DRAFT = __import__("referencing.jsonschema", fromlist=["DRAFT202012"]).DRAFT202012
AUTH = {"Authorization": f"Bearer {HUBSPOT_TOKEN}"}


def check(spec_file: str, schema: str, body: Any) -> None:
    """Fail with every schema violation listed."""
    errors = sorted(validator(spec_file, schema).iter_errors(body), key=str)
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


class TestSimulatorAnswers:
    """Each simulator answer has the shape HubSpot's spec declares."""

    def test_single_put(self, sim: Sim) -> None:
        """The single default PUT answers a BatchResponsePublicDefaultAssociation."""
        body = requests.put(
            f"{sim.url}/crm/objects/2026-03/deals/1/associations/default/contacts/2", headers=AUTH, timeout=5
        ).json()
        check("crm-associations-2026-03.json", "BatchResponsePublicDefaultAssociation", body)
        assert body["results"][0]["associationSpec"] == {
            "associationCategory": "HUBSPOT_DEFINED",
            "associationTypeId": 3,
        }

    def test_batch_with_errors(self, sim: Sim) -> None:
        """With per-input errors, a batch with one invalid id answers the same schema, with errors[]."""
        requests.put(f"{sim.url}/_sim/config", json={"batch_errors": "per-input"}, timeout=5).raise_for_status()
        sim.post("/_sim/invalid-ids", {"ids": ["666"], "status": 400})
        inputs = {"inputs": [{"from": {"id": "1"}, "to": {"id": "2"}}, {"from": {"id": "666"}, "to": {"id": "2"}}]}
        check("crm-associations-2026-03.json", "BatchInputPublicDefaultAssociationMultiPost", inputs)
        body = requests.post(
            f"{sim.url}/crm/associations/2026-03/deals/contacts/batch/associate/default",
            json=inputs,
            headers=AUTH,
            timeout=5,
        ).json()
        check("crm-associations-2026-03.json", "BatchResponsePublicDefaultAssociation", body)
        assert body["numErrors"] == 1

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 500, 503])
    def test_error_bodies(self, sim: Sim, status: int) -> None:
        """HubSpot's Error schema holds for every error status the simulator produces."""
        sim.faults(script=[{"status": status}])
        response = requests.put(
            f"{sim.url}/crm/objects/2026-03/deals/1/associations/default/contacts/2", headers=AUTH, timeout=5
        )
        assert response.status_code == status
        check("crm-associations-2026-03.json", "Error", response.json())

    def test_unauthenticated_error(self, sim: Sim) -> None:
        """A missing token answers 401 with HubSpot's Error schema."""
        response = requests.put(f"{sim.url}/crm/objects/2026-03/deals/1/associations/default/contacts/2", timeout=5)
        assert response.status_code == 401
        check("crm-associations-2026-03.json", "Error", response.json())

    def test_read_and_search(self, sim: Sim) -> None:
        """Record reads and searches answer SimplePublicObject and its collection."""
        sim.post(
            "/_sim/records", {"records": [{"objectType": "contacts", "id": "11", "properties": {"email": "a@b.c"}}]}
        )
        read = requests.get(
            f"{sim.url}/crm/objects/2026-03/contacts/11?properties=email", headers=AUTH, timeout=5
        ).json()
        check("crm-objects-2026-03.json", "SimplePublicObject", read)
        search = {
            "filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": "A@b.c"}]}],
            "properties": ["email"],
            "limit": 2,
        }
        found = requests.post(
            f"{sim.url}/crm/objects/2026-03/contacts/search", json=search, headers=AUTH, timeout=5
        ).json()
        check("crm-objects-2026-03.json", "CollectionResponseWithTotalSimplePublicObject", found)
        assert [r["id"] for r in found["results"]] == ["11"]

    def test_oauth_token(self, sim: Sim) -> None:
        """The token endpoint answers HubSpot's AccessTokenResponse."""
        sim.post("/_sim/oauth-apps", {"client_id": "c", "client_secret": "s", "refresh_token": "r", "portal_id": "9"})
        body = requests.post(
            f"{sim.url}/oauth/v1/token",
            data={"grant_type": "refresh_token", "client_id": "c", "client_secret": "s", "refresh_token": "r"},
            timeout=5,
        ).json()
        check("oauth-2026-03.json", "AccessTokenResponse", body)


class TestNewFailureBodies:
    """Every failure body of HubSpot's real behaviour (issue 11) follows the spec's Error schema."""

    def put_config(self, sim: Sim, config: dict[str, Any]) -> None:
        """PUT /_sim/config."""
        requests.put(f"{sim.url}/_sim/config", json=config, timeout=5).raise_for_status()

    def batch(self, sim: Sim, pairs: list[tuple[str, str]], types: str = "deals/contacts") -> requests.Response:
        """One default batch."""
        inputs = {"inputs": [{"from": {"id": f}, "to": {"id": t}} for f, t in pairs]}
        url = f"{sim.url}/crm/associations/2026-03/{types}/batch/associate/default"
        return requests.post(url, json=inputs, headers=AUTH, timeout=5)

    def test_whole_batch_refusal(self, sim: Sim) -> None:
        """The 400 refusing a batch with an invalid id."""
        sim.post("/_sim/invalid-ids", {"ids": ["666"]})
        response = self.batch(sim, [("666", "2")])
        assert response.status_code == 400
        check("crm-associations-2026-03.json", "Error", response.json())

    def test_duplicate_pair(self, sim: Sim) -> None:
        """The 400 refusing a batch naming a pair twice."""
        response = self.batch(sim, [("1", "2"), ("1", "2")])
        assert response.status_code == 400
        check("crm-associations-2026-03.json", "Error", response.json())

    def test_pair_without_a_default(self, sim: Sim) -> None:
        """The 400 for a pair HubSpot defines no default association for."""
        response = self.batch(sim, [("1", "2")], types="contacts/products")
        assert response.status_code == 400
        check("crm-associations-2026-03.json", "Error", response.json())

    def test_strict_records(self, sim: Sim) -> None:
        """The 404 of a single PUT naming an unseeded record, and the per-input errors of a batch."""
        self.put_config(sim, {"records": "strict"})
        response = requests.put(
            f"{sim.url}/crm/objects/2026-03/deals/1/associations/default/contacts/2", headers=AUTH, timeout=5
        )
        assert response.status_code == 404
        check("crm-associations-2026-03.json", "Error", response.json())
        self.put_config(sim, {"batch_errors": "per-input"})
        body = self.batch(sim, [("1", "2")]).json()
        check("crm-associations-2026-03.json", "BatchResponsePublicDefaultAssociation", body)

    def test_daily_limit(self, sim: Sim) -> None:
        """HubSpot's DAILY 429 (which carries the category integrators report)."""
        self.put_config(sim, {"daily_limit": 1})
        path = f"{sim.url}/crm/objects/2026-03/deals/1/associations/default/contacts/2"
        assert requests.put(path, headers=AUTH, timeout=5).status_code == 200
        response = requests.put(path, headers=AUTH, timeout=5)
        assert response.status_code == 429
        check("crm-associations-2026-03.json", "Error", response.json())

    def test_webhook_sender_refusal(self, sim: Sim) -> None:
        """The control API's 400 for a target off the machine."""
        body = {"url": "http://example.com/", "clientSecret": "s", "events": [{"eventId": 1}]}
        response = requests.post(f"{sim.url}/_sim/webhooks/deliver", json=body, timeout=5)
        assert response.status_code == 400
        check("webhooks-2026-03.json", "Error", response.json())


class TestClientRequests:
    """What HubLink's client sends is what the spec asks for."""

    def test_batch_body_follows_the_spec_and_the_answer_parses(self, sim: Sim) -> None:
        """The client's batch body validates as BatchInputPublicDefaultAssociationMultiPost."""
        sent: list[Any] = []

        class Recording(requests.Session):
            """Remembers each JSON body."""

            def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
                """Record, then send."""
                body = kwargs.get("data")
                sent.append(json.loads(body) if isinstance(body, bytes) else kwargs.get("json"))
                return super().request(method, url, *args, **kwargs)

        client = HubSpotClient(sim.url, connect_timeout_s=2, read_timeout_s=5, session=Recording())
        result = client.associate_default_batch(HUBSPOT_TOKEN, "deals", "contacts", [("1", "2"), ("3", "4")])
        check("crm-associations-2026-03.json", "BatchInputPublicDefaultAssociationMultiPost", sent[0])
        assert result.linked == {("1", "2"), ("3", "4")}
