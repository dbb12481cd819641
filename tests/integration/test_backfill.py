"""A backfill end to end: the CLI walks the simulator's records, is interrupted with Ctrl-C, is resumed,
and a worker links each record's company exactly once."""

from __future__ import annotations

import json
import signal
from dataclasses import replace
from pathlib import Path

import pytest
import redis as redis_lib

from hublink.config.settings import Settings
from hublink.domain.limits import RateLimit
from hublink.ops.backfill import RedisBackfills
from hublink.store.keys import Keys
from tests.integration.conftest import Sim, Stack
from tests.support.processes import sigint_ignored, wait_for
from web import create_app
from web.admin import dashboard
from web.parts import parts

pytestmark = pytest.mark.integration

RECORDS = 450
RULES = """
rules:
  - name: deal-company
    source: hubspot
    when: {subscriptionType: deal.creation}
    associations:
      - from: {objectType: deals, id: objectId}
        to: {objectType: companies, id: company_id}
"""


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """The integration settings (test's Redis, the simulator, quick retries) with the rule file to backfill."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    return replace(settings, rules_file=str(rules), hubspot_search_rate_limit=RateLimit(50, 1.0))


def seed(sim: Sim) -> None:
    """Deals 1..RECORDS, each naming its company (10000 + id), created in id order."""
    deals = [
        {
            "objectType": "deals",
            "id": str(i),
            "properties": {"company_id": str(10_000 + i), "createdate": "1700000000000"},
        }
        for i in range(1, RECORDS + 1)
    ]
    sim.post("/_sim/records", {"records": deals})


class TestBackfillEndToEnd:
    """Interrupted and resumed, every association is queued and created exactly once."""

    @pytest.mark.interrupts
    def test_an_interrupted_backfill_resumes_and_links_each_record_once(
        self, settings: Settings, sim: Sim, stack: Stack, redis_client: redis_lib.Redis, tmp_path: Path
    ) -> None:
        """Ctrl-C after the first page keeps the cursor; --resume reads the rest; a worker links all 450."""
        seed(sim)
        # One search a second in the first run, so that Ctrl-C lands between its pages. Started as a
        # background shell starts it (SIGINT ignored, inherited through exec): the stack's processes get
        # SIGINT back at its default, so the Ctrl-C below works whatever terminal runs the tests.
        with sigint_ignored():
            first = stack.command(
                "backfill",
                ["-m", "flask", "backfill", "deal-company"],
                HUBSPOT_SEARCH_RATE_LIMIT="1/2s",
                FLASK_APP="web",
            )
        store = RedisBackfills(redis_client, Keys("hl:"))
        started = wait_for(lambda: [b for b in store.recent() if b.read >= 200], timeout=30, what="the first page")
        first.signal(signal.SIGINT)
        assert first.popen.wait(timeout=20) == 130, first.output()
        (interrupted,) = started
        saved = store.get(interrupted.id)
        assert saved is not None and saved.state == "interrupted" and saved.read < RECORDS, first.output()

        app = create_app(settings)
        result = app.test_cli_runner().invoke(args=["backfill", "deal-company", "--resume", saved.id])
        assert result.exit_code == 0, result.output
        ended = store.get(saved.id)
        assert ended is not None and (ended.state, ended.read, ended.queued) == ("done", RECORDS, RECORDS)

        stack.worker()
        wanted = {("deals", str(i), "companies", str(10_000 + i)) for i in range(1, RECORDS + 1)}
        wait_for(lambda: wanted <= sim.pairs(), timeout=60, what="every company association")
        created = [a for a in sim.associations() if (a["fromObjectType"], a["toObjectType"]) == ("deals", "companies")]
        assert len(created) == RECORDS
        enqueued = {k.decode(): int(v) for k, v in redis_client.hgetall("hl:m:associations_enqueued").items()}
        assert sum(enqueued.values()) == RECORDS, json.dumps(enqueued)

    def test_a_dry_run_reads_and_queues_nothing(
        self, settings: Settings, sim: Sim, redis_client: redis_lib.Redis
    ) -> None:
        """--dry-run reports what it would queue and leaves the lanes empty."""
        seed(sim)
        result = (
            create_app(settings)
            .test_cli_runner()
            .invoke(args=["backfill", "deal-company", "--dry-run", "--limit", "10"])
        )
        assert result.exit_code == 0, result.output
        assert "10 records read, 10 associations would be queued" in result.output
        assert not redis_client.keys("hl:lane:*") and not redis_client.keys("hl:q:*")

    def test_the_dashboard_lists_a_backfill_with_its_progress_and_a_cancel_flags_it(
        self, settings: Settings, sim: Sim, redis_client: redis_lib.Redis
    ) -> None:
        """The overview shows the newest backfills; backfill cancel sets the flag a running walk checks."""
        seed(sim)
        app = create_app(settings)
        app.test_cli_runner().invoke(args=["backfill", "deal-company", "--dry-run", "--limit", "5"])
        (listed,) = RedisBackfills(redis_client, Keys("hl:")).recent()
        with app.app_context():
            p = parts()
            shown = dashboard.overview(
                p.redis, p.keys, queue_name=settings.queue_name, dead_letters=p.dead_letters, metrics=p.metrics
            ).backfills
        assert shown[0]["id"] == listed.id and "5/5 records" in shown[0]["progress"]
        result = app.test_cli_runner().invoke(args=["backfill", "cancel", listed.id])
        assert result.exit_code == 0 and RedisBackfills(redis_client, Keys("hl:")).get(listed.id).cancel_requested  # type: ignore[union-attr]
