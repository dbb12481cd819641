"""The audit log: who did what to HubLink, from where, when, and how it ended.

One Redis stream (``audit`` in :mod:`hublink.store.keys`), one entry per admin action. The entry's stream
id is its time (milliseconds, given by Redis) and the cursor of :meth:`AuditLog.page`. Actions are dotted
nouns and verbs (``replay``, ``purge``, ``pause``, ``rules.publish``, ``api_client.create``,
``privacy.erase``); the actor is a dashboard session, an API client's name or ``cli:<user>``; the target
names what was acted on (``dead-letter <id>``, ``dead-letters status=404``, ``portal 123``); the outcome is
a word, ``ok`` or ``refused``, optionally followed by ``: `` and details (``ok: 12 replayed``).

Retention: every write drops the entries older than ``HUBLINK_AUDIT_DAYS`` (``MINID``, exact: admin actions
are rare, so the exact trim costs nothing and an entry past its time is really gone), pages never show
them (a log nobody writes to is not trimmed), and the stream keeps at most
:data:`MAX_ENTRIES` (a last bound: refused logins are written for anyone who tries, throttled but
unauthenticated).

Fails closed: every method raises StoreUnavailableError when Redis does not answer (the web's
:func:`web.audit.audit` turns a failed write into a log line: the action already happened).

Keys owned here (see ``hublink.store.keys``): ``audit``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from redis import Redis

from hublink.domain.times import iso, parse_time
from hublink.store.connections import store_errors, text
from hublink.store.keys import Keys

#: Longest target or actor kept (longer ones are cut: the log is for people, not for payloads).
MAX_FIELD_CHARS = 200
#: The stream's hard bound, whatever the retention: about 115 MB at the measured size of an entry
#: (docs/operations/audit.md). Refused logins (at most ``web.throttle.TOTAL_LIMIT`` per five minutes) would
#: take a month of sustained guessing to reach it.
MAX_ENTRIES = 1_000_000
#: A page holds at most this many entries (``limit``).
MAX_PAGE = 1000
#: The page size when none is asked for.
DEFAULT_PAGE = 100
#: Most entries one page reads looking for matches: a filter that matches rarely answers a short page
#: with a cursor to go on from, rather than reading the whole log in one request.
MAX_SCANNED = 20_000
#: Entries read per XREVRANGE.
CHUNK = 500

#: A stream id, as the cursor is one.
_STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
#: An action or the first word of an outcome: lower-case words joined by dots or underscores.
_WORD = re.compile(r"[a-z][a-z0-9_.]{0,59}")


def _printable(value: str) -> bool:
    return all(0x20 <= ord(c) != 0x7F for c in value)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One admin action as it is kept and answered (``GET /api/audit``)."""

    #: The stream id: the cursor, and the time to the millisecond.
    id: str
    actor: str
    action: str
    target: str
    outcome: str
    address: str

    @property
    def at_ms(self) -> int:
        """When it happened, epoch milliseconds (from the stream id, given by Redis)."""
        return int(self.id.split("-", 1)[0])

    @property
    def result(self) -> str:
        """The outcome's first word (``ok``, ``refused``), without its details."""
        return self.outcome.split(":", 1)[0].strip()

    def to_wire(self) -> dict[str, str]:
        """The entry as the API answers it (``at`` in ISO-8601 UTC, like every time the API shows)."""
        return {
            "id": self.id,
            "at": iso(self.at_ms),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "address": self.address,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditFilter:
    """Which entries a page shows; every field optional, all given ones must match.

    ``actor`` and ``action`` match exactly, or as a prefix when they end with ``*`` (``cli:*``,
    ``rules.*``); ``outcome`` matches the outcome's first word (``ok`` matches ``ok: 12 replayed``);
    ``target`` matches a part of the target, ignoring case; ``since`` and ``until`` bound the time (both
    included).
    """

    actor: str | None = None
    action: str | None = None
    target: str | None = None
    outcome: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    #: The names the HTTP API, the dashboard's form and the CLI's options share.
    FIELDS: ClassVar[tuple[str, ...]] = ("actor", "action", "target", "outcome", "since", "until")

    @classmethod
    def parse(cls, values: Mapping[str, object], *, blank_is_any: bool = True) -> AuditFilter:
        """Read the shared filter fields (absent: any); raise ValueError naming the bad field and why.

        A blank field means "any" for a form that always sends every field (``blank_is_any``); an API
        caller who sends ``?actor=`` made a mistake, and is told so.
        """
        given = {name: str(values[name]).strip() for name in cls.FIELDS if values.get(name) is not None}
        blank = [name for name, value in given.items() if not value]
        if blank and not blank_is_any:
            raise ValueError(f"{blank[0]} is empty")
        given = {name: value for name, value in given.items() if value}
        for name in ("actor", "target"):
            value = given.get(name)
            if value is not None and (len(value) > MAX_FIELD_CHARS or not _printable(value)):
                raise ValueError(f"{name}: expected at most {MAX_FIELD_CHARS} printable characters")
        action = given.get("action")
        if action is not None and not _WORD.fullmatch(action.removesuffix("*")):
            raise ValueError(
                f"action: expected a name such as replay or rules.publish (or rules.*), got {action[:40]!r}"
            )
        outcome = given.get("outcome")
        if outcome is not None and not _WORD.fullmatch(outcome):
            raise ValueError(f"outcome: expected a word such as ok or refused, got {outcome[:40]!r}")
        times: dict[str, int | None] = {}
        for name in ("since", "until"):
            try:
                times[name] = int(parse_time(given[name])) if name in given else None
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        since, until = times["since"], times["until"]
        if since is not None and until is not None and since > until:
            raise ValueError("since: after until, so nothing can match")
        return cls(
            actor=given.get("actor"),
            action=action,
            target=given.get("target"),
            outcome=outcome,
            since_ms=since,
            until_ms=until,
        )

    def matches(self, entry: AuditEntry) -> bool:
        """True when ``entry`` passes every given field."""
        return (
            _same(self.actor, entry.actor)
            and _same(self.action, entry.action)
            and (self.outcome is None or entry.result == self.outcome)
            and (self.target is None or self.target.casefold() in entry.target.casefold())
            and (self.since_ms is None or entry.at_ms >= self.since_ms)
            and (self.until_ms is None or entry.at_ms <= self.until_ms)
        )


def _same(wanted: str | None, value: str) -> bool:
    """Exact, or a prefix when ``wanted`` ends with ``*``."""
    if wanted is None:
        return True
    if wanted.endswith("*"):
        return value.startswith(wanted[:-1])
    return value == wanted


def check_cursor(cursor: str) -> str:
    """``cursor`` when it is one :meth:`AuditLog.page` gives out (a stream id); ValueError otherwise."""
    if not _STREAM_ID.fullmatch(cursor):
        raise ValueError("cursor: not one this API gave out")
    return cursor


class AuditLog:
    """Appends admin actions and reads them back, newest first; raises StoreUnavailableError without Redis."""

    def __init__(self, redis: Redis, keys: Keys, *, days: float) -> None:
        self._redis = redis
        self._key = keys.audit
        self._keep_ms = int(days * 86_400_000)

    def record(self, *, actor: str, action: str, target: str, outcome: str = "ok", address: str = "") -> str:
        """Append one entry, drop those older than the retention (and past MAX_ENTRIES); return its id."""
        now_ms = int(time.time() * 1000)
        fields = {
            "actor": actor[:MAX_FIELD_CHARS],
            "action": action[:MAX_FIELD_CHARS],
            "target": target[:MAX_FIELD_CHARS],
            "outcome": outcome[:MAX_FIELD_CHARS],
            "address": address[:MAX_FIELD_CHARS],
        }
        with store_errors():
            pipe = self._redis.pipeline(transaction=False)
            # Exact MINID (not ``~``): an approximate trim keeps old entries until a whole node of them
            # expires, and an audit log promises its retention.
            pipe.xadd(self._key, fields, minid=f"{now_ms - self._keep_ms}-0", approximate=False)  # type: ignore[arg-type]
            pipe.xtrim(self._key, maxlen=MAX_ENTRIES, approximate=True)
            added, _ = pipe.execute()
        return text(added)

    def count(self) -> int:
        """Entries kept."""
        with store_errors():
            return int(self._redis.xlen(self._key))

    def page(
        self, flt: AuditFilter, *, limit: int = DEFAULT_PAGE, cursor: str | None = None
    ) -> tuple[list[AuditEntry], str | None]:
        """Newest first: up to ``limit`` matching entries and the cursor of the next page (None: last page).

        A page reads at most MAX_SCANNED entries: when a rare filter stops it there, the page is short
        (or empty) and its cursor goes on from the last entry read. Raises ValueError for a bad cursor or
        limit.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit: expected 1 to {MAX_PAGE}, got {limit}")
        high = f"({check_cursor(cursor)}" if cursor else "+"
        if flt.until_ms is not None and not cursor:
            high = f"{max(flt.until_ms, 0)}-18446744073709551615"  # a time before 1970 is no stream id
        # Nothing older than the retention is shown, even before the next write trims it.
        floor_ms = int(time.time() * 1000) - self._keep_ms
        low = f"{max(flt.since_ms or 0, floor_ms, 0)}-0"
        found: list[AuditEntry] = []
        for scanned, entry in enumerate(self._newest_first(high, low), start=1):
            if flt.matches(entry):
                if len(found) == limit:
                    return found, found[-1].id
                found.append(entry)
            if scanned >= MAX_SCANNED:
                return found, (found[-1].id if len(found) == limit else entry.id)
        return found, None

    def _newest_first(self, high: str, low: str) -> Iterator[AuditEntry]:
        """Every entry from ``high`` down to ``low`` (XREVRANGE bounds), read CHUNK at a time."""
        while True:
            with store_errors():
                rows: list[tuple[Any, Any]] = self._redis.xrevrange(self._key, high, low, count=CHUNK) or []
            for entry_id, fields in rows:
                yield _entry(text(entry_id), fields)
            if len(rows) < CHUNK:
                return
            high = f"({text(rows[-1][0])}"


def _entry(entry_id: str, fields: Mapping[Any, Any]) -> AuditEntry:
    values = {text(k): text(v) for k, v in fields.items()}
    return AuditEntry(
        id=entry_id,
        actor=values.get("actor", ""),
        action=values.get("action", ""),
        target=values.get("target", ""),
        outcome=values.get("outcome", ""),
        address=values.get("address", ""),
    )
