"""Intake: turn verified events into work with the rules, and store it all in one round-trip.

The workers' expanders run it on each inbox entry (``hublink.intake.inbox``); the web process only stores the
entries. Rules are evaluated here (cheap, in memory); lookups are not run here but planned, to run in a
drain. An event no rule matches is acknowledged and counted; a rule that
matches but cannot be applied to an odd payload is counted and logged as a problem: neither is retried by
the sender, because sending the same event again would not change the answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hublink import tracing
from hublink.domain.associations import MAX_EVENT_ID_CHARS, AssociationRequest, is_portal_id, types_wire
from hublink.domain.errors import InvalidInputError
from hublink.domain.events import CrmEvent
from hublink.domain.lookups import LookupRequest, Work
from hublink.domain.record_fates import RECORD_DELETED, batch_fates, privacy_deletions
from hublink.domain.rules import Fixed, PlannedAssociation, RuleSet, is_self_triggered
from hublink.intake.history import EventHistory, EventOutcome
from hublink.intake.inbox import KIND_ASSOCIATIONS, MAX_DELIVERIES, Inbox, InboxEntry
from hublink.intake.record_fates import ContactEraser, FateBook, without_erased
from hublink.lanes import EventGroup, LaneStore, PendingItem
from hublink.store.counters import Counters, Op

log = logging.getLogger("hublink.intake.expansion")


@dataclass(frozen=True, slots=True)
class IntakeReport:
    """What happened to one request's events (the webhook's 200 body)."""

    received: int
    duplicates: int
    unmatched: int
    associations: int
    lookups: int
    problems: tuple[str, ...]
    #: The inbox entry was already expanded by another worker (it was taken over): nothing was stored.
    already_expanded: bool = False
    #: Events the entry held that cannot be used: kept in inbox:failed with their reason.
    unusable: int = 0
    #: What became of each event (for the event history).
    outcomes: tuple[EventOutcome, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """JSON-safe form."""
        return {
            "received": self.received,
            "unusable": self.unusable,
            "duplicates": self.duplicates,
            "unmatched": self.unmatched,
            "associations": self.associations,
            "lookups": self.lookups,
            "problems": list(self.problems),
        }


def source_slug(source: str) -> str:
    """Sources are stored as slugs: ``forms:demo-request`` becomes ``forms.demo-request``."""
    return source.replace(":", ".")


def plan(event: CrmEvent, rules: RuleSet, received_at: float) -> tuple[list[Work], list[str], bool]:
    """The work one event asks for, the problems met, and whether any rule matched."""
    work, problems, matched = plan_named(event, rules, received_at)
    return work, problems, bool(matched)


def plan_named(
    event: CrmEvent, rules: RuleSet, received_at: float, *, own_app_id: str | None = None
) -> tuple[list[Work], list[str], tuple[str, ...]]:
    """Like :func:`plan`, with the names of the rules that matched (``own_app_id``: see ``RuleSet.evaluate``)."""
    evaluation = rules.evaluate(event, own_app_id=own_app_id)
    problems = list(evaluation.problems)
    source = source_slug(event.source)
    work: list[Work] = []
    # Rules hand out canonical types and checked ids, and the event parsers check portals and event ids:
    # for those the constructor's checks would only repeat themselves, at 100 events a request.
    trusted = (event.portal_id is None or is_portal_id(event.portal_id)) and (
        event.event_id is None or 0 < len(event.event_id) <= MAX_EVENT_ID_CHARS
    )
    for planned in evaluation.planned:
        from_side, to_side = planned.from_side, planned.to_side
        if isinstance(from_side, Fixed) and isinstance(to_side, Fixed):
            build = AssociationRequest if trusted else AssociationRequest.create
            try:
                work.append(
                    build(
                        from_object_type=from_side.object_type,
                        from_object_id=from_side.object_id,
                        to_object_type=to_side.object_type,
                        to_object_id=to_side.object_id,
                        portal_id=event.portal_id,
                        source=source,
                        source_event_id=event.event_id,
                        received_at=received_at,
                        occurred_at=event.occurred_at,
                        **_options(planned, wire=not trusted),
                    )
                )
            except InvalidInputError as exc:
                problems.extend(f"rule '{planned.rule}': {p.message}" for p in exc.problems)
        else:
            work.append(
                LookupRequest.plan(
                    planned,
                    portal_id=event.portal_id,
                    source=source,
                    source_event_id=event.event_id,
                    received_at=received_at,
                    occurred_at=event.occurred_at,
                )
            )
    return work, problems, evaluation.matched_rules


def _options(planned: PlannedAssociation, *, wire: bool) -> dict[str, Any]:
    """A planned association's action, label and types as keyword arguments (none for a default link).

    ``wire``: types as ``AssociationRequest.create`` reads them (HubSpot's spec objects), not as tuples.
    """
    options: dict[str, Any] = {}
    if planned.action != "link":
        options["action"] = planned.action
    if planned.label is not None:
        options["label"] = planned.label
    if planned.types:
        options["types"] = types_wire(planned.types) if wire else planned.types
    if planned.mode != "add":
        options["mode"] = planned.mode
    return options


def accept(
    events: Sequence[CrmEvent],
    rules: RuleSet,
    queueing: LaneStore,
    metrics: Counters,
    received_at: float,
    *,
    ack: Sequence[str] | None = None,
    aside: Sequence[str | int] | None = None,
    counters: Sequence[Op] = (),
    unusable: int = 0,
    own_app_id: str | None = None,
    lifecycle: Mapping[int, str] | None = None,
    origin: str = "",
) -> IntakeReport:
    """Plan every event and store all of it, with its dedup marks and counts, in one round-trip.

    With ``own_app_id`` (HUBSPOT_APP_ID), an association change HubLink's own write caused that no rule
    opted in to (``when: {changeSource: ...}``) ends as ``self``: counted and kept in the history, no work.
    ``lifecycle``: the outcome (``record_deleted``, ``record_merged``) of each lifecycle event by its index,
    for the events no rule matched (``hublink.domain.record_fates.batch_fates``).

    ``ack`` (``Inbox.ack_target``) is the inbox entry the events came from: it is acknowledged in the same
    step, even when the events ask for nothing; ``aside`` (``Inbox.aside_target``) keeps the entry's unusable
    events in that step too, and ``counters`` ride along. ``origin`` (``hublink.tracing.origin``, tracing on
    only) is carried by every association stored. Raises StoreUnavailableError when Redis does not answer.
    """
    groups: list[EventGroup] = []
    problems: list[str] = []
    ops: list[Op] = list(counters)
    unmatched = 0
    # An event's counts ride on its group, so that a duplicate (stored nothing) counts as a duplicate only.
    # Label sets and amounts repeat across a batch: build each list of increments once.
    cache: dict[tuple[str, str, int, int], list[Op]] = {}

    def counts(source: str, outcome: str, n_assoc: int, n_lookup: int) -> list[Op]:
        key = (source, outcome, n_assoc, n_lookup)
        if key not in cache:
            built = [metrics.op("events_received", source=source, outcome=outcome)]
            if n_assoc:
                built.append(metrics.op("associations_enqueued", n_assoc, source=source, kind="association"))
            if n_lookup:
                built.append(metrics.op("associations_enqueued", n_lookup, source=source, kind="lookup"))
            if n_assoc or n_lookup:
                built.append(metrics.series_op("enqueued", n_assoc + n_lookup, at_s=received_at))
            cache[key] = built
        return cache[key]

    planned: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    own: list[bool] = []
    lifecycle = lifecycle or {}
    for index, event in enumerate(events):
        work, event_problems, matched = plan_named(event, rules, received_at, own_app_id=own_app_id)
        planned.append((matched, tuple(event_problems)))
        is_own = not matched and is_self_triggered(event, own_app_id)
        own.append(is_own)
        if event_problems:
            problems.extend(event_problems)
            ops.extend(
                metrics.op("rule_problems", rule=p.split("'")[1] if p.count("'") >= 2 else "?") for p in event_problems
            )
        unmatched += not matched and not is_own and index not in lifecycle
        n_lookup = 0
        for w in work:
            n_lookup += w.__class__ is LookupRequest
        groups.append(
            EventGroup(
                work,
                dedup_key=event.dedup_key,
                on_new=counts(
                    event.source,
                    "accepted" if matched else "self" if is_own else lifecycle.get(index, "unmatched"),
                    len(work) - n_lookup,
                    n_lookup,
                ),
                on_dup=counts(event.source, "duplicate", 0, 0),
                origin=origin,
            )
        )
    result = queueing.enqueue(groups, ops, ack=ack, aside=aside) if groups or ack is not None else None
    if result is not None and result.already_expanded:
        return IntakeReport(len(events) + unusable, 0, 0, 0, 0, (), already_expanded=True, unusable=unusable)
    stored = [g for g, ids in zip(groups, result.ids, strict=True) if ids is not None] if result else []
    associations = sum(1 for g in stored for w in g.requests if isinstance(w, AssociationRequest))
    lookups = sum(1 for g in stored for w in g.requests if isinstance(w, LookupRequest))
    if problems:
        log.warning("rules could not be applied to some events", extra={"problems": problems[:20]})
    outcomes = []
    for index, (event, group, (matched, noted)) in enumerate(zip(events, groups, planned, strict=True)):
        ids = result.ids[index] if result else ()
        if ids is None:
            outcome = "duplicate"
        elif own[index]:
            outcome = "self"
        elif not matched:
            outcome = lifecycle.get(index, "unmatched")
        elif noted and not group.requests:
            outcome = "problem"
        else:
            outcome = "accepted"
        produced = tuple(zip(ids, group.requests, strict=True)) if ids else ()
        outcomes.append(EventOutcome(index, outcome, event, matched, produced, noted))
    return IntakeReport(
        len(events) + unusable,
        result.duplicates if result else 0,
        unmatched,
        associations,
        lookups,
        tuple(problems),
        unusable=unusable,
        outcomes=tuple(outcomes),
    )


class NoRulesError(Exception):
    """An entry this worker must not expand (it has no rules); another worker may, after the claim time."""


class UnknownRulesError(Exception):
    """The rules version an entry was accepted under cannot be loaded: the entry is set aside, not guessed at."""


class TaggedRules(Protocol):
    """The rules each entry's tag names (``hublink.intake.live_rules.RulesByTag``: HUBLINK_RULES_SOURCE=redis)."""

    def rules_for(self, tag: str) -> RuleSet:
        """The rules of ``tag``; raises UnknownRulesError, or StoreUnavailableError without Redis."""
        ...


class Expansion:
    """Expands one inbox entry at a time: rules → work, stored with the entry's acknowledgement."""

    def __init__(
        self,
        inbox: Inbox,
        rules: RuleSet,
        lanes: LaneStore,
        metrics: Counters,
        *,
        rules_tag: str = "",
        history: EventHistory | None = None,
        own_app_id: str | None = None,
        fates: FateBook | None = None,
        by_tag: TaggedRules | None = None,
        eraser: ContactEraser | None = None,
    ) -> None:
        self._history = history
        #: With rules versions: each entry is expanded under exactly the version its tag names.
        self._by_tag = by_tag
        #: Erases a contact's data on ``contact.privacyDeletion`` (None: such events are only counted).
        self._eraser = eraser
        #: Where the records' fates that lifecycle events report are kept (None: not kept).
        self._fates = fates
        #: HUBSPOT_APP_ID: association changes this app's own writes caused end as ``self``.
        self._own_app_id = own_app_id
        self._inbox = inbox
        self._rules = rules
        self._queueing = lanes
        self._metrics = metrics
        self._rules_tag = rules_tag
        self._tags_warned: set[str] = set()

    def expand(self, entry: InboxEntry) -> IntakeReport | None:
        """Expand one entry, or set it aside when it cannot be (None); raises StoreUnavailableError.

        An entry of events accepted under rules, read by a worker without any, is left in the inbox. With
        tracing on, the expansion is a span of the request that stored the entry, and every association it
        stores carries that request's span context (for the drain's links).
        """
        with tracing.expansion(entry.entry_id, entry.kind, entry.traceparent, entry.deliveries) as span:
            report = self._expand(entry, tracing.origin(entry.traceparent))
            if span is not None and report is not None:
                span.set_attributes(
                    {
                        "hublink.events": report.received,
                        "hublink.associations": report.associations + report.lookups,
                        "hublink.duplicates": report.duplicates,
                        "hublink.already_expanded": report.already_expanded,
                    }
                )
        return report

    def _expand(self, entry: InboxEntry, origin: str) -> IntakeReport | None:
        # Deliveries a Redis outage caused are excused: only crashes and failed expansions count.
        if entry.failed_deliveries > MAX_DELIVERIES:
            self._set_aside(entry, f"expansion failed {entry.failed_deliveries - 1} times; see the worker logs")
            return None
        rules = self._rules
        if entry.kind != KIND_ASSOCIATIONS and self._by_tag is not None:
            try:
                rules = self._by_tag.rules_for(entry.rules_tag)
            except UnknownRulesError as exc:
                self._set_aside(entry, str(exc))
                return None
        elif entry.kind != KIND_ASSOCIATIONS and not self._rules_match(entry):
            raise NoRulesError(entry.entry_id)
        try:
            if entry.kind == KIND_ASSOCIATIONS:
                return self._store_associations(entry, origin)
            batch = entry.events()
        except InvalidInputError as exc:
            self._set_aside(entry, f"cannot be read: {exc.message}")
            return None
        aside = None
        counters: list[Op] = []
        if batch.unusable:
            # The events HubLink cannot use are kept for operators (list and replay them from inbox:failed)
            # in the same step that stores the rest: HubSpot is never asked to resend, and nothing is lost.
            # json, not orjson: an unusable event may hold what orjson refuses (integers beyond 64 bits).
            body = json.dumps([u.raw for u in batch.unusable], separators=(",", ":")).encode()
            reason = "unusable events: " + "; ".join(f"#{u.index}: {u.reason}" for u in batch.unusable)
            aside = self._inbox.aside_target(entry, body, reason)
            counters = [self._metrics.op("events_received", len(batch.unusable), source="hubspot", outcome="unusable")]
            log.warning(
                "events set aside as unusable",
                extra={"entry": entry.entry_id, "events": len(batch.unusable), "reason": reason[:300]},
            )
        fates, lifecycle = batch_fates(batch.events) if self._fates is not None else ([], {})
        erasures = privacy_deletions(batch.events) if self._eraser is not None else {}
        erased = None
        if erasures:
            # Before the acknowledgement: a crash in between expands the entry again, which erases again.
            fates = without_erased(fates, erasures.values())
            lifecycle = {**lifecycle, **dict.fromkeys(erasures, RECORD_DELETED)}
            erased = self._erase(entry, erasures)
        if fates and self._fates is not None:
            # Kept before the entry is acknowledged: a crash in between expands it again, which keeps them again.
            self._fates.record(fates)
        report = accept(
            batch.events,
            rules,
            self._queueing,
            self._metrics,
            entry.received_at,
            ack=self._inbox.ack_target(entry.entry_id),
            aside=aside,
            counters=counters,
            unusable=len(batch.unusable),
            own_app_id=self._own_app_id,
            lifecycle=lifecycle,
            origin=origin,
        )
        if report.already_expanded:
            log.info("inbox entry was already expanded by another worker", extra={"entry": entry.entry_id})
        else:
            # The webhook answered with this entry id: here is what became of its events.
            log.info("inbox entry expanded", extra={"entry": entry.entry_id, **report.as_dict()})
            first = len(batch.events)
            unusable = [EventOutcome(first + n, "unusable", problems=(u.reason,)) for n, u in enumerate(batch.unusable)]
            self._remember(entry, [*report.outcomes, *unusable])
            if erased is not None and self._eraser is not None:
                # This batch's own events (the privacy deletion's among them) are in the history now: its record
                # alone is redacted, for what the erasure above sought.
                self._eraser.redact_entries([entry.entry_id], erased.subject)
        return report

    def _erase(self, entry: InboxEntry, erasures: Mapping[int, tuple[str | None, str]]) -> Any:
        """Erase the contacts a batch's ``contact.privacyDeletion`` events name (``hublink.ops.privacy``)."""
        assert self._eraser is not None
        ids = sorted({contact_id for _, contact_id in erasures.values()})
        log.info("privacy deletion: erasing the contact's data", extra={"entry": entry.entry_id, "contacts": len(ids)})
        return self._eraser.erase(contact_ids=ids, skip_inbox=[entry.entry_id])

    def _remember(self, entry: InboxEntry, outcomes: Sequence[EventOutcome]) -> None:
        """Keep the entry in the event history (after its work is stored: history never holds work back)."""
        if self._history is not None:
            self._history.record(entry.entry_id, entry.received_at, entry.kind, outcomes)

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

    def _store_associations(self, entry: InboxEntry, origin: str = "") -> IntakeReport:
        """Direct-API associations: no rules, no dedup; stored under the ids the caller was given."""
        first_seen_ms = int(entry.received_at * 1000) or None  # accepted then, not when expanded
        items = [
            PendingItem(request, association_id=association_id, first_seen_ms=first_seen_ms, origin=origin)
            for association_id, request in entry.associations()
        ]
        result = self._queueing.enqueue_items(
            [(None, items)],
            [
                self._metrics.op("associations_enqueued", len(items), source="api", kind="association"),
                self._metrics.series_op("enqueued", len(items), at_s=entry.received_at),
            ],
            ack=self._inbox.ack_target(entry.entry_id),
        )
        stored = 0 if result.already_expanded else len(items)
        if stored:
            produced = tuple((item.association_id, item.request) for item in items)
            self._remember(entry, [EventOutcome(0, "accepted", CrmEvent(source="api"), produced=produced)])
        return IntakeReport(len(items), 0, 0, stored, 0, (), already_expanded=result.already_expanded)

    def _set_aside(self, entry: InboxEntry, reason: str) -> None:
        if self._inbox.fail(entry, reason):
            self._metrics.apply([self._metrics.op("inbox_set_aside", kind=entry.kind or "unknown")])
