"""Faults and attacks on real processes: slow clients, Redis killed under load, poison work.

Each test starts what it needs (gunicorn as the Procfile runs it, ``python -m worker``, the simulator, and
for the Redis test a private redis-server it can kill) and asserts the exact end state. The fast tier runs
in ``make test``; the tests marked ``faults`` (full sizes) run in ``make test-faults`` with the rest.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis as redis_lib
import requests

from hublink.domain import signatures
from hublink.domain.associations import AssociationRequest
from hublink.lanes import EventGroup, LaneStore
from hublink.store.keys import Keys
from tests.integration.conftest import Sim, Stack, env_for
from tests.integration.helpers import assert_exact_end_state, dead_letter_ids, wait_settled
from tests.support.processes import RedisServer, python, wait_for

pytestmark = pytest.mark.integration

CLIENT_SECRET = "fault-suite-client-secret"
#: What a well-behaved request may take while the web tier is under attack.
MAX_LATENCY_S = 1.0


class Trickler:
    """A client that sends ``head`` and then ``piece`` every ``every_s`` seconds on one connection, until stopped."""

    def __init__(self, port: int, head: bytes, piece: bytes, every_s: float = 0.5) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(head)
        self._piece = piece
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """Send a piece every ``every_s`` seconds (pacing, not waiting for a condition: that is what it does)."""
        while not self._stop.wait(self._every_s):
            try:
                self.sock.sendall(self._piece)
            except OSError:
                return

    def answer(self, timeout: float) -> bytes:
        """What the server sent before closing or within ``timeout`` seconds."""
        self.sock.settimeout(timeout)
        chunks = []
        try:
            while chunk := self.sock.recv(65536):
                chunks.append(chunk)
        except OSError:
            pass
        return b"".join(chunks)

    def close(self) -> None:
        """Stop trickling and close the connection."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def signed_webhook(url: str, n: int) -> requests.Response:
    """POST one correctly v3-signed HubSpot event on a fresh connection."""
    uri = f"{url}/webhooks/hubspot"
    ts = int(time.time() * 1000)
    body = json.dumps(
        [
            {
                "eventId": 5_000_000 + n,
                "subscriptionId": 1,
                "portalId": 62515,
                "appId": 1,
                "occurredAt": ts,
                "subscriptionType": "deal.creation",
                "attemptNumber": 0,
                "objectId": 7_000_000 + n,
            }
        ]
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "Connection": "close",
        "X-HubSpot-Signature-v3": signatures.sign_v3(CLIENT_SECRET, "POST", uri, body, ts),
        "X-HubSpot-Request-Timestamp": str(ts),
    }
    return requests.post(uri, data=body, headers=headers, timeout=10)


@pytest.fixture
def tricklers() -> Iterator[list[Trickler]]:
    """Slow clients opened by a test, all closed at its end."""
    opened: list[Trickler] = []
    yield opened
    for trickler in opened:
        trickler.close()


