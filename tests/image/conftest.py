"""The image tier: HubLink's container image built and run as real containers (``make test-image``).

The image is built on the local Debian base (``scripts/image.py base``: no registry is reachable on these
machines), then Redis, the simulator, the web and two workers run as containers on the host's network,
each on a free loopback port. Nothing here runs under ``make test``: only ``-m image`` selects it. Where no
container engine is installed or installable, the tier skips with one line saying so.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests

from tests.support.processes import REPO, free_port, port_open, wait_for

REDIS_IMAGE = "localhost/hublink-redis:bookworm"
HUBSPOT_TOKEN = "pat-na1-image-tier-token-0123456789"
API_TOKEN = "image-tier-api-token-0123456789"
CLIENT_SECRET = "image-tier-client-secret-0123"
#: The figures the tier measures, printed at the end of the run (and kept in tests/artifacts/).
FIGURES: dict[str, Any] = {}


def image_script() -> ModuleType:
    """scripts/image.py as a module (the same code ``make image`` runs)."""
    spec = importlib.util.spec_from_file_location("hublink_image_script", REPO / "scripts" / "image.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test here ``image``; unless ``-m image`` selected them, skip them (they take minutes)."""
    here = Path(__file__).parent
    selected = "image" in (config.option.markexpr or "")
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.image)
            if not selected:
                item.add_marker(pytest.mark.skip(reason="image tier: run `make test-image`"))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the measured figures, and keep them in tests/artifacts/image-figures.json."""
    if not FIGURES:
        return
    terminalreporter.section("image tier figures")
    for name, value in FIGURES.items():
        terminalreporter.line(f"{name}: {value}")
    out = REPO / "tests" / "artifacts"
    out.mkdir(parents=True, exist_ok=True)
    (out / "image-figures.json").write_text(json.dumps(FIGURES, indent=2) + "\n")


@dataclass
class Engine:
    """The container engine's argv prefix, and the containers this session started (removed at the end)."""

    cmd: list[str]
    started: list[str] = field(default_factory=list)

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run one engine command and return its result."""
        return subprocess.run([*self.cmd, *args], capture_output=True, text=True, check=check, timeout=timeout)

    def start(
        self, name: str, image: str, *args: str, env: dict[str, str] | None = None, opts: tuple[str, ...] = ()
    ) -> str:
        """Start a detached container on the host's network; return its name."""
        env_args = [a for k, v in (env or {}).items() for a in ("-e", f"{k}={v}")]
        self.run("run", "-d", "--name", name, "--network", "host", *env_args, *opts, image, *args)
        self.started.append(name)
        return name

    def logs(self, name: str) -> str:
        """Everything a container printed."""
        result = self.run("logs", name, check=False)
        return result.stdout + result.stderr

    def state(self, name: str) -> dict[str, Any]:
        """The container's State (Running, ExitCode, ...)."""
        found: dict[str, Any] = json.loads(self.run("inspect", "--format", "{{json .State}}", name).stdout)
        return found

    def remove_all(self) -> None:
        """Remove every container this session started, running or not."""
        for name in reversed(self.started):
            with contextlib.suppress(subprocess.SubprocessError):
                self.run("rm", "--force", "--time", "5", name, check=False)
        self.started.clear()


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """podman (runc, the project's containers.conf) or docker; the tier skips where neither is installed."""
    script = image_script()
    found = script.engine()
    if found is None:
        pytest.skip("image tier: no container engine (podman or docker) is installed or installable here")
    engine = Engine(script.engine_command(found))
    yield engine
    engine.remove_all()


@pytest.fixture(scope="session")
def image(engine: Engine) -> str:
    """HubLink's image built on the local base (the base and the test Redis image built once and kept)."""
    script = image_script()
    script.build_base(engine.cmd)
    if not script.image_exists(engine.cmd, REDIS_IMAGE):
        engine.run(
            "build", "--isolation", "chroot", "-f", str(Path(__file__).parent / "Containerfile.redis"),
            "--build-arg", f"BASE={script.LOCAL_BASE}", "-t", REDIS_IMAGE, str(Path(__file__).parent), timeout=600,
        )  # fmt: skip
    tag = f"{script.IMAGE}:{script.version()}"
    FIGURES["image build (s, layers cached where unchanged)"] = round(
        script.build_image(engine.cmd, script.LOCAL_BASE, tag)
    )
    FIGURES["image size on the local base (MB)"] = round(script.image_size_mb(engine.cmd, tag))
    FIGURES["local base size (MB)"] = round(script.image_size_mb(engine.cmd, script.LOCAL_BASE))
    return str(tag)


