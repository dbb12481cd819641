"""The ``hublink`` command for real: installed by ``pip install .``, in the project's venv, against Redis."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask.cli import ScriptInfo

from hublink.config.settings import Settings
from hublink.delivery.circuit import Circuit, RedisCircuitStore
from hublink.delivery.pauses import PauseStore
from hublink.store.connections import connect
from hublink.store.keys import Keys
from tests.support.processes import REPO, free_port
from web import create_app
from web.cli.main import cli

pytestmark = pytest.mark.integration

RULES = REPO / "examples" / "deal-workflow" / "rules.yaml"


def clean_env() -> dict[str, str]:
    """The environment of a fresh shell: no HubLink variable, no PYTHONPATH."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("HUBLINK_", "HUBSPOT_", "REDIS_", "PYTHON"))}


def run(settings: Settings, *args: str) -> Result:
    """``hublink ARGS`` in process, with the app built from ``settings``."""
    app = ScriptInfo(create_app=lambda: create_app(settings), set_debug_flag=False)
    return CliRunner().invoke(cli, list(args), obj=app)


class TestInstalled:
    """``pip install .`` gives a working ``hublink``, and ``make venv`` puts one in the project's venv."""

    def test_the_venv_has_hublink_with_help_and_version(self) -> None:
        """``.venv/bin/hublink --help`` and ``--version`` run in a fresh shell (``make venv`` installs it)."""
        script = Path(sys.executable).with_name("hublink")
        assert script.is_file(), f"{script} is missing: run `make venv` (it installs the project)"
        helped = subprocess.run([script, "--help"], env=clean_env(), capture_output=True, text=True, timeout=60)
        assert helped.returncode == 0 and "dead-letters" in helped.stdout, helped.stderr
        version = subprocess.run([script, "--version"], env=clean_env(), capture_output=True, text=True, timeout=60)
        assert version.stdout.strip() == "hublink 0.2.0"

    def test_pip_install_dot_into_a_fresh_venv_needs_no_network(self, tmp_path: Path) -> None:
        """Built offline (--no-index, no build isolation) from a copy of the project; runs from anywhere."""
        source = tmp_path / "src"
        source.mkdir()
        for name in ("hublink", "web", "worker"):
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(REPO / name, source / name)
        venv = tmp_path / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
        # The dependencies (and the build backend) come from this venv; the project itself does not.
        target_site = Path(
            subprocess.run(
                [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        (target_site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        pip = [sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--quiet"]
        installed = subprocess.run(
            [*pip, "--no-index", "--no-deps", "--no-build-isolation", source],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert installed.returncode == 0, installed.stderr[-2000:]
        hublink = venv / "bin" / "hublink"
        version = subprocess.run(
            [hublink, "--version"], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60
        )
        assert version.stdout.strip() == "hublink 0.2.0", version.stderr
        checked = subprocess.run(
            [hublink, "rules", "check", RULES], cwd=tmp_path, env=clean_env(), capture_output=True, text=True
        )
        assert checked.returncode == 0 and "1 rule(s) OK" in checked.stdout, checked.stderr
        where = subprocess.run(
            [venv / "bin" / "python", "-c", "import web, hublink.store.scripts as s; print(web.__file__)"],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
        )
        package = Path(where.stdout.strip()).parent
        assert package.is_relative_to(target_site), where.stderr
        assert (package / "admin" / "templates" / "admin" / "base.html").is_file()
        assert (package.parent / "hublink" / "store" / "lua" / "claim.lua").is_file()


class TestErrorsAgainstRedis:
    """A Redis that does not answer is one line naming REDIS_URL and what to do."""

    def test_redis_down_is_one_line(self, make_settings: object, monkeypatch: pytest.MonkeyPatch) -> None:
        """dead-letters list against a closed port: exit 1, one line, no traceback."""
        url = f"redis://127.0.0.1:{free_port()}/0"
        monkeypatch.setenv("REDIS_URL", url)
        settings = make_settings(redis_url=url, redis_timeout_s=0.5)  # type: ignore[operator]
        result = run(settings, "dead-letters", "list")
        assert result.exit_code == 1
        (line,) = [line for line in result.output.splitlines() if line.strip()]
        assert line.startswith("Error: Redis does not answer at REDIS_URL (127.0.0.1:") and "hublink run" in line

    def test_flask_app_web_tells_it_in_one_line_too(self, make_settings: object) -> None:
        """The same command through ``flask --app web`` (the app's CLI) gives the same one line."""
        settings = make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout_s=0.5)  # type: ignore[operator]
        result = create_app(settings).test_cli_runner().invoke(args=["dead-letters", "list"])
        assert result.exit_code == 1
        (line,) = [line for line in result.output.splitlines() if line.strip()]
        assert line.startswith("Error: Redis does not answer")


class TestReplayWithoutRules:
    """A dry run with no rules file says that no rules are loaded."""

    def test_dry_run_without_rules_warns(self, settings: Settings) -> None:
        """``events replay --all --dry-run`` without HUBLINK_RULES_FILE names the variable."""
        result = run(settings, "events", "replay", "--all", "--dry-run")
        assert "no rules are loaded (HUBLINK_RULES_FILE is not set)" in result.output


class TestResumeAndCircuits:
    """resume tells an operator's pause from an open circuit, and says how to close the circuit."""

    def open_circuit(self, settings: Settings) -> None:
        """Open portal _'s circuit as the breaker does when HubSpot refuses the token's scopes."""
        redis, keys = connect(settings, timeout_s=2.0), Keys(settings.redis_prefix)
        circuit = Circuit(
            portal="_",
            state="open",
            reason="missing_scopes",
            message="HTTP 403, MISSING_SCOPES",
            opened_ms=int(time.time() * 1000),
        )
        assert RedisCircuitStore(redis, keys, PauseStore(redis, keys)).open(circuit, 30_000)

    def test_resume_of_a_portal_held_by_its_circuit_says_so(self, settings: Settings) -> None:
        """Not paused by an operator, but its circuit is open: why, what to do, and the command that closes it."""
        self.open_circuit(settings)
        result = run(settings, "resume", "--portal", "_")
        assert result.exit_code == 0, result.output
        assert "portal _ was not paused by an operator" in result.output
        assert "circuit is open" in result.output and "missing_scopes" in result.output
        assert "hublink resume --portal _ --circuit" in result.output

    def test_resume_circuit_closes_it(self, settings: Settings) -> None:
        """``--circuit`` closes the open circuit; nothing is paused afterwards."""
        self.open_circuit(settings)
        result = run(settings, "resume", "--portal", "_", "--circuit")
        assert result.exit_code == 0 and "closed portal _'s circuit" in result.output, result.output
        assert "nothing is paused" in run(settings, "pauses", "list").output
        assert "nothing is paused" in run(settings, "pauses").output

    def test_resume_of_a_lane_names_its_paused_portal(self, settings: Settings) -> None:
        """A lane whose portal is paused is told to resume the portal."""
        assert run(settings, "pause", "--portal", "_").exit_code == 0
        result = run(settings, "resume", "--lane", "_|deals|contacts")
        assert "portal _ is paused too: resume it with `hublink resume --portal _`" in result.output
