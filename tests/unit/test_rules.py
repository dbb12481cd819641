"""Rules: loading refuses bad files naming file, line and rule; evaluation plans work and never raises."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hublink.domain.errors import ConfigError
from hublink.domain.events import CrmEvent, parse_form, parse_hubspot_batch, parse_workflow
from hublink.domain.rules import (
    Evaluation,
    Fixed,
    PlannedAssociation,
    PropertyLookup,
    RulesError,
    RuleSet,
    SearchLookup,
)
from tests.unit.strategies import json_objects, json_values, object_ids

# (1) A deal workflow's "Send a webhook" action sends the deal with its contact's and company's ids.
DEAL_WORKFLOW = """\
rules:
  - name: deal-to-contact-and-company
    source: workflow
    associations:
      - from: {objectType: deals, id: "objectId"}
        to: {objectType: contacts, id: "contact_id"}
      - from: {objectType: deal, id: "objectId"}
        to: {objectType: "0-2", id: "company_id"}
"""

# (2) A website's demo-request form sends an email and a company domain: both records are found by search.
DEMO_FORM = """\
rules:
  - name: demo-request-contact-to-company
    source: forms:demo-request
    associations:
      - from:
          objectType: contacts
          lookup:
            search: {property: email, value: "email", onMultiple: first}
        to:
          objectType: companies
          lookup:
            search: {property: domain, value: "company_domain", onMultiple: skip}
"""

# (3) New deals and tickets name a related record in one of their properties: read it, then link.
RECORD_CREATION = """\
rules:
  - name: new-deal-to-its-company
    source: hubspot
    when:
      subscriptionType: deal.creation
    associations:
      - from: {objectType: deals, id: "objectId"}
        to:
          objectType: companies
          lookup:
            property: {objectType: deals, id: "objectId", name: associated_company_id}
  - name: new-ticket-to-its-contact
    source: hubspot
    when:
      subscriptionType: ticket.creation
    associations:
      - from: {objectType: tickets, id: "objectId"}
        to:
          objectType: contacts
          lookup:
            property: {objectType: tickets, id: "objectId", name: reporter_contact_id}
"""

# The base for one-change-at-a-time loading tests; the line numbers below refer to this text.
GOOD = """\
rules:
  - name: deal-links
    source: workflow
    when:
      subscriptionType: deal.creation
    associations:
      - from: {objectType: deals, id: "objectId"}
        to: {objectType: contacts, id: "contact_id"}
      - from: {objectType: deals, id: "objectId"}
        to:
          objectType: companies
          lookup:
            search: {property: domain, value: "company_domain", onMultiple: first}
"""

SEARCH_LINE = '            search: {property: domain, value: "company_domain", onMultiple: first}'


def problems_of(text: str) -> list[str]:
    """The problems a rules text is refused with."""
    with pytest.raises(RulesError) as info:
        RuleSet.load(text, "rules.yaml")
    return list(info.value.problems)


def one_rule(associations: str, *, source: str = "workflow", when: str = "") -> RuleSet:
    """A rule set of one rule named r with the given associations (YAML flow list) and when (flow mapping)."""
    text = f"rules:\n  - name: r\n    source: {source}\n    associations: {associations}\n"
    return RuleSet.load(text + (f"    when: {when}\n" if when else ""))


def evaluate(rules: RuleSet, payload: Any, source: str = "workflow") -> Evaluation:
    """Evaluate the rules on a payload from ``source``."""
    return rules.evaluate(CrmEvent(source=source, payload=payload))


class TestLoading:
    """A valid file loads; an invalid one is refused listing every problem with file, line and rule."""

    def test_the_three_examples_load(self) -> None:
        """The workflow, form and record-creation examples load with their names, sources and lines."""
        loaded = [RuleSet.load(text, "rules.yaml").rules for text in (DEAL_WORKFLOW, DEMO_FORM, RECORD_CREATION)]
        assert [(r.name, r.source, r.line) for rules in loaded for r in rules] == [
            ("deal-to-contact-and-company", "workflow", 2),
            ("demo-request-contact-to-company", "forms:demo-request", 2),
            ("new-deal-to-its-company", "hubspot", 2),
            ("new-ticket-to-its-contact", "hubspot", 12),
        ]

    def test_every_problem_is_reported_with_its_exact_line(self) -> None:
        """Unknown keys, bad JMESPath, bad types, id with lookup, duplicate names, bad sources and empty lists."""
        text = """\
