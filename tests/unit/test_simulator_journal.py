"""The simulator's webhooks journal and app webhook settings, without sockets.

Time is a clock the tests move, so three days pass at once.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from hubspot_sim.api import HubSpotApi
from hubspot_sim.journal import RETENTION_S, Journal
from hubspot_sim.messages import Answer, Request
from hubspot_sim.state import SimState
from hubspot_sim.webhook_settings import WebhookApps

TOKEN = "pat-na1-unit-test-token-0001"
JOURNAL = "/webhooks-journal/journal/2026-03"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        """The current time."""
        return self.now


def call(api: HubSpotApi, method: str, path: str, body: Any = None, query: str = "") -> Answer:
    """One API request without a socket, as if sent to host sim.test."""
    raw = json.dumps(body).encode() if body is not None else b""
    return api.handle(Request(method, path, query, raw, f"Bearer {TOKEN}", "127.0.0.1:8090"))


class TestJournal:
    """Entries in the order written, per portal, kept three days."""

    def test_events_are_split_by_portal(self) -> None:
        """One write of events from two portals makes two entries, in first-seen order."""
        journal = Journal(Clock())
        written = journal.write([{"portalId": 1, "eventId": 1}, {"portalId": 2, "eventId": 2}, {"portalId": 1}])
        assert [(e.portal_id, len(e.events)) for e in written] == [(1, 2), (2, 1)]
        assert [e.portal_id for e in journal.earliest(10, portal_id=2)] == [2]

    def test_reading_on_from_an_offset(self) -> None:
        """after() gives the entries following an offset; an unknown offset gives None."""
        journal = Journal(Clock())
        first, second, third = (journal.write([{"eventId": i}])[0] for i in range(3))
        assert journal.after(first.offset, 5) == [second, third]
        assert journal.after(third.offset, 5) == []
        assert journal.after("nope", 5) is None
        assert journal.latest(2) == [second, third]

    def test_entries_expire_after_three_days(self) -> None:
        """An entry is gone once three days have passed; its offset is then unknown."""
        clock = Clock()
        journal = Journal(clock)
        old = journal.write([{"eventId": 1}])[0]
        clock.now += RETENTION_S - 1
        young = journal.write([{"eventId": 2}])[0]
        clock.now += 1
        assert journal.earliest(10) == [young]
        assert journal.find(old.offset) is None


class TestJournalEndpoints:
    """The journal through the API handler."""

    def test_earliest_latest_and_next(self) -> None:
        """JournalFetchResponses pointing at the simulator's own file route; 204 past the last entry."""
        state = SimState()
        api = HubSpotApi(state)
        assert call(api, "GET", JOURNAL + "/earliest").status == 204
        first, second = (state.journal.write([{"eventId": i}])[0] for i in range(2))
        earliest = call(api, "GET", JOURNAL + "/earliest").json()
        assert earliest["currentOffset"] == first.offset
        assert earliest["url"] == f"http://127.0.0.1:8090/_sim/journal/files/{first.offset}"
        assert call(api, "GET", JOURNAL + "/latest").json()["currentOffset"] == second.offset
        assert call(api, "GET", f"{JOURNAL}/offset/{first.offset}/next").json()["currentOffset"] == second.offset
        assert call(api, "GET", f"{JOURNAL}/offset/{second.offset}/next").status == 204
        assert call(api, "GET", f"{JOURNAL}/offset/unknown/next").status == 404

    def test_batches_and_the_portal_filter(self) -> None:
        """batch/earliest/{count} with installPortalId lists that portal's entries only."""
        state = SimState()
        api = HubSpotApi(state)
        state.journal.write([{"portalId": 1}, {"portalId": 2}])
        state.journal.write([{"portalId": 1}])
        body = call(api, "GET", JOURNAL + "/batch/earliest/10", query="installPortalId=1").json()
        assert (body["status"], len(body["results"])) == ("COMPLETE", 2)
        assert len(call(api, "GET", "/webhooks-journal/journal-local/2026-03/batch/latest/1").json()["results"]) == 1

    def test_batch_read_names_unknown_offsets(self) -> None:
        """Known offsets are fetched; unknown ones get errors[] and the answer is 207."""
        state = SimState()
        entry = state.journal.write([{"eventId": 1}])[0]
        answer = call(HubSpotApi(state), "POST", JOURNAL + "/batch/read", {"inputs": [entry.offset, "gone"]})
        assert (answer.status, answer.json()["numErrors"]) == (207, 1)
        assert answer.json()["errors"][0]["context"] == {"offset": ["gone"]}

    @pytest.mark.parametrize("count", ["0", "1001", "x"])
    def test_bad_counts(self, count: str) -> None:
        """A count outside 1 to 1,000 answers 400."""
        assert call(HubSpotApi(SimState()), "GET", f"{JOURNAL}/batch/earliest/{count}").status == 400

    def test_the_journal_counts_against_no_limit(self) -> None:
        """With a daily limit of 1 used up, the journal still answers, without rate headers."""
        state = SimState(daily_limit=1, rate_limit="1/10s")
        api = HubSpotApi(state)
        assert call(api, "PUT", "/crm/objects/2026-03/deals/1/associations/default/contacts/2").status == 200
        answers = [call(api, "GET", JOURNAL + "/latest") for _ in range(3)]
        assert [a.status for a in answers] == [204, 204, 204]
        assert all(not a.headers for a in answers)


