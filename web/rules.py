"""The rules file as the web reads it: its rules, and its ``sources`` section (the workflow and form senders)."""

from __future__ import annotations

from collections.abc import Mapping

import yaml

from hublink.config.rules_file import RulesFile
from hublink.domain.sources import Sources


def load_rules(path: str | None, environ: Mapping[str, str]) -> tuple[RulesFile, Sources]:
    """HUBLINK_RULES_FILE and its sources (none when unset); raises ConfigError naming the file and line."""
    rules_file = RulesFile.read(path)
    if not path:
        return rules_file, Sources.empty()
    return rules_file, Sources.load(yaml.safe_load(rules_file.text), environ, path)
