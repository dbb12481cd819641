"""Workers that come back: after a full Redis, after ``kill -9`` under the same ``--name``, and a probe that knows.

Each test runs real ``python -m worker`` processes against a private redis-server (one it may fill and
kill), with the simulator as HubSpot. The fast tier holds Redis full for a few seconds once every worker
has met the refusal (which is what ended the workers); the faults tier holds it a full minute.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis as redis_lib

from tests.integration.conftest import Sim, Stack, env_for
from tests.integration.helpers import assert_exact_end_state, dead_letter_ids, wait_settled
from tests.integration.test_faults import check, enqueue
from tests.support.processes import Process, RedisServer, free_port, python, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, which it may fill to ``maxmemory`` and kill."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def unnamed_worker(stack: Stack) -> Process:
    """``python -m worker`` without ``--name`` (RQ and HubLink name it host:pid), stopped with the stack."""
    process = Process(
        f"worker-unnamed-{free_port()}", [python(), "-m", "worker"], env=env_for(stack.settings), log_dir=stack.log_dir
    )
    stack.processes.append(process)
    return process


def hold_full(redis: redis_lib.Redis, workers: list[Process], *, hold_s: float) -> None:
    """Refuse every write (``maxmemory`` 1 byte, noeviction) until each worker met the refusal, then ``hold_s``."""
    redis.config_set("maxmemory-policy", "noeviction")
    redis.config_set("maxmemory", 1)
    try:
        for worker in workers:
            wait_for(
                lambda w=worker: "OutOfMemoryError" in w.output() or "Redis is full" in w.output() or not w.alive(),
                timeout=60,
                what=f"{worker.name} to meet the full Redis",
            )
        deadline = time.monotonic() + hold_s
        while time.monotonic() < deadline:
            dead = [w.name for w in workers if not w.alive()]
            assert not dead, f"workers exited while Redis was full: {dead}\n" + workers[0].output()[-3000:]
            time.sleep(0.2)
    finally:
        redis.config_set("maxmemory", 0)


def outlive_full_redis(stack: Stack, sim: Sim, server: RedisServer, *, hold_s: float) -> None:
    """A named and an unnamed worker deliver a backlog through ``hold_s`` at ``maxmemory``; all of it arrives."""
    stack.settings = replace(stack.settings, redis_url=server.url, batch_size=5)
    redis = redis_lib.Redis.from_url(server.url)
    ids = enqueue(server.url, 200)
    sim.faults(latency_ms=200)
    named = stack.worker("full")
    unnamed = unnamed_worker(stack)
    wait_for(lambda: sim.get("/_sim/requests")["total"] >= 2, timeout=30, what="deliveries under way")
    hold_full(redis, [named, unnamed], hold_s=hold_s)
    sim.faults(latency_ms=0)
    wait_settled(redis, timeout=120)
    for worker in (named, unnamed):
        assert worker.alive(), worker.output()[-3000:]
    pair = {i: ("deals", str(1_000_000 + k), "contacts", "456") for k, i in enumerate(ids)}
    assert_exact_end_state(sim, redis, pair)
    assert not dead_letter_ids(redis)
    # Both are registered with RQ again (under their names) and take new work.
    wait_for(lambda: redis.scard("rq:workers") == 2, timeout=30, what="both workers registered again")
    more = enqueue(server.url, 5, to_id="789")
    wait_settled(redis, timeout=30)
    assert {("deals", str(1_000_000 + k), "contacts", "789") for k in range(5)} <= sim.pairs(), more


class TestFullRedis:
    """A worker (named or not) outlives Redis at ``maxmemory`` and delivers once writes are taken again."""

    def test_named_and_unnamed_workers_outlive_a_full_redis_and_drain_after(
        self, stack: Stack, sim: Sim, private_redis: RedisServer
    ) -> None:
        """Both workers meet the OOM refusal, stay up through it, then deliver every association exactly once."""
        outlive_full_redis(stack, sim, private_redis, hold_s=5)

    @pytest.mark.faults
    def test_named_and_unnamed_workers_outlive_a_minute_at_maxmemory(
        self, stack: Stack, sim: Sim, private_redis: RedisServer
    ) -> None:
        """A full minute at ``maxmemory`` with a backlog: both workers live, and drain it all after."""
        outlive_full_redis(stack, sim, private_redis, hold_s=60)


def worker_name(process: Process) -> str:
    """The ``--name`` a test worker was started with."""
    argv = [str(a) for a in (process.popen.args or [])]
    return argv[argv.index("--name") + 1]


def restart_after_kill(stack: Stack, sim: Sim, server: RedisServer, *, workers: int, n: int) -> None:
    """Kill -9 ``workers`` named workers mid-delivery and start each again under its name at once.

    Each is registered with RQ within 10 s, and the ``n`` associations all arrive exactly once.
    """
    stack.settings = replace(stack.settings, redis_url=server.url, batch_size=5)
    redis = redis_lib.Redis.from_url(server.url)
    ids = enqueue(server.url, n)
    sim.faults(latency_ms=200)
    first = [stack.worker(f"phoenix{k}") for k in range(workers)]
    names = [worker_name(w) for w in first]
    wait_for(lambda: sim.get("/_sim/requests")["total"] >= 2, timeout=30, what="deliveries under way")
    for worker in first:
        worker.kill_group()
    started = time.monotonic()
    second = []
    for name in names:
        process = Process(
            f"worker-{name}-again",
            [python(), "-m", "worker", "--name", name],
            env=env_for(stack.settings),
            log_dir=stack.log_dir,
        )
        stack.processes.append(process)
        second.append(process)
    for name, process in zip(names, second, strict=True):
        wait_for(
            lambda n=name, p=process: (
                redis.sismember("rq:workers", f"rq:worker:{n}") and "started with PID" in p.output()
            ),
            timeout=max(10 - (time.monotonic() - started), 0.1),
            what=f"{name}, restarted, to register with RQ",
        )
    assert time.monotonic() - started < 10
    sim.faults(latency_ms=0)
    wait_settled(redis, timeout=120)
    for process in second:
        assert process.alive(), process.output()[-3000:]
    pair = {i: ("deals", str(1_000_000 + k), "contacts", "456") for k, i in enumerate(ids)}
    assert_exact_end_state(sim, redis, pair)
    assert not dead_letter_ids(redis)
    for name in names:
        assert check(stack, name).returncode == 0


class TestRestartUnderTheSameName:
    """A worker killed with ``-9`` and started again under its ``--name`` takes over at once."""

    def test_a_worker_restarted_after_kill_9_starts_within_10_s_and_delivers_its_work(
        self, stack: Stack, sim: Sim, private_redis: RedisServer
    ) -> None:
        """kill -9 mid-delivery, the same --name started at once: registered within 10 s, all work delivered."""
        restart_after_kill(stack, sim, private_redis, workers=1, n=100)

    @pytest.mark.faults
    def test_both_named_workers_restarted_after_kill_9_take_over_500_associations(
        self, stack: Stack, sim: Sim, private_redis: RedisServer
    ) -> None:
        """Both named workers killed with -9 and restarted under their names: both back in 10 s, 500 delivered."""
        restart_after_kill(stack, sim, private_redis, workers=2, n=500)


class TestReadiness:
    """``python -m worker --check`` answers for a live process, not for the key a dead one left."""

    def test_check_is_not_ready_right_after_kill_9_though_the_heartbeat_is_fresh(
        self, stack: Stack, private_redis: RedisServer
    ) -> None:
        """Ready while the worker runs; right after its kill -9 (heartbeat seconds old) not ready, naming why."""
        stack.settings = replace(stack.settings, redis_url=private_redis.url)
        worker = stack.worker("probe")
        name = worker_name(worker)
        wait_for(lambda: check(stack, name).returncode == 0, timeout=15, what="the worker to be ready")
        redis = redis_lib.Redis.from_url(private_redis.url)
        worker.kill_group()
        assert redis.exists(f"hl:hb:{name}")
        result = check(stack, name)
        assert result.returncode == 1, result
        assert result.stderr.startswith(f"not ready: no live worker holds the name {name}"), result.stderr

    def test_check_is_ready_for_a_live_worker_without_a_name(self, stack: Stack, private_redis: RedisServer) -> None:
        """Without --name, --check finds this host's live worker (named host:pid) and answers ready."""
        stack.settings = replace(stack.settings, redis_url=private_redis.url)
        worker = unnamed_worker(stack)
        probe = [python(), "-m", "worker", "--check"]
        env = {**os.environ, **env_for(stack.settings)}
        wait_for(
            lambda: subprocess.run(probe, env=env, capture_output=True, timeout=30, check=False).returncode == 0,
            timeout=20,
            what="--check to answer ready",
        )
        worker.signal(signal.SIGKILL)
        worker.popen.wait(timeout=10)
        result = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 1, result
