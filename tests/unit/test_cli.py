"""The ``hublink`` command in process: its command list, its version, offline commands, one-line errors."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask.cli import ScriptInfo

import hublink
import hublink.domain.errors
import hublink.domain.rules
from hublink.config.settings import Settings
from web import create_app
from web.cli import COMMANDS
from web.cli.errors import one_line
from web.cli.main import cli

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "examples" / "deal-workflow" / "rules.yaml"
EVENT = REPO / "examples" / "deal-workflow" / "event.json"


def run(*args: str, app: Callable[[], object] = create_app) -> Result:
    """Invoke ``hublink ARGS`` as the console script does (the app is built only by commands that need it)."""
    return CliRunner().invoke(cli, list(args), obj=ScriptInfo(create_app=app, set_debug_flag=False))


def lines(result: Result) -> list[str]:
    """The non-empty lines the command wrote (stdout and stderr together)."""
    return [line for line in result.output.splitlines() if line.strip()]


class TestCommandList:
    """Every documented command is there, under one naming scheme, in both entry points."""

    def test_help_lists_the_processes_and_every_operator_group(self) -> None:
        """web, worker, run and the operator groups the docs name are all in ``hublink --help``."""
        result = run("--help")
        assert result.exit_code == 0
        for name in (
            "web",
            "worker",
            "run",
            "dead-letters",
            "events",
            "trace",
            "pause",
            "resume",
            "pauses",
            "backfill",
            "rules",
            "hubspot",
            "admin",
            "inbox",
            "privacy",
        ):
            assert f"  {name} " in result.output, name

    def test_version_is_the_one_in_hublink_and_the_package_reads_it_from_there(self) -> None:
        """``hublink --version`` prints hublink.__version__, which pyproject.toml names as the version's source."""
        result = run("--version")
        assert (result.exit_code, result.output.strip()) == (0, f"hublink {hublink.__version__}")
        project = tomllib.loads((REPO / "pyproject.toml").read_text())
        assert "version" in project["project"]["dynamic"]
        assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "hublink.__version__"}
        assert project["project"]["scripts"] == {"hublink": "web.cli.main:main"}

    def test_flask_app_web_lists_the_same_operator_commands(self, make_settings: Callable[..., Settings]) -> None:
        """``flask --app web …`` keeps working: the app's CLI holds every operator command."""
        app = create_app(make_settings())
        for command in COMMANDS:
            assert app.cli.get_command(None, command.name or "") is command  # type: ignore[arg-type]

    def test_backfill_is_a_group_whose_default_is_start(self) -> None:
        """``backfill RULE`` is ``backfill start RULE``; ``cancel`` and ``list`` sit beside it."""
        result = run("backfill", "--help")
        assert result.exit_code == 0 and all(f"  {v} " in result.output for v in ("start", "cancel", "list"))
        assert "Apply RULE" in run("backfill", "deal-created", "--help").output


class TestOfflineCommands:
    """rules check and rules try need no token and no Redis: they read the files they are given."""

    def test_rules_check_needs_no_token(self) -> None:
        """With no HubLink variable at all, a good rules file is reported OK."""
        result = run("rules", "check", str(RULES))
        assert result.exit_code == 0, result.output
        assert lines(result) == [f"{RULES}: 1 rule(s) OK"]

    def test_rules_try_needs_no_token(self) -> None:
        """An event is tried against a rules file with nothing configured."""
        result = run("rules", "try", str(RULES), "--source", "workflow", "--event", str(EVENT))
        assert result.exit_code == 0, result.output
        assert "link" in result.output

    def test_rules_check_without_a_file_says_how_to_give_one(self) -> None:
        """No FILE and no HUBLINK_RULES_FILE: a usage error naming both."""
        result = run("rules", "check")
        assert result.exit_code == 2 and "HUBLINK_RULES_FILE" in result.output


class TestOneLineErrors:
    """Every error is one line naming the variable or file and what to do; never a traceback."""

    def test_a_missing_token_is_one_line_naming_it(self) -> None:
        """A command that needs the app, run without HUBLINK_API_TOKEN, names the variable."""
        result = run("dead-letters", "list", app=lambda: create_app(configure_logging=False))
        assert result.exit_code == 1
        (line,) = lines(result)
        assert line.startswith("Error: HUBLINK_API_TOKEN is required but not set") and ".env.example" in line

    def test_an_unreadable_rules_file_is_one_line_naming_it(self, tmp_path: Path) -> None:
        """A rules file that does not exist is named with what to check."""
        missing = tmp_path / "nope.yaml"
        result = run("rules", "check", str(missing))
        assert result.exit_code == 1
        (line,) = lines(result)
        assert str(missing) in line and "check the path" in line

    def test_an_event_file_that_is_not_json_is_one_line_naming_it(self, tmp_path: Path) -> None:
        """rules try with a broken event file names the file."""
        event = tmp_path / "event.json"
        event.write_text("{not json")
        result = run("rules", "try", str(RULES), "--source", "workflow", "--event", str(event))
        assert result.exit_code == 1
        (line,) = lines(result)
        assert str(event) in line and "not valid JSON" in line

    @pytest.mark.parametrize(
        ("error", "expected"),
        [
            (
                OSError(2, "No such file or directory", "/etc/hublink/portals.yaml"),
                "/etc/hublink/portals.yaml: No such",
            ),
            (hublink.domain.errors.StoreUnavailableError("connection refused"), "Redis does not answer at REDIS_URL"),
        ],
    )
    def test_known_errors_read_as_one_line(self, error: BaseException, expected: str) -> None:
        """File and Redis failures become one line saying where and what to do."""
        line = one_line(error)
        assert line is not None and line.startswith(expected) and "\n" not in line

    def test_invalid_rules_are_one_line_pointing_to_rules_check(self) -> None:
        """A rules file with several problems is told by its first, with how to see the rest."""
        error = hublink.domain.rules.RulesError(["r.yaml:3: rule 'a': x", "r.yaml:9: rule 'b': y"])
        assert (
            one_line(error) == "invalid rules: r.yaml:3: rule 'a': x (and 1 more: `hublink rules check` lists them all)"
        )


class TestProcesses:
    """web, worker and run replace the CLI with their program, passing options through."""

    @pytest.fixture
    def started(self, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
        """The argument lists the process commands would run, instead of running them."""
        seen: list[list[str]] = []
        monkeypatch.setattr("web.cli.main._replace_with", seen.append)
        return seen

    def test_web_runs_gunicorn_with_the_projects_config(self, started: list[list[str]]) -> None:
        """``hublink web --workers 3`` is gunicorn -c gunicorn.conf.py --workers 3 web:create_app()."""
        assert run("web", "--workers", "3").exit_code == 0
        (argv,) = started
        assert argv[1:] == [
            "-m",
            "gunicorn",
            "-c",
            str(REPO / "gunicorn.conf.py"),
            "--workers",
            "3",
            "web:create_app()",
        ]

    def test_worker_runs_python_m_worker(self, started: list[list[str]]) -> None:
        """``hublink worker --burst`` is python -m worker --burst (web never imports worker)."""
        assert run("worker", "--burst").exit_code == 0
        assert started[0][1:] == ["-m", "worker", "--burst"]

    def test_run_runs_the_dev_script(self, started: list[list[str]]) -> None:
        """``hublink run`` is scripts/dev.py, the same as ``make run``."""
        assert run("run").exit_code == 0
        assert started[0][1:] == [str(REPO / "scripts" / "dev.py")]
