"""The image in real containers: its metadata, links made through it, and a SIGTERM mid-drain losing nothing."""

from __future__ import annotations

import json
import threading
import time

import requests

from hublink import __version__
from hublink.domain import signatures
from tests.image.conftest import API_TOKEN, CLIENT_SECRET, FIGURES, Deployment, Engine
from tests.support.processes import REPO, wait_for

DRAIN_SIZE = 2000


def post_items(url: str, items: list[dict[str, str]]) -> None:
    """POST direct-API items in requests of up to 1,000 (the tier's HUBLINK_MAX_ITEMS)."""
    for start in range(0, len(items), 1000):
        response = requests.post(
            f"{url}/api/associations",
            json={"associations": items[start : start + 1000]},
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=30,
        )
        assert response.status_code == 202, response.text


def item(from_id: int, to_id: int) -> dict[str, str]:
    """One direct-API association, deal to contact."""
    return {
        "fromObjectType": "deals",
        "fromObjectId": str(from_id),
        "toObjectType": "contacts",
        "toObjectId": str(to_id),
    }


class TestImage:
    """What the image says about itself."""

    def test_the_image_carries_its_version_runs_as_non_root_and_has_no_compiler(
        self, engine: Engine, image: str
    ) -> None:
        """The OCI label and `hublink --version` give hublink.__version__; the user is not root; no cc is installed."""
        labels = json.loads(engine.run("image", "inspect", "--format", "{{json .Config.Labels}}", image).stdout)
        assert labels["org.opencontainers.image.version"] == __version__
        assert engine.run("run", "--rm", image, "--version").stdout.strip() == f"hublink {__version__}"
        shell = ("run", "--rm", "--entrypoint", "sh", image, "-c")
        assert engine.run(*shell, "id -u").stdout.strip() != "0"
        assert engine.run(*shell, "command -v cc gcc || true").stdout.strip() == ""
        assert engine.run(*shell, "test -e /etc/hublink/rules.yaml || echo absent").stdout.strip() == "absent"


