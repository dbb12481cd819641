"""What the dashboard's rules page and the preview API share: the published rules and a draft's problems."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hublink.domain.rules import RulesError, RuleSet
from hublink.ops.rules_preview import Published, published_file
from web.parts import Parts

_LINED = re.compile(r"\A[^:\n]*:(\d+): (.*)\Z", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem of a draft: its line (None when it has none) and what is wrong."""

    line: int | None
    message: str

    def to_wire(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"line": self.line, "message": self.message}


def draft_problems(text: str) -> list[Problem]:
    """Every problem of a draft, each with its line, as ``hublink rules check`` finds them (none: it checks)."""
    try:
        RuleSet.load(text, "<draft>")
    except RulesError as exc:
        found = []
        for problem in exc.problems:
            lined = _LINED.match(problem)
            found.append(Problem(int(lined[1]), lined[2]) if lined else Problem(None, problem))
        return found
    return []


def published_rules(p: Parts) -> Published:
    """The published rules: the rules file as it is now (HUBLINK_RULES_SOURCE=file)."""
    return published_file(p.settings.rules_file)
