"""Reliable delivery on real processes: every accepted association ends in HubSpot or in the dead-letter store.

One test per error class through the simulator's fault API, then crashes: a worker killed with SIGKILL
mid-run, and a Redis restart. Each asserts the exact end state.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
import redis as redis_lib
import requests

from hublink.domain.limits import RateLimit
from hublink.domain.times import seconds_until_midnight
from tests.integration.conftest import Sim, Stack
from tests.integration.helpers import (
    assert_exact_end_state,
    assoc,
    dead_letter_ids,
    due_of,
    post_associations,
    wait_settled,
)
from tests.support.processes import RedisServer, wait_for

pytestmark = pytest.mark.integration

PAIR = ("deals", "123", "contacts", "456")


def one(stack: Stack) -> tuple[str, redis_lib.Redis]:
    """Start a worker and gunicorn, post one association; return its id and a Redis client."""
    stack.worker()
    url = stack.gunicorn()
    [association_id] = post_associations(url, [assoc(123, 456)])
    return association_id, redis_lib.Redis.from_url(stack.settings.redis_url)


def letter(redis: redis_lib.Redis, association_id: str) -> dict[str, object]:
    """A dead letter's body."""
    raw = redis.get(f"hl:dl:{association_id}")
    assert raw, f"no dead letter {association_id}"
    body: dict[str, object] = json.loads(raw)
    return body


