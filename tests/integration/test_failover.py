"""A Redis failover under load, on real processes: kill -9 the primary and watch HubLink follow Sentinel.

Topology: a primary, a replica and three sentinels (``redis-server --sentinel``, down-after 1 s), the
simulator, gunicorn and two ``python -m worker`` processes, all pointed at the sentinels
(``REDIS_SENTINELS``); a thread posts one association per request to ``POST /api/associations``. The
primary is SIGKILLed; its process manager (here, the test) brings it back, and the sentinels make it a
replica of the new primary. No HubLink process is restarted.

What is measured (and written to ``failover-<n>.json`` in the test's directory, and to the terminal):
the window during which intake refused (503), when 2xx came back, and how many accepted associations
never reached the simulator or the dead-letter store. With ``HUBLINK_REDIS_MIN_REPLICAS=1`` that number
must be zero; with 0 it is reported (asynchronous replication can lose the last acknowledged writes).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from hublink.config.settings import Settings
from hublink.domain.errors import StoreUnavailableError
from hublink.intake.inbox import Inbox
from hublink.store.connections import connect, store_errors
from hublink.store.keys import Keys
from tests.conftest import API_TOKEN
from tests.integration.conftest import Sim, Stack
from tests.integration.helpers import dead_letter_ids, settled
from tests.support.processes import RedisServer, SentinelGroup, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]

#: Requests per second the load thread aims at (one association each).
LOAD_RATE = 40
#: Intake must answer 2xx again this soon after the kill, without restarting anything.
RECOVERY_BOUND_S = 15.0


@dataclass
class Answer:
    """One request of the load: when it was sent and answered, its status, and the pair it asked for."""

    sent: float
    answered: float
    status: int
    code: str
    pair: tuple[str, str, str, str]
    ids: list[str] = field(default_factory=list)


class Load:
    """A thread posting one new association per request at :data:`LOAD_RATE` until stopped."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)
        self._session = requests.Session()

    def _run(self) -> None:
        """Post until stopped, recording every answer (a connection error is status 0)."""
        n = 0
        while not self._stop.is_set():
            n += 1
            pair = ("deals", str(1_000_000 + n), "contacts", str(2_000_000 + n))
            names = ("fromObjectType", "fromObjectId", "toObjectType", "toObjectId")
            body = {"associations": [dict(zip(names, pair, strict=True))]}
            sent = time.monotonic()
            try:
                response = self._session.post(
                    f"{self.base}/api/associations",
                    json=body,
                    headers={"Authorization": f"Bearer {API_TOKEN}"},
                    timeout=10,
                )
                status = response.status_code
                data = response.json()
                code = data.get("error", {}).get("code", "") if status >= 400 else ""
                ids = data.get("ids", []) if status == 202 else []
            except requests.RequestException as exc:
                status, code, ids = 0, type(exc).__name__, []
            self.answers.append(Answer(sent, time.monotonic(), status, code, pair, ids))
            # Pace the load (not a wait for a condition): the next request is due 1/LOAD_RATE after this one.
            self._stop.wait(max(0.0, sent + 1 / LOAD_RATE - time.monotonic()))

    def start(self) -> Load:
        """Start posting."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop posting and wait for the request in flight."""
        self._stop.set()
        self._thread.join(timeout=15)

    def accepted_since(self, t: float) -> int:
        """How many requests sent after ``t`` were answered 2xx."""
        return sum(1 for a in list(self.answers) if a.sent > t and a.status == 202)


def scheduler_beat_since(redis: Any, since: datetime) -> bool:
    """True when some RQ scheduler wrote its heartbeat after ``since``."""
    for key in redis.scan_iter("rq:scheduler:*"):
        beat = redis.hget(key, "last_heartbeat")
        if beat and datetime.strptime(beat.decode(), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) > since:
            return True
    return False


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    """A primary, one replica and three sentinels on loopback."""
    g = SentinelGroup(tmp_path / "redis", replicas=1).start()
    yield g
    g.stop()


