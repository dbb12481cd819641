"""The simulator as HubSpot with its lifecycle, without sockets: events from changes, merges, deletions,
association limits, single-valued types, uninstalls, the journal's app token and subscriptions.

Requests go straight to ``HubSpotApi.handle`` and ``ControlApi.handle``; pushes go to a fake receiver on the
test's thread, and time is a clock the tests move (docs/reference/hubspot.md §9).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import pytest

from hubspot_sim.api import HubSpotApi
from hubspot_sim.control import ControlApi
from hubspot_sim.errors import ASSOCIATION_LIMIT_SUB_CATEGORY
from hubspot_sim.messages import Answer, Request
from hubspot_sim.signatures import sign_v3
from hubspot_sim.state import SimState
from hubspot_sim.webhook_sender import RETRY_DELAYS_S

TOKEN = "pat-na1-unit-test-token-0001"
APP_ID = "4242"
CLIENT_ID = "client-id-1"
SECRET = "app-client-secret"
TARGET = "http://127.0.0.1:9/webhooks/hubspot"
PORTAL = 62515
BATCH = "/crm/associations/2026-03/{}/{}/batch/associate/default"
SINGLE = "/crm/objects/2026-03/{}/{}/associations/default/{}/{}"
LABELLED = "/crm/objects/2026-03/{}/{}/associations/{}/{}"
JOURNAL = "/webhooks-journal/journal/2026-03"
JOURNAL_SUBSCRIPTIONS = "/webhooks-journal/subscriptions/2026-03"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        """The current time."""
        return self.now


class Receiver:
    """A fake receiver: answers each POST with the next status (the last repeats) and records it."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses or (200,))
        self.posts: list[tuple[str, list[dict[str, Any]], dict[str, str], bytes]] = []

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> int:
        """Record the POST; answer the next status."""
        self.posts.append((url, json.loads(body), dict(headers), body))
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]

    def events(self) -> list[dict[str, Any]]:
        """Every event received, in order (first attempts only)."""
        return [e for _, events, _, _ in self.posts for e in events if e["attemptNumber"] == 0]


class Sim:
    """A state with its API and control API, a fake receiver and recorded waits."""

    def __init__(self, receiver: Receiver | None = None) -> None:
        self.clock = Clock()
        self.receiver = receiver or Receiver()
        self.waits: list[float] = []

        def wait(seconds: float) -> bool:
            """Record the wait; never stopping."""
            self.waits.append(seconds)
            return False

        def spawn(target: Callable[[], None]) -> None:
            """Run the delivery at once, on this thread."""
            target()

        io = {"post": self.receiver, "wait": wait, "spawn": spawn}
        self.state = SimState(tokens=[TOKEN], clock=self.clock, webhook_io=io)
        self.api = HubSpotApi(self.state, pause=lambda _: None)
        self.control_api = ControlApi(self.state)

    def call(self, method: str, path: str, body: Any = None, token: str = TOKEN, query: str = "") -> Answer:
        """One API request."""
        raw = json.dumps(body).encode() if body is not None else b""
        return self.api.handle(Request(method, path, query, raw, f"Bearer {token}", "127.0.0.1:8090"))

    def control(self, method: str, path: str, body: Any = None) -> Answer:
        """One control request."""
        raw = json.dumps(body).encode() if body is not None else b""
        return self.control_api.handle(Request(method, path, "", raw, None, "127.0.0.1:8090"))

    def token_call(self, version: str, form: dict[str, str]) -> Answer:
        """A POST to the OAuth token endpoint with a form body."""
        return self.api.handle(Request("POST", f"/oauth/{version}/token", "", urlencode(form).encode()))

    def app(self, *event_types: str) -> None:
        """Register the app and point its webhooks at the receiver, with active subscriptions."""
        assert (
            self.control("POST", "/_sim/apps", {"appId": APP_ID, "clientId": CLIENT_ID, "clientSecret": SECRET}).status
            == 200
        )
        settings = {"targetUrl": TARGET, "throttling": {"maxConcurrentRequests": 10}}
        assert self.call("PUT", f"/webhooks/2026-03/{APP_ID}/settings", settings).status == 200
        for event_type in event_types:
            created = self.call(
                "POST", f"/webhooks/2026-03/{APP_ID}/subscriptions", {"eventType": event_type, "active": True}
            )
            assert created.status == 201, created.body

    def app_token(self) -> str:
        """An app token from the client_credentials grant."""
        answer = self.token_call(
            "2026-03", {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET}
        )
        assert answer.status == 200, answer.body
        return str(answer.body["access_token"])

    def seed(self, object_type: str, *ids: str, portal: int | None = None) -> None:
        """Seed records (firing creations)."""
        body: dict[str, Any] = {"records": [{"objectType": object_type, "id": i} for i in ids]}
        if portal is not None:
            body["portalId"] = portal
        assert self.control("POST", "/_sim/records", body).status == 200

    def companies_of(self, deal: str) -> dict[str, set[int]]:
        """The companies a deal holds, with their type ids."""
        answer = self.call("GET", f"/crm/objects/2026-03/deals/{deal}/associations/companies")
        return {r["toObjectId"]: {t["typeId"] for t in r["associationTypes"]} for r in answer.body["results"]}


def labelled(sim: Sim, deal: str, company: str, *type_ids: int) -> Answer:
    """A labelled deal -> company PUT with HUBSPOT_DEFINED types."""
    body = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": t} for t in type_ids]
    return sim.call("PUT", LABELLED.format("deals", deal, "companies", company), body)


