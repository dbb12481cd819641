"""Previewing a rules draft against the event history on a real Redis: per event and in summary, storing nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from flask.testing import FlaskClient

from hublink.config.settings import Settings
from hublink.domain.errors import StoreUnavailableError
from hublink.domain.events import CrmEvent
from hublink.domain.rules import RulesError
from hublink.intake.history import EventHistory, EventOutcome
from hublink.ops.rules_preview import MAX_LIMIT, preview
from hublink.store.keys import Keys
from tests.conftest import ADMIN_TOKEN, API_TOKEN
from web import create_app

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

PUBLISHED = """\
rules:
  - name: deal-contact
    source: hubspot
    when: {subscriptionType: deal.creation}
    associations:
      - from: {objectType: deals, id: "objectId"}
        to: {objectType: contacts, id: "to_contact"}
  - name: workflow-links
    source: workflow
    associations:
      - from: {objectType: deals, id: "objectId"}
        to: {objectType: contacts, id: "contact_id"}
"""
#: The deal rule is kept, the workflow rule is gone, and contacts are now linked to their company.
DRAFT = """\
rules:
  - name: deal-contact
    source: hubspot
    when: {subscriptionType: deal.creation}
    associations:
      - from: {objectType: deals, id: "objectId"}
        to: {objectType: contacts, id: "to_contact"}
  - name: contact-company
    source: hubspot
    when: {subscriptionType: contact.creation}
    associations:
      - from: {objectType: contacts, id: "objectId"}
        to: {objectType: companies, id: "to_company"}
"""


def hubspot(event_id: int, object_id: int, subscription_type: str = "deal.creation", **extra: Any) -> CrmEvent:
    """A HubSpot app webhook event as the history keeps it."""
    payload = {"eventId": event_id, "objectId": object_id, "subscriptionType": subscription_type, **extra}
    return CrmEvent(
        source="hubspot",
        payload=payload,
        portal_id="62515",
        event_id=str(event_id),
        subscription_type=subscription_type,
        object_id=str(object_id),
        dedup_key=f"hs:{event_id}",
    )


def workflow(object_id: int, contact_id: int) -> CrmEvent:
    """A workflow action's event."""
    return CrmEvent(source="workflow", payload={"objectId": object_id, "contact_id": contact_id}, portal_id="62515")


@pytest.fixture
def redis(redis_url: str) -> redis_lib.Redis:
    """A client on the test's own database."""
    return redis_lib.Redis.from_url(redis_url)


def record_history(store: EventHistory) -> None:
    """A history of the last minutes: deals created, a contact created, a workflow action, and what to pass over.

    Oldest first: deal 1, deal 2 (a duplicate delivery of deal 1 after it), a contact, a workflow action,
    an API request, a replay of deal 1; each request one millisecond after the one before.
    """
    start = time.time() - 60
    requests: list[tuple[str, str, list[EventOutcome]]] = [
        ("1-0", "hubspot", [EventOutcome(0, "accepted", hubspot(1, 5001, to_contact=7001), ("deal-contact",))]),
        ("2-0", "hubspot", [EventOutcome(0, "accepted", hubspot(2, 5002, to_contact=7002), ("deal-contact",))]),
        ("3-0", "hubspot", [EventOutcome(0, "duplicate", hubspot(1, 5001, to_contact=7001))]),
        ("4-0", "hubspot", [EventOutcome(0, "unmatched", hubspot(4, 6001, "contact.creation", to_company=8001))]),
        ("5-0", "workflow", [EventOutcome(0, "accepted", workflow(5003, 7003), ("workflow-links",))]),
        ("6-0", "api", [EventOutcome(0, "accepted", CrmEvent(source="api", payload={}))]),
        (
            "replay-7-1",
            "replay",
            [EventOutcome(0, "accepted", hubspot(1, 5001, to_contact=7001), ("deal-contact",), replay_of="1-0.0")],
        ),
    ]
    for n, (entry_id, kind, outcomes) in enumerate(requests):
        store.record(entry_id, start + n / 1000, kind, outcomes)


@pytest.fixture
def history(redis: redis_lib.Redis) -> EventHistory:
    """The history :func:`record_history` keeps, on the test's database."""
    store = EventHistory(redis, Keys("hl:"))
    record_history(store)
    return store


def snapshot(redis: redis_lib.Redis) -> dict[bytes, Any]:
    """Every key with its value's dump: what a preview must leave as it was."""
    return {key: redis.dump(key) for key in sorted(redis.keys("*"))}


