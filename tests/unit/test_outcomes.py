"""The drain's pure outcome step: what each HubSpot answer means for each claimed association."""

from __future__ import annotations

import random

import pytest

from hublink.delivery import outcomes
from hublink.delivery.hubspot import CallResult, error_for_entry, error_for_status
from hublink.delivery.outcomes import Result
from hublink.domain import retry_policy as rp
from hublink.domain.associations import AssociationRequest
from hublink.domain.dead_letter import DeadLetter
from hublink.domain.errors import DeliveryError, HubSpotErrorDetail, RateLimitedError
from hublink.domain.lookups import LookupRequest
from hublink.domain.rules import Fixed, SearchLookup
from hublink.lanes import Claimed
from hublink.store.counters import CounterOps
from hublink.store.keys import Keys

NOW = 1_790_000_000.0
POLICY = rp.RetryPolicy(fresh_record_grace_s=120.0, max_attempts=10, daily_limit_defer_s=3600.0, rate_window_s=10.0)
COUNTERS = CounterOps(Keys("hl:"))


class Top(random.Random):
    """uniform(a, b) is always b: the backoff ceiling, so delays are exact."""

    def uniform(self, a: float, b: float) -> float:
        """Return the top of the range."""
        return b


def claimed(n: int = 1, *, attempts: int = 0, age_s: float = 3600.0, to_id: str | None = None) -> Claimed:
    """A claimed deal→contact association whose event happened ``age_s`` ago."""
    request = AssociationRequest.create(
        from_object_type="deals",
        from_object_id=str(n),
        to_object_type="contacts",
        to_object_id=to_id or str(100 + n),
        source="api",
        received_at=NOW - age_s,
    )
    return Claimed(f"{n:032x}", request, attempts, [], int((NOW - age_s) * 1000), 0)


def settle_one(error: DeliveryError | None, *, attempts: int = 0, age_s: float = 3600.0) -> outcomes.Settlement:
    """Settle one association's answer at NOW."""
    return outcomes.settle([Result(claimed(attempts=attempts, age_s=age_s), error)], now=NOW, policy=POLICY, rng=Top())


def counted(settlement: outcomes.Settlement, metric: str) -> dict[str, int]:
    """The increments of one counter in a settlement, by label field."""
    key = Keys("hl:").metric(metric)
    found: dict[str, int] = {}
    for k, field, n, _ in settlement.ops:
        if k == key:
            found[field] = found.get(field, 0) + n
    return found


#: The error-class table of docs/concepts/delivery.md, one row per HubSpot answer:
#: (status, body, age, expected kind, attempt spent).
TABLE = [
    ("2xx, pair in results", None, None, 3600, "done", False),
    ("429 TEN_SECONDLY_ROLLING", 429, {"policyName": "TEN_SECONDLY_ROLLING"}, 3600, "retry", False),
    ("429 DAILY", 429, {"policyName": "DAILY"}, 3600, "retry", False),
    ("423 locked", 423, {}, 3600, "retry", True),
    ("477 migration", 477, {}, 3600, "retry", True),
    ("500", 500, {}, 3600, "retry", True),
    ("502", 502, {}, 3600, "retry", True),
    ("503", 503, {}, 3600, "retry", True),
    ("504", 504, {}, 3600, "retry", True),
    ("521", 521, {}, 3600, "retry", True),
    ("524", 524, {}, 3600, "retry", True),
    ("404 fresh", 404, {}, 10, "retry", True),
    (
        "400 INVALID_OBJECT_IDS fresh",
        400,
        {"category": "VALIDATION_ERROR", "context": {"INVALID_OBJECT_IDS": ["x"]}},
        10,
        "retry",
        True,
    ),
    ("400", 400, {"category": "VALIDATION_ERROR"}, 3600, "dead", True),
    ("409", 409, {}, 3600, "dead", True),
    ("414", 414, {}, 3600, "dead", True),
    ("401", 401, {}, 3600, "dead", True),
    ("403 missing scopes", 403, {"context": {"missingScopes": ["crm.objects.deals.write"]}}, 3600, "dead", True),
    ("404 after the grace", 404, {}, 3600, "dead", True),
    ("525", 525, {}, 3600, "dead", True),
    ("526", 526, {}, 3600, "dead", True),
]


