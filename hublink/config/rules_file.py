"""RulesFile: HUBLINK_RULES_FILE, read once per process by the web (to refuse a bad file and tag what it
accepts) and by the workers (whose expanders run it), the same way in both."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from hublink.domain.errors import ConfigError
from hublink.domain.rules import RuleSet


@dataclass(frozen=True, slots=True)
class RulesFile:
    """The file's text (its ``sources`` section is read by the web) and its rules; empty without a file."""

    text: str
    rules: RuleSet

    @property
    def tag(self) -> str:
        """A short digest of the text ("" for none): which rules an inbox entry was accepted under."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:12] if self.text else ""

    @classmethod
    def read(cls, path: str | None) -> RulesFile:
        """Read and check ``path``; raises ConfigError (unreadable) or RulesError naming the file and line."""
        if not path:
            return cls("", RuleSet.empty())
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise ConfigError(f"HUBLINK_RULES_FILE: cannot read {path}: {reason}") from None
        return cls(text, RuleSet.load(text, path))
