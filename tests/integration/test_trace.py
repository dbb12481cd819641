"""A record's trace on real processes: events, retries, lookups and what holds waiting work, in one timeline."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis as redis_lib

from hublink.config.rules_file import RulesFile
from hublink.config.settings import Settings
from hublink.delivery.pauses import PauseStore
from hublink.intake.history import EventHistory
from hublink.intake.inbox import Inbox
from hublink.ops.trace import trace
from hublink.store.connections import connect
from hublink.store.keys import Keys
from tests.conftest import ADMIN_TOKEN
from tests.integration.conftest import Sim, Stack
from tests.integration.helpers import wait_settled
from tests.integration.test_admin import login
from tests.integration.test_webhooks import RULES, hubspot_event
from tests.support.processes import wait_for
from web import create_app

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_an_unmatched_event_a_retry_and_a_success_in_one_timeline(stack: Stack, sim: Sim, tmp_path: Path) -> None:
    """deals/5001: an unmatched event, then a matched one whose association got a 503 and then a 200."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    stack.settings = replace(stack.settings, rules_file=str(rules))
    settings = stack.settings
    inbox = Inbox(
        connect(settings.redis_url, timeout_s=5),
        Keys(settings.redis_prefix),
        claim_idle_s=30,
        rules_tag=RulesFile.read(str(rules)).tag,
    )
    sim.faults(script=[{"status": 503}])
    stack.worker()
    unmatched = inbox.add_hubspot(
        json.dumps([hubspot_event(1, 5001, subscriptionType="deal.propertyChange")]).encode(), received_at=time.time()
    )
    matched = inbox.add_hubspot(json.dumps([hubspot_event(2, 5001)]).encode(), received_at=time.time() + 0.001)
    redis = redis_lib.Redis.from_url(settings.redis_url)
    wait_settled(redis, timeout=30)
    assert ("deals", "5001", "contacts", "7001") in sim.pairs()

    app = create_app(settings, environ={"TEST_FORM_SECRET": "form-secret"})
    client = app.test_client()
    found = client.get("/api/trace/deals/5001", headers=AUTH).get_json()
    assert found["record"] == "deals/5001"
    assert [(e["entry"], e["outcome"]) for e in found["events"]] == [(unmatched, "unmatched"), (matched, "accepted")]
    [association] = found["associations"]
    assert association["state"] == "done" and association["status"] == 200 and association["retried"]
    assert (association["from"], association["to"]) == ("deals/5001", "contacts/7001")
    [attempt] = association["attempts"]
    assert attempt["status"] == 503 and attempt["correlationId"]
    whats = [row["what"] for row in found["timeline"]]
    assert whats[:2] == ["event", "event"] and whats[-1] == "done" and "retry" in whats
    assert found["timeline"] == sorted(found["timeline"], key=lambda r: r["at"])

    output = app.test_cli_runner().invoke(args=["trace", "deals", "5001"]).output
    assert "deals/5001: 2 event(s), 1 association(s)" in output and "done status 200" in output

    login(client)
    page = client.get("/admin/trace?type=deal&id=5001").get_data(as_text=True)
    assert page.count('class="what-event"') == 2 and 'class="what-done"' in page and attempt["correlationId"] in page
    assert 'id="trace-form"' in client.get("/admin").get_data(as_text=True)


def test_bad_records_are_refused(stack: Stack) -> None:
    """An unknown object type or a non-numeric id is a 400 naming it; no token is a 401."""
    client = create_app(stack.settings).test_client()
    bad_type = client.get("/api/trace/widgets/1", headers=AUTH)
    assert bad_type.status_code == 400 and "object_type" in bad_type.get_json()["error"]["message"]
    assert client.get("/api/trace/deals/12a", headers=AUTH).status_code == 400
    assert client.get("/api/trace/deals/1").status_code == 401


