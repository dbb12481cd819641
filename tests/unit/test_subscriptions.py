"""Webhook subscriptions: rules to wanted subscriptions, what HubSpot holds to a plan, and the client's calls."""

from __future__ import annotations

import json
from typing import Any

import pytest
import responses
from hypothesis import given
from hypothesis import strategies as st

from hublink.delivery.webhooks_api import WebhookApp, WebhooksClient
from hublink.domain.errors import AuthError, ServerError
from hublink.domain.rules import RuleSet
from hublink.domain.subscriptions import (
    Needs,
    Subscription,
    SubscriptionKey,
    WebhookSettings,
    needed_subscriptions,
    plan,
)
from tests.unit.strategies import held_subscriptions, subscription_keys

BASE = "https://api.hubapi.test"
TOKEN = "developer-token-0123456789"
APP = f"{BASE}/webhooks/2026-03/1234"
WANTED = WebhookSettings("https://hub.example/webhooks/hubspot", 10)


def needs_of(rules_yaml: str) -> Needs:
    """The subscriptions a rules file needs."""
    return needed_subscriptions(RuleSet.load(rules_yaml).rules)


def rule(name: str, when: str, source: str = "hubspot") -> str:
    """One rule's YAML with the given when mapping (empty: no when)."""
    when_line = f"\n    when: {when}" if when else ""
    return (
        f"  - name: {name}\n    source: {source}{when_line}\n    associations:\n"
        '      - from: {objectType: deals, id: "objectId"}\n        to: {objectType: contacts, id: "contact"}\n'
    )


class TestNeededSubscriptions:
    """Which subscriptions the rules need, and which rules cannot be mapped."""

    def test_a_subscription_type_becomes_one_subscription(self) -> None:
        """A hubspot rule matching deal.creation needs the deal.creation subscription."""
        needs = needs_of("rules:\n" + rule("deals", "{subscriptionType: deal.creation}"))
        assert dict(needs.wanted) == {SubscriptionKey("deal.creation"): ("deals",)}
        assert needs.skipped == ()

    def test_a_list_of_types_becomes_one_subscription_each(self) -> None:
        """A rule listening to several types needs each of them."""
        needs = needs_of("rules:\n" + rule("both", "{subscriptionType: [deal.creation, contact.creation]}"))
        assert set(needs.wanted) == {SubscriptionKey("deal.creation"), SubscriptionKey("contact.creation")}

    def test_rules_sharing_a_type_share_the_subscription(self) -> None:
        """Two rules on deal.creation need one subscription, and both are named as needing it."""
        text = (
            "rules:\n" + rule("a", "{subscriptionType: deal.creation}") + rule("b", "{subscriptionType: deal.creation}")
        )
        assert dict(needs_of(text).wanted) == {SubscriptionKey("deal.creation"): ("a", "b")}

    def test_other_sources_need_no_subscription(self) -> None:
        """Workflow and form rules are not HubSpot app webhooks: they are neither mapped nor skipped."""
        needs = needs_of("rules:\n" + rule("wf", "{subscriptionType: deal.creation}", source="workflow"))
        assert (dict(needs.wanted), needs.skipped) == ({}, ())

    @pytest.mark.parametrize("when", ["", "{condition: \"subscriptionType == 'deal.creation'\"}", "{portalId: 5}"])
    def test_a_rule_without_a_subscription_type_is_skipped_and_said(self, when: str) -> None:
        """A hubspot rule with no when.subscriptionType (a JMESPath condition is not read) is skipped with why."""
        needs = needs_of("rules:\n" + rule("vague", when))
        assert dict(needs.wanted) == {}
        assert [(s.rule, s.line) for s in needs.skipped] == [("vague", 2)]
        assert "no when.subscriptionType" in needs.skipped[0].reason

    def test_an_unknown_type_is_skipped_and_the_others_kept(self) -> None:
        """A type HubSpot does not offer (a typo) is skipped, naming it; the rule's other types are still needed."""
        needs = needs_of("rules:\n" + rule("typo", "{subscriptionType: [deal.created, deal.creation]}"))
        assert set(needs.wanted) == {SubscriptionKey("deal.creation")}
        assert "'deal.created'" in needs.skipped[0].reason

    def test_a_property_change_needs_its_property(self) -> None:
        """deal.propertyChange with when.propertyName becomes one subscription per property."""
        when = "{subscriptionType: deal.propertyChange, propertyName: [dealstage, amount]}"
        needs = needs_of("rules:\n" + rule("stage", when))
        assert set(needs.wanted) == {
            SubscriptionKey("deal.propertyChange", "dealstage"),
            SubscriptionKey("deal.propertyChange", "amount"),
        }

    def test_a_property_change_without_its_property_is_skipped(self) -> None:
        """HubSpot subscribes to one property at a time: without when.propertyName the rule cannot be mapped."""
        needs = needs_of("rules:\n" + rule("stage", "{subscriptionType: deal.propertyChange}"))
        assert dict(needs.wanted) == {}
        assert "propertyName" in needs.skipped[0].reason

    def test_a_generic_object_type_needs_its_object_type(self) -> None:
        """object.creation with when.objectTypeId becomes a subscription for that object type; without, skipped."""
        needs = needs_of(
            "rules:\n"
            + rule("generic", '{subscriptionType: object.creation, objectTypeId: "0-3"}')
            + rule("vague", "{subscriptionType: object.creation}")
        )
        assert set(needs.wanted) == {SubscriptionKey("object.creation", None, "0-3")}
        assert [s.rule for s in needs.skipped] == ["vague"]


