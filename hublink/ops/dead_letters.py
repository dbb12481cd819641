"""DeadLetterStore: the associations HubLink gave up on, with every attempt, kept for inspection and replay.

A dead letter's id is its association's id: replaying it puts the same association back in its lane
with a fresh attempt budget, its history kept and its replay count raised, and removes the dead letter in
the same atomic step (enqueue.lua). If it fails again it comes back under the same id. Bodies are written
by settle.lua together with the deletion of the association, so an association is never in both places.

Keys owned: ``dl:<id>`` (JSON, retention TTL), ``dlq`` (zset by time of death), ``dlq:dropped``.
Bulk operations walk the index in chunks, so replaying or purging 100,000 entries never loads them all.
Fails closed: raises StoreUnavailableError without Redis.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from redis import Redis

from hublink import tracing
from hublink.domain.dead_letter import DeadLetter
from hublink.domain.lookups import work_from_record
from hublink.domain.times import parse_time
from hublink.lanes import LaneStore, PendingItem
from hublink.store.connections import store_errors, text
from hublink.store.keys import Keys

log = logging.getLogger("hublink.ops.dead_letters")

MAX_LIST_LIMIT = 1000
DEFAULT_LIST_LIMIT = 100
CHUNK = 500
#: Attempt history kept with a replayed association (as the drain keeps it: the newest).
MAX_HISTORY = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetterFilter:
    """Which dead letters an operation applies to; every field optional."""

    source: str | None = None
    status: int | None = None
    category: str | None = None
    since_ms: float | None = None
    until_ms: float | None = None

    #: The names the HTTP API, the dashboard's form and the CLI's options share.
    FIELDS: ClassVar[tuple[str, ...]] = ("source", "status", "category", "since", "until")

    @classmethod
    def parse(cls, values: Mapping[str, object], *, blank_is_any: bool = True) -> DeadLetterFilter:
        """Read the shared filter fields (absent: any); raise ValueError naming the bad field.

        ``status`` is an HTTP status (three digits); ``since``/``until`` are epoch seconds or ISO-8601. A
        blank field means "any" for a form that always sends every field (``blank_is_any``); an API caller
        who sends ``?until=`` made a mistake, and is told so.
        """
        given = {name: str(values[name]).strip() for name in cls.FIELDS if values.get(name) is not None}
        blank = [name for name, value in given.items() if not value]
        if blank and not blank_is_any:
            raise ValueError(f"{blank[0]} is empty")
        given = {name: value for name, value in given.items() if value}
        status = given.get("status")
        if status is not None and not (status.isascii() and status.isdigit() and len(status) == 3):
            raise ValueError(f"status: expected an HTTP status such as 403, got {status[:20]!r}")
        times: dict[str, float | None] = {}
        for name in ("since", "until"):
            try:
                times[name] = parse_time(given[name]) if name in given else None
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return cls(
            source=given.get("source"),
            status=int(status) if status is not None else None,
            category=given.get("category"),
            since_ms=times["since"],
            until_ms=times["until"],
        )

    def matches(self, letter: DeadLetter) -> bool:
        """True when ``letter`` passes every given field (the time range is applied by the index)."""
        return (
            (self.source is None or letter.source == self.source)
            and (self.status is None or letter.status == self.status)
            and (self.category is None or letter.category == self.category)
        )


def _encode_cursor(score: float, member: str) -> str:
    return base64.urlsafe_b64encode(f"{score:.0f}:{member}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        score, member = text.split(":", 1)
        return float(score), member
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("cursor: not a cursor this API returned") from exc


class DeadLetterStore:
    """Read, replay and purge dead letters (they are written by ``LaneStore.settle``)."""

    def __init__(self, redis: Redis, keys: Keys, queueing: LaneStore) -> None:
        self._redis = redis
        self._keys = keys
        self._queueing = queueing

    def count(self) -> int:
        """How many dead letters are indexed."""
        with store_errors():
            return int(self._redis.zcard(self._keys.dead_letters))

    def dropped(self) -> int:
        """How many dead letters the size cap has dropped, ever."""
        with store_errors():
            return int(self._redis.get(self._keys.dead_letters_dropped) or 0)

    def get(self, letter_id: str) -> DeadLetter | None:
        """One dead letter, or None (also for a body this version cannot read: it is logged)."""
        with store_errors():
            raw = self._redis.get(self._keys.dead_letter(letter_id))
        return _read(letter_id, raw) if raw else None

    def page(
        self, flt: DeadLetterFilter, *, limit: int = DEFAULT_LIST_LIMIT, cursor: str | None = None
    ) -> tuple[list[DeadLetter], str | None]:
        """Newest first: up to ``limit`` matching letters and the cursor of the next page (None: last page).

        Raises ValueError for a bad cursor or limit.
        """
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise ValueError(f"limit: expected 1 to {MAX_LIST_LIMIT}, got {limit}")
        after = _decode_cursor(cursor) if cursor else None
        page: list[tuple[float, DeadLetter]] = []
        for score, letter in self._walk(flt, after):
            if len(page) == limit:
                last_score, last = page[-1]
                return [p for _, p in page], _encode_cursor(last_score, last.id)
            page.append((score, letter))
        return [p for _, p in page], None

    def iter_matching(self, flt: DeadLetterFilter) -> Iterator[DeadLetter]:
        """Every matching letter, newest first, read a chunk at a time."""
        for _, letter in self._walk(flt, None):
            yield letter

    def _walk(self, flt: DeadLetterFilter, after: tuple[float, str] | None) -> Iterator[tuple[float, DeadLetter]]:
        high: float | str = flt.until_ms if flt.until_ms is not None else "+inf"
        low: float | str = flt.since_ms if flt.since_ms is not None else "-inf"
        if after is not None:
            high = after[0] if high == "+inf" else min(float(high), after[0])
        skip_member = after
        while True:
            with store_errors():
                chunk: list[Any] = self._redis.zrevrangebyscore(
                    self._keys.dead_letters, high, low, start=0, num=CHUNK, withscores=True
                )
            if not chunk:
                return
            members: list[tuple[str, float]] = [(text(m), float(s)) for m, s in chunk]
            if skip_member is not None:
                # Equal scores are ordered by member, descending here: skip what the last page showed.
                members = [(m, s) for m, s in members if not (s == skip_member[0] and m >= skip_member[1])]
            with store_errors():
                bodies = self._redis.mget([self._keys.dead_letter(m) for m, _ in members]) if members else []
            gone = []
            for (member, score), body in zip(members, bodies, strict=True):
                if body is None:
                    gone.append(member)  # expired by retention: drop the index entry too
                    continue
                letter = _read(member, body)
                if letter is not None and flt.matches(letter):
                    yield score, letter
            if gone:
                with store_errors():
                    self._redis.zrem(self._keys.dead_letters, *gone)
            last_member, last_score = members[-1] if members else (text(chunk[-1][0]), float(chunk[-1][1]))
            if len(chunk) < CHUNK:
                return
            high = last_score
            skip_member = (last_score, last_member)

    def replay(self, letter_id: str) -> bool:
        """Put one dead letter's association back in its lane with a fresh budget; False if there is none.

        Raises ValueError for a letter whose work could not be read (nothing to put back).
        """
        letter = self.get(letter_id)
        if letter is None:
            return False
        if not letter.is_replayable:
            raise ValueError(f"dead letter {letter_id} cannot be replayed: its work could not be read")
        self._replay_letters([letter])
        return True

    def replay_matching(
        self, flt: DeadLetterFilter, *, dry_run: bool = False, progress: Callable[[int], None] | None = None
    ) -> int:
        """Replay every matching letter, a chunk per round-trip; return how many (would have been) replayed.

        Replays go through the lanes and therefore through the shared rate limit: a bulk replay of any
        size is drained at HubSpot's pace, not sent at once.
        """
        done = 0
        batch: list[DeadLetter] = []
        for letter in self.iter_matching(flt):
            batch.append(letter)
            if len(batch) == CHUNK:
                done += self._flush(batch, dry_run, progress)
        if batch:
            done += self._flush(batch, dry_run, progress)
        return done

    def _flush(self, batch: list[DeadLetter], dry_run: bool, progress: Callable[[int], None] | None) -> int:
        n = len(batch)
        if not dry_run:
            self._replay_letters(batch)
        batch.clear()
        if progress:
            progress(n)
        return n

    def _replay_letters(self, letters: list[DeadLetter]) -> None:
        now = int(time.time() * 1000)
        skipped = [letter.id for letter in letters if not letter.is_replayable]
        if skipped:
            log.warning("dead letters that cannot be replayed were left", extra={"ids": skipped[:20]})
        letters = [letter for letter in letters if letter.is_replayable]
        if not letters:
            return
        origin = tracing.origin(tracing.traceparent())
        items = [
            PendingItem(
                work_from_record(letter.record),
                association_id=letter.id,
                attempts=0,
                history=[dict(entry) for entry in letter.replay_history(now, MAX_HISTORY)],
                replays=letter.replays + 1,
                first_seen_ms=letter.first_seen_ms or None,
                replaces_dead_letter=True,
                # Tracing on: the replay's drain links to the request that asked for it.
                origin=origin,
            )
            for letter in letters
        ]
        self._queueing.enqueue_items([(None, items)])

    def delete(self, letter_id: str) -> bool:
        """Delete one dead letter; False if there was none."""
        with store_errors():
            pipe = self._redis.pipeline(transaction=True)
            pipe.delete(self._keys.dead_letter(letter_id))
            pipe.zrem(self._keys.dead_letters, letter_id)
            deleted, _ = pipe.execute()
        return bool(deleted)

    def purge_matching(
        self, flt: DeadLetterFilter, *, dry_run: bool = False, progress: Callable[[int], None] | None = None
    ) -> int:
        """Delete every matching letter, a chunk per round-trip; return how many (would have been) deleted."""
        done = 0
        batch: list[str] = []

        def flush() -> None:
            nonlocal done
            if not dry_run:
                with store_errors():
                    pipe = self._redis.pipeline(transaction=True)
                    pipe.delete(*[self._keys.dead_letter(i) for i in batch])
                    pipe.zrem(self._keys.dead_letters, *batch)
                    pipe.execute()
            done += len(batch)
            if progress:
                progress(len(batch))
            batch.clear()

        for letter in self.iter_matching(flt):
            batch.append(letter.id)
            if len(batch) == CHUNK:
                flush()
        if batch:
            flush()
        return done


def _read(letter_id: str, raw: bytes | str) -> DeadLetter | None:
    """A stored body as a DeadLetter; None (logged) for one this version cannot read."""
    try:
        return DeadLetter.from_wire(json.loads(raw))
    except ValueError as exc:  # json.JSONDecodeError is a ValueError too
        log.error("unreadable dead letter", extra={"association_id": letter_id, "reason": str(exc)[:200]})
        return None