def batch(sim: Sim, pairs: list[tuple[str, str]], types: tuple[str, str] = ("deals", "companies")) -> Answer:
    """A default batch."""
    return sim.call("POST", BATCH.format(*types), {"inputs": [{"from": {"id": f}, "to": {"id": t}} for f, t in pairs]})


@pytest.fixture
def sim() -> Sim:
    """A fresh simulator with a receiver answering 200."""
    return Sim()


class TestEventsFromChanges:
    """Creations, association changes, merges and deletions pushed to the apps whose settings cover them."""

    def test_a_created_record_is_pushed_signed_to_the_app(self, sim: Sim) -> None:
        """POST /_sim/records fires deal.creation: one signed batch with HubSpot's fields."""
        sim.app("deal.creation")
        sim.seed("deals", "501")
        (url, events, headers, body) = sim.receiver.posts[0]
        assert url == TARGET
        (event,) = events
        assert event["subscriptionType"] == "deal.creation"
        assert (event["objectId"], event["portalId"], event["appId"]) == (501, PORTAL, int(APP_ID))
        assert (event["changeFlag"], event["attemptNumber"], event["subscriptionId"]) == ("CREATED", 0, 1)
        timestamp = int(headers["X-HubSpot-Request-Timestamp"])
        assert headers["X-HubSpot-Signature-v3"] == sign_v3(SECRET, "POST", TARGET, body, timestamp)

    def test_nothing_is_pushed_without_a_covering_active_subscription(self, sim: Sim) -> None:
        """A contact's creation, or a paused subscription, pushes nothing."""
        sim.app("deal.creation")
        sim.seed("contacts", "7")
        sim.call("PATCH", f"/webhooks/2026-03/{APP_ID}/subscriptions/1", {"active": False})
        sim.seed("deals", "8")
        assert sim.receiver.posts == []

    def test_generic_object_subscriptions_carry_the_object_type_id(self, sim: Sim) -> None:
        """object.creation with objectTypeId 0-3 gets deals only, with objectTypeId in the event."""
        sim.app()
        body = {"eventType": "object.creation", "active": True, "objectTypeId": "0-3"}
        assert sim.call("POST", f"/webhooks/2026-03/{APP_ID}/subscriptions", body).status == 201
        sim.seed("contacts", "1")
        sim.seed("deals", "2")
        assert [(e["subscriptionType"], e["objectTypeId"], e["objectId"]) for e in sim.receiver.events()] == [
            ("object.creation", "0-3", 2)
        ]

    def test_an_api_association_fires_both_sides_as_the_app(self, sim: Sim) -> None:
        """A default PUT fires deal.associationChange and contact.associationChange, as the app, from the API."""
        sim.app("deal.associationChange", "contact.associationChange")
        assert sim.call("PUT", SINGLE.format("deals", "1", "contacts", "2")).status == 200
        events = sim.receiver.events()
        assert [(e["subscriptionType"], e["fromObjectId"], e["toObjectId"]) for e in events] == [
            ("deal.associationChange", 1, 2),
            ("contact.associationChange", 2, 1),
        ]
        assert {(e["changeSource"], e["sourceId"], e["associationRemoved"]) for e in events} == {("API", APP_ID, False)}
        assert events[0]["associationType"] == "DEAL_TO_CONTACT" and "objectId" not in events[0]

    def test_writing_an_existing_association_again_fires_nothing(self, sim: Sim) -> None:
        """Re-associating a pair changes nothing, so nothing is pushed."""
        sim.app("deal.associationChange")
        sim.call("PUT", SINGLE.format("deals", "1", "contacts", "2"))
        sim.call("PUT", SINGLE.format("deals", "1", "contacts", "2"))
        assert len(sim.receiver.events()) == 1

    def test_removals_through_the_api_fire_their_changes(self, sim: Sim) -> None:
        """DELETE fires each type's removal both ways; batch/labels/archive of Primary fires Primary's only."""
        sim.app("deal.associationChange")
        labelled(sim, "1", "10", 5)
        sim.call(
            "POST",
            "/crm/associations/2026-03/deals/companies/batch/labels/archive",
            {
                "inputs": [
                    {
                        "from": {"id": "1"},
                        "to": {"id": "10"},
                        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}],
                    }
                ]
            },
        )
        assert sim.call("DELETE", LABELLED.format("deals", "1", "companies", "10")).status == 204
        removed = [e for e in sim.receiver.events() if e["associationRemoved"]]
        assert [e["associationTypeId"] for e in removed] == [5, 341]
        assert {(e["changeSource"], e["sourceId"]) for e in removed} == {("API", APP_ID)}

    def test_associations_recorded_for_tests_can_be_removed_and_merged(self, sim: Sim) -> None:
        """A pair without a default (made-up type) still unlinks and merges while someone listens."""
        sim.app("deal.associationChange")
        sim.state.associate([("deals", "1", "products", "2")])
        sim.control("POST", "/_sim/merge", {"objectType": "deals", "primaryObjectId": "1", "mergedObjectIds": ["3"]})
        assert sim.state.unlink("deals", "products", [("100000000001", "2")]) == 1

    def test_a_refused_push_is_retried_on_hubspots_schedule(self) -> None:
        """A receiver answering 500 gets the batch again after each delay of the schedule, scaled."""
        sim = Sim(Receiver(500))
        sim.app("deal.creation")
        sim.control("PUT", "/_sim/config", {"webhook_retry_scale": 0.5})
        sim.seed("deals", "1")
        assert len(sim.receiver.posts) == 1 + len(RETRY_DELAYS_S)
        assert sim.waits == [d * 0.5 for d in RETRY_DELAYS_S]
        assert [e["attemptNumber"] for _, events, _, _ in sim.receiver.posts for e in events] == list(range(11))

    def test_a_target_off_the_machine_is_never_sent_to(self, sim: Sim) -> None:
        """Settings may name any URL, but only loopback targets are pushed to."""
        sim.app("deal.creation")
        settings = {"targetUrl": "https://example.com/hooks", "throttling": {"maxConcurrentRequests": 10}}
        sim.call("PUT", f"/webhooks/2026-03/{APP_ID}/settings", settings)
        sim.seed("deals", "1")
        assert sim.receiver.posts == []

    def test_events_name_the_portal_given(self, sim: Sim) -> None:
        """A seed's portalId is the events' portalId; an OAuth token's portal is its writes'."""
        sim.app("deal.creation", "deal.associationChange")
        sim.seed("deals", "1", portal=777)
        sim.control(
            "POST",
            "/_sim/oauth-apps",
            {"client_id": CLIENT_ID, "client_secret": SECRET, "refresh_token": "r", "portal_id": 888},
        )
        form = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "client_secret": SECRET, "refresh_token": "r"}
        token = sim.token_call("v1", form).body["access_token"]
        sim.call("PUT", SINGLE.format("deals", "1", "contacts", "2"), token=token)
        assert [e["portalId"] for e in sim.receiver.events()] == [777, 888]


