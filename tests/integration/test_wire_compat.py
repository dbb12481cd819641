"""Wire formats outlive deploys: what the previous version left in Redis is drained and read by this one.

The raw values below are written exactly as the version before the pipeline-stage layout wrote them
(queued associations, an inbox entry of the direct API, a version-1 dead letter with its snake_case
record), straight into Redis, never through this version's code.
"""

from __future__ import annotations

import json
import time

import redis as redis_lib
import requests

from tests.conftest import ADMIN_TOKEN
from tests.integration.conftest import Sim, Stack
from tests.support.processes import wait_for

LANE = "_|deals|contacts"


def previous_record(from_id: str, to_id: str) -> dict[str, object]:
    """An association as the previous version queued it (``AssociationRequest.as_record``, v 1)."""
    return {
        "from_object_type": "deals",
        "from_object_id": from_id,
        "to_object_type": "contacts",
        "to_object_id": to_id,
        "portal_id": None,
        "source": "api",
        "source_event_id": None,
        "received_at": time.time(),
        "occurred_at": None,
        "v": 1,
    }


def test_a_worker_drains_what_the_previous_version_queued(
    stack: Stack, sim: Sim, redis_client: redis_lib.Redis
) -> None:
    """Lane entries and an inbox entry written in the previous format all reach HubSpot."""
    now_ms = int(time.time() * 1000)
    for n in range(1, 4):
        association_id = f"{n:032x}"
        redis_client.hset(
            f"hl:a:{association_id}",
            mapping={"req": json.dumps(previous_record(str(n), str(100 + n))), "lane": LANE, "first_seen": now_ms},
        )
        redis_client.zadd(f"hl:lane:{LANE}", {association_id: now_ms})
    redis_client.zadd("hl:lanes", {LANE: now_ms})
    redis_client.rpush("hl:wake", LANE)
    body = json.dumps([["e" * 32, previous_record("7", "107")]])
    redis_client.xadd("hl:inbox", {"kind": "associations", "body": body, "at": repr(time.time()), "rules": ""})
    stack.worker()
    expected = {("deals", str(n), "contacts", str(100 + n)) for n in (1, 2, 3, 7)}
    wait_for(lambda: expected <= sim.pairs(), timeout=30, what="the previous version's work in the simulator")


def test_a_previous_version_dead_letter_reads_and_replays(
    stack: Stack, sim: Sim, redis_client: redis_lib.Redis
) -> None:
    """A version-1 dead letter (snake_case record) is listed, shown camelCase, and replays to HubSpot."""
    letter_id = "d" * 32
    letter = {
        "id": letter_id,
        "kind": "association",
        "association": {
            "portalId": None,
            "fromObjectType": "deals",
            "fromObjectId": "55",
            "toObjectType": "contacts",
            "toObjectId": "155",
        },
        "source": "api",
        "sourceEventId": None,
        "reason": "permanent: NotFoundError",
        "error": "NotFoundError",
        "status": 404,
        "category": "OBJECT_NOT_FOUND",
        "subCategory": None,
        "message": "not found",
        "correlationId": "c-1",
        "missingScopes": [],
        "attemptCount": 1,
        "attempts": [{"at": "2026-11-01T00:00:00.000Z", "outcome": "dead", "status": 404}],
        "replays": 0,
        "firstSeen": "2026-11-01T00:00:00.000Z",
        "firstSeenMs": 1_790_000_000_000,
        "lastSeen": "2026-11-01T00:00:00.000Z",
        "deadAt": "2026-11-01T00:00:00.000Z",
        "deadAtMs": 1_790_000_000_000,
        "record": previous_record("55", "155"),
    }
    redis_client.set(f"hl:dl:{letter_id}", json.dumps(letter))
    redis_client.zadd("hl:dlq", {letter_id: time.time() * 1000})
    web = stack.gunicorn()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    shown = requests.get(f"{web}/api/dead-letters/{letter_id}", headers=auth, timeout=5).json()
    assert shown["record"]["fromObjectId"] == "55" and shown["status"] == 404
    listed = requests.get(f"{web}/api/dead-letters", headers=auth, timeout=5).json()
    assert [item["id"] for item in listed["items"]] == [letter_id]
    assert requests.post(f"{web}/api/dead-letters/{letter_id}/replay", headers=auth, timeout=5).status_code == 202
    stack.worker()
    wait_for(lambda: ("deals", "55", "contacts", "155") in sim.pairs(), timeout=30, what="the replayed letter linked")
