"""The worker's background loops: the expander and the dispatcher, on a loop that outlives any bad turn.

The worker's main thread belongs to RQ; each helper is a loop on a daemon thread. A turn that finds Redis
unavailable (down, timing out, out of memory, read-only) is logged and retried with a growing wait, up to
``MAX_BACKOFF_S``; a turn that fails in any other way is logged and retried a second later: these loops are
the worker's heartbeat (the dispatcher writes it, see ``hublink.ops.heartbeats``), and a worker whose helper
died would keep running jobs while silently doing none of its other duties.

* The **expander** reads inbox entries as a member of the inbox's consumer group and, every few seconds,
  takes over entries whose reader died (``Inbox.reclaim``); each entry is expanded by
  ``hublink.intake.expansion.Expansion`` in one atomic step that stores its work, marks its events seen and
  acknowledges the entry, so a crash leaves an entry either expanded or still in the inbox. An entry whose
  expansion keeps failing is set aside after ``MAX_DELIVERIES`` attempts.
* The **journal loop** (only with journal portals in the portals file) reads each such portal's Webhooks
  Journal every ``HUBLINK_JOURNAL_POLL_S`` into the inbox (``hublink.intake.journal``); one worker at a
  time polls a portal.
* The **dispatcher** turns woken lanes into RQ drain jobs and sweeps for expired leases and due lanes.
  Every worker runs one, so there is no single scheduler whose death could stall retries: delayed work
  lives in the lanes' due times, and any live worker's sweep wakes it.
"""

from __future__ import annotations

import logging
import threading
import time

from rq import Queue

from hublink.domain.errors import DeliveryError, InvalidInputError
from hublink.intake.expansion import Expansion, IntakeReport, NoRulesError
from hublink.intake.inbox import Inbox, InboxEntry
from hublink.intake.journal import MAX_ENTRIES_PER_POLL, JournalPoller
from hublink.lanes import LaneStore
from hublink.ops.alerts import Alerter
from hublink.ops.heartbeats import WorkerHeartbeats, WorkerPresence
from hublink.store.connections import is_unavailable, unavailable_reason
from worker import jobs

log = logging.getLogger("hublink.worker.loops")

#: How long a loop waits after a failed turn (doubled after each turn that finds Redis unavailable).
RETRY_AFTER_FAILURE_S = 1.0
#: The longest a loop waits between two turns that find Redis unavailable.
MAX_BACKOFF_S = 5.0


class BackgroundLoop:
    """Calls :meth:`turn` until :meth:`stop`; subclasses name their thread and implement the turn."""

    thread_name = "hublink-loop"

    def __init__(self) -> None:
        self._stopping = threading.Event()

    def turn(self) -> None:
        """One unit of work; may block briefly (it is how the loop waits)."""
        raise NotImplementedError

    def on_store_unavailable(self) -> None:
        """Called after a turn found Redis unavailable (e.g. to redo set-up once it is back)."""

    def run(self) -> None:
        """Loop until :meth:`stop`; Redis outages are logged and waited out with backoff, never fatal."""
        backoff_s = RETRY_AFTER_FAILURE_S
        while not self._stopping.is_set():
            try:
                self.turn()
            except Exception as exc:
                if not is_unavailable(exc):
                    log.exception("%s: turn failed", self.thread_name)
                    self._stopping.wait(RETRY_AFTER_FAILURE_S)
                    continue
                log.warning(
                    "%s: Redis unavailable (%s); retrying in %.0f s",
                    self.thread_name,
                    unavailable_reason(exc),
                    backoff_s,
                )
                self.on_store_unavailable()
                self._stopping.wait(backoff_s)
                backoff_s = min(backoff_s * 2, MAX_BACKOFF_S)
            else:
                backoff_s = RETRY_AFTER_FAILURE_S

    def stop(self) -> None:
        """Ask :meth:`run` to return after its current turn."""
        self._stopping.set()

    def start_thread(self) -> threading.Thread:
        """Run in a daemon thread."""
        thread = threading.Thread(target=self.run, name=self.thread_name, daemon=True)
        thread.start()
        return thread


#: Entries read per turn; each is expanded (one round-trip) before the next turn.
READ_COUNT = 10
#: How often a worker looks for entries whose reader died.
RECLAIM_INTERVAL_S = 5.0
#: The longest one read waits for new entries before the loop turns (and can notice a stop).
BLOCK_MS = 1000


