"""HubSpot's real behaviour (issue 11) from the simulator process over HTTP: its flags, and the webhook sender.

The simulator runs as ``python -m hubspot_sim`` with the flags under test; a webhook receiver runs in the
test on a free loopback port. Every wait polls with a deadline.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from hubspot_sim.signatures import sign_v1, sign_v3
from tests.conftest import HUBSPOT_TOKEN
from tests.integration.conftest import Sim, start_sim
from tests.support.processes import wait_for

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {HUBSPOT_TOKEN}"}
BATCH = "/crm/associations/2026-03/deals/contacts/batch/associate/default"
V4_BATCH = "/crm/v4/associations/deals/contacts/batch/associate/default"
SINGLE = "/crm/objects/2026-03/deals/{}/associations/default/contacts/{}"
SECRET = "webhook-client-secret"


def inputs(*pairs: tuple[str, str]) -> dict[str, Any]:
    """A default batch body."""
    return {"inputs": [{"from": {"id": f}, "to": {"id": t}} for f, t in pairs]}


@pytest.fixture(scope="module")
def strict_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    """A simulator started with --records strict, a seed, per-input batch errors and a daily limit."""
    folder = tmp_path_factory.mktemp("strict-sim")
    seed = folder / "seed.json"
    records = [{"objectType": "deals", "id": "1"}, {"objectType": "contacts", "id": "2"}]
    seed.write_text(json.dumps({"records": records}), encoding="utf-8")
    flags = ["--records", "strict", "--seed", str(seed), "--batch-errors", "per-input"]
    sim = start_sim(folder, *flags, "--daily-limit", "1000", "--timezone", "America/New_York")
    yield sim
    sim.process.stop()


@pytest.fixture
def strict(strict_sim: Sim) -> Sim:
    """The strict simulator, reset to its start-up state."""
    strict_sim.post("/_sim/reset")
    return strict_sim


class TestDefaults:
    """The simulator started without the new flags: whole-batch errors, any record, no daily limit."""

    @pytest.mark.parametrize("path", [BATCH, V4_BATCH])
    def test_an_invalid_id_fails_the_whole_batch(self, sim: Sim, path: str) -> None:
        """400 naming each invalid id as TYPE=id, and nothing associated."""
        sim.post("/_sim/invalid-ids", {"ids": ["38374264688", "666"]})
        response = requests.post(
            sim.url + path, json=inputs(("1", "2"), ("666", "2"), ("3", "38374264688")), headers=AUTH, timeout=5
        )
        body = response.json()
        assert response.status_code == 400
        assert body["context"] == {"INVALID_OBJECT_IDS": ["DEAL=666 is not valid", "CONTACT=38374264688 is not valid"]}
        assert (body["status"], body["category"], body["message"]) == (
            "error",
            "VALIDATION_ERROR",
            "One or more associations are invalid",
        )
        assert body["correlationId"] == response.headers["X-HubSpot-Correlation-Id"]
        assert sim.pairs() == set()

    def test_a_duplicate_pair_fails_the_batch(self, sim: Sim) -> None:
        """The same pair twice answers 400 naming it."""
        response = requests.post(sim.url + BATCH, json=inputs(("1", "2"), ("1", "2")), headers=AUTH, timeout=5)
        assert response.status_code == 400
        assert response.json()["context"] == {"DUPLICATE_ASSOCIATIONS": ["DEAL=1 -> CONTACT=2"]}

    def test_results_list_both_directions(self, sim: Sim) -> None:
        """A batch of one pair answers deal→contact (3) and contact→deal (4)."""
        body = requests.post(sim.url + BATCH, json=inputs(("1", "2")), headers=AUTH, timeout=5).json()
        got = [(r["associationSpec"]["associationTypeId"], r["from"]["id"], r["to"]["id"]) for r in body["results"]]
        assert got == [(3, "1", "2"), (4, "2", "1")]

    def test_a_pair_without_a_default_is_refused(self, sim: Sim) -> None:
        """contacts → products has no default association: 400."""
        path = "/crm/objects/2026-03/contacts/1/associations/default/products/2"
        response = requests.put(sim.url + path, headers=AUTH, timeout=5)
        assert (response.status_code, response.json()["category"]) == (400, "VALIDATION_ERROR")

    def test_a_declared_custom_type_associates(self, sim: Sim) -> None:
        """2-555 is refused until POST /_sim/object-types declares it."""
        path = "/crm/objects/2026-03/2-555/1/associations/default/contacts/2"
        assert requests.put(sim.url + path, headers=AUTH, timeout=5).status_code == 400
        assert sim.post("/_sim/object-types", {"objectTypes": ["2-555"]}) == {"objectTypes": ["2-555"]}
        assert requests.put(sim.url + path, headers=AUTH, timeout=5).status_code == 200

    def test_no_daily_headers_without_a_daily_limit(self, sim: Sim) -> None:
        """Without --daily-limit answers carry no daily headers."""
        response = requests.put(sim.url + SINGLE.format(1, 2), headers=AUTH, timeout=5)
        assert "X-HubSpot-RateLimit-Daily" not in response.headers


class TestFlags:
    """--records strict, --seed, --batch-errors per-input, --daily-limit and --timezone together."""

    def test_unseeded_ids_are_invalid_per_input(self, strict: Sim) -> None:
        """Seeded deal 1 and contact 2 associate; the input naming contact 3 gets an errors[] entry."""
        body = requests.post(strict.url + BATCH, json=inputs(("1", "2"), ("1", "3")), headers=AUTH, timeout=5).json()
        assert body["numErrors"] == 1
        assert body["errors"][0]["context"]["objectId"] == ["3"]
        assert strict.pairs() == {("deals", "1", "contacts", "2")}

    def test_a_single_put_naming_an_unseeded_id_answers_404(self, strict: Sim) -> None:
        """404 OBJECT_NOT_FOUND naming the missing contact."""
        response = requests.put(strict.url + SINGLE.format(1, 9), headers=AUTH, timeout=5)
        assert (response.status_code, response.json()["category"]) == (404, "OBJECT_NOT_FOUND")
        assert response.json()["context"]["objectId"] == ["9"]

    def test_a_new_record_becomes_valid_after_visible_after_ms(self, strict: Sim) -> None:
        """A contact seeded with visibleAfterMs is refused at first, then associates once visible."""
        strict.post("/_sim/records", {"visibleAfterMs": 300, "records": [{"objectType": "contacts", "id": "7"}]})
        first = requests.put(strict.url + SINGLE.format(1, 7), headers=AUTH, timeout=5)
        assert first.status_code == 404
        wait_for(
            lambda: requests.put(strict.url + SINGLE.format(1, 7), headers=AUTH, timeout=5).status_code == 200,
            timeout=5,
            what="contact 7 to become visible",
        )

    def test_every_answer_carries_the_daily_headers(self, strict: Sim) -> None:
        """Successes, refusals and reads all carry the daily allowance and what is left of it."""
        answers = [
            requests.put(strict.url + SINGLE.format(1, 2), headers=AUTH, timeout=5),
            requests.put(strict.url + SINGLE.format(1, 9), headers=AUTH, timeout=5),
            requests.get(strict.url + "/crm/objects/2026-03/deals/1", headers=AUTH, timeout=5),
        ]
        assert [a.status_code for a in answers] == [200, 404, 200]
        assert {a.headers["X-HubSpot-RateLimit-Daily"] for a in answers} == {"1000"}
        assert [a.headers["X-HubSpot-RateLimit-Daily-Remaining"] for a in answers] == ["999", "998", "997"]

    def test_past_the_daily_limit_hubspot_s_daily_429(self, strict: Sim) -> None:
        """With the allowance used up, 429 policyName DAILY; the config names the time zone."""
        assert strict.get("/_sim/config")["timezone"] == "America/New_York"
        requests.put(strict.url + "/_sim/config", json={"daily_limit": 1}, timeout=5).raise_for_status()
        assert requests.put(strict.url + SINGLE.format(1, 2), headers=AUTH, timeout=5).status_code == 200
        refused = requests.put(strict.url + SINGLE.format(1, 2), headers=AUTH, timeout=5)
        assert refused.status_code == 429
        assert (refused.json()["policyName"], refused.json()["message"]) == (
            "DAILY",
            "You have reached your daily limit.",
        )
        assert refused.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"

    def test_bad_flag_values_exit_2(self, tmp_path: Path) -> None:
        """An unknown mode or time zone, or a daily limit of 0, stops the simulator with exit status 2."""
        for flags in (
            ["--batch-errors", "some"],
            ["--records", "few"],
            ["--timezone", "Mars/Base"],
            ["--daily-limit", "0"],
        ):
            done = subprocess.run(
                [sys.executable, "-m", "hubspot_sim", "--port", "0", *flags],
                capture_output=True,
                timeout=20,
                check=False,
            )
            assert done.returncode == 2, flags


class Receiver:
    """A webhook receiver on a free loopback port: answers statuses from a script, records each request."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            """Records the POST and answers the next scripted status."""

            def do_POST(self) -> None:
                """Record, then answer."""
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/hubspot?portal=62515"

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver answering 500, 503, then 200."""
    running = Receiver(500, 503, 200)
    yield running
    running.stop()


