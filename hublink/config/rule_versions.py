"""The rules document as versioned data: its check, one published version, and the tag entries carry.

With ``HUBLINK_RULES_SOURCE=redis`` the rules document lives in Redis as numbered versions, each with its
author, time, comment, YAML text and the diff against the version before it. Every publish, and every
rollback, appends a version; the newest is the one published. The Redis side (``rules:v:<n>``,
``rules:published``) is :class:`hublink.intake.rule_versions.RuleVersions`: ``hublink.config`` and
``hublink.store`` sit on the same layer and import nothing of each other, so the store lives with
intake, the stage that runs the rules.

An inbox entry carries the tag of the rules it was accepted under: ``v<n>`` for version ``n`` (see
:func:`version_tag`), the file's digest with ``HUBLINK_RULES_SOURCE=file`` (``RulesFile.tag``), ``""`` for
none. Versions never change once written, so a tag names exactly one text.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from hublink.domain.errors import ConfigError
from hublink.domain.rules import RulesError, RuleSet
from hublink.domain.sources import Sources
from hublink.domain.subscriptions import needed_subscriptions

#: Longest rules document accepted (UTF-8 bytes): every process holds a few versions in memory.
MAX_TEXT_BYTES = 512 * 1024
#: Longest comment and author kept with a version.
MAX_COMMENT_CHARS = 500
MAX_AUTHOR_CHARS = 200
#: The name problems are reported under (a draft has no file); stripped from the messages.
DRAFT = "<rules>"
_LOCATED = re.compile(r"\A<rules>:(\d+): (.*)\Z", re.DOTALL)
_TAG = re.compile(r"\Av([1-9][0-9]{0,17})\Z")


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One thing wrong with a rules document: its line (None when it has none) and what is wrong."""

    line: int | None
    message: str

    def to_wire(self) -> dict[str, Any]:
        """``{"line", "message"}``."""
        return {"line": self.line, "message": self.message}

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line is not None else self.message


class RulesRejected(Exception):  # noqa: N818 - the name the rules interface promised (web, dashboard)
    """A rules document was refused (publish, rollback): ``problems`` says why, each with its line."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("the rules have problems:\n" + "\n".join(str(p) for p in problems))
        self.problems = problems


class _AnyVariable(Mapping[str, str]):
    """An environment in which every variable is set: checks the sources' shape, not this process's secrets."""

    def __getitem__(self, key: str) -> str:
        return "set"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def get(self, key: str, default: Any = None) -> str:
        return "set"


def check(text: str, *, environ: Mapping[str, str] | None = None) -> list[Problem]:
    """Every problem of a rules document with its line, as ``hublink rules check`` prints them; [] when valid.

    The ``sources`` section is checked too: against ``environ`` when given (the secrets it names by
    variable must be set there: the web passes its own), else for its shape only.
    """
    size = len(text.encode("utf-8", "replace"))
    if size > MAX_TEXT_BYTES:
        return [Problem(line=None, message=f"the rules are {size} bytes; at most {MAX_TEXT_BYTES} are accepted")]
    try:
        RuleSet.load(text, DRAFT)
    except RulesError as exc:
        return [_located(problem) for problem in exc.problems]
    try:
        Sources.load(yaml.safe_load(text), _AnyVariable() if environ is None else environ, DRAFT)
    except ConfigError as exc:
        return [Problem(line=_key_line(text, "sources"), message=str(exc).removeprefix(f"{DRAFT}: "))]
    except yaml.YAMLError as exc:  # RuleSet.load read it; kept for safety, with no line to give
        return [Problem(line=None, message=f"not valid YAML: {exc}")]
    return []


def _located(problem: str) -> Problem:
    """``<rules>:12: rule 'x': ...`` as line 12 and the rest."""
    found = _LOCATED.match(problem)
    if found is None:
        return Problem(line=None, message=problem)
    return Problem(line=int(found.group(1)), message=found.group(2))


def _key_line(text: str, key: str) -> int | None:
    """The line of a top-level ``key:`` (sources' problems name their place but not its line)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith(f"{key}:"):
            return number
    return None


def subscriptions_needed(text: str, before: str | None) -> list[dict[str, Any]]:
    """The HubSpot webhook subscriptions ``text``'s rules need that the rules ``before`` did not.

    Offline: whether the app holds them takes a HubSpot call (``hublink hubspot subscriptions apply
    --dry-run``). Each is ``{"subscription", "rules"}`` (the rules that need it); [] for unreadable rules.
    """
    try:
        wanted = needed_subscriptions(RuleSet.load(text, DRAFT).rules).wanted
        held = needed_subscriptions(RuleSet.load(before, DRAFT).rules).wanted if before else {}
    except ConfigError:
        return []
    return [{"subscription": str(key), "rules": list(rules)} for key, rules in wanted.items() if key not in held]


def unified_diff(old: str, new: str, *, old_version: int, new_version: int) -> str:
    """The unified diff from one version's text to the next (``""`` when they are equal)."""
    lines = difflib.unified_diff(
        old.splitlines(),
        new.splitlines(),
        fromfile=f"v{old_version}" if old_version else "(none)",
        tofile=f"v{new_version}",
        lineterm="",
    )
    return "\n".join(lines) + "\n" if old != new else ""


def version_tag(version: int) -> str:
    """The rules tag of an inbox entry accepted under ``version`` (``v7``); ``""`` for 0 (no rules)."""
    return f"v{version}" if version > 0 else ""


def tag_version(tag: str) -> int | None:
    """The version a tag names (``v7`` → 7), or None for a file's digest, ``""`` or anything else."""
    found = _TAG.match(tag)
    return int(found.group(1)) if found else None


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleVersion:
    """One version of the rules document, as stored: never changed once written."""

    version: int
    text: str
    author: str
    #: Epoch milliseconds.
    published_at: int
    comment: str
    #: The unified diff against the previous version's text ("" for version 1, and in listings).
    diff: str = ""

    @property
    def tag(self) -> str:
        """What inbox entries accepted under this version carry."""
        return version_tag(self.version)

    def to_wire(self, with_text: bool = False) -> dict[str, Any]:
        """``{"version", "author", "publishedAt", "comment"}``, with ``text`` and ``diff`` when asked."""
        wire: dict[str, Any] = {
            "version": self.version,
            "author": self.author,
            "publishedAt": self.published_at,
            "comment": self.comment,
        }
        if with_text:
            wire["text"] = self.text
            wire["diff"] = self.diff
        return wire
