"""``flask hubspot subscriptions show|apply`` against the simulator process: dry run, apply, idempotent apply, show."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from flask.testing import FlaskCliRunner

from hublink.config.settings import Settings
from tests.conftest import HUBSPOT_TOKEN
from tests.integration.conftest import Sim
from web import create_app

pytestmark = pytest.mark.integration
APP_ID = "424242"
PUBLIC_URL = "https://hub.example"
WRITES = ("put_webhook_settings", "create_subscription", "patch_subscription", "delete_subscription")

RULES = """
rules:
  - name: deal-contacts
    source: hubspot
    when: {subscriptionType: deal.creation}
    associations:
      - from: {objectType: deals, id: "objectId"}
        to: {objectType: contacts, lookup: {property: {objectType: deals, id: "objectId", name: contact_id}}}
  - name: stage-changes
    source: hubspot
    when: {subscriptionType: deal.propertyChange, propertyName: dealstage}
    associations:
      - from: {objectType: deals, id: "objectId"}
        to: {objectType: companies, lookup: {property: {objectType: deals, id: "objectId", name: company_id}}}
  - name: anything
    source: hubspot
    associations:
      - from: {objectType: deals, id: "objectId"}
        to: {objectType: contacts, id: "toObjectId"}
"""


@pytest.fixture
def runner(settings: Settings, tmp_path: Path) -> FlaskCliRunner:
    """A CLI runner of an app configured for app 424242 on the simulator, with the rules above."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    configured = replace(
        settings,
        rules_file=str(rules),
        public_url=PUBLIC_URL,
        hubspot_app_id=APP_ID,
        hubspot_developer_token=HUBSPOT_TOKEN,
        webhook_max_concurrency=8,
    )
    return create_app(configured).test_cli_runner()


def writes(sim: Sim) -> int:
    """How many changing calls the simulator has answered."""
    by_endpoint = sim.get("/_sim/requests")["by_endpoint"]
    return sum(by_endpoint.get(name, 0) for name in WRITES)


def held(sim: Sim, path: str) -> requests.Response:
    """GET one of the app's webhooks paths from the simulator, as HubSpot would answer it."""
    return requests.get(
        f"{sim.url}/webhooks/2026-03/{APP_ID}/{path}", headers={"Authorization": f"Bearer {HUBSPOT_TOKEN}"}, timeout=5
    )