class TestErrorTable:
    """Each row of the error-class table (docs/concepts/delivery.md) settles as the table says."""

    @pytest.mark.parametrize(("row", "status", "body", "age_s", "kind", "spent"), TABLE, ids=[r[0] for r in TABLE])
    def test_row(
        self, row: str, status: int | None, body: dict[str, object] | None, age_s: float, kind: str, spent: bool
    ) -> None:
        """The answer ends the association as done, retried at a later time, or dead-lettered."""
        error = None if status is None else error_for_status(status, body or {}, {}, NOW)
        settlement = settle_one(error, attempts=2, age_s=age_s)
        (outcome,) = settlement.outcomes
        assert outcome.kind == kind
        if kind == "retry":
            assert outcome.due_ms > NOW * 1000
        if kind != "done":
            assert outcome.item.attempts == (3 if spent else 2)
            assert outcome.item.history[-1]["status"] == status
        if kind == "dead":
            assert settlement.dead_letters == [outcome.dead_letter]


class TestCallResult:
    """One shape for every answer to a call: a 2xx's per-pair results, or a whole call refused."""

    def test_a_refused_call_answers_every_pair_with_its_error(self) -> None:
        """``refused`` keeps the call's error, rate headers and correlation id; each pair's outcome is that error."""
        error = error_for_status(503, {"correlationId": "c-7"}, {}, NOW)
        result = CallResult.refused(error)
        assert result.outcome(("1", "2")) is error and result.correlation_id == "c-7" and not result.linked

    def test_a_2xx_answers_each_pair_by_its_own_entry(self) -> None:
        """Linked is None, a failed entry its error, and a pair left out is "no outcome for pair"."""
        refused = error_for_entry({"status": "error", "category": "VALIDATION_ERROR", "message": "no"}, None)
        result = CallResult(linked=frozenset({("1", "2")}), failed={("3", "4"): refused})
        assert result.outcome(("1", "2")) is None and result.outcome(("3", "4")) is refused
        missing = result.outcome(("5", "6"))
        assert missing is not None and missing.detail.message == "no outcome for pair"


