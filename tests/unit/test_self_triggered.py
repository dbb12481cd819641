"""Association changes HubLink's own writes cause: dropped by default, seen by rules that name changeSource."""

from __future__ import annotations

from typing import Any

import pytest

from hublink.domain.events import CrmEvent, parse_hubspot_batch
from hublink.domain.rules import Fixed, RuleSet, is_self_triggered

APP = "4242"

RULES = """\
rules:
  - name: on-association-change
    source: hubspot
    when: {subscriptionType: deal.associationChange}
    associations:
      - from: {objectType: deals, id: fromObjectId}
        to: {objectType: contacts, id: "`7`"}
"""

OPT_IN = """\
  - name: own-changes-too
    source: hubspot
    when: {subscriptionType: deal.associationChange, changeSource: API}
    associations:
      - from: {objectType: deals, id: fromObjectId}
        to: {objectType: tickets, id: "`8`"}
"""


def change(**fields: Any) -> CrmEvent:
    """A deal.associationChange HubSpot pushed, HubLink's own by default."""
    raw = {
        "eventId": 1,
        "portalId": 62515,
        "occurredAt": 1_700_000_000_000,
        "subscriptionType": "deal.associationChange",
        "fromObjectId": 11,
        "toObjectId": 21,
        "associationType": "DEAL_TO_COMPANY",
        "associationRemoved": False,
        "changeSource": "API",
        "sourceId": APP,
    } | fields
    return parse_hubspot_batch([{k: v for k, v in raw.items() if v is not None}])[0]


class TestIsSelfTriggered:
    """Which events are HubLink's own."""

    @pytest.mark.parametrize("source_id", [APP, int(APP), f"app:{APP}", f"appId:{APP}", f" {APP} "])
    def test_an_api_change_naming_the_app_is_its_own(self, source_id: object) -> None:
        """changeSource API and the app's id as sourceId, in any of the forms seen, is HubLink's own change."""
        assert is_self_triggered(change(sourceId=source_id), APP)

    @pytest.mark.parametrize(
        "fields",
        [
            {"sourceId": "4243"},
            {"sourceId": f"userId:{APP}"},
            {"sourceId": None},
            {"sourceId": True},
            {"changeSource": "CRM_UI"},
            {"changeSource": None},
        ],
    )
    def test_another_writer_or_source_is_not(self, fields: dict[str, Any]) -> None:
        """Another app, a user, no sourceId or another changeSource: not HubLink's own."""
        assert not is_self_triggered(change(**fields), APP)

    def test_without_an_app_id_nothing_is_its_own(self) -> None:
        """HUBSPOT_APP_ID unset: every event goes to the rules."""
        assert not is_self_triggered(change(), None)
        assert not is_self_triggered(change(), "")

    def test_only_association_changes_count(self) -> None:
        """A creation with changeSource API and the app's id is not dropped: only association changes loop."""
        creation = parse_hubspot_batch(
            [
                {
                    "eventId": 2,
                    "portalId": 62515,
                    "occurredAt": 1,
                    "subscriptionType": "deal.creation",
                    "objectId": 5,
                    "changeSource": "API",
                    "sourceId": APP,
                }
            ]
        )[0]
        assert not is_self_triggered(creation, APP)
        assert not is_self_triggered(CrmEvent(source="workflow", payload={"changeSource": "API", "sourceId": APP}), APP)


class TestEvaluation:
    """What the rules see of HubLink's own changes."""

    def test_own_changes_reach_no_rule_by_default(self) -> None:
        """A rule on association changes does not run on the change its own write caused."""
        evaluation = RuleSet.load(RULES).evaluate(change(), own_app_id=APP)
        assert evaluation.self_triggered and not evaluation.matched_rules and not evaluation.planned

    def test_other_writers_changes_reach_the_rule(self) -> None:
        """The same change made by a user in HubSpot's UI runs the rule."""
        evaluation = RuleSet.load(RULES).evaluate(change(changeSource="CRM_UI"), own_app_id=APP)
        assert not evaluation.self_triggered and evaluation.matched_rules == ("on-association-change",)

    def test_a_rule_naming_change_source_opts_in(self) -> None:
        """``when: {changeSource: API}`` sees HubLink's own changes; the rule without it still does not."""
        evaluation = RuleSet.load(RULES + OPT_IN).evaluate(change(), own_app_id=APP)
        assert evaluation.self_triggered and evaluation.matched_rules == ("own-changes-too",)
        [planned] = evaluation.planned
        assert isinstance(planned.to_side, Fixed) and planned.to_side.object_type == "tickets"

    def test_without_an_app_id_every_rule_runs(self) -> None:
        """Evaluating without own_app_id (replays, rules try) keeps every rule."""
        evaluation = RuleSet.load(RULES + OPT_IN).evaluate(change())
        assert not evaluation.self_triggered and len(evaluation.matched_rules) == 2