class TestErrorClasses:
    """Each HubSpot failure class ends where the error table says."""

    def test_a_burst_of_5xx_is_retried_until_it_succeeds(self, stack: Stack, sim: Sim) -> None:
        """Three 503s then success: the association is linked, nothing is dead-lettered."""
        sim.faults(script=[{"status": 503}, {"status": 502}, {"status": 500}])
        _, redis = one(stack)
        wait_settled(redis, timeout=30)
        assert PAIR in sim.pairs()
        assert not dead_letter_ids(redis)
        assert sim.get("/_sim/requests")["by_status"].get("503") == 1

    def test_a_hang_past_the_read_timeout_is_retried(self, stack: Stack, sim: Sim) -> None:
        """A request that hangs past the client's read timeout is retried and then succeeds."""
        stack.settings = replace(stack.settings, hubspot_read_timeout_s=0.5)
        sim.faults(hang_rate=1.0, hang_ms=1500)
        _, redis = one(stack)
        wait_for(lambda: sim.get("/_sim/requests")["total"] >= 1, timeout=20, what="the first (hanging) request")
        sim.post("/_sim/faults", {"hang_rate": 0.0})
        wait_settled(redis, timeout=30)
        assert PAIR in sim.pairs()

    def test_a_429_with_retry_after_waits_that_long(self, stack: Stack, sim: Sim) -> None:
        """A 429 carrying Retry-After: 1 is retried no sooner than a second later, and succeeds."""
        sim.faults(script=[{"status": 429, "headers": {"Retry-After": "1"}}])
        _, redis = one(stack)
        wait_settled(redis, timeout=30)
        recent = sim.get("/_sim/requests")["recent"]
        statuses = [(r["status"], r["at"]) for r in recent]
        assert statuses[0][0] == 429 and statuses[-1][0] == 200
        assert statuses[-1][1] - statuses[0][1] >= 0.9
        assert PAIR in sim.pairs()

    def test_a_429_without_retry_after_waits_out_the_window(self, stack: Stack, sim: Sim) -> None:
        """A 429 without Retry-After is retried after the rate-limit window, and succeeds."""
        stack.settings = replace(stack.settings, hubspot_rate_limit=RateLimit(100, 2.0))
        sim.faults(script=[{"status": 429}])
        _, redis = one(stack)
        wait_settled(redis, timeout=30)
        recent = sim.get("/_sim/requests")["recent"]
        assert recent[-1]["at"] - recent[0]["at"] >= 1.9
        assert PAIR in sim.pairs()

    def test_a_daily_429_waits_for_the_accounts_midnight_without_spending_an_attempt(
        self, stack: Stack, sim: Sim
    ) -> None:
        """A DAILY 429 puts the association back, due at the next midnight in the account's zone, attempts 0."""
        zone = "Pacific/Kiritimati"  # UTC+14: its midnight is never the UTC one, so the zone is what counts
        stack.settings = replace(stack.settings, max_attempts=1, account_timezone=zone)
        sim.faults(script=[{"status": 429, "policy": "DAILY"}])
        association_id, redis = one(stack)
        lane = "_|deals|contacts"
        later = (time.time() + 3600) * 1000  # deferred: due hours from now, not in seconds

        def deferred() -> float | None:
            """The association's due time once it was put back for later."""
            score = due_of(redis, lane, association_id)
            return score if score is not None and score > later else None

        due = wait_for(deferred, timeout=30, what="the deferral")
        expected = time.time() + seconds_until_midnight(time.time(), zone)
        assert abs(due / 1000 - expected) < 60
        assert redis.hget(f"hl:a:{association_id}", "attempts") in (b"0", None)
        assert not dead_letter_ids(redis)
        assert PAIR not in sim.pairs()

    def test_a_403_with_missing_scopes_opens_the_circuit_and_spends_no_attempt(self, stack: Stack, sim: Sim) -> None:
        """403 missingScopes: the portal's circuit opens (no attempt, no dead letter); a later probe links it."""
        stack.settings = replace(stack.settings, circuit_probe_s=1.0)
        sim.faults(script=[{"status": 403, "missing_scopes": ["crm.objects.deals.write"]}])
        _, redis = one(stack)
        wait_settled(redis, timeout=30)
        assert PAIR in sim.pairs()
        assert not dead_letter_ids(redis)
        circuit = json.loads(redis.hget("hl:circuits", "_") or b"{}")
        assert circuit["reason"] == "missing_scopes" and circuit["state"] == "closed"
        assert "crm.objects.deals.write" in circuit["message"]

    def test_a_401_opens_the_circuit_instead_of_dead_lettering(self, stack: Stack, sim: Sim) -> None:
        """A static token HubSpot refuses (401): the circuit opens; the association waits unspent, not dead."""
        stack.settings = replace(stack.settings, hubspot_access_token="pat-unknown-token")
        association_id, redis = one(stack)
        wait_for(lambda: redis.hexists("hl:paused", "circuit:_"), timeout=30, what="the circuit to open")
        assert redis.hget(f"hl:a:{association_id}", "attempts") in (None, b"0")
        assert not dead_letter_ids(redis)
        assert sim.get("/_sim/requests")["by_status"]["401"] == 1

    def test_a_404_inside_the_grace_is_retried_then_succeeds(self, stack: Stack, sim: Sim) -> None:
        """A fresh record that 404s once is retried inside the grace and linked."""
        sim.faults(script=[{"status": 404}])
        _, redis = one(stack)
        wait_settled(redis, timeout=30)
        assert PAIR in sim.pairs()
        assert not dead_letter_ids(redis)

    def test_a_404_outside_the_grace_is_dead_lettered(self, stack: Stack, sim: Sim) -> None:
        """With no grace, a 404 is permanent: dead-lettered after one attempt."""
        stack.settings = replace(stack.settings, fresh_record_grace_s=0.0)
        sim.faults(script=[{"status": 404}])
        association_id, redis = one(stack)
        wait_settled(redis, timeout=30)
        assert letter(redis, association_id)["status"] == 404

    def test_transient_errors_exhaust_the_budget_into_the_dead_letter_store(self, stack: Stack, sim: Sim) -> None:
        """Every attempt failing with 503: dead-lettered after HUBLINK_MAX_ATTEMPTS with each attempt recorded."""
        stack.settings = replace(stack.settings, max_attempts=3)
        sim.faults(error_rate=1.0, error_status=503)
        association_id, redis = one(stack)
        wait_settled(redis, timeout=30)
        body = letter(redis, association_id)
        assert body["attemptCount"] == 3
        attempts = body["attempts"]
        assert isinstance(attempts, list) and [a["status"] for a in attempts] == [503, 503, 503]
        assert str(body["reason"]).startswith("exhausted")


class TestBatches:
    """One bad pair in a batch never fails, delays or duplicates the others."""

    @pytest.mark.parametrize(("batch_errors", "calls", "inputs"), [("per-input", 1, 4), ("whole", 2, 3)])
    def test_mixed_outcomes_in_one_batch_are_settled_per_association(
        self, stack: Stack, sim: Sim, batch_errors: str, calls: int, inputs: int
    ) -> None:
        """Valid pairs are linked, an invalid id is dead-lettered, nothing is sent twice: in one call when
        HubSpot answers per input, in two when it refuses the whole batch (the guilty pair is taken out)."""
        stack.settings = replace(stack.settings, fresh_record_grace_s=0.0)
        sim.put("/_sim/config", {"batch_errors": batch_errors})
        sim.post("/_sim/invalid-ids", {"ids": ["666"], "status": 400})
        url = stack.gunicorn()
        items = [assoc(i, 456) for i in (101, 102, 666, 103)]
        ids = post_associations(url, items)
        stack.worker()
        redis = redis_lib.Redis.from_url(stack.settings.redis_url)
        wait_settled(redis, timeout=30)
        expected = {i: ("deals", item["fromObjectId"], "contacts", "456") for i, item in zip(ids, items, strict=True)}
        assert_exact_end_state(sim, redis, expected)
        assert dead_letter_ids(redis) == {ids[2]}
        requests_seen = sim.get("/_sim/requests")
        assert requests_seen["by_endpoint"].get("batch_associate_default") == calls
        assert requests_seen["inputs_total"] == inputs


