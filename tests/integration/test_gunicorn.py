"""gunicorn as the Procfile runs it: what it binds besides its port, and how it answers what it refuses itself."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
import redis as redis_lib
import requests

from tests.integration.conftest import Stack
from tests.integration.test_faults import CLIENT_SECRET, signed_webhook
from tests.support.processes import RedisServer, python, wait_for

pytestmark = pytest.mark.integration


class TestControlSocket:
    """gunicorn's control socket is off unless an instance is given a path of its own."""

    def test_two_instances_bind_no_control_socket_by_default(self, stack: Stack, tmp_path: Path) -> None:
        """Two instances of one user, both serving: neither binds gunicorn.ctl in the user's home or runtime dir."""
        home, runtime = tmp_path / "home", tmp_path / "run"
        home.mkdir()
        runtime.mkdir()
        for _ in range(2):
            url = stack.gunicorn(HOME=str(home), XDG_RUNTIME_DIR=str(runtime))
            wait_for(lambda u=url: requests.get(f"{u}/healthz", timeout=5).ok, timeout=20, what="gunicorn to serve")
        assert not [p for d in (home, runtime) for p in d.rglob("*") if p.name.endswith(".ctl")]

    def test_an_instance_given_a_path_binds_its_own_socket(self, stack: Stack, tmp_path: Path) -> None:
        """GUNICORN_CONTROL_SOCKET per instance: each binds the path it was given, and only that one."""
        paths = [tmp_path / "a.ctl", tmp_path / "b.ctl"]
        for path in paths:
            stack.gunicorn(GUNICORN_CONTROL_SOCKET=str(path), HOME=str(tmp_path))
        for path in paths:
            wait_for(path.is_socket, timeout=20, what=f"gunicorn to bind {path.name}")
        assert not (tmp_path / ".gunicorn").exists()


#: A client of its own process: ``clients`` gevent connections, each requesting a path every ``every_s`` seconds
#: for ``seconds`` (paced: a machine busy answering them would starve every other request of CPU).
#: Prints the count of each status (or exception) as JSON. A separate process, so that the flood does not
#: take the test's own interpreter (and the webhooks it sends) from it.
FLOOD = """
import json, sys, time
from gevent import monkey
monkey.patch_all()
import gevent, socket
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
clients, seconds, every_s = int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
counts = {}
deadline = time.monotonic() + seconds
ask = f"GET {path} HTTP/1.1\\r\\nHost: {host}\\r\\n\\r\\n".encode()
def client():
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=30) as conn:
                answers = conn.makefile("rb")
                while time.monotonic() < deadline:
                    conn.sendall(ask)
                    status = answers.readline().split()[1].decode()
                    length = 0
                    while (line := answers.readline()) not in (b"\\r\\n", b""):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    answers.read(length)
                    counts[status] = counts.get(status, 0) + 1
                    gevent.sleep(every_s)
        except Exception as exc:
            counts[type(exc).__name__] = counts.get(type(exc).__name__, 0) + 1
gevent.joinall([gevent.spawn(client) for _ in range(clients)])
print(json.dumps(counts))
"""


