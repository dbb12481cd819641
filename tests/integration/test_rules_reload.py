"""Following the published rules without a restart, and expanding each entry under the version it was accepted under.

A process's :class:`LiveRules` takes a newly published version into use within its check interval (one GET
of ``rules:published``, never more than one per interval); a worker's :class:`RulesByTag` expands an entry
tagged ``v1`` under version 1 even after version 2 was published.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib

from hublink.config.rules_file import RulesFile
from hublink.domain.associations import AssociationRequest
from hublink.domain.rules import RuleSet
from hublink.domain.sources import Sources
from hublink.intake.expansion import Expansion, IntakeReport
from hublink.intake.inbox import Inbox
from hublink.intake.live_rules import ActiveRules, LiveRules, RulesByTag, build_active, none_active
from hublink.intake.rule_versions import RuleVersions
from hublink.lanes import LaneStore
from hublink.ops.metrics import Metrics
from hublink.store.connections import connect
from hublink.store.keys import Keys
from tests.support.processes import wait_for
from worker.loops import Expander

pytestmark = pytest.mark.integration

PORTAL = 4242


def rules_linking(field: str, name: str = "deal-contact") -> str:
    """Rules linking each created deal to the contact named by ``field`` of the event."""
    return f"""\
rules:
  - name: {name}
    source: hubspot
    when: {{subscriptionType: deal.creation}}
    associations:
      - from: {{objectType: deals, id: objectId}}
        to: {{objectType: contacts, id: {field}}}
"""


V1 = rules_linking("firstContact")
V2 = rules_linking("secondContact")
WITH_SOURCES = V1 + "sources:\n  forms:\n    demo:\n      auth: {type: token, header: X-Token, token_env: DEMO_TOKEN}\n"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        """The time the test set."""
        return self.now


class CountingRedis(redis_lib.Redis):
    """A Redis client that counts the commands it sends (what a check costs)."""

    sent: int = 0

    def execute_command(self, *args: object, **options: object) -> object:
        """Count, then send."""
        self.sent += 1
        return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]


@pytest.fixture
def client(redis_url: str) -> Iterator[CountingRedis]:
    """A counting client on the test's database."""
    counting = CountingRedis(connection_pool=redis_lib.ConnectionPool.from_url(redis_url))
    yield counting
    counting.close()


@pytest.fixture
def versions(client: CountingRedis) -> RuleVersions:
    """The versions store."""
    return RuleVersions(client, Keys())


def file_of(text: str, tmp_path: Path) -> RulesFile:
    """A rules file holding ``text``."""
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return RulesFile.read(str(path))


