"""The Webhooks Journal as a source: a portal's journal entries read in order and stored in the inbox.

For each portal with ``journal: true`` in the portals file, a worker's journal loop (``worker.loops.JournalLoop``)
asks HubSpot for the entry after the portal's stored offset (the earliest one the first time), downloads its
events, and stores them with ``Inbox.add_hubspot`` exactly as a push would bring them (a JSON array of at
most 100 events; a bigger entry becomes several inbox entries). The expanders then apply the same rules and
the same dedup key (``hubspot:portal:subscription:event:object:occurredAt``) to both sources, so an event
that came by push and by the journal is processed once, and one HubSpot failed to push is recovered.

**The app's token.** The journal is read with the app's own token (``client_credentials``: HUBSPOT_CLIENT_ID
and HUBSPOT_CLIENT_SECRET, ``hublink.delivery.credentials.AppTokens``), never a portal's, and it holds only
the events of journal subscriptions (``hublink hubspot subscriptions apply`` creates them;
docs/reference/hubspot.md §9.1). A token HubSpot refuses (401, 403) is forgotten, and the next poll fetches
another.

**Entry files.** An entry's file is read as HubSpot's wrapper ``{"offset", "journalEvents": [...],
"publishedAt"}`` or as a bare JSON array of events (:func:`entry_events`). An entry that cannot be read is
set aside with its raw body (``inbox:failed``, kind ``delivery``, source ``journal``) *before* the offset
moves past it: nothing is lost to a log line, and an operator replays it once HubLink reads it.

**App lifecycle.** An entry's app-lifecycle events (``subscriptionType`` ``app.lifecycle``: ``APP_UNINSTALL``,
``APP_INSTALL``; §9.6) are handed to the ``lifecycle`` callback (``hublink.delivery.installs``, wired in by
``worker.runtime``) once the entry is stored, before the offset moves: a crash in between hands them over
again, which changes nothing.

**Order of writes.** The offset is advanced only after the entry's events are in the inbox (or set aside). A
crash in between makes the next poll read that entry again: its events are then duplicates, dropped by
dedup. The offset moves by compare-and-set (``journal_advance.lua``) from the offset the poller read from, and
one worker at a time holds a portal's poll lock (``journal:<portal>:lock``, a few poll intervals long, taken
over when its holder stops renewing it), so two workers never both advance a portal's offset.

**Why in intake, with a Protocol.** The poller only ever stores into the inbox, which is intake's job, and
the import-linter layers forbid intake to import ``hublink.delivery``. The two HubSpot calls it needs are
named by :class:`JournalSource` (``HubSpotClient`` implements it) and the token and host come from
a callable; ``worker.runtime`` wires both in. Fails closed: without Redis a poll raises
StoreUnavailableError and nothing is read.

Keys owned: ``journal:<portal>:offset``, ``journal:<portal>:lock``.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from redis import Redis

from hublink.domain.errors import AuthError, ForbiddenError, InvalidInputError, NotFoundError
from hublink.domain.events import MAX_EVENTS, read_hubspot_batch
from hublink.store.connections import store_errors, text
from hublink.store.counters import CounterOps
from hublink.store.keys import Keys
from hublink.store.scripts import Scripts

log = logging.getLogger("hublink.journal")

#: The most entries one poll of one portal stores before the loop turns to the next portal.
MAX_ENTRIES_PER_POLL = 100
#: The poll lock lasts this many poll intervals (at least ``MIN_LOCK_S``): a dead holder's portal waits this long.
LOCK_INTERVALS = 3
MIN_LOCK_S = 15.0


class JournalSource(Protocol):
    """The two HubSpot calls the poller makes (``hublink.delivery.hubspot.HubSpotClient`` has them)."""

    def journal_fetch(
        self, token: str, after: str | None, *, portal_id: str, base_url: str | None = None
    ) -> dict[str, Any] | None:
        """The entry after ``after`` (the earliest when None) as HubSpot describes it, or None when none yet."""
        ...

    def journal_download(self, url: str) -> bytes:
        """The entry's body from the URL a fetch gave."""
        ...


