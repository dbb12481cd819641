"""Alerts against local receivers (tiny HTTP servers on 127.0.0.1): the Slack-style webhook and PagerDuty.

Each alert names the portal, the reason and the dashboard's address; PagerDuty gets a trigger when a
portal's circuit opens and a resolve when it closes, with one dedup_key per portal. Redis is real.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis as redis_lib

from hublink.delivery.circuit import Breaker, CircuitSettings, RedisCircuitStore
from hublink.delivery.pauses import PauseStore
from hublink.domain.errors import AuthError, HubSpotErrorDetail
from hublink.ops.alerts import Alerter
from hublink.ops.metrics import Metrics
from hublink.store.keys import Keys
from tests.support.processes import wait_for

pytestmark = pytest.mark.integration
PUBLIC_URL = "https://hublink.example.test"
ROUTING_KEY = "pd-routing-key-0123456789abcdef"


@dataclass
class Receiver:
    """What a local receiver was sent, and the status it answers with."""

    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    status: int = 202


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A local HTTP server recording every JSON POST and answering ``status``."""
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        """Records one POST."""

        def do_POST(self) -> None:
            """Record the body and answer the configured status."""
            state.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            state.paths.append(self.path)
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def parts(redis: redis_lib.Redis, **alerter: Any) -> tuple[Breaker, Alerter]:
    """A breaker on the test's Redis and an alerter reading it."""
    keys = Keys("hl:")
    metrics = Metrics(redis, keys)
    breaker = Breaker(RedisCircuitStore(redis, keys, PauseStore(redis, keys), metrics), CircuitSettings(probe_s=30))
    options: dict[str, Any] = {"url": None, "interval_s": 0.001, "error_rate": 0.2, "public_url": PUBLIC_URL}
    return breaker, Alerter(redis, keys, metrics, **(options | alerter))


def revoked() -> AuthError:
    """HubSpot's 401 for a revoked token."""
    return AuthError(HubSpotErrorDetail(status=401, category="INVALID_AUTHENTICATION", correlation_id="corr-77"))


class TestPagerDuty:
    """Events v2: trigger on open, resolve on close, one dedup_key per portal."""

    def test_an_open_circuit_triggers_and_its_close_resolves(
        self, redis_client: redis_lib.Redis, receiver: Receiver
    ) -> None:
        """One trigger naming portal, reason and dashboard; nothing more while open; one resolve on close."""
        breaker, alerter = parts(redis_client, pagerduty_key=ROUTING_KEY, pagerduty_url=f"{receiver.url}/v2/enqueue")
        breaker.failed("123", revoked(), refreshable=False)
        assert alerter.check() == ["circuit_open_pagerduty"]
        assert alerter.check() == []
        (trigger,) = receiver.bodies
        assert receiver.paths == ["/v2/enqueue"]
        assert trigger["routing_key"] == ROUTING_KEY and trigger["event_action"] == "trigger"
        assert trigger["dedup_key"] == "hublink-circuit-123"
        payload = trigger["payload"]
        assert "portal 123" in payload["summary"] and "token_rejected" in payload["summary"]
        assert f"{PUBLIC_URL}/admin" in payload["summary"] and trigger["links"][0]["href"] == f"{PUBLIC_URL}/admin"
        assert payload["severity"] == "critical" and payload["class"] == "token_rejected"
        assert payload["custom_details"]["advice"].startswith("Replace the portal's private-app token")

        assert breaker.answered("123")
        assert alerter.check() == ["circuit_closed_pagerduty"]
        assert receiver.bodies[1] == {
            "routing_key": ROUTING_KEY,
            "event_action": "resolve",
            "dedup_key": "hublink-circuit-123",
        }
        assert alerter.check() == [] and len(receiver.bodies) == 2

    def test_two_portals_are_two_incidents(self, redis_client: redis_lib.Redis, receiver: Receiver) -> None:
        """Each portal's circuit has its own dedup_key."""
        breaker, alerter = parts(redis_client, pagerduty_key=ROUTING_KEY, pagerduty_url=f"{receiver.url}/v2/enqueue")
        breaker.failed("1", revoked(), refreshable=False)
        breaker.failed("2", revoked(), refreshable=False)
        alerter.check()
        assert sorted(b["dedup_key"] for b in receiver.bodies) == ["hublink-circuit-1", "hublink-circuit-2"]

    def test_a_refused_event_is_sent_again_and_the_key_is_never_logged(
        self, redis_client: redis_lib.Redis, receiver: Receiver, caplog: pytest.LogCaptureFixture
    ) -> None:
        """PagerDuty answering 500: logged (without the routing key), counted, and sent again after the interval."""
        receiver.status = 500
        breaker, alerter = parts(redis_client, pagerduty_key=ROUTING_KEY, pagerduty_url=f"{receiver.url}/v2/enqueue")
        breaker.failed("123", revoked(), refreshable=False)
        with caplog.at_level(logging.INFO):
            assert alerter.check() == []
        assert "pagerduty event failed" in caplog.text and ROUTING_KEY not in caplog.text
        receiver.status = 202
        wait_for(lambda: alerter.check() == ["circuit_open_pagerduty"], timeout=5, what="the event sent again")
        assert [b["event_action"] for b in receiver.bodies] == ["trigger", "trigger"]
        sent = Metrics(redis_client, Keys("hl:")).read("alerts_sent")
        assert sent == {"kind=circuit_open_pagerduty,outcome=failed": 1, "kind=circuit_open_pagerduty,outcome=sent": 1}


class TestTheWebhook:
    """The Slack-style webhook gets the same changes as text."""

    def test_open_and_close_each_post_once_naming_portal_reason_and_dashboard(
        self, redis_client: redis_lib.Redis, receiver: Receiver
    ) -> None:
        """circuit_open then circuit_closed, each once, with portal, reason and the dashboard's address."""
        breaker, alerter = parts(redis_client, url=f"{receiver.url}/hook")
        breaker.failed("55", revoked(), refreshable=False)
        assert alerter.check() == ["circuit_open"]
        breaker.answered("55")
        assert alerter.check() == ["circuit_closed"]
        assert alerter.check() == []
        opened, closed = receiver.bodies
        assert opened | {"text": ""} == {
            "text": "",
            "kind": "circuit_open",
            "portal": "55",
            "reason": "token_rejected",
            "state": "open",
            "dashboard": f"{PUBLIC_URL}/admin",
        }
        assert "portal 55" in opened["text"] and "corr-77" in opened["text"] and f"{PUBLIC_URL}/admin" in opened["text"]
        assert closed["kind"] == "circuit_closed" and "portal 55" in closed["text"]

    def test_both_targets_get_each_change(self, redis_client: redis_lib.Redis, receiver: Receiver) -> None:
        """With the webhook and PagerDuty configured, an opening reaches both."""
        breaker, alerter = parts(
            redis_client, url=f"{receiver.url}/hook", pagerduty_key=ROUTING_KEY, pagerduty_url=f"{receiver.url}/pd"
        )
        breaker.failed("9", revoked(), refreshable=False)
        assert sorted(alerter.check()) == ["circuit_open", "circuit_open_pagerduty"]
        assert sorted(receiver.paths) == ["/hook", "/pd"]