class TestWebhookSettings:
    """An app's settings and subscriptions."""

    def test_settings_round_trip(self) -> None:
        """PUT then GET answers the SettingsResponse; updatedAt moves, createdAt stays; DELETE removes."""
        clock = Clock()
        apps = WebhookApps(clock)
        body = {"targetUrl": "https://example.com/hook", "throttling": {"maxConcurrentRequests": 10}}
        first = apps.put_settings("42", body)
        clock.now += 60
        second = apps.put_settings("42", {**body, "throttling": {"maxConcurrentRequests": 20}})
        assert (second["createdAt"], second["throttling"]) == (first["createdAt"], {"maxConcurrentRequests": 20})
        assert second["updatedAt"] != first["updatedAt"]
        apps.delete_settings("42")
        with pytest.raises(KeyError):
            apps.settings("42")

    @pytest.mark.parametrize(
        ("body", "named"),
        [
            ({"targetUrl": "ftp://x", "throttling": {"maxConcurrentRequests": 10}}, "targetUrl"),
            ({"targetUrl": "https://x", "throttling": {"maxConcurrentRequests": 5}}, "maxConcurrentRequests"),
            ({"targetUrl": "https://x"}, "maxConcurrentRequests"),
        ],
    )
    def test_bad_settings(self, body: dict[str, Any], named: str) -> None:
        """Each bad field is named."""
        with pytest.raises(ValueError, match=named):
            WebhookApps(Clock()).put_settings("1", body)

    def test_subscriptions_create_patch_delete(self) -> None:
        """Create (ids count up), patch active, delete; unknown ids raise KeyError."""
        apps = WebhookApps(Clock())
        created = apps.create("7", {"eventType": "deal.propertyChange", "active": False, "propertyName": "amount"})
        assert (created["id"], created["active"], created["propertyName"]) == ("1", False, "amount")
        assert apps.patch("7", "1", {"active": True})["active"] is True
        assert [s["id"] for s in apps.subscriptions("7")["results"]] == ["1"]
        apps.delete("7", "1")
        with pytest.raises(KeyError):
            apps.subscription("7", "1")

    @pytest.mark.parametrize(
        ("body", "named"),
        [
            ({"eventType": "deal.exploded", "active": True}, "eventType"),
            ({"eventType": "deal.creation"}, "active"),
            ({"eventType": "deal.propertyChange", "active": True}, "propertyName"),
            ({"eventType": "object.creation", "active": True}, "objectTypeId"),
        ],
    )
    def test_bad_subscriptions(self, body: dict[str, Any], named: str) -> None:
        """Each bad field is named."""
        with pytest.raises(ValueError, match=named):
            WebhookApps(Clock()).create("7", body)

    def test_endpoints_answer_404_for_unknown_ones(self) -> None:
        """GET settings of an app without any, and PATCH of an unknown subscription, answer 404."""
        api = HubSpotApi(SimState())
        assert call(api, "GET", "/webhooks/2026-03/42/settings").status == 404
        assert call(api, "PATCH", "/webhooks/2026-03/42/subscriptions/9", {"active": True}).status == 404
        assert call(api, "GET", "/webhooks/2026-03/app/settings").status == 400
