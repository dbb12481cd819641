"""Example: deal.creation and ticket.creation webhooks; each new record is linked to the record its property names."""

from __future__ import annotations

import json
import time

import pytest

from examples.support import event_body, post_signed_v3, start
from tests.integration.conftest import Sim, Stack
from tests.support.processes import wait_for

pytestmark = pytest.mark.integration


def test_new_deal_and_ticket_are_linked_through_their_properties(stack: Stack, sim: Sim) -> None:
    """The worker reads each new record's property and links deal->company and ticket->contact."""
    sim.post(
        "/_sim/records",
        {
            "records": [
                {"objectType": "deals", "id": "5101", "properties": {"associated_company_id": "9201"}},
                {"objectType": "tickets", "id": "6101", "properties": {"reporter_contact_id": "7201"}},
            ]
        },
    )
    url = start(stack, "record-creation")
    events = json.loads(event_body("record-creation"))
    for event in events:
        event["occurredAt"] = int(time.time() * 1000)  # fresh, as HubSpot would send it
    response = post_signed_v3(url, "/webhooks/hubspot", json.dumps(events).encode())
    assert response.status_code == 200, response.text
    assert response.json()["received"] == 2
    wanted = {("deals", "5101", "companies", "9201"), ("tickets", "6101", "contacts", "7201")}
    wait_for(lambda: wanted <= sim.pairs(), timeout=20, what="both associations")