class TestSlowClients:
    """Clients that trickle headers or bodies cannot take the web tier down."""

    def test_healthz_and_signed_webhooks_answer_within_a_second_while_20_clients_trickle(
        self, stack: Stack, tricklers: list[Trickler]
    ) -> None:
        """10 clients trickling headers and 10 trickling bodies for 5 s: every probe answers 200 within 1 s."""
        stack.settings = replace(stack.settings, hubspot_client_secret=CLIENT_SECRET)
        url = stack.gunicorn(HUBLINK_BODY_TIMEOUT_S="2")
        port = int(url.rsplit(":", 1)[1])
        for _ in range(10):
            tricklers.append(Trickler(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-Slow: 1\r\n"))
            tricklers.append(
                Trickler(
                    port,
                    b"POST /webhooks/hubspot HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100000\r\n\r\n[",
                    b"0" * 10,
                )
            )
        latencies: list[float] = []
        deadline = time.monotonic() + 5
        n = 0
        while time.monotonic() < deadline:
            for kind in ("healthz", "webhook"):
                started = time.monotonic()
                if kind == "healthz":
                    response = requests.get(f"{url}/healthz", headers={"Connection": "close"}, timeout=10)
                else:
                    response = signed_webhook(url, n)
                latencies.append(time.monotonic() - started)
                assert response.status_code == 200, response.text
            n += 1
        assert n >= 5
        assert max(latencies) <= MAX_LATENCY_S, sorted(latencies)[-5:]

    def test_a_body_slower_than_the_deadline_gets_408_and_the_connection_is_closed(
        self, stack: Stack, tricklers: list[Trickler]
    ) -> None:
        """A body still trickling at HUBLINK_BODY_TIMEOUT_S is answered 408 request_timeout, and the server hangs up."""
        url = stack.gunicorn(HUBLINK_BODY_TIMEOUT_S="1")
        port = int(url.rsplit(":", 1)[1])
        slow = Trickler(
            port,
            b"POST /webhooks/hubspot HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n[",
            b"0" * 10,
            every_s=0.2,
        )
        tricklers.append(slow)
        started = time.monotonic()
        answer = slow.answer(timeout=10)
        elapsed = time.monotonic() - started
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answer[:200]
        assert json.loads(body)["error"]["code"] == "request_timeout"
        assert elapsed < 5, "the server held the connection after answering"


def enqueue(redis_url: str, n: int, *, to_id: str = "456") -> list[str]:
    """Put ``n`` associations in one lane the way the expander does; return their ids."""
    lanes = LaneStore(redis_lib.Redis.from_url(redis_url), Keys(), lease_s=30, dedup_window_s=60)
    ids: list[str] = []
    for start in range(0, n, 100):
        batch = [
            AssociationRequest.create(
                from_object_type="deals",
                from_object_id=str(1_000_000 + i),
                to_object_type="contacts",
                to_object_id=to_id,
                received_at=time.time(),
            )
            for i in range(start, min(start + 100, n))
        ]
        result = lanes.enqueue([EventGroup(batch)])
        ids.extend(i for group in result.ids if group for i in group)
    return ids


def check(stack: Stack, name: str) -> subprocess.CompletedProcess[str]:
    """``python -m worker --check --name NAME`` with the stack's environment."""
    return subprocess.run(
        [python(), "-m", "worker", "--check", "--name", name],
        env={**os.environ, **env_for(stack.settings)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def survive_redis_kill(stack: Stack, sim: Sim, tmp_path: Path, n: int, batch_size: int) -> None:
    """Kill -9 Redis (AOF on) while one worker delivers ``n`` associations at 400 ms a call; restart it."""
    server = RedisServer(tmp_path / "aof", appendonly=True, appendfsync="always").start()
    try:
        stack.settings = replace(stack.settings, redis_url=server.url, batch_size=batch_size)
        ids = enqueue(server.url, n)
        sim.post("/_sim/faults", {"latency_ms": 400})
        worker = stack.worker("survivor")
        name = next(p for p in (worker.popen.args or []) if str(p).startswith("survivor-"))
        wait_for(lambda: sim.get("/_sim/requests")["total"] >= 3, timeout=30, what="deliveries under way")
        wait_for(lambda: check(stack, str(name)).returncode == 0, timeout=15, what="the worker to be ready")
        server.kill()
        # Redis stays down until the worker has noticed (its loops log it and back off), then comes back.
        wait_for(lambda: "Redis unavailable" in worker.output(), timeout=30, what="the worker to notice")
        down = check(stack, str(name))
        assert down.returncode == 1 and down.stderr.startswith("not ready: Redis did not answer"), down
        server.start()
        redis = redis_lib.Redis.from_url(server.url)
        wait_settled(redis, timeout=180)
        assert worker.alive(), worker.output()[-3000:]
        sim.post("/_sim/faults", {"latency_ms": 0})
        pair = {i: ("deals", str(1_000_000 + k), "contacts", "456") for k, i in enumerate(ids)}
        assert_exact_end_state(sim, redis, pair)
        assert not dead_letter_ids(redis)
        # Only what was in flight when Redis died (one batch, its lease expired) may have been sent twice.
        assert sim.get("/_sim/requests")["inputs_total"] - n <= batch_size
        assert check(stack, str(name)).returncode == 0
    finally:
        sim.post("/_sim/faults", {"latency_ms": 0})
        stack.stop()
        server.stop()


class TestRedisKilledUnderLoad:
    """A worker outlives a kill -9 of Redis mid-delivery and finishes the work alone."""

    def test_a_worker_survives_redis_killed_and_restarted_with_300_associations_in_flight(
        self, stack: Stack, sim: Sim, tmp_path: Path
    ) -> None:
        """300 associations, 400 ms per call, Redis killed and restarted: all reach HubSpot, the worker lives."""
        survive_redis_kill(stack, sim, tmp_path, n=300, batch_size=10)

    @pytest.mark.faults
    def test_a_worker_survives_redis_killed_and_restarted_with_2000_associations_in_flight(
        self, stack: Stack, sim: Sim, tmp_path: Path
    ) -> None:
        """2,000 associations, 400 ms per call, Redis killed and restarted: all reach HubSpot, the worker lives."""
        survive_redis_kill(stack, sim, tmp_path, n=2000, batch_size=50)


class TestPoisonWork:
    """An association that cannot be read is dead-lettered once, before any HubSpot call."""

    @pytest.mark.parametrize(
        ("where", "value"),
        [
            ("member", "{id}\x1f{seen}\x1fa\x1fnot-an-id\x1f456\x1fapi\x1f1.0\x1f\x1f\x1f"),
            ("member", "{id}\x1f{seen}\x1fa\x1f1000002\x1f456\x1fapi\x1fnan\x1f\x1f\x1f"),
            ("member", "{id}\x1f{seen}\x1fa\x1ftoo\x1ffew"),
            ("member", "{id}\x1f{seen}\x1fz\x1f{{}}"),
            ("member", '{id}\x1f{seen}\x1fj\x1f{{"from_object_type": 5, "from_object_id": "1"}}'),
            ("member", "{id}"),
            ("hist", "5"),
            ("attempts", "many"),
        ],
    )
    def test_a_corrupt_association_is_dead_lettered_and_its_lane_delivered(
        self, stack: Stack, sim: Sim, redis_client: redis_lib.Redis, where: str, value: str
    ) -> None:
        """One corrupt member or field in a lane of five: dead-lettered as unreadable, the four others linked."""
        ids = enqueue(stack.settings.redis_url, 5)
        poison = ids[2]
        queue = "hl:q:_|deals|contacts"
        corrupt = value.format(id=poison, seen=int(time.time() * 1000))
        if where == "member":
            redis_client.lset(queue, 2, corrupt)
        else:
            redis_client.hset(f"hl:a:{poison}", where, corrupt)
        stack.worker()
        wait_settled(redis_client, timeout=30)
        assert dead_letter_ids(redis_client) == {poison}
        letter = json.loads(redis_client.get(f"hl:dl:{poison}") or b"{}")
        assert letter["reason"].startswith("unreadable") and letter["category"] == "UNREADABLE"
        assert sim.pairs() == {("deals", str(1_000_000 + k), "contacts", "456") for k in (0, 1, 3, 4)}
        # Never sent, never retried: HubSpot saw the four others once, in one call.
        seen = sim.get("/_sim/requests")
        assert seen["inputs_total"] == 4 and seen["total"] == 1
        assert redis_client.hget("hl:m:associations_dead_lettered", "source=unknown,category=UNREADABLE") == b"1"

    def test_an_association_key_that_is_not_a_hash_is_dead_lettered(
        self, stack: Stack, sim: Sim, redis_client: redis_lib.Redis
    ) -> None:
        """A state key overwritten with a string: the claim survives it, dead-letters it, and links the rest."""
        ids = enqueue(stack.settings.redis_url, 3)
        redis_client.set(f"hl:a:{ids[0]}", "garbage")
        stack.worker()
        wait_settled(redis_client, timeout=30)
        assert dead_letter_ids(redis_client) == {ids[0]}
        assert len(sim.pairs()) == 2


def test_readiness_fails_with_one_line_when_no_worker_runs(stack: Stack) -> None:
    """``python -m worker --check`` exits 1 naming the missing heartbeat when no worker runs."""
    result = check(stack, "nobody")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["not ready: no heartbeat from nobody"]
