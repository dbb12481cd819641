"""Helpers for integration tests: posting to the API and waiting for end states."""

from __future__ import annotations

from typing import Any

import redis as redis_lib
import requests

from hublink.config.rules_file import RulesFile
from hublink.config.settings import Settings
from hublink.intake.expansion import Expansion, IntakeReport
from hublink.intake.inbox import Inbox
from hublink.lanes import LaneStore, pending_ids
from hublink.ops.metrics import Metrics
from hublink.store.connections import connect
from hublink.store.keys import Keys
from tests.conftest import ADMIN_TOKEN, API_TOKEN
from tests.integration.conftest import Sim
from tests.support.processes import wait_for
from worker.loops import Expander


def assoc(
    from_id: int | str, to_id: int | str = 456, from_type: str = "deals", to_type: str = "contacts"
) -> dict[str, str]:
    """One direct-API item."""
    return {
        "fromObjectType": from_type,
        "fromObjectId": str(from_id),
        "toObjectType": to_type,
        "toObjectId": str(to_id),
    }


def post_associations(url: str, items: list[dict[str, str]]) -> list[str]:
    """POST items in chunks of 100; return the accepted ids."""
    ids: list[str] = []
    for start in range(0, len(items), 100):
        response = requests.post(
            f"{url}/api/associations",
            json={"associations": items[start : start + 100]},
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=10,
        )
        assert response.status_code == 202, response.text
        ids.extend(response.json()["ids"])
    return ids


def admin(method: str, url: str, path: str, **kwargs: Any) -> requests.Response:
    """Call the admin API."""
    return requests.request(
        method, f"{url}{path}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30, **kwargs
    )


def dead_letter_ids(redis: redis_lib.Redis) -> set[str]:
    """Ids in the dead-letter store."""
    return {m.decode() for m in redis.zrange("hl:dlq", 0, -1)}


def pending(redis: redis_lib.Redis) -> int:
    """Requests not yet expanded (inbox entries) plus associations still waiting or in flight."""
    # One atomic read: work moves inbox -> lane queue -> lease -> retry zset between separate reads, and
    # a non-atomic sum could miss it in flight (and call an unsettled stack settled).
    return int(redis.eval(_PENDING, 0))


_PENDING = """
local n = redis.call('XLEN', 'hl:inbox') + redis.call('ZCARD', 'hl:inflight')
for _, k in ipairs(redis.call('KEYS', 'hl:q:*')) do n = n + redis.call('LLEN', k) end
for _, k in ipairs(redis.call('KEYS', 'hl:lane:*')) do n = n + redis.call('ZCARD', k) end
return n
"""


def settled(redis: redis_lib.Redis) -> bool:
    """True when nothing is waiting or in flight."""
    return pending(redis) == 0


def wait_settled(redis: redis_lib.Redis, timeout: float) -> None:
    """Wait until every association has reached HubSpot or the dead-letter store."""
    wait_for(lambda: settled(redis), timeout=timeout, interval=0.1, what="every association to settle")


def assert_exact_end_state(sim: Sim, redis: redis_lib.Redis, expected: dict[str, tuple[str, str, str, str]]) -> None:
    """Every accepted id is in the simulator or in the dead-letter store, never both, never neither."""
    linked = sim.pairs()
    dead = dead_letter_ids(redis)
    for association_id, pair in expected.items():
        in_sim = pair in linked
        in_dlq = association_id in dead
        assert in_sim != in_dlq, f"{association_id} {pair}: in simulator={in_sim}, in DLQ={in_dlq}"
    assert dead <= set(expected), "a dead letter that was never accepted"


def make_expander(
    settings: Settings, consumer: str = "tests", claim_idle_s: float | None = None, reclaim_interval_s: float = 5.0
) -> Expander:
    """A worker's expander on ``settings`` (its rules file, if any, and its Redis)."""
    redis = connect(settings.redis_url, timeout_s=5)
    keys = Keys(settings.redis_prefix)
    rules_file = RulesFile.read(settings.rules_file)
    inbox = Inbox(redis, keys, claim_idle_s=settings.lease_s if claim_idle_s is None else claim_idle_s)
    lanes = LaneStore(redis, keys, lease_s=settings.lease_s, dedup_window_s=settings.dedup_window_s)
    return Expander(
        inbox,
        Expansion(inbox, rules_file.rules, lanes, Metrics(redis, keys), rules_tag=rules_file.tag),
        consumer=consumer,
        reclaim_interval_s=reclaim_interval_s,
    )


def expand_all(expander: Expander) -> list[IntakeReport]:
    """Run ``expander`` until the inbox has nothing new; its reports, one per entry."""
    reports: list[IntakeReport] = []
    while batch := expander.step(block_ms=1):
        reports.extend(batch)
    return reports


def waiting(redis: redis_lib.Redis, lane: str) -> list[str]:
    """The ids waiting in ``lane`` (its queue and its retry zset), under the tests' ``hl:`` prefix."""
    return pending_ids(redis, Keys(), lane)


def due_of(redis: redis_lib.Redis, lane: str, association_id: str) -> float | None:
    """When a retried association of ``lane`` is due (epoch ms), or None when it is not waiting for a retry."""
    for member, score in redis.zrange(Keys().lane(lane), 0, -1, withscores=True):
        if member.decode().split("\x1f", 1)[0] == association_id:
            return float(score)
    return None
