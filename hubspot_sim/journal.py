"""The Webhooks Journal (webhooks-2026-03 spec): a pull-based record of a portal's events, kept three days.

HubSpot's journal answers a ``JournalFetchResponse``: an entry's ``currentOffset`` (a UUID), a ``url`` where
the entry can be downloaded (a pre-signed S3 URL at HubSpot; here a loopback control route of the simulator
itself, ``GET /_sim/journal/files/{offset}``, answering the entry's events as a JSON array) and the URL's
``expiresAt``. Reading on from an offset walks the entries in the order they were written.

An entry is one batch of one portal's events: each delivery of the webhook sender writes one (split by
``portalId``), and ``POST /_sim/journal/events`` writes one without pushing anything, as when HubSpot's
push to a receiver failed but the journal still has the events. Entries older than ``RETENTION_S`` are
dropped. An entry's file is served as a bare JSON array of its events or in HubSpot's reported wrapper
(``journal_format``), or as raw bytes written through ``write_raw`` (a corrupt entry, for clients' tests).
Thread-safe (its own lock), with the simulator's injectable clock.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hubspot_sim.messages import iso_utc

RETENTION_S = 3 * 24 * 3600  # HubSpot keeps journal entries three days (docs/reference/hubspot.md §8)
URL_LIFETIME_S = 300  # how long an entry's download URL is said to stay valid ([I]: HubSpot states none)
UNKNOWN_PORTAL = 0


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One batch of one portal's events, written at ``written_at``."""

    offset: str
    portal_id: int
    written_at: float
    events: tuple[Mapping[str, Any], ...]
    raw: bytes | None = None  # a file body written as is (an entry a client cannot read), instead of the events

    def file_body(self, journal_format: str) -> bytes:
        """The entry's file: ``raw`` as written, else its events as a bare array or in HubSpot's wrapper.

        The wrapper ``{"offset", "journalEvents", "publishedAt"}`` is the reported one (docs/reference/hubspot.md
        §9.1); ``publishedAt`` is when the entry was written.
        """
        if self.raw is not None:
            return self.raw
        events = list(self.events)
        if journal_format == "wrapper":
            body: Any = {"offset": self.offset, "journalEvents": events, "publishedAt": iso_utc(self.written_at)}
        else:
            body = events
        return json.dumps(body, separators=(",", ":")).encode()


class Journal:
    """The journal's entries in the order written (see the module docstring)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: list[JournalEntry] = []

    def write(self, events: Sequence[Mapping[str, Any]]) -> list[JournalEntry]:
        """Write ``events`` as one entry per portal (their ``portalId``, else 0), in first-seen order."""
        by_portal: dict[int, list[Mapping[str, Any]]] = {}
        for event in events:
            portal = event.get("portalId")
            key = portal if isinstance(portal, int) and not isinstance(portal, bool) else UNKNOWN_PORTAL
            by_portal.setdefault(key, []).append(dict(event))
        with self._lock:
            now = self._clock()
            written = [JournalEntry(str(uuid.uuid4()), p, now, tuple(batch)) for p, batch in by_portal.items()]
            self._entries.extend(written)
            return written

    def write_raw(self, portal_id: int, body: bytes) -> JournalEntry:
        """Write one entry whose file is ``body`` as given (for a corrupt entry)."""
        with self._lock:
            entry = JournalEntry(str(uuid.uuid4()), portal_id, self._clock(), (), body)
            self._entries.append(entry)
            return entry

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()

    def _live(self, portal_id: int | None) -> list[JournalEntry]:
        horizon = self._clock() - RETENTION_S
        self._entries = [e for e in self._entries if e.written_at > horizon]
        return [e for e in self._entries if portal_id is None or e.portal_id == portal_id]

    def earliest(self, count: int, portal_id: int | None = None) -> list[JournalEntry]:
        """The first ``count`` live entries (of one portal, if given)."""
        with self._lock:
            return self._live(portal_id)[:count]

    def latest(self, count: int, portal_id: int | None = None) -> list[JournalEntry]:
        """The last ``count`` live entries, oldest first."""
        with self._lock:
            return self._live(portal_id)[-count:]

    def after(self, offset: str, count: int, portal_id: int | None = None) -> list[JournalEntry] | None:
        """Up to ``count`` entries written after the one at ``offset``; None if no live entry has it."""
        with self._lock:
            live = self._live(portal_id)
            for i, entry in enumerate(live):
                if entry.offset == offset:
                    return live[i + 1 : i + 1 + count]
            return None

    def find(self, offset: str) -> JournalEntry | None:
        """The live entry at ``offset``, or None."""
        with self._lock:
            return next((e for e in self._live(None) if e.offset == offset), None)

    def entries_json(self) -> dict[str, Any]:
        """``GET /_sim/journal``: every live entry, oldest first."""
        with self._lock:
            return {
                "entries": [
                    {
                        "offset": e.offset,
                        "portalId": e.portal_id,
                        "writtenAt": e.written_at,
                        "events": list(e.events),
                        **({"raw": e.raw.decode("utf-8", "replace")} if e.raw is not None else {}),
                    }
                    for e in self._live(None)
                ]
            }
