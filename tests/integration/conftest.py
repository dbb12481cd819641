"""Integration fixtures: a private Redis for the session, the simulator, and real gunicorn and worker processes.

Each test gets a flushed database of the session's own redis-server (the session created it, so it may
flush it). Processes listen on free loopback ports and are stopped with deadlines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
import requests

from hublink.config.settings import Settings
from hublink.store.connections import connect
from tests.conftest import ADMIN_TOKEN, API_TOKEN, HUBSPOT_TOKEN
from tests.support.processes import Process, RedisServer, free_port, port_open, python, wait_for


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The session's own redis-server on a free port."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A clean database for this test (flushed before and after: the session owns the server)."""
    client = redis_lib.Redis.from_url(redis_server.url)
    client.flushdb()
    yield redis_server.url
    client.flushdb()
    client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis_lib.Redis]:
    """A raw client on the test's database."""
    client = redis_lib.Redis.from_url(redis_url)
    yield client
    client.close()


@dataclass
class Sim:
    """A running simulator process and a client for its control API."""

    process: Process
    url: str

    def get(self, path: str) -> Any:
        """GET a control-API path and return the JSON."""
        response = requests.get(self.url + path, timeout=5)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any = None) -> Any:
        """POST JSON to a control-API path."""
        response = requests.post(self.url + path, json=body or {}, timeout=5)
        response.raise_for_status()
        return response.json() if response.content else None

    def put(self, path: str, body: Any) -> Any:
        """PUT JSON to a control-API path (``/_sim/config``)."""
        response = requests.put(self.url + path, json=body, timeout=5)
        response.raise_for_status()
        return response.json() if response.content else None

    def associations(self) -> list[dict[str, Any]]:
        """Every association the simulator holds."""
        result: list[dict[str, Any]] = self.get("/_sim/associations")["associations"]
        return result

    def pairs(self) -> set[tuple[str, str, str, str]]:
        """The associations as (fromType, fromId, toType, toId) tuples."""
        return {
            (a["fromObjectType"], a["fromObjectId"], a["toObjectType"], a["toObjectId"]) for a in self.associations()
        }

    def faults(self, **faults: Any) -> None:
        """Install faults (see the simulator's README)."""
        self.post("/_sim/faults", faults)


def start_sim(log_dir: Path, *extra: str) -> Sim:
    """Start ``python -m hubspot_sim`` on a free port and wait until it answers."""
    port = free_port()
    process = Process(
        f"sim-{port}",
        [python(), "-m", "hubspot_sim", "--port", str(port), "--token", HUBSPOT_TOKEN, *extra],
        log_dir=log_dir,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: port_open(port), timeout=15, what="the simulator")
    return Sim(process, url)


@pytest.fixture(scope="session")
def sim_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    """One simulator process for the session (reset for each test by ``sim``)."""
    sim = start_sim(tmp_path_factory.mktemp("sim"))
    yield sim
    sim.process.stop()


@pytest.fixture
def sim(sim_session: Sim) -> Sim:
    """The session's simulator, reset to its start-up state."""
    sim_session.post("/_sim/reset")
    return sim_session


@pytest.fixture
def settings(make_settings: Callable[..., Settings], redis_url: str, sim: Sim) -> Settings:
    """Settings pointing at the test's Redis database and the simulator, with quick retries."""
    return make_settings(
        redis_url=redis_url,
        hubspot_base_url=sim.url,
        retry_base_s=0.05,
        retry_cap_s=0.2,
        hubspot_read_timeout_s=2.0,
        lease_s=3.0,
    )


