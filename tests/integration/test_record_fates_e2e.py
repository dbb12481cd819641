"""Records deleted or merged between intake and drain, end to end on real processes and the strict simulator.

The simulator, as HubSpot, pushes the deals' creations to gunicorn; a worker expands them into work held in
a paused lane; the records are then deleted or merged in the simulator, whose ``*.deletion`` / ``*.merge``
events HubLink takes in; once they are in, the lane is resumed: work naming a deleted record ends
``record_deleted`` without a call, work naming a merged id ends linked on the new record.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
import requests

from hublink.config.rules_file import RulesFile
from hublink.delivery.pauses import PauseStore
from hublink.delivery.webhooks_api import WebhookApp, WebhooksClient
from hublink.domain.subscriptions import Needs, SubscriptionKey, WebhookSettings, needed_subscriptions
from hublink.lanes import pending_ids
from hublink.store.keys import Keys
from tests.conftest import ADMIN_TOKEN
from tests.integration.conftest import HUBSPOT_TOKEN, Sim, Stack
from tests.integration.helpers import wait_settled
from tests.support.processes import wait_for

pytestmark = pytest.mark.integration

APP_ID = "4343"
SECRET = "client-secret-of-app-4343"
PORTAL = "62515"
LANE = f"{PORTAL}|deals|companies"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
RULES = """\
rules:
  - name: deal-created
    source: hubspot
    when: {subscriptionType: deal.creation}
    associations:
      - from: {objectType: deals, id: objectId}
        to: {objectType: companies, id: "`42`"}
"""
#: What an operator subscribes the app to besides what the rules need: the records' lifecycle.
LIFECYCLE = ("deal.deletion", "deal.merge", "company.deletion", "company.merge")


def start(
    sim: Sim, stack: Stack, tmp_path: Path, *, merged_ids: str = "alias", lifecycle: Sequence[str] = LIFECYCLE
) -> tuple[str, redis_lib.Redis]:
    """The strict simulator with company 42 and the app subscribed; gunicorn, a worker, and the lane paused."""
    sim.put(
        "/_sim/config",
        {"records": "strict", "batch_errors": "whole", "webhook_retry_scale": 0.001, "merged_ids": merged_ids},
    )
    sim.post("/_sim/records", {"records": [{"objectType": "companies", "id": "42"}]})
    sim.post("/_sim/apps", {"appId": APP_ID, "clientId": "client-4343", "clientSecret": SECRET})
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    stack.settings = replace(stack.settings, hubspot_client_secret=SECRET, rules_file=str(rules))
    redis = redis_lib.Redis.from_url(stack.settings.redis_url)
    PauseStore(redis, Keys("hl:")).pause("lane", LANE, "test: hold the work between intake and drain")
    url = stack.gunicorn()
    stack.worker()
    app = WebhookApp(WebhooksClient(sim.url, connect_timeout_s=2, read_timeout_s=5), HUBSPOT_TOKEN, APP_ID)
    needs = needed_subscriptions(RulesFile.read(str(rules)).rules.rules)
    wanted = {**needs.wanted, **{SubscriptionKey(t): ("lifecycle",) for t in lifecycle}}
    app.apply(app.plan(WebhookSettings.for_public_url(url, 10), Needs(wanted, needs.skipped)))
    return url, redis


def queued(redis: redis_lib.Redis, n: int) -> None:
    """Wait until ``n`` associations wait in the paused lane."""
    wait_for(lambda: len(pending_ids(redis, Keys("hl:"), LANE)) >= n, timeout=30, what=f"{n} associations queued")


def events(url: str, outcome: str) -> list[dict[str, Any]]:
    """The event history's events with ``outcome``."""
    answer = requests.get(f"{url}/api/events", params={"outcome": outcome}, headers=AUTH, timeout=5)
    return list(answer.json()["items"])


def dead_letters(redis: redis_lib.Redis) -> list[dict[str, Any]]:
    """Every dead letter, as stored."""
    return [json.loads(redis.get(f"hl:dl:{i.decode()}") or "{}") for i in redis.zrange("hl:dlq", 0, -1)]