class TestPreview:
    """The draft beside the published rules, per event and in summary."""

    def test_each_event_says_what_each_version_would_do_and_the_summary_counts_the_difference(
        self, history: EventHistory
    ) -> None:
        """Four events previewed, newest first: the contact newly linked, the workflow action newly unmatched."""
        result = preview(DRAFT, PUBLISHED, history)
        assert result["summary"] == {"wouldLink": 3, "newlyUnmatched": 1, "changed": 2, "events": 4}
        by_object = {event["objectId"]: event for event in result["events"]}
        assert [event["objectId"] for event in result["events"]] == [None, "6001", "5002", "5001"]

        contact = by_object["6001"]
        assert contact["published"] == {"rules": [], "associations": [], "problems": []}
        assert contact["draft"]["rules"] == ["contact-company"]
        assert contact["draft"]["associations"] == [
            {
                "rule": "contact-company",
                "from": "contacts/6001",
                "to": "companies/8001",
                "needsLookup": False,
                "action": "link",
                "mode": "add",
            }
        ]
        assert (contact["changed"], contact["newlyUnmatched"]) == (True, False)

        action = result["events"][0]
        assert action["source"] == "workflow"
        assert action["published"]["associations"][0]["to"] == "contacts/7003"
        assert action["draft"] == {"rules": [], "associations": [], "problems": []}
        assert (action["changed"], action["newlyUnmatched"]) == (True, True)

        deal = by_object["5001"]
        assert deal["draft"] == deal["published"]
        assert deal["draft"]["associations"][0]["rule"] == "deal-contact"
        assert (deal["changed"], deal["newlyUnmatched"], deal["outcome"]) == (False, False, "accepted")

    def test_the_limit_takes_the_newest_events(self, history: EventHistory) -> None:
        """limit 2: the workflow action and the contact, the two newest events the rules can run on."""
        result = preview(DRAFT, PUBLISHED, history, limit=2)
        assert [e["source"] for e in result["events"]] == ["workflow", "hubspot"]
        assert result["summary"]["events"] == 2

    def test_source_and_subscription_type_narrow_the_events(self, history: EventHistory) -> None:
        """source hubspot leaves the workflow action out; subscription type deal.creation leaves the contact out."""
        hubspot_only = preview(DRAFT, PUBLISHED, history, source="hubspot")
        assert {e["source"] for e in hubspot_only["events"]} == {"hubspot"}
        assert hubspot_only["summary"] == {"wouldLink": 3, "newlyUnmatched": 0, "changed": 1, "events": 3}
        deals = preview(DRAFT, PUBLISHED, history, subscription_type="deal.creation")
        assert [e["objectId"] for e in deals["events"]] == ["5002", "5001"]
        assert deals["summary"]["changed"] == 0

    def test_nothing_published_makes_every_planned_association_a_change(self, history: EventHistory) -> None:
        """Without a published version every event is unmatched on that side."""
        result = preview(DRAFT, None, history)
        assert result["summary"] == {"wouldLink": 3, "newlyUnmatched": 0, "changed": 3, "events": 4}
        assert all(e["published"]["rules"] == [] for e in result["events"])

    def test_a_lookup_is_shown_as_needing_one_and_hubspot_is_not_asked(self, history: EventHistory) -> None:
        """A search side is named, marked needsLookup, and not resolved (no HubSpot client exists here)."""
        draft = DRAFT.replace(
            'to: {objectType: companies, id: "to_company"}',
            "to:\n          objectType: companies\n          lookup: {search: {property: domain, value: to_company}}",
        )
        result = preview(draft, PUBLISHED, history, subscription_type="contact.creation")
        [association] = result["events"][0]["draft"]["associations"]
        assert association["needsLookup"] is True
        assert association["to"] == "companies where domain = '8001'"
        assert association["rule"] == "contact-company"

    def test_a_problem_of_an_odd_payload_is_listed_for_its_event(self, history: EventHistory) -> None:
        """A rule that matches but finds no id says so, on the event, without stopping the preview."""
        draft = DRAFT.replace('id: "to_company"', 'id: "missing_field"')
        result = preview(draft, PUBLISHED, history, subscription_type="contact.creation")
        [event] = result["events"]
        assert event["draft"]["rules"] == ["contact-company"]
        assert event["draft"]["associations"] == []
        assert "found nothing" in event["draft"]["problems"][0]
        assert result["summary"]["wouldLink"] == 0

    def test_a_preview_stores_nothing(self, history: EventHistory, redis: redis_lib.Redis) -> None:
        """Every key and value is the same after a preview as before it."""
        before = snapshot(redis)
        preview(DRAFT, PUBLISHED, history, limit=MAX_LIMIT)
        assert snapshot(redis) == before


class TestRefusals:
    """What a preview refuses, before reading anything."""

    @pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1])
    def test_a_limit_outside_1_to_1000_is_refused(self, history: EventHistory, limit: int) -> None:
        """The message names the field and the range."""
        with pytest.raises(ValueError, match=r"limit: expected 1 to 1000"):
            preview(DRAFT, PUBLISHED, history, limit=limit)

    def test_a_draft_that_does_not_check_raises_its_problems(self, history: EventHistory) -> None:
        """The draft's problems come with their lines."""
        with pytest.raises(RulesError) as caught:
            preview("rules:\n  - name: Bad Name\n", PUBLISHED, history)
        assert any(p.startswith("<draft>:2:") for p in caught.value.problems)

    def test_without_redis_it_fails_closed(self) -> None:
        """No Redis: StoreUnavailableError, never an empty preview."""
        down = EventHistory(redis_lib.Redis(port=1, socket_connect_timeout=0.2), Keys("hl:"))
        with pytest.raises(StoreUnavailableError):
            preview(DRAFT, PUBLISHED, down)


