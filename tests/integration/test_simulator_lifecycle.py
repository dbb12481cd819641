"""HubSpot's lifecycle on a real simulator process: a signed push to a real receiver, and the new answers
against HubSpot's 2026-03 specs (docs/reference/hubspot.md §9).

The contract checks read HubSpot's component schemas from tests/contracts/ (its README says where they come
from).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from hubspot_sim.signatures import sign_v3
from tests.conftest import HUBSPOT_TOKEN
from tests.integration.conftest import Sim
from tests.support.processes import wait_for

pytestmark = pytest.mark.integration
SPECS = Path(__file__).resolve().parents[1] / "contracts"  # HubSpot's component schemas (tests/contracts/README.md)
AUTH = {"Authorization": f"Bearer {HUBSPOT_TOKEN}"}
APP = {"appId": "4242", "clientId": "client-1", "clientSecret": "secret-1"}


class Received:
    """What the test's receiver got: (path, headers, raw body) per POST."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()


@pytest.fixture
def receiver() -> Iterator[tuple[str, Received]]:
    """A loopback HTTP server answering 204 to every POST and keeping it; yields its URL."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        """Keeps each POST."""

        def do_POST(self) -> None:
            """Record and answer 204."""
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with received.lock:
                received.posts.append((self.path, dict(self.headers.items()), body))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/webhooks/hubspot", received
    finally:
        server.shutdown()
        server.server_close()


def check(spec_file: str, schema: str, body: Any) -> None:
    """Fail with every violation of one of the spec's component schemas."""
    spec = json.loads((SPECS / spec_file).read_text())
    registry = Registry().with_resource("spec", Resource.from_contents(spec, default_specification=DRAFT202012))
    validator = Draft202012Validator({"$ref": f"spec#/components/schemas/{schema}"}, registry=registry)
    errors = sorted(validator.iter_errors(body), key=str)
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def app_token(sim: Sim) -> str:
    """Register the app and take an app token by client_credentials."""
    sim.post("/_sim/apps", APP)
    form = {"grant_type": "client_credentials", "client_id": APP["clientId"], "client_secret": APP["clientSecret"]}
    answer = requests.post(f"{sim.url}/oauth/2026-03/token", data=form, timeout=5)
    assert answer.status_code == 200, answer.text
    check("oauth-2026-03.json", "ClientCredentialsTokenResponse", answer.json())
    return str(answer.json()["access_token"])


def test_a_created_record_is_pushed_signed_to_the_apps_target(sim: Sim, receiver: tuple[str, Received]) -> None:
    """Settings and a subscription set through the webhooks API; POST /_sim/records pushes one signed batch."""
    url, received = receiver
    sim.post("/_sim/apps", APP)
    settings = {"targetUrl": url, "throttling": {"maxConcurrentRequests": 10}}
    requests.put(f"{sim.url}/webhooks/2026-03/4242/settings", json=settings, headers=AUTH, timeout=5).raise_for_status()
    subscription = {"eventType": "deal.creation", "active": True}
    answer = requests.post(f"{sim.url}/webhooks/2026-03/4242/subscriptions", json=subscription, headers=AUTH, timeout=5)
    assert answer.status_code == 201, answer.text
    sim.post("/_sim/records", {"records": [{"objectType": "deals", "id": "501"}]})
    wait_for(lambda: received.posts, timeout=10, what="the pushed batch")
    path, headers, body = received.posts[0]
    assert path == "/webhooks/hubspot"
    (event,) = json.loads(body)
    assert (event["subscriptionType"], event["objectId"], event["appId"]) == ("deal.creation", 501, 4242)
    timestamp = int(headers["X-HubSpot-Request-Timestamp"])
    assert headers["X-HubSpot-Signature-v3"] == sign_v3(APP["clientSecret"], "POST", url, body, timestamp)
    wait_for(
        lambda: sim.get("/_sim/webhooks/deliveries")["deliveries"][0]["state"] == "delivered",
        timeout=10,
        what="the delivery's state",
    )