def env_for(settings: Settings) -> dict[str, str]:
    """The environment variables that reproduce ``settings`` in a child process."""
    env = {
        "REDIS_URL": settings.redis_url,
        "HUBLINK_API_TOKEN": settings.api_token or "",
        "HUBLINK_ADMIN_TOKEN": settings.admin_token or "",
        "HUBSPOT_ACCESS_TOKEN": settings.hubspot_access_token or "",
        "HUBSPOT_BASE_URL": settings.hubspot_base_url,
        "HUBLINK_RETRY_BASE_S": str(settings.retry_base_s),
        "HUBLINK_RETRY_CAP_S": str(settings.retry_cap_s),
        "HUBSPOT_READ_TIMEOUT_S": str(settings.hubspot_read_timeout_s),
        "HUBLINK_LEASE_S": str(settings.lease_s),
        "HUBLINK_MAX_ATTEMPTS": str(settings.max_attempts),
        "HUBSPOT_RATE_LIMIT": str(settings.hubspot_rate_limit),
        "HUBSPOT_BATCH_SIZE": str(settings.batch_size),
        "HUBLINK_FRESH_RECORD_GRACE_S": str(settings.fresh_record_grace_s),
        "HUBLINK_DAILY_LIMIT_DEFER_S": str(settings.daily_limit_defer_s),
        "HUBLINK_ACCOUNT_TIMEZONE": settings.account_timezone,
        "HUBLINK_MAX_RETRY_AFTER_S": str(settings.max_retry_after_s),
        "HUBLINK_CIRCUIT_ERRORS": str(settings.circuit_errors),
        "HUBLINK_CIRCUIT_WINDOW_S": str(settings.circuit_window_s),
        "HUBLINK_CIRCUIT_PROBE_S": str(settings.circuit_probe_s),
        "HUBLINK_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    # Web and workers read the same rules file: the web to validate it, the workers' expanders to run it.
    if settings.rules_file:
        env["HUBLINK_RULES_FILE"] = settings.rules_file
    if settings.rules_source != "file":
        env["HUBLINK_RULES_SOURCE"] = settings.rules_source
    if settings.hubspot_client_secret:
        env["HUBSPOT_CLIENT_SECRET"] = settings.hubspot_client_secret
    if settings.redis_sentinels:
        env["REDIS_SENTINELS"] = ",".join(f"{host}:{port}" for host, port in settings.redis_sentinels)
        env["REDIS_SENTINEL_MASTER"] = settings.redis_sentinel_master or ""
    if settings.redis_min_replicas:
        env["HUBLINK_REDIS_MIN_REPLICAS"] = str(settings.redis_min_replicas)
        env["HUBLINK_REDIS_WAIT_MS"] = str(settings.redis_wait_ms)
    return env


class Stack:
    """Real processes started for one test: workers and gunicorn, stopped at the end."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.processes: list[Process] = []

    def worker(self, name: str = "w1", **env: str) -> Process:
        """Start ``python -m worker`` and wait until RQ has registered it."""
        process = Process(
            f"worker-{name}",
            [python(), "-m", "worker", "--name", f"{name}-{free_port()}"],
            env={**env_for(self.settings), **env},
            log_dir=self.log_dir,
        )
        self.processes.append(process)
        client = connect(self.settings, timeout_s=5)  # through the sentinels when the settings name them
        wait_for(
            lambda: (
                client.scard("rq:workers")
                >= sum(1 for p in self.processes if p.name.startswith("worker") and p.alive())
                or not process.alive()
            ),
            timeout=20,
            what=f"worker {name} to register",
        )
        assert process.alive(), process.output()
        return process

    def gunicorn(self, **env: str) -> str:
        """Start gunicorn serving ``web:create_app()`` as the Procfile does; return its base URL."""
        port = free_port()
        process = Process(
            "gunicorn",
            [python(), "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "web:create_app()"],
            env={**env_for(self.settings), **env, "WEB_CONCURRENCY": "2"},
            log_dir=self.log_dir,
        )
        self.processes.append(process)
        wait_for(lambda: port_open(port) or not process.alive(), timeout=20, what="gunicorn")
        assert process.alive(), process.output()
        return f"http://127.0.0.1:{port}"

    def command(self, name: str, argv: list[str], **env: str) -> Process:
        """Start ``python *argv`` with the stack's environment; it is stopped with the rest, pass or fail."""
        process = Process(name, [python(), *argv], env={**env_for(self.settings), **env}, log_dir=self.log_dir)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL after a deadline)."""
        for process in reversed(self.processes):
            process.stop(timeout=15)


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    """Start real processes on demand; all are stopped when the test ends."""
    s = Stack(settings, tmp_path)
    yield s
    s.stop()


__all__ = ["ADMIN_TOKEN", "API_TOKEN", "HUBSPOT_TOKEN", "Sim", "Stack"]