class TestMerges:
    """POST /_sim/merge mints a new id; old ids point to it."""

    def test_a_merge_moves_associations_to_a_new_id_and_old_ids_read_it(self, sim: Sim) -> None:
        """Both old ids read the new record (properties merged, the primary's winning); associations moved."""
        sim.control(
            "POST",
            "/_sim/records",
            {
                "records": [
                    {"objectType": "contacts", "id": "1", "properties": {"email": "a@x.io", "city": "Paris"}},
                    {"objectType": "contacts", "id": "2", "properties": {"email": "b@x.io", "phone": "5"}},
                ]
            },
        )
        sim.call("PUT", SINGLE.format("contacts", "2", "deals", "9"))
        answer = sim.control(
            "POST", "/_sim/merge", {"objectType": "contacts", "primaryObjectId": "1", "mergedObjectIds": ["2"]}
        )
        new_id = answer.body["newObjectId"]
        assert new_id not in ("1", "2")
        for old in ("1", "2"):
            read = sim.call("GET", f"/crm/objects/2026-03/contacts/{old}")
            assert read.body["id"] == new_id
            assert read.body["properties"] | {"hs_object_id": new_id} == {
                "hs_object_id": new_id,
                "email": "a@x.io",
                "city": "Paris",
                "phone": "5",
            }
        deals = sim.call("GET", f"/crm/objects/2026-03/contacts/{new_id}/associations/deals").body["results"]
        assert [d["toObjectId"] for d in deals] == ["9"]
        assert sim.call("GET", "/crm/objects/2026-03/contacts/2/associations/deals").body["results"] == []

    def test_extra_primary_labels_are_dropped(self, sim: Sim) -> None:
        """Two deals with different Primary companies: the merged deal keeps the primary deal's Primary only."""
        labelled(sim, "1", "10", 5)
        labelled(sim, "2", "20", 5)
        new_id = sim.control(
            "POST", "/_sim/merge", {"objectType": "deals", "primaryObjectId": "1", "mergedObjectIds": ["2"]}
        ).body["newObjectId"]
        assert sim.companies_of(new_id) == {"10": {341, 5}, "20": {341}}

    def test_writes_naming_a_merged_id_follow_the_alias_by_default(self, sim: Sim) -> None:
        """merged_ids alias: the write succeeds on the new record and the answer echoes the new id."""
        new_id = sim.control(
            "POST", "/_sim/merge", {"objectType": "contacts", "primaryObjectId": "1", "mergedObjectIds": ["2"]}
        ).body["newObjectId"]
        answer = batch(sim, [("5", "2")], ("deals", "contacts"))
        assert answer.status == 200
        assert answer.json()["results"][0]["to"]["id"] == new_id
        single = sim.call("PUT", SINGLE.format("contacts", "1", "deals", "6"))
        assert single.json()["results"][0]["from"]["id"] == new_id

    def test_writes_naming_a_merged_id_are_invalid_when_configured(self, sim: Sim) -> None:
        """merged_ids invalid: INVALID_OBJECT_IDS naming the old id, nothing written."""
        sim.control("PUT", "/_sim/config", {"merged_ids": "invalid"})
        sim.control("POST", "/_sim/merge", {"objectType": "contacts", "primaryObjectId": "1", "mergedObjectIds": ["2"]})
        answer = sim.call("PUT", SINGLE.format("deals", "5", "contacts", "2"))
        assert answer.status == 400
        assert answer.body["context"]["INVALID_OBJECT_IDS"] == ["CONTACT=2 is not valid"]
        assert sim.state.associations_json()["total"] == 0

    def test_a_merge_pushes_the_merge_and_a_deletion_per_merged_id(self, sim: Sim) -> None:
        """contact.merge carries primaryObjectId, mergedObjectIds and newObjectId; then contact.deletion."""
        sim.app("contact.merge", "contact.deletion")
        new_id = sim.control(
            "POST", "/_sim/merge", {"objectType": "contacts", "primaryObjectId": "1", "mergedObjectIds": ["2", "3"]}
        ).body["newObjectId"]
        merge, *deletions = sim.receiver.events()
        assert merge["subscriptionType"] == "contact.merge"
        assert (merge["primaryObjectId"], merge["mergedObjectIds"], merge["newObjectId"]) == (1, [2, 3], int(new_id))
        assert [(d["subscriptionType"], d["objectId"]) for d in deletions] == [
            ("contact.deletion", 2),
            ("contact.deletion", 3),
        ]

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"objectType": "nope", "primaryObjectId": "1", "mergedObjectIds": ["2"]}, "objectType"),
            ({"objectType": "contacts", "primaryObjectId": "x", "mergedObjectIds": ["2"]}, "primaryObjectId"),
            ({"objectType": "contacts", "primaryObjectId": "1", "mergedObjectIds": []}, "mergedObjectIds"),
            ({"objectType": "contacts", "primaryObjectId": "1", "mergedObjectIds": ["1"]}, "mergedObjectIds"),
        ],
    )
    def test_a_bad_merge_is_refused_naming_the_field(self, sim: Sim, body: dict[str, Any], field: str) -> None:
        """400 naming the field; nothing merged."""
        answer = sim.control("POST", "/_sim/merge", body)
        assert answer.status == 400 and field in answer.body["message"]
        assert sim.state.lifecycle_json()["aliases"] == []


