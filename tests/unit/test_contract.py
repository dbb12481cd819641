"""Public interfaces are contracts: every environment variable is documented, and the commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from hublink.config.settings import ENVIRONMENT_VARIABLES

REPO = Path(__file__).resolve().parents[2]
#: Read by the process model rather than Settings.
PROCESS_VARIABLES = ("PORT", "WEB_CONCURRENCY", "HUBSPOT_SIM_PORT")


class TestDocumentation:
    """The README and .env.example tell the truth about configuration."""

    def test_every_variable_is_in_the_readme_table(self) -> None:
        """Each variable Settings reads (and the process model's) has a row in the README."""
        readme = (REPO / "README.md").read_text()
        missing = [v for v in (*ENVIRONMENT_VARIABLES, *PROCESS_VARIABLES) if f"| `{v}` |" not in readme]
        assert not missing

    def test_every_variable_is_in_env_example(self) -> None:
        """Each variable appears in .env.example with its default."""
        example = (REPO / ".env.example").read_text()
        names = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", example, flags=re.M))
        assert set(ENVIRONMENT_VARIABLES) | set(PROCESS_VARIABLES) <= names

    def test_readme_shows_the_two_commands(self) -> None:
        """The README shows make run and make test, and the Makefile defines both."""
        readme = (REPO / "README.md").read_text()
        makefile = (REPO / "Makefile").read_text()
        for command in ("run", "test"):
            assert f"make {command}" in readme
            assert re.search(rf"^{command}:", makefile, flags=re.M)

    def test_ci_runs_the_readme_test_command(self) -> None:
        """.ci/run calls make test."""
        assert "make test" in (REPO / ".ci" / "run").read_text()

    def test_procfile_names_web_and_worker(self) -> None:
        """The Procfile serves web:create_app() and runs the worker."""
        procfile = (REPO / "Procfile").read_text()
        assert re.search(r'^web: gunicorn .*"web:create_app\(\)"', procfile, flags=re.M)
        assert re.search(r"^worker: python -m worker", procfile, flags=re.M)


class TestReadmeAgreesWithTheCode:
    """The README's key map, error tree and metrics list are the code's."""

    def test_the_key_map_is_the_one_in_keys_py(self) -> None:
        """The README's Redis key table is keys.py's docstring table, row for row."""
        from hublink.store import keys

        doc = keys.__doc__ or ""
        table = doc[doc.index("=====") : doc.index("HubLink also reads")].strip()
        assert table in (REPO / "README.md").read_text()

    def test_the_error_tree_is_the_one_in_errors_py(self) -> None:
        """The README's error tree is the one drawn in errors.py, line for line."""
        from hublink.domain import errors

        doc = errors.__doc__ or ""
        drawn = doc[doc.index("    HubLinkError") : doc.index("Callers branch")].rstrip()
        assert "\n".join(line[4:] for line in drawn.splitlines()) in (REPO / "README.md").read_text()

    def test_every_counter_is_documented_and_every_documented_metric_exists(self) -> None:
        """Each counter is listed as hublink_<name>_total, and no listed hublink_* counter is missing."""
        from hublink.store.counters import COUNTERS

        readme = (REPO / "README.md").read_text()
        names = {f"hublink_{c.name}_total" for c in COUNTERS}
        assert {n for n in names if f"`{n}{{" not in readme} == set()
        listed = set(re.findall(r"`(hublink_[a-z_]+_total)\{", readme))
        assert listed <= names
