"""Example: a deal workflow sends contact_id and company_id; HubLink links the deal to both."""

from __future__ import annotations

import pytest

from examples.support import compact, event_body, post_signed_v2, start
from tests.integration.conftest import Sim, Stack
from tests.support.processes import wait_for

pytestmark = pytest.mark.integration


def test_deal_workflow_links_contact_and_company(stack: Stack, sim: Sim) -> None:
    """The signed workflow body becomes deal->contact and deal->company in the simulator."""
    url = start(stack, "deal-workflow")
    response = post_signed_v2(url, "/webhooks/workflow", compact(event_body("deal-workflow")))
    assert response.status_code == 200, response.text
    assert response.json()["received"] == 1
    wanted = {("deals", "5001", "contacts", "7001"), ("deals", "5001", "companies", "9001")}
    wait_for(lambda: wanted <= sim.pairs(), timeout=15, what="both associations")