def sub(sub_id: str, event_type: str, *, active: bool = True, prop: str | None = None) -> Subscription:
    """A subscription HubSpot holds."""
    return Subscription(sub_id, SubscriptionKey(event_type, prop), active)


def wants(*event_types: str) -> Needs:
    """Needs for these event types, each wanted by rule 'r'."""
    return Needs({SubscriptionKey(t): ("r",) for t in event_types}, ())


class TestPlan:
    """What HubSpot holds against what the rules need."""

    def test_an_empty_app_gets_everything_created(self) -> None:
        """No settings and no subscriptions: the settings and each wanted subscription are created."""
        todo = plan(None, [], WANTED, wants("deal.creation", "contact.creation"))
        assert todo.settings.action == "create"
        assert [(s.action, s.key.event_type) for s in todo.subscriptions] == [
            ("create", "deal.creation"),
            ("create", "contact.creation"),
        ]
        assert todo.changes == 3

    def test_an_app_that_holds_everything_has_nothing_to_do(self) -> None:
        """The same settings and active subscriptions: every step keeps, and there are no changes."""
        todo = plan(WANTED, [sub("1", "deal.creation")], WANTED, wants("deal.creation"))
        assert (todo.settings.action, [s.action for s in todo.subscriptions], todo.changes) == ("keep", ["keep"], 0)

    @pytest.mark.parametrize(
        "held",
        [WebhookSettings("https://old.example/webhooks/hubspot", 10), WebhookSettings(WANTED.target_url, 6)],
    )
    def test_other_settings_are_changed(self, held: WebhookSettings) -> None:
        """Another target URL or another concurrency is a change, showing what is held."""
        todo = plan(held, [], WANTED, wants())
        assert (todo.settings.action, todo.settings.current, todo.changes) == ("change", held, 1)

    def test_a_paused_subscription_is_activated_not_duplicated(self) -> None:
        """A wanted subscription HubSpot holds paused is activated by its id."""
        todo = plan(WANTED, [sub("7", "deal.creation", active=False)], WANTED, wants("deal.creation"))
        assert [(s.action, s.id) for s in todo.subscriptions] == [("activate", "7")]

    def test_subscriptions_no_rule_needs_are_left_as_they_are(self) -> None:
        """An extra subscription is reported as extra and changes nothing."""
        todo = plan(WANTED, [sub("3", "ticket.creation")], WANTED, wants())
        assert [(s.action, s.id) for s in todo.subscriptions] == [("extra", "3")]
        assert todo.changes == 0

    def test_the_property_is_part_of_what_matches(self) -> None:
        """A propertyChange subscription on another property does not satisfy the wanted one."""
        needs = Needs({SubscriptionKey("deal.propertyChange", "dealstage"): ("r",)}, ())
        todo = plan(WANTED, [sub("4", "deal.propertyChange", prop="amount")], WANTED, needs)
        assert sorted(s.action for s in todo.subscriptions) == ["create", "extra"]

    def test_of_two_copies_the_active_one_matches(self) -> None:
        """HubSpot holding a key twice: the active copy is kept, the paused one is extra."""
        held = [sub("1", "deal.creation", active=False), sub("2", "deal.creation")]
        todo = plan(WANTED, held, WANTED, wants("deal.creation"))
        assert [(s.action, s.id) for s in todo.subscriptions] == [("keep", "2"), ("extra", "1")]


