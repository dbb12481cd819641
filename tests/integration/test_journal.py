"""The Webhooks Journal as a source, end to end: a real worker polls the simulator's journal into the inbox.

Events written to the journal without a push (``POST /_sim/journal/events``: HubSpot failed to reach us) are
recovered; an event both pushed to gunicorn and journaled is processed once (the same dedup key). The Redis
offset store keeps its promises: one compare-and-set winner, one poll lock holder.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
import requests

from hublink.intake.journal import JournalOffsets
from hublink.store.keys import Keys
from tests.integration.conftest import HUBSPOT_TOKEN, Sim, Stack
from tests.integration.helpers import wait_settled
from tests.support.processes import wait_for

pytestmark = pytest.mark.integration

PORTAL = 62515
SECRET = "client-secret-for-journal"
CLIENT_ID = "client-id-for-journal"
RULES = """\
rules:
  - name: deal-created
    source: hubspot
    when: {subscriptionType: deal.creation}
    associations:
      - from: {objectType: deals, id: "objectId"}
        to: {objectType: contacts, id: "to_contact"}
"""


def creation(event_id: int, deal: int, contact: int) -> dict[str, Any]:
    """A deal.creation event of the portal naming the contact the rule links it to."""
    return {
        "eventId": event_id,
        "subscriptionId": 7,
        "portalId": PORTAL,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": "deal.creation",
        "objectId": deal,
        "to_contact": contact,
    }


def journal_stack(stack: Stack, tmp_path: Path) -> dict[str, str]:
    """Rules and a portals file with the portal on the journal; the environment a worker or gunicorn needs."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    portals = tmp_path / "portals.yaml"
    portals.write_text(f'portals:\n  "{PORTAL}":\n    token_env: PORTAL_TOKEN\n    journal: true\n')
    stack.settings = replace(stack.settings, hubspot_client_secret=SECRET, rules_file=str(rules))
    # The journal is read with the app's token (client_credentials), so the simulator knows the app.
    requests.post(
        f"{stack.settings.hubspot_base_url}/_sim/apps",
        json={"appId": "4242", "clientId": CLIENT_ID, "clientSecret": SECRET},
        timeout=5,
    ).raise_for_status()
    return {
        "HUBLINK_PORTALS_FILE": str(portals),
        "PORTAL_TOKEN": HUBSPOT_TOKEN,
        "HUBLINK_JOURNAL_POLL_S": "0.2",
        "HUBSPOT_CLIENT_SECRET": SECRET,
        "HUBSPOT_CLIENT_ID": CLIENT_ID,
    }


def metric(redis: redis_lib.Redis, name: str, field: str) -> int:
    """One counter of ``/metrics`` as stored (``hl:m:<name>``, field = labels)."""
    return int(redis.hget(f"hl:m:{name}", field) or 0)


def links(sim: Sim, pair: tuple[str, str, str, str]) -> int:
    """How many associations the simulator holds for ``pair``."""
    found = [
        a
        for a in sim.associations()
        if (a["fromObjectType"], a["fromObjectId"], a["toObjectType"], a["toObjectId"]) == pair
    ]
    return len(found)


def test_events_only_in_the_journal_are_recovered_once(stack: Stack, sim: Sim, tmp_path: Path) -> None:
    """Two batches HubSpot never pushed are read from the journal; each rule's link appears once (no web)."""
    env = journal_stack(stack, tmp_path)
    sim.post("/_sim/journal/events", {"events": [creation(1, 5001, 7001)]})
    stack.worker(**env)
    sim.post("/_sim/journal/events", {"events": [creation(2, 5002, 7002)]})
    redis = redis_lib.Redis.from_url(stack.settings.redis_url)
    read = f"portal={PORTAL}"
    wait_for(lambda: metric(redis, "journal_events_read", read) == 2, timeout=30, what="both journal entries")
    wait_for(lambda: metric(redis, "events_received", "source=hubspot,outcome=accepted") == 2, timeout=30, what="rules")
    wait_settled(redis, timeout=30)
    assert links(sim, ("deals", "5001", "contacts", "7001")) == 1
    assert links(sim, ("deals", "5002", "contacts", "7002")) == 1
    assert sim.get("/_sim/requests")["inputs_total"] == 2
    (last,) = [e["offset"] for e in sim.get("/_sim/journal")["entries"][-1:]]
    assert redis.get(f"hl:journal:{PORTAL}:offset") == last.encode()


def test_an_event_pushed_and_journaled_is_processed_once(stack: Stack, sim: Sim, tmp_path: Path) -> None:
    """The sender pushes to gunicorn and writes the journal: one copy is accepted, the other is a duplicate."""
    env = journal_stack(stack, tmp_path)
    stack.worker(**env)
    url = stack.gunicorn(**env, HUBLINK_RULES_FILE=stack.settings.rules_file or "")
    answer = requests.post(
        f"{sim.url}/_sim/webhooks/deliver",
        json={"url": f"{url}/webhooks/hubspot", "clientSecret": SECRET, "events": [creation(3, 5003, 7003)]},
        timeout=5,
    )
    assert answer.status_code == 202, answer.text
    redis = redis_lib.Redis.from_url(stack.settings.redis_url)
    wait_for(lambda: metric(redis, "journal_events_read", f"portal={PORTAL}") == 1, timeout=30, what="the journal")
    both = ("source=hubspot,outcome=accepted", "source=hubspot,outcome=duplicate")
    wait_for(lambda: [metric(redis, "events_received", f) for f in both] == [1, 1], timeout=30, what="both copies")
    wait_settled(redis, timeout=30)
    assert links(sim, ("deals", "5003", "contacts", "7003")) == 1
    assert sim.get("/_sim/requests")["inputs_total"] == 1
    # The simulator records the answer after gunicorn sends it: wait for its record, not just our side.
    wait_for(
        lambda: [d["state"] for d in sim.get("/_sim/webhooks/deliveries")["deliveries"]] == ["delivered"],
        timeout=10,
        what="the push recorded as delivered",
    )


class TestRedisOffsets:
    """journal_advance.lua and the poll lock on a real Redis."""

    def test_only_one_advance_from_an_offset_wins_and_is_counted(self, redis_client: redis_lib.Redis) -> None:
        """Two pollers that read from the same offset: the first moves it and counts, the second is refused."""
        offsets = JournalOffsets(redis_client, Keys("hl:"))
        assert offsets.offset("1") is None
        assert offsets.advance("1", None, "a", events=3) is True
        assert offsets.advance("1", None, "b", events=3) is False
        assert offsets.advance("1", "a", "b", events=2) is True
        assert offsets.offset("1") == "b"
        assert redis_client.hget("hl:m:journal_events_read", "portal=1") == b"5"

    def test_one_worker_holds_a_portal_and_renews_its_hold(self, redis_client: redis_lib.Redis) -> None:
        """w1 takes and renews the lock; w2 is refused until it is gone."""
        offsets = JournalOffsets(redis_client, Keys("hl:"))
        assert offsets.hold("1", "w1", 15) and offsets.hold("1", "w1", 15)
        assert not offsets.hold("1", "w2", 15)
        assert 0 < redis_client.pttl("hl:journal:1:lock") <= 15_000
        redis_client.delete("hl:journal:1:lock")
        assert offsets.hold("1", "w2", 15)