class TestRedisPool:
    """Probes open to anyone cannot take intake's Redis connections, and a refusal for lack of one says so."""

    @pytest.mark.faults
    def test_300_clients_on_readyz_leave_every_signed_webhook_its_connection(
        self, stack: Stack, tmp_path: Path
    ) -> None:
        """300 clients on /readyz while Redis stalls writes 1.5 s at a time: every signed webhook meanwhile gets 200."""
        server = RedisServer(tmp_path / "redis").start()
        try:
            stack.settings = replace(stack.settings, redis_url=server.url, hubspot_client_secret=CLIENT_SECRET)
            url = stack.gunicorn()
            redis = redis_lib.Redis.from_url(server.url)
            served = int(redis.info("stats")["total_commands_processed"])
            flood = subprocess.Popen(
                [python(), "-c", FLOOD, "127.0.0.1", url.rsplit(":", 1)[1], "/readyz", "300", "25", "0.5"],
                stdout=subprocess.PIPE,
                text=True,
            )
            answers: list[tuple[int, str]] = []
            try:
                wait_for(
                    lambda: int(redis.info("stats")["total_commands_processed"]) > served + 600,
                    timeout=30,
                    what="the probes to flow",
                )
                for _ in range(4):
                    # Every probe under way holds its connection while Redis holds writes back.
                    redis.execute_command("CLIENT", "PAUSE", 1500, "WRITE")
                    with ThreadPoolExecutor(8) as senders:
                        answers += senders.map(send, [(url, len(answers) + k) for k in range(16)])
            finally:
                out, _ = flood.communicate(timeout=120)
        finally:
            server.stop()
        refused = [a for a in answers if a[0] != 200]
        assert not refused, (len(refused), len(answers), refused[:3])
        probes = json.loads(out)
        assert probes.get("200"), probes

    def test_a_probe_that_finds_no_free_connection_says_so(self, stack: Stack, tmp_path: Path) -> None:
        """While Redis stalls, 40 /metrics and /readyz at once: those left without a connection say the pool is busy."""
        server = RedisServer(tmp_path / "redis").start()
        try:
            stack.settings = replace(stack.settings, redis_url=server.url)
            url = stack.gunicorn()
            redis = redis_lib.Redis.from_url(server.url)
            redis.execute_command("CLIENT", "PAUSE", 1500, "ALL")
            paths = ["/metrics", "/readyz"] * 20
            with ThreadPoolExecutor(40) as probes:
                answers = list(probes.map(lambda path: requests.get(url + path, timeout=30), paths))
        finally:
            server.stop()
        metrics = [
            a.json() for path, a in zip(paths, answers, strict=True) if path == "/metrics" and a.status_code == 503
        ]
        ready = [a.json() for path, a in zip(paths, answers, strict=True) if path == "/readyz" and a.status_code == 503]
        assert metrics and ready, [a.status_code for a in answers]
        # Those that got a connection waited on Redis itself (a timeout on a slow machine is store_unavailable).
        codes = [m["error"]["code"] for m in metrics]
        assert "store_busy" in codes and set(codes) <= {"store_busy", "store_unavailable"}, metrics[:3]
        assert any("StoreBusyError" in r["problems"][0] for r in ready), ready[:3]


def send(job: tuple[str, int]) -> tuple[int, str]:
    """One signed webhook (``job``: the base URL and a number); its status and the start of its body."""
    url, n = job
    try:
        response = signed_webhook(url, n)
    except requests.RequestException as exc:
        return 0, type(exc).__name__
    return response.status_code, response.text[:200]


def raw_request(url: str, request: bytes) -> tuple[bytes, bytes]:
    """Send ``request`` as is on a fresh connection; the answer's head and body."""
    host, port = url.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request)
        chunks = []
        with contextlib.suppress(OSError):
            while chunk := conn.recv(65536):
                chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return head, body


class TestGunicornRefusals:
    """What gunicorn refuses before the app sees it is answered in HubLink's JSON error shape."""

    @pytest.mark.parametrize(
        ("request_bytes", "status", "code"),
        [
            (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414", "uri_too_long"),
            (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n", b"400", "bad_request"),
            (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Name: a\r\n\r\n", b"400", "bad_request"),
            (b"NOT A REQUEST LINE\r\n\r\n", b"400", "bad_request"),
        ],
        ids=["long request line", "control byte in a header", "space in a header name", "no request line"],
    )
    def test_a_refusal_by_gunicorn_is_json(self, stack: Stack, request_bytes: bytes, status: bytes, code: str) -> None:
        """The status gunicorn chose, Content-Type application/json, and {"error": {"code", "message", ...}}."""
        url = stack.gunicorn()
        head, body = raw_request(url, request_bytes)
        assert head.split(b" ", 2)[1] == status, head
        assert b"content-type: application/json" in head.lower(), head
        error = json.loads(body)["error"]
        assert error["code"] == code and error["message"], error
