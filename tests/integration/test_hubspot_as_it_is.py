"""HubSpot as it really behaves, end to end: the simulator in its strict modes, real gunicorn and workers.

A batch naming one invalid id is refused whole (``--batch-errors whole``, the simulator's default); a
record the association API does not know is invalid (``records: strict``); identical pairs must not
travel twice; HubSpot's own webhook deliveries (signed by the simulator's sender) reach the rules.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
import redis as redis_lib
import requests

from tests.integration.conftest import Sim, Stack
from tests.integration.helpers import assoc, dead_letter_ids, due_of, post_associations, wait_settled
from tests.support.processes import wait_for

pytestmark = pytest.mark.integration

SECRET = "client-secret-for-deliveries"
RULES = """\
rules:
  - name: deal-created
    source: hubspot
    when: {subscriptionType: deal.creation}
    associations:
      - from: {objectType: deals, id: "objectId"}
        to: {objectType: contacts, id: "to_contact"}
"""


def seed(sim: Sim, object_type: str, ids: list[int]) -> None:
    """Make records exist for the association API (strict records)."""
    sim.post("/_sim/records", {"records": [{"objectType": object_type, "id": str(i)} for i in ids]})


def test_one_invalid_id_among_100_pairs_costs_at_most_three_calls_and_one_dead_letter(stack: Stack, sim: Sim) -> None:
    """Strict records, whole-batch errors: 99 pairs reach HubSpot, one dead letter names CONTACT=1050."""
    sim.put("/_sim/config", {"records": "strict", "batch_errors": "whole"})
    seed(sim, "deals", list(range(1, 101)))
    seed(sim, "contacts", [1000 + n for n in range(1, 101) if n != 50])
    stack.settings = replace(stack.settings, fresh_record_grace_s=0.0, batch_size=100)
    url = stack.gunicorn()
    ids = post_associations(url, [assoc(n, 1000 + n) for n in range(1, 101)])
    stack.worker()
    redis = redis_lib.Redis.from_url(stack.settings.redis_url)
    wait_settled(redis, timeout=60)
    assert len(sim.pairs()) == 99
    assert ("deals", "50", "contacts", "1050") not in sim.pairs()
    (dead,) = dead_letter_ids(redis)
    assert dead == ids[49]
    letter = json.loads(redis.get(f"hl:dl:{dead}") or b"{}")
    assert "CONTACT=1050 is not valid" in letter["message"]
    assert sim.get("/_sim/requests")["by_endpoint"].get("batch_associate_default", 0) <= 3


def test_fifty_requests_for_one_pair_reach_hubspot_once(stack: Stack, sim: Sim) -> None:
    """50 direct-API requests for the same pair, queued together: HubSpot sees one input, all 50 settle done."""
    url = stack.gunicorn()
    for _ in range(50):
        post_associations(url, [assoc(77, 7077)])
    stack.worker()
    redis = redis_lib.Redis.from_url(stack.settings.redis_url)
    wait_settled(redis, timeout=60)
    requests_seen = sim.get("/_sim/requests")
    assert requests_seen["inputs_total"] == 1
    assert sim.pairs() == {("deals", "77", "contacts", "7077")}
    assert not dead_letter_ids(redis)


def test_a_429_asking_for_a_year_defers_by_at_most_the_cap(stack: Stack, sim: Sim) -> None:
    """Retry-After 31536000 on a 429: the association is due within HUBLINK_MAX_RETRY_AFTER_S (here 60 s)."""
    stack.settings = replace(stack.settings, max_retry_after_s=60.0)
    sim.faults(script=[{"status": 429, "headers": {"Retry-After": "31536000"}}])
    url = stack.gunicorn()
    [association_id] = post_associations(url, [assoc(5, 6)])
    stack.worker()
    redis = redis_lib.Redis.from_url(stack.settings.redis_url)
    later = (time.time() + 5) * 1000

    def deferred() -> float | None:
        """The due time once the association was put back."""
        score = due_of(redis, "_|deals|contacts", association_id)
        return score if score is not None and score > later else None

    due = wait_for(deferred, timeout=30, what="the deferral")
    assert due <= (time.time() + 61) * 1000


def test_hubspots_own_delivery_of_a_creation_and_an_association_change_runs_the_rule(
    stack: Stack, sim: Sim, tmp_path: Path
) -> None:
    """The simulator's sender signs a deal.creation and a real-shaped deal.associationChange (no objectId):
    gunicorn answers 2xx at the first attempt and the creation's rule links the deal to its contact."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    stack.settings = replace(stack.settings, hubspot_client_secret=SECRET, rules_file=str(rules))
    stack.worker()
    url = stack.gunicorn(HUBSPOT_CLIENT_SECRET=SECRET, HUBLINK_RULES_FILE=str(rules))
    creation = {
        "eventId": 1,
        "subscriptionId": 7,
        "portalId": 62515,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": "deal.creation",
        "objectId": 5001,
        "to_contact": 7001,
    }
    change = {
        "eventId": 2,
        "portalId": 62515,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": "deal.associationChange",
        "associationType": "DEAL_TO_CONTACT",
        "fromObjectId": 5001,
        "toObjectId": 7002,
        "associationRemoved": False,
        "isPrimaryAssociation": False,
    }
    answer = requests.post(
        f"{sim.url}/_sim/webhooks/deliver",
        json={
            "url": f"{url}/webhooks/hubspot",
            "clientSecret": SECRET,
            "events": [creation, change],
            "retryScale": 0.0001,
        },
        timeout=5,
    )
    assert answer.status_code == 202, answer.text

    def delivered() -> dict[str, object] | None:
        """The delivery, once it ended."""
        (delivery,) = sim.get("/_sim/webhooks/deliveries")["deliveries"]
        return delivery if delivery["state"] != "pending" else None

    delivery = wait_for(delivered, timeout=30, what="the delivery")
    assert delivery["state"] == "delivered"
    assert [a.get("status") for a in delivery["attempts"]] == [200]  # type: ignore[union-attr]
    wait_for(lambda: ("deals", "5001", "contacts", "7001") in sim.pairs(), timeout=30, what="the rule's link")
