"""From an idea to a live rule in the browser alone: edit, check, preview, publish, and see the link, no restart.

Gunicorn, a worker and the simulator (strict records) run as processes with ``HUBLINK_RULES_SOURCE=redis``;
the rules file seeds version 1. Screenshots of each step are kept in tests/artifacts/admin/ (gitignored).
"""

from __future__ import annotations

import importlib.util
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from hublink.domain import signatures
from tests.conftest import ADMIN_TOKEN
from tests.integration.conftest import Sim, Stack
from tests.integration.test_admin_browser import CHROMIUM, browser_page, shot
from tests.support.processes import Process, wait_for

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (`make browser` installs it)"),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None, reason="the playwright package is not installed"
    ),
]
__all__ = ["browser_page"]  # the fixture, used by name

SECRET = "client-secret-for-the-rules-page"
#: Version 1 (the rules file): deals created are linked to their contact; contacts created match nothing.
RULES = """\
rules:
  - name: deal-contact
    source: hubspot
    when: {subscriptionType: deal.creation}
    associations:
      - from: {objectType: deals, id: "objectId"}
        to: {objectType: contacts, id: "to_contact"}
"""
#: The operator's idea: link each contact created to its company. Typed first with a typo on line 9.
NEW_RULE = """\
  - name: contact-company
    source: hubspots
    when: {subscriptionType: contact.creation}
    associations:
      - from: {objectType: contacts, id: "objectId"}
        to: {objectType: companies, id: "to_company"}
"""
#: The longest a published version may take to be in use by web and workers.
LIVE_WITHIN_S = 2.0
#: Contacts the live check creates, one per poll, until one is linked.
PROBE_CONTACTS = range(7100, 7160)


def deliver(url: str, events: list[dict[str, Any]]) -> None:
    """POST a batch to the app's HubSpot endpoint, signed v3 as HubSpot signs it; it must be accepted."""
    body = json.dumps(events).encode()
    uri = f"{url}/webhooks/hubspot"
    ts = int(time.time() * 1000)
    headers = {
        "X-HubSpot-Signature-v3": signatures.sign_v3(SECRET, "POST", uri, body, ts),
        "X-HubSpot-Request-Timestamp": str(ts),
        "Content-Type": "application/json",
    }
    response = requests.post(uri, data=body, headers=headers, timeout=10)
    assert response.status_code == 200, response.text


def event(event_id: int, subscription_type: str, object_id: int, **extra: int) -> dict[str, Any]:
    """One HubSpot app webhook event of portal 62515."""
    return {
        "eventId": event_id,
        "subscriptionId": 7,
        "portalId": 62515,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": subscription_type,
        "objectId": object_id,
        **extra,
    }


def pids(processes: list[Process]) -> dict[str, tuple[int, ...]]:
    """Each process's pid with its children's (gunicorn's workers), sorted."""
    found = {}
    for process in processes:
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        found[process.name] = (process.pid, *sorted(int(c) for c in children))
    return found


