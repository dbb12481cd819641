"""A contact's privacy deletion, end to end on real processes and the strict simulator: nothing of it is left.

The simulator, as HubSpot, pushes the contacts' creations; forms name one contact by id and email, or by
email only (a lookup finds it); a direct-API call with an Idempotency-Key names it and dies (a company that
does not exist); a form HubLink cannot use is set aside; one more form waits in a paused lane. Then the
contact is privacy-deleted in the simulator (or erased through ``POST /api/privacy/erase`` by email): once
HubLink has handled it, no key or value under its prefix holds the contact's id or email, while another
contact's data, fed the same way, is all still there.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
import requests

from hublink.config.rules_file import RulesFile
from hublink.delivery.pauses import PauseStore
from hublink.delivery.webhooks_api import WebhookApp, WebhooksClient
from hublink.domain import signatures
from hublink.domain.subscriptions import Needs, SubscriptionKey, WebhookSettings, needed_subscriptions
from hublink.lanes import pending_ids
from hublink.store.keys import Keys
from tests.conftest import ADMIN_TOKEN, API_TOKEN
from tests.integration.conftest import HUBSPOT_TOKEN, Sim, Stack
from tests.integration.helpers import dead_letter_ids, wait_settled
from tests.support.processes import wait_for
from tests.support.redis_scan import traces_of

pytestmark = pytest.mark.integration

APP_ID = "4343"
SECRET = "client-secret-of-app-4343"
FORM_SECRET = "form-secret-for-the-privacy-test"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FORM_LANE = "_|contacts|companies"
ADA, ADA_EMAIL = "98765432101", "ada.lovelace@analytical.example"
BOB, BOB_EMAIL = "12312312399", "bob.babbage@engines.example"
MISSING_COMPANY = "99999999"
RULES = """\
sources:
  forms:
    signup:
      auth: {type: hmac, header: X-Signature, secret_env: FORM_SECRET, encoding: hex, prefix: "sha256="}
      id_field: submission_id
    demo:
      auth: {type: hmac, header: X-Signature, secret_env: FORM_SECRET, encoding: hex, prefix: "sha256="}
      id_field: submission_id
rules:
  - name: contact-created
    source: hubspot
    when: {subscriptionType: contact.creation}
    associations:
      - from: {objectType: contacts, id: objectId}
        to: {objectType: companies, id: "`42`"}
  - name: signup
    source: forms:signup
    associations:
      - from: {objectType: contacts, id: contact_id}
        to: {objectType: companies, id: "`43`"}
  - name: demo
    source: forms:demo
    associations:
      - from: {objectType: contacts, lookup: {search: {property: email, value: "email", onMultiple: first}}}
        to: {objectType: companies, id: "`44`"}
