"""Backfills: the plan (which records, which event each becomes) and the resumable, cancellable walk."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from hublink.delivery.credentials import StaticCredentials
from hublink.delivery.rate_limit import MemoryLimiter
from hublink.domain.backfill import BackfillPlan, parse_date
from hublink.domain.errors import HubSpotErrorDetail, ServerError, ValidationRejectedError
from hublink.domain.events import CrmEvent
from hublink.domain.limits import RateLimit
from hublink.domain.rules import RuleSet
from hublink.intake.expansion import plan as plan_event
from hublink.ops.backfill import Backfill, BackfillRunner, MemoryBackfills, progress_line

RULES = RuleSet.load(
    """
rules:
  - name: deal-company
    source: workflow
    associations:
      - from: {objectType: deals, id: objectId}
        to: {objectType: companies, id: company_id}
  - name: primary-changed
    source: hubspot
    when: {subscriptionType: deal.propertyChange, propertyName: primary_company_id}
    associations:
      - from: {objectType: deals, id: objectId}
        to: {objectType: companies, id: propertyValue}
        label: Primary
        mode: replace
  - name: every-form
    source: "forms:*"
    associations:
      - from: {objectType: contacts, id: objectId}
        to: {objectType: companies, id: company}
"""
)
START = 1_790_000_000.0


def rule(name: str) -> Any:
    """The rule called ``name``."""
    return next(r for r in RULES.rules if r.name == name)


class TestPlan:
    """Which records a backfill walks and the event each becomes."""

    def test_the_records_are_the_type_whose_id_is_the_event_object_id(self) -> None:
        """deal-company reads objectId as a deal: deals are walked, company_id is asked for."""
        walk = BackfillPlan.make(rule("deal-company"))
        assert walk.object_type == "deals" and walk.date_property == "createdate"
        assert walk.properties() == ["company_id", "createdate", "hs_object_id"]

    def test_pages_go_past_the_last_id_inside_the_window(self) -> None:
        """Each page is a fresh query past the last hs_object_id read, with the date window."""
        walk = BackfillPlan.make(rule("deal-company"), since_ms=1000, until_ms=2000)
        assert walk.filters("41") == [
            {"propertyName": "hs_object_id", "operator": "GT", "value": "41"},
            {"propertyName": "createdate", "operator": "GTE", "value": "1000"},
            {"propertyName": "createdate", "operator": "LTE", "value": "2000"},
        ]

    def test_a_record_becomes_the_event_the_rule_expects(self) -> None:
        """The workflow event names the deal and its company; the rule plans that association once."""
        event = BackfillPlan.make(rule("deal-company")).event("7", {"company_id": "70"}, now_s=START)
        assert event.payload == {"objectId": 7, "company_id": "70"}
        assert event.dedup_key == "backfill:deal-company:_:deals:7"
        (work,) = plan_event(event, RuleSet([rule("deal-company")]), START)[0]
        assert (work.from_object_id, work.to_object_id) == ("7", "70")

    def test_a_property_change_rule_gets_its_envelope_and_the_property_value(self) -> None:
        """A hubspot rule on a property change: subscriptionType and propertyName as asked, the value read."""
        walk = BackfillPlan.make(rule("primary-changed"), portal_id="42")
        assert "primary_company_id" in walk.properties()
        event = walk.event("7", {"primary_company_id": "70", "createdate": "1700000000000"}, now_s=START)
        assert event.payload["subscriptionType"] == "deal.propertyChange"
        assert (event.payload["propertyName"], event.payload["propertyValue"]) == ("primary_company_id", "70")
        assert event.payload["portalId"] == 42 and event.occurred_at == 1_700_000_000.0
        assert plan_event(event, RuleSet([rule("primary-changed")]), START)[2]

    def test_a_rule_listening_to_every_form_cannot_be_backfilled(self) -> None:
        """forms:* names no one source for the events."""
        with pytest.raises(ValueError, match="forms:\\*"):
            BackfillPlan.make(rule("every-form"))

    @pytest.mark.parametrize(
        ("text", "ms"), [("2026-01-31", 1_769_817_600_000), ("2026-01-31T00:00:01Z", 1_769_817_601_000)]
    )
    def test_dates_are_days_or_date_times(self, text: str, ms: int) -> None:
        """A bare date is midnight UTC."""
        assert parse_date(text) == ms


@dataclass
class FakeSearch:
    """HubSpot's search over ``ids``, ascending, honouring the GT filter; scripted errors first."""

    ids: list[int]
    errors: list[Exception] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)

    def search_records(
        self,
        token: str,
        object_type: str,
        filters: Sequence[Mapping[str, str]],
        properties: Sequence[str],
        limit: int,
        *,
        base_url: str | None = None,
    ) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
        """One page past the GT cursor."""
        if self.errors:
            raise self.errors.pop(0)
        after = int(filters[0]["value"])
        self.queries.append(filters[0]["value"])
        rest = [i for i in self.ids if i > after]
        return len(rest), [(str(i), {"company_id": str(1000 + i)}) for i in rest[:limit]]