class TestLifecycleAnswersFollowTheSpecs:
    """The new answers have the shapes HubSpot's 2026-03 specs declare."""

    def test_journal_subscriptions(self, sim: Sim) -> None:
        """Upsert answers SubscriptionResponse_1, the list CollectionResponseSubscriptionResponseNoPaging."""
        token = {"Authorization": f"Bearer {app_token(sim)}"}
        body = {"subscriptionType": "OBJECT", "portalId": 62515, "objectTypeId": "0-3", "actions": ["CREATE"]}
        body |= {"objectIds": [], "properties": []}
        check("webhooks-2026-03.json", "ObjectSubscriptionUpsertRequest", body)
        created = requests.post(
            f"{sim.url}/webhooks-journal/subscriptions/2026-03", json=body, headers=token, timeout=5
        )
        assert created.status_code == 200, created.text
        check("webhooks-2026-03.json", "SubscriptionResponse_1", created.json())
        listed = requests.get(f"{sim.url}/webhooks-journal/subscriptions/2026-03", headers=token, timeout=5).json()
        check("webhooks-2026-03.json", "CollectionResponseSubscriptionResponseNoPaging", listed)

    def test_a_subscribed_creation_is_in_the_journal_in_the_wrapper(self, sim: Sim) -> None:
        """journal_auth app, wrapper files: the app token reads the entry; a portal token is refused 403."""
        requests.put(f"{sim.url}/_sim/config", json={"journal_auth": "app", "journal_format": "wrapper"}, timeout=5)
        token = {"Authorization": f"Bearer {app_token(sim)}"}
        body = {"subscriptionType": "OBJECT", "portalId": 62515, "objectTypeId": "0-3", "actions": ["CREATE"]}
        requests.post(f"{sim.url}/webhooks-journal/subscriptions/2026-03", json=body, headers=token, timeout=5)
        sim.post("/_sim/records", {"records": [{"objectType": "deals", "id": "77"}]})
        journal = f"{sim.url}/webhooks-journal/journal/2026-03/earliest"
        refused = requests.get(journal, headers=AUTH, timeout=5)
        assert refused.status_code == 403
        check("webhooks-2026-03.json", "Error", refused.json())
        fetched = requests.get(journal, headers=token, timeout=5).json()
        check("webhooks-2026-03.json", "JournalFetchResponse", fetched)
        entry = requests.get(fetched["url"], timeout=5).json()
        assert entry["offset"] == fetched["currentOffset"]
        assert [(e["action"], e["objectId"]) for e in entry["journalEvents"]] == [("CREATE", 77)]

    def test_a_limit_refusal_and_a_batch_create(self, sim: Sim) -> None:
        """The limit's 400 is an Error; batch/create answers 200 with BatchResponseLabelsBetweenObjectPair."""
        requests.put(f"{sim.url}/_sim/config", json={"association_limits": {"deals>companies": 1}}, timeout=5)
        single = f"{sim.url}/crm/objects/2026-03/deals/1/associations/default/companies/{{}}"
        assert requests.put(single.format("10"), headers=AUTH, timeout=5).status_code == 200
        refused = requests.put(single.format("11"), headers=AUTH, timeout=5)
        assert refused.status_code == 400
        check("crm-associations-2026-03.json", "Error", refused.json())
        types = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]
        inputs = {"inputs": [{"from": {"id": "1"}, "to": {"id": "2"}, "types": types}]}
        created = requests.post(
            f"{sim.url}/crm/associations/2026-03/deals/contacts/batch/create", json=inputs, headers=AUTH, timeout=5
        )
        assert created.status_code == 200
        check("crm-associations-2026-03.json", "BatchResponseLabelsBetweenObjectPair", created.json())

    def test_merge_and_the_old_id_reads_the_new_record(self, sim: Sim) -> None:
        """A read of a merged-away id is a SimplePublicObject of the new id."""
        sim.post(
            "/_sim/records",
            {"records": [{"objectType": "companies", "id": "1"}, {"objectType": "companies", "id": "2"}]},
        )
        merged = sim.post("/_sim/merge", {"objectType": "companies", "primaryObjectId": "1", "mergedObjectIds": ["2"]})
        read = requests.get(f"{sim.url}/crm/objects/2026-03/companies/2", headers=AUTH, timeout=5).json()
        check("crm-objects-2026-03.json", "SimplePublicObject", read)
        assert read["id"] == merged["newObjectId"]