rules:
  - name: broken
    source: workflow
    colour: blue
    when:
      condition: "a[["
    associations:
      - from: {objectType: dealz, id: "objectId"}
        to:
          objectType: contacts
          id: "contact_id"
          lookup:
            search: {property: email, value: "email"}
  - name: broken
    source: email
    associations: []
"""
        found = problems_of(text)
        assert (
            found[0] == "rules.yaml:4: rule 'broken': unknown key 'colour' (expected name, source, when, associations)"
        )
        assert found[1].startswith("rules.yaml:6: rule 'broken': when.condition: invalid JMESPath 'a[[': ")
        assert found[2].startswith("rules.yaml:8: rule 'broken': associations[0].from.objectType: expected a HubSpot")
        assert found[3:] == [
            "rules.yaml:9: rule 'broken': associations[0].to: give exactly one of id or lookup",
            "rules.yaml:14: rule 'broken': name: duplicate rule name",
            "rules.yaml:15: rule 'broken': source: expected hubspot, workflow, forms:<name> or forms:*, got 'email'",
            "rules.yaml:16: rule 'broken': associations: expected 1 to 20, got 0",
        ]

    @pytest.mark.parametrize(
        ("old", "new", "expected"),
        [
            (
                "objectType: contacts",
                "objectType: contactz",
                "rules.yaml:8: rule 'deal-links': associations[0].to.objectType: expected a HubSpot object name",
            ),
            (
                '"contact_id"',
                '"contact_id[["',
                "rules.yaml:8: rule 'deal-links': associations[0].to.id: invalid JMESPath 'contact_id[[': ",
            ),
            (
                '"contact_id"',
                '"lenght(contact_id)"',
                "rules.yaml:8: rule 'deal-links': associations[0].to.id: invalid JMESPath 'lenght(contact_id)': "
                "unknown function lenght()",
            ),
            (
                '"contact_id"',
                '"length(a, b)"',
                "rules.yaml:8: rule 'deal-links': associations[0].to.id: invalid JMESPath 'length(a, b)': "
                "length() takes 1 argument(s), got 2",
            ),
            (
                '"contact_id"',
                "5",
                "rules.yaml:8: rule 'deal-links': associations[0].to.id: expected a JMESPath expression string, got 5",
            ),
            (
                "onMultiple: first",
                "onMultiple: maybe",
                "rules.yaml:13: rule 'deal-links': associations[1].to.lookup.search.onMultiple: "
                "expected first, skip or dead-letter, got 'maybe'",
            ),
            (
                "property: domain, ",
                "",
                "rules.yaml:13: rule 'deal-links': associations[1].to.lookup.search: missing required key 'property'",
            ),
            (
                "property: domain,",
                "property: [domain],",
                "rules.yaml:13: rule 'deal-links': associations[1].to.lookup.search.property: "
                "expected a HubSpot property name, got an array",
            ),
            (
                SEARCH_LINE,
                "            property: {objectType: deals, id: objectId}",
                "rules.yaml:13: rule 'deal-links': associations[1].to.lookup.property: missing required key 'name'",
            ),
            (
                "search:",
                "serch:",
                "rules.yaml:12: rule 'deal-links': associations[1].to.lookup: expected exactly one of property or "
                "search",
            ),
            (
                SEARCH_LINE,
                "            property: {objectType: deals, id: objectId, name: x}\n" + SEARCH_LINE,
                "rules.yaml:12: rule 'deal-links': associations[1].to.lookup: expected exactly one of property or "
                "search",
            ),
            (
                'to: {objectType: contacts, id: "contact_id"}',
                'to: {objectType: contacts, id: "contact_id", lookup: {search: {property: email, value: email}}}',
                "rules.yaml:8: rule 'deal-links': associations[0].to: give exactly one of id or lookup",
            ),
            (
                'to: {objectType: contacts, id: "contact_id"}',
                "to: {objectType: contacts}",
                "rules.yaml:8: rule 'deal-links': associations[0].to: give exactly one of id or lookup",
            ),
            (
                'from: {objectType: deals, id: "objectId"}\n        to: {objectType: contacts',
                "from: 7\n        to: {objectType: contacts",
                "rules.yaml:7: rule 'deal-links': associations[0].from: expected a mapping with objectType and id "
                "or lookup",
            ),
            (
                'from: {objectType: deals, id: "objectId"}\n        to: {objectType: contacts',
                'from: {id: "objectId"}\n        to: {objectType: contacts',
                "rules.yaml:7: rule 'deal-links': associations[0].from: missing required key 'objectType'",
            ),
            (
                "source: workflow",
                "source: email",
                "rules.yaml:3: rule 'deal-links': source: expected hubspot, workflow, forms:<name> or forms:*, "
                "got 'email'",
            ),
            ("    source: workflow\n", "", "rules.yaml:2: rule 'deal-links': missing required key 'source'"),
            (
                "name: deal-links",
                "name: Deal Links",
                "rules.yaml:2: rule '#1': name: expected [a-z0-9_-], 1 to 64 characters, got 'Deal Links'",
            ),
            (
                "  - name: deal-links\n    source: workflow\n",
                "  - source: workflow\n",
                "rules.yaml:2: rule '#1': missing required key 'name'",
            ),
            (
                "subscriptionType: deal.creation",
                "subscriptionType: null",
                "rules.yaml:5: rule 'deal-links': when.subscriptionType: expected a string, number or boolean, "
                "or a non-empty list of them, got None",
            ),
            (
                "subscriptionType: deal.creation",
                "subscriptionType: 2024-01-01",
                "rules.yaml:5: rule 'deal-links': when.subscriptionType: expected a string, number or boolean, "
                "or a non-empty list of them, got datetime.date(2024, 1, 1)",
            ),
            (
                "subscriptionType: deal.creation",
                "subscriptionType: []",
                "rules.yaml:5: rule 'deal-links': when.subscriptionType: expected a string, number or boolean, "
                "or a non-empty list of them, got an array",
            ),
            (
                "subscriptionType: deal.creation\n",
                "subscriptionType: deal.creation\n      subscriptionType: deal.restore\n",
                "rules.yaml:6: rule 'deal-links': when: key 'subscriptionType' given twice",
            ),
            (
                "    when:\n      subscriptionType: deal.creation\n",
                "    when: yes\n",
                "rules.yaml:4: rule 'deal-links': when: expected a mapping of conditions, got True",
            ),
            (
                "    when:\n      subscriptionType: deal.creation\n",
                "    when:\n      condition: 7\n",
                "rules.yaml:5: rule 'deal-links': when.condition: expected a JMESPath expression string, got 7",
            ),
        ],
    )
    def test_each_problem_names_file_line_rule_and_field(self, old: str, new: str, expected: str) -> None:
        """One mistake in a good file gives one problem, naming its file, line, rule and field."""
        assert old in GOOD
        [problem] = problems_of(GOOD.replace(old, new, 1))
        assert problem.startswith(expected)

    def test_associations_must_be_a_list_of_1_to_20(self) -> None:
        """Twenty associations load; twenty-one, or a mapping, are refused at the associations key."""
        item = '\n      - {from: {objectType: deals, id: "a"}, to: {objectType: contacts, id: "b"}}'
        head = "rules:\n  - name: r\n    source: workflow\n    associations:"
        assert len(RuleSet.load(head + item * 20).rules[0].associations) == 20
        assert problems_of(head + item * 21) == ["rules.yaml:4: rule 'r': associations: expected 1 to 20, got 21"]
        assert problems_of(head + " {a: 1}") == [
            "rules.yaml:4: rule 'r': associations: expected 1 to 20, got an object"
        ]

    def test_an_association_item_must_be_a_mapping(self) -> None:
        """A list item that is not a mapping is refused at its own line."""
        text = GOOD.replace(
            '      - from: {objectType: deals, id: "objectId"}\n        to:\n', "      - 7\n      - to:\n"
        )
        assert problems_of(text) == [
            "rules.yaml:9: rule 'deal-links': associations[1]: expected a mapping with from and to, got 7",
            "rules.yaml:10: rule 'deal-links': associations[2]: missing required key 'from'",
        ]

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("", "rules.yaml:1: expected a mapping with a 'rules' list, got None"),
            ("- 1\n", "rules.yaml:1: expected a mapping with a 'rules' list, got an array"),
            ("sources: {}\n", "rules.yaml:1: missing required key 'rules'"),
            ("rules: 5\n", "rules.yaml:1: rules: expected a list of rules, got 5"),
            ("rules: []\nrulez: []\n", "rules.yaml:2: unknown key 'rulez' (expected rules, sources)"),
            ("rules:\n  - 5\n", "rules.yaml:2: rules[0]: expected a mapping with name, source and associations"),
            ("rules:\n  - name: [x\n", "rules.yaml:3: not valid YAML: "),
            ("rules: &x [*x]\n", "rules.yaml:1: not valid YAML: found unconstructable recursive node"),
            ("rules: " + "9" * 5000 + "\n", "rules.yaml:1: not usable YAML: "),
        ],
    )
    def test_file_level_problems(self, text: str, expected: str) -> None:
        """Empty, non-mapping, rule-less, broken, recursive and absurd files are refused with a line, never a crash."""
        [problem] = problems_of(text)
        assert problem.startswith(expected)

    def test_rules_error_is_a_config_error_listing_everything(self) -> None:
        """RulesError is a ConfigError whose message lists every problem."""
        with pytest.raises(ConfigError) as info:
            RuleSet.load(GOOD.replace("deals", "dealz"), "rules.yaml")
        assert isinstance(info.value, RulesError)
        assert str(info.value).count("rules.yaml:") == len(info.value.problems) == 2

    def test_sources_and_x_anchors_are_allowed(self) -> None:
        """A sources section and x- keys holding anchors load, and merge keys reuse the anchored sides."""
        text = """\