class TestWebhookSettings:
    """The settings HubLink wants and the ones HubSpot answers."""

    def test_the_target_is_the_public_url_and_the_webhook_path(self) -> None:
        """HUBLINK_PUBLIC_URL (with or without a trailing slash) plus /webhooks/hubspot."""
        assert WebhookSettings.for_public_url("https://hub.example/", 10) == WANTED

    @pytest.mark.parametrize(("url", "limit"), [("hub.example", 10), ("https://hub.example", 5)])
    def test_a_target_hubspot_would_refuse_is_refused_first(self, url: str, limit: int) -> None:
        """A URL that is not http(s), or a concurrency below 6, is refused naming the variable."""
        with pytest.raises(ValueError, match=r"^HUBLINK_"):
            WebhookSettings.for_public_url(url, limit)

    def test_an_answer_without_throttling_is_refused_naming_the_field(self) -> None:
        """A SettingsResponse missing maxConcurrentRequests is a ValueError naming it."""
        with pytest.raises(ValueError, match="maxConcurrentRequests"):
            WebhookSettings.parse({"targetUrl": "https://x"})


@pytest.fixture
def client() -> WebhooksClient:
    """A webhooks client for a stubbed HubSpot."""
    return WebhooksClient(BASE, connect_timeout_s=1, read_timeout_s=1)


SETTINGS_BODY = {"targetUrl": WANTED.target_url, "throttling": {"maxConcurrentRequests": 10}, "createdAt": "x"}


