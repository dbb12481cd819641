"""The promise, under everything at once: 30 % 5xx, 10 % hangs, 429 bursts, a worker SIGKILLed and Redis
killed and restarted mid-run. Every accepted association ends in the simulator or in the dead-letter store
with its reason; none in both, none in neither.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import redis as redis_lib

from tests.integration.conftest import Sim, Stack
from tests.integration.helpers import assert_exact_end_state, assoc, post_associations, wait_settled
from tests.support.processes import RedisServer, wait_for

pytestmark = pytest.mark.integration


def test_nothing_accepted_is_lost_under_chaos(stack: Stack, sim: Sim, tmp_path: Path) -> None:
    """300 associations through faults, a killed worker and a killed Redis: each ends in exactly one place."""
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    try:
        stack.settings = replace(
            stack.settings,
            redis_url=server.url,
            hubspot_read_timeout_s=0.5,
            lease_s=3.0,
            retry_base_s=0.05,
            retry_cap_s=0.5,
            max_attempts=8,
            batch_size=20,
            # 40 % of calls failing may open the portal's circuit: then probe every second, not every 30.
            circuit_probe_s=1.0,
        )
        url = stack.gunicorn()
        items = [assoc(i, 900 + i % 3, to_type=("contacts", "companies", "tickets")[i % 3]) for i in range(1, 301)]
        ids = post_associations(url, items)
        expected = {
            i: ("deals", it["fromObjectId"], it["toObjectType"], it["toObjectId"])
            for i, it in zip(ids, items, strict=True)
        }
        sim.faults(
            error_rate=0.3,
            error_status=503,
            hang_rate=0.1,
            hang_ms=1500,
            script=[{"status": 429, "headers": {"Retry-After": "1"}}] * 3,
        )
        victim = stack.worker("victim")
        stack.worker("steady")
        wait_for(lambda: len(sim.pairs()) >= 30, timeout=60, what="some progress")
        victim.kill_group()
        server.kill()
        server.start()
        stack.worker("after-restart-1")
        stack.worker("after-restart-2")
        redis = redis_lib.Redis.from_url(server.url)
        wait_settled(redis, timeout=180)
        assert_exact_end_state(sim, redis, expected)
        for raw in redis.mget([f"hl:dl:{m.decode()}" for m in redis.zrange("hl:dlq", 0, -1)] or ["-"]):
            if raw:
                letter = json.loads(raw)
                assert letter["reason"]
                assert letter["attempts"]
    finally:
        sim.post("/_sim/faults", {"error_rate": 0, "hang_rate": 0})
        stack.stop()
        server.stop()