class TestDeployment:
    """Redis, the simulator, the web and two workers as containers."""

    def test_healthchecks_pass_for_the_web_and_each_worker(self, deployment: Deployment) -> None:
        """The image's HEALTHCHECK answers healthy in the web (/healthz) and in each worker (worker --check)."""
        engine = deployment.engine
        web = next(name for name in engine.started if "-web-" in name)
        for name in [web, *deployment.workers]:

            def healthy(container: str = name) -> bool:
                """True when the container's HEALTHCHECK passes."""
                return engine.run("healthcheck", "run", container, check=False).returncode == 0

            wait_for(healthy, timeout=60, interval=0.5, what=f"{name}'s healthcheck")

    def test_healthz_names_the_version(self, deployment: Deployment) -> None:
        """/healthz in the container answers the image's version."""
        answer = requests.get(deployment.web_url + "/healthz", timeout=5).json()
        assert answer.get("version") == __version__

    def test_a_signed_webhook_and_a_direct_api_request_are_linked(self, deployment: Deployment) -> None:
        """A v2-signed workflow webhook (the deal-workflow rules) and a direct-API item end in the simulator."""
        body = json.dumps(json.loads((REPO / "examples" / "deal-workflow" / "event.json").read_bytes())).encode()
        url = deployment.web_url + "/webhooks/workflow"
        headers = {
            "X-HubSpot-Signature": signatures.sign_v2(CLIENT_SECRET, "POST", url, body),
            "X-HubSpot-Signature-Version": "v2",
            "Content-Type": "application/json",
        }
        started = time.monotonic()
        response = requests.post(url, data=body, headers=headers, timeout=10)
        assert response.status_code < 300, response.text
        post_items(deployment.web_url, [item(880001, 990001)])
        expected = {
            ("deals", "5001", "contacts", "7001"),
            ("deals", "5001", "companies", "9001"),
            ("deals", "880001", "contacts", "990001"),
        }
        wait_for(lambda: expected <= deployment.pairs(), timeout=60, interval=0.2, what="the three links")
        FIGURES["webhook + API request to links in the simulator (s)"] = round(time.monotonic() - started, 2)

    def test_sigterm_to_a_worker_mid_drain_loses_nothing(self, deployment: Deployment) -> None:
        """2,000 associations, a worker stopped with SIGTERM while they drain: every one ends in the simulator."""
        engine = deployment.engine
        # 20 batches of 100 at 600 ms each: longer than one drain job (10 s), so the stopped worker finishes
        # its job and the other one takes the rest of the lane.
        deployment.sim_put("/_sim/config", {"latency_ms": 600})
        before = len(deployment.pairs())
        items = [item(700_000 + n, 800_000 + n) for n in range(DRAIN_SIZE)]
        expected = {("deals", i["fromObjectId"], "contacts", i["toObjectId"]) for i in items}
        post_items(deployment.web_url, items)

        def under_way() -> bool:
            """True once the first of the 2,000 is linked."""
            return len(deployment.pairs()) > before

        wait_for(under_way, timeout=60, interval=0.05, what="the drain to start")
        victim = deployment.workers[0]
        signalled = time.monotonic()
        engine.run("stop", "--time", "60", victim, timeout=90)
        stop_s = time.monotonic() - signalled
        state = engine.state(victim)
        in_sim_at_stop = len(expected & deployment.pairs())
        wait_for(lambda: expected <= deployment.pairs(), timeout=180, interval=0.5, what="all 2,000 links")
        deployment.sim_put("/_sim/config", {"latency_ms": 0})
        FIGURES["SIGTERM mid-drain"] = (
            f"worker stopped in {stop_s:.1f} s with exit code {state['ExitCode']}, "
            f"{in_sim_at_stop}/{DRAIN_SIZE} linked at the stop, {DRAIN_SIZE}/{DRAIN_SIZE} in the end"
        )
        assert state["ExitCode"] == 0, engine.logs(victim)[-2000:]
        assert stop_s < 60

    def test_sigterm_to_the_web_under_load_answers_no_5xx_and_loses_no_accepted_item(
        self, deployment: Deployment
    ) -> None:
        """While requests keep coming, SIGTERM stops the web: no answer is a 5xx, and every 202's items are linked.

        Runs last: the session's web is gone afterwards.
        """
        engine = deployment.engine
        web = next(name for name in engine.started if "-web-" in name)
        statuses: list[int] = []
        refused = 0
        accepted: set[tuple[str, str, str, str]] = set()
        stop = threading.Event()

        def load() -> None:
            """Post 10 items a request until told to stop, counting answers and refusals."""
            nonlocal refused
            n = 0
            while not stop.is_set():
                batch = [item(600_000 + n + k, 610_000 + n + k) for k in range(10)]
                n += 10
                try:
                    response = requests.post(
                        f"{deployment.web_url}/api/associations",
                        json={"associations": batch},
                        headers={"Authorization": f"Bearer {API_TOKEN}"},
                        timeout=10,
                    )
                except requests.ConnectionError:
                    refused += 1
                    continue
                statuses.append(response.status_code)
                if response.status_code == 202:
                    accepted.update(("deals", i["fromObjectId"], "contacts", i["toObjectId"]) for i in batch)

        sender = threading.Thread(target=load, daemon=True)
        sender.start()
        wait_for(lambda: len(statuses) >= 20, timeout=30, what="requests answered before the stop")
        signalled = time.monotonic()
        engine.run("stop", "--time", "30", web, timeout=60)
        stop_s = time.monotonic() - signalled
        wait_for(lambda: refused > 0, timeout=30, what="the stopped web to refuse connections")
        stop.set()
        sender.join(timeout=30)
        state = engine.state(web)
        wait_for(lambda: accepted <= deployment.pairs(), timeout=120, interval=0.5, what="every accepted item linked")
        FIGURES["SIGTERM to the web under load"] = (
            f"stopped in {stop_s:.1f} s with exit code {state['ExitCode']}; {len(statuses)} answers, "
            f"{sum(s >= 500 for s in statuses)} of them 5xx; {len(accepted)} items accepted, all linked"
        )
        assert not [s for s in statuses if s >= 500]
        assert set(statuses) == {202}
        assert state["ExitCode"] == 0, engine.logs(web)[-2000:]
