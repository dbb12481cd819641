"""The dead-letter store through its HTTP API and CLI: list, filter, show, replay (one and bulk), purge."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace

import pytest
import redis as redis_lib
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient

from hublink.config.settings import Settings
from hublink.domain.associations import AssociationRequest
from hublink.domain.dead_letter import DeadLetter
from hublink.lanes import Claimed, LaneStore, Outcome, PendingItem
from hublink.store.keys import Keys
from tests.conftest import ADMIN_TOKEN
from tests.integration.conftest import Sim, Stack
from tests.integration.helpers import assoc, post_associations, wait_settled, waiting
from web import create_app

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def seed(
    redis_url: str,
    n: int,
    *,
    source: str = "api",
    status: int = 404,
    category: str = "OBJECT_NOT_FOUND",
    start: int = 1,
) -> list[str]:
    """Dead-letter ``n`` associations through the real settle path; return their ids."""
    client = redis_lib.Redis.from_url(redis_url)
    lanes = LaneStore(client, Keys(), lease_s=30, dead_letter_ttl_s=86400, dead_letter_max=1_000_000)
    ids = []
    outcomes = []
    pending = []
    for i in range(start, start + n):
        request = AssociationRequest.create(
            from_object_type="deals",
            from_object_id=str(i),
            to_object_type="contacts",
            to_object_id="1",
            source=source,
            received_at=time.time(),
        )
        association_id = f"{i:032x}"
        pending.append(PendingItem(request, association_id=association_id))
        item = Claimed(association_id, request, 1, [], int(time.time() * 1000), 0)
        letter = {
            "id": association_id,
            "association": {
                "fromObjectType": "deals",
                "fromObjectId": str(i),
                "toObjectType": "contacts",
                "toObjectId": "1",
            },
            "source": source,
            "status": status,
            "category": category,
            "reason": "permanent: test",
            "attempts": [{"outcome": "dead", "status": status}],
            "attemptCount": 1,
            "deadAt": "x",
            "deadAtMs": 0,
            "record": request.as_record(),
            "replays": 0,
        }
        outcomes.append(Outcome(item=item, kind="dead", dead_letter=DeadLetter.from_wire(letter)))
        ids.append(association_id)
    lanes.enqueue_items([(None, pending)])
    lanes.claim("_|deals|contacts", len(pending))  # leased, as a drain holds what it settles
    for chunk in range(0, len(outcomes), 500):
        lanes.settle("_|deals|contacts", outcomes[chunk : chunk + 500])
    client.close()
    return ids


@pytest.fixture
def app(make_settings: Callable[..., Settings], redis_url: str) -> Flask:
    """An app on the test's database."""
    return create_app(make_settings(redis_url=redis_url))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Its test client."""
    return app.test_client()


class TestHttpApi:
    """/api/dead-letters."""

    def test_admin_token_is_required(self, client: FlaskClient) -> None:
        """Without a token the list answers 401; the API token is not enough: 403 naming the scope it lacks."""
        assert client.get("/api/dead-letters").status_code == 401
        refused = client.get("/api/dead-letters", headers={"Authorization": "Bearer test-api-token-0123456789"})
        assert refused.status_code == 403
        assert refused.get_json()["error"]["details"]["scope"] == "dead-letters:read"

    def test_list_filters_and_pages_with_a_cursor(self, client: FlaskClient, redis_url: str) -> None:
        """Filters select by source and status; pages of 3 walk all 7 entries once each."""
        seed(redis_url, 5, source="api", status=404)
        seed(redis_url, 2, source="hubspot", status=403, category="MISSING_SCOPES", start=100)
        assert client.get("/api/dead-letters?source=hubspot", headers=AUTH).get_json()["count"] == 2
        assert client.get("/api/dead-letters?status=404", headers=AUTH).get_json()["count"] == 5
        seen: list[str] = []
        cursor = None
        while True:
            url = "/api/dead-letters?limit=3" + (f"&cursor={cursor}" if cursor else "")
            page = client.get(url, headers=AUTH).get_json()
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert len(seen) == len(set(seen)) == 7

    def test_bad_parameters_are_400(self, client: FlaskClient) -> None:
        """A limit over 1,000, a bad cursor and a bad time are 400s."""
        for query in ("limit=1001", "cursor=%%%", "since=yesterday"):
            assert client.get(f"/api/dead-letters?{query}", headers=AUTH).status_code == 400

    def test_show_replay_and_delete_one(
        self, client: FlaskClient, redis_url: str, redis_client: redis_lib.Redis
    ) -> None:
        """One dead letter can be shown, replayed back into its lane (same id), and then no longer shown."""
        [letter_id] = seed(redis_url, 1)
        assert client.get(f"/api/dead-letters/{letter_id}", headers=AUTH).get_json()["status"] == 404
        assert client.post(f"/api/dead-letters/{letter_id}/replay", headers=AUTH).status_code == 202
        assert client.get(f"/api/dead-letters/{letter_id}", headers=AUTH).status_code == 404
        assert letter_id in waiting(redis_client, "_|deals|contacts")
        assert redis_client.hget(f"hl:a:{letter_id}", "replays") == b"1"
        assert client.delete(f"/api/dead-letters/{letter_id}", headers=AUTH).status_code == 404

    def test_bulk_replay_dry_run_then_for_real(
        self, client: FlaskClient, redis_url: str, redis_client: redis_lib.Redis
    ) -> None:
        """A dry run counts and changes nothing; the real replay moves exactly the matching ones."""
        seed(redis_url, 4, status=404)
        seed(redis_url, 3, status=403, start=50)
        dry = client.post("/api/dead-letters/replay?status=404&dry_run=true", headers=AUTH).get_json()
        assert dry == {"matched": 4, "replayed": 0, "dry_run": True}
        assert redis_client.zcard("hl:dlq") == 7
        real = client.post("/api/dead-letters/replay", json={"status": 404}, headers=AUTH)
        assert real.status_code == 202
        assert real.get_json()["replayed"] == 4
        assert redis_client.zcard("hl:dlq") == 3
        assert len(waiting(redis_client, "_|deals|contacts")) == 4

    def test_purge_needs_a_filter_or_all(
        self, client: FlaskClient, redis_url: str, redis_client: redis_lib.Redis
    ) -> None:
        """Purging without a filter needs all=true; with a filter it deletes only the matches."""
        seed(redis_url, 3, status=404)
        seed(redis_url, 2, status=403, start=50)
        assert client.delete("/api/dead-letters", headers=AUTH).status_code == 400
        assert client.delete("/api/dead-letters?status=403", headers=AUTH).get_json()["purged"] == 2
        assert client.delete("/api/dead-letters?all=true&dry_run=true", headers=AUTH).get_json()["matched"] == 3
        assert redis_client.zcard("hl:dlq") == 3
        assert client.delete("/api/dead-letters?all=true", headers=AUTH).get_json()["purged"] == 3
        assert redis_client.zcard("hl:dlq") == 0


class TestCli:
    """flask --app web dead-letters ..."""

    def invoke(self, app: Flask, *args: str) -> Result:
        """Run a CLI command in the app's context."""
        return app.test_cli_runner().invoke(args=["dead-letters", *args])

    def test_list_prints_a_table_or_json(self, app: Flask, redis_url: str) -> None:
        """list prints one row per letter with its association; --json prints the same as JSON."""
        ids = seed(redis_url, 2)
        table = self.invoke(app, "list")
        assert table.exit_code == 0
        assert "ASSOCIATION" in table.output
        assert "deals/1 -> contacts/1" in table.output
        as_json = json.loads(self.invoke(app, "list", "--json").output)
        assert {i["id"] for i in as_json["items"]} == set(ids)

    def test_show_replay_and_purge(self, app: Flask, redis_url: str, redis_client: redis_lib.Redis) -> None:
        """show prints a letter; bulk replay --dry-run counts; replay and purge act on their filters."""
        ids = seed(redis_url, 3, status=404)
        seed(redis_url, 2, status=403, start=50)
        assert ids[0] in self.invoke(app, "show", ids[0]).output
        assert "would replay 3" in self.invoke(app, "replay", "--status", "404", "--dry-run").output
        result = self.invoke(app, "replay", "--status", "404")
        assert result.exit_code == 0
        assert "replayed 3" in result.output
        assert self.invoke(app, "purge").exit_code != 0
        assert "purged 2" in self.invoke(app, "purge", "--status", "403").output
        assert redis_client.zcard("hl:dlq") == 0