def test_dry_run_apply_apply_again_and_show(runner: FlaskCliRunner, sim: Sim) -> None:
    """A dry run changes nothing; apply creates settings and subscriptions; again, nothing to do; show lists them."""
    before = runner.invoke(args=["hubspot", "subscriptions", "show"])
    assert "settings: none set" in before.output and "0 subscription(s)" in before.output
    assert "missing or paused: deal.creation, needed by deal-contacts" in before.output
    dry = runner.invoke(args=["hubspot", "subscriptions", "apply", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would create  https://hub.example/webhooks/hubspot, maxConcurrentRequests 8 (none set)" in dry.output
    assert "would create" in dry.output and "deal.propertyChange (dealstage)" in dry.output
    assert "skipped: rule 'anything'" in dry.output and "no when.subscriptionType" in dry.output
    # The settings, the rules' 2 subscriptions, and the deletions and merges (and contacts' privacy deletions)
    # of the deals, contacts and companies they name: 7 more.
    assert "dry run: 10 change(s) would be made; nothing was changed" in dry.output
    assert "would create    contact.privacyDeletion  needed by deal-contacts, anything" in dry.output
    assert writes(sim) == 0
    assert held(sim, "settings").status_code == 404
    assert held(sim, "subscriptions").json()["results"] == []

    applied = runner.invoke(args=["hubspot", "subscriptions", "apply"])
    assert applied.exit_code == 0, applied.output
    assert "applied 10 change(s)" in applied.output
    settings = held(sim, "settings").json()
    assert (settings["targetUrl"], settings["throttling"]) == (
        "https://hub.example/webhooks/hubspot",
        {"maxConcurrentRequests": 8},
    )
    subscriptions = held(sim, "subscriptions").json()["results"]
    assert sorted((s["eventType"], s.get("propertyName"), s["active"]) for s in subscriptions) == [
        ("company.deletion", None, True),
        ("company.merge", None, True),
        ("contact.deletion", None, True),
        ("contact.merge", None, True),
        ("contact.privacyDeletion", None, True),
        ("deal.creation", None, True),
        ("deal.deletion", None, True),
        ("deal.merge", None, True),
        ("deal.propertyChange", "dealstage", True),
    ]
    assert writes(sim) == 10

    again = runner.invoke(args=["hubspot", "subscriptions", "apply"])
    assert again.exit_code == 0, again.output
    assert "nothing to do: HubSpot already holds what the rules need" in again.output
    assert writes(sim) == 10

    table = runner.invoke(args=["hubspot", "subscriptions", "show"])
    assert table.exit_code == 0, table.output
    assert "target URL: https://hub.example/webhooks/hubspot" in table.output
    assert "maxConcurrentRequests: 8" in table.output
    assert "stage-changes" in table.output and "9 subscription(s)" in table.output
    shown = json.loads(runner.invoke(args=["hubspot", "subscriptions", "show", "--json"]).output)
    assert shown["settings"] == {
        "targetUrl": "https://hub.example/webhooks/hubspot",
        "throttling": {"maxConcurrentRequests": 8},
    }
    needed_by = {s["eventType"]: s["neededBy"] for s in shown["subscriptions"]}
    assert needed_by["deal.creation"] == ["deal-contacts"]
    assert needed_by["deal.propertyChange"] == ["stage-changes"]
    assert needed_by["deal.deletion"] == ["deal-contacts", "stage-changes", "anything"]
    assert needed_by["company.merge"] == ["stage-changes"]
    assert shown["missing"] == []


def test_a_paused_subscription_is_activated_and_a_changed_target_is_set(runner: FlaskCliRunner, sim: Sim) -> None:
    """After someone paused a subscription and moved the target, apply activates the one and resets the other."""
    assert runner.invoke(args=["hubspot", "subscriptions", "apply"]).exit_code == 0
    auth = {"Authorization": f"Bearer {HUBSPOT_TOKEN}"}
    base = f"{sim.url}/webhooks/2026-03/{APP_ID}"
    first = held(sim, "subscriptions").json()["results"][0]
    requests.patch(f"{base}/subscriptions/{first['id']}", json={"active": False}, headers=auth, timeout=5)
    body = {"targetUrl": "https://old.example/hooks", "throttling": {"maxConcurrentRequests": 10}}
    requests.put(f"{base}/settings", json=body, headers=auth, timeout=5)

    result = runner.invoke(args=["hubspot", "subscriptions", "apply"])
    assert result.exit_code == 0, result.output
    assert (
        "https://old.example/hooks, maxConcurrentRequests 10 -> https://hub.example/webhooks/hubspot" in result.output
    )
    assert f"done: activated {first['eventType']}" in result.output and "applied 2 change(s)" in result.output
    assert all(s["active"] for s in held(sim, "subscriptions").json()["results"])


def test_a_refused_developer_token_is_one_line_naming_hubspot(settings: Settings, sim: Sim) -> None:
    """A token the simulator does not accept ends the command with HubSpot's refusal, not a traceback."""
    configured = replace(
        settings, public_url=PUBLIC_URL, hubspot_app_id=APP_ID, hubspot_developer_token="not-a-known-token"
    )
    result = create_app(configured).test_cli_runner().invoke(args=["hubspot", "subscriptions", "show"])
    assert result.exit_code == 1
    assert "HubSpot refused or did not answer" in result.output and "not-a-known-token" not in result.output


def test_missing_variables_are_named(settings: Settings, sim: Sim) -> None:
    """Without HUBSPOT_APP_ID, or HUBLINK_PUBLIC_URL for apply, the command names the variable and calls nothing."""
    runner = create_app(replace(settings, hubspot_developer_token=HUBSPOT_TOKEN)).test_cli_runner()
    assert "HUBSPOT_APP_ID is required" in runner.invoke(args=["hubspot", "subscriptions", "show"]).output
    assert "HUBLINK_PUBLIC_URL is required" in runner.invoke(args=["hubspot", "subscriptions", "apply"]).output
    assert sim.get("/_sim/requests")["total"] == 0
