"""Rules: loading refuses bad files naming file, line and rule; evaluation plans work and never raises."""

from __future__ import annotations

import pytest
from hypothesis import given

from hublink.domain.events import CrmEvent
from hublink.domain.rules import Fixed, PropertyLookup, RulesError, RuleSet, SearchLookup
from tests.unit.strategies import json_values

WORKFLOW_RULES = """\
rules:
  - name: deal-links
    source: workflow
    associations:
      - from: {objectType: deals, id: "objectId"}
        to: {objectType: contacts, id: "contact_id"}
      - from: {objectType: deal, id: "objectId"}
        to: {objectType: "0-2", id: "company_id"}
"""

LOOKUP_RULES = """\
rules:
  - name: new-deal
    source: hubspot
    when:
      subscriptionType: [deal.creation, deal.restore]
      condition: "changeSource != 'IMPORT'"
    associations:
      - from: {objectType: deals, id: "objectId"}
        to:
          objectType: companies
          lookup:
            property: {objectType: deals, id: "objectId", name: associated_company_id}
  - name: demo
    source: "forms:*"
    associations:
      - from:
          objectType: contacts
          lookup: {search: {property: email, value: "email", onMultiple: dead-letter}}
        to:
          objectType: companies
          lookup: {search: {property: domain, value: "company_domain"}}
"""


def event(source: str, payload: dict[str, object]) -> CrmEvent:
    """An event as the parsers would build it."""
    return CrmEvent(source=source, payload=payload, subscription_type=str(payload.get("subscriptionType")))


def problems_of(text: str) -> list[str]:
    """The problems a rules text is refused with."""
    with pytest.raises(RulesError) as info:
        RuleSet.load(text, "rules.yaml")
    return list(info.value.problems)


class TestLoading:
    """Every problem of a file is reported with its line."""

    def test_a_good_file_loads(self) -> None:
        """The example rules load with their names and sources."""
        rules = RuleSet.load(LOOKUP_RULES, "rules.yaml")
        assert [(r.name, r.source) for r in rules.rules] == [("new-deal", "hubspot"), ("demo", "forms:*")]

    def test_bad_object_type_names_file_line_and_rule(self) -> None:
        """An unknown object type is reported as FILE:LINE: rule 'NAME': field: ..."""
        text = WORKFLOW_RULES.replace("objectType: contacts", "objectType: contactz")
        [problem] = problems_of(text)
        assert problem.startswith("rules.yaml:6: rule 'deal-links': associations[0].to.objectType:")

    def test_invalid_jmespath_is_reported(self) -> None:
        """A JMESPath syntax error is reported on its line."""
        text = WORKFLOW_RULES.replace('id: "contact_id"', 'id: "contact_id[["')
        [problem] = problems_of(text)
        assert problem.startswith("rules.yaml:6: rule 'deal-links': associations[0].to.id: invalid JMESPath")

    def test_all_problems_are_reported_at_once(self) -> None:
        """Duplicate names, unknown keys, bad sources and onMultiple values are all listed together."""
        text = LOOKUP_RULES.replace("source: hubspot", "source: email").replace("dead-letter", "maybe")
        text += "    extra: 1\n  - name: demo\n    source: workflow\n    associations: []\n"
        found = problems_of(text)
        joined = "\n".join(found)
        assert "rule 'new-deal': source: expected" in joined
        assert "onMultiple: expected first, skip or dead-letter" in joined
        assert "unknown key 'extra'" in joined
        assert "name: duplicate rule name" in joined
        assert "associations: expected a list of 1 to 20" in joined

    def test_id_and_lookup_together_are_refused(self) -> None:
        """A side with both id and lookup is refused."""
        text = WORKFLOW_RULES.replace(
            'id: "contact_id"}', 'id: "contact_id", lookup: {search: {property: a, value: b}}}'
        )
        assert any("give exactly one of id or lookup" in p for p in problems_of(text))

    def test_not_yaml(self) -> None:
        """Broken YAML is reported with its line."""
        assert problems_of("rules:\n  - name: [x\n")[0].startswith("rules.yaml:")

    def test_sources_section_is_allowed(self) -> None:
        """A top-level sources section does not trouble the rules loader."""
        RuleSet.load("sources: {workflow: {auth: {type: signature}}}\n" + WORKFLOW_RULES)


class TestEvaluation:
    """Events become planned associations."""

    def test_workflow_ids_become_fixed_sides(self) -> None:
        """A workflow body's ids give two fixed associations, with canonical types."""
        rules = RuleSet.load(WORKFLOW_RULES)
        result = rules.evaluate(event("workflow", {"objectId": 5001, "contact_id": "7001", "company_id": 9001}))
        assert [(p.from_side, p.to_side) for p in result.planned] == [
            (Fixed("deals", "5001"), Fixed("contacts", "7001")),
            (Fixed("deals", "5001"), Fixed("companies", "9001")),
        ]
        assert result.matched_rules == ("deal-links",)

    def test_property_lookup_is_planned(self) -> None:
        """A deal.creation event plans a property lookup of its company."""
        rules = RuleSet.load(LOOKUP_RULES)
        result = rules.evaluate(
            event("hubspot", {"subscriptionType": "deal.creation", "objectId": 51, "changeSource": "CRM"})
        )
        assert result.planned[0].to_side == PropertyLookup("companies", "deals", "51", "associated_company_id")

    def test_when_and_condition_filter(self) -> None:
        """Another subscription type, or a condition that is false, matches nothing."""
        rules = RuleSet.load(LOOKUP_RULES)
        assert not rules.evaluate(event("hubspot", {"subscriptionType": "contact.creation", "objectId": 1})).planned
        imported = event("hubspot", {"subscriptionType": "deal.creation", "objectId": 1, "changeSource": "IMPORT"})
        assert rules.evaluate(imported).matched_rules == ()

    def test_forms_wildcard_and_searches(self) -> None:
        """forms:* matches any form; searches carry their value and onMultiple."""
        rules = RuleSet.load(LOOKUP_RULES)
        result = rules.evaluate(event("forms:demo", {"email": " ada@acme.example ", "company_domain": "acme.example"}))
        assert result.planned[0].from_side == SearchLookup("contacts", "email", "ada@acme.example", "dead-letter")
        assert result.planned[0].to_side == SearchLookup("companies", "domain", "acme.example", "first")

    def test_odd_payloads_give_problems_not_exceptions(self) -> None:
        """A missing or non-id value is a problem naming rule and field; nothing is planned for it."""
        rules = RuleSet.load(WORKFLOW_RULES)
        result = rules.evaluate(event("workflow", {"objectId": "abc"}))
        assert not result.planned
        assert "rule 'deal-links': associations[0].from.id: expected a record id, got 'abc'" in result.problems

    @given(json_values)
    def test_evaluate_never_raises(self, payload: object) -> None:
        """Whatever JSON arrives, evaluation returns."""
        data = payload if isinstance(payload, dict) else {"value": payload}
        for text, source in ((WORKFLOW_RULES, "workflow"), (LOOKUP_RULES, "hubspot"), (LOOKUP_RULES, "forms:x")):
            RuleSet.load(text).evaluate(CrmEvent(source=source, payload=data))