def test_an_operator_writes_checks_previews_and_publishes_a_rule_that_is_live_without_a_restart(
    stack: Stack, sim: Sim, browser_page: Page, tmp_path: Path
) -> None:
    """Log in, add a rule, see its error with its line, fix it, preview, publish, and see a contact linked."""
    page = browser_page
    sim.put("/_sim/config", {"records": "strict", "batch_errors": "whole"})
    records = [("deals", 5001), ("contacts", 7001), ("contacts", 7002), ("companies", 8001)]
    records += [("contacts", n) for n in PROBE_CONTACTS]
    sim.post("/_sim/records", {"records": [{"objectType": t, "id": str(i)} for t, i in records]})
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    stack.settings = replace(
        stack.settings, rules_file=str(rules), hubspot_client_secret=SECRET, fresh_record_grace_s=0.0
    )
    redis_source = {"HUBLINK_RULES_SOURCE": "redis"}
    stack.worker(**redis_source)
    url = stack.gunicorn(HUBLINK_SECRET_KEY="browser-test-secret", **redis_source)

    # Some history first: a deal created (linked by v1) and a contact created (matched by nothing yet).
    deliver(
        url, [event(1, "deal.creation", 5001, to_contact=7001), event(2, "contact.creation", 7002, to_company=8001)]
    )
    wait_for(lambda: ("deals", "5001", "contacts", "7001") in sim.pairs(), timeout=30, what="v1's link")
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    wait_for(
        lambda: requests.get(f"{url}/api/events", headers=auth, timeout=5).json()["count"] >= 2,
        timeout=30,
        what="both events in the history",
    )

    # gunicorn boots its two workers one after the other: the snapshot waits for both (a slow machine can
    # still be booting the second when the first has served all of the above).
    def booted() -> dict[str, tuple[int, ...]] | None:
        """Every process's pids once gunicorn's master has both workers."""
        found = pids(stack.processes)
        return found if len(found["gunicorn"]) == 3 else None

    started = wait_for(booted, timeout=20, what="gunicorn's two workers booted")

    page.goto(f"{url}/admin")
    page.fill("input[name=token]", ADMIN_TOKEN)
    page.click("#login")
    page.click("header >> text=Rules")
    page.wait_for_url(f"{url}/admin/rules")
    assert "v1" in page.inner_text("#published-version")
    assert page.input_value("#draft") == RULES
    shot(page, "rules-1-page")

    page.fill("#draft", RULES + NEW_RULE)
    page.click("#check")
    problems = page.locator("#problems .problem")
    assert problems.count() == 1
    assert problems.locator(".line").inner_text() == "line 9"
    assert "rule 'contact-company': source: expected hubspot, workflow" in problems.inner_text()
    shot(page, "rules-2-check-error")

    page.fill("#draft", page.input_value("#draft").replace("source: hubspots", "source: hubspot"))
    page.click("#check")
    assert page.locator("#check-ok").is_visible()
    assert page.locator("#problems").count() == 0

    page.fill("#preview-type", "contact.creation")
    page.click("#preview")
    summary = page.inner_text("#preview-summary")
    assert "would link 1, newly unmatched 0, changed 1" in summary
    row = page.locator(".preview-event").first
    assert "link contacts/7002 → companies/8001" in row.locator("td.draft").inner_text()
    assert "no rule matches" in row.locator("td.published").inner_text()
    shot(page, "rules-3-preview")

    page.fill("#comment", "link contacts created to their company")
    page.click("#publish")
    assert page.inner_text("#question") == "Confirm: publish the draft as v2?"
    assert "+  - name: contact-company" in page.inner_text("#confirm-diff")
    shot(page, "rules-4-confirm")
    page.click("#confirm")
    page.wait_for_url(f"{url}/admin/rules?published=2")
    published_at = time.monotonic()
    assert "Published v2." in page.inner_text(".flash")
    assert "contact.creation" in page.inner_text("#subscriptions")
    assert "hublink hubspot subscriptions apply --dry-run" in page.inner_text("#subscriptions-command")
    assert "link contacts created to their company" in page.inner_text("#version-2")
    shot(page, "rules-5-published")

    # A contact created now is linked to its company: one new contact per poll until one is, and the first
    # linked one was sent within LIVE_WITHIN_S of the publish (earlier ones were accepted under v1).
    probes = iter(PROBE_CONTACTS)
    sent: dict[int, float] = {}

    def first_linked() -> int | None:
        """Send the next contact created; the earliest sent contact linked to company 8001, if any."""
        contact = next(probes)
        deliver(url, [event(contact, "contact.creation", contact, to_company=8001)])
        sent[contact] = time.monotonic()
        linked = [c for c in sent if ("contacts", str(c), "companies", "8001") in sim.pairs()]
        return min(linked) if linked else None

    contact = wait_for(first_linked, timeout=30, interval=0.2, what="a contact created to be linked")
    assert sent[contact] - published_at <= LIVE_WITHIN_S, (sent, published_at)
    later = [c for c in sent if c > contact]
    wait_for(
        lambda: all(("contacts", str(c), "companies", "8001") in sim.pairs() for c in later),
        timeout=30,
        what="every contact sent after it to be linked too",
    )
    assert pids(stack.processes) == started
    assert all(process.alive() for process in stack.processes)

    page.goto(f"{url}/admin/rules")
    assert "v2" in page.inner_text("#published-version")
    shot(page, "rules-6-after")