class TestDeletions:
    """POST /_sim/records/delete archives records."""

    def test_a_deleted_record_reads_404_and_writes_invalid_and_loses_its_associations(self, sim: Sim) -> None:
        """Read 404, association write 400 INVALID_OBJECT_IDS, its associations dropped."""
        sim.seed("deals", "1")
        sim.call("PUT", SINGLE.format("deals", "1", "contacts", "2"))
        assert sim.control("POST", "/_sim/records/delete", {"objectType": "deals", "ids": ["1"]}).body == {"deleted": 1}
        assert sim.call("GET", "/crm/objects/2026-03/deals/1").status == 404
        refused = sim.call("PUT", SINGLE.format("deals", "1", "contacts", "3"))
        assert refused.status == 400 and refused.body["context"]["INVALID_OBJECT_IDS"] == ["DEAL=1 is not valid"]
        assert sim.state.associations_json()["total"] == 0

    def test_a_read_with_archived_true_answers_deleted_records_only(self, sim: Sim) -> None:
        """``archived=true``: the deleted deal answers (archived), a live one and an unknown id 404."""
        sim.seed("deals", "1")
        sim.seed("deals", "2")
        sim.control("POST", "/_sim/records/delete", {"objectType": "deals", "ids": ["1"]})
        found = sim.call("GET", "/crm/objects/2026-03/deals/1", query="archived=true")
        assert found.status == 200 and found.body["archived"] is True and found.body["id"] == "1"
        assert sim.call("GET", "/crm/objects/2026-03/deals/2", query="archived=true").status == 404
        assert sim.call("GET", "/crm/objects/2026-03/deals/3", query="archived=true").status == 404
        assert sim.call("GET", "/crm/objects/2026-03/deals/2").status == 200

    def test_a_deletion_pushes_deletion_and_a_privacy_deletion_its_own_event(self, sim: Sim) -> None:
        """privacy: true on contacts fires contact.deletion and contact.privacyDeletion."""
        sim.app("contact.deletion", "contact.privacyDeletion")
        sim.control("POST", "/_sim/records/delete", {"objectType": "contacts", "ids": ["4", "5"], "privacy": True})
        assert [(e["subscriptionType"], e["objectId"]) for e in sim.receiver.events()] == [
            ("contact.deletion", 4),
            ("contact.privacyDeletion", 4),
            ("contact.deletion", 5),
            ("contact.privacyDeletion", 5),
        ]

    def test_a_privacy_deletion_of_another_type_is_refused(self, sim: Sim) -> None:
        """Only contacts have privacy deletions."""
        answer = sim.control("POST", "/_sim/records/delete", {"objectType": "deals", "ids": ["1"], "privacy": True})
        assert answer.status == 400 and "privacy" in answer.body["message"]

    def test_seeding_a_deleted_record_again_restores_it(self, sim: Sim) -> None:
        """A record posted again exists again."""
        sim.control("POST", "/_sim/records/delete", {"objectType": "deals", "ids": ["1"]})
        sim.seed("deals", "1")
        assert sim.call("PUT", SINGLE.format("deals", "1", "contacts", "3")).status == 200