def test_a_deletion_between_intake_and_drain_ends_the_work_record_deleted_without_a_call(
    sim: Sim, stack: Stack, tmp_path: Path
) -> None:
    """Deals 1001 and 1002 queued; 1001 deleted; resumed: 1002 linked, 1001's work a record_deleted letter."""
    url, redis = start(sim, stack, tmp_path)
    sim.post(
        "/_sim/records", {"records": [{"objectType": "deals", "id": "1001"}, {"objectType": "deals", "id": "1002"}]}
    )
    queued(redis, 2)
    sim.post("/_sim/records/delete", {"objectType": "deals", "ids": ["1001"]})
    wait_for(lambda: events(url, "record_deleted"), timeout=30, what="the deletion event taken in")
    calls_before = sim.get("/_sim/requests")["by_endpoint"]
    PauseStore(redis, Keys("hl:")).resume("lane", LANE)

    wait_for(lambda: ("deals", "1002", "companies", "42") in sim.pairs(), timeout=30, what="deal 1002 linked")
    [letter] = wait_for(lambda: dead_letters(redis), timeout=30, what="deal 1001's work dead-lettered")
    assert (letter["reason"], letter["category"], letter["attemptCount"]) == ("record_deleted", "RECORD_DELETED", 0)
    assert letter["association"]["fromObjectId"] == "1001"
    requests_made = sim.get("/_sim/requests")
    assert requests_made["inputs_total"] == 1  # one association call, for 1002 only
    assert "400" not in requests_made["by_status"]
    assert sum(requests_made["by_endpoint"].values()) - sum(calls_before.values()) == 1
    assert not redis.hget("hl:m:associations_failed", "error=RecordDeletedError")
    assert int(redis.hget("hl:m:associations_record_deleted", "source=hubspot") or 0) == 1
    assert not redis.hgetall("hl:m:associations_dead_lettered")

    [deletion] = events(url, "record_deleted")
    assert (deletion["subscription_type"], deletion["object_id"]) == ("deal.deletion", "1001")
    trace = requests.get(f"{url}/api/trace/deals/1001", headers=AUTH, timeout=5).json()
    assert "record_deleted" in json.dumps(trace["timeline"])
    [association] = trace["associations"]
    assert (association["state"], association["reason"]) == ("dead", "record_deleted")
    assert trace["fate"] == {"state": "deleted"}


@pytest.mark.parametrize("merged_ids", ["alias", "invalid"])
def test_a_merge_between_intake_and_drain_links_everything_on_the_new_record(
    sim: Sim, stack: Stack, tmp_path: Path, merged_ids: str
) -> None:
    """Deals 1001 and 1002 queued, then merged: resumed, the new deal is linked, nothing dead, either trace says so."""
    url, redis = start(sim, stack, tmp_path, merged_ids=merged_ids)
    sim.post(
        "/_sim/records", {"records": [{"objectType": "deals", "id": "1001"}, {"objectType": "deals", "id": "1002"}]}
    )
    queued(redis, 2)
    new_id = str(
        sim.post("/_sim/merge", {"objectType": "deals", "primaryObjectId": "1001", "mergedObjectIds": ["1002"]})[
            "newObjectId"
        ]
    )
    wait_for(lambda: events(url, "record_merged"), timeout=30, what="the merge event taken in")
    PauseStore(redis, Keys("hl:")).resume("lane", LANE)

    wait_for(lambda: ("deals", new_id, "companies", "42") in sim.pairs(), timeout=30, what="the new deal linked")
    wait_settled(redis, timeout=30)
    assert not dead_letters(redis)
    requests_made = sim.get("/_sim/requests")
    assert "400" not in requests_made["by_status"]
    assert {(p[1], p[3]) for p in sim.pairs() if p[0] == "deals"} == {(new_id, "42")}

    merge_events = events(url, "record_merged")
    assert any(e["subscription_type"] == "deal.merge" and e["object_id"] == new_id for e in merge_events)
    new_trace = requests.get(f"{url}/api/trace/deals/{new_id}", headers=AUTH, timeout=5).json()
    assert "record_merged" in json.dumps(new_trace["timeline"])
    old_trace = requests.get(f"{url}/api/trace/deals/1002", headers=AUTH, timeout=5).json()
    [association] = old_trace["associations"]
    assert association["state"] == "done"
    [row] = [r for r in old_trace["timeline"] if r["what"] == "merged"]
    assert f"deals/{new_id}" in row["detail"]
    assert old_trace["fate"] == {"state": "merged", "into": f"deals/{new_id}"}
    assert new_trace["fate"] is None