def deliveries(sim: Sim) -> list[dict[str, Any]]:
    """GET /_sim/webhooks/deliveries."""
    listed: list[dict[str, Any]] = sim.get("/_sim/webhooks/deliveries")["deliveries"]
    return listed


class TestWebhookSender:
    """POST /_sim/webhooks/deliver signs, sends, and retries on HubSpot's schedule."""

    def test_signed_retried_and_delivered(self, sim: Sim, receiver: Receiver) -> None:
        """Two failures then a 200: three signed POSTs, attempt numbers 0, 1, 2; the delivery ends delivered."""
        events = [{"eventId": 7, "subscriptionType": "deal.creation", "objectId": 42, "portalId": 62515}]
        response = requests.post(
            sim.url + "/_sim/webhooks/deliver",
            json={"url": receiver.url, "clientSecret": SECRET, "events": events, "retryScale": 0.0001},
            timeout=5,
        )
        assert response.status_code == 202
        delivery_id = response.json()["id"]
        delivered = wait_for(
            lambda: [d for d in deliveries(sim) if d["id"] == delivery_id and d["state"] == "delivered"],
            timeout=10,
            what="the delivery to succeed",
        )[0]
        assert [a["status"] for a in delivered["attempts"]] == [500, 503, 200]
        assert [json.loads(r["body"])[0]["attemptNumber"] for r in receiver.received] == [0, 1, 2]
        for request in receiver.received:
            headers, body = request["headers"], request["body"]
            timestamp = int(headers["X-HubSpot-Request-Timestamp"])
            assert headers["X-HubSpot-Signature-v3"] == sign_v3(SECRET, "POST", receiver.url, body, timestamp)
            assert headers["X-HubSpot-Signature"] == sign_v1(SECRET, body)
            assert headers["X-HubSpot-Signature-Version"] == "v1"
            assert request["path"] == "/hooks/hubspot?portal=62515"

    def test_an_unreachable_receiver_fails_after_eleven_attempts(self, sim: Sim) -> None:
        """Connection refused every time: 11 attempts, each with an error, then failed."""
        closed = Receiver(200)
        url = closed.url
        closed.stop()  # nothing listens there any more
        body = {"url": url, "clientSecret": SECRET, "events": [{"eventId": 1}], "retryScale": 0.00001}
        delivery_id = requests.post(sim.url + "/_sim/webhooks/deliver", json=body, timeout=5).json()["id"]
        failed = wait_for(
            lambda: [d for d in deliveries(sim) if d["id"] == delivery_id and d["state"] == "failed"],
            timeout=15,
            what="the delivery to give up",
        )[0]
        assert len(failed["attempts"]) == 11
        assert all("error" in attempt for attempt in failed["attempts"])

    @pytest.mark.parametrize("url", ["http://example.com/hook", "http://192.0.2.1/hook", "https://api.hubapi.com/"])
    def test_only_loopback_urls(self, sim: Sim, url: str) -> None:
        """A target off the machine is refused with 400 naming url, and nothing is delivered."""
        body = {"url": url, "clientSecret": SECRET, "events": [{"eventId": 1}]}
        response = requests.post(sim.url + "/_sim/webhooks/deliver", json=body, timeout=5)
        assert (response.status_code, response.json()["category"]) == (400, "VALIDATION_ERROR")
        assert "url" in response.json()["message"]
        assert deliveries(sim) == []

    def test_reset_forgets_deliveries(self, sim: Sim, receiver: Receiver) -> None:
        """POST /_sim/reset empties the list."""
        body = {"url": receiver.url, "clientSecret": SECRET, "events": [{"eventId": 1}], "retryScale": 0}
        requests.post(sim.url + "/_sim/webhooks/deliver", json=body, timeout=5).raise_for_status()
        wait_for(lambda: deliveries(sim)[0]["state"] == "delivered", timeout=10, what="the delivery")
        sim.post("/_sim/reset")
        assert deliveries(sim) == []