def run_failover(stack: Stack, sim: Sim, group: SentinelGroup, tmp_path: Path, min_replicas: int) -> dict[str, float]:
    """Kill -9 the primary under load; return what was measured (see the module docstring)."""
    base = stack.gunicorn()
    workers = [stack.worker("w1"), stack.worker("w2")]
    load = Load(base).start()
    try:
        started = time.monotonic()
        wait_for(lambda: load.accepted_since(started) >= 2 * LOAD_RATE, timeout=30, what="load flowing")

        old_port = group.primary_port()
        old = group.server(old_port)
        killed_at = time.monotonic()
        old.kill()  # SIGKILL: nothing written after this moment is kept by the old primary
        new_port = wait_for(
            lambda: (p := group.primary_port()) != old_port and p, timeout=30, what="the sentinels to elect a primary"
        )
        elected_at = time.monotonic()
        elected_wall = datetime.now(UTC)
        # The process manager restarts the dead server; the sentinels keep it a replica of the new primary.
        group.servers[group.servers.index(old)] = RedisServer(old.workdir, port=old_port, replicaof=new_port).start()

        wait_for(lambda: load.accepted_since(elected_at) >= LOAD_RATE, timeout=RECOVERY_BOUND_S, what="2xx again")
        resumed_at = time.monotonic()
        wait_for(lambda: load.accepted_since(resumed_at) >= 2 * LOAD_RATE, timeout=30, what="load after recovery")
    finally:
        load.stop()

    after = [a for a in load.answers if a.answered > killed_at]
    refused = [a for a in after if a.status != 202]
    assert {(a.status, a.code) for a in refused} <= {(503, "store_unavailable"), (503, "not_replicated")}, {
        (a.status, a.code) for a in refused
    }
    last_refusal = max((a.answered for a in refused), default=killed_at)
    back = min((a.answered for a in after if a.status == 202 and a.sent >= last_refusal), default=float("inf"))
    assert back - killed_at < RECOVERY_BOUND_S

    # Workers carry on: alive, and everything accepted drains through the new primary.
    redis = connect(stack.settings, timeout_s=5)
    # RQ's scheduler (a child process with a connection rebuilt from the worker's) beats on the new primary.
    wait_for(lambda: scheduler_beat_since(redis, elected_wall), timeout=30, what="RQ's scheduler on the new primary")
    wait_for(lambda: settled(redis), timeout=90, interval=0.2, what="every association to settle")
    assert all(worker.alive() for worker in workers), [w.output()[-2000:] for w in workers]
    accepted = {aid: a.pair for a in load.answers if a.status == 202 for aid in a.ids}
    linked, dead = sim.pairs(), dead_letter_ids(redis)
    lost = [aid for aid, pair in accepted.items() if pair not in linked and aid not in dead]
    redis.close()

    measured = {
        "min_replicas": min_replicas,
        "requests": len(load.answers),
        "accepted": len(accepted),
        "refused_503": len(refused),
        "not_replicated": sum(1 for a in refused if a.code == "not_replicated"),
        "election_s": round(elected_at - killed_at, 2),
        "last_refusal_s": round(last_refusal - killed_at, 2),
        "intake_back_s": round(back - killed_at, 2),
        "slowest_answer_s": round(max(a.answered - a.sent for a in after), 2),
        "lost": len(lost),
    }
    (tmp_path / f"failover-{min_replicas}.json").write_text(json.dumps(measured))
    sys.stderr.write(f"\nfailover measured: {json.dumps(measured)}\n")
    return measured


@pytest.fixture
def failover_settings(
    make_settings: Callable[..., Settings], group: SentinelGroup, sim: Sim
) -> Callable[[int], Settings]:
    """Settings for the Sentinel group (REDIS_URL names only the database) with ``min_replicas``."""

    def make(min_replicas: int) -> Settings:
        """The test's settings with HUBLINK_REDIS_MIN_REPLICAS = ``min_replicas``."""
        return make_settings(
            redis_url="redis://127.0.0.1:1/0",  # host and port are the sentinels' to name
            redis_sentinels=tuple(("127.0.0.1", port) for port in group.sentinel_ports),
            redis_sentinel_master=group.master,
            redis_min_replicas=min_replicas,
            redis_wait_ms=500,
            hubspot_base_url=sim.url,
            retry_base_s=0.05,
            retry_cap_s=0.2,
            hubspot_read_timeout_s=2.0,
            lease_s=3.0,
        )

    return make


class TestFailover:
    """Killing the Redis primary under load: intake recovers by itself, workers carry on, and what is lost."""

    def test_with_one_replica_confirmed_nothing_acknowledged_is_lost(
        self, failover_settings: Callable[[int], Settings], group: SentinelGroup, sim: Sim, tmp_path: Path
    ) -> None:
        """With MIN_REPLICAS=1, intake is back within 15 s and every 2xx ends in HubSpot or a dead letter."""
        stack = Stack(failover_settings(1), tmp_path)
        try:
            measured = run_failover(stack, sim, group, tmp_path, 1)
        finally:
            stack.stop()
        assert measured["lost"] == 0

    def test_without_waiting_for_replicas_intake_recovers_and_the_loss_is_measured(
        self, failover_settings: Callable[[int], Settings], group: SentinelGroup, sim: Sim, tmp_path: Path
    ) -> None:
        """With MIN_REPLICAS=0, intake is back within 15 s; what asynchronous replication lost is reported."""
        stack = Stack(failover_settings(0), tmp_path)
        try:
            measured = run_failover(stack, sim, group, tmp_path, 0)
        finally:
            stack.stop()
        assert measured["accepted"] > 0


class TestDemotedPrimary:
    """A primary demoted to replica (a planned failover) refuses writes with READONLY: clients move on."""

    def test_writes_follow_the_sentinels_to_the_new_primary(
        self, failover_settings: Callable[[int], Settings], group: SentinelGroup
    ) -> None:
        """After SENTINEL FAILOVER, a client that was connected to the old primary writes to the new one."""
        settings = failover_settings(0)
        client = connect(settings, timeout_s=2)
        inbox = Inbox(client, Keys(settings.redis_prefix), claim_idle_s=30)
        inbox.add_events([], received_at=time.time())  # connected to the first primary
        old_port = group.primary_port()
        plain = connect(f"redis://127.0.0.1:{old_port}/0", timeout_s=2)
        import redis as redis_lib

        redis_lib.Redis(port=group.sentinel_ports[0]).sentinel_failover(group.master)
        wait_for(lambda: group.primary_port() != old_port, timeout=30, what="the planned failover")
        wait_for(
            lambda: plain.info("replication")["role"] == "slave", timeout=30, what="the old primary to be a replica"
        )
        # The pooled connection pointed at the old primary: READONLY (or a connection Sentinel dropped), retried.
        inbox.add_events([], received_at=time.time())
        assert client.info("replication")["role"] == "master"
        assert client.connection_pool.connection_kwargs.get("port") is None  # the sentinels name the server
        # A plain client of the demoted server gets StoreUnavailableError, never a bare ResponseError.
        with pytest.raises(StoreUnavailableError), store_errors():
            plain.xadd("hl:inbox", {"kind": "events"})
        client.close()
        plain.close()