@dataclass
class Clock:
    """A fake clock; sleeping moves it."""

    now: float = START

    def __call__(self) -> float:
        """Now."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """Advance."""
        self.now += seconds


def runner(
    store: MemoryBackfills,
    search: FakeSearch,
    queued: list[str],
    clock: Clock,
    stop: Callable[[], bool] = lambda: False,
) -> BackfillRunner:
    """A runner whose enqueue records the events' object ids."""

    def enqueue(events: Sequence[CrmEvent], rules: RuleSet, now: float) -> int:
        """Record and count."""
        queued.extend(e.object_id or "" for e in events)
        return len(events)

    return BackfillRunner(
        store=store,
        search=search,
        limiter=MemoryLimiter(clock=clock),
        search_limit=RateLimit(5, 1.0),
        enqueue=enqueue,
        count=lambda events, rules, now: len(events),
        clock=clock,
        sleep=clock.sleep,
        stop=stop,
    )


def start(store: MemoryBackfills, run: BackfillRunner, **extra: Any) -> Backfill:
    """A new deal-company backfill."""
    return run.start(Backfill(id="b1", rule="deal-company", object_type="deals", **extra))


CREDENTIAL = StaticCredentials("pat-x").for_portal(None)


class TestWalk:
    """The walk: pages within the search limit, checkpoints, resume, cancel, dry run."""

    def test_every_record_is_read_once_in_pages_within_the_search_limit(self) -> None:
        """450 records: three pages of at most 200, each checkpointed; waiting for tokens moves the clock."""
        store, queued, clock = MemoryBackfills(), [], Clock()
        search = FakeSearch(list(range(1, 451)))
        run = runner(store, search, queued, clock)
        ended = run.run(start(store, run), BackfillPlan.make(rule("deal-company")), CREDENTIAL)
        assert ended.state == "done" and ended.read == 450 and ended.queued == 450
        assert queued == [str(i) for i in range(1, 451)]
        assert search.queries == ["0", "200", "400", "450"]
        assert store.saved["b1"].cursor == "450"

    def test_an_interrupted_walk_resumes_from_its_checkpoint(self) -> None:
        """Ctrl-C after the first page: state interrupted; resuming reads only the records after it."""
        store, queued, clock = MemoryBackfills(), [], Clock()
        run = runner(store, FakeSearch(list(range(1, 301))), queued, clock)
        walk = BackfillPlan.make(rule("deal-company"))

        def interrupt(_: Backfill) -> None:
            """The operator presses Ctrl-C."""
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            run.run(start(store, run), walk, CREDENTIAL, on_page=interrupt)
        saved = store.get("b1")
        assert saved is not None and (saved.state, saved.cursor, saved.read) == ("interrupted", "200", 200)
        ended = run.run(saved, walk, CREDENTIAL)
        assert ended.state == "done" and ended.read == 300 and queued == [str(i) for i in range(1, 301)]

    def test_a_stop_asked_for_ends_the_walk_interrupted_after_the_page_in_hand(self) -> None:
        """A stop (Ctrl-C in the CLI) asked during the first page: that page is checkpointed, the walk ends
        interrupted without an exception, and resuming reads only the records after it."""
        store, queued, clock = MemoryBackfills(), [], Clock()
        asked: list[bool] = []
        run = runner(store, FakeSearch(list(range(1, 301))), queued, clock, stop=lambda: bool(asked))
        walk = BackfillPlan.make(rule("deal-company"))
        ended = run.run(start(store, run), walk, CREDENTIAL, on_page=lambda _: asked.append(True))
        saved = store.get("b1")
        assert ended.state == "interrupted" and saved is not None
        assert (saved.state, saved.cursor, saved.read) == ("interrupted", "200", 200)
        asked.clear()
        resumed = run.run(saved, walk, CREDENTIAL)
        assert resumed.state == "done" and resumed.read == 300 and queued == [str(i) for i in range(1, 301)]

    def test_a_cancel_stops_the_walk_before_its_next_page(self) -> None:
        """A cancel requested during the first page leaves the walk cancelled with that page counted."""
        store, queued, clock = MemoryBackfills(), [], Clock()
        run = runner(store, FakeSearch(list(range(1, 301))), queued, clock)
        ended = run.run(
            start(store, run),
            BackfillPlan.make(rule("deal-company")),
            CREDENTIAL,
            on_page=lambda b: store.request_cancel(b.id) and None,
        )
        assert (ended.state, ended.read) == ("cancelled", 200)

    def test_the_limit_bounds_what_is_read(self) -> None:
        """--limit 250: one page of 200, one of 50."""
        store, queued, clock = MemoryBackfills(), [], Clock()
        search = FakeSearch(list(range(1, 1001)))
        run = runner(store, search, queued, clock)
        ended = run.run(start(store, run, limit=250), BackfillPlan.make(rule("deal-company")), CREDENTIAL)
        assert ended.read == 250 and len(queued) == 250 and ended.state == "done"

    def test_a_dry_run_counts_without_queueing(self) -> None:
        """Nothing reaches intake; the count of what would be queued is kept."""
        store, queued, clock = MemoryBackfills(), [], Clock()
        run = runner(store, FakeSearch([1, 2, 3]), queued, clock)
        ended = run.run(start(store, run, dry_run=True), BackfillPlan.make(rule("deal-company")), CREDENTIAL)
        assert queued == [] and ended.queued == 3

    def test_transient_errors_are_waited_out_and_a_refusal_fails_resumably(self) -> None:
        """A 503 is retried after a wait; a 400 stops the walk as failed, its cursor kept."""
        store, queued, clock = MemoryBackfills(), [], Clock()
        search = FakeSearch([1, 2], errors=[ServerError(HubSpotErrorDetail(status=503))])
        run = runner(store, search, queued, clock)
        assert run.run(start(store, run), BackfillPlan.make(rule("deal-company")), CREDENTIAL).state == "done"
        refused = FakeSearch([1], errors=[ValidationRejectedError(HubSpotErrorDetail(status=400, message="bad"))])
        run = runner(MemoryBackfills(), refused, [], clock)
        ended = run.run(
            run.start(Backfill(id="b2", rule="deal-company", object_type="deals")),
            BackfillPlan.make(rule("deal-company")),
            CREDENTIAL,
        )
        assert ended.state == "failed" and "bad" in (ended.error or "")

    def test_the_progress_line_shows_counts_rate_and_time_left(self) -> None:
        """Read, expected, queued, rate per second and time left at that rate."""
        line = progress_line(
            Backfill(id="b", rule="r", object_type="deals", read=100, total=400, queued=90, started_ms=0),
            10_000,
        )
        assert "100/400 records" in line and "90 associations queued" in line and "10/s" in line
        assert "0m30s left" in line