class TestAssociationLimits:
    """PUT /_sim/config association_limits: inputs past a limit fail one by one."""

    def test_a_pair_limit_of_one_links_one_and_refuses_the_rest_per_input(self, sim: Sim) -> None:
        """Three companies for one deal at a limit of 1: one linked, two errors naming no ids."""
        sim.control("PUT", "/_sim/config", {"association_limits": {"deals>companies": 1}})
        answer = batch(sim, [("1", "10"), ("1", "11"), ("1", "12")])
        body = answer.json()
        assert (answer.status, body["numErrors"]) == (200, 2)
        assert [(r["from"]["id"], r["to"]["id"]) for r in body["results"]] == [("1", "10"), ("10", "1")]
        for error in body["errors"]:
            assert error["context"] == {"fromObjectType": ["DEAL"], "toObjectType": ["COMPANY"], "limit": ["1"]}
            assert "limit" in error["message"].lower()
        assert sim.companies_of("1") == {"10": {341}}

    def test_a_single_put_past_a_limit_answers_400_in_hubspots_shape(self, sim: Sim) -> None:
        """The reverse side's limit counts too: a company limited to one deal refuses a second."""
        sim.control("PUT", "/_sim/config", {"association_limits": {"companies>deals": 1}})
        assert sim.call("PUT", SINGLE.format("deals", "1", "companies", "10")).status == 200
        refused = sim.call("PUT", SINGLE.format("deals", "2", "companies", "10"))
        assert refused.status == 400
        assert (refused.body["category"], refused.body["subCategory"]) == (
            "VALIDATION_ERROR",
            ASSOCIATION_LIMIT_SUB_CATEGORY,
        )
        assert "correlationId" in refused.body

    def test_a_label_limit_counts_records_holding_that_label(self, sim: Sim) -> None:
        """At most one company labelled 'Decision maker' per deal: the second labelled write fails (207)."""
        sim.control(
            "POST", "/_sim/labels", {"fromObjectType": "deals", "toObjectType": "companies", "label": "Decision maker"}
        )
        sim.control("PUT", "/_sim/config", {"association_limits": {"deals>companies:Decision maker": 1}})
        spec = [{"associationCategory": "USER_DEFINED", "associationTypeId": 1000}]
        body = {"inputs": [{"from": {"id": "1"}, "to": {"id": t}, "types": spec} for t in ("10", "11")]}
        answer = sim.call("POST", "/crm/associations/2026-03/deals/companies/batch/create", body)
        assert (answer.status, answer.body["numErrors"]) == (207, 1)
        assert answer.body["errors"][0]["context"]["label"] == ["Decision maker"]

    @pytest.mark.parametrize(
        "limits", [{"deals": 1}, {"deals>nope": 1}, {"deals>companies": 0}, {"deals>companies": 10_001}, [1]]
    )
    def test_a_bad_limit_is_refused(self, sim: Sim, limits: Any) -> None:
        """Keys like from>to[:label], values 1 to 10,000."""
        answer = sim.control("PUT", "/_sim/config", {"association_limits": limits})
        assert answer.status == 400 and "association_limits" in answer.body["message"]


class TestSingleValuedTypes:
    """One Primary company per record, one parent company: a new one displaces the old."""

    def test_a_new_primary_company_displaces_the_old(self, sim: Sim) -> None:
        """The first company keeps its unlabelled association and loses Primary."""
        labelled(sim, "1", "10", 5)
        labelled(sim, "1", "11", 5)
        assert sim.companies_of("1") == {"10": {341}, "11": {341, 5}}

    def test_a_displaced_primary_fires_its_removal(self, sim: Sim) -> None:
        """deal.associationChange with associationRemoved for the old Primary."""
        sim.app("deal.associationChange")
        labelled(sim, "1", "10", 5)
        labelled(sim, "1", "11", 5)
        removed = [e for e in sim.receiver.events() if e["associationRemoved"]]
        assert [(e["toObjectId"], e["associationTypeId"], e["isPrimaryAssociation"]) for e in removed] == [
            (10, 5, True)
        ]

    def test_a_company_has_one_parent(self, sim: Sim) -> None:
        """Writing a second parent (type 14) moves it: the first parent stays associated, unlabelled."""
        path = LABELLED.format("companies", "1", "companies", "{}")
        body = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 14}]
        assert sim.call("PUT", path.format("2"), body).status == 201
        assert sim.call("PUT", path.format("3"), body).status == 201
        held = sim.call("GET", "/crm/objects/2026-03/companies/1/associations/companies").body["results"]
        assert {r["toObjectId"]: sorted(t["typeId"] for t in r["associationTypes"]) for r in held} == {
            "2": [450],
            "3": [14, 450],
        }


