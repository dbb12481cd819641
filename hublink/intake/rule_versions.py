"""RuleVersions: the rules document's numbered versions in Redis (``HUBLINK_RULES_SOURCE=redis``).

Every publish and every rollback appends a version (author, time, comment, text, and the diff against the
version before it); the newest is the published one. Appending is one compare-and-append
(``rules_publish.lua``): two concurrent publishes get distinct numbers, each with its diff against the
version just before it. A version is never changed once written, so the ``v<n>`` tag an inbox entry
carries names exactly one text (``hublink.config.rule_versions``).

Keys owned: ``rules:v:<n>`` (hash), ``rules:published`` (string). Fails closed: raises
StoreUnavailableError without Redis.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from redis import Redis

from hublink.config.rule_versions import (
    MAX_AUTHOR_CHARS,
    MAX_COMMENT_CHARS,
    Problem,
    RulesRejected,
    RuleVersion,
    check,
    unified_diff,
)
from hublink.store.connections import store_errors
from hublink.store.connections import text as as_text
from hublink.store.keys import Keys
from hublink.store.scripts import Scripts

#: Versions listed at most by :meth:`RuleVersions.versions`.
MAX_LISTED = 500
#: Tries of a publish that keeps finding another publish ahead of it.
_MAX_TRIES = 20
_LISTED_FIELDS = ("author", "at", "comment")


class RuleVersions:
    """The rules document's versions: read them, publish a new one, roll back to an old one, seed the first."""

    def __init__(self, redis: Redis, keys: Keys, *, scripts: Scripts | None = None) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts or Scripts(redis)

    def published_version(self) -> int:
        """The published version's number (0 when none): one GET, what processes check for a change."""
        with store_errors():
            raw = self._redis.get(self._keys.rules_published)
        return int(raw) if raw else 0

    def published(self) -> RuleVersion | None:
        """The published version, or None when none was ever published."""
        version = self.published_version()
        return self.get(version) if version else None

    def get(self, version: int) -> RuleVersion | None:
        """Version ``version`` with its text and diff, or None when there is no such version."""
        if version < 1:
            return None
        with store_errors():
            raw = self._redis.hgetall(self._keys.rule_version(version))
        if not raw:
            return None
        fields = {as_text(k): as_text(v) for k, v in raw.items()}
        return _version(version, fields)

    def versions(self, limit: int = 100) -> list[RuleVersion]:
        """The newest ``limit`` versions, newest first, without their text and diff (listings stay cheap)."""
        newest = self.published_version()
        numbers = list(range(newest, max(newest - min(limit, MAX_LISTED), 0), -1))
        if not numbers:
            return []
        with store_errors():
            pipe = self._redis.pipeline(transaction=False)
            for number in numbers:
                pipe.hmget(self._keys.rule_version(number), _LISTED_FIELDS)
            rows = pipe.execute()
        found = []
        for number, row in zip(numbers, rows, strict=True):
            if row[1] is None:  # a version whose hash is gone (deleted by hand): skipped, not invented
                continue
            found.append(_version(number, {f: as_text(v) for f, v in zip(_LISTED_FIELDS, row, strict=True) if v}))
        return found

    def publish(self, text: str, *, author: str, comment: str, environ: Mapping[str, str] | None = None) -> RuleVersion:
        """Append ``text`` as the next version and publish it; RulesRejected (nothing stored) when it has problems.

        ``environ``: where the secrets the ``sources`` section names must be set (see ``check``).
        """
        problems = check(text, environ=environ)
        if problems:
            raise RulesRejected(problems)
        for _ in range(_MAX_TRIES):
            current = self.published()
            appended = self._append(text, author, comment, current)
            if appended is not None:
                return appended
        raise RulesRejected([Problem(line=None, message="other publishes kept coming first; try again")])

    def rollback(
        self, version: int, *, author: str, comment: str, environ: Mapping[str, str] | None = None
    ) -> RuleVersion:
        """Publish version ``version``'s text again, as a new version; KeyError when there is no such version.

        The old text is checked again (RulesRejected): a variable it names may be unset now.
        """
        old = self.get(version)
        if old is None:
            raise KeyError(version)
        return self.publish(old.text, author=author, comment=comment or f"rollback to v{version}", environ=environ)

    def seed(self, text: str, *, author: str) -> RuleVersion | None:
        """Version 1 from ``text`` (the rules file), only when no version exists; None when one does.

        Atomic: of several processes starting at once, one seeds. The file was checked when it was read.
        """
        if self.published_version():
            return None
        return self._append(text, author, "seeded from HUBLINK_RULES_FILE", None)

    def _append(self, text: str, author: str, comment: str, current: RuleVersion | None) -> RuleVersion | None:
        """Write the version after ``current`` (None: the first); None when another publish took its number."""
        after = current.version if current else 0
        version = RuleVersion(
            version=after + 1,
            text=text,
            author=author[:MAX_AUTHOR_CHARS],
            published_at=int(time.time() * 1000),
            comment=comment[:MAX_COMMENT_CHARS],
            diff=unified_diff(current.text, text, old_version=after, new_version=after + 1) if current else "",
        )
        fields = {
            "text": version.text,
            "author": version.author,
            "at": str(version.published_at),
            "comment": version.comment,
            "diff": version.diff,
        }
        flat = [value for pair in fields.items() for value in pair]
        with store_errors():
            written = int(
                self._scripts.rules_publish(
                    keys=[self._keys.rules_published], args=[after, self._keys.rule_version_prefix, *flat]
                )
            )
        return version if written == version.version else None


def _version(number: int, fields: Mapping[str, str]) -> RuleVersion:
    """A stored version from its hash fields."""
    return RuleVersion(
        version=number,
        text=fields.get("text", ""),
        author=fields.get("author", ""),
        published_at=int(fields.get("at") or 0),
        comment=fields.get("comment", ""),
        diff=fields.get("diff", ""),
    )