class TestBulkReplayEndToEnd:
    """A large bulk replay drains through the rate limit, in chunks, to the simulator."""

    def test_bulk_replay_of_thousands_goes_through_the_rate_limit(self, stack: Stack, sim: Sim, redis_url: str) -> None:
        """2,000 dead letters replayed in bulk all reach the simulator, with no 429 and in batches."""
        stack.settings = replace(stack.settings, hubspot_rate_limit=stack.settings.hubspot_rate_limit)
        seed(redis_url, 2000)
        app = create_app(stack.settings)
        with app.test_client() as c:
            response = c.post("/api/dead-letters/replay", headers=AUTH)
        assert response.get_json()["replayed"] == 2000
        stack.worker()
        redis = redis_lib.Redis.from_url(redis_url)
        wait_settled(redis, timeout=60)
        assert len(sim.pairs()) == 2000
        seen = sim.get("/_sim/requests")
        assert seen["by_status"].get("429", 0) == 0
        assert seen["total"] <= 40  # batches of up to 100, not one request per association


def test_post_then_dead_letter_then_replay_succeeds(stack: Stack, sim: Sim) -> None:
    """A real 409 dead-letters an association; after the fault clears, its replay links it."""
    sim.faults(script=[{"status": 409}])
    stack.worker()
    url = stack.gunicorn()
    [association_id] = post_associations(url, [assoc(321, 654)])
    redis = redis_lib.Redis.from_url(stack.settings.redis_url)
    wait_settled(redis, timeout=30)
    assert redis.zscore("hl:dlq", association_id) is not None
    app = create_app(stack.settings)
    with app.test_client() as c:
        assert c.post(f"/api/dead-letters/{association_id}/replay", headers=AUTH).status_code == 202
    wait_settled(redis, timeout=30)
    assert ("deals", "321", "contacts", "654") in sim.pairs()
    assert redis.zscore("hl:dlq", association_id) is None