#: Called with (portal id, action) for each app-lifecycle event read (``hublink.delivery.installs.Installs``).
Lifecycle = Callable[[str, str], None]
#: The subscription type of HubSpot's app install and uninstall events.
APP_LIFECYCLE = "app.lifecycle"


def lifecycle_actions(events: list[Any], portal_id: str) -> list[tuple[str, str]]:
    """(portal, action) of each app-lifecycle event among ``events`` (its ``portalId``, else the journal's)."""
    found = []
    for event in events:
        if not isinstance(event, dict) or event.get("subscriptionType") != APP_LIFECYCLE:
            continue
        action = event.get("action")
        if isinstance(action, str) and action:
            portal = event.get("portalId")
            found.append((str(portal) if isinstance(portal, int | str) and str(portal) else portal_id, action))
    return found


#: The bearer token to read a portal's journal with (the app's) and its HubSpot host (None: the default host).
PortalAccess = Callable[[str], tuple[str, str | None]]
#: The source named on a journal entry set aside (``inbox:failed``, kind ``delivery``).
JOURNAL_SOURCE = "journal"


@dataclass(frozen=True, slots=True)
class JournalFetch:
    """One ``JournalFetchResponse``: the entry's offset and where its events can be downloaded."""

    offset: str
    url: str

    @classmethod
    def parse(cls, body: Any) -> JournalFetch:
        """Read HubSpot's answer; raise InvalidInputError naming the field that is missing or wrong."""
        if not isinstance(body, dict):
            raise InvalidInputError(f"journal fetch: expected a JSON object, got {type(body).__name__}")
        offset, url = body.get("currentOffset"), body.get("url")
        if not isinstance(offset, str) or not offset:
            raise InvalidInputError(f"journal fetch: currentOffset: expected a non-empty string, got {offset!r}")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise InvalidInputError(f"journal fetch: url: expected an http(s) URL, got {url!r}")
        return cls(offset, url)


def entry_events(raw: bytes) -> list[Any]:
    """The events of a journal entry's file: HubSpot's wrapper ``{"offset", "journalEvents": [...]}`` or an array.

    The wrapper is what HubSpot is reported to serve, the bare array what earlier readings assumed
    (docs/reference/hubspot.md §9.1, low-medium confidence): both are read. Raises InvalidInputError when
    the file is neither.
    """
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"journal entry: not JSON: {exc}") from None
    if isinstance(body, dict):
        events = body.get("journalEvents")
        if not isinstance(events, list):
            found = "nothing" if "journalEvents" not in body else type(events).__name__
            raise InvalidInputError(f"journal entry: journalEvents: expected an array of events, got {found}")
        return events
    if not isinstance(body, list):
        raise InvalidInputError(
            f"journal entry: expected an array of events or an object with journalEvents, got {type(body).__name__}"
        )
    return body


def inbox_bodies(raw: bytes) -> tuple[list[bytes], int]:
    """A journal entry's file as inbox bodies (JSON arrays of at most 100 events) and its event count.

    A bare array of at most 100 events is kept as sent; anything else is re-serialized, cut into arrays of
    100. Raises InvalidInputError when the file cannot be read (:func:`entry_events`); events HubLink cannot
    use are kept: the expanders set them aside with their reason, as they do for a push.
    """
    events = entry_events(raw)
    if not events:
        return [], 0
    if len(events) <= MAX_EVENTS and raw.lstrip()[:1] == b"[":
        return [raw], len(events)
    chunks = [events[i : i + MAX_EVENTS] for i in range(0, len(events), MAX_EVENTS)]
    return [orjson.dumps(chunk) for chunk in chunks], len(events)