class TestWebhooksClient:
    """The calls, their bodies and their Bearer token, on a stubbed transport."""

    @responses.activate
    def test_unset_settings_read_as_none(self, client: WebhooksClient) -> None:
        """A 404 on GET settings means the app has none yet."""
        responses.get(f"{APP}/settings", status=404, json={"category": "OBJECT_NOT_FOUND", "message": "none"})
        assert client.webhook_settings(TOKEN, "1234") is None

    @responses.activate
    def test_settings_are_put_as_the_spec_asks_with_the_developer_token(self, client: WebhooksClient) -> None:
        """PUT settings sends a SettingsChangeRequest with the token as Bearer."""
        responses.put(f"{APP}/settings", json=SETTINGS_BODY)
        assert client.put_webhook_settings(TOKEN, "1234", WANTED) == WANTED
        call = responses.calls[0].request
        assert json.loads(call.body or b"") == {
            "targetUrl": WANTED.target_url,
            "throttling": {"maxConcurrentRequests": 10},
        }
        assert call.headers["Authorization"] == f"Bearer {TOKEN}"

    @responses.activate
    def test_a_subscription_is_created_active_with_its_property(self, client: WebhooksClient) -> None:
        """POST subscriptions sends eventType, propertyName and active: true (HubSpot would start it paused)."""
        responses.post(
            f"{APP}/subscriptions",
            status=201,
            json={"id": "9", "eventType": "deal.propertyChange", "propertyName": "dealstage", "active": True},
        )
        created = client.create_webhook_subscription(TOKEN, "1234", SubscriptionKey("deal.propertyChange", "dealstage"))
        assert created == Subscription("9", SubscriptionKey("deal.propertyChange", "dealstage"), True)
        assert json.loads(responses.calls[0].request.body or b"") == {
            "eventType": "deal.propertyChange",
            "propertyName": "dealstage",
            "active": True,
        }

    @responses.activate
    def test_a_list_that_is_not_the_spec_shape_is_a_server_error(self, client: WebhooksClient) -> None:
        """A subscriptions answer without a results list, or with a malformed entry, raises ServerError."""
        responses.get(f"{APP}/subscriptions", json={"results": [{"id": "1", "eventType": "deal.creation"}]})
        with pytest.raises(ServerError, match="active"):
            client.webhook_subscriptions(TOKEN, "1234")

    @responses.activate
    def test_a_refused_token_raises_the_auth_error(self, client: WebhooksClient) -> None:
        """401 is an AuthError, as for every HubSpot call."""
        responses.get(f"{APP}/settings", status=401, json={"category": "INVALID_AUTHENTICATION", "message": "no"})
        with pytest.raises(AuthError):
            client.webhook_settings(TOKEN, "1234")

    @responses.activate
    def test_applying_makes_one_call_per_change_in_order(self, client: WebhooksClient) -> None:
        """Settings first, then creations and activations; kept and extra subscriptions cost no call."""
        responses.put(f"{APP}/settings", json=SETTINGS_BODY)
        responses.post(
            f"{APP}/subscriptions", status=201, json={"id": "5", "eventType": "deal.creation", "active": True}
        )
        responses.patch(f"{APP}/subscriptions/7", json={"id": "7", "eventType": "contact.creation", "active": True})
        held = [sub("7", "contact.creation", active=False), sub("8", "ticket.creation"), sub("9", "company.creation")]
        todo = plan(None, held, WANTED, wants("deal.creation", "contact.creation", "company.creation"))
        told: list[str] = []
        made = WebhookApp(client, TOKEN, "1234").apply(todo, on_step=told.append)
        assert made == 3
        assert [(c.request.method, c.request.url) for c in responses.calls] == [
            ("PUT", f"{APP}/settings"),
            ("POST", f"{APP}/subscriptions"),
            ("PATCH", f"{APP}/subscriptions/7"),
        ]
        assert told == ["settings created", "created deal.creation (id 5)", "activated contact.creation (id 7)"]


class TestPlanProperties:
    """Whatever HubSpot holds, applying the plan once leaves nothing to do."""

    @given(held=held_subscriptions, wanted=st.sets(subscription_keys, max_size=5), same_settings=st.booleans())
    def test_applying_a_plan_then_planning_again_has_no_changes(
        self, held: list[tuple[str, tuple[str, str | None, str | None], bool]], wanted: set[Any], same_settings: bool
    ) -> None:
        """Apply (in memory) what the plan says, plan again: zero changes, and no extra subscription was touched."""
        current = {i: Subscription(i, SubscriptionKey(*key), active) for i, key, active in held}
        needs = Needs({SubscriptionKey(*key): ("r",) for key in wanted}, ())
        first = plan(WANTED if same_settings else None, list(current.values()), WANTED, needs)
        for step in first.subscriptions:
            if step.action == "create":
                new_id = str(len(current) + 100)
                current[new_id] = Subscription(new_id, step.key, True)
            elif step.action == "activate" and step.id is not None:
                current[step.id] = Subscription(step.id, step.key, True)
        again = plan(WANTED, list(current.values()), WANTED, needs)
        assert again.changes == 0
        assert {s.key for s in current.values() if s.active} >= set(needs.wanted)
        extras = {s.id for s in first.subscriptions if s.action == "extra"}
        assert all(current[i] == Subscription(i, SubscriptionKey(*k), a) for i, k, a in held if i in extras)
