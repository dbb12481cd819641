"""HubSpot's client secret rotated while webhooks flow, on real processes: no delivery refused.

The simulator, as HubSpot, pushes a signed webhook for every deal the test creates (a steady stream). The
web tier is rolled one gunicorn at a time on one port (``reuse_port``: the kernel spreads connections over
every process listening, so a new one takes traffic before the old one stops), as the operations docs'
procedure says:

1. gunicorn A: ``HUBSPOT_CLIENT_SECRET=old``.
2. gunicorn B: ``HUBSPOT_CLIENT_SECRET=new``, ``HUBSPOT_CLIENT_SECRET_PREVIOUS=old``; A stops.
3. The app's secret changes in HubSpot (the simulator signs with ``new`` from then on).
4. gunicorn C: ``HUBSPOT_CLIENT_SECRET=new`` alone; B stops.

Every delivery ends delivered, none was ever answered 401, and the metric shows both secrets matched.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
import requests

from hublink.config.rules_file import RulesFile
from hublink.delivery.webhooks_api import WebhookApp, WebhooksClient
from hublink.domain.subscriptions import WebhookSettings, needed_subscriptions
from tests.integration.conftest import HUBSPOT_TOKEN, Sim, Stack, env_for
from tests.support.processes import Process, free_port, port_open, python, wait_for

pytestmark = pytest.mark.integration

APP_ID = "4343"
OLD, NEW = "client-secret-before-rotation", "client-secret-after-rotation"
RULES = """\
rules:
  - name: deal-created
    source: hubspot
    when: {subscriptionType: deal.creation}
    associations:
      - from: {objectType: deals, id: objectId}
        to: {objectType: companies, id: "`42`"}
"""
METRIC = "hl:m:signature_secret_matched"
WEB_APP = "web:create_app()"


def matched(redis_client: redis_lib.Redis, which: str) -> int:
    """``signature_secret_matched{source="hubspot",which=...}`` as stored."""
    return int(redis_client.hget(METRIC, f"source=hubspot,which={which}") or 0)


class Deals:
    """Creates a deal in the simulator every few milliseconds on a thread, each one pushed to HubLink."""

    def __init__(self, sim: Sim) -> None:
        self._sim = sim
        self._stop = threading.Event()
        self.created = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        """Create deals until stopped."""
        while not self._stop.is_set():
            self.created += 1
            self._sim.post("/_sim/records", {"records": [{"objectType": "deals", "id": str(10_000 + self.created)}]})
            self._stop.wait(0.02)  # pacing of the load, not a wait for a condition

    def __enter__(self) -> Deals:
        """Start creating deals."""
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop creating deals."""
        self._stop.set()
        self._thread.join(timeout=10)


def deliveries(sim: Sim) -> list[dict[str, Any]]:
    """Every push the simulator made, with its attempts."""
    found: list[dict[str, Any]] = sim.get("/_sim/webhooks/deliveries")["deliveries"]
    return found


def delivered_since(sim: Sim, count: int) -> int:
    """How many pushes were delivered beyond the first ``count``."""
    return sum(1 for d in deliveries(sim)[count:] if d["state"] == "delivered")


@pytest.fixture
def web_port() -> int:
    """The one port every gunicorn of the roll listens on."""
    return free_port()


@pytest.fixture
def roll(stack: Stack, web_port: int, tmp_path: Path) -> Any:
    """Start a gunicorn on the shared port with the given secrets (stopped with the stack)."""

    def start(name: str, secret: str, previous: str | None = None) -> Process:
        """A gunicorn named ``name`` verifying with ``secret`` (and ``previous``), not waited for."""
        env = {**env_for(stack.settings), "HUBSPOT_CLIENT_SECRET": secret, "HUBSPOT_APP_ID": APP_ID}
        env["WEB_CONCURRENCY"] = "1"
        if previous:
            env["HUBSPOT_CLIENT_SECRET_PREVIOUS"] = previous
        process = Process(
            name,
            [
                python(),
                "-m",
                "gunicorn",
                "-c",
                "gunicorn.conf.py",
                "--bind",
                f"127.0.0.1:{web_port}",
                "web:create_app()",
            ],
            env=env,
            log_dir=tmp_path,
        )
        stack.processes.append(process)
        return process

    return start


def test_rotating_the_client_secret_refuses_no_delivery(
    sim: Sim, stack: Stack, redis_client: redis_lib.Redis, tmp_path: Path, web_port: int, roll: Any
) -> None:
    """Old secret → new + previous (rolled) → HubSpot switches → new alone (rolled): zero 401s, both counted."""
    sim.put("/_sim/config", {"records": "strict", "webhook_retry_scale": 0.0001})
    sim.post("/_sim/records", {"records": [{"objectType": "companies", "id": "42"}]})
    sim.post("/_sim/apps", {"appId": APP_ID, "clientId": "client-4343", "clientSecret": OLD})
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    stack.settings = replace(stack.settings, rules_file=str(rules))

    a = roll("web-a", OLD)
    wait_for(lambda: port_open(web_port) or not a.alive(), timeout=30, what="gunicorn A")
    assert a.alive(), a.output()
    url = f"http://127.0.0.1:{web_port}"
    app = WebhookApp(WebhooksClient(sim.url, connect_timeout_s=2, read_timeout_s=5), HUBSPOT_TOKEN, APP_ID)
    needs = needed_subscriptions(RulesFile.read(str(rules)).rules.rules)
    app.apply(app.plan(WebhookSettings.for_public_url(url, 10), needs))

    with Deals(sim):
        wait_for(lambda: delivered_since(sim, 0) >= 10, timeout=30, what="pushes verified by A")
        # 2. B takes traffic beside A (verifying the old secret as the previous one), then A stops.
        b = roll("web-b", NEW, previous=OLD)
        wait_for(lambda: matched(redis_client, "previous") >= 1 or not b.alive(), timeout=30, what="B serving")
        assert b.alive(), b.output()
        assert a.stop(timeout=30) == 0, a.output()
        # 3. HubSpot signs with the new secret from now on (the app keeps its id and webhook settings).
        sim.post("/_sim/apps", {"appId": APP_ID, "clientId": "client-4343", "clientSecret": NEW})
        wait_for(lambda: matched(redis_client, "current") >= 1, timeout=30, what="the new secret verified")
        # 4. C, with the new secret alone, replaces B.
        seen = len(deliveries(sim))
        c = roll("web-c", NEW)
        wait_for(lambda: "Booting worker" in c.output() or not c.alive(), timeout=30, what="C's worker")
        assert c.alive(), c.output()
        assert b.stop(timeout=30) == 0, b.output()
        wait_for(lambda: delivered_since(sim, seen) >= 20, timeout=30, what="pushes verified by C")

    def settled() -> bool:
        """Every push has ended (delivered or failed)."""
        return all(d["state"] != "pending" for d in deliveries(sim))

    wait_for(settled, timeout=60, what="every push to end")
    pushes = deliveries(sim)
    refused = [d for d in pushes for attempt in d["attempts"] if 400 <= attempt.get("status", 0) < 500]
    assert refused == [], refused[:3]
    assert all(d["state"] == "delivered" for d in pushes), [d for d in pushes if d["state"] != "delivered"][:3]
    assert len(pushes) >= 40
    assert matched(redis_client, "previous") >= 1 and matched(redis_client, "current") >= 1
    # The last gunicorn has no previous secret: a push signed with the old one is refused now.
    stale = requests.post(f"{url}/webhooks/hubspot", data=b"[]", headers={"X-HubSpot-Signature-v3": "x"}, timeout=5)
    assert stale.status_code == 401
