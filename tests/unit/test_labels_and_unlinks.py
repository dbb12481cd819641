"""Labels and unlinking: items and rules that name a label, types or an unlink, and how they are checked."""

from __future__ import annotations

from typing import Any

import pytest

from hublink.delivery.labels import LabelDefinitions, check_rule_labels
from hublink.domain.associations import AssociationRequest, parse_api_items
from hublink.domain.errors import DeliveryError, HubSpotErrorDetail, InvalidInputError, TransientError
from hublink.domain.events import parse_hubspot_batch
from hublink.domain.lookups import work_from_record
from hublink.domain.rules import RulesError, RuleSet
from hublink.intake.expansion import plan
from web.api.labels import resolve_labels

ITEM = {"fromObjectType": "deals", "fromObjectId": "1", "toObjectType": "companies", "toObjectId": "2"}
PRIMARY = {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}


def parse(**extra: Any) -> AssociationRequest:
    """Parse one direct-API item with ``extra`` fields."""
    return parse_api_items([{**ITEM, **extra}], received_at=1.0, max_items=100)[0]


def problems(**extra: Any) -> list[dict[str, str]]:
    """The 422 details for one item with ``extra`` fields."""
    with pytest.raises(InvalidInputError) as info:
        parse(**extra)
    return [p.as_dict() for p in info.value.problems]


class TestDirectApiItems:
    """The direct API's items take action, label and types, and refuse any other field."""

    def test_an_item_without_the_new_fields_is_a_default_link(self) -> None:
        """No action, label or types: today's default link, sent through the default endpoints."""
        request = parse()
        assert (request.action, request.label, request.types, request.call_kind) == ("link", None, (), "default")

    def test_an_unknown_field_is_refused_naming_it(self) -> None:
        """A field the API does not define is a 422 naming it, never silently ignored."""
        found = problems(acton="unlink")
        assert found[0]["field"] == "/associations/0/acton"
        assert "unknown field 'acton'" in found[0]["message"]

    def test_a_label_makes_a_labelled_link(self) -> None:
        """A label name is kept (trimmed) and the item goes through batch/create."""
        request = parse(label=" Decision maker ")
        assert (request.label, request.call_kind) == ("Decision maker", "create")

    def test_explicit_types_are_kept_in_order_without_repeats(self) -> None:
        """Explicit association types are parsed into (category, typeId) pairs."""
        request = parse(types=[PRIMARY, PRIMARY, {"associationCategory": "USER_DEFINED", "associationTypeId": 9}])
        assert request.types == (("HUBSPOT_DEFINED", 5), ("USER_DEFINED", 9))

    @pytest.mark.parametrize(
        ("types", "expected"),
        [
            ([], "1-10 association types"),
            ([{"associationCategory": "WORK", "associationTypeId": 5}], "associationCategory"),
            ([{"associationCategory": "USER_DEFINED", "associationTypeId": "5"}], "associationTypeId"),
            ([{"associationCategory": "USER_DEFINED"}], "exactly associationCategory and associationTypeId"),
        ],
    )
    def test_bad_types_are_refused_saying_why(self, types: object, expected: str) -> None:
        """Each malformed types value is a 422 on /types saying what was expected."""
        found = problems(types=types)
        assert found[0]["field"] == "/associations/0/types" and expected in found[0]["message"]

    def test_a_label_and_types_together_are_refused(self) -> None:
        """Either a label or types, not both."""
        assert any("not both" in p["message"] for p in problems(label="Primary", types=[PRIMARY]))

    def test_an_unknown_action_is_refused(self) -> None:
        """action is link or unlink."""
        assert problems(action="delete")[0]["field"] == "/associations/0/action"

    @pytest.mark.parametrize(
        ("extra", "kind"),
        [({"action": "unlink"}, "archive"), ({"action": "unlink", "label": "Primary"}, "labels_archive")],
    )
    def test_an_unlink_removes_the_association_or_only_its_label(self, extra: dict[str, Any], kind: str) -> None:
        """Without a label an unlink archives the whole association; with one, only that label."""
        assert parse(**extra).call_kind == kind

    def test_the_stored_form_round_trips_and_stays_small_for_default_links(self) -> None:
        """New fields are written only when set, and read back as they were."""
        assert "action" not in parse().as_record()
        request = parse(action="unlink", types=[PRIMARY])
        record = request.as_record()
        assert record["types"] == [["HUBSPOT_DEFINED", 5]]
        assert work_from_record(record) == request


RULES = """
rules:
  - name: primary
    source: hubspot
    when: {subscriptionType: deal.creation}
    associations:
      - from: {objectType: deals, id: objectId}
        to: {objectType: companies, id: companyId}
        label: Primary
  - name: removed
    source: hubspot
    when: {associationRemoved: true}
    associations:
      - from: {objectType: deals, id: fromObjectId}
        to: {objectType: contacts, id: toObjectId}
        action: unlink
"""


