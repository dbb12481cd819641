"""A record's trace on real processes: an unmatched event, a retry and a success, in one timeline."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
import redis as redis_lib

from hublink.config.rules_file import RulesFile
from hublink.intake.inbox import Inbox
from hublink.store.connections import connect
from hublink.store.keys import Keys
from tests.conftest import ADMIN_TOKEN
from tests.integration.conftest import Sim, Stack
from tests.integration.helpers import wait_settled
from tests.integration.test_admin import login
from tests.integration.test_webhooks import RULES, hubspot_event
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
