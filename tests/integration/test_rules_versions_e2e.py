"""Publishing and rolling back rules while events flow, end to end: gunicorn, two workers, the strict simulator.

The rules live in Redis (``HUBLINK_RULES_SOURCE=redis``), seeded from the file: version 1 links each new
deal to company 42. While the simulator, as HubSpot, pushes a few hundred deal creations to gunicorn,
version 2 (deal to company 43) is published through the API and then version 1's text is published again by
a rollback (version 3). No process is restarted. In the end every deal is linked exactly once (none lost,
none expanded twice), each event was expanded under exactly one version (its matched rule names it), and
every event accepted two seconds after a publish was expanded under the version it published.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
import requests

from hublink.config.rules_file import RulesFile
from hublink.delivery.webhooks_api import WebhookApp, WebhooksClient
from hublink.domain.subscriptions import WebhookSettings, needed_subscriptions
from tests.conftest import ADMIN_TOKEN
from tests.integration.conftest import HUBSPOT_TOKEN, Sim, Stack
from tests.integration.helpers import wait_settled
from tests.support.processes import wait_for

pytestmark = pytest.mark.integration

APP_ID = "5151"
SECRET = "client-secret-of-app-5151"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
#: Deals created in each of the three stretches (before the publish, after it, after the rollback): about
#: four seconds each at the DealMaker's pace, so that each version is alone in use for a while.
PER_STRETCH = 160
#: A publish is in use everywhere within this long (the check interval is one second).
RELOAD_S = 2.0


def rules_to(company: int, name: str) -> str:
    """Rules linking each created deal to ``company`` through the rule ``name``."""
    return f"""\
rules:
  - name: {name}
    source: hubspot
    when: {{subscriptionType: deal.creation}}
    associations:
      - from: {{objectType: deals, id: objectId}}
        to: {{objectType: companies, id: "`{company}`"}}
"""


V1 = rules_to(42, "to-company-42")
V2 = rules_to(43, "to-company-43")
COMPANY_OF_RULE = {"to-company-42": "42", "to-company-43": "43"}


class DealMaker:
    """Creates deals in the simulator (each creation is pushed to gunicorn) at a steady pace, from a thread."""

    def __init__(self, sim: Sim, *, per_call: int = 4, every_s: float = 0.1) -> None:
        self._sim = sim
        self._per_call = per_call
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.created: list[str] = []

    def start(self) -> None:
        """Start creating (about per_call / every_s deals a second: events flow while the test acts)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop creating; returns once the last request is answered."""
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        next_id = 10_000
        while not self._stop.is_set():
            ids = [str(next_id + i) for i in range(self._per_call)]
            next_id += self._per_call
            self._sim.post("/_sim/records", {"records": [{"objectType": "deals", "id": i} for i in ids]})
            self.created.extend(ids)
            self._stop.wait(self._every_s)  # the pace of the flow, not a wait for a state


def history(url: str) -> list[dict[str, Any]]:
    """Every event of the history (newest first)."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
        page = requests.get(f"{url}/api/events", params=params, headers=AUTH, timeout=10).json()
        found.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return found


def publish(url: str, path: str, body: dict[str, Any]) -> int:
    """POST a publish or rollback; the new version's publishedAt (epoch ms)."""
    answer = requests.post(f"{url}/api/rules/{path}", json=body, headers=AUTH, timeout=10)
    assert answer.status_code == 201, answer.text
    version = answer.json()["version"]
    one = requests.get(f"{url}/api/rules/versions/{version}", headers=AUTH, timeout=10).json()
    return int(one["publishedAt"])