class TestRules:
    """Rule associations take action, label or types, and an association removal can trigger a rule."""

    def test_options_are_parsed_and_described(self) -> None:
        """The label and the unlink show in the rule's description."""
        described = RuleSet.load(RULES).describe()
        assert described[0]["associations"][0].endswith("(label 'Primary')")
        assert described[1]["associations"][0].endswith("(unlink)")

    def test_a_bad_action_and_a_label_with_types_are_problems_with_lines(self) -> None:
        """Both problems are reported with the rule and the line."""
        text = RULES.replace("action: unlink", "action: remove").replace(
            "label: Primary",
            "label: Primary\n        types: [{associationCategory: HUBSPOT_DEFINED, associationTypeId: 5}]",
        )
        with pytest.raises(RulesError) as info:
            RuleSet.load(text)
        message = str(info.value)
        assert "give label or types, not both" in message and "expected link or unlink" in message

    def test_an_association_removed_event_plans_an_unlink(self) -> None:
        """A deal.associationChange with associationRemoved true plans the unlink of the same pair."""
        raw = [
            {
                "eventId": 1,
                "subscriptionId": 2,
                "portalId": 3,
                "occurredAt": 1_700_000_000_000,
                "subscriptionType": "deal.associationChange",
                "attemptNumber": 0,
                "fromObjectId": 10,
                "toObjectId": 20,
                "associationType": "DEAL_TO_CONTACT",
                "associationRemoved": True,
            }
        ]
        events = parse_hubspot_batch(raw)
        work, found, matched = plan(events[0], RuleSet.load(RULES), 1.0)
        assert matched and not found
        (request,) = work
        assert isinstance(request, AssociationRequest)
        assert (request.pair, request.action, request.call_kind) == (("10", "20"), "unlink", "archive")


def definitions(labels: dict[tuple[str, str], list[tuple[str, int, str | None]]]) -> Any:
    """A definitions reader over a fixed table (an unknown pair has none)."""

    def read(portal: str | None, from_type: str, to_type: str) -> LabelDefinitions:
        """The pair's definitions."""
        return LabelDefinitions.of(labels.get((from_type, to_type), []))

    return read


class TestLabelCheckAtStart:
    """A worker refuses, with a clear message, the rules whose label HubSpot does not define."""

    def test_names_match_without_regard_to_case_or_spaces(self) -> None:
        """'primary ' finds HubSpot's 'Primary'; the unlabelled type has no name."""
        found = LabelDefinitions.of([("HUBSPOT_DEFINED", 5, "Primary"), ("HUBSPOT_DEFINED", 341, None)])
        assert found.types_for("primary ") == (("HUBSPOT_DEFINED", 5),)
        assert found.known == ["Primary"]

    def test_a_rule_with_an_unknown_label_is_refused_with_the_known_ones(self) -> None:
        """The rule is dropped and the problem lists the labels defined for the pair."""
        rules = RuleSet.load(RULES.replace("label: Primary", "label: Primery"))
        kept, refused = check_rule_labels(
            rules, definitions({("deals", "companies"): [("HUBSPOT_DEFINED", 5, "Primary")]}), [None]
        )
        assert [r.name for r in kept.rules] == ["removed"]
        assert "rule 'primary'" in refused[0] and "known labels: 'Primary'" in refused[0]

    def test_a_known_label_keeps_the_rule(self) -> None:
        """Every rule is kept when its label exists."""
        kept, refused = check_rule_labels(
            RuleSet.load(RULES), definitions({("deals", "companies"): [("HUBSPOT_DEFINED", 5, "Primary")]}), [None]
        )
        assert len(kept.rules) == 2 and refused == []

    def test_a_label_that_cannot_be_checked_keeps_the_rule(self) -> None:
        """HubSpot unreachable at start-up: the rule is kept (its work dead-letters if the name is wrong)."""

        def failing(portal: str | None, from_type: str, to_type: str) -> LabelDefinitions:
            """HubSpot does not answer."""
            raise TransientError(HubSpotErrorDetail(message="down"))

        kept, refused = check_rule_labels(RuleSet.load(RULES), failing, [None])
        assert len(kept.rules) == 2 and refused == []
        assert issubclass(TransientError, DeliveryError)


class FixedLabelCache:
    """The workers' label cache, in memory: definitions per (portal, from, to); a pair not given is a miss."""

    def __init__(self, cached: dict[tuple[str | None, str, str], list[tuple[str, int, str | None]]]) -> None:
        self._cached = {k: LabelDefinitions.of(v) for k, v in cached.items()}

    def definitions(self, portal: str | None, from_type: str, to_type: str) -> LabelDefinitions | None:
        """The pair's cached definitions, or None."""
        return self._cached.get((portal, from_type, to_type))


class TestDirectApiLabels:
    """The direct API resolves each item's label from the workers' cache before accepting it (web.api.labels)."""

    def cache(self, *, cold: bool = False) -> FixedLabelCache:
        """A cache holding 'Primary' for deals -> companies (nothing when ``cold``)."""
        return FixedLabelCache({} if cold else {(None, "deals", "companies"): [("HUBSPOT_DEFINED", 5, "Primary")]})

    def test_a_known_label_is_accepted_with_its_types(self) -> None:
        """The item carries the resolved types, so the worker need not resolve them again."""
        (request,) = resolve_labels(self.cache(), [parse(label="primary")])
        assert request.types == (("HUBSPOT_DEFINED", 5),) and request.label == "primary"

    def test_an_unknown_label_is_a_422_listing_the_known_ones(self) -> None:
        """The problem is on /associations/0/label and names the labels that exist."""
        with pytest.raises(InvalidInputError) as info:
            resolve_labels(self.cache(), [parse(label="Primery")])
        (problem,) = info.value.problems
        assert problem.where == "/associations/0/label" and "known labels: 'Primary'" in problem.message

    def test_a_pair_the_cache_does_not_hold_is_left_to_the_worker(self) -> None:
        """A cold cache accepts the label unresolved: the worker resolves it (and dead-letters an unknown one)."""
        (request,) = resolve_labels(self.cache(cold=True), [parse(label="Primery")])
        assert request.label == "Primery" and request.types == ()

    def test_items_without_labels_need_no_lookup(self) -> None:
        """Default links and explicit types pass untouched, even with a cold cache."""
        requests = [parse(), parse(types=[PRIMARY])]
        assert resolve_labels(self.cache(cold=True), requests) == requests
