"""What the dashboard's rules page and the preview API share: where the rules come from, the published ones,
and a draft's problems (``hublink.config.rule_versions.check``, as ``hublink rules check`` finds them).
"""

from __future__ import annotations

from hublink.config.rule_versions import Problem, check
from hublink.intake.rule_versions import RuleVersions
from hublink.ops.rules_preview import Published
from web.parts import Parts


def rules_source(p: Parts) -> str:
    """HUBLINK_RULES_SOURCE: ``file`` (the rules file, read-only here) or ``redis`` (versions, published here)."""
    return p.settings.rules_source


def versions(p: Parts) -> RuleVersions:
    """The rules document's versions in Redis."""
    return p.rule_versions


def draft_problems(p: Parts, text: str) -> list[Problem]:
    """Every problem of a draft, each with its line (none: it checks), as ``POST /api/rules/check`` finds them:
    the secrets its ``sources`` name must be set where this process reads them."""
    return check(text, environ=p.live_rules.environ)


def published_rules(p: Parts) -> Published:
    """The published rules: the newest version in Redis, or the rules file this process runs."""
    if rules_source(p) == "redis":
        found = versions(p).published()
        return Published(found.version, found.text) if found else Published(None, None)
    return Published(None, p.live_rules.current().text or None)
