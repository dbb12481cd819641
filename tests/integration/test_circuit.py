"""The circuit breaker end to end on real processes: a revoked token, 1,000 pending associations, one alert.

The simulator revokes the token (``PUT /_sim/config`` with other accepted tokens) and restores it; gunicorn,
a worker and a local alert receiver are real processes and sockets on 127.0.0.1.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis as redis_lib
import requests

from tests.conftest import HUBSPOT_TOKEN
from tests.integration.conftest import Sim, Stack
from tests.integration.helpers import assoc, dead_letter_ids, post_associations, wait_settled
from tests.integration.test_operations import alert_sink, scrape
from tests.support.processes import wait_for

pytestmark = pytest.mark.integration
PUBLIC_URL = "https://hublink.example.test"

__all__ = ["alert_sink"]


def set_tokens(sim: Sim, tokens: list[str]) -> None:
    """Accept only ``tokens`` from now on (HubLink's is refused with 401 unless listed)."""
    requests.put(f"{sim.url}/_sim/config", json={"tokens": tokens}, timeout=5).raise_for_status()


def refused(sim: Sim) -> int:
    """How many calls the simulator refused with 401."""
    return int(sim.get("/_sim/requests")["by_status"].get("401", 0))


class TestARevokedToken:
    """The done-when of the issue's circuit breaker."""

    def test_a_revoked_token_opens_the_circuit_and_a_probe_closes_it(
        self, stack: Stack, sim: Sim, alert_sink: tuple[str, list[dict[str, Any]]]
    ) -> None:
        """1,000 pending with the token revoked: at most 3 calls, 0 dead letters, one alert; restored, all drain."""
        hook, received = alert_sink
        url = stack.gunicorn()
        set_tokens(sim, ["pat-some-other-app"])
        expected = {f"{n}" for n in range(1, 1001)}
        post_associations(url, [assoc(n, 456) for n in range(1, 1001)])
        stack.worker(
            HUBLINK_ALERT_WEBHOOK_URL=hook,
            HUBLINK_ALERT_INTERVAL_S="1",
            HUBLINK_CIRCUIT_PROBE_S="2",
            HUBLINK_PUBLIC_URL=PUBLIC_URL,
        )
        redis = redis_lib.Redis.from_url(stack.settings.redis_url)
        wait_for(lambda: received, timeout=30, what="the circuit's alert")
        opened = received[0]
        assert opened["kind"] == "circuit_open" and opened["portal"] == "_" and opened["reason"] == "token_rejected"
        assert opened["dashboard"] == f"{PUBLIC_URL}/admin" and f"{PUBLIC_URL}/admin" in opened["text"]
        assert "Replace the portal's private-app token" in opened["text"]
        assert HUBSPOT_TOKEN not in str(opened)
        # A probe every 2 s: wait for one (still refused), then restore the token.
        wait_for(lambda: refused(sim) >= 2, timeout=20, what="a probe while the token is revoked")
        calls_while_revoked = refused(sim)
        assert redis.hexists("hl:paused", "circuit:_")
        assert not dead_letter_ids(redis)
        samples = scrape(url)
        assert samples[("hublink_circuit_open", (("portal", "_"), ("reason", "token_rejected")))] == 1
        set_tokens(sim, [HUBSPOT_TOKEN])

        wait_settled(redis, timeout=60)
        assert calls_while_revoked <= 3, calls_while_revoked
        assert {a["fromObjectId"] for a in sim.associations()} == expected
        assert not dead_letter_ids(redis)
        wait_for(lambda: len(received) >= 2, timeout=20, what="the closing alert")
        assert [r["kind"] for r in received] == ["circuit_open", "circuit_closed"]
        assert not redis.hexists("hl:paused", "circuit:_")
        samples = scrape(url)
        assert samples[("hublink_circuit_open", (("portal", "_"), ("reason", "token_rejected")))] == 0
        # Measured: 2 refused calls (the first batch, one probe), then 1 probe + 10 batches: 13 requests in all.
        assert sim.get("/_sim/requests")["total"] <= calls_while_revoked + 12
