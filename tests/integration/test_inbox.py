"""The inbox between the webhooks and the rules, on a real Redis: every accepted request is expanded exactly once.

An entry is acknowledged in the same atomic step that stores its work; an entry whose reader died is taken
over by another expander; a slow reader whose entry was taken over stores nothing twice; an entry that
cannot be expanded is set aside for inspection instead of blocking the inbox.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import redis as redis_lib

from hublink.config.settings import Settings
from hublink.domain.errors import StoreUnavailableError
from hublink.domain.events import parse_hubspot_batch
from hublink.intake.inbox import MAX_DELIVERIES, Inbox, InboxEntry
from hublink.store.connections import connect
from hublink.store.keys import Keys
from tests.integration.helpers import make_expander, waiting
from tests.integration.test_webhooks import RULES, hubspot_event
from tests.support.processes import wait_for

pytestmark = pytest.mark.integration

LANE = "62515|deals|contacts"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], redis_url: str, tmp_path: Path) -> Settings:
    """Settings with the webhook tests' rules."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    return make_settings(redis_url=redis_url, rules_file=str(rules))


@pytest.fixture
def inbox(settings: Settings) -> Inbox:
    """The inbox as the web process uses it."""
    return Inbox(connect(settings.redis_url, timeout_s=5), Keys(settings.redis_prefix), claim_idle_s=30)


def add_batch(inbox: Inbox, *event_ids: int) -> str:
    """Accept a HubSpot batch the way the webhook does (validated, stored as received)."""
    raw = json.dumps([hubspot_event(i, 5000 + i) for i in event_ids]).encode()
    assert len(parse_hubspot_batch(json.loads(raw))) == len(event_ids)
    return inbox.add_hubspot(raw, received_at=1764331200.0)