class TestCrashes:
    """Crashes lose nothing: leases hand work back, Redis keeps it on disk."""

    def test_a_worker_killed_mid_call_loses_nothing(self, stack: Stack, sim: Sim) -> None:
        """SIGKILL of a worker while HubSpot is answering: a new worker links every association."""
        sim.post("/_sim/faults", {"latency_ms": 1500})
        url = stack.gunicorn()
        items = [assoc(i, 456) for i in range(1, 51)]
        ids = post_associations(url, items)
        victim = stack.worker("victim")
        wait_for(lambda: sim.get("/_sim/requests")["total"] >= 1, timeout=20, what="the victim's first call")
        victim.kill_group()
        sim.post("/_sim/faults", {"latency_ms": 0})
        stack.worker("survivor")
        redis = redis_lib.Redis.from_url(stack.settings.redis_url)
        wait_settled(redis, timeout=60)
        expected = {i: ("deals", item["fromObjectId"], "contacts", "456") for i, item in zip(ids, items, strict=True)}
        assert_exact_end_state(sim, redis, expected)
        assert not dead_letter_ids(redis)

    def test_sigterm_lets_the_current_drain_finish(self, stack: Stack, sim: Sim) -> None:
        """SIGTERM during a slow HubSpot call: the call completes, the association is settled, the worker exits 0."""
        import signal

        sim.post("/_sim/faults", {"latency_ms": 1500})
        url = stack.gunicorn()
        worker = stack.worker()
        [association_id] = post_associations(url, [assoc(77, 88)])
        redis = redis_lib.Redis.from_url(stack.settings.redis_url)
        wait_for(lambda: redis.zcard("hl:inflight") == 1, timeout=20, what="the association to be claimed")
        worker.signal(signal.SIGTERM)
        assert worker.popen.wait(timeout=30) == 0
        sim.post("/_sim/faults", {"latency_ms": 0})
        assert ("deals", "77", "contacts", "88") in sim.pairs()
        assert not redis.exists(f"hl:a:{association_id}")
        assert redis.zcard("hl:inflight") == 0

    def test_a_redis_restart_loses_no_queued_work(self, stack: Stack, sim: Sim, tmp_path: Path) -> None:
        """Associations queued before Redis is killed and restarted (AOF on) are all linked afterwards."""
        server = RedisServer(tmp_path / "aof", appendonly=True).start()
        try:
            stack.settings = replace(stack.settings, redis_url=server.url)
            url = stack.gunicorn()
            items = [assoc(i, 789) for i in range(1, 31)]
            ids = post_associations(url, items)
            server.kill()
            server.start()
            stack.worker()
            redis = redis_lib.Redis.from_url(server.url)
            wait_settled(redis, timeout=60)
            expected = {i: ("deals", it["fromObjectId"], "contacts", "789") for i, it in zip(ids, items, strict=True)}
            assert_exact_end_state(sim, redis, expected)
            assert len(sim.pairs()) == 30
        finally:
            stack.stop()
            server.stop()


class TestSharedRateLimit:
    """Four workers share one HubSpot budget."""

    def test_four_workers_get_no_429_in_steady_state(self, stack: Stack, sim: Sim) -> None:
        """With HUBSPOT_RATE_LIMIT equal to the simulator's limit and batch size 1, four workers never get a 429."""
        sim_limit = "20/2s"
        stack.settings = replace(stack.settings, hubspot_rate_limit=RateLimit.parse(sim_limit), batch_size=1)
        requests.put(f"{sim.url}/_sim/config", json={"rate_limit": sim_limit}, timeout=5).raise_for_status()
        try:
            url = stack.gunicorn()
            # Several lanes, so that several workers really send at once.
            items = [assoc(i, 456, to_type=t) for i in range(1, 21) for t in ("contacts", "companies", "tickets")]
            post_associations(url, items)
            for n in range(4):
                stack.worker(f"w{n}")
            redis = redis_lib.Redis.from_url(stack.settings.redis_url)
            wait_settled(redis, timeout=90)
            seen = sim.get("/_sim/requests")
            assert seen["by_status"].get("429", 0) == 0
            assert len(sim.pairs()) == 60
        finally:
            requests.put(f"{sim.url}/_sim/config", json={"rate_limit": None}, timeout=5)