def kept_body(raw: bytes) -> Any:
    """An unreadable entry's file as it is kept: its text, or ``{"base64"}`` when it is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode("ascii")}


class OffsetStore(Protocol):
    """Each journal portal's offset and poll lock: :class:`JournalOffsets` (Redis), :class:`MemoryOffsets`."""

    def offset(self, portal_id: str) -> str | None:
        """The offset of the last entry stored in the inbox, or None before the first."""
        ...

    def advance(self, portal_id: str, read_from: str | None, to: str, *, events: int) -> bool:
        """Move the offset to ``to`` if it is still ``read_from`` and count ``events``; False when it had moved."""
        ...

    def hold(self, portal_id: str, owner: str, ttl_s: float) -> bool:
        """Take or renew the portal's poll lock for ``owner``; False while another owner holds it."""
        ...


class HubSpotInbox(Protocol):
    """Where a journal entry's events go, and an unreadable entry: ``hublink.intake.inbox.Inbox``."""

    def add_hubspot(self, raw: bytes, *, received_at: float) -> str:
        """Store a HubSpot batch as sent; return the entry id."""
        ...

    def set_aside_delivery(self, source: str, body: Any, delivery_id: str, reason: str, *, received_at: float) -> str:
        """Keep a delivery HubLink cannot read in ``inbox:failed`` with ``reason``; return its id there."""
        ...


class JournalOffsets:
    """:class:`OffsetStore` in Redis (``journal:<portal>:offset`` and ``:lock``); the count rides in the script."""

    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts | None = None) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts or Scripts(redis)
        self._counters = CounterOps(keys)

    def offset(self, portal_id: str) -> str | None:
        """The offset of the last entry stored in the inbox, or None before the first."""
        with store_errors():
            value = self._redis.get(self._keys.journal_offset(portal_id))
        return None if value is None else text(value)

    def advance(self, portal_id: str, read_from: str | None, to: str, *, events: int) -> bool:
        """Move the offset to ``to`` if it is still ``read_from`` and count ``events`` (journal_advance.lua)."""
        metric, field, _, _ = self._counters.op("journal_events_read", events, portal=portal_id)
        with store_errors():
            moved = self._scripts.journal_advance(
                keys=[self._keys.journal_offset(portal_id), metric], args=[read_from or "", to, field, events]
            )
        return bool(moved)

    def hold(self, portal_id: str, owner: str, ttl_s: float) -> bool:
        """Take or renew the portal's poll lock for ``owner``; False while another owner holds it."""
        key = self._keys.journal_lock(portal_id)
        ttl_ms = max(int(ttl_s * 1000), 1)
        with store_errors():
            if self._redis.set(key, owner, nx=True, px=ttl_ms):
                return True
            # Renewed by its holder only; a lock that ran out between these two calls is taken on the next poll.
            held = self._redis.get(key)
            if held is not None and text(held) == owner:
                self._redis.pexpire(key, ttl_ms)
                return True
        return False


class MemoryOffsets:
    """:class:`OffsetStore` in memory, for unit tests: the same promises as :class:`JournalOffsets`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        #: Each portal's offset.
        self.offsets: dict[str, str] = {}
        #: Each portal's ``journal_events_read`` count.
        self.events_read: dict[str, int] = {}
        self._locks: dict[str, tuple[str, float]] = {}

    def offset(self, portal_id: str) -> str | None:
        """The offset of the last entry stored in the inbox, or None before the first."""
        return self.offsets.get(portal_id)

    def advance(self, portal_id: str, read_from: str | None, to: str, *, events: int) -> bool:
        """Move the offset to ``to`` if it is still ``read_from`` and count ``events``; False when it had moved."""
        if self.offsets.get(portal_id) != read_from:
            return False
        self.offsets[portal_id] = to
        self.events_read[portal_id] = self.events_read.get(portal_id, 0) + events
        return True

    def hold(self, portal_id: str, owner: str, ttl_s: float) -> bool:
        """Take or renew the portal's poll lock for ``owner``; False while another owner holds it."""
        now = self._clock()
        held = self._locks.get(portal_id)
        if held is not None and held[0] != owner and held[1] > now:
            return False
        self._locks[portal_id] = (owner, now + ttl_s)
        return True


