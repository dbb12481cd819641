"""Replaying a day's events through today's rules, on real processes: dry run first, then for real, once each."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
import redis as redis_lib
from flask import Flask

from hublink.config.rules_file import RulesFile
from hublink.config.settings import Settings
from hublink.domain.events import CrmEvent
from hublink.intake.history import EventFilter, EventHistory, EventOutcome
from hublink.intake.inbox import Inbox
from hublink.store.connections import connect
from hublink.store.keys import Keys
from tests.conftest import ADMIN_TOKEN
from tests.integration.conftest import Sim, Stack
from tests.integration.helpers import wait_settled
from tests.integration.test_webhooks import RULES, hubspot_event
from web import create_app

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
#: Today's rules: yesterday's, and contacts created are now linked to their company.
RULES_NOW = (
    RULES
    + """\
  - name: contact-company
    source: hubspot
    when: {subscriptionType: contact.creation}
    associations:
      - from: {objectType: contacts, id: "objectId"}
        to: {objectType: companies, id: "to_company"}
"""
)


def app_with(settings: Settings, rules: str, tmp_path: Path) -> Flask:
    """The web app with ``rules`` as its rules file."""
    path = tmp_path / "rules-now.yaml"
    path.write_text(rules)
    return create_app(replace(settings, rules_file=str(path)), environ={"TEST_FORM_SECRET": "form-secret"})


def inputs(sim: Sim) -> int:
    """Association pairs HubSpot (the simulator) accepted, counting repeats."""
    return int(sim.get("/_sim/requests")["inputs_total"])


def test_a_days_events_replayed_after_a_rules_change(stack: Stack, sim: Sim, tmp_path: Path) -> None:
    """Dry run: then beside now, nothing stored; real: the new association and the old ones once more, once each."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    stack.settings = replace(stack.settings, rules_file=str(rules))
    stack.worker()
    settings = stack.settings
    keys = Keys(settings.redis_prefix)
    inbox = Inbox(
        connect(settings.redis_url, timeout_s=5), keys, claim_idle_s=30, rules_tag=RulesFile.read(str(rules)).tag
    )
    day = [
        hubspot_event(1, 5001),
        hubspot_event(2, 5002, subscriptionType="contact.creation", to_company=8001),
        hubspot_event(3, 5003, to_contact=7003),
    ]
    since = int(time.time()) - 1
    inbox.add_hubspot(json.dumps(day).encode(), received_at=time.time())
    redis = redis_lib.Redis.from_url(settings.redis_url)
    wait_settled(redis, timeout=30)
    assert inputs(sim) == 2

    app = app_with(settings, RULES_NOW, tmp_path)
    client = app.test_client()
    dry = client.post("/api/events/replay", json={"since": str(since), "dry_run": True}, headers=AUTH)
    assert dry.status_code == 200, dry.get_json()
    report = dry.get_json()
    assert (report["matched"], report["associations"], report["dry_run"]) == (3, 3, True)
    by_index = {item["id"].rsplit(".", 1)[1]: item for item in report["items"]}
    assert by_index["0"]["then"] == by_index["0"]["now"] == ["deals/5001 -> contacts/7001"]
    assert by_index["1"]["then"] == [] and by_index["1"]["now"] == ["contacts/5002 -> companies/8001"]
    assert redis.zcard("hl:lanes") == 0 and inputs(sim) == 2

    result = app.test_cli_runner().invoke(args=["events", "replay", "--since", str(since)])
    assert result.exit_code == 0, result.output
    assert "3 event(s) matched" in result.output and "3 association(s)" in result.output
    wait_settled(redis, timeout=30)
    assert inputs(sim) == 2 + 3
    assert ("contacts", "5002", "companies", "8001") in sim.pairs()
    replays = client.get("/api/events?outcome=accepted", headers=AUTH).get_json()["items"]
    assert sum(1 for e in replays if e["replay_of"]) == 3


def stored_history(settings: Settings, count: int) -> EventHistory:
    """``count`` accepted HubSpot events in the history, one request each, with a 2 kB payload apiece."""
    history = EventHistory(connect(settings.redis_url, timeout_s=5), Keys(settings.redis_prefix))
    now = time.time() - 60
    for n in range(count):
        payload = {**hubspot_event(10_000 + n, 60_000 + n), "padding": "x" * 2000}
        event = CrmEvent(
            source="hubspot",
            payload=payload,
            portal_id="62515",
            event_id=str(10_000 + n),
            subscription_type="deal.creation",
            object_id=str(60_000 + n),
            dedup_key=f"hs:{10_000 + n}",
        )
        history.record(f"0-{n + 1}", now + n / 1000, "hubspot", [EventOutcome(0, "accepted", event, ("deal",))])
    return history


class TestReplayAll:
    """``POST /api/events/replay {"all": true}`` over a large history: each event once, and no second copy."""

    def test_each_of_1000_events_is_replayed_once(self, settings: Settings, tmp_path: Path) -> None:
        """1,000 stored events, replayed while the replay's own records land in the history: matched 1000, once each."""
        stored_history(settings, 1000)
        client = app_with(settings, RULES, tmp_path).test_client()
        answer = client.post("/api/events/replay", json={"all": True}, headers=AUTH)
        assert answer.status_code == 202, answer.get_json()
        report = answer.get_json()
        assert (report["matched"], report["replayed"], report["skipped"]) == (1000, 1000, 0)

    def test_a_replay_stores_references_not_copies_of_the_payloads(self, settings: Settings, tmp_path: Path) -> None:
        """The replay's history records name the events they replayed: a quarter of the originals' bytes at most.

        A copy of each payload would add about as much again as the originals hold (stored records are
        compressed, so a reference's own few dozen bytes are a larger share of the whole than they look).
        """
        history = stored_history(settings, 200)
        _, before, _ = history.stats()
        client = app_with(settings, RULES, tmp_path).test_client()
        answer = client.post("/api/events/replay", json={"all": True}, headers=AUTH)
        assert answer.status_code == 202, answer.get_json()
        _, after, _ = history.stats()
        assert after - before <= before / 4, (before, after)
        # A replay of a replay still finds the payload, through the reference.
        replays = [e for e, _ in history.matching(EventFilter()) if e.get("k") == "replay"]
        assert replays
        again = client.post("/api/events/replay", json={"id": f"{replays[0]['id']}.0"}, headers=AUTH)
        assert (again.get_json()["replayed"], again.get_json()["skipped"]) == (1, 0)
