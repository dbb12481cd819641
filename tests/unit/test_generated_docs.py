"""Generated reference files are the code's: each table and .env.example matches what its source gives now."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from hublink.domain.dead_letter import HUBLINK_CATEGORIES

REPO = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    """scripts/gen_docs.py, loaded by path (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("gen_docs", REPO / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()


class TestGeneratedFiles:
    """Each committed generated file equals what scripts/gen_docs.py writes from the code."""

    @pytest.mark.parametrize("path", sorted(GEN.outputs()))
    def test_the_committed_file_is_current(self, path: str) -> None:
        """A stale file fails with the command that regenerates it."""
        committed = (REPO / path).read_text() if (REPO / path).exists() else ""
        assert committed == GEN.outputs()[path], f"{path} is stale: run `make docs-gen`"

    def test_every_generated_table_is_included_by_a_page(self) -> None:
        """Each table under docs/_generated/ is pulled into some page, so none is generated for nobody."""
        pages = "".join(p.read_text() for p in (REPO / "docs").rglob("*.md") if "_generated" not in p.parts)
        unused = [p for p in GEN.outputs() if p.startswith("docs/_generated/") and p not in pages]
        assert not unused


class TestDeadLetterCategories:
    """The categories HubLink gives dead letters are all listed in HUBLINK_CATEGORIES."""

    def test_every_category_the_code_sets_is_listed(self) -> None:
        """A category literal HubLink's code sets (category="X" or X_CATEGORY = "X") has a row."""
        found: set[str] = set()
        for path in (REPO / "hublink").rglob("*.py"):
            text = path.read_text()
            found |= set(re.findall(r'category="([A-Z_]+)"', text))
            found |= set(re.findall(r'^[A-Z_]+_CATEGORY = "([A-Z_]+)"', text, flags=re.M))
        assert found
        assert found <= set(HUBLINK_CATEGORIES)


class TestEnvExample:
    """.env.example is a working environment file."""

    def test_copied_as_is_it_gives_the_defaults(self) -> None:
        """Every value .env.example sets is the default: copied to .env unchanged, it changes nothing."""
        from hublink.config.settings import ENVIRONMENT_VARIABLES, Settings

        pairs = re.findall(r"^([A-Z][A-Z0-9_]+)=(\S*)", (REPO / ".env.example").read_text(), flags=re.M)
        environ = {name: value for name, value in pairs if name in ENVIRONMENT_VARIABLES}
        assert Settings.from_env(environ) == Settings.from_env({})