class JournalPoller:
    """Reads journal portals' new entries into the inbox (see the module docstring for the guarantees)."""

    def __init__(
        self,
        source: JournalSource,
        access: PortalAccess,
        inbox: HubSpotInbox,
        offsets: OffsetStore,
        *,
        owner: str,
        poll_s: float,
        clock: Callable[[], float] = time.time,
        refused: Callable[[], None] = lambda: None,
        lifecycle: Lifecycle = lambda portal, action: None,
    ) -> None:
        self._source = source
        self._lifecycle = lifecycle
        #: Called when HubSpot refuses the token (401, 403): the app token is forgotten and fetched again.
        self._refused = refused
        self._access = access
        self._inbox = inbox
        self._offsets = offsets
        self._owner = owner
        self._lock_s = max(poll_s * LOCK_INTERVALS, MIN_LOCK_S)
        self._clock = clock

    def poll(self, portal_id: str) -> int:
        """Store the portal's new entries (up to ``MAX_ENTRIES_PER_POLL``); return how many were stored.

        Returns 0 at once while another worker holds the portal. Raises DeliveryError when HubSpot does
        not answer as it should (the offset stays where it was) and StoreUnavailableError without Redis.
        """
        try:
            return self._poll(portal_id)
        except (AuthError, ForbiddenError):
            self._refused()
            raise

    def _poll(self, portal_id: str) -> int:
        """:meth:`poll` without the token's forgetting."""
        if not self._offsets.hold(portal_id, self._owner, self._lock_s):
            return 0
        token, base_url = self._access(portal_id)
        stored = 0
        while stored < MAX_ENTRIES_PER_POLL:
            after = self._offsets.offset(portal_id)
            try:
                answer = self._source.journal_fetch(token, after, portal_id=portal_id, base_url=base_url)
            except NotFoundError:
                if after is None:
                    raise
                # The journal keeps three days: an offset older than that is gone, so read all it still has.
                log.warning("journal offset expired; reading from the earliest entry", extra={"portal": portal_id})
                answer = self._source.journal_fetch(token, None, portal_id=portal_id, base_url=base_url)
            if answer is None:
                break
            fetch = JournalFetch.parse(answer)
            events = self._store(portal_id, fetch)
            if not self._offsets.advance(portal_id, after, fetch.offset, events=events):
                # Another poller moved it (this one's lock ran out): its events are duplicates of that one's.
                log.warning("journal offset moved by another worker", extra={"portal": portal_id})
                break
            stored += 1
        return stored

    def _store(self, portal_id: str, fetch: JournalFetch) -> int:
        """Store one entry's events in the inbox; return how many. An unreadable entry is set aside as it came."""
        raw = self._source.journal_download(fetch.url)
        received_at = self._clock()
        actions: list[tuple[str, str]] = []
        try:
            bodies, events = inbox_bodies(raw)
            for body in bodies:
                batch = orjson.loads(body)
                read_hubspot_batch(batch)  # the same check a push passes at the web
                actions += lifecycle_actions(batch, portal_id)
        except InvalidInputError as exc:
            # Reading it again would not change it, and stopping here would stop the portal's journal for good:
            # it is kept with its raw body before the offset moves past it, for an operator to see and replay.
            failed_id = self._inbox.set_aside_delivery(
                JOURNAL_SOURCE,
                kept_body(raw),
                f"journal:{portal_id}:{fetch.offset}",
                f"journal entry {fetch.offset} of portal {portal_id} cannot be read: {exc.message}",
                received_at=received_at,
            )
            log.error(
                "journal entry set aside: unreadable",
                extra={"portal": portal_id, "offset": fetch.offset, "failed": failed_id, "error": str(exc)},
            )
            return 0
        for body in bodies:
            self._inbox.add_hubspot(body, received_at=received_at)
        for portal, action in actions:
            log.info("journal app-lifecycle event", extra={"portal": portal, "action": action})
            self._lifecycle(portal, action)
        return events