LOOKUP_RULES = """\
rules:
  - name: deal-contact-by-property
    source: hubspot
    when: {subscriptionType: deal.creation}
    associations:
      - from: {objectType: deals, id: "objectId"}
        to: {objectType: contacts, lookup: {property: {objectType: deals, id: "objectId", name: buyer_id}}}
"""


def test_a_lookup_names_what_it_found_and_either_record_finds_the_association(
    stack: Stack, sim: Sim, tmp_path: Path
) -> None:
    """deals/5101's lookup found contacts/7101: the deal's trace names the contact, the contact's finds the link."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(LOOKUP_RULES)
    stack.settings = replace(stack.settings, rules_file=str(rules))
    settings = stack.settings
    keys = Keys(settings.redis_prefix)
    sim.post("/_sim/records", {"records": [{"objectType": "deals", "id": "5101", "properties": {"buyer_id": "7101"}}]})
    inbox = Inbox(
        connect(settings.redis_url, timeout_s=5), keys, claim_idle_s=30, rules_tag=RulesFile.read(str(rules)).tag
    )
    stack.worker()
    inbox.add_hubspot(json.dumps([hubspot_event(1, 5101)]).encode(), received_at=time.time())
    redis = redis_lib.Redis.from_url(settings.redis_url)
    history = EventHistory(redis, keys)
    wait_for(lambda: ("deals", "5101", "contacts", "7101") in sim.pairs(), timeout=30, what="the association")
    wait_settled(redis, timeout=30)

    def resolved(found: dict[str, Any]) -> list[dict[str, Any]]:
        """The associations of a trace that a lookup became."""
        return [a for a in found["associations"] if a.get("lookup_id")]

    wait_for(lambda: resolved(trace(redis, keys, history, "deals", "5101")), timeout=10, what="the resolution")
    deal = trace(redis, keys, history, "deals", "5101")
    [lookup] = [a for a in deal["associations"] if "lookup" in a]
    assert lookup["state"] == "done" and lookup["resolved"] == "deals/5101 -> contacts/7101"
    [made] = resolved(deal)
    assert (made["from"], made["to"], made["state"]) == ("deals/5101", "contacts/7101", "done")
    assert made["lookup_id"] == lookup["id"] and made["rule"] == "deal-contact-by-property"
    assert any(r["what"] == "resolved" and "contacts/7101" in r["detail"] for r in deal["timeline"])
    assert len(deal["events"]) == 1

    contact = trace(redis, keys, history, "contacts", "7101")
    assert [(a["id"], a["from"], a["state"]) for a in resolved(contact)] == [(made["id"], "deals/5101", "done")]
    assert [a["resolved"] for a in contact["associations"] if "lookup" in a] == ["deals/5101 -> contacts/7101"]


def test_work_held_by_an_open_circuit_shows_why_it_waits(stack: Stack, sim: Sim, tmp_path: Path) -> None:
    """A 403 opens the portal's circuit: the trace shows the association paused by it, not just pending."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    stack.settings = replace(stack.settings, rules_file=str(rules))
    settings = stack.settings
    inbox = Inbox(
        connect(settings.redis_url, timeout_s=5),
        Keys(settings.redis_prefix),
        claim_idle_s=30,
        rules_tag=RulesFile.read(str(rules)).tag,
    )
    sim.faults(script=[{"status": 403}] * 5)
    stack.worker(HUBLINK_CIRCUIT_PROBE_S="300")
    inbox.add_hubspot(json.dumps([hubspot_event(1, 5201)]).encode(), received_at=time.time())
    redis = redis_lib.Redis.from_url(settings.redis_url)
    wait_for(lambda: redis.hexists(f"{settings.redis_prefix}paused", "circuit:62515"), timeout=30, what="the circuit")
    keys = Keys(settings.redis_prefix)
    history = EventHistory(redis, keys)

    def handed_back() -> dict[str, Any] | None:
        """The trace once the drain has handed the refused work back (it is in flight until then)."""
        found = trace(redis, keys, history, "deals", "5201")
        return found if [a["state"] for a in found["associations"]] == ["paused"] else None

    found = wait_for(handed_back, timeout=30, what="the work handed back behind the open circuit")
    [association] = found["associations"]
    assert association["state"] == "paused" and association["queued_as"] == "pending"
    assert "circuit is open (missing_scopes)" in association["reason"] and "403" in association["reason"]
    assert association["waiting"]["scope"] == "circuit" and "scopes" in association["waiting"]["until"]
    assert any(r["what"] == "paused" and "circuit" in r["detail"] for r in found["timeline"])


