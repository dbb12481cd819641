"""HubSpot's limits end to end against the strict simulator: gunicorn, a worker and the simulator, all real.

An admin's association limit (docs/reference/hubspot.md §9.4): the refused inputs are dead-lettered as
``association_limit`` at once, with no retry and no split batch. A throttled OAuth token endpoint (§9.6):
the portal waits for its Retry-After, no attempt is spent, and the whole backlog is linked after.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
import requests

from tests.conftest import ADMIN_TOKEN, API_TOKEN
from tests.integration.conftest import HUBSPOT_TOKEN, Sim, Stack
from tests.integration.helpers import assoc, dead_letter_ids, post_associations
from tests.support.processes import wait_for

pytestmark = pytest.mark.integration

ASSOCIATION_ENDPOINTS = ("associate_default", "batch_associate_default", "associate_labels", "batch_create")


def strict(sim: Sim) -> None:
    """The simulator as HubSpot is: only seeded records exist, a bad id fails a whole default batch."""
    sim.put("/_sim/config", {"records": "strict", "batch_errors": "whole"})


def dead_letters(url: str) -> list[dict[str, Any]]:
    """Every dead letter, from the HTTP API."""
    response = requests.get(f"{url}/api/dead-letters", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5)
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()["items"]
    return items


class TestAssociationLimit:
    """A limit of one company per deal, and three companies asked for one deal."""

    def test_one_linked_two_dead_letters_at_most_two_calls(self, stack: Stack, sim: Sim) -> None:
        """1 linked, 2 dead letters ``association_limit`` naming the pair's types, at most 2 association calls."""
        strict(sim)
        sim.put("/_sim/config", {"association_limits": {"deals>companies": 1}})
        records = [{"objectType": "deals", "id": "7"}] + [{"objectType": "companies", "id": str(n)} for n in (1, 2, 3)]
        sim.post("/_sim/records", {"records": records})
        url = stack.gunicorn()
        items = [
            {"fromObjectType": "deals", "fromObjectId": "7", "toObjectType": "companies", "toObjectId": str(n)}
            for n in (1, 2, 3)
        ]
        response = requests.post(
            f"{url}/api/associations",
            json={"associations": items},
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=10,
        )
        assert response.status_code == 202, response.text
        stack.worker()
        wait_for(lambda: len(dead_letters(url)) == 2, timeout=20, what="two dead letters")
        linked = {p for p in sim.pairs() if p[:2] == ("deals", "7")}
        assert len(linked) == 1
        letters = dead_letters(url)
        assert {(d["reason"], d["category"]) for d in letters} == {("association_limit", "ASSOCIATION_LIMIT")}
        assert all(d["attemptCount"] == 1 for d in letters), letters
        assert all("DEAL→COMPANY" in d["message"] for d in letters)
        assert {d["association"]["toObjectId"] for d in letters} | {p[3] for p in linked} == {"1", "2", "3"}
        by_endpoint = sim.get("/_sim/requests")["by_endpoint"]
        assert sum(by_endpoint.get(name, 0) for name in ASSOCIATION_ENDPOINTS) <= 2, by_endpoint


class TestThrottledTokenEndpoint:
    """An OAuth portal with 500 pending while its token endpoint answers 429 for 20 s."""

    def test_no_dead_letter_and_all_linked_after(
        self, stack: Stack, sim: Sim, redis_client: redis_lib.Redis, tmp_path: Path
    ) -> None:
        """429s from the token endpoint for 20 s: 0 dead letters, no attempt spent, all 500 linked after."""
        strict(sim)
        records = [{"objectType": "deals", "id": str(n)} for n in range(1, 501)]
        sim.post("/_sim/records", {"records": [*records, {"objectType": "companies", "id": "9000"}]})
        sim.post(
            "/_sim/oauth-apps",
            {"client_id": "cid-1", "client_secret": "oauth-secret-1", "refresh_token": "refresh-1", "portal_id": "777"},
        )
        portals = tmp_path / "portals.yaml"
        portals.write_text(
            'portals:\n  "777":\n    oauth:\n      client_id: cid-1\n'
            "      client_secret_env: OAUTH_SECRET\n      refresh_token_env: OAUTH_REFRESH\n"
        )
        env = {"HUBLINK_PORTALS_FILE": str(portals), "OAUTH_SECRET": "oauth-secret-1", "OAUTH_REFRESH": "refresh-1"}
        sim.put("/_sim/config", {"token_429_s": 20})
        throttled_until = time.time() + 20
        url = stack.gunicorn(**env)
        post_associations(url, [{**assoc(n, 9000, to_type="companies"), "portalId": "777"} for n in range(1, 501)])
        stack.worker(**env)
        wait_for(lambda: len(sim.pairs()) == 500, timeout=90, interval=0.5, what="all 500 linked")
        assert time.time() >= throttled_until - 1  # nothing got through while the endpoint refused
        seen = sim.get("/_sim/requests")
        assert seen["by_endpoint"]["oauth_token"] >= 2 and seen["by_status"].get("429", 0) >= 1, seen
        assert not dead_letter_ids(redis_client)
        # No attempt was spent: not one association was counted as failed.
        assert not redis_client.hgetall("hl:m:associations_failed")


class TestDisplacedPrimary:
    """HubLink's write of a deal's Primary company moves it from the company that held it."""

    def test_the_trace_of_each_record_says_what_the_write_moved(self, stack: Stack, sim: Sim) -> None:
        """Deal 7's Primary is company 1; HubLink writes Primary with company 2: the three traces say so."""
        strict(sim)
        records = [{"objectType": "deals", "id": "7"}] + [{"objectType": "companies", "id": n} for n in ("1", "2")]
        sim.post("/_sim/records", {"records": records})
        primary = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}]
        requests.put(
            f"{sim.url}/crm/objects/2026-03/deals/7/associations/companies/1",
            json=primary,
            headers={"Authorization": f"Bearer {HUBSPOT_TOKEN}"},
            timeout=5,
        ).raise_for_status()
        url = stack.gunicorn()
        stack.worker()
        item = {
            "fromObjectType": "deals",
            "fromObjectId": "7",
            "toObjectType": "companies",
            "toObjectId": "2",
            "label": "Primary",
        }
        post_associations(url, [item])
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

        def displaced(record: str) -> list[str]:
            """The trace's displacement rows of ``record``."""
            body = requests.get(f"{url}/api/trace/{record}", headers=admin, timeout=5).json()
            return [row["detail"] for row in body.get("timeline", []) if row["what"] == "displaced"]

        wait_for(lambda: bool(displaced("deals/7")), timeout=20, what="the displacement in the deal's trace")
        expected = "Primary of deals/7 moved from companies/1 to companies/2 by HubLink's write"
        assert displaced("deals/7") == [expected]
        assert displaced("companies/1") == [expected] and displaced("companies/2") == [expected]
        by_endpoint = sim.get("/_sim/requests")["by_endpoint"]
        assert by_endpoint.get("batch_read") == 1, by_endpoint
