"""An app uninstalled from a portal, end to end: the strict simulator, gunicorn and a worker, all real.

docs/reference/hubspot.md §9.6: once uninstalled, the portal's refresh token is refused as
``BAD_REFRESH_TOKEN`` and its access tokens get 401. HubLink marks the portal ``uninstalled`` (the API, one
alert), makes no call for its work but a token refresh per probe interval, keeps the work for
``HUBLINK_UNINSTALLED_HOLD_H`` and then dead-letters it as ``app_uninstalled``; a reinstall resumes it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import redis as redis_lib
import requests

from hublink.config.settings import Settings
from tests.conftest import ADMIN_TOKEN, HUBSPOT_TOKEN
from tests.integration.conftest import Sim, Stack
from tests.integration.helpers import assoc, dead_letter_ids, post_associations
from tests.support.processes import holds_for, wait_for
from web import create_app

pytestmark = pytest.mark.integration

PORTAL = "777"
PENDING = 100
ASSOCIATION_ENDPOINTS = ("associate_default", "batch_associate_default", "associate_labels", "batch_create")


@dataclass
class Alerts:
    """What the alert webhook was sent."""

    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)

    def circuit(self) -> list[dict[str, Any]]:
        """The circuit alerts (opened, closed) among them."""
        return [b for b in self.bodies if str(b.get("kind", "")).startswith("circuit")]


@pytest.fixture
def alerts() -> Iterator[Alerts]:
    """A local alert webhook recording every JSON POST."""
    state = Alerts(url="")

    class Handler(BaseHTTPRequestHandler):
        """Records one POST."""

        def do_POST(self) -> None:
            """Record the body; answer 204."""
            state.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield state
    server.shutdown()
    server.server_close()


def oauth_portal(sim: Sim, tmp_path: Path) -> dict[str, str]:
    """The strict simulator with 100 deals and a company, portal 777 installed by OAuth; the env naming it."""
    sim.put("/_sim/config", {"records": "strict", "batch_errors": "whole"})
    records = [{"objectType": "deals", "id": str(n)} for n in range(1, PENDING + 1)]
    sim.post("/_sim/records", {"records": [*records, {"objectType": "companies", "id": "9000"}]})
    sim.post(
        "/_sim/oauth-apps",
        {"client_id": "cid-1", "client_secret": "oauth-secret-1", "refresh_token": "refresh-1", "portal_id": PORTAL},
    )
    portals = tmp_path / "portals.yaml"
    portals.write_text(
        f'portals:\n  "{PORTAL}":\n    oauth:\n      client_id: cid-1\n'
        "      client_secret_env: OAUTH_SECRET\n      refresh_token_env: OAUTH_REFRESH\n"
    )
    return {"HUBLINK_PORTALS_FILE": str(portals), "OAUTH_SECRET": "oauth-secret-1", "OAUTH_REFRESH": "refresh-1"}


def pauses(url: str) -> dict[str, Any]:
    """``GET /api/pauses``."""
    response = requests.get(f"{url}/api/pauses", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def uninstalled(url: str) -> list[dict[str, Any]]:
    """The portals the API says the app is uninstalled from."""
    found: list[dict[str, Any]] = pauses(url)["uninstalled"]
    return found


def association_calls(sim: Sim) -> int:
    """Association calls the simulator answered."""
    by_endpoint = sim.get("/_sim/requests")["by_endpoint"]
    return sum(by_endpoint.get(name, 0) for name in ASSOCIATION_ENDPOINTS)


def token_calls(sim: Sim) -> int:
    """Calls to the OAuth token endpoint."""
    return int(sim.get("/_sim/requests")["by_endpoint"].get("oauth_token", 0))


def dead_letters(url: str) -> list[dict[str, Any]]:
    """Every dead letter, from the HTTP API."""
    response = requests.get(
        f"{url}/api/dead-letters", params={"limit": 500}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5
    )
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def pending_items() -> list[dict[str, str]]:
    """100 deal→company associations of portal 777."""
    return [{**assoc(n, 9000, to_type="companies"), "portalId": PORTAL} for n in range(1, PENDING + 1)]


class TestUninstalled:
    """Portal 777 uninstalled with 100 associations pending."""

    def test_marked_once_no_calls_then_dead_lettered_after_the_hold(
        self, stack: Stack, sim: Sim, redis_client: redis_lib.Redis, tmp_path: Path, alerts: Alerts
    ) -> None:
        """Uninstalled: one alert, one token call and no association call, nothing dead before the hold; after
        it (10.8 s here) all 100 are dead letters ``app_uninstalled``, without a call."""
        env = {
            **oauth_portal(sim, tmp_path),
            "HUBLINK_UNINSTALLED_HOLD_H": "0.003",
            "HUBLINK_ALERT_WEBHOOK_URL": alerts.url,
        }
        url = stack.gunicorn(**env)
        post_associations(url, pending_items())
        sim.post("/_sim/uninstall", {"portalId": int(PORTAL)})
        stack.worker(**env)
        found = wait_for(lambda: uninstalled(url), timeout=20, what="the portal marked uninstalled")
        assert [u["portal"] for u in found] == [PORTAL]
        hold_ends_ms = found[0]["hold_ends_ms"]
        assert hold_ends_ms - found[0]["since_ms"] == int(0.003 * 3_600_000)
        assert "BAD_REFRESH_TOKEN" in found[0]["message"]
        wait_for(lambda: alerts.circuit(), timeout=10, what="the uninstall alert")
        # While it holds: nothing dead, no association call, the one refused refresh and no probe loop.
        holds_for(
            lambda: not dead_letter_ids(redis_client),
            seconds=hold_ends_ms / 1000 - 2 - time.time(),
            interval=0.5,
            what="no dead letter during the hold",
        )
        assert association_calls(sim) == 0
        assert token_calls(sim) == 1
        wait_for(lambda: len(dead_letters(url)) == PENDING, timeout=30, interval=0.5, what="all 100 dead-lettered")
        letters = dead_letters(url)
        assert {(d["reason"], d["category"]) for d in letters} == {("app_uninstalled", "APP_UNINSTALLED")}
        assert min(d["deadAtMs"] for d in letters) >= hold_ends_ms, (letters[0], hold_ends_ms)
        assert association_calls(sim) == 0
        # The hold's end probed once more (a refresh, refused) before the work ended; never a 30-s loop.
        assert token_calls(sim) <= 2
        assert len(alerts.circuit()) == 1, alerts.bodies
        assert "uninstalled" in alerts.circuit()[0]["text"] and alerts.circuit()[0]["reason"] == "app_uninstalled"
        metrics = requests.get(f"{url}/metrics", timeout=5).text
        assert "hublink_portals_uninstalled 1.0" in metrics


class TestReinstalled:
    """Portal 777 uninstalled with 100 pending, then installed again."""

    def test_a_probe_after_the_reinstall_resumes_and_all_100_are_linked(
        self, stack: Stack, sim: Sim, redis_client: redis_lib.Redis, tmp_path: Path, alerts: Alerts
    ) -> None:
        """The probe (every 4 s here, an hour by default) refreshes the token once the app is back: the
        portal resumes, all 100 linked, none dead."""
        env = {
            **oauth_portal(sim, tmp_path),
            "HUBLINK_UNINSTALLED_PROBE_S": "4",
            "HUBLINK_ALERT_WEBHOOK_URL": alerts.url,
        }
        url = stack.gunicorn(**env)
        post_associations(url, pending_items())
        sim.post("/_sim/uninstall", {"portalId": int(PORTAL)})
        stack.worker(**env)
        wait_for(lambda: uninstalled(url), timeout=20, what="the portal marked uninstalled")
        assert association_calls(sim) == 0
        sim.post("/_sim/install", {"portalId": int(PORTAL)})
        wait_for(lambda: len(sim.pairs()) == PENDING, timeout=40, interval=0.5, what="all 100 linked")
        assert not uninstalled(url)
        assert not dead_letter_ids(redis_client)
        wait_for(lambda: len(alerts.circuit()) == 2, timeout=10, what="the resumed alert")
        kinds = [b["kind"] for b in alerts.circuit()]
        assert kinds == ["circuit_open", "circuit_closed"], alerts.bodies

    def test_hublink_resume_resumes_at_once(
        self, stack: Stack, sim: Sim, redis_client: redis_lib.Redis, tmp_path: Path
    ) -> None:
        """With the hourly probe, an operator's ``hublink resume --portal 777`` after the reinstall: all linked."""
        env = oauth_portal(sim, tmp_path)
        url = stack.gunicorn(**env)
        post_associations(url, pending_items())
        sim.post("/_sim/uninstall", {"portalId": int(PORTAL)})
        stack.worker(**env)
        wait_for(lambda: uninstalled(url), timeout=20, what="the portal marked uninstalled")
        sim.post("/_sim/install", {"portalId": int(PORTAL)})
        command = stack.command("resume", ["-m", "flask", "resume", "--portal", PORTAL], FLASK_APP="web", **env)
        assert command.popen.wait(timeout=30) == 0, command.output()
        assert "no longer marked uninstalled" in command.output()
        wait_for(lambda: len(sim.pairs()) == PENDING, timeout=40, interval=0.5, what="all 100 linked")
        assert not uninstalled(url)
        assert not dead_letter_ids(redis_client)


