"""Example: a demo-request form; HubLink finds the contact by email and the company by domain, and links them."""

from __future__ import annotations

import pytest
import requests

from examples.support import compact, event_body, start
from hublink.domain import signatures
from tests.integration.conftest import Sim, Stack
from tests.support.processes import wait_for

pytestmark = pytest.mark.integration
FORM_SECRET = "demo-form-secret"


def test_demo_request_links_contact_to_company_by_search(stack: Stack, sim: Sim) -> None:
    """The signed form is accepted at once; the worker's searches find both records and link them."""
    sim.post(
        "/_sim/records",
        {
            "records": [
                {"objectType": "contacts", "id": "7101", "properties": {"email": "Ada@Acme.example"}},
                {"objectType": "companies", "id": "9101", "properties": {"domain": "acme.example"}},
            ]
        },
    )
    url = start(stack, "demo-request-form", DEMO_FORM_SECRET=FORM_SECRET)
    body = compact(event_body("demo-request-form"))
    headers = {
        "X-Signature": "sha256=" + signatures.sign_hmac_sha256(FORM_SECRET, body, "hex"),
        "Content-Type": "application/json",
    }
    response = requests.post(f"{url}/webhooks/forms/demo-request", data=body, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["received"] == 1
    wait_for(lambda: ("contacts", "7101", "companies", "9101") in sim.pairs(), timeout=20, what="the association")
    assert sim.get("/_sim/requests")["by_endpoint"]["search"] == 2


def test_no_match_is_recorded_not_dropped(stack: Stack, sim: Sim) -> None:
    """With no contact to find (and no grace), the lookup ends in the dead-letter store as LOOKUP_NO_MATCH."""
    import redis

    url = start(stack, "demo-request-form", DEMO_FORM_SECRET=FORM_SECRET, HUBLINK_FRESH_RECORD_GRACE_S="0")
    body = compact(event_body("demo-request-form"))
    headers = {
        "X-Signature": "sha256=" + signatures.sign_hmac_sha256(FORM_SECRET, body, "hex"),
        "Content-Type": "application/json",
    }
    assert requests.post(f"{url}/webhooks/forms/demo-request", data=body, headers=headers, timeout=10).ok
    client = redis.Redis.from_url(stack.settings.redis_url)
    wait_for(lambda: client.zcard("hl:dlq") == 1, timeout=20, what="the dead letter")
    [letter_id] = client.zrange("hl:dlq", 0, -1)
    assert b"LOOKUP_NO_MATCH" in client.get(b"hl:dl:" + letter_id)
