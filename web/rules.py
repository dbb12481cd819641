"""The rules as the web runs them: the rules file (HUBLINK_RULES_SOURCE=file), or the version published in
Redis (``redis``), followed without a restart (``hublink.intake.live_rules``); and their ``sources``
section (the workflow and form senders)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import yaml

from hublink.config.rules_file import RulesFile
from hublink.config.settings import Settings
from hublink.domain.sources import Sources
from hublink.intake.live_rules import ActiveRules, LiveRules, build_active
from hublink.intake.rule_versions import RuleVersions


def load_rules(path: str | None, environ: Mapping[str, str]) -> tuple[RulesFile, Sources]:
    """HUBLINK_RULES_FILE and its sources (none when unset); raises ConfigError naming the file and line."""
    rules_file = RulesFile.read(path)
    if not path:
        return rules_file, Sources.empty()
    return rules_file, Sources.load(yaml.safe_load(rules_file.text), environ, path)


def live_rules(
    settings: Settings,
    initial: ActiveRules,
    environ: Mapping[str, str],
    versions: RuleVersions,
    *,
    on_change: Callable[[ActiveRules], None] | None = None,
) -> LiveRules:
    """The web's rules: the file's (``initial``) for good, or (``redis``) the published version, checked
    once a second; the file then seeds version 1 and serves until Redis first answers.

    ``environ`` supplies the secrets the sources of a published version name.
    """
    if settings.rules_source != "redis":
        return LiveRules(initial, environ=environ)
    return LiveRules(
        initial,
        versions=versions,
        build=lambda version: build_active(version, environ),
        seed=RulesFile(initial.text, initial.rules),
        on_change=on_change,
        environ=environ,
    )
