"""The rules a process runs now, and the rules each inbox entry is expanded under.

:class:`LiveRules` is what the web (and a worker's journal poller) accepts entries under. With
``HUBLINK_RULES_SOURCE=file`` it is the file, fixed for the process's life. With ``redis`` it is the
published version (``hublink.intake.rule_versions``), checked with one GET of ``rules:published`` at most
every :data:`CHECK_INTERVAL_S` by whichever caller finds the last check too old: no request waits on Redis
for it otherwise, and a newly published version is in use within about a second, without a restart.
The first check seeds version 1 from the rules file when Redis holds no version yet. A version that this
process cannot load (a ``sources`` secret its environment lacks) is logged and skipped: the process keeps
the rules it has.

:class:`RulesByTag` is what a worker's expander runs: the rules an entry's tag names, exactly (versions
are loaded from Redis on demand and kept, a few at a time). An entry accepted under version N is expanded
under N even when N+1 was published meanwhile. An entry tagged with a rules file's digest (accepted
before the switch to ``redis``, or by a process still on the file) is expanded under that file when this
worker has it, else under the published version, with a warning once per tag.

Fails open for reloading (Redis away: the rules in hand stay in use) and closed for loading a tagged
version (StoreUnavailableError: the entry is expanded once Redis answers).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import yaml

from hublink.config.rule_versions import RuleVersion, tag_version, version_tag
from hublink.config.rules_file import RulesFile
from hublink.domain.errors import ConfigError, StoreUnavailableError
from hublink.domain.rules import RuleSet
from hublink.domain.sources import Sources
from hublink.intake.expansion import UnknownRulesError
from hublink.intake.rule_versions import RuleVersions

log = logging.getLogger("hublink.intake.rules")

#: Longest a process runs a version after another was published (plus the time of one GET).
CHECK_INTERVAL_S = 1.0
#: Versions a worker keeps loaded (entries of older versions are rare once a publish has settled).
CACHED_VERSIONS = 8


@dataclass(frozen=True, slots=True)
class ActiveRules:
    """One rules document as a process runs it: the tag entries get, its rules, and its sources."""

    #: What inbox entries accepted under these rules carry (``v<n>``, a file's digest, "" for none).
    tag: str
    #: The version's number; 0 for the rules file or none.
    version: int
    text: str
    rules: RuleSet
    sources: Sources

    @classmethod
    def of_file(cls, rules_file: RulesFile, sources: Sources) -> ActiveRules:
        """The rules file's rules (``HUBLINK_RULES_FILE``), or none."""
        return cls(rules_file.tag, 0, rules_file.text, rules_file.rules, sources)


def build_active(version: RuleVersion, environ: Mapping[str, str] | None) -> ActiveRules:
    """A published version as a process runs it; ConfigError (RulesError) when this process cannot load it.

    ``environ`` supplies the secrets its ``sources`` name (the web's); None leaves the sources unread (a
    worker authenticates no sender).
    """
    rules = RuleSet.load(version.text, version.tag)
    sources = Sources.empty() if environ is None else Sources.load(yaml.safe_load(version.text), environ, version.tag)
    return ActiveRules(version.tag, version.version, version.text, rules, sources)