def test_publishing_and_rolling_back_while_events_flow(sim: Sim, stack: Stack, tmp_path: Path) -> None:
    """About 480 deals across a publish and a rollback: each linked once, under the version it was accepted under."""
    sim.put("/_sim/config", {"records": "strict", "batch_errors": "whole", "webhook_retry_scale": 0.0005})
    sim.post("/_sim/records", {"records": [{"objectType": "companies", "id": c} for c in ("42", "43")]})
    sim.post("/_sim/apps", {"appId": APP_ID, "clientId": "client-5151", "clientSecret": SECRET})
    rules = tmp_path / "rules.yaml"
    rules.write_text(V1)
    stack.settings = replace(stack.settings, hubspot_client_secret=SECRET, rules_file=str(rules), rules_source="redis")
    url = stack.gunicorn()
    workers = [stack.worker("w1"), stack.worker("w2")]
    app = WebhookApp(WebhooksClient(sim.url, connect_timeout_s=2, read_timeout_s=5), HUBSPOT_TOKEN, APP_ID)
    needs = needed_subscriptions(RulesFile.read(str(rules)).rules.rules)
    app.apply(app.plan(WebhookSettings.for_public_url(url, 10), needs))
    redis = redis_lib.Redis.from_url(stack.settings.redis_url)

    deals = DealMaker(sim)
    deals.start()
    try:
        wait_for(lambda: len(deals.created) >= PER_STRETCH, timeout=60, what="deals under version 1")
        v2_at = publish(url, "publish", {"text": V2, "comment": "to 43"})
        wait_for(lambda: len(deals.created) >= 2 * PER_STRETCH, timeout=60, what="deals under version 2")
        v3_at = publish(url, "rollback", {"version": 1, "comment": "back to 42"})
        wait_for(lambda: len(deals.created) >= 3 * PER_STRETCH, timeout=60, what="deals under version 3")
    finally:
        deals.stop()

    wait_for(lambda: _all_delivered(sim), timeout=60, what="every push delivered")
    wait_settled(redis, timeout=60)
    events = [e for e in history(url) if e["subscription_type"] == "deal.creation"]
    accepted = [e for e in events if e["outcome"] == "accepted"]

    # None lost, none expanded twice: one accepted event per deal, one link per deal.
    assert sorted(e["object_id"] for e in accepted) == sorted(deals.created)
    assert all(e["outcome"] in ("accepted", "duplicate") for e in events)
    linked = {(pair[1], pair[3]) for pair in sim.pairs() if pair[0] == "deals" and pair[2] == "companies"}
    assert sorted(deal for deal, _ in linked) == sorted(deals.created)

    # Each under exactly one version, the one it was accepted under: its rule and its link agree.
    company_of = dict(linked)
    for event in accepted:
        [rule] = event["rules"]
        assert company_of[event["object_id"]] == COMPANY_OF_RULE[rule]
        accepted_ms = int(event["entry"].split("-")[0])
        if accepted_ms < v2_at or v3_at + RELOAD_S * 1000 < accepted_ms:
            assert rule == "to-company-42", (event, v2_at, v3_at)
        elif v2_at + RELOAD_S * 1000 < accepted_ms < v3_at:
            assert rule == "to-company-43", (event, v2_at, v3_at)
    by_rule = {rule: sum(1 for e in accepted if e["rules"] == [rule]) for rule in COMPANY_OF_RULE}
    assert by_rule["to-company-43"] >= PER_STRETCH // 2, by_rule  # version 2 was in use, for a good while
    window = [e for e in accepted if v2_at + RELOAD_S * 1000 < int(e["entry"].split("-")[0]) < v3_at]
    assert len(window) >= 20  # events accepted once version 2 was everywhere, all expanded under it (above)
    assert all(worker.alive() for worker in workers)  # nothing was restarted
    versions = requests.get(f"{url}/api/rules/versions", headers=AUTH, timeout=10).json()["items"]
    assert [(v["version"], v["author"]) for v in versions] == [(3, "admin"), (2, "admin"), (1, "file")]


def _all_delivered(sim: Sim) -> bool:
    """True when every push the simulator made was answered 2xx (retries included); a failed one fails the test."""
    states = [d["state"] for d in sim.get("/_sim/webhooks/deliveries")["deliveries"]]
    assert "failed" not in states
    return bool(states) and all(state == "delivered" for state in states)
