"""The core pipeline on real parts: an API request becomes an association in the simulator."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import API_TOKEN
from tests.integration.conftest import Sim, Stack
from tests.support.processes import wait_for

pytestmark = pytest.mark.integration


def post(url: str, body: object, token: str = API_TOKEN) -> requests.Response:
    """POST JSON to the direct API."""
    return requests.post(f"{url}/api/associations", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=5)


class TestEndToEnd:
    """Gunicorn, a worker process and the simulator, all real."""

    def test_a_post_becomes_an_association_in_the_simulator(self, stack: Stack, sim: Sim) -> None:
        """A 202 from the API is followed by the association appearing in the simulator."""
        stack.worker()
        url = stack.gunicorn()
        response = post(
            url,
            {
                "associations": [
                    {"fromObjectType": "deals", "fromObjectId": "123", "toObjectType": "contacts", "toObjectId": "456"}
                ]
            },
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["accepted"] == 1 and len(body["ids"]) == 1
        wait_for(lambda: ("deals", "123", "contacts", "456") in sim.pairs(), timeout=10, what="the association")

    def test_concurrent_requests_sharing_round_trips_are_each_stored_once(self, stack: Stack, sim: Sim) -> None:
        """300 requests from 32 clients at once (gevent workers group their XADDs): every one 202, every one linked.

        Requests of one web worker that store at the same moment share a Redis round trip; each must still get
        its own answer, and each association reach HubSpot exactly once.
        """
        stack.worker()
        url = stack.gunicorn()

        def one(i: int) -> requests.Response:
            """POST one association with its own deal id."""
            item = {"fromObjectType": "deals", "fromObjectId": str(7000 + i), "toObjectType": "contacts"}
            return post(url, {"associations": [{**item, "toObjectId": str(9000 + i)}]})

        with ThreadPoolExecutor(max_workers=32) as pool:
            responses = list(pool.map(one, range(300)))

        assert [r.status_code for r in responses] == [202] * 300
        ids = [r.json()["ids"][0] for r in responses]
        assert len(set(ids)) == 300
        wanted = {("deals", str(7000 + i), "contacts", str(9000 + i)) for i in range(300)}
        wait_for(lambda: wanted <= sim.pairs(), timeout=30, what="all 300 associations")
        assert sim.get("/_sim/requests")["inputs_total"] == 300, "each sent to HubSpot once"
