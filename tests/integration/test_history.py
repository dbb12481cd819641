"""The event history on a real Redis: what the expansion keeps, the API's filters and paging, the CLI, the caps."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis as redis_lib
from flask import Flask

from hublink.config.rules_file import RulesFile
from hublink.config.settings import Settings
from hublink.domain.associations import AssociationRequest
from hublink.domain.events import CrmEvent
from hublink.intake.expansion import Expansion
from hublink.intake.history import RECORD_OVERHEAD_BYTES, EventFilter, EventHistory, EventOutcome
from hublink.intake.inbox import Inbox
from hublink.lanes import LaneStore
from hublink.ops.metrics import Metrics
from hublink.store.connections import connect
from hublink.store.keys import Keys
from tests.conftest import ADMIN_TOKEN
from tests.integration.test_webhooks import RULES, hubspot_event
from web import create_app
from worker.loops import Expander

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def settings(make_settings: Callable[..., Settings], redis_url: str, tmp_path: Path) -> Settings:
    """Settings with the webhook tests' rules."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    return make_settings(redis_url=redis_url, rules_file=str(rules))


def make_app(settings: Settings) -> Flask:
    """The web app with the secrets the rules file names."""
    return create_app(settings, environ={"TEST_FORM_SECRET": "form-secret"})


def expander(settings: Settings) -> tuple[Inbox, Expander]:
    """The inbox and a worker's expander that keeps the history, as the worker's runtime builds them."""
    redis = connect(settings.redis_url, timeout_s=5)
    keys = Keys(settings.redis_prefix)
    rules_file = RulesFile.read(settings.rules_file)
    inbox = Inbox(redis, keys, claim_idle_s=30, rules_tag=rules_file.tag)
    lanes = LaneStore(redis, keys, lease_s=30, dedup_window_s=3600)
    history = EventHistory(redis, keys, days=settings.history_days, max_mb=settings.history_max_mb)
    expansion = Expansion(
        inbox, rules_file.rules, lanes, Metrics(redis, keys), rules_tag=rules_file.tag, history=history
    )
    return inbox, Expander(inbox, expansion, consumer="tests")


def expand(exp: Expander) -> None:
    """Run the expander until the inbox is empty."""
    while exp.step(block_ms=1):
        pass


def seed(settings: Settings) -> dict[str, str]:
    """Four requests: a matched batch (with a problem and an unmatched event), its redelivery, an API request."""
    inbox, exp = expander(settings)
    now = time.time()
    first = [
        hubspot_event(1, 5001),
        hubspot_event(2, 5002, subscriptionType="contact.creation"),
        hubspot_event(3, 5003, to_contact="not-an-id"),
    ]
    ids = {"batch": inbox.add_hubspot(json.dumps(first).encode(), received_at=now - 3)}
    expand(exp)
    ids["again"] = inbox.add_hubspot(json.dumps([hubspot_event(1, 5001)]).encode(), received_at=now - 2)
    expand(exp)
    request = AssociationRequest.create(
        from_object_type="deals",
        from_object_id="5001",
        to_object_type="companies",
        to_object_id="9",
        source="api",
        received_at=now - 1,
    )
    ids["api"] = inbox.add_associations([("a" * 32, request)], received_at=now - 1)
    expand(exp)
    return ids


class TestWhatIsKept:
    """Each event with its outcome, rules and association ids."""

    def test_every_event_is_kept_with_its_outcome(self, settings: Settings) -> None:
        """Accepted (rule, pair, id), unmatched, problem, duplicate and the API's request are all listed."""
        ids = seed(settings)
        client = make_app(settings).test_client()
        body = client.get("/api/events", headers=AUTH).get_json()
        rows = {(e["entry"], e["index"]): e for e in body["items"]}
        assert body["count"] == 5 and body["next_cursor"] is None
        accepted = rows[(ids["batch"], 0)]
        assert accepted["outcome"] == "accepted" and accepted["rules"] == ["deal-created"]
        assert accepted["source"] == "hubspot" and accepted["portal_id"] == "62515"
        assert accepted["subscription_type"] == "deal.creation"
        assert (accepted["object_type"], accepted["object_id"]) == ("deals", "5001")
        [produced] = accepted["associations"]
        assert (produced["from"], produced["to"]) == ("deals/5001", "contacts/7001") and len(produced["id"]) == 32
        assert rows[(ids["batch"], 1)]["outcome"] == "unmatched"
        problem = rows[(ids["batch"], 2)]
        assert problem["outcome"] == "problem" and problem["rules"] == ["deal-created"] and problem["problems"]
        assert rows[(ids["again"], 0)]["outcome"] == "duplicate" and rows[(ids["again"], 0)]["associations"] == []
        api = rows[(ids["api"], 0)]
        assert api["source"] == "api" and api["associations"] == [
            {"id": "a" * 32, "from": "deals/5001", "to": "companies/9"}
        ]
        assert [e["entry"] for e in body["items"]] == [
            ids["api"],
            ids["again"],
            ids["batch"],
            ids["batch"],
            ids["batch"],
        ]

    def test_one_request_or_one_event_by_id(self, settings: Settings) -> None:
        """GET /api/events/<entry> has every event; <entry>.<i> one; an unknown id is a 404."""
        ids = seed(settings)
        client = make_app(settings).test_client()
        whole = client.get(f"/api/events/{ids['batch']}", headers=AUTH).get_json()
        assert [e["outcome"] for e in whole["events"]] == ["accepted", "unmatched", "problem"]
        one = client.get(f"/api/events/{ids['batch']}.1", headers=AUTH).get_json()
        assert one["outcome"] == "unmatched"
        missing = client.get("/api/events/0-0", headers=AUTH)
        assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
        assert client.get("/api/events").status_code == 401