def test_work_in_a_paused_lane_shows_the_pause_and_how_to_resume(stack: Stack, tmp_path: Path) -> None:
    """An operator paused the lane: the trace names the pause, its reason and the resume command."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    stack.settings = replace(stack.settings, rules_file=str(rules))
    settings = stack.settings
    redis = redis_lib.Redis.from_url(settings.redis_url)
    keys = Keys(settings.redis_prefix)
    PauseStore(redis, keys).pause("lane", "62515|deals|contacts", "maintenance")
    inbox = Inbox(
        connect(settings.redis_url, timeout_s=5), keys, claim_idle_s=30, rules_tag=RulesFile.read(str(rules)).tag
    )
    stack.worker()
    inbox.add_hubspot(json.dumps([hubspot_event(1, 5301)]).encode(), received_at=time.time())
    history = EventHistory(redis, keys)
    wait_for(lambda: trace(redis, keys, history, "deals", "5301")["associations"], timeout=30, what="the event")
    [association] = trace(redis, keys, history, "deals", "5301")["associations"]
    assert association["state"] == "paused"
    assert association["reason"] == "lane 62515|deals|contacts is paused: maintenance"
    assert "hublink resume --lane '62515|deals|contacts'" in association["waiting"]["until"]


#: Ids no record has: a superscript two (str.isdigit() says yes), 23 digits, a leading zero, Arabic-Indic digits.
NOT_RECORD_IDS = ["\u00b2", "1" * 23, "0123", "\u0661\u0662"]


class TestRecordIds:
    """Record ids are 1-20 ASCII digits everywhere; anything else is refused, never cut or read as another id."""

    @pytest.mark.parametrize("bad", NOT_RECORD_IDS)
    def test_the_trace_api_refuses_an_id_that_is_not_1_to_20_ascii_digits(self, settings: Settings, bad: str) -> None:
        """GET /api/trace/deals/<bad> is a 400 naming object_id, not a 200 for a record that cannot exist."""
        client = create_app(settings).test_client()
        answer = client.get(f"/api/trace/deals/{quote(bad)}", headers=AUTH)
        assert answer.status_code == 400, answer.get_json()
        assert "object_id" in answer.get_json()["error"]["message"]

    @pytest.mark.parametrize("bad", NOT_RECORD_IDS)
    def test_the_events_filter_refuses_such_an_id_too(self, settings: Settings, bad: str) -> None:
        """GET /api/events?object_type=deals&object_id=<bad> is a 400 invalid_filter."""
        client = create_app(settings).test_client()
        answer = client.get("/api/events", query_string={"object_type": "deals", "object_id": bad}, headers=AUTH)
        assert answer.status_code == 400, answer.get_json()
        assert answer.get_json()["error"]["code"] == "invalid_filter"

    def test_the_dashboard_does_not_cut_a_23_digit_id_to_another_record(self, settings: Settings) -> None:
        """The search box with 23 digits says the id is not one, and traces nothing (not the first 20 digits)."""
        client = create_app(settings).test_client()
        login(client)
        page = client.get("/admin/trace", query_string={"type": "deals", "id": "1" * 23}).get_data(as_text=True)
        assert "1" * 20 + "<" not in page and "deals/" + "1" * 20 not in page
        assert "expected 1-20 decimal digits" in page