class LiveRules:
    """The rules this process accepts entries under now: the file's, or the published version's."""

    def __init__(
        self,
        initial: ActiveRules,
        *,
        versions: RuleVersions | None = None,
        build: Callable[[RuleVersion], ActiveRules] | None = None,
        seed: RulesFile | None = None,
        interval_s: float = CHECK_INTERVAL_S,
        on_change: Callable[[ActiveRules], None] | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``versions`` None: ``initial`` for good (the file source). Else ``initial`` until the first check.

        ``seed``: the rules file that writes version 1 when Redis holds none. ``on_change`` is called
        with each version taken into use (the web widens its log redaction with the new sources' secrets).
        ``environ``: where the secrets rules' sources name are read (drafts are checked against it).
        """
        self.environ = environ
        self._active = initial
        self._versions = versions
        self._build = build or (lambda v: build_active(v, None))
        self._seed = seed if seed is not None and seed.text else None
        self._interval_s = interval_s
        self._on_change = on_change
        self._clock = clock
        self._next_check = float("-inf")
        self._lock = threading.Lock()
        #: Versions that could not be loaded here (logged once each; the process keeps what it has).
        self._refused: set[int] = set()
        self._unavailable_logged = False

    @property
    def source(self) -> str:
        """``redis`` when the rules follow the published version, else ``file``."""
        return "file" if self._versions is None else "redis"

    @property
    def versions(self) -> RuleVersions | None:
        """The store this process follows (None for the file source)."""
        return self._versions

    def current(self) -> ActiveRules:
        """The rules in use now; checks Redis for a newer version when the last check is a second old.

        The check is one GET, made by the one caller that finds it due (others go on with what is in hand).
        """
        if self._versions is not None and self._clock() >= self._next_check:
            self._check(wait=False)
        return self._active

    def refresh(self) -> ActiveRules:
        """Check now (after this process published, and in tests); the rules in use afterwards."""
        if self._versions is not None:
            self._check(wait=True)
        return self._active

    def _check(self, *, wait: bool) -> None:
        """Take the published version into use if it is new (and loadable here); seed version 1 first if due."""
        if not self._lock.acquire(blocking=wait):
            return
        try:
            if not wait and self._clock() < self._next_check:
                return  # another caller checked while this one waited for the lock
            self._next_check = self._clock() + self._interval_s
            assert self._versions is not None
            try:
                number = self._versions.published_version()
                if number == 0 and self._seed is not None:
                    seeded = self._versions.seed(self._seed.text, author="file")
                    if seeded is not None:
                        log.info("rules version 1 seeded from the rules file", extra={"rules": seeded.tag})
                    number = self._versions.published_version()
                if number == self._active.version or number in self._refused or number == 0:
                    return
                published = self._versions.get(number)
            except StoreUnavailableError as exc:
                if not self._unavailable_logged:
                    log.warning("rules: Redis unavailable; the rules in hand stay in use", extra={"error": str(exc)})
                    self._unavailable_logged = True
                return
            self._unavailable_logged = False
            if published is None:
                return
            self._take(published)
        finally:
            self._lock.release()

    def _take(self, published: RuleVersion) -> None:
        """Build ``published`` and put it in use; a version this process cannot load is refused, once."""
        try:
            active = self._build(published)
        except ConfigError as exc:
            self._refused.add(published.version)
            log.error(
                "rules version not taken into use: this process cannot load it; the rules in hand stay",
                extra={"rules": published.tag, "error": str(exc)[:500], "in_use": self._active.tag},
            )
            return
        before = self._active.tag
        self._active = active
        log.info("rules version taken into use", extra={"rules": active.tag, "before": before})
        if self._on_change is not None:
            self._on_change(active)


class RulesByTag:
    """The rules an inbox entry is expanded under: the version its tag names, loaded on demand and kept."""

    def __init__(
        self,
        versions: RuleVersions,
        live: LiveRules,
        *,
        rules_file: RulesFile | None = None,
        prepare: Callable[[RuleSet], RuleSet] | None = None,
        cache_size: int = CACHED_VERSIONS,
    ) -> None:
        self._versions = versions
        self._live = live
        self._file = rules_file if rules_file is not None and rules_file.text else None
        self._prepare = prepare or (lambda rules: rules)
        self._cache: OrderedDict[str, RuleSet] = OrderedDict()
        self._cache_size = cache_size
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def rules_for(self, tag: str) -> RuleSet:
        """The rules ``tag`` names; UnknownRulesError when it names a version that cannot be loaded.

        Raises StoreUnavailableError when Redis does not answer (the entry waits for it).
        """
        with self._lock:
            found = self._cache.get(tag)
            if found is not None:
                self._cache.move_to_end(tag)
                return found
        if tag and tag_version(tag) is None and not (self._file is not None and tag == self._file.tag):
            return self._fallback(tag)  # not kept: it follows the published version
        rules = self._load(tag)
        with self._lock:
            self._cache[tag] = rules
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return rules

    def _load(self, tag: str) -> RuleSet:
        """Read and build the rules of ``tag``: none, a version, or this worker's rules file."""
        if not tag:
            return RuleSet.empty()  # accepted while no rules were published: every event is unmatched
        number = tag_version(tag)
        if number is None:
            assert self._file is not None
            return self._prepare(self._file.rules)
        version = self._versions.get(number)
        if version is None:
            raise UnknownRulesError(f"rules {tag} are not in Redis (rules:v:{number} is missing)")
        try:
            rules = RuleSet.load(version.text, tag)
        except ConfigError as exc:
            raise UnknownRulesError(f"rules {tag} cannot be loaded: {str(exc)[:300]}") from None
        log.info("rules version loaded for expansion", extra={"rules": tag})
        return self._prepare(rules)

    def _fallback(self, tag: str) -> RuleSet:
        """The published version's rules, for entries of a rules file this worker does not have."""
        active = self._live.current()
        if tag not in self._warned:
            self._warned.add(tag)
            log.warning(
                "entries accepted under rules this worker does not know (another rules file); "
                "expanding them under the published version",
                extra={"rules": tag, "published": active.tag},
            )
        return self.rules_for(active.tag) if active.tag != tag else active.rules


def none_active() -> ActiveRules:
    """No rules at all (a process before its first check, without a rules file)."""
    return ActiveRules(version_tag(0), 0, "", RuleSet.empty(), Sources.empty())