class TestFiltersAndPaging:
    """The API's filters, each alone, and cursor paging over everything."""

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("outcome=duplicate", {("again", 0)}),
            ("object_type=deals&object_id=5001", {("batch", 0), ("again", 0), ("api", 0)}),
            ("object_type=contacts&object_id=7001", {("batch", 0)}),
            ("object_type=0-3&object_id=5003", {("batch", 2)}),
            ("object_type=contact&object_id=5002", {("batch", 1)}),
            ("subscription_type=contact.creation", {("batch", 1)}),
            ("portal=62515&outcome=accepted", {("batch", 0)}),
            ("source=api", {("api", 0)}),
        ],
    )
    def test_each_filter_narrows_the_list(self, settings: Settings, query: str, expected: set[tuple[str, int]]) -> None:
        """Each filter keeps exactly the events it names."""
        ids = seed(settings)
        names = {v: k for k, v in ids.items()}
        items = make_app(settings).test_client().get(f"/api/events?{query}", headers=AUTH).get_json()["items"]
        assert {(names[e["entry"]], e["index"]) for e in items} == expected

    def test_time_filters_and_bad_filters(self, settings: Settings) -> None:
        """until before everything lists nothing; a bad outcome or cursor is a 400 naming it."""
        seed(settings)
        client = make_app(settings).test_client()
        assert client.get("/api/events?until=2000-01-01T00:00:00Z", headers=AUTH).get_json()["items"] == []
        bad = client.get("/api/events?outcome=lost", headers=AUTH)
        assert bad.status_code == 400 and "outcome" in bad.get_json()["error"]["message"]
        assert client.get("/api/events?cursor=nonsense", headers=AUTH).status_code == 400

    def test_cursor_paging_lists_every_event_once(self, settings: Settings) -> None:
        """Pages of 2 give the five events, in order, each once."""
        seed(settings)
        client = make_app(settings).test_client()
        everything = client.get("/api/events", headers=AUTH).get_json()["items"]
        seen, cursor = [], None
        while True:
            page = client.get("/api/events?limit=2" + (f"&cursor={cursor}" if cursor else ""), headers=AUTH).get_json()
            seen += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert [e["id"] for e in seen] == [e["id"] for e in everything]


class TestTheCli:
    """flask --app web events list|show."""

    def test_list_and_show(self, settings: Settings) -> None:
        """list prints a row per event (filters as options); show prints the request as JSON."""
        ids = seed(settings)
        runner = make_app(settings).test_cli_runner()
        listed = runner.invoke(args=["events", "list", "--outcome", "unmatched"])
        assert listed.exit_code == 0 and f"{ids['batch']}.1" in listed.output and "unmatched" in listed.output
        assert f"{ids['batch']}.0" not in listed.output
        shown = runner.invoke(args=["events", "show", ids["again"]])
        assert shown.exit_code == 0 and json.loads(shown.output)["events"][0]["outcome"] == "duplicate"
        assert runner.invoke(args=["events", "show", "0-0"]).exit_code != 0


class TestTheCaps:
    """Kept for the window, within the size cap: the oldest go first and are counted."""

    def test_the_size_cap_drops_the_oldest_first_and_counts_them(self, redis_client: redis_lib.Redis) -> None:
        """With room for a few records, writing 50 keeps the newest, drops the rest, and counts them."""
        keys = Keys("hl:")
        history = EventHistory(redis_client, keys, max_mb=2000 / 1024 / 1024)
        for n in range(50):
            history.record(f"{1000 + n}-0", 1_800_000_000 + n, "hubspot", [EventOutcome(0, "unmatched")])
        count, size, dropped = history.stats()
        assert 0 < count < 50 and dropped == 50 - count and size <= 2000
        assert history.entry("1049-0") is not None and history.entry("1000-0") is None

    def test_records_older_than_the_window_leave(self, redis_client: redis_lib.Redis) -> None:
        """A record older than HUBLINK_HISTORY_DAYS is removed by the next write, and not counted as dropped."""
        history = EventHistory(redis_client, Keys("hl:"), days=1)
        history.record("1-0", 1_800_000_000, "hubspot", [EventOutcome(0, "unmatched")])
        history.record("2-0", 1_800_000_000 + 2 * 86400, "hubspot", [EventOutcome(0, "unmatched")])
        value = len(redis_client.get("hl:ev:2-0") or b"")
        kept = value + value // 8 + RECORD_OVERHEAD_BYTES
        assert history.entry("1-0") is None and history.stats() == (1, kept, 0)


