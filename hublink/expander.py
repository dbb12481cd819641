"""Expander: the worker thread that runs the rules on inbox entries and stores the work they ask for.

Every worker process runs one, next to its dispatcher. It reads new entries as a member of the inbox's
consumer group and, every few seconds, takes over entries whose reader died (``Inbox.reclaim``). Each
entry is expanded by ``intake.accept`` in one atomic step that stores its associations and lookups, marks
its events seen and acknowledges the entry: a crash at any point leaves the entry either expanded or
still in the inbox, never half of each. An entry whose expansion keeps failing (a bug, not bad input:
input was validated before it was accepted) is set aside after ``MAX_DELIVERIES`` attempts.
"""

from __future__ import annotations

import logging
import time

from hublink import intake
from hublink.background import BackgroundLoop
from hublink.domain.errors import InvalidInputError, StoreUnavailableError
from hublink.domain.rules import RuleSet
from hublink.inbox import KIND_ASSOCIATIONS, MAX_DELIVERIES, Inbox, InboxEntry
from hublink.intake import IntakeReport
from hublink.metrics import Metrics
from hublink.queueing import PendingItem, Queueing

log = logging.getLogger("hublink.expander")

#: Entries read per turn; each is expanded (one round-trip) before the next turn.
READ_COUNT = 10
#: How often a worker looks for entries whose reader died.
RECLAIM_INTERVAL_S = 5.0
#: The longest one read waits for new entries before the loop turns (and can notice a stop).
BLOCK_MS = 1000


class _NoRulesError(Exception):
    """An entry this worker must not expand (it has no rules); another worker may, after the claim time."""


class Expander(BackgroundLoop):
    """Reads inbox entries and expands them; :meth:`run` loops until :meth:`stop`."""

    thread_name = "hublink-expander"

    def __init__(
        self,
        inbox: Inbox,
        rules: RuleSet,
        queueing: Queueing,
        metrics: Metrics,
        *,
        consumer: str,
        rules_tag: str = "",
        reclaim_interval_s: float = RECLAIM_INTERVAL_S,
    ) -> None:
        self._inbox = inbox
        self._reclaim_interval_s = reclaim_interval_s
        self._rules = rules
        self._queueing = queueing
        self._metrics = metrics
        self._consumer = consumer
        self._rules_tag = rules_tag
        self._tags_warned: set[str] = set()
        #: Entries the last :meth:`step` read (expanded, set aside or failed): 0 means the inbox had nothing.
        self.last_read = 0
        super().__init__()
        self._next_reclaim = 0.0
        self._group_ready = False
        # First look at what this consumer already holds (a restart under the same name, a Redis outage).
        self._own_pending_first = True

    def expand(self, entry: InboxEntry) -> IntakeReport | None:
        """Expand one entry, or set it aside when it cannot be (None); raises StoreUnavailableError.

        An entry of events accepted under rules, read by a worker without any, is left in the inbox.
        """
        if entry.deliveries > MAX_DELIVERIES:
            self._set_aside(entry, f"expansion failed {entry.deliveries - 1} times; see the worker logs")
            return None
        if entry.kind != KIND_ASSOCIATIONS and not self._rules_match(entry):
            raise _NoRulesError(entry.entry_id)
        try:
            if entry.kind == KIND_ASSOCIATIONS:
                return self._store_associations(entry)
            events = entry.events()
        except InvalidInputError as exc:
            self._set_aside(entry, f"cannot be read: {exc.message}")
            return None
        report = intake.accept(
            events,
            self._rules,
            self._queueing,
            self._metrics,
            entry.received_at,
            ack=self._inbox.ack_target(entry.entry_id),
        )
        if report.already_expanded:
            log.info("inbox entry was already expanded by another worker", extra={"entry": entry.entry_id})
        else:
            # The webhook answered with this entry id: here is what became of its events.
            log.info("inbox entry expanded", extra={"entry": entry.entry_id, **report.as_dict()})
        return report

    def _rules_match(self, entry: InboxEntry) -> bool:
        """False (the entry stays pending) when the web had rules and this worker has none: never drop events."""
        if entry.rules_tag == self._rules_tag:
            return True
        if not self._rules_tag:
            # Acknowledging would store every event as unmatched and seen: the web's resends would be lost too.
            log.error(
                "this worker has no rules file (HUBLINK_RULES_FILE) but the web accepted the entry under rules; "
                "left in the inbox for a worker that has them",
                extra={"entry": entry.entry_id, "rules": entry.rules_tag},
            )
            return False
        if entry.rules_tag not in self._tags_warned:
            # A rolling change of the rules file: expand with this worker's rules, and say so once.
            self._tags_warned.add(entry.rules_tag)
            log.warning(
                "the web accepted this entry under other rules; expanding with this worker's",
                extra={"entry": entry.entry_id, "rules": entry.rules_tag, "worker_rules": self._rules_tag},
            )
        return True

    def _store_associations(self, entry: InboxEntry) -> IntakeReport:
        """Direct-API associations: no rules, no dedup; stored under the ids the caller was given."""
        first_seen_ms = int(entry.received_at * 1000) or None  # accepted then, not when expanded
        items = [
            PendingItem(request, association_id=association_id, first_seen_ms=first_seen_ms)
            for association_id, request in entry.associations()
        ]
        result = self._queueing.enqueue_items(
            [(None, items)],
            [self._metrics.op("associations_enqueued", len(items), source="api", kind="association")],
            ack=self._inbox.ack_target(entry.entry_id),
        )
        stored = 0 if result.already_expanded else len(items)
        return IntakeReport(len(items), 0, 0, stored, 0, (), already_expanded=result.already_expanded)

    def _set_aside(self, entry: InboxEntry, reason: str) -> None:
        if self._inbox.fail(entry, reason):
            self._metrics.apply([self._metrics.op("inbox_set_aside", kind=entry.kind or "unknown")])

    def step(self, block_ms: int = BLOCK_MS) -> list[IntakeReport]:
        """One turn: take over abandoned entries when it is time, else read new ones; expand them."""
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
        for entry in entries:
            try:
                report = self.expand(entry)
            except StoreUnavailableError:
                raise
            except _NoRulesError:
                failed = True
                continue
            except Exception:
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
