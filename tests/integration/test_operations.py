"""Operations on real processes: /metrics matches what HubSpot received, logs are JSON without secrets,
health endpoints, OAuth refresh without a failed call, alerts once per interval, and several workers on one
Redis keeping one rate limit, one set of metrics and one dead-letter store.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
import requests
from prometheus_client.parser import text_string_to_metric_families

from hublink import __version__
from hublink.domain.limits import RateLimit
from tests.conftest import ADMIN_TOKEN, API_TOKEN, HUBSPOT_TOKEN
from tests.integration.conftest import Sim, Stack
from tests.integration.helpers import assoc, dead_letter_ids, post_associations, wait_settled
from tests.support.processes import free_port, wait_for

pytestmark = pytest.mark.integration


def scrape(url: str, token: str | None = None) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics and parse it with Prometheus's own parser: {(sample name, labels): value}."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(f"{url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


class TestMetricsAndLogs:
    """What an operator sees."""

    def test_metrics_parse_and_match_the_simulator(self, stack: Stack, sim: Sim) -> None:
        """After a mixed run, /metrics parses with Prometheus's parser and its counts equal the simulator's."""
        sim.post("/_sim/invalid-ids", {"ids": ["666"], "status": 400})
        stack.settings = replace(stack.settings, fresh_record_grace_s=0.0, metrics_token="metrics-token-123")
        url = stack.gunicorn(HUBLINK_METRICS_TOKEN="metrics-token-123")
        post_associations(url, [assoc(i) for i in (1, 2, 3, 666)])
        stack.worker()
        redis = redis_lib.Redis.from_url(stack.settings.redis_url)
        wait_settled(redis, timeout=30)
        assert requests.get(f"{url}/metrics", timeout=5).status_code == 401
        samples = scrape(url, "metrics-token-123")
        linked = len(sim.pairs())
        assert total(samples, "hublink_associations_succeeded_total") == linked == 3
        assert total(samples, "hublink_associations_dead_lettered_total", category="VALIDATION_ERROR") == 1
        assert total(samples, "hublink_associations_enqueued_total", source="api") == 4
        assert total(samples, "hublink_inbox_depth") == 0
        seen = sim.get("/_sim/requests")
        assert total(samples, "hublink_hubspot_requests_total") == seen["total"]
        assert total(samples, "hublink_dead_letters") == 1
        assert total(samples, "hublink_e2e_latency_seconds_count") == 3
        assert total(samples, "hublink_queue_depth") == 0

    def test_logs_are_json_lines_without_secrets(self, stack: Stack, sim: Sim) -> None:
        """Every line every process printed during a run is a JSON object, and no configured secret appears."""
        sim.faults(script=[{"status": 503}, {"status": 409}])
        stack.worker()
        url = stack.gunicorn()
        post_associations(url, [assoc(1), assoc(2, 3)])
        requests.post(f"{url}/api/associations", json={}, headers={"Authorization": "Bearer wrong-token"}, timeout=5)
        redis = redis_lib.Redis.from_url(stack.settings.redis_url)
        wait_settled(redis, timeout=30)
        stack.stop()
        lines = [line for p in stack.processes for line in p.output().splitlines() if line.strip()]
        assert len(lines) > 5
        secrets = (API_TOKEN, ADMIN_TOKEN, HUBSPOT_TOKEN)
        for line in lines:
            assert not any(secret in line for secret in secrets), line
            record = json.loads(line)
            assert {"event", "level", "timestamp"} <= set(record)
        joined = "\n".join(lines)
        assert '"correlation_id"' in joined  # a HubSpot failure logged with HubSpot's correlation id

    def test_health_and_readiness(self, stack: Stack) -> None:
        """/healthz answers 200; /readyz answers 200 with Redis and 503 with the reason without it."""
        url = stack.gunicorn()
        assert requests.get(f"{url}/healthz", timeout=5).json() == {"status": "ok", "version": __version__}
        assert requests.get(f"{url}/readyz", timeout=5).status_code == 200
        down = stack.gunicorn(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", HUBLINK_REDIS_TIMEOUT_S="0.3")
        response = requests.get(f"{down}/readyz", timeout=5)
        assert response.status_code == 503
        assert response.json()["problems"][0].startswith("redis:")


class TestManyPortals:
    """HUBLINK_PORTALS_FILE with a private app and an OAuth app."""

    def test_oauth_tokens_refresh_without_a_failed_call(self, stack: Stack, sim: Sim, tmp_path: Path) -> None:
        """With 302-second tokens (refreshed 5 minutes early: at once), every call succeeds; none gets a 401."""
        requests.put(f"{sim.url}/_sim/config", json={"oauth_token_ttl_s": 302}, timeout=5).raise_for_status()
        sim.post(
            "/_sim/oauth-apps",
            {"client_id": "cid-1", "client_secret": "oauth-secret-1", "refresh_token": "refresh-1", "portal_id": "777"},
        )
        portals = tmp_path / "portals.yaml"
        portals.write_text(
            'portals:\n  "777":\n    oauth:\n      client_id: cid-1\n'
            "      client_secret_env: OAUTH_SECRET\n      refresh_token_env: OAUTH_REFRESH\n"
            '  "888":\n    token_env: PORTAL_888_TOKEN\n'
        )
        env = {
            "HUBLINK_PORTALS_FILE": str(portals),
            "OAUTH_SECRET": "oauth-secret-1",
            "OAUTH_REFRESH": "refresh-1",
            "PORTAL_888_TOKEN": HUBSPOT_TOKEN,
        }
        stack.worker(**env)
        url = stack.gunicorn()
        items = [{**assoc(i), "portalId": "777"} for i in range(1, 6)] + [
            {**assoc(9), "portalId": "888"},
            {**assoc(10), "portalId": "999"},
        ]
        ids = post_associations(url, items[:3])
        redis = redis_lib.Redis.from_url(stack.settings.redis_url)
        wait_settled(redis, timeout=30)
        # Wait until the cached token is inside its refresh margin, so the next calls must refresh first.
        wait_for(
            lambda: float(redis.hget("hl:token:777", "expires_at") or 0) - 300 < time.time(),
            timeout=10,
            what="the cached token to need a refresh",
        )
        ids += post_associations(url, items[3:])
        wait_settled(redis, timeout=30)
        seen = sim.get("/_sim/requests")
        assert seen["by_status"].get("401", 0) == 0
        assert seen["by_endpoint"]["oauth_token"] >= 2
        assert len(sim.pairs()) == 6
        [unknown] = dead_letter_ids(redis)
        assert unknown == ids[-1]
        letter = json.loads(redis.get(f"hl:dl:{unknown}") or b"{}")
        assert letter["category"] == "UNKNOWN_PORTAL"
        for key in redis.scan_iter("*"):
            value = redis.type(key)
            if value == b"string" and key.startswith(b"hl:dl:"):
                assert b"sim-oauth-" not in (redis.get(key) or b"")


@pytest.fixture
def alert_sink() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP endpoint that records alert bodies."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        """Records POSTed JSON bodies."""

        def do_POST(self) -> None:
            """Record one alert."""
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


class TestAlerts:
    """The alert webhook."""

    def test_dead_letters_alert_once_per_interval_with_counts(
        self, stack: Stack, sim: Sim, alert_sink: tuple[str, list[dict[str, Any]]]
    ) -> None:
        """Two waves of dead letters inside one interval give one alert; the next interval reports the rest."""
        hook, received = alert_sink
        sim.faults(error_rate=1.0, error_status=409)  # dead-lettered (a 403 would open the circuit instead)
        stack.worker(HUBLINK_ALERT_WEBHOOK_URL=hook, HUBLINK_ALERT_INTERVAL_S="4")
        url = stack.gunicorn()
        post_associations(url, [assoc(i) for i in range(1, 4)])
        wait_for(lambda: received, timeout=20, what="the first alert")
        post_associations(url, [assoc(i, 7, to_type="companies") for i in range(1, 3)])
        redis = redis_lib.Redis.from_url(stack.settings.redis_url)
        wait_settled(redis, timeout=20)
        assert len(received) == 1
        wait_for(lambda: len(received) == 2, timeout=20, what="the second alert")
        assert "text" in received[0]
        assert received[0]["dead_letters"] + received[1]["dead_letters"] == 5

    def test_a_failing_alert_webhook_never_breaks_a_worker(self, stack: Stack, sim: Sim) -> None:
        """With an alert URL that refuses connections, dead letters are still made and the worker lives on."""
        sim.faults(script=[{"status": 409}])
        worker = stack.worker(HUBLINK_ALERT_WEBHOOK_URL=f"http://127.0.0.1:{free_port()}/nothing-here")
        url = stack.gunicorn()
        post_associations(url, [assoc(1)])
        redis = redis_lib.Redis.from_url(stack.settings.redis_url)
        wait_settled(redis, timeout=30)
        assert len(dead_letter_ids(redis)) == 1
        wait_for(lambda: "alert webhook failed" in worker.output(), timeout=20, what="the logged alert failure")
        post_associations(url, [assoc(2, 3)])
        wait_settled(redis, timeout=30)
        assert worker.alive()
        assert sim.pairs() == {("deals", "2", "contacts", "3")}


class TestScaleOut:
    """Several worker processes, as if on several machines, against one Redis."""

    def test_shared_limit_metrics_and_dead_letters_stay_correct(self, stack: Stack, sim: Sim) -> None:
        """Three workers, a 30/2s limit, one failing id: no 429, every count once, one dead letter."""
        requests.put(f"{sim.url}/_sim/config", json={"rate_limit": "30/2s"}, timeout=5).raise_for_status()
        sim.post("/_sim/invalid-ids", {"ids": ["666"], "status": 400})
        stack.settings = replace(
            stack.settings, hubspot_rate_limit=RateLimit.parse("30/2s"), batch_size=5, fresh_record_grace_s=0.0
        )
        try:
            url = stack.gunicorn()
            items = [assoc(i, 1, to_type=t) for i in [*range(1, 31), 666] for t in ("contacts", "companies")]
            post_associations(url, items)
            for n in range(3):
                stack.worker(f"machine-{n}")
            redis = redis_lib.Redis.from_url(stack.settings.redis_url)
            wait_settled(redis, timeout=90)
            seen = sim.get("/_sim/requests")
            assert seen["by_status"].get("429", 0) == 0
            assert len(sim.pairs()) == 60
            assert len(dead_letter_ids(redis)) == 2
            samples = scrape(url)
            assert total(samples, "hublink_associations_succeeded_total") == 60
            assert total(samples, "hublink_associations_dead_lettered_total") == 2
            assert total(samples, "hublink_hubspot_requests_total") == seen["total"]
        finally:
            requests.put(f"{sim.url}/_sim/config", json={"rate_limit": None}, timeout=5)