sources: {workflow: {auth: {type: signature}}}
x-deal: &deal {objectType: deals, id: "objectId"}
rules:
  - name: r
    source: workflow
    associations:
      - from: *deal
        to: {<<: *deal, objectType: contacts, id: "contact_id"}
"""
        result = evaluate(RuleSet.load(text), {"objectId": 1, "contact_id": 2})
        assert result.planned[0].to_side == Fixed("contacts", "2")

    def test_an_empty_rules_list_loads(self) -> None:
        """A file with an empty rules list loads, and like RuleSet.empty() matches nothing."""
        for rules in (RuleSet.load("rules: []\n"), RuleSet.empty()):
            assert rules.rules == ()
            assert evaluate(rules, {"objectId": 1}) == Evaluation((), (), ())

    def test_describe_summarises_each_rule(self) -> None:
        """describe() gives name, source, line, when and one line per association, for the CLI."""
        rules = RuleSet.load(RECORD_CREATION.replace("deal.creation", "[deal.creation, deal.restore]"))
        assert rules.describe()[0] == {
            "name": "new-deal-to-its-company",
            "source": "hubspot",
            "line": 2,
            "when": {"subscriptionType": ["deal.creation", "deal.restore"]},
            "associations": ["deals/{objectId} -> companies named by deals/{objectId}.associated_company_id"],
        }
        [demo] = RuleSet.load(DEMO_FORM).describe()
        assert demo["associations"] == [
            "contacts where email = {email} (onMultiple first) -> companies where domain = {company_domain} "
            "(onMultiple skip)"
        ]


class TestExamples:
    """The three example rule sets turn real-looking events into the associations they describe."""

    def test_deal_workflow_links_contact_and_company(self) -> None:
        """A deal workflow body with contact_id and company_id gives two fixed links with canonical types."""
        body = {"objectId": 5001, "portalId": 62515, "contact_id": "7001", "company_id": 9001, "dealname": "Acme"}
        result = RuleSet.load(DEAL_WORKFLOW).evaluate(parse_workflow(body, received_at=0))
        assert result == Evaluation(
            planned=(
                PlannedAssociation("deal-to-contact-and-company", Fixed("deals", "5001"), Fixed("contacts", "7001")),
                PlannedAssociation("deal-to-contact-and-company", Fixed("deals", "5001"), Fixed("companies", "9001")),
            ),
            matched_rules=("deal-to-contact-and-company",),
            problems=(),
        )

    def test_demo_form_searches_contact_and_company(self) -> None:
        """A demo-request form plans a contact-by-email to company-by-domain search, with each onMultiple."""
        fields = {"submission_id": "sub-8431", "email": "ada@acme.example", "company_domain": "acme.example"}
        event = parse_form("demo-request", fields, id_field="submission_id", id_value=None, raw_body=b"{}")
        [planned] = RuleSet.load(DEMO_FORM).evaluate(event).planned
        assert planned.from_side == SearchLookup("contacts", "email", "ada@acme.example", "first")
        assert planned.to_side == SearchLookup("companies", "domain", "acme.example", "skip")

    def test_record_creation_reads_a_property_of_the_new_record(self) -> None:
        """deal.creation and ticket.creation webhooks each plan a property lookup on the new record."""
        batch = [
            {"eventId": 1001, "subscriptionId": 12345, "portalId": 62515, "occurredAt": 1764331200000,
             "subscriptionType": "deal.creation", "objectId": 5101, "changeSource": "CRM"},
            {"eventId": 1002, "subscriptionId": 12346, "portalId": 62515, "occurredAt": 1764331200500,
             "subscriptionType": "ticket.creation", "objectId": 6101, "changeSource": "CRM"},
            {"eventId": 1003, "subscriptionId": 12347, "portalId": 62515, "occurredAt": 1764331200900,
             "subscriptionType": "contact.creation", "objectId": 7101, "changeSource": "CRM"},
        ]  # fmt: skip
        rules = RuleSet.load(RECORD_CREATION)
        deal, ticket, contact = (rules.evaluate(e) for e in parse_hubspot_batch(batch))
        assert deal.planned == (
            PlannedAssociation(
                "new-deal-to-its-company",
                Fixed("deals", "5101"),
                PropertyLookup("companies", "deals", "5101", "associated_company_id"),
            ),
        )
        assert ticket.planned[0].to_side == PropertyLookup("contacts", "tickets", "6101", "reporter_contact_id")
        assert contact == Evaluation((), (), ())


class TestMatching:
    """A rule applies when its source matches and every when condition holds."""

    @pytest.mark.parametrize(
        ("rule_source", "event_source", "applies"),
        [
            ("workflow", "workflow", True),
            ("workflow", "hubspot", False),
            ("forms:demo", "forms:demo", True),
            ("forms:demo", "forms:other", False),
            ('"forms:*"', "forms:anything", True),
            ('"forms:*"', "workflow", False),
        ],
    )
    def test_source_matching(self, rule_source: str, event_source: str, applies: bool) -> None:
        """Sources match exactly, except forms:* which matches every form and nothing else."""
        rules = one_rule("[{from: {objectType: deals, id: a}, to: {objectType: contacts, id: b}}]", source=rule_source)
        assert bool(evaluate(rules, {"a": 1, "b": 2}, event_source).matched_rules) is applies

    def test_rules_for_keeps_file_order(self) -> None:
        """rules_for lists the rules listening to a source, in file order, wildcards included."""
        wildcard = DEMO_FORM.replace("forms:demo-request", '"forms:*"').replace("name: demo", "name: any-form")
        rules = RuleSet.load(wildcard + DEMO_FORM.split("\n", 1)[1])
        assert [r.source for r in rules.rules_for("forms:demo-request")] == ["forms:*", "forms:demo-request"]
        assert rules.rules_for("workflow") == ()

    @pytest.mark.parametrize(
        ("when", "payload", "applies"),
        [
            ("{subscriptionType: deal.creation}", {"subscriptionType": "deal.creation"}, True),
            ("{subscriptionType: deal.creation}", {"subscriptionType": "deal.deletion"}, False),
            ("{subscriptionType: deal.creation}", {}, False),
            ("{subscriptionType: [deal.creation, deal.restore]}", {"subscriptionType": "deal.restore"}, True),
            ("{changeSource: CRM, propertyName: amount}", {"changeSource": "CRM", "propertyName": "amount"}, True),
            ("{changeSource: CRM, propertyName: amount}", {"changeSource": "CRM", "propertyName": "x"}, False),
            ("{attemptNumber: 0}", {"attemptNumber": 0}, True),
            ("{attemptNumber: 0}", {"attemptNumber": False}, False),
            ("{isSensitive: true}", {"isSensitive": 1}, False),
            ("{isSensitive: true}", {"isSensitive": True}, True),
            ("{portalId: 62515}", {"portalId": "62515"}, False),
            ("{objectTypeId: '0-3'}", {"objectTypeId": "0-3"}, True),
            ("{condition: \"properties.dealstage == 'closedwon'\"}", {"properties": {"dealstage": "closedwon"}}, True),
            ("{condition: \"properties.dealstage == 'closedwon'\"}", {"properties": {"dealstage": "open"}}, False),
            ('{condition: "amount > `100`"}', {"amount": 150}, True),
            ("{condition: 'amount'}", {"amount": 0}, True),
            ("{condition: 'tags'}", {"tags": []}, False),
            ("{condition: 'missing'}", {}, False),
            ("{changeSource: CRM, condition: 'ok'}", {"changeSource": "CRM", "ok": False}, False),
        ],
    )
    def test_when_conditions(self, when: str, payload: dict[str, Any], applies: bool) -> None:
        """Field matches are exact (no bool-int or int-string equality), lists mean any of, conditions are truthy."""
        rules = one_rule("[{from: {objectType: deals, id: a}, to: {objectType: contacts, id: b}}]", when=when)
        result = evaluate(rules, payload | {"a": 1, "b": 2})
        assert (result.matched_rules == ("r",)) is applies

    def test_legacy_and_generic_events_match_on_type_id(self) -> None:
        """objectTypeId matches both a generic object.creation event and a legacy deal.creation one."""
        rules = one_rule("[{from: {objectType: deals, id: objectId}, to: {objectType: contacts, id: objectId}}]",
                         source="hubspot", when="{objectTypeId: '0-3'}")  # fmt: skip
        base = {"eventId": 1, "subscriptionId": 2, "portalId": 3, "occurredAt": 4, "objectId": 5}
        generic = base | {"subscriptionType": "object.creation", "objectTypeId": "0-3"}
        legacy = base | {"eventType": "deal.creation"}
        assert [rules.evaluate(e).matched_rules for e in parse_hubspot_batch([generic, legacy])] == [("r",), ("r",)]


class TestResolving:
    """Matched rules turn JMESPath results into sides, or into problems naming rule and field."""

    FIXED = "[{from: {objectType: deals, id: objectId}, to: {objectType: contacts, id: 'properties.contact.id'}}]"
    SEARCH = "[{from: {objectType: deals, id: objectId}, to: {objectType: contacts, lookup: {search: {property: email, value: email}}}}]"  # noqa: E501
    PROPERTY = "[{from: {objectType: deals, lookup: {property: {objectType: tickets, id: t, name: deal_id}}}, to: {objectType: contacts, id: c}}]"  # noqa: E501

    @pytest.mark.parametrize(("value", "expected"), [(7001, "7001"), ("7001", "7001"), (" 7001 ", "7001")])
    def test_ids_become_strings(self, value: object, expected: str) -> None:
        """An integer or digit-string id from a nested expression becomes a Fixed side's id."""
        result = evaluate(one_rule(self.FIXED), {"objectId": 1, "properties": {"contact": {"id": value}}})
        assert result.planned[0].to_side == Fixed("contacts", expected)

    def test_null_is_found_nothing(self) -> None:
        """An expression that finds nothing is a problem naming rule, field and expression; nothing is planned."""
        result = evaluate(one_rule(self.FIXED), {"objectId": 1})
        assert result == Evaluation(
            (), ("r",), ("rule 'r': associations[0].to.id: expression 'properties.contact.id' found nothing",)
        )

    @pytest.mark.parametrize(
        ("value", "shown"),
        [("abc", "'abc'"), ("", "''"), (0, "0"), (-5, "-5"), (True, "True"), (1.5, "1.5"),
         (10**20, "100000000000000000000"), ("1" * 21, "'" + "1" * 21 + "'"), ([1], "an array"),
         ({"id": 1}, "an object")],
    )  # fmt: skip
    def test_non_ids_are_problems(self, value: object, shown: str) -> None:
        """A string, number, boolean or structure that is not a record id is a problem quoting it briefly."""
        result = evaluate(one_rule(self.FIXED), {"objectId": 1, "properties": {"contact": {"id": value}}})
        assert result.problems == (f"rule 'r': associations[0].to.id: expected a record id, got {shown}",)
        assert result.planned == ()

    def test_one_bad_association_does_not_stop_the_others(self) -> None:
        """In a rule of two associations, a bad one gives a problem and the good one is still planned."""
        result = evaluate(RuleSet.load(DEAL_WORKFLOW), {"objectId": 5, "contact_id": "abc", "company_id": 9})
        assert [p.to_side for p in result.planned] == [Fixed("companies", "9")]
        assert result.problems == (
            "rule 'deal-to-contact-and-company': associations[0].to.id: expected a record id, got 'abc'",
        )

    def test_linking_a_record_to_itself_is_a_problem(self) -> None:
        """Both sides naming the same record is a problem, not a planned association."""
        rules = one_rule("[{from: {objectType: deals, id: a}, to: {objectType: deal, id: b}}]")
        assert evaluate(rules, {"a": 5, "b": "5"}).problems == (
            "rule 'r': associations[0]: from and to are the same record deals/5",
        )

    @pytest.mark.parametrize(("value", "expected"), [(" ada@acme.example ", "ada@acme.example"), (42, "42")])
    def test_search_values_are_text(self, value: object, expected: str) -> None:
        """A search value is trimmed text, integers included; onMultiple defaults to first."""
        result = evaluate(one_rule(self.SEARCH), {"objectId": 1, "email": value})
        assert result.planned[0].to_side == SearchLookup("contacts", "email", expected, "first")

    @pytest.mark.parametrize("value", ["", "   ", True, 1.5, ["a"], {"a": 1}, "x" * 501])
    def test_unusable_search_values_are_problems(self, value: object) -> None:
        """An empty, boolean, fractional, structured or over-long search value is a problem."""
        [problem] = evaluate(one_rule(self.SEARCH), {"objectId": 1, "email": value}).problems
        assert problem.startswith("rule 'r': associations[0].to.lookup.search.value: expected a short non-empty")

    def test_property_lookup_needs_the_record_id(self) -> None:
        """A property lookup plans the read of the named record, and a missing id is a problem at its field."""
        rules = one_rule(self.PROPERTY)
        planned = evaluate(rules, {"t": 61, "c": 7}).planned
        assert planned[0].from_side == PropertyLookup("deals", "tickets", "61", "deal_id")
        assert evaluate(rules, {"c": 7}).problems == (
            "rule 'r': associations[0].from.lookup.property.id: expression 't' found nothing",
        )

    def test_jmespath_runtime_errors_are_problems(self) -> None:
        """A function given the wrong type, in a condition or an id, is a problem, never an exception."""
        rules = one_rule("[{from: {objectType: deals, id: 'abs(a)'}, to: {objectType: contacts, id: b}}]")
        [problem] = evaluate(rules, {"a": "text", "b": 2}).problems
        assert problem.startswith("rule 'r': associations[0].from.id: expression 'abs(a)' failed: In function abs()")
        rules = one_rule("[{from: {objectType: deals, id: a}, to: {objectType: contacts, id: b}}]",
                         when="{condition: 'sort_by(@, &x)'}")  # fmt: skip
        result = evaluate(rules, {"a": 1, "b": 2})
        assert result.matched_rules == ()
        assert result.problems[0].startswith("rule 'r': when.condition: expression 'sort_by(@, &x)' failed: ")
        assert all(len(p) < 300 for p in result.problems)

    @given(object_ids | st.text(max_size=25) | st.integers())
    def test_a_planned_id_is_always_a_valid_id(self, value: object) -> None:
        """Whatever an id expression returns, a planned Fixed side carries a valid record id or nothing is planned."""
        result = evaluate(one_rule(self.FIXED), {"objectId": 1, "properties": {"contact": {"id": value}}})
        for planned in result.planned:
            assert isinstance(planned.to_side, Fixed)
            assert planned.to_side.object_id.isdigit() and len(planned.to_side.object_id) <= 20
        assert len(result.planned) + len(result.problems) == 1

    @given(json_objects | json_values.map(lambda v: {"objectId": v, "email": v, "contact_id": v, "t": v, "a": v}))
    def test_evaluate_never_raises(self, payload: dict[str, Any]) -> None:
        """Whatever JSON arrives, every rule set evaluates to plans and problems without raising."""
        functions = "[{from: {objectType: deals, id: 'to_number(a)'}, to: {objectType: contacts, id: 'max_by(@, &a)'}}]"
        rule_sets = [RuleSet.load(text) for text in (DEAL_WORKFLOW, DEMO_FORM, RECORD_CREATION)]
        rule_sets += [one_rule(spec, when="{condition: 'length(@) > `1`'}") for spec in (self.SEARCH, self.PROPERTY)]
        rule_sets.append(one_rule(functions, when="{condition: 'sort(keys(@))[0] < a'}"))
        for rules in rule_sets:
            for source in ("workflow", "hubspot", "forms:demo-request"):
                result = evaluate(rules, payload, source)
                assert len(result.matched_rules) <= len(rules.rules)

    @given(json_values)
    def test_non_object_payloads_never_raise(self, payload: object) -> None:
        """Even a payload that is not an object gives problems, not exceptions."""
        rules = one_rule("[{from: {objectType: deals, id: '[0]'}, to: {objectType: contacts, id: b}}]")
        result = evaluate(rules, payload)
        assert result.matched_rules == ("r",)
        assert json.dumps(result.problems)