"""
LIFECYCLE = ("contact.deletion", "contact.privacyDeletion")


def start(sim: Sim, stack: Stack, tmp_path: Path) -> tuple[str, redis_lib.Redis]:
    """The strict simulator with companies 42-44 and the app subscribed; gunicorn and a worker."""
    sim.put("/_sim/config", {"records": "strict", "batch_errors": "whole", "webhook_retry_scale": 0.001})
    sim.post("/_sim/records", {"records": [{"objectType": "companies", "id": str(n)} for n in (42, 43, 44)]})
    sim.post("/_sim/apps", {"appId": APP_ID, "clientId": "client-4343", "clientSecret": SECRET})
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    # A company that does not exist is refused at once (no grace for records not visible yet): a dead letter.
    stack.settings = replace(
        stack.settings, hubspot_client_secret=SECRET, rules_file=str(rules), fresh_record_grace_s=0.0
    )
    url = stack.gunicorn(FORM_SECRET=FORM_SECRET)
    stack.worker(FORM_SECRET=FORM_SECRET)
    app = WebhookApp(WebhooksClient(sim.url, connect_timeout_s=2, read_timeout_s=5), HUBSPOT_TOKEN, APP_ID)
    needs = needed_subscriptions(RulesFile.read(str(rules)).rules.rules)
    wanted = {**needs.wanted, **{SubscriptionKey(t): ("lifecycle",) for t in LIFECYCLE}}
    app.apply(app.plan(WebhookSettings.for_public_url(url, 10), Needs(wanted, needs.skipped)))
    return url, redis_lib.Redis.from_url(stack.settings.redis_url)


def form(url: str, name: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A signed form submission; HubLink's answer."""
    body = json.dumps(fields).encode()
    headers = {
        "X-Signature": "sha256=" + signatures.sign_hmac_sha256(FORM_SECRET, body, "hex"),
        "Content-Type": "application/json",
    }
    response = requests.post(f"{url}/webhooks/forms/{name}", data=body, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def direct(url: str, contact: str, key: str) -> None:
    """A direct-API association of ``contact`` to a company that does not exist, with an Idempotency-Key."""
    item = {"fromObjectType": "contacts", "fromObjectId": contact, "toObjectType": "companies"}
    response = requests.post(
        f"{url}/api/associations",
        json={"associations": [{**item, "toObjectId": MISSING_COMPANY}]},
        headers={"Authorization": f"Bearer {API_TOKEN}", "Idempotency-Key": key},
        timeout=10,
    )
    assert response.status_code == 202, response.text


def feed(url: str, sim: Sim, contact: str, email: str) -> None:
    """Everything that names ``contact``: its creation, two forms, a dying direct call, a set-aside form."""
    sim.post("/_sim/records", {"records": [{"objectType": "contacts", "id": contact, "properties": {"email": email}}]})
    form(url, "signup", {"submission_id": f"signup-{contact}", "contact_id": contact, "email": email})
    form(url, "demo", {"submission_id": f"demo-{contact}", "email": email.upper()})
    direct(url, contact, f"key-{contact}")
    aside = form(url, "demo", {"submission_id": f"bad-{contact}", "email": email, "portalId": "not-a-portal"})
    assert aside["unusable"] == 1


def populate(sim: Sim, stack: Stack, tmp_path: Path) -> tuple[str, redis_lib.Redis]:
    """Both contacts fed and settled (3 links and a dead letter each), then a form of each held in a paused lane."""
    url, redis = start(sim, stack, tmp_path)
    feed(url, sim, ADA, ADA_EMAIL)
    feed(url, sim, BOB, BOB_EMAIL)
    for contact in (ADA, BOB):
        for company in ("42", "43", "44"):
            pair = ("contacts", contact, "companies", company)
            wait_for(lambda pair=pair: pair in sim.pairs(), timeout=30, what=f"{pair} linked")
    wait_for(lambda: len(dead_letter_ids(redis)) == 2, timeout=30, what="both direct calls dead-lettered")
    wait_settled(redis, timeout=30)
    PauseStore(redis, Keys("hl:")).pause("lane", FORM_LANE, "test: work pending when the contact goes")
    form(url, "signup", {"submission_id": f"signup-{ADA}-2", "contact_id": ADA, "email": ADA_EMAIL})
    form(url, "signup", {"submission_id": f"signup-{BOB}-2", "contact_id": BOB, "email": BOB_EMAIL})
    wait_for(lambda: len(pending_ids(redis, Keys("hl:"), FORM_LANE)) == 2, timeout=30, what="two forms pending")
    # Every kind of place holds Ada now (the test would prove nothing otherwise).
    found = {key.split(":", 1)[1].split(":")[0] for key, _ in traces_of(redis, [ADA, ADA_EMAIL])}
    assert {"ev", "dl", "inbox", "q", "lookup"} <= found, found
    return url, redis


def assert_bob_untouched(redis: redis_lib.Redis, url: str) -> None:
    """Bob's data is all there: his history, his dead letter, his pending form, his Idempotency-Key's answer."""
    found = {key.split(":", 1)[1].split(":")[0] for key, _ in traces_of(redis, [BOB, BOB_EMAIL])}
    assert {"ev", "dl", "inbox", "q", "lookup"} <= found, found
    assert redis.exists(Keys("hl:").idempotency(f"key-{BOB}"))
    trace = requests.get(f"{url}/api/trace/contacts/{BOB}", headers=AUTH, timeout=5).json()
    assert trace["events"]


def test_a_privacy_deletion_in_hubspot_leaves_nothing_of_the_contact_in_redis(
    sim: Sim, stack: Stack, tmp_path: Path
) -> None:
    """The simulator's contact.deletion and contact.privacyDeletion: every key and value is scanned, none names Ada."""
    url, redis = populate(sim, stack, tmp_path)
    assert redis.exists(Keys("hl:").idempotency(f"key-{ADA}"))

    sim.post("/_sim/records/delete", {"objectType": "contacts", "ids": [ADA], "privacy": True})

    wait_for(lambda: not traces_of(redis, [ADA, ADA_EMAIL]), timeout=30, what="nothing left naming Ada")
    assert not redis.exists(Keys("hl:").idempotency(f"key-{ADA}"))
    assert_bob_untouched(redis, url)
    # The history says a privacy deletion came and what became of it, naming no one.
    answer = requests.get(
        f"{url}/api/events", params={"subscription_type": "contact.privacyDeletion"}, headers=AUTH, timeout=5
    )
    [event] = answer.json()["items"]
    assert (event["outcome"], event["object_id"], event["portal_id"]) == ("record_deleted", None, "62515")
    # Bob's pending form still goes out once the lane is resumed; Ada's is gone.
    PauseStore(redis, Keys("hl:")).resume("lane", FORM_LANE)
    wait_settled(redis, timeout=30)
    assert not traces_of(redis, [ADA, ADA_EMAIL])


def test_an_erasure_by_email_through_the_api_leaves_nothing_of_the_contact_in_redis(
    sim: Sim, stack: Stack, tmp_path: Path
) -> None:
    """POST /api/privacy/erase by email alone: Ada's id is learnt from her events, and nothing names her after."""
    url, redis = populate(sim, stack, tmp_path)

    response = requests.post(
        f"{url}/api/privacy/erase", json={"objectType": "contacts", "email": ADA_EMAIL}, headers=AUTH, timeout=30
    )

    assert response.status_code == 200, response.text
    erased = response.json()["erased"]
    assert response.json()["learned"]["ids"] == 1
    for kind in ("history", "index", "pending", "deadLetters", "setAside", "idempotency", "done", "lookups"):
        assert erased[kind] >= 1, (kind, erased)
    assert traces_of(redis, [ADA, ADA_EMAIL]) == []
    assert_bob_untouched(redis, url)