class Expander(BackgroundLoop):
    """Reads inbox entries and expands them; :meth:`run` loops until :meth:`stop`."""

    thread_name = "hublink-expander"

    def __init__(
        self,
        inbox: Inbox,
        expansion: Expansion,
        *,
        consumer: str,
        reclaim_interval_s: float = RECLAIM_INTERVAL_S,
    ) -> None:
        self._inbox = inbox
        #: What turns one entry into stored work (the loop only reads, takes over and hands entries to it).
        self.expansion = expansion
        self._reclaim_interval_s = reclaim_interval_s
        self._consumer = consumer
        #: Entries the last :meth:`step` read (expanded, set aside or failed): 0 means the inbox had nothing.
        self.last_read = 0
        super().__init__()
        self._next_reclaim = 0.0
        self._group_ready = False
        # First look at what this consumer already holds (a restart under the same name, a Redis outage).
        self._own_pending_first = True
        # Entries this consumer held when Redis went away: their next delivery is the outage's, not theirs.
        self._interrupted: list[str] = []

    def step(self, block_ms: int = BLOCK_MS) -> list[IntakeReport]:
        """One turn: take over abandoned entries when it is time, else read new ones; expand them."""
        if self._interrupted:
            self._inbox.excuse(self._interrupted)
            self._interrupted = []
        if not self._group_ready:
            self._inbox.ensure_group()
            self._group_ready = True
        entries: list[InboxEntry] = []
        own = self._own_pending_first
        if own:
            entries = self._inbox.read(self._consumer, count=READ_COUNT, block_ms=0, own_pending=True)
        now = time.monotonic()
        if not entries and now >= self._next_reclaim:
            self._next_reclaim = now + self._reclaim_interval_s
            entries = self._inbox.reclaim(self._consumer, count=READ_COUNT)
            if entries:
                log.warning("took over inbox entries whose reader stopped", extra={"entries": len(entries)})
        if not entries:
            entries = self._inbox.read(self._consumer, count=READ_COUNT, block_ms=block_ms)
        self.last_read = len(entries)
        reports: list[IntakeReport] = []
        failed = False
        for index, entry in enumerate(entries):
            try:
                report = self.expansion.expand(entry)
            except NoRulesError:
                failed = True
                continue
            except Exception as exc:
                if is_unavailable(exc):
                    # Redis trouble says nothing about the entries: what is still held is read again, excused.
                    self._interrupted = [e.entry_id for e in entries[index:]]
                    raise
                # Left pending: another turn (here or in another worker) takes it over after the claim time.
                log.exception("expanding an inbox entry failed", extra={"entry": entry.entry_id})
                failed = True
                continue
            if report is not None:
                reports.append(report)
        if own:
            # Keep going through what this consumer holds while there is more of it and it expands; what
            # fails is left to the claim time, so one bad entry cannot spin this loop.
            self._own_pending_first = len(entries) == READ_COUNT and not failed
        return reports

    def turn(self) -> None:
        """One step, waiting up to a second for new entries."""
        self.step()

    def on_store_unavailable(self) -> None:
        """Once Redis is back: make sure of the consumer group, then finish what this consumer held."""
        self._group_ready = False
        self._own_pending_first = True


class JournalLoop(BackgroundLoop):
    """Polls each journal portal's Webhooks Journal into the inbox, then waits ``poll_s``.

    A portal whose poll fails (HubSpot unreachable, a refused token, an answer that does not parse) is
    logged and tried again at the next interval; the others are polled all the same.
    """

    thread_name = "hublink-journal"

    def __init__(self, poller: JournalPoller, portal_ids: tuple[str, ...], *, poll_s: float) -> None:
        self._poller = poller
        self._portal_ids = portal_ids
        self._poll_s = poll_s
        super().__init__()

    def step(self) -> int:
        """Poll every journal portal once; return the entries stored."""
        stored = 0
        for portal_id in self._portal_ids:
            try:
                stored += self._poller.poll(portal_id)
            except (DeliveryError, InvalidInputError) as exc:
                log.warning("journal poll failed", extra={"portal": portal_id, "error": str(exc)})
        return stored

    def turn(self) -> None:
        """One step, then the poll interval (none while a portal had more entries than one poll takes)."""
        if self.step() < MAX_ENTRIES_PER_POLL:
            self._stopping.wait(self._poll_s)


#: Version of the drain job's arguments (a wire format: add arguments with defaults, never rename).
DRAIN_JOB_VERSION = 1
#: The longest a sweep waits; a due lane or lease is usually noticed far sooner (its due time is known).
MAX_SWEEP_INTERVAL_S = 1.0


class Dispatcher(BackgroundLoop):
    """Pops lane wake-ups, enqueues drain jobs, sweeps; :meth:`run` loops until :meth:`stop`."""

    thread_name = "hublink-dispatcher"

    def __init__(
        self,
        lanes: LaneStore,
        queue: Queue,
        *,
        job_timeout_s: int,
        failure_ttl_s: int,
        alerter: Alerter | None = None,
        heartbeats: WorkerHeartbeats | None = None,
        worker_name: str = "",
        presence: WorkerPresence | None = None,
    ) -> None:
        self._lanes = lanes
        self._presence = presence
        self._alerter = alerter
        self._heartbeats = heartbeats
        self._worker_name = worker_name
        self._queue = queue
        self._job_timeout_s = job_timeout_s
        self._failure_ttl_s = failure_ttl_s
        self._wait_s = MAX_SWEEP_INTERVAL_S
        super().__init__()

    def enqueue_drains(self, lanes: list[str]) -> None:
        """One RQ drain job per lane, written in one pipeline."""
        if not lanes:
            return
        prepared = [
            Queue.prepare_data(
                jobs.drain_lane,
                kwargs={"lane": lane, "v": DRAIN_JOB_VERSION},
                timeout=self._job_timeout_s,
                result_ttl=60,
                failure_ttl=self._failure_ttl_s,
                description=f"drain {lane}",
            )
            for lane in lanes
        ]
        self._queue.enqueue_many(prepared)

    def step(self, wait_s: float) -> float:
        """One turn: sweep, then wait up to ``wait_s`` for wake-ups; return how long the next wait may be."""
        if self._heartbeats is not None and self._heartbeats.beat(self._worker_name) and self._presence is not None:
            self._presence.keep()
        report = self._lanes.sweep()
        lanes = self._lanes.pop_wake(min(wait_s, MAX_SWEEP_INTERVAL_S))
        self.enqueue_drains(lanes)
        if self._alerter is not None:
            self._alerter.check()
        if report.reclaimed:
            log.warning("leases expired; associations handed back", extra={"reclaimed": report.reclaimed})
        if report.next_due_ms is None:
            return MAX_SWEEP_INTERVAL_S
        return min(max(report.next_due_ms / 1000, 0.01), MAX_SWEEP_INTERVAL_S)

    def turn(self) -> None:
        """One step, waiting as long as the last one said the next may wait."""
        self._wait_s = self.step(self._wait_s or MAX_SWEEP_INTERVAL_S)