@pytest.fixture
def api(make_settings: Callable[..., Settings], redis_url: str, tmp_path: Path) -> FlaskClient:
    """The web app with PUBLISHED as its rules file and the history of :func:`record_history`."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(PUBLISHED)
    app = create_app(make_settings(redis_url=redis_url, rules_file=str(rules)))
    record_history(app.extensions["hublink"].history)
    return app.test_client()


class TestPreviewApi:
    """``POST /api/rules/preview``: the preview over HTTP, and a precise refusal for each bad request."""

    def test_the_draft_is_previewed_against_the_published_rules_file(self, api: FlaskClient) -> None:
        """200: the summary and the events, newest first; a rules file has no version number."""
        response = api.post("/api/rules/preview", json={"text": DRAFT, "limit": 3, "source": "hubspot"}, headers=AUTH)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["publishedVersion"] is None
        assert body["summary"] == {"wouldLink": 3, "newlyUnmatched": 0, "changed": 1, "events": 3}
        assert body["events"][0]["draft"]["associations"][0]["to"] == "companies/8001"

    def test_the_subscription_type_filter_is_applied(self, api: FlaskClient) -> None:
        """Only contact creations: one event, newly linked."""
        body = {"text": DRAFT, "subscriptionType": "contact.creation"}
        result = api.post("/api/rules/preview", json=body, headers=AUTH).get_json()
        assert result["summary"] == {"wouldLink": 1, "newlyUnmatched": 0, "changed": 1, "events": 1}

    def test_a_draft_that_does_not_check_is_a_422_listing_each_problem_with_its_line(self, api: FlaskClient) -> None:
        """Every problem comes with its line, as ``hublink rules check`` prints them."""
        draft = DRAFT.replace("source: hubspot", "source: hubsplot", 1).replace('id: "to_company"', 'id: "a[["')
        response = api.post("/api/rules/preview", json={"text": draft}, headers=AUTH)
        assert response.status_code == 422
        error = response.get_json()["error"]
        assert error["code"] == "invalid_rules"
        lines = {p["line"] for p in error["details"]}
        assert lines == {3, 13}, error

    def test_a_control_character_is_a_problem_with_its_line_not_a_crash(self, api: FlaskClient) -> None:
        """YAML refuses U+009E: a 422 naming line 2, as for any other problem."""
        response = api.post("/api/rules/preview", json={"text": "rules:\n  - x\u009e"}, headers=AUTH)
        assert response.status_code == 422
        [problem] = response.get_json()["error"]["details"]
        assert problem == {"line": 2, "message": "not valid YAML: special characters are not allowed (U+009E)"}

    @pytest.mark.parametrize(
        ("body", "code", "fragment"),
        [
            ([], "malformed_json", "expected a JSON object"),
            ({}, "invalid_parameter", "text: expected"),
            ({"text": 5}, "invalid_parameter", "text: expected"),
            ({"text": DRAFT, "limit": 0}, "invalid_parameter", "limit: expected an integer from 1 to 1000"),
            ({"text": DRAFT, "limit": 1001}, "invalid_parameter", "limit: expected an integer from 1 to 1000"),
            ({"text": DRAFT, "limit": "5"}, "invalid_parameter", "limit: expected"),
            ({"text": DRAFT, "limit": True}, "invalid_parameter", "limit: expected"),
            ({"text": DRAFT, "source": ""}, "invalid_parameter", "source: expected a non-empty string"),
            ({"text": DRAFT, "subscriptionType": 7}, "invalid_parameter", "subscriptionType: expected"),
            ({"text": DRAFT, "dry_run": True}, "unknown_field", "dry_run: not a field"),
        ],
    )
    def test_each_bad_request_is_a_precise_400(self, api: FlaskClient, body: Any, code: str, fragment: str) -> None:
        """The code says which kind of fault, the message which field."""
        response = api.post("/api/rules/preview", json=body, headers=AUTH)
        assert response.status_code == 400
        error = response.get_json()["error"]
        assert error["code"] == code
        assert fragment in error["message"]

    def test_a_body_not_declared_as_json_is_a_415(self, api: FlaskClient) -> None:
        """The content type is checked before the body is parsed."""
        response = api.post("/api/rules/preview", data="text=x", content_type="text/plain", headers=AUTH)
        assert response.status_code == 415

    @pytest.mark.parametrize(("token", "status"), [(None, 401), (API_TOKEN, 403)])
    def test_without_the_rules_read_scope_it_is_refused(self, api: FlaskClient, token: str | None, status: int) -> None:
        """rules:read is needed: no token is a 401, the direct API's token (without the scope) a 403."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = api.post("/api/rules/preview", json={"text": DRAFT}, headers=headers)
        assert response.status_code == status
