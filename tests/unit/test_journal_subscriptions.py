"""Journal subscriptions from the rules: what journal portals need, and the plan that brings HubSpot there."""

from __future__ import annotations

from typing import Any

import pytest

from hublink.domain.rules import RuleSet
from hublink.domain.subscriptions import (
    JournalKey,
    SubscriptionKey,
    WebhookSettings,
    journal_keys,
    journal_plan,
    lifecycle_journal_keys,
    lifecycle_keys,
    needed_subscriptions,
    plan,
    with_journal,
    with_lifecycle,
)

RULES = """\
rules:
  - name: deals
    source: hubspot
    when: {subscriptionType: [deal.creation, deal.merge, deal.associationChange]}
    associations: [{from: {objectType: deals, id: objectId}, to: {objectType: contacts, id: "`1`"}}]
  - name: deal-deleted
    source: hubspot
    when: {subscriptionType: [deal.deletion, contact.privacyDeletion, conversation.creation]}
    associations: [{from: {objectType: deals, id: objectId}, to: {objectType: contacts, id: "`1`"}}]
  - name: custom
    source: hubspot
    when: {subscriptionType: object.creation, objectTypeId: "2-77"}
    associations: [{from: {objectType: deals, id: objectId}, to: {objectType: contacts, id: "`1`"}}]
"""


def wanted() -> dict[SubscriptionKey, tuple[str, ...]]:
    """The push subscriptions the rules need."""
    return dict(needed_subscriptions(RuleSet.load(RULES).rules).wanted)


class TestJournalKeys:
    """Push event types → journal subscriptions, per journal portal."""

    def test_one_subscription_per_portal_kind_and_type_with_every_action(self) -> None:
        """Creation, merge and deletion of deals share one OBJECT subscription; each kind and type its own."""
        found = journal_keys(wanted(), ["1"])
        by_same = {k.same: (k.actions, rules) for k, rules in found.items()}
        assert by_same[("1", "OBJECT", "0-3")] == (frozenset({"CREATE", "MERGE", "DELETE"}), ("deals", "deal-deleted"))
        assert by_same[("1", "ASSOCIATION", "0-3")][0] == frozenset({"ASSOCIATION_ADDED", "ASSOCIATION_REMOVED"})
        assert by_same[("1", "GDPR_PRIVACY_DELETION", "0-1")][0] == frozenset({"GDPR_DELETE"})
        assert by_same[("1", "OBJECT", "2-77")] == (frozenset({"CREATE"}), ("custom",))
        assert len(found) == 4  # conversation.creation has no journal subscription

    def test_every_journal_portal_gets_its_own(self) -> None:
        """Two journal portals: each kind and type twice; no portal, none."""
        assert len(journal_keys(wanted(), ["1", "2"])) == 8
        assert journal_keys(wanted(), []) == {}

    def test_the_upsert_request_is_the_specs(self) -> None:
        """OBJECT and ASSOCIATION requests carry the spec's required lists, empty: every object, every property."""
        obj = JournalKey("62515", "OBJECT", "0-3", frozenset({"MERGE", "CREATE"}))
        assert obj.upsert_request() == {
            "subscriptionType": "OBJECT",
            "portalId": 62515,
            "objectTypeId": "0-3",
            "actions": ["CREATE", "MERGE"],
            "objectIds": [],
            "properties": [],
        }
        assoc = JournalKey("1", "ASSOCIATION", "0-3", frozenset({"ASSOCIATION_ADDED"})).upsert_request()
        assert assoc["associatedObjectTypeIds"] == [] and "properties" not in assoc
        assert str(obj) == "journal OBJECT 0-3 CREATE+MERGE (portal 62515)"


class TestParse:
    """HubSpot's SubscriptionResponse_1."""

    def test_a_subscription_is_read(self) -> None:
        """portalId, objectTypeId and actions make the key."""
        raw = {"id": 3, "subscriptionType": "OBJECT", "portalId": 1, "objectTypeId": "0-3", "actions": ["CREATE"]}
        assert JournalKey.parse(raw) == JournalKey("1", "OBJECT", "0-3", frozenset({"CREATE"}))

    def test_kinds_hublink_does_not_ask_for_are_none(self) -> None:
        """List subscriptions, and app-lifecycle events other than install and uninstall, are not HubLink's."""
        assert JournalKey.parse({"subscriptionType": "LIST_MEMBERSHIP", "objectTypeId": "0-1"}) is None
        assert JournalKey.parse({"subscriptionType": "APP_LIFECYCLE_EVENT", "objectTypeId": "4-1"}) is None

    def test_an_app_lifecycle_subscription_is_app_wide(self) -> None:
        """The uninstall event's subscription (the simulator names the event type ``objectTypeId``, the spec's
        request ``eventTypeId``): no portal, its one action."""
        raw = {"id": 9, "subscriptionType": "APP_LIFECYCLE_EVENT", "objectTypeId": "4-1916193", "actions": []}
        key = JournalKey.parse(raw)
        assert key == JournalKey("", "APP_LIFECYCLE_EVENT", "4-1916193", frozenset({"APP_UNINSTALL"}))
        assert str(key) == "journal APP_LIFECYCLE_EVENT 4-1916193 APP_UNINSTALL (app-wide)"
        assert key.upsert_request() == {"subscriptionType": "APP_LIFECYCLE_EVENT", "eventTypeId": "4-1916193"}

    @pytest.mark.parametrize(
        ("raw", "field"),
        [
            ({"subscriptionType": "OBJECT", "portalId": "x", "objectTypeId": "0-3", "actions": []}, "portalId"),
            ({"subscriptionType": "OBJECT", "portalId": 1, "objectTypeId": "", "actions": []}, "objectTypeId"),
            ({"subscriptionType": "OBJECT", "portalId": 1, "objectTypeId": "0-3", "actions": "CREATE"}, "actions"),
            ([], "expected an object"),
        ],
    )
    def test_a_malformed_answer_names_the_field(self, raw: Any, field: str) -> None:
        """A field of the wrong type raises ValueError naming it."""
        with pytest.raises(ValueError, match=field):
            JournalKey.parse(raw)