class TestUninstall:
    """POST /_sim/uninstall {"portalId"} and POST /_sim/install."""

    def oauth(self, sim: Sim, portal: int = 900) -> tuple[dict[str, str], str]:
        """An install of the app in ``portal`` and an access token for it."""
        sim.control(
            "POST",
            "/_sim/oauth-apps",
            {"client_id": CLIENT_ID, "client_secret": SECRET, "refresh_token": "rt", "portal_id": portal},
        )
        form = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "client_secret": SECRET, "refresh_token": "rt"}
        return form, str(sim.token_call("2026-03", form).body["access_token"])

    def test_an_uninstalled_portal_gets_401_and_bad_refresh_token(self, sim: Sim) -> None:
        """Its access token answers 401, its refresh BAD_REFRESH_TOKEN; an install lets it refresh again."""
        form, token = self.oauth(sim)
        assert sim.call("GET", "/crm/objects/2026-03/deals/1/associations/contacts", token=token).status == 200
        assert sim.control("POST", "/_sim/uninstall", {"portalId": 900}).body["revokedTokens"] == 1
        assert sim.call("GET", "/crm/objects/2026-03/deals/1/associations/contacts", token=token).status == 401
        refused = sim.token_call("v1", form)
        assert (refused.status, refused.body["status"]) == (400, "BAD_REFRESH_TOKEN")
        sim.control("POST", "/_sim/install", {"portalId": 900})
        assert sim.token_call("v1", form).status == 200

    def test_the_static_tokens_portal_can_be_uninstalled(self, sim: Sim) -> None:
        """Static tokens act for portal_id (62515): uninstalled, they answer 401."""
        sim.control("POST", "/_sim/uninstall", {"portalId": PORTAL})
        assert sim.call("PUT", SINGLE.format("deals", "1", "contacts", "2")).status == 401

    def test_an_uninstall_removes_journal_subscriptions_stops_pushes_and_journals_the_lifecycle(self, sim: Sim) -> None:
        """The portal's journal subscriptions go, its events are not pushed, the uninstall is journalled."""
        sim.app("deal.creation")
        app_token = sim.app_token()
        sim.control("PUT", "/_sim/config", {"journal_auth": "app"})
        object_sub = {"subscriptionType": "OBJECT", "portalId": 900, "objectTypeId": "0-3", "actions": ["CREATE"]}
        lifecycle = {"subscriptionType": "APP_LIFECYCLE_EVENT", "eventTypeId": "4-1916193", "properties": []}
        for body in (object_sub, lifecycle):
            assert sim.call("POST", JOURNAL_SUBSCRIPTIONS, body, token=app_token).status == 200
        sim.control("POST", "/_sim/uninstall", {"portalId": 900})
        listed = sim.call("GET", JOURNAL_SUBSCRIPTIONS, token=app_token).body["results"]
        assert [s["subscriptionType"] for s in listed] == ["APP_LIFECYCLE_EVENT"]
        sim.seed("deals", "1", portal=900)
        assert sim.receiver.posts == []
        (entry,) = sim.state.journal.entries_json()["entries"]
        assert [(e["action"], e["eventTypeId"], e["appId"]) for e in entry["events"]] == [
            ("APP_UNINSTALL", "4-1916193", int(APP_ID))
        ]