JOURNAL_RULES = """\
rules:
  - name: deal-created
    source: hubspot
    when: {subscriptionType: deal.creation}
    associations:
      - from: {objectType: deals, id: objectId}
        to: {objectType: companies, id: "`9000`"}
"""


class TestTheJournalSaysSo:
    """A journal portal: the journal's APP_UNINSTALL marks it before any refresh fails; APP_INSTALL resumes it."""

    def test_uninstall_and_install_events_mark_and_resume_the_portal(
        self, stack: Stack, sim: Sim, redis_client: redis_lib.Redis, tmp_path: Path, settings: Settings
    ) -> None:
        """``subscriptions apply`` subscribes the journal to installs and uninstalls; the uninstall event marks the
        portal (no refresh asked, no call for the 100 that arrive after); the install event resumes it."""
        env = oauth_portal(sim, tmp_path)
        sim.post("/_sim/records", {"records": [{"objectType": "deals", "id": str(PENDING + 1)}]})
        sim.put("/_sim/config", {"journal_auth": "app"})
        sim.post("/_sim/apps", {"appId": "4242", "clientId": "client-4242", "clientSecret": "secret-4242"})
        portals = Path(env["HUBLINK_PORTALS_FILE"])
        portals.write_text(portals.read_text() + "    journal: true\n")
        rules = tmp_path / "rules.yaml"
        rules.write_text(JOURNAL_RULES)
        configured = replace(
            settings,
            rules_file=str(rules),
            portals_file=str(portals),
            hubspot_client_id="client-4242",
            hubspot_client_secret="secret-4242",
            hubspot_app_id="4242",
            hubspot_developer_token=HUBSPOT_TOKEN,
            public_url="https://hublink.example.com",
        )
        with mock.patch.dict(os.environ, {k: v for k, v in env.items() if k.startswith("OAUTH_")}):
            applied = create_app(configured).test_cli_runner().invoke(args=["hubspot", "subscriptions", "apply"])
        assert "created journal APP_LIFECYCLE_EVENT 4-1916193 APP_UNINSTALL (app-wide)" in applied.output
        env |= {
            "HUBSPOT_CLIENT_ID": "client-4242",
            "HUBSPOT_CLIENT_SECRET": "secret-4242",
            "HUBLINK_JOURNAL_POLL_S": "0.2",
            "HUBLINK_RULES_FILE": str(rules),
        }
        stack.settings = configured
        url = stack.gunicorn(**env)
        stack.worker(**env)
        post_associations(url, [{**assoc(1, 9000, to_type="companies"), "portalId": PORTAL}])
        wait_for(lambda: len(sim.pairs()) == 1, timeout=20, what="the first association linked (a token cached)")
        refreshes = token_calls(sim)

        sim.post("/_sim/uninstall", {"portalId": int(PORTAL)})
        found = wait_for(lambda: uninstalled(url), timeout=20, what="the journal's uninstall read")
        assert "APP_UNINSTALL" in found[0]["message"]
        post_associations(url, [{**assoc(n, 9000, to_type="companies"), "portalId": PORTAL} for n in range(2, 102)])
        calls = association_calls(sim)
        holds_for(  # three seconds of an uninstalled portal with work: no call at all
            lambda: association_calls(sim) == calls and len(sim.pairs()) == 1,
            seconds=3,
            what="no association call while uninstalled",
        )
        assert token_calls(sim) - refreshes <= 1  # at most one refresh (the access token was forgotten)

        sim.post("/_sim/install", {"portalId": int(PORTAL)})
        wait_for(lambda: len(sim.pairs()) == PENDING + 1, timeout=40, interval=0.5, what="all 101 linked")
        assert not uninstalled(url)
        assert not dead_letter_ids(redis_client)
