"""The webhooks journal, settings and subscriptions (issue 14) from the simulator process, against the spec.

The session's simulator process (``sim`` from conftest) is used; a webhook receiver runs in the test on a
free loopback port. The specs' schemas are in ``tests/contracts/``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from jsonschema import Draft4Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from tests.conftest import HUBSPOT_TOKEN
from tests.integration.conftest import Sim
from tests.support.processes import REPO, wait_for

pytestmark = pytest.mark.integration

SPECS = REPO / "tests" / "contracts"  # HubSpot's component schemas (tests/contracts/README.md)
WEBHOOKS = "webhooks-2026-03.json"
AUTH = {"Authorization": f"Bearer {HUBSPOT_TOKEN}"}
JOURNAL = "/webhooks-journal/journal/2026-03"


@cache
def _validator(schema: str) -> Draft4Validator:
    """A validator for one component schema of the webhooks spec."""
    spec = json.loads((SPECS / WEBHOOKS).read_text(encoding="utf-8"))
    registry = Registry().with_resource("spec", Resource.from_contents(spec, default_specification=DRAFT4))
    return Draft4Validator(
        {"$ref": f"spec#/components/schemas/{schema}"}, registry=registry, format_checker=FormatChecker()
    )


def check(schema: str, body: Any) -> None:
    """Fail with every schema violation of ``body`` listed."""
    problems = sorted(_validator(schema).iter_errors(body), key=str)
    assert not problems, "\n".join(f"{list(e.path)}: {e.message}" for e in problems)


def api(method: str, sim: Sim, path: str, body: Any = None) -> requests.Response:
    """Call the API with the test token."""
    return requests.request(method, sim.url + path, json=body, headers=AUTH, timeout=10)


@pytest.fixture
def receiver() -> Iterator[str]:
    """A loopback receiver that answers 200 to every POST; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        """Answers 200."""

        def do_POST(self) -> None:
            """Read the body, answer 200."""
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


class TestJournal:
    """Pushed and unpushed events alike can be pulled from the journal."""

    def test_pushed_and_unpushed_events_are_pulled_in_order(self, sim: Sim, receiver: str) -> None:
        """A delivered batch and a batch only journalled are read earliest first, then next, then nothing."""
        pushed = [{"eventId": 1, "portalId": 62515, "subscriptionType": "deal.creation", "objectId": 10}]
        body = {"url": receiver, "clientSecret": "s", "events": pushed, "retryScale": 0}
        requests.post(sim.url + "/_sim/webhooks/deliver", json=body, timeout=5).raise_for_status()
        missed = [{"eventId": 2, "portalId": 62515, "subscriptionType": "deal.creation", "objectId": 11}]
        written = sim.post("/_sim/journal/events", {"events": missed})["entries"]
        assert [e["portalId"] for e in written] == [62515]
        wait_for(lambda: sim.get("/_sim/webhooks/deliveries")["deliveries"][0]["state"] == "delivered", timeout=10)

        earliest = api("GET", sim, JOURNAL + "/earliest")
        assert earliest.status_code == 200
        check("JournalFetchResponse", earliest.json())
        assert requests.get(earliest.json()["url"], timeout=5).json() == pushed
        following = api("GET", sim, f"{JOURNAL}/offset/{earliest.json()['currentOffset']}/next").json()
        assert following["currentOffset"] == written[0]["offset"]
        assert requests.get(following["url"], timeout=5).json() == missed
        end = api("GET", sim, f"{JOURNAL}/offset/{following['currentOffset']}/next")
        assert (end.status_code, end.content) == (204, b"")

    def test_batch_variants_follow_the_spec(self, sim: Sim) -> None:
        """batch/earliest, batch/latest, batch/{offset}/next and batch/read answer the spec's batch shapes."""
        offsets = [
            sim.post("/_sim/journal/events", {"events": [{"eventId": i}]})["entries"][0]["offset"] for i in range(3)
        ]
        for path in ("/batch/earliest/2", "/batch/latest/2", f"/batch/{offsets[0]}/next/5"):
            answer = api("GET", sim, JOURNAL + path)
            assert answer.status_code == 200
            check("BatchResponseJournalFetchResponse", answer.json())
        assert [
            r["currentOffset"] for r in api("GET", sim, f"{JOURNAL}/batch/{offsets[0]}/next/5").json()["results"]
        ] == offsets[1:]
        read = api("POST", sim, JOURNAL + "/batch/read", {"inputs": [offsets[2], "missing"]})
        assert read.status_code == 207
        check("BatchResponseJournalFetchResponseWithErrors", read.json())
        unknown = api("GET", sim, f"{JOURNAL}/offset/missing/next")
        assert unknown.status_code == 404
        check("Error", unknown.json())


class TestSettingsAndSubscriptions:
    """/webhooks/2026-03/{appId}/settings and /subscriptions."""

    def test_settings(self, sim: Sim) -> None:
        """PUT, GET, DELETE, then GET answers 404."""
        body = {"targetUrl": "https://hublink.example/webhooks/hubspot", "throttling": {"maxConcurrentRequests": 10}}
        check("SettingsChangeRequest", body)
        put = api("PUT", sim, "/webhooks/2026-03/123/settings", body)
        assert put.status_code == 200
        check("SettingsResponse", put.json())
        got = api("GET", sim, "/webhooks/2026-03/123/settings")
        check("SettingsResponse", got.json())
        assert got.json()["targetUrl"] == body["targetUrl"]
        assert api("DELETE", sim, "/webhooks/2026-03/123/settings").status_code == 204
        missing = api("GET", sim, "/webhooks/2026-03/123/settings")
        assert missing.status_code == 404
        check("Error", missing.json())

    def test_subscriptions(self, sim: Sim) -> None:
        """POST 201, GET list and one, PATCH active, DELETE 204; a bad event type is a 400 Error."""
        create = {"eventType": "deal.associationChange", "active": False}
        check("SubscriptionCreateRequest", create)
        created = api("POST", sim, "/webhooks/2026-03/123/subscriptions", create)
        assert created.status_code == 201
        check("SubscriptionResponse", created.json())
        subscription_id = created.json()["id"]
        listed = api("GET", sim, "/webhooks/2026-03/123/subscriptions").json()
        check("SubscriptionListResponse", listed)
        patched = api("PATCH", sim, f"/webhooks/2026-03/123/subscriptions/{subscription_id}", {"active": True})
        check("SubscriptionResponse", patched.json())
        assert patched.json()["active"] is True
        one = api("GET", sim, f"/webhooks/2026-03/123/subscriptions/{subscription_id}").json()
        assert one == patched.json()
        assert api("DELETE", sim, f"/webhooks/2026-03/123/subscriptions/{subscription_id}").status_code == 204
        assert api("GET", sim, "/webhooks/2026-03/123/subscriptions").json() == {"results": []}
        refused = api("POST", sim, "/webhooks/2026-03/123/subscriptions", {"eventType": "deal.nope", "active": True})
        assert refused.status_code == 400
        check("Error", refused.json())
