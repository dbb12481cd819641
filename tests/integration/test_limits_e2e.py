"""HubSpot's limits end to end against the strict simulator: gunicorn, a worker and the simulator, all real.

An admin's association limit (docs/reference/hubspot.md §9.4): the refused inputs are dead-lettered as
``association_limit`` at once, with no retry and no split batch.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.conftest import ADMIN_TOKEN, API_TOKEN
from tests.integration.conftest import Sim, Stack
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
