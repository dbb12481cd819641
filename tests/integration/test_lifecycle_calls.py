"""HubSpot's changed paths and statuses, read by the client from the simulator in strict mode.

Label definitions come from the 2026-03 path, every page (docs/reference/hubspot.md §9.7); batch creates
answering 200 (HubSpot's since 2025-08) or 201 (the spec's) both link.
"""

from __future__ import annotations

import pytest

from hublink.delivery.hubspot import HubSpotClient
from tests.integration.conftest import HUBSPOT_TOKEN, Sim

pytestmark = pytest.mark.integration

PRIMARY = ("HUBSPOT_DEFINED", 5)


@pytest.fixture
def strict(sim: Sim) -> Sim:
    """The simulator as HubSpot is: only seeded records exist, a bad id fails the whole default batch."""
    sim.put("/_sim/config", {"records": "strict", "batch_errors": "whole"})
    records = [{"objectType": "deals", "id": str(i)} for i in (1, 3)]
    records += [{"objectType": "companies", "id": str(i)} for i in (2, 4)]
    sim.post("/_sim/records", {"records": records})
    return sim


def client(sim: Sim) -> HubSpotClient:
    """A client on the simulator."""
    return HubSpotClient(sim.url, connect_timeout_s=2.0, read_timeout_s=5.0)


class TestLabelDefinitions:
    """The label catalog's source: the 2026-03 path, paged."""

    def test_every_page_of_definitions_is_read_from_the_2026_03_path(self, strict: Sim) -> None:
        """With pages of 2, HubSpot's types and five user-defined labels all come back, and v4 is never asked."""
        for n in range(5):
            strict.post("/_sim/labels", {"fromObjectType": "deals", "toObjectType": "companies", "label": f"L{n}"})
        found = client(strict).association_labels(HUBSPOT_TOKEN, "deals", "companies", page_size=2)
        names = {label for _, _, label in found if label}
        assert {f"L{n}" for n in range(5)} <= names and "Primary" in names
        assert len(found) == len(set(found))
        endpoints = strict.get("/_sim/requests")["by_endpoint"]
        assert endpoints.get("association_labels_paged", 0) >= 4
        assert "association_labels" not in endpoints


class TestBatchCreateStatus:
    """batch/create's success status, as the simulator's ``batch_create_status`` sets it."""

    @pytest.mark.parametrize("status", [200, 201])
    def test_both_success_statuses_link_every_pair(self, strict: Sim, status: int) -> None:
        """A 200 (HubSpot since 2025-08) and a 201 (the spec) are both read as success for every input."""
        strict.put("/_sim/config", {"batch_create_status": status})
        inputs = [(("1", "2"), [PRIMARY]), (("3", "4"), [PRIMARY])]
        result = client(strict).create_labelled_batch(HUBSPOT_TOKEN, "deals", "companies", inputs)
        assert result.linked == frozenset({("1", "2"), ("3", "4")}) and not result.failed
        assert strict.get("/_sim/requests")["by_status"].get(str(status)) == 1
        assert {("deals", "1", "companies", "2"), ("deals", "3", "companies", "4")} <= strict.pairs()