@dataclass
class Deployment:
    """The running containers of one session: their names and the loopback URLs they answer on."""

    engine: Engine
    image: str
    redis_url: str
    sim_url: str
    web_url: str
    workers: list[str]
    env: dict[str, str]
    opts: tuple[str, ...]

    def sim(self, path: str) -> Any:
        """GET a simulator control-API path."""
        response = requests.get(self.sim_url + path, timeout=10)
        response.raise_for_status()
        return response.json()

    def sim_put(self, path: str, body: Any) -> None:
        """PUT JSON to a simulator control-API path."""
        requests.put(self.sim_url + path, json=body, timeout=10).raise_for_status()

    def pairs(self) -> set[tuple[str, str, str, str]]:
        """Every association the simulator holds, as (fromType, fromId, toType, toId)."""
        return {
            (a["fromObjectType"], a["fromObjectId"], a["toObjectType"], a["toObjectId"])
            for a in self.sim("/_sim/associations")["associations"]
        }


@pytest.fixture(scope="session")
def deployment(engine: Engine, image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Redis, the simulator, the web and two workers, each a container of the image (Redis: its own)."""
    run_id = uuid.uuid4().hex[:8]
    secrets = tmp_path_factory.mktemp("secrets")
    # The API token and HubSpot's token reach the containers as files (NAME_FILE), as Kubernetes gives them.
    (secrets / "api_token").write_text(API_TOKEN + "\n")
    (secrets / "hubspot_token").write_text(HUBSPOT_TOKEN + "\n")
    # Readable by the image's user (uid 10001), as a Secret volume's files are.
    for path in [secrets, *secrets.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    redis_port, sim_port, web_port = free_port(), free_port(), free_port()
    engine.start(
        f"hublink-test-redis-{run_id}", REDIS_IMAGE,
        "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--appendonly", "yes",
        "--save", "",
    )  # fmt: skip
    wait_for(lambda: port_open(redis_port), timeout=30, what="Redis in its container")
    engine.start(
        f"hublink-test-sim-{run_id}", image, "-m", "hubspot_sim", "--port", str(sim_port), "--token", HUBSPOT_TOKEN,
        opts=("--entrypoint", "python"),
    )  # fmt: skip
    wait_for(lambda: port_open(sim_port), timeout=30, what="the simulator in its container")
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "HUBLINK_API_TOKEN_FILE": "/run/secrets/hublink/api_token",
        "HUBSPOT_ACCESS_TOKEN_FILE": "/run/secrets/hublink/hubspot_token",
        "HUBSPOT_CLIENT_SECRET": CLIENT_SECRET,
        "HUBSPOT_BASE_URL": f"http://127.0.0.1:{sim_port}",
        "HUBLINK_RULES_FILE": "/etc/hublink/rules.yaml",
        "HUBLINK_MAX_ITEMS": "1000",
        # Batches of 100 with a slowed simulator make one lane's drain outlast a drain job's 10 s budget, so
        # that a worker stopped mid-drain leaves work for the other one.
        "HUBSPOT_BATCH_SIZE": "100",
        "HUBLINK_RETRY_BASE_S": "0.05",
        "HUBLINK_RETRY_CAP_S": "0.5",
        "HUBLINK_LEASE_S": "10",
        "HOST": "127.0.0.1",
        "PORT": str(web_port),
        "WEB_CONCURRENCY": "2",
    }
    opts = (
        "-v", f"{secrets}:/run/secrets/hublink:ro",
        "-v", f"{REPO / 'examples' / 'deal-workflow' / 'rules.yaml'}:/etc/hublink/rules.yaml:ro",
    )  # fmt: skip
    web_url = f"http://127.0.0.1:{web_port}"
    started = time.monotonic()
    web = engine.start(f"hublink-test-web-{run_id}", image, "web", env=env, opts=opts)

    def ready() -> bool:
        """True once /readyz answers 200; fails at once if the web container has exited."""
        if not engine.state(web)["Running"]:
            pytest.fail(f"the web container exited:\n{engine.logs(web)[-3000:]}")
        try:
            return requests.get(web_url + "/readyz", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    wait_for(ready, timeout=120, interval=0.1, what="the web container's /readyz")
    FIGURES["web start-up to ready (s)"] = round(time.monotonic() - started, 1)
    # On the host's network every container would share the host's name, and two workers would both be named
    # host:1 (the default name is host:pid); a host name of their own each, as compose and Kubernetes give.
    workers = [
        engine.start(name, image, "worker", env=env, opts=(*opts, "--hostname", name))
        for name in (f"hublink-test-worker{n}-{run_id}" for n in (1, 2))
    ]
    deployment = Deployment(engine, image, env["REDIS_URL"], env["HUBSPOT_BASE_URL"], web_url, workers, env, opts)
    try:
        yield deployment
    except BaseException:
        raise
    finally:
        for name in engine.started:
            (tmp_path_factory.getbasetemp() / f"{name}.log").write_text(engine.logs(name))
        engine.remove_all()