class TestJournalAsHubSpotServesIt:
    """The app token, journal subscriptions, what the journal holds and its file formats."""

    def test_client_credentials_issue_an_app_token_at_2026_03_only(self, sim: Sim) -> None:
        """A ClientCredentialsTokenResponse (no refresh token); v1 refuses the grant; a wrong secret is refused."""
        sim.app()
        form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET}
        answer = sim.token_call("2026-03", form)
        assert answer.body["token_use"] == "client_credentials" and "refresh_token" not in answer.body
        assert "developer.webhooks_journal.read" in answer.body["scopes"]
        assert sim.token_call("v1", form).body["status"] == "BAD_GRANT_TYPE"
        assert sim.token_call("2026-03", {**form, "client_secret": "x"}).body["status"] == "BAD_CLIENT_SECRET"

    def test_with_journal_auth_app_portal_tokens_are_refused_and_app_tokens_read(self, sim: Sim) -> None:
        """Portal token on the journal: 403; app token: 204 (empty); app token on the CRM: 403."""
        sim.app()
        sim.control("PUT", "/_sim/config", {"journal_auth": "app"})
        assert sim.call("GET", f"{JOURNAL}/earliest").status == 403
        app_token = sim.app_token()
        assert sim.call("GET", f"{JOURNAL}/earliest", token=app_token).status == 204
        assert sim.call("PUT", SINGLE.format("deals", "1", "contacts", "2"), token=app_token).status == 403

    def test_the_journal_holds_only_subscribed_events(self, sim: Sim) -> None:
        """A deal creation in a subscribed portal is journalled; a contact's, or another portal's, is not."""
        sim.app()
        app_token = sim.app_token()
        body = {
            "subscriptionType": "OBJECT",
            "portalId": PORTAL,
            "objectTypeId": "0-3",
            "actions": ["CREATE"],
            "objectIds": [],
            "properties": [],
        }
        created = sim.call("POST", JOURNAL_SUBSCRIPTIONS, body, token=app_token)
        assert created.status == 200 and created.body["id"] == 1 and created.body["appId"] == int(APP_ID)
        sim.seed("deals", "1")
        sim.seed("contacts", "2")
        sim.seed("deals", "3", portal=1)
        (entry,) = sim.state.journal.entries_json()["entries"]
        (event,) = entry["events"]
        assert (event["subscriptionType"], event["action"], event["objectTypeId"], event["objectId"]) == (
            "deal.creation",
            "CREATE",
            "0-3",
            1,
        )

    def test_journal_subscriptions_upsert_list_read_and_delete(self, sim: Sim) -> None:
        """The same portal, kind and type updates; read one; delete one (204) and a portal's (204)."""
        sim.app()
        app_token = sim.app_token()
        body = {
            "subscriptionType": "ASSOCIATION",
            "portalId": 5,
            "objectTypeId": "0-3",
            "actions": ["ASSOCIATION_ADDED"],
            "associatedObjectTypeIds": ["0-1"],
            "objectIds": [],
        }
        first = sim.call("POST", JOURNAL_SUBSCRIPTIONS, body, token=app_token).body
        again = sim.call(
            "POST",
            JOURNAL_SUBSCRIPTIONS,
            {**body, "actions": ["ASSOCIATION_ADDED", "ASSOCIATION_REMOVED"]},
            token=app_token,
        ).body
        assert again["id"] == first["id"] and again["actions"] == ["ASSOCIATION_ADDED", "ASSOCIATION_REMOVED"]
        assert sim.call("GET", f"{JOURNAL_SUBSCRIPTIONS}/{first['id']}", token=app_token).body == again
        other = sim.call("POST", JOURNAL_SUBSCRIPTIONS, {**body, "objectTypeId": "0-1"}, token=app_token).body
        assert sim.call("DELETE", f"{JOURNAL_SUBSCRIPTIONS}/{other['id']}", token=app_token).status == 204
        assert sim.call("GET", f"{JOURNAL_SUBSCRIPTIONS}/{other['id']}", token=app_token).status == 404
        assert sim.call("DELETE", f"{JOURNAL_SUBSCRIPTIONS}/portals/5", token=app_token).status == 204
        assert sim.call("GET", JOURNAL_SUBSCRIPTIONS, token=app_token).body == {"results": []}
        refused = sim.call("POST", JOURNAL_SUBSCRIPTIONS, {**body, "actions": ["NOPE"]}, token=app_token)
        assert refused.status == 400 and "actions" in refused.body["message"]

    def test_association_journal_subscriptions_filter_the_other_type(self, sim: Sim) -> None:
        """ASSOCIATION from deals to contacts only: a deal -> contact write is journalled, deal -> company not."""
        sim.app()
        body = {
            "subscriptionType": "ASSOCIATION",
            "portalId": PORTAL,
            "objectTypeId": "0-3",
            "actions": ["ASSOCIATION_ADDED"],
            "associatedObjectTypeIds": ["0-1"],
            "objectIds": [],
        }
        sim.call("POST", JOURNAL_SUBSCRIPTIONS, body, token=sim.app_token())
        sim.call("PUT", SINGLE.format("deals", "1", "contacts", "2"))
        sim.call("PUT", SINGLE.format("deals", "1", "companies", "3"))
        events = [e for entry in sim.state.journal.entries_json()["entries"] for e in entry["events"]]
        assert [(e["action"], e["fromObjectId"], e["toObjectId"]) for e in events] == [("ASSOCIATION_ADDED", 1, 2)]

    def test_a_privacy_deletion_is_journalled_by_a_gdpr_subscription(self, sim: Sim) -> None:
        """GDPR_PRIVACY_DELETION on contacts journals the GDPR_DELETE only (no OBJECT subscription for DELETE)."""
        sim.app()
        body = {"subscriptionType": "GDPR_PRIVACY_DELETION", "portalId": PORTAL, "objectTypeId": "0-1"}
        answer = sim.call("POST", JOURNAL_SUBSCRIPTIONS, {**body, "actions": ["GDPR_DELETE"]}, token=sim.app_token())
        assert answer.status == 200, answer.body
        sim.control("POST", "/_sim/records/delete", {"objectType": "contacts", "ids": ["9"], "privacy": True})
        (entry,) = sim.state.journal.entries_json()["entries"]
        assert [(e["subscriptionType"], e["action"], e["objectId"]) for e in entry["events"]] == [
            ("contact.privacyDeletion", "GDPR_DELETE", 9)
        ]

    @pytest.mark.parametrize("journal_format", ["array", "wrapper"])
    def test_entry_files_come_as_an_array_or_in_the_wrapper(self, sim: Sim, journal_format: str) -> None:
        """journal_format array: the events; wrapper: {offset, journalEvents, publishedAt}."""
        sim.control("PUT", "/_sim/config", {"journal_format": journal_format})
        (entry,) = sim.control("POST", "/_sim/journal/events", {"events": [{"portalId": 1, "eventId": 7}]}).body[
            "entries"
        ]
        body = json.loads(sim.control("GET", f"/_sim/journal/files/{entry['offset']}").payload())
        if journal_format == "array":
            assert body == [{"portalId": 1, "eventId": 7}]
        else:
            assert body["offset"] == entry["offset"] and body["journalEvents"] == [{"portalId": 1, "eventId": 7}]
            assert body["publishedAt"].endswith("Z")

    def test_a_raw_entry_is_served_as_written(self, sim: Sim) -> None:
        """POST /_sim/journal/events {"raw"} writes an entry whose file is that text (a corrupt entry)."""
        (entry,) = sim.control("POST", "/_sim/journal/events", {"raw": "{not json", "portalId": 3}).body["entries"]
        assert sim.control("GET", f"/_sim/journal/files/{entry['offset']}").payload() == b"{not json"


