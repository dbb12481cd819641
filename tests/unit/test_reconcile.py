"""Reconcile (``mode: replace``): a record's associations become exactly the ones its rule names."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import pytest

from hublink.delivery.hubspot import CallResult
from hublink.delivery.reconcile import Existing, reconcile
from hublink.domain.associations import AssociationRequest, AssociationType, CallKind
from hublink.domain.errors import DeliveryError, HubSpotErrorDetail, ServerError
from hublink.domain.rules import RulesError, RuleSet

PRIMARY: tuple[AssociationType, ...] = (("HUBSPOT_DEFINED", 5),)
UNLABELLED: tuple[AssociationType, ...] = (("HUBSPOT_DEFINED", 341),)


def replace(to_id: str, *, from_id: str = "1", event: str = "e1") -> AssociationRequest:
    """Replace work: deals/from_id's companies should be exactly to_id (from event ``event``)."""
    return AssociationRequest(
        from_object_type="deals",
        from_object_id=from_id,
        to_object_type="companies",
        to_object_id=to_id,
        source="hubspot",
        source_event_id=event,
        received_at=1.0,
        mode="replace",
    )


class Calls:
    """Records the calls reconcile makes and answers them all as done."""

    def __init__(self, existing: Existing, fail: CallKind | None = None) -> None:
        self.existing = existing
        self.fail = fail
        self.made: list[tuple[str, list[tuple[str, str]], dict[tuple[str, str], list[AssociationType]]]] = []

    def read(self, from_ids: Sequence[str]) -> Existing | DeliveryError:
        """batch/read."""
        self.made.append(("read", [(i, "") for i in from_ids], {}))
        return {i: self.existing.get(i, []) for i in from_ids}

    def call(
        self,
        kind: CallKind,
        pairs: Sequence[tuple[str, str]],
        types: Mapping[tuple[str, str], Sequence[AssociationType]],
    ) -> CallResult:
        """Any other call."""
        self.made.append((kind, list(pairs), {p: list(t) for p, t in types.items() if t}))
        if kind == self.fail:
            return CallResult.refused(ServerError(HubSpotErrorDetail(status=503)))
        return CallResult(linked=frozenset(pairs))


class TestReconcile:
    """Read what exists, remove the others, create the missing, report what was removed."""

    def test_the_primary_company_moves_keeping_the_old_association_unlabelled(self) -> None:
        """Primary on company 9 instead of 8: only the Primary label is removed from 8, 9 gets it."""
        calls = Calls({"1": [("8", PRIMARY + UNLABELLED), ("7", UNLABELLED)]})
        done = reconcile([replace("9")], {0: PRIMARY}, calls.read, calls.call)
        assert [kind for kind, _, _ in calls.made] == ["read", "labels_archive", "create"]
        assert calls.made[1][1:] == ([("1", "8")], {("1", "8"): list(PRIMARY)})
        assert calls.made[2][1] == [("1", "9")]
        assert done.removed == {"1": ["8"]} and done.errors == {0: None}

    def test_without_a_label_the_others_are_archived_whole(self) -> None:
        """Unlabelled replace: every other company is removed entirely, the missing one linked by default."""
        calls = Calls({"1": [("7", UNLABELLED), ("9", UNLABELLED)]})
        done = reconcile([replace("9"), replace("10")], {}, calls.read, calls.call)
        assert [(kind, pairs) for kind, pairs, _ in calls.made[1:]] == [
            ("archive", [("1", "7")]),
            ("default", [("1", "10")]),
        ]
        assert done.removed == {"1": ["7"]} and done.errors == {0: None, 1: None}

    def test_nothing_to_do_makes_only_the_read(self) -> None:
        """When the record already has exactly the named associations, only batch/read is called."""
        calls = Calls({"1": [("9", PRIMARY)]})
        done = reconcile([replace("9")], {0: PRIMARY}, calls.read, calls.call)
        assert [kind for kind, _, _ in calls.made] == ["read"] and done.removed == {}

    def test_a_newer_event_supersedes_an_older_one_for_the_same_record(self) -> None:
        """Two events for deal 1 in one run: the newer one's set is what is kept; the older is done."""
        calls = Calls({"1": []})
        done = reconcile(
            [replace("8", event="e1"), replace("9", event="e2")], {0: PRIMARY, 1: PRIMARY}, calls.read, calls.call
        )
        assert calls.made[-1][:2] == ("create", [("1", "9")])
        assert done.errors == {0: None, 1: None}

    def test_a_failed_removal_fails_the_reconcile_to_run_again(self) -> None:
        """A 503 on the removal: the item gets that error (retried whole), nothing is reported removed."""
        calls = Calls({"1": [("8", PRIMARY)]}, fail="labels_archive")
        done = reconcile([replace("9")], {0: PRIMARY}, calls.read, calls.call)
        assert isinstance(done.errors[0], ServerError) and done.removed == {}


class TestRuleMode:
    """mode: replace on a rule association."""

    def test_replace_is_planned_and_described(self) -> None:
        """The option reaches the planned association and the rule's description."""
        rules = RuleSet.load(
            "rules:\n  - name: primary\n    source: workflow\n    associations:\n"
            "      - from: {objectType: deals, id: objectId}\n        to: {objectType: companies, id: companyId}\n"
            "        label: Primary\n        mode: replace\n"
        )
        assert rules.describe()[0]["associations"][0].endswith("(replace, label 'Primary')")

    def test_replace_with_unlink_is_refused(self) -> None:
        """A replace sets what is linked: it cannot be an unlink."""
        with pytest.raises(RulesError, match="not with action unlink"):
            RuleSet.load(
                "rules:\n  - name: r\n    source: workflow\n    associations:\n"
                "      - from: {objectType: deals, id: objectId}\n        to: {objectType: companies, id: c}\n"
                "        action: unlink\n        mode: replace\n"
            )

    def test_the_stored_form_keeps_the_mode(self) -> None:
        """mode is written only when replace, and read back."""
        request = replace("9")
        assert request.as_record()["mode"] == "replace"
        assert AssociationRequest.from_record(request.as_record()) == request
        assert "mode" not in dataclasses.replace(request, mode="add").as_record()
