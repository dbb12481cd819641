"""Public interfaces are contracts: every environment variable is in .env.example, and the commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from hublink.config.settings import ENVIRONMENT_VARIABLES, PROCESS_VARIABLES

REPO = Path(__file__).resolve().parents[2]


class TestDocumentation:
    """The README, the docs and .env.example tell the truth about configuration and commands."""

    def test_every_variable_is_in_env_example(self) -> None:
        """Each variable appears in .env.example with its default."""
        example = (REPO / ".env.example").read_text()
        names = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", example, flags=re.M))
        assert set(ENVIRONMENT_VARIABLES) | {name for name, _, _ in PROCESS_VARIABLES} <= names

    def test_readme_shows_the_two_commands(self) -> None:
        """The README shows make run and make test, and the Makefile defines both."""
        readme = (REPO / "README.md").read_text()
        makefile = (REPO / "Makefile").read_text()
        for command in ("run", "test"):
            assert f"make {command}" in readme
            assert re.search(rf"^{command}:", makefile, flags=re.M)

    def test_the_readme_is_a_front_door(self) -> None:
        """The README stays short (at most 150 lines) and copies no table: tables live in the docs."""
        readme = (REPO / "README.md").read_text()
        assert len(readme.splitlines()) <= 150
        assert not re.search(r"^\|.*\|$", readme, flags=re.M)

    def test_ci_runs_the_readme_test_command(self) -> None:
        """.ci/run calls make test."""
        assert "make test" in (REPO / ".ci" / "run").read_text()

    def test_procfile_names_web_and_worker(self) -> None:
        """The Procfile serves web:create_app() and runs the worker."""
        procfile = (REPO / "Procfile").read_text()
        assert re.search(r'^web: gunicorn .*"web:create_app\(\)"', procfile, flags=re.M)
        assert re.search(r"^worker: python -m worker", procfile, flags=re.M)