def api_request(history: EventHistory, entry_id: str, at: float, first_deal: int, n: int = 100) -> None:
    """Keep one direct-API request of ``n`` associations, deals/<first_deal + i> to contacts/<7_000_000 + ...>."""
    produced = tuple(
        (
            f"{first_deal + i:032x}",
            AssociationRequest.create(
                from_object_type="deals",
                from_object_id=str(first_deal + i),
                to_object_type="contacts",
                to_object_id=str(7_000_000 + first_deal + i),
                source="api",
                received_at=at,
            ),
        )
        for i in range(n)
    )
    history.record(
        entry_id, at, "associations", [EventOutcome(0, "accepted", CrmEvent(source="api"), produced=produced)]
    )


def index_members(redis_client: redis_lib.Redis) -> int:
    """Members in every bucket of the record index."""
    buckets = [k for k in redis_client.scan_iter(match="hl:evr:*")]
    return sum(int(redis_client.zcard(k)) for k in buckets)


class TestTheIndex:
    """Every record a kept request names is found, however far the index has split."""

    def test_every_record_is_found_after_many_splits_and_buckets_stay_small(
        self, redis_client: redis_lib.Redis
    ) -> None:
        """300 requests of 100 (60,000 index members): each deal and contact finds its request; no bucket is big."""
        history = EventHistory(redis_client, Keys("hl:"))
        at = time.time()
        for n in range(300):
            api_request(history, f"{1_800_000_000_000 + n}-0", at, 1_000_000 + n * 100)
        assert int(redis_client.hget("hl:evs:index", "n") or 0) == index_members(redis_client) == 60_000
        buckets = [k for k in redis_client.scan_iter(match="hl:evr:*")]
        assert len(buckets) > 1000
        assert {redis_client.object("encoding", k) for k in buckets} == {b"listpack"}
        for n in range(0, 300, 7):
            deal = 1_000_000 + n * 100 + n % 100
            entry = f"{1_800_000_000_000 + n}-0"
            assert [e for _, e in history.entries_naming(f"deals/{deal}")] == [entry]
            assert entry in [e for _, e in history.entries_naming(f"contacts/{7_000_000 + deal}")]
        assert history.entries_naming("deals/1") == []

    def test_a_record_named_by_several_requests_lists_them_newest_first(self, redis_client: redis_lib.Redis) -> None:
        """Three requests naming deals/5: the index gives all three, newest first; the API lists their events."""
        history = EventHistory(redis_client, Keys("hl:"))
        for n in range(3):
            api_request(history, f"{1_800_000_000_000 + n}-{n}", 1_800_000_000 + n, 5, n=1)
        assert [e for _, e in history.entries_naming("deals/5")] == [
            "1800000000002-2",
            "1800000000001-1",
            "1800000000000-0",
        ]
        page, _ = history.page(EventFilter(object_type="deals", object_id="5"), limit=2)
        assert [e["entry"] for e in page] == ["1800000000002-2", "1800000000001-1"]


class TestTheCapCountsTheIndex:
    """HUBLINK_HISTORY_MAX_MB bounds the records and their index together."""

    def test_filling_the_cap_keeps_every_history_key_within_it(self, redis_client: redis_lib.Redis) -> None:
        """400 requests of 100 into a 0.5 MB cap: the oldest go with their index members; Redis holds under 0.5 MB."""
        cap_mb = 0.5
        history = EventHistory(redis_client, Keys("hl:"), max_mb=cap_mb)
        at = time.time()
        for n in range(400):
            api_request(history, f"{1_800_000_000_000 + n}-0", at + n / 1000, 1_000_000 + n * 100)
        count, size, dropped = history.stats()
        assert dropped > 0 and count + dropped == 400 and size <= cap_mb * 2**20
        held = sum(int(redis_client.memory_usage(k, samples=0) or 0) for k in redis_client.scan_iter(match="hl:ev*"))
        assert held <= cap_mb * 2**20
        # What is left is indexed, and nothing else is: the dropped requests took their members along.
        assert index_members(redis_client) == int(redis_client.hget("hl:evs:index", "n") or 0) == count * 200
        newest, oldest = 1_000_000 + 399 * 100, 1_000_000
        assert [e for _, e in history.entries_naming(f"deals/{newest}")] == [f"{1_800_000_000_000 + 399}-0"]
        assert history.entries_naming(f"deals/{oldest}") == []

    def test_records_past_the_window_leave_with_their_index_members(self, redis_client: redis_lib.Redis) -> None:
        """A request older than HUBLINK_HISTORY_DAYS leaves at the next write, and so do its 200 index members."""
        history = EventHistory(redis_client, Keys("hl:"), days=1)
        api_request(history, "1-0", 1_800_000_000, 1_000)
        assert index_members(redis_client) == 200
        api_request(history, "2-0", 1_800_000_000 + 2 * 86400, 5_000)
        assert index_members(redis_client) == 200 and history.entries_naming("deals/1000") == []
        assert [e for _, e in history.entries_naming("deals/5000")] == ["2-0"]