class TestJournalPlan:
    """What apply does with journal subscriptions."""

    def test_missing_ones_are_created_held_ones_kept_and_short_ones_widened(self) -> None:
        """Not held: create; held with every action: keep; held with fewer: change, never dropping any held."""
        need = journal_keys(wanted(), ["1"])
        held = [
            ("10", JournalKey("1", "OBJECT", "0-3", frozenset({"CREATE", "UPDATE"}))),
            ("11", JournalKey("1", "ASSOCIATION", "0-3", frozenset({"ASSOCIATION_ADDED", "ASSOCIATION_REMOVED"}))),
        ]
        steps = {(s.key.same if isinstance(s.key, JournalKey) else None): s for s in journal_plan(held, need)}
        changed = steps[("1", "OBJECT", "0-3")]
        assert changed.action == "change" and changed.id == "10"
        assert isinstance(changed.key, JournalKey)
        assert changed.key.actions == frozenset({"CREATE", "UPDATE", "MERGE", "DELETE"})
        assert steps[("1", "ASSOCIATION", "0-3")].action == "keep"
        assert steps[("1", "OBJECT", "2-77")].action == "create"
        assert steps[("1", "GDPR_PRIVACY_DELETION", "0-1")].action == "create"

    def test_journal_steps_count_as_changes_after_the_push_ones(self) -> None:
        """Creating and widening journal subscriptions are changes of the plan; keeping is not."""
        needs = needed_subscriptions(RuleSet.load(RULES).rules)
        settings = WebhookSettings("https://hub.example/webhooks/hubspot", 10)
        push = plan(settings, [], settings, needs)
        steps = journal_plan([], journal_keys(needs.wanted, ["1"]))
        full = with_journal(push, steps)
        assert full.changes == push.changes + 4
        assert full.subscriptions[-4:] == tuple(steps)


class TestLifecycle:
    """What HubLink needs besides the rules: deletions, merges, privacy deletions, installs and uninstalls."""

    def test_the_object_types_rules_name_get_deletion_and_merge(self) -> None:
        """Deals and contacts named by the rules: their deletions and merges, contacts' privacy deletions, each
        needed by every rule naming the type; the rules' own subscriptions stay as they were."""
        rules = RuleSet.load(RULES).rules
        needs = with_lifecycle(needed_subscriptions(rules), rules)
        added = set(needs.wanted) - set(wanted())
        assert added == {
            SubscriptionKey("contact.deletion"),
            SubscriptionKey("contact.merge"),
        }
        for key in ("deal.deletion", "deal.merge", "contact.privacyDeletion", "contact.deletion", "contact.merge"):
            assert set(needs.wanted[SubscriptionKey(key)]) == {"deals", "deal-deleted", "custom"}, key
        assert needs.wanted[SubscriptionKey("deal.creation")] == ("deals",)

    def test_custom_types_are_object_events_and_engagements_none(self) -> None:
        """A custom type: ``object.deletion``/``object.merge`` with its type id; notes: none (HubSpot sends none)."""
        assert lifecycle_keys("2-77") == [
            SubscriptionKey("object.deletion", None, "2-77"),
            SubscriptionKey("object.merge", None, "2-77"),
        ]
        assert lifecycle_keys("notes") == []
        assert lifecycle_keys("companies") == [SubscriptionKey("company.deletion"), SubscriptionKey("company.merge")]

    def test_journal_portals_get_the_install_and_uninstall_events_once(self) -> None:
        """App-wide, so one of each whatever the number of journal portals; none without journal portals."""
        keys = lifecycle_journal_keys(["1", "2"])
        assert [str(k) for k in keys] == [
            "journal APP_LIFECYCLE_EVENT 4-1909196 APP_INSTALL (app-wide)",
            "journal APP_LIFECYCLE_EVENT 4-1916193 APP_UNINSTALL (app-wide)",
        ]
        assert lifecycle_journal_keys([]) == {}
        held = [("9", JournalKey("", "APP_LIFECYCLE_EVENT", "4-1916193", frozenset({"APP_UNINSTALL"})))]
        assert [s.action for s in journal_plan(held, keys)] == ["create", "keep"]

    def test_journal_portals_get_deletions_and_merges_in_their_journal(self) -> None:
        """The lifecycle push subscriptions become journal OBJECT subscriptions with DELETE and MERGE."""
        rules = RuleSet.load(RULES).rules
        keys = journal_keys(with_lifecycle(needed_subscriptions(rules), rules).wanted, ["5"])
        contacts = [k for k in keys if k.object_type_id == "0-1" and k.kind == "OBJECT"]
        assert [k.actions for k in contacts] == [frozenset({"DELETE", "MERGE"})]
        assert any(k.kind == "GDPR_PRIVACY_DELETION" and k.object_type_id == "0-1" for k in keys)