class TestOutcomes:
    """Mixed batches, deferrals, exhaustion and lookups."""

    def test_a_mixed_batch_settles_each_pair_by_its_own_answer(self) -> None:
        """One linked, one refused, one left out of a 2xx: done, dead letter, retried — independently."""
        items = [claimed(1), claimed(2), claimed(3)]
        pairs = [outcomes.association_of(i).pair for i in items]
        result = CallResult(
            linked=frozenset({pairs[0]}),
            failed={
                pairs[1]: error_for_entry({"status": "error", "category": "VALIDATION_ERROR", "message": "no"}, None)
            },
        )
        answers = [Result(i, outcomes.pair_outcome(i, result)) for i in items]
        settlement = outcomes.settle(answers, now=NOW, policy=POLICY, rng=Top(), counters=COUNTERS)
        assert [o.kind for o in settlement.outcomes] == ["done", "dead", "retry"]
        assert settlement.outcomes[2].item.history[-1]["message"] == "no outcome for pair"
        assert (settlement.tally.linked, settlement.tally.dead, settlement.tally.retried) == (1, 1, 1)
        assert counted(settlement, "associations_succeeded") == {"source=api": 1}
        assert counted(settlement, "associations_dead_lettered") == {"source=api,category=VALIDATION_ERROR": 1}

    def test_a_rate_limited_answer_defers_by_its_hint_without_spending_an_attempt(self) -> None:
        """A 429 with Retry-After 7 s is due 7 s later, attempts unchanged, counted as deferred."""
        error = RateLimitedError(HubSpotErrorDetail(status=429, policy_name="SECONDLY"), retry_after_s=7.0)
        settlement = outcomes.settle(
            [Result(claimed(attempts=4), error)], now=NOW, policy=POLICY, rng=Top(), counters=COUNTERS
        )
        (outcome,) = settlement.outcomes
        assert outcome.due_ms == int((NOW + 7.0) * 1000)
        assert outcome.item.attempts == 4
        assert settlement.tally.deferred == 1
        assert counted(settlement, "retries") == {"error=RateLimitedError,kind=deferred": 1}

    def test_the_last_attempt_dead_letters_with_every_attempt_recorded(self) -> None:
        """The tenth failed attempt is a dead letter naming the exhaustion, with the full history."""
        item = claimed(attempts=9)
        item.history = [{"outcome": "retry", "status": 503}] * 9
        settlement = outcomes.settle(
            [Result(item, error_for_status(503, {}, {}, NOW))], now=NOW, policy=POLICY, rng=Top()
        )
        (letter,) = settlement.dead_letters
        assert letter.reason.startswith("exhausted 10 attempts")
        assert letter.attempt_count == 10 and len(letter.attempts) == 10
        assert letter.attempts[-1]["outcome"] == "dead"

    def test_a_retry_never_changes_the_claimed_item_it_was_given(self) -> None:
        """The step is pure: the settled copy carries the attempt, the caller's item is untouched."""
        item = claimed(attempts=1)
        outcomes.settle([Result(item, error_for_status(500, {}, {}, NOW))], now=NOW, policy=POLICY, rng=Top())
        assert (item.attempts, item.history) == (1, [])

    def test_a_lookup_dead_letter_names_its_sides_by_type_not_by_parsing_text(self) -> None:
        """A lookup that found nothing is a dead letter whose pair shows each side's object type."""
        request = LookupRequest(
            rule="demo",
            from_side=Fixed("contacts", "5"),
            to_side=SearchLookup("companies", "domain", "example.com", "skip"),
            source="forms.demo",
            received_at=NOW - 3600,
        )
        item = Claimed("f" * 32, request, 0, [], int((NOW - 3600) * 1000), 0)
        error = error_for_status(404, {"category": "OBJECT_NOT_FOUND"}, {}, NOW)
        (letter,) = outcomes.settle([Result(item, error)], now=NOW, policy=POLICY, rng=Top()).dead_letters
        assert letter.kind == "lookup"
        assert (letter.association.from_object_type, letter.association.to_object_type) == ("contacts", "companies")
        assert letter.association.rule == "demo"

    def test_a_dead_letter_survives_its_wire_format(self) -> None:
        """What settle.lua stores reads back as the same record, camelCase on the wire."""
        error = error_for_status(403, {"context": {"missingScopes": ["crm.objects.deals.write"]}}, {}, NOW)
        (letter,) = settle_one(error).dead_letters
        wire = letter.to_wire()
        assert wire["missingScopes"] == ["crm.objects.deals.write"]
        assert "fromObjectType" in wire["record"] and "from_object_type" not in wire["record"]
        assert DeadLetter.from_wire(wire) == letter

    def test_request_ops_count_the_call_and_its_429_policy(self) -> None:
        """A 429 is counted by endpoint and status and by its policy name."""
        error = RateLimitedError(HubSpotErrorDetail(status=429, policy_name="DAILY"))
        ops = outcomes.request_ops(COUNTERS, "batch_associate_default", 429, error, NOW)
        fields = {(k.rsplit(":", 1)[-1], f) for k, f, _, _ in ops}
        assert ("hubspot_requests", "endpoint=batch_associate_default,status=429") in fields
        assert ("hubspot_rate_limited", "policy=DAILY") in fields

    @pytest.mark.parametrize(
        ("policy_name", "retry_after", "expected"),
        [("DAILY", 5.0, 3600.0), ("SECONDLY", 5.0, 5.0), ("SECONDLY", None, 10.0)],
    )
    def test_a_429_shuts_its_bucket_for_the_daily_deferral_the_hint_or_one_window(
        self, policy_name: str, retry_after: float | None, expected: float
    ) -> None:
        """How long the bucket is blocked after a 429."""
        error = RateLimitedError(HubSpotErrorDetail(status=429, policy_name=policy_name), retry_after_s=retry_after)
        assert outcomes.block_seconds(error, POLICY, 10.0) == expected
