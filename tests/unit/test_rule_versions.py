"""The rules document as data, offline: its check (each problem with its line), diffs, tags, subscriptions."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hublink.config.rule_versions import (
    MAX_TEXT_BYTES,
    Problem,
    RulesRejected,
    RuleVersion,
    check,
    subscriptions_needed,
    tag_version,
    unified_diff,
    version_tag,
)

RULES = """\
rules:
  - name: deal-contact
    source: hubspot
    when: {subscriptionType: deal.creation}
    associations:
      - from: {objectType: deals, id: objectId}
        to: {objectType: contacts, id: contactId}
"""
FORM_SOURCE = "sources:\n  forms:\n    demo:\n      auth: {type: token, header: X-T, token_env: DEMO_TOKEN}\n"


class TestCheck:
    """check() finds what ``hublink rules check`` finds, each problem with its line."""

    def test_valid_rules_have_no_problems(self) -> None:
        """A valid document: []."""
        assert check(RULES) == []

    def test_every_problem_is_listed_with_its_line(self) -> None:
        """Two mistakes, two problems, in line order, without the file name."""
        broken = RULES.replace("source: hubspot", "source: nowhere").replace("contactId", "contactId(")
        problems = check(broken)
        assert [p.line for p in problems] == [3, 7]
        assert problems[0].message.startswith("rule 'deal-contact': source: expected hubspot")
        assert not any("<rules>" in p.message for p in problems)

    def test_yaml_that_does_not_parse_names_its_line(self) -> None:
        """A tab in the indentation: one problem on line 2."""
        [problem] = check("rules:\n\t- name: x\n")
        assert problem.line == 2 and "not valid YAML" in problem.message

    def test_an_empty_document_is_a_problem(self) -> None:
        """Nothing at all is not a rules document."""
        [problem] = check("")
        assert problem.line == 1 and "rules" in problem.message

    def test_sources_are_checked_for_their_shape_without_an_environment(self) -> None:
        """Without an environment every named variable counts as set; a bad auth type is still a problem."""
        assert check(RULES + FORM_SOURCE) == []
        [problem] = check(RULES + FORM_SOURCE.replace("type: token", "type: telepathy"))
        assert problem.line == 8 and "auth.type" in problem.message

    def test_sources_are_checked_against_an_environment_when_given(self) -> None:
        """With the web's environment, a variable it lacks is a problem at the sources line."""
        [problem] = check(RULES + FORM_SOURCE, environ={})
        assert problem.line == 8 and "DEMO_TOKEN is not set" in problem.message
        assert check(RULES + FORM_SOURCE, environ={"DEMO_TOKEN": "t0ken"}) == []

    def test_a_document_too_large_is_refused_without_parsing(self) -> None:
        """Over 512 KiB: one problem naming the limit."""
        [problem] = check(RULES + "#" * MAX_TEXT_BYTES)
        assert problem.line is None and str(MAX_TEXT_BYTES) in problem.message

    @given(st.text(max_size=300))
    def test_check_never_raises(self, text: str) -> None:
        """Whatever the text, check answers with a list of problems."""
        assert all(isinstance(p, Problem) for p in check(text))


class TestWire:
    """What the API answers."""

    def test_a_problem_and_a_refusal(self) -> None:
        """A problem is {line, message}; a refusal carries them all and says them in its message."""
        problem = Problem(line=3, message="rule 'x': source: bad")
        assert problem.to_wire() == {"line": 3, "message": "rule 'x': source: bad"}
        assert str(problem) == "line 3: rule 'x': source: bad"
        assert "line 3" in str(RulesRejected([problem]))

    def test_a_version_with_and_without_its_text(self) -> None:
        """Listings leave the text and diff out; one version has both."""
        version = RuleVersion(version=2, text=RULES, author="ana", published_at=5, comment="c", diff="d")
        assert version.to_wire() == {"version": 2, "author": "ana", "publishedAt": 5, "comment": "c"}
        assert version.to_wire(with_text=True) == version.to_wire() | {"text": RULES, "diff": "d"}
        assert version.tag == "v2"


class TestDiffAndTags:
    """Diffs between versions, and the tags inbox entries carry."""

    def test_a_diff_names_both_versions_and_the_changed_lines(self) -> None:
        """From v1 to v2: headers, the removed and the added line."""
        diff = unified_diff(RULES, RULES.replace("contactId", "ownerId"), old_version=1, new_version=2)
        lines = diff.splitlines()
        assert lines[:2] == ["--- v1", "+++ v2"]
        assert "-        to: {objectType: contacts, id: contactId}" in lines
        assert "+        to: {objectType: contacts, id: ownerId}" in lines

    def test_equal_texts_have_no_diff(self) -> None:
        """A version publishing the same text again: an empty diff."""
        assert unified_diff(RULES, RULES, old_version=1, new_version=2) == ""

    def test_tags_round_trip(self) -> None:
        """v7 is version 7; 0 is no tag; a file digest and odd text name no version."""
        assert version_tag(7) == "v7" and tag_version("v7") == 7
        assert version_tag(0) == "" and tag_version("") is None
        for other in ("0123456789ab", "v0", "v-1", "v07", "V7", "v7 "):
            assert tag_version(other) is None


class TestSubscriptionsNeeded:
    """The subscriptions a version needs that the one before it did not (offline)."""

    def test_a_first_version_needs_its_subscriptions(self) -> None:
        """Nothing before: deal.creation, needed by deal-contact."""
        assert subscriptions_needed(RULES, None) == [{"subscription": "deal.creation", "rules": ["deal-contact"]}]

    def test_only_what_the_version_before_did_not_need(self) -> None:
        """Adding a property change rule: only that subscription is new."""
        more = RULES + RULES.split("rules:\n", 1)[1].replace("deal-contact", "stage").replace(
            "when: {subscriptionType: deal.creation}",
            "when: {subscriptionType: deal.propertyChange, propertyName: dealstage}",
        )
        assert subscriptions_needed(more, RULES) == [
            {"subscription": "deal.propertyChange (dealstage)", "rules": ["stage"]}
        ]
        assert subscriptions_needed(RULES, more) == []

    def test_unreadable_rules_need_nothing(self) -> None:
        """A text that does not load names no subscription (publish refuses it anyway)."""
        assert subscriptions_needed("rules: 5", None) == []
