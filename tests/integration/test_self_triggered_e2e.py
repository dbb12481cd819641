"""HubLink's own writes come back as association changes: dropped as ``self``, end to end on real processes.

The simulator, as HubSpot, pushes a deal's creation to gunicorn (the app's webhook settings and
subscriptions set by HubLink's own ``subscriptions apply`` code); a worker links the deal; the simulator
pushes the ``deal.associationChange`` that write caused (changeSource ``API``, sourceId the app's id) back,
and HubLink drops it as ``self``: counted, in the history, and the rule on association changes never runs.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import redis as redis_lib
import requests

from hublink.config.rules_file import RulesFile
from hublink.delivery.webhooks_api import WebhookApp, WebhooksClient
from hublink.domain.subscriptions import WebhookSettings, needed_subscriptions
from tests.conftest import ADMIN_TOKEN
from tests.integration.conftest import HUBSPOT_TOKEN, Sim, Stack
from tests.support.processes import wait_for

pytestmark = pytest.mark.integration

APP_ID = "4242"
SECRET = "client-secret-of-app-4242"
RULES = """\
rules:
  - name: deal-created
    source: hubspot
    when: {subscriptionType: deal.creation}
    associations:
      - from: {objectType: deals, id: objectId}
        to: {objectType: companies, id: "`42`"}
  - name: on-association-change
    source: hubspot
    when: {subscriptionType: deal.associationChange}
    associations:
      - from: {objectType: deals, id: fromObjectId}
        to: {objectType: contacts, id: "`7`"}
"""


def self_count(redis: redis_lib.Redis) -> int:
    """``hublink_events_received_total{source="hubspot",outcome="self"}`` as stored."""
    return int(redis.hget("hl:m:events_received", "source=hubspot,outcome=self") or 0)


def test_the_association_change_of_hublinks_own_write_is_dropped_as_self(
    sim: Sim, stack: Stack, redis_client: redis_lib.Redis, tmp_path: Path
) -> None:
    """Creation pushed → linked → its association change pushed back → dropped as self, nothing else linked."""
    sim.put("/_sim/config", {"records": "strict", "batch_errors": "whole", "webhook_retry_scale": 0.001})
    sim.post(
        "/_sim/records", {"records": [{"objectType": "companies", "id": "42"}, {"objectType": "contacts", "id": "7"}]}
    )
    sim.post("/_sim/apps", {"appId": APP_ID, "clientId": "client-4242", "clientSecret": SECRET})
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    stack.settings = replace(stack.settings, hubspot_client_secret=SECRET, rules_file=str(rules))
    url = stack.gunicorn(HUBSPOT_APP_ID=APP_ID)
    stack.worker(HUBSPOT_APP_ID=APP_ID)
    # What `hublink hubspot subscriptions apply` does: target URL and the subscriptions the rules need.
    app = WebhookApp(WebhooksClient(sim.url, connect_timeout_s=2, read_timeout_s=5), HUBSPOT_TOKEN, APP_ID)
    needs = needed_subscriptions(RulesFile.read(str(rules)).rules.rules)
    app.apply(app.plan(WebhookSettings.for_public_url(url, 10), needs))

    sim.post("/_sim/records", {"records": [{"objectType": "deals", "id": "1001"}]})
    wait_for(lambda: ("deals", "1001", "companies", "42") in sim.pairs(), timeout=30, what="the deal linked")
    wait_for(lambda: self_count(redis_client) >= 1, timeout=30, what="the association change dropped as self")

    def delivered() -> bool:
        """Both pushes (the creation, the association change) answered 2xx."""
        deliveries = sim.get("/_sim/webhooks/deliveries")["deliveries"]
        return len(deliveries) >= 2 and all(d["state"] == "delivered" for d in deliveries)

    wait_for(delivered, timeout=30, what="both pushes answered 2xx")
    assert ("deals", "1001", "contacts", "7") not in sim.pairs()
    assert not redis_client.hget("hl:m:events_received", "source=hubspot,outcome=unmatched")
    events = requests.get(
        f"{url}/api/events", params={"outcome": "self"}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5
    ).json()["items"]
    assert events and all(e["subscription_type"] == "deal.associationChange" for e in events)
    assert all(e["rules"] == [] and e["associations"] == [] for e in events)