def test_an_entry_is_deleted_in_the_step_that_stores_its_work(
    settings: Settings, inbox: Inbox, redis_client: redis_lib.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """After expansion the entry is gone, its three associations are in their lane, and the log names the entry."""
    entry_id = add_batch(inbox, 1, 2, 3)
    with caplog.at_level(logging.INFO, logger="hublink.intake.expansion"):
        [report] = make_expander(settings).step(block_ms=1)
    [line] = [r for r in caplog.records if r.getMessage() == "inbox entry expanded"]
    assert (line.entry, line.associations, line.duplicates) == (entry_id, 3, 0)  # type: ignore[attr-defined]
    assert report.associations == 3
    assert len(waiting(redis_client, LANE)) == 3
    assert redis_client.xlen("hl:inbox") == 0
    assert redis_client.xpending("hl:inbox", "expanders")["pending"] == 0


def test_an_entry_whose_reader_died_is_taken_over_and_expanded_once(
    settings: Settings, inbox: Inbox, redis_client: redis_lib.Redis
) -> None:
    """A reads the entry and dies; B takes it over after the claim time; A's late attempt stores nothing."""
    add_batch(inbox, 1, 2)
    inbox.ensure_group()
    [read_by_a] = inbox.read("a", count=10, block_ms=1)  # A "crashes" here, before expanding
    b = make_expander(settings, consumer="b", claim_idle_s=0.001, reclaim_interval_s=0)
    [report] = wait_for(lambda: b.step(block_ms=1), timeout=5, what="B to take the entry over")
    assert report.associations == 2
    assert len(waiting(redis_client, LANE)) == 2
    late = make_expander(settings, consumer="a").expansion.expand(read_by_a)  # A was only slow, and wakes up
    assert late is not None
    assert late.already_expanded
    assert len(waiting(redis_client, LANE)) == 2
    assert redis_client.hgetall("hl:m:events_received") == {b"source=hubspot,outcome=accepted": b"2"}


def test_an_unreadable_entry_is_set_aside_with_its_reason(
    settings: Settings, inbox: Inbox, redis_client: redis_lib.Redis
) -> None:
    """An entry of a kind this version cannot read moves to inbox:failed; the entries behind it still expand."""
    redis_client.xadd("hl:inbox", {"kind": "from-the-future", "body": b"[]", "at": "1"})
    add_batch(inbox, 7)
    reports = make_expander(settings).step(block_ms=1)
    assert [r.associations for r in reports] == [1]
    [(_, fields)] = redis_client.xrange("hl:inbox:failed")
    assert fields[b"kind"] == b"from-the-future"
    assert b"unknown inbox entry kind" in fields[b"reason"]
    assert redis_client.xlen("hl:inbox") == 0
    assert redis_client.hgetall("hl:m:inbox_set_aside") == {b"kind=from-the-future": b"1"}


def test_an_entry_that_keeps_failing_is_set_aside_after_its_last_delivery(
    settings: Settings, inbox: Inbox, redis_client: redis_lib.Redis
) -> None:
    """Delivered more than MAX_DELIVERIES times, an entry is set aside rather than retried for ever."""
    entry_id = add_batch(inbox, 8)
    inbox.ensure_group()
    [entry] = inbox.read("a", count=10, block_ms=1)
    worn = InboxEntry(entry_id, entry.kind, entry.body, entry.received_at, deliveries=MAX_DELIVERIES + 1)
    assert make_expander(settings).expansion.expand(worn) is None
    assert len(waiting(redis_client, LANE)) == 0
    assert [f[b"entry"] for _, f in redis_client.xrange("hl:inbox:failed")] == [entry_id.encode()]
    assert redis_client.xlen("hl:inbox") == 0


def test_a_flushed_inbox_recreates_its_group_and_loses_nothing_added_later(
    settings: Settings, inbox: Inbox, redis_client: redis_lib.Redis
) -> None:
    """The consumer group comes back by itself after the stream is deleted; later entries are expanded."""
    expander = make_expander(settings)
    assert expander.step(block_ms=1) == []
    redis_client.delete("hl:inbox")
    assert expander.step(block_ms=1) == []
    add_batch(inbox, 9)
    assert [r.associations for r in expander.step(block_ms=1)] == [1]


def test_a_worker_back_under_its_name_finishes_what_it_held_at_once(
    settings: Settings, inbox: Inbox, redis_client: redis_lib.Redis
) -> None:
    """Entries delivered to a consumer that stopped are expanded by its successor of the same name, no claim wait."""
    add_batch(inbox, 1)
    add_batch(inbox, 2)
    inbox.ensure_group()
    assert len(inbox.read("w-1", count=10, block_ms=1)) == 2  # then the process stops
    successor = make_expander(settings, consumer="w-1", claim_idle_s=3600)
    assert [r.associations for r in successor.step(block_ms=1)] == [1, 1]
    assert len(waiting(redis_client, LANE)) == 2
    assert redis_client.xlen("hl:inbox") == 0


def test_each_take_over_counts_as_a_delivery(settings: Settings, redis_client: redis_lib.Redis) -> None:
    """Read once, then taken over twice: the entry says three deliveries (what MAX_DELIVERIES is held against)."""
    inbox = Inbox(connect(settings.redis_url, timeout_s=5), Keys(settings.redis_prefix), claim_idle_s=0.001)
    entry_id = add_batch(inbox, 4)
    inbox.ensure_group()
    inbox.read("a", count=10, block_ms=1)
    counts = []
    for taker in ("b", "c"):
        [taken] = wait_for(lambda t=taker: inbox.reclaim(t, count=10), timeout=5, what=f"{taker} to take over")
        assert taken.entry_id == entry_id
        counts.append(taken.deliveries)
    assert counts == [2, 3]


def test_a_worker_without_rules_leaves_events_accepted_under_rules_in_the_inbox(
    settings: Settings, redis_client: redis_lib.Redis
) -> None:
    """Acknowledging them would store every event as unmatched and seen, and lose HubSpot's resends too."""
    tagged = Inbox(connect(settings.redis_url, timeout_s=5), Keys(), claim_idle_s=30, rules_tag="abc123")
    add_batch(tagged, 1)
    bare = make_expander(replace(settings, rules_file=None))
    assert bare.step(block_ms=1) == []
    assert redis_client.xlen("hl:inbox") == 1
    assert len(waiting(redis_client, LANE)) == 0
    assert not redis_client.exists("hl:m:events_received")


def test_setting_aside_loses_to_a_slow_expander_that_finished(
    settings: Settings, inbox: Inbox, redis_client: redis_lib.Redis
) -> None:
    """An entry expanded in the meantime is not copied to inbox:failed: nothing is set aside twice or wrongly."""
    add_batch(inbox, 3)
    inbox.ensure_group()
    [entry] = inbox.read("a", count=10, block_ms=1)
    assert make_expander(settings, consumer="a").expansion.expand(entry) is not None  # the slow one finishes first
    assert inbox.fail(entry, "taken over too often") is False
    assert redis_client.xlen("hl:inbox:failed") == 0
    assert len(waiting(redis_client, LANE)) == 1


def test_an_entry_set_aside_can_be_replayed_from_the_cli(
    settings: Settings, inbox: Inbox, redis_client: redis_lib.Redis
) -> None:
    """`flask --app web inbox failed` lists it with its reason; `inbox replay --all` puts it back, and it expands."""
    from web import create_app

    redis_client.xadd("hl:inbox", {"kind": "events", "body": b"{}", "at": "1"})
    make_expander(settings).step(block_ms=1)
    runner = create_app(replace(settings, rules_file=None)).test_cli_runner()
    listed = runner.invoke(args=["inbox", "failed", "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)["failed"]
    assert row["kind"] == "events"
    assert "JSON array" in row["reason"]
    assert runner.invoke(args=["inbox", "replay"]).exit_code == 2  # names or --all
    replayed = runner.invoke(args=["inbox", "replay", row["id"]])
    assert replayed.output.strip() == "1 entries back in the inbox"
    assert redis_client.xlen("hl:inbox") == 1
    assert redis_client.xlen("hl:inbox:failed") == 0


def test_reading_ones_own_entries_again_counts_as_a_delivery(
    settings: Settings, inbox: Inbox, redis_client: redis_lib.Redis
) -> None:
    """A reader that keeps crashing on an entry (restarting under its name) sees the count rise to the limit."""
    add_batch(inbox, 5)
    inbox.ensure_group()
    inbox.read("w-1", count=10, block_ms=1)
    counts = [inbox.read("w-1", count=10, block_ms=0, own_pending=True)[0].deliveries for _ in range(MAX_DELIVERIES)]
    assert counts == list(range(2, MAX_DELIVERIES + 2))
    [worn] = inbox.read("w-1", count=10, block_ms=0, own_pending=True)
    assert make_expander(settings, consumer="w-1").expansion.expand(worn) is None
    assert redis_client.xlen("hl:inbox:failed") == 1
    assert len(waiting(redis_client, LANE)) == 0


def test_redis_outages_while_an_entry_is_held_do_not_count_towards_setting_it_aside(
    settings: Settings, inbox: Inbox, redis_client: redis_lib.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry whose expansion loses Redis more than MAX_DELIVERIES times is still expanded, never set aside."""
    add_batch(inbox, 5)
    expander = make_expander(settings, consumer="w-1")
    real_expand = expander.expansion.expand
    outages = MAX_DELIVERIES + 2

    def expand_losing_redis(entry: InboxEntry) -> object:
        """Lose Redis ``outages`` times, then expand for real."""
        nonlocal outages
        if outages:
            outages -= 1
            raise StoreUnavailableError("Redis did not answer: ConnectionError")
        return real_expand(entry)

    monkeypatch.setattr(expander.expansion, "expand", expand_losing_redis)
    for _ in range(MAX_DELIVERIES + 2):
        # What the expander's loop does with a turn that found Redis unavailable.
        with pytest.raises(StoreUnavailableError):
            expander.step(block_ms=1)
        expander.on_store_unavailable()
    [report] = expander.step(block_ms=1)
    assert report.associations == 1
    assert redis_client.xlen("hl:inbox:failed") == 0
    assert redis_client.xlen("hl:inbox") == 0
    assert len(waiting(redis_client, LANE)) == 1