@pytest.mark.parametrize("merged_ids", ["alias", "invalid"])
def test_a_merge_hublink_hears_nothing_of_is_learnt_from_hubspots_answers(
    sim: Sim, stack: Stack, tmp_path: Path, merged_ids: str
) -> None:
    """No lifecycle subscription: the answer on the new id (alias), or a read of the old one (invalid), shows it."""
    stack.settings = replace(stack.settings, fresh_record_grace_s=0.0)
    url, redis = start(sim, stack, tmp_path, merged_ids=merged_ids, lifecycle=())
    sim.post(
        "/_sim/records", {"records": [{"objectType": "deals", "id": "1001"}, {"objectType": "deals", "id": "1002"}]}
    )
    queued(redis, 2)
    answer = sim.post("/_sim/merge", {"objectType": "deals", "primaryObjectId": "1001", "mergedObjectIds": ["1002"]})
    new_id = str(answer["newObjectId"])
    PauseStore(redis, Keys("hl:")).resume("lane", LANE)

    wait_for(lambda: ("deals", new_id, "companies", "42") in sim.pairs(), timeout=30, what="the new deal linked")
    wait_settled(redis, timeout=30)
    assert not dead_letters(redis)
    assert not events(url, "record_merged")
    fate = f"merged:{new_id}".encode()
    wait_for(lambda: redis.get(f"hl:rec:{PORTAL}|deals/1002") == fate, timeout=30, what="the merge kept")


def test_dead_letters_replayed_after_a_merge_go_to_the_new_record(sim: Sim, stack: Stack, tmp_path: Path) -> None:
    """Deals 1001 and 1003's work dead (400s), then the deals merged: their replay links the new deal."""
    url, redis = start(sim, stack, tmp_path)
    sim.faults(script=[{"status": 400}] * 3)  # the batch, then each half: both dead-lettered
    sim.post(
        "/_sim/records", {"records": [{"objectType": "deals", "id": "1001"}, {"objectType": "deals", "id": "1003"}]}
    )
    queued(redis, 2)
    PauseStore(redis, Keys("hl:")).resume("lane", LANE)
    wait_for(lambda: len(dead_letters(redis)) == 2, timeout=30, what="two dead letters")
    answer = sim.post("/_sim/merge", {"objectType": "deals", "primaryObjectId": "1001", "mergedObjectIds": ["1003"]})
    new_id = str(answer["newObjectId"])
    wait_for(lambda: events(url, "record_merged"), timeout=30, what="the merge event taken in")

    replayed = requests.post(f"{url}/api/dead-letters/replay", json={}, headers=AUTH, timeout=5)
    assert replayed.status_code == 202, replayed.text
    wait_for(lambda: ("deals", new_id, "companies", "42") in sim.pairs(), timeout=30, what="the new deal linked")
    wait_settled(redis, timeout=30)
    assert not dead_letters(redis)
    assert {(p[1], p[3]) for p in sim.pairs() if p[0] == "deals"} == {(new_id, "42")}


def test_a_deletion_hublink_hears_nothing_of_is_confirmed_by_reading_the_record(
    sim: Sim, stack: Stack, tmp_path: Path
) -> None:
    """No lifecycle subscription: the 400 for deal 1001 leads to reads (404, then found archived): record_deleted."""
    stack.settings = replace(stack.settings, fresh_record_grace_s=0.0)
    _, redis = start(sim, stack, tmp_path, lifecycle=())
    sim.post(
        "/_sim/records", {"records": [{"objectType": "deals", "id": "1001"}, {"objectType": "deals", "id": "1002"}]}
    )
    queued(redis, 2)
    sim.post("/_sim/records/delete", {"objectType": "deals", "ids": ["1001"]})
    PauseStore(redis, Keys("hl:")).resume("lane", LANE)

    wait_for(lambda: ("deals", "1002", "companies", "42") in sim.pairs(), timeout=30, what="deal 1002 linked")
    [letter] = wait_for(lambda: dead_letters(redis), timeout=30, what="deal 1001's work dead-lettered")
    assert (letter["reason"], letter["association"]["fromObjectId"]) == ("record_deleted", "1001")
    wait_for(lambda: redis.get(f"hl:rec:{PORTAL}|deals/1001") == b"deleted", timeout=30, what="the deletion kept")
    assert sim.get("/_sim/requests")["by_endpoint"].get("read_object") == 2  # live 404, then archived
