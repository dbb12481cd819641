"""The core pipeline on real parts: an API request becomes an association in the simulator."""

from __future__ import annotations

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