class TestLiveRules:
    """A process follows the published version."""

    def test_the_file_source_never_asks_redis(self, tmp_path: Path) -> None:
        """With HUBLINK_RULES_SOURCE=file the rules are the file's for good: no store, no check."""
        rules_file = file_of(V1, tmp_path)
        live = LiveRules(ActiveRules.of_file(rules_file, Sources.empty()))
        assert live.source == "file" and live.versions is None
        assert live.current().tag == rules_file.tag and live.refresh().tag == rules_file.tag

    def test_the_file_seeds_version_one_at_the_first_check(self, versions: RuleVersions, tmp_path: Path) -> None:
        """The first check writes version 1 from the file and takes it into use (tag v1)."""
        rules_file = file_of(V1, tmp_path)
        live = LiveRules(ActiveRules.of_file(rules_file, Sources.empty()), versions=versions, seed=rules_file)
        active = live.current()
        assert (active.tag, active.version, active.text) == ("v1", 1, V1)
        published = versions.published()
        assert published is not None and published.author == "file"

    def test_a_publish_is_taken_within_the_interval_and_not_before(
        self, versions: RuleVersions, client: CountingRedis
    ) -> None:
        """Between checks nothing is sent to Redis; the check after the interval takes the new version."""
        versions.publish(V1, author="ana", comment="")
        clock = Clock()
        live = LiveRules(none_active(), versions=versions, clock=clock, interval_s=1.0)
        assert live.current().tag == "v1"
        versions.publish(V2, author="ana", comment="")
        client.sent = 0
        for _ in range(1000):
            assert live.current().tag == "v1"
        assert client.sent == 0  # a thousand requests, no round trip
        clock.now += 1.0
        assert live.current().tag == "v2"
        assert client.sent == 2  # GET rules:published, then HGETALL of the new version
        assert live.current().rules.rules[0].associations[0][1].expr.text == "secondContact"

    def test_a_publish_is_seen_within_two_seconds_on_the_real_clock(self, versions: RuleVersions) -> None:
        """With the default interval, a version published by another process is in use within 2 s."""
        versions.publish(V1, author="ana", comment="")
        live = LiveRules(none_active(), versions=versions)
        assert live.current().tag == "v1"
        versions.publish(V2, author="bo", comment="")
        published_at = time.monotonic()
        wait_for(lambda: live.current().tag == "v2", timeout=2.0, interval=0.05, what="v2 in use")
        assert time.monotonic() - published_at < 2.0

    def test_a_version_this_process_cannot_load_is_skipped(
        self, versions: RuleVersions, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Sources naming a variable this process lacks: the version is refused (logged once), v1 stays in use."""
        versions.publish(V1, author="ana", comment="")
        clock = Clock()
        live = LiveRules(none_active(), versions=versions, build=lambda v: build_active(v, {}), clock=clock)
        assert live.current().tag == "v1"
        versions.publish(WITH_SOURCES, author="ana", comment="")
        with caplog.at_level(logging.INFO, logger="hublink.intake.rules"):
            for _ in range(3):
                clock.now += 1.0
                assert live.current().tag == "v1"
        refused = [r for r in caplog.records if "cannot load" in r.getMessage()]
        assert len(refused) == 1
        assert refused[0].__dict__["rules"] == "v2" and "DEMO_TOKEN" in refused[0].__dict__["error"]

    def test_the_sources_of_a_published_version_are_read_with_the_environment(self, versions: RuleVersions) -> None:
        """The web builds each version's sources from its environment: a published form source is served."""
        versions.publish(WITH_SOURCES, author="ana", comment="")
        live = LiveRules(none_active(), versions=versions, build=lambda v: build_active(v, {"DEMO_TOKEN": "t0ken"}))
        assert set(live.current().sources.forms) == {"demo"}

    def test_without_redis_the_rules_in_hand_stay(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        """Redis away: the check fails quietly (one warning) and the rules in hand serve on."""
        rules_file = file_of(V1, tmp_path)
        dead = connect("redis://127.0.0.1:9/0", timeout_s=0.2)
        clock = Clock()
        live = LiveRules(
            ActiveRules.of_file(rules_file, Sources.empty()),
            versions=RuleVersions(dead, Keys()),
            seed=rules_file,
            clock=clock,
        )
        with caplog.at_level(logging.INFO, logger="hublink.intake.rules"):
            assert live.current().tag == rules_file.tag
            clock.now += 1.0
            assert live.current().tag == rules_file.tag
        assert len([r for r in caplog.records if "Redis unavailable" in r.getMessage()]) == 1


def creation(event_id: int, deal: int) -> dict[str, object]:
    """A deal.creation event naming two contacts: v1 links the first, v2 the second."""
    return {
        "eventId": event_id,
        "subscriptionId": 1,
        "portalId": PORTAL,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": "deal.creation",
        "objectId": deal,
        "firstContact": 100 + deal,
        "secondContact": 200 + deal,
    }


def linked_contacts(reports: list[IntakeReport]) -> list[str]:
    """The contact each expanded event was linked to."""
    return [
        work.to_object_id
        for report in reports
        for outcome in report.outcomes
        for _, work in outcome.produced
        if isinstance(work, AssociationRequest)
    ]


class TestTagPromise:
    """Each entry is expanded under exactly the version it was accepted under."""

    @pytest.fixture
    def parts(self, client: CountingRedis, versions: RuleVersions) -> tuple[LiveRules, Inbox, Expander]:
        """A web-side inbox tagging with the live version, and a worker's expander expanding by tag."""
        keys = Keys()
        live = LiveRules(none_active(), versions=versions, interval_s=0.0)
        web_inbox = Inbox(client, keys, claim_idle_s=30, rules_tag=lambda: live.current().tag)
        worker_inbox = Inbox(client, keys, claim_idle_s=30)
        lanes = LaneStore(client, keys, lease_s=30, dedup_window_s=3600)
        worker_live = LiveRules(none_active(), versions=versions)
        expansion = Expansion(
            worker_inbox,
            RuleSet.empty(),
            lanes,
            Metrics(client, keys),
            by_tag=RulesByTag(versions, worker_live),
        )
        return live, web_inbox, Expander(worker_inbox, expansion, consumer="t")

    def expand(self, expander: Expander) -> list[IntakeReport]:
        """Expand everything in the inbox."""
        reports: list[IntakeReport] = []
        while batch := expander.step(block_ms=1):
            reports.extend(batch)
        return reports

    def test_an_entry_accepted_under_v1_is_expanded_under_v1_after_v2_is_published(
        self, parts: tuple[LiveRules, Inbox, Expander], versions: RuleVersions
    ) -> None:
        """Accepted under v1, expanded after v2 was published: linked as v1 says; later entries as v2 says."""
        _, inbox, expander = parts
        versions.publish(V1, author="ana", comment="")
        inbox.add_hubspot(json.dumps([creation(1, 1)]).encode(), received_at=time.time())
        versions.publish(V2, author="ana", comment="")
        inbox.add_hubspot(json.dumps([creation(2, 2)]).encode(), received_at=time.time())
        reports = self.expand(expander)
        assert linked_contacts(reports) == ["101", "202"]

    def test_an_entry_accepted_with_no_rules_is_expanded_under_none(
        self, parts: tuple[LiveRules, Inbox, Expander], versions: RuleVersions
    ) -> None:
        """Accepted before anything was published (tag ""): unmatched, even once v1 exists."""
        _, inbox, expander = parts
        inbox.add_hubspot(json.dumps([creation(1, 1)]).encode(), received_at=time.time())
        versions.publish(V1, author="ana", comment="")
        reports = self.expand(expander)
        assert linked_contacts(reports) == [] and reports[0].unmatched == 1

    def test_an_entry_of_a_missing_version_is_set_aside(
        self, parts: tuple[LiveRules, Inbox, Expander], client: CountingRedis
    ) -> None:
        """A tag naming a version Redis does not hold: kept in inbox:failed with the reason, not guessed at."""
        _, _, expander = parts
        Inbox(client, Keys(), claim_idle_s=30, rules_tag="v9").add_hubspot(
            json.dumps([creation(1, 1)]).encode(), received_at=time.time()
        )
        assert self.expand(expander) == []
        failed = [fields for _, fields in client.xrange("hl:inbox:failed") or []]
        assert len(failed) == 1 and b"rules:v:9 is missing" in (failed[0] or {})[b"reason"]
        assert client.xlen("hl:inbox") == 0

    def test_an_entry_of_another_rules_file_follows_the_published_version(
        self,
        parts: tuple[LiveRules, Inbox, Expander],
        client: CountingRedis,
        versions: RuleVersions,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """A file digest this worker does not know (accepted before the switch): published rules, one warning."""
        _, _, expander = parts
        versions.publish(V2, author="ana", comment="")
        old = Inbox(client, Keys(), claim_idle_s=30, rules_tag="0123456789ab")
        old.add_hubspot(json.dumps([creation(1, 1)]).encode(), received_at=time.time())
        old.add_hubspot(json.dumps([creation(2, 2)]).encode(), received_at=time.time())
        with caplog.at_level(logging.INFO, logger="hublink.intake.rules"):
            reports = self.expand(expander)
        assert linked_contacts(reports) == ["201", "202"]
        assert len([r for r in caplog.records if "does not know" in r.getMessage()]) == 1

    def test_an_entry_of_this_workers_rules_file_is_expanded_under_it(
        self, client: CountingRedis, versions: RuleVersions, tmp_path: Path
    ) -> None:
        """Accepted under the file before the switch to redis: expanded under that file, not the published v2."""
        rules_file = file_of(V1, tmp_path)
        versions.publish(V2, author="ana", comment="")
        keys = Keys()
        Inbox(client, keys, claim_idle_s=30, rules_tag=rules_file.tag).add_hubspot(
            json.dumps([creation(1, 1)]).encode(), received_at=time.time()
        )
        inbox = Inbox(client, keys, claim_idle_s=30)
        live = LiveRules(ActiveRules.of_file(rules_file, Sources.empty()), versions=versions, seed=rules_file)
        expansion = Expansion(
            inbox,
            RuleSet.empty(),
            LaneStore(client, keys, lease_s=30, dedup_window_s=3600),
            Metrics(client, keys),
            by_tag=RulesByTag(versions, live, rules_file=rules_file),
        )
        assert linked_contacts(self.expand(Expander(inbox, expansion, consumer="t"))) == ["101"]
