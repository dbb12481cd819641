"""Reconcile (``mode: replace``) end to end: the simulator pushes a signed webhook to gunicorn, a real worker
reads the deal's associations (``batch/read``), removes the others, creates the missing one, and records what
it removed (a log line and ``hublink_reconcile_removed_total``).

The first rule is the primary-company example of docs/how-to/rules.md, word for word; the second is the same without a
label. Associations are seeded through the simulator's own HubSpot API (the PUTs): its control API has no
route to write them.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
import requests

from hublink.config.settings import Settings
from tests.conftest import HUBSPOT_TOKEN
from tests.integration.conftest import Sim, Stack
from tests.integration.helpers import wait_settled
from tests.support.processes import Process, wait_for

pytestmark = pytest.mark.integration

SECRET = "client-secret-for-reconcile"
#: HubSpot's deal -> company types: the unlabelled one and Primary.
UNLABELLED = {"category": "HUBSPOT_DEFINED", "typeId": 341}
PRIMARY = {"category": "HUBSPOT_DEFINED", "typeId": 5}
RULES = """\
rules:
  - name: deal-primary-company
    source: hubspot
    when: {subscriptionType: deal.propertyChange, propertyName: primary_company_id}
    associations:
      - from: {objectType: deals, id: "objectId"}
        to: {objectType: companies, lookup: {property: {objectType: deals, id: "objectId", name: primary_company_id}}}
        label: Primary               # HubSpot-defined deal -> company type 5
        mode: replace
  - name: deal-main-contact
    source: hubspot
    when: {subscriptionType: deal.propertyChange, propertyName: main_contact_id}
    associations:
      - from: {objectType: deals, id: "objectId"}
        to: {objectType: contacts, id: "propertyValue"}
        mode: replace