class TestLabelsAndStatuses:
    """Labels on the 2026-03 path, and the token endpoint's throttling."""

    def test_labels_on_the_2026_03_path_come_in_pages(self, sim: Sim) -> None:
        """limit 1: the unlabelled type, then Primary, then no next page."""
        path = "/crm/associations/2026-03/deals/companies/labels"
        first = sim.call("GET", path, query="limit=1").body
        assert first["results"] == [{"category": "HUBSPOT_DEFINED", "typeId": 341}]
        second = sim.call("GET", path, query=f"limit=1&after={first['paging']['next']['after']}").body
        assert second == {"results": [{"category": "HUBSPOT_DEFINED", "typeId": 5, "label": "Primary"}]}
        assert sim.call("GET", path, query="limit=0").status == 400

    def test_the_token_endpoint_answers_429_with_retry_after_while_throttled(self, sim: Sim) -> None:
        """token_429_s 20: 429 with Retry-After counting down; once past, refreshes work."""
        sim.control(
            "POST", "/_sim/oauth-apps", {"client_id": "c", "client_secret": "s", "refresh_token": "r", "portal_id": 1}
        )
        form = {"grant_type": "refresh_token", "client_id": "c", "client_secret": "s", "refresh_token": "r"}
        sim.control("PUT", "/_sim/config", {"token_429_s": 20})
        throttled = sim.token_call("v1", form)
        assert (throttled.status, throttled.headers["Retry-After"]) == (429, "20")
        assert throttled.body["message"] == "You have reached your rate limit."
        sim.clock.now += 15
        assert sim.token_call("2026-03", form).headers["Retry-After"] == "5"
        sim.clock.now += 5
        assert sim.token_call("v1", form).status == 200

    @pytest.mark.parametrize(
        ("key", "value"),
        [
            ("merged_ids", "maybe"),
            ("journal_format", "xml"),
            ("journal_auth", "none"),
            ("batch_create_status", 202),
            ("token_429_s", -1),
        ],
    )
    def test_bad_lifecycle_settings_are_refused(self, sim: Sim, key: str, value: Any) -> None:
        """Each new setting is validated, naming itself."""
        answer = sim.control("PUT", "/_sim/config", {key: value})
        assert answer.status == 400 and key in answer.body["message"]


class TestControlRoutes:
    """Start-up settings, app registration, and the control routes' refusals."""

    def test_start_up_settings_apply_and_survive_a_reset(self) -> None:
        """SimState(config=...) (the --config flag) sets the start-up values that reset returns to."""
        state = SimState(config={"journal_auth": "app", "batch_create_status": 201})
        state.configure({"journal_auth": "any"})
        state.reset()
        assert (state.config.journal_auth, state.config.batch_create_status) == ("app", 201)
        with pytest.raises(ValueError, match="unknown config keys"):
            SimState(config={"nope": 1})

    @pytest.mark.parametrize(
        ("path", "body", "field"),
        [
            ("/_sim/apps", {"appId": "x", "clientId": "c", "clientSecret": "s"}, "appId"),
            ("/_sim/apps", {"appId": "1", "clientId": "", "clientSecret": "s"}, "clientId"),
            ("/_sim/uninstall", {}, "portalId"),
            ("/_sim/install", {"portalId": "abc"}, "portalId"),
            ("/_sim/records/delete", {"objectType": "deals", "ids": []}, "ids"),
            ("/_sim/records/delete", {"objectType": "deals", "ids": ["1"], "privacy": "yes"}, "privacy"),
            ("/_sim/journal/events", {"raw": 5, "portalId": 1}, "raw"),
        ],
    )
    def test_bad_control_bodies_are_refused_naming_the_field(
        self, sim: Sim, path: str, body: dict[str, Any], field: str
    ) -> None:
        """400 naming the field; nothing changes."""
        answer = sim.control("POST", path, body)
        assert answer.status == 400 and field in answer.body["message"]
        assert sim.state.apps_json() == {"apps": [], "uninstalledPortals": []}

    def test_apps_and_lifecycle_are_listed(self, sim: Sim) -> None:
        """GET /_sim/apps shows ids, never secrets; GET /_sim/lifecycle the aliases and archived ids."""
        sim.app()
        sim.control("POST", "/_sim/merge", {"objectType": "deals", "primaryObjectId": "1", "mergedObjectIds": ["2"]})
        sim.control("POST", "/_sim/records/delete", {"objectType": "deals", "ids": ["3"]})
        assert sim.control("GET", "/_sim/apps").body == {
            "apps": [{"appId": APP_ID, "clientId": CLIENT_ID}],
            "uninstalledPortals": [],
        }
        lifecycle = sim.control("GET", "/_sim/lifecycle").body
        assert [(a["id"], a["newId"]) for a in lifecycle["aliases"]] == [("1", "100000000001"), ("2", "100000000001")]
        assert lifecycle["archived"] == [{"objectType": "deals", "id": "3"}]

    def test_manual_deliveries_are_journalled_by_the_same_rule(self, sim: Sim) -> None:
        """journal_auth any: every delivered event; app: only those a journal subscription covers."""
        sim.app()
        body = {"subscriptionType": "OBJECT", "portalId": 5, "objectTypeId": "0-3", "actions": ["CREATE"]}
        sim.call("POST", JOURNAL_SUBSCRIPTIONS, body, token=sim.app_token())
        events = [
            {"portalId": 5, "subscriptionType": "deal.creation", "objectId": 1},
            {"portalId": 5, "subscriptionType": "contact.creation", "objectId": 2},
        ]
        deliver = {"url": TARGET, "clientSecret": SECRET, "events": events}
        sim.control("POST", "/_sim/webhooks/deliver", deliver)
        assert len(sim.state.journal.entries_json()["entries"][0]["events"]) == 2
        sim.state.journal.clear()
        sim.control("PUT", "/_sim/config", {"journal_auth": "app"})
        sim.control("POST", "/_sim/webhooks/deliver", deliver)
        (entry,) = sim.state.journal.entries_json()["entries"]
        assert [e["objectId"] for e in entry["events"]] == [1]

    def test_company_to_company_labels_include_parent_and_child(self, sim: Sim) -> None:
        """The v4 labels of companies -> companies: unlabelled 450, then 13 and 14."""
        labels = sim.call("GET", "/crm/v4/associations/companies/companies/labels").body["results"]
        assert [(d["typeId"], d.get("label")) for d in labels] == [
            (450, None),
            (13, "Child Company"),
            (14, "Parent Company"),
        ]