"""
#: ``/metrics`` after two removals by hubspot rules.
REMOVED_ONE = 'hublink_reconcile_removed_total{source="hubspot"} 1.0'
#: The simulator's endpoints that change associations (``/_sim/requests`` names).
WRITES = {
    "associate_default",
    "batch_associate_default",
    "associate_labels",
    "delete_association",
    "batch_create",
    "batch_archive",
    "batch_labels_archive",
}


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """The integration settings (test's Redis, the simulator, quick retries) with the replace rule and the secret."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    return replace(settings, rules_file=str(rules), hubspot_client_secret=SECRET)


def associate(sim: Sim, deal: str, company: str, *, primary: bool) -> None:
    """Seed deal -> company through the simulator's labelled PUT (Primary, or the unlabelled type alone)."""
    spec = PRIMARY if primary else UNLABELLED
    response = requests.put(
        f"{sim.url}/crm/objects/2026-03/deals/{deal}/associations/companies/{company}",
        json=[{"associationCategory": spec["category"], "associationTypeId": spec["typeId"]}],
        headers={"Authorization": f"Bearer {HUBSPOT_TOKEN}"},
        timeout=5,
    )
    assert response.status_code == 201, response.text


def companies(sim: Sim, deal: str) -> dict[str, set[int]]:
    """Deal ``deal``'s companies in the simulator, each with the type ids it holds in that direction."""
    return {
        a["toObjectId"]: {label["typeId"] for label in a["labels"]}
        for a in sim.associations()
        if (a["fromObjectType"], a["fromObjectId"], a["toObjectType"]) == ("deals", deal, "companies")
    }


def primaries(sim: Sim, deal: str) -> set[str]:
    """The companies deal ``deal`` holds with the Primary label."""
    return {company for company, types in companies(sim, deal).items() if PRIMARY["typeId"] in types}


def requests_since(sim: Sim, total_before: int) -> list[dict[str, Any]]:
    """The API requests the simulator received after it had counted ``total_before`` (the last 200 at most)."""
    log = sim.get("/_sim/requests")
    new = int(log["total"]) - total_before
    assert 0 <= new <= len(log["recent"]), "more requests than the simulator's recent log keeps"
    recent: list[dict[str, Any]] = log["recent"]
    return recent[len(recent) - new :] if new else []


def change_property(url: str, sim: Sim, event_id: int, deal: str, value: str, name: str = "primary_company_id") -> None:
    """The simulator pushes a signed ``deal.propertyChange`` of ``name`` to gunicorn; wait for a 2xx."""
    event = {
        "eventId": event_id,
        "subscriptionId": 7,
        "portalId": 62515,
        "appId": 1,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": "deal.propertyChange",
        "propertyName": name,
        "propertyValue": value,
        "objectId": int(deal),
        "changeSource": "CRM",
    }
    body = {"url": f"{url}/webhooks/hubspot", "clientSecret": SECRET, "events": [event]}
    answer = requests.post(f"{sim.url}/_sim/webhooks/deliver", json=body, timeout=5)
    assert answer.status_code == 202, answer.text
    delivery = answer.json()["id"]

    def delivered() -> bool:
        """True once gunicorn answered 2xx; a failed delivery fails the test at once."""
        (found,) = [d for d in sim.get("/_sim/webhooks/deliveries")["deliveries"] if d["id"] == delivery]
        assert found["state"] != "failed", found
        return bool(found["state"] == "delivered")

    wait_for(delivered, timeout=15, what="the webhook delivery")


def settled_after(sim: Sim, redis: redis_lib.Redis, total_before: int) -> list[dict[str, Any]]:
    """Wait until the worker has read the deal's companies and every association settled; the requests since.

    The batch/read comes after the lookup enqueued the resolved association, so "settled" cannot be seen early.
    """
    wait_for(
        lambda: any(r["endpoint"] == "batch_read" for r in requests_since(sim, total_before)),
        timeout=30,
        what="the reconcile's batch/read",
    )
    wait_settled(redis, timeout=30)
    return requests_since(sim, total_before)


def metric(redis: redis_lib.Redis, name: str) -> int:
    """A counter as stored (``hl:m:<name>``), summed over its label sets."""
    return sum(int(v) for v in redis.hgetall(f"hl:m:{name}").values())


def removal_logs(worker: Process) -> list[tuple[str, str, list[str]]]:
    """The worker's "reconcile removed associations" log lines as (from record, to type, sorted removed ids)."""
    lines = [json.loads(line) for line in worker.output().splitlines() if line.startswith("{")]
    return [
        (line["from"], line["to_type"], sorted(line["removed"]))
        for line in lines
        if line.get("event") == "reconcile removed associations"
    ]


def exported(url: str, name: str) -> str:
    """The sample lines of ``name`` in gunicorn's ``/metrics``."""
    text = requests.get(f"{url}/metrics", timeout=5).text
    return "\n".join(line for line in text.splitlines() if re.match(rf"{name}(\{{| )", line))


class TestReconcileEndToEnd:
    """``mode: replace`` through every real part: webhook, rules, lookup, lanes, drain, simulator."""

    def test_the_primary_company_moves_to_the_one_the_deal_names(
        self, stack: Stack, sim: Sim, redis_client: redis_lib.Redis
    ) -> None:
        """B loses Primary (it stays associated, unlabelled), X gains it once, the removal is recorded.

        A deal holds one Primary company (docs/reference/hubspot.md §9.4): writing B's moved it off A.
        """
        associate(sim, "101", "301", primary=True)  # A
        associate(sim, "101", "302", primary=True)  # B, which takes Primary from A
        associate(sim, "101", "304", primary=False)  # a company that was never primary: left alone
        associate(sim, "102", "301", primary=True)  # another deal's primary: not this reconcile's business
        # The deal now names X (the lookup reads it); the webhook says it changed.
        sim.post(
            "/_sim/records",
            {"records": [{"objectType": "deals", "id": "101", "properties": {"primary_company_id": "303"}}]},
        )
        worker = stack.worker()
        url = stack.gunicorn()
        before = int(sim.get("/_sim/requests")["total"])

        change_property(url, sim, 1, "101", "303")
        calls = settled_after(sim, redis_client, before)

        assert primaries(sim, "101") == {"303"}
        assert companies(sim, "101") == {"301": {341}, "302": {341}, "303": {341, 5}, "304": {341}}
        assert primaries(sim, "102") == {"301"}
        # Only the label comes off B (one call), then X is created: alone, through the labelled PUT.
        writes = [(r["endpoint"], r["inputs"], r["status"]) for r in calls if r["endpoint"] in WRITES]
        assert writes == [("batch_labels_archive", 1, 200), ("associate_labels", 1, 201)], calls
        assert [r["path"] for r in calls if r["endpoint"] == "associate_labels"] == [
            "/crm/objects/2026-03/deals/101/associations/companies/303"
        ]
        assert metric(redis_client, "associations_dead_lettered") == 0
        assert metric(redis_client, "reconcile_removed") == 1
        assert exported(url, "hublink_reconcile_removed_total") == REMOVED_ONE
        logged = wait_for(lambda: removal_logs(worker), timeout=5, what="the removal's log line")
        assert logged == [("deals/101", "companies", ["302"])]

    def test_a_deal_already_exact_is_only_read(self, stack: Stack, sim: Sim, redis_client: redis_lib.Redis) -> None:
        """X is already the only primary: the worker reads, removes nothing, creates nothing, records nothing."""
        sim.post(
            "/_sim/records",
            {"records": [{"objectType": "deals", "id": "201", "properties": {"primary_company_id": "303"}}]},
        )
        associate(sim, "201", "303", primary=True)
        associate(sim, "201", "304", primary=False)
        worker = stack.worker()
        url = stack.gunicorn()
        before = int(sim.get("/_sim/requests")["total"])

        change_property(url, sim, 2, "201", "303")
        calls = settled_after(sim, redis_client, before)

        assert companies(sim, "201") == {"303": {341, 5}, "304": {341}}
        assert [r for r in calls if r["endpoint"] in WRITES] == [], calls
        assert [r["endpoint"] for r in calls if r["endpoint"] == "batch_read"] == ["batch_read"]
        assert metric(redis_client, "associations_dead_lettered") == 0
        assert metric(redis_client, "reconcile_removed") == 0
        assert exported(url, "hublink_reconcile_removed_total") == ""
        assert removal_logs(worker) == []

    def test_without_a_label_the_others_are_archived_whole(
        self, stack: Stack, sim: Sim, redis_client: redis_lib.Redis
    ) -> None:
        """A rule with no label: the deal's other contacts lose the whole association, the named one is linked."""
        for contact in ("501", "502"):
            response = requests.put(
                f"{sim.url}/crm/objects/2026-03/deals/401/associations/default/contacts/{contact}",
                headers={"Authorization": f"Bearer {HUBSPOT_TOKEN}"},
                timeout=5,
            )
            assert response.status_code == 200, response.text
        worker = stack.worker()
        url = stack.gunicorn()
        before = int(sim.get("/_sim/requests")["total"])

        change_property(url, sim, 3, "401", "503", name="main_contact_id")
        calls = settled_after(sim, redis_client, before)

        contacts = {
            a["toObjectId"]
            for a in sim.associations()
            if (a["fromObjectType"], a["fromObjectId"], a["toObjectType"]) == ("deals", "401", "contacts")
        }
        assert contacts == {"503"}
        writes = [(r["endpoint"], r["inputs"]) for r in calls if r["endpoint"] in WRITES]
        assert writes == [("batch_archive", 2), ("associate_default", 1)], calls
        assert metric(redis_client, "associations_dead_lettered") == 0
        assert metric(redis_client, "reconcile_removed") == 2
        logged = wait_for(lambda: removal_logs(worker), timeout=5, what="the removal's log line")
        assert logged == [("deals/401", "contacts", ["501", "502"])]
