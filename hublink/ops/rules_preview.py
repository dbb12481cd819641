"""Previewing a rules draft: the draft and the published rules run side by side over the last events of the history.

Each event kept in the event history (``hublink.intake.history``) is run through both rule sets, exactly
as a worker's expansion would plan it (``hublink.intake.expansion.plan_named``), and the two answers are
compared: which rules match, which associations would be made. Nothing is stored and HubSpot is never
called: an association whose side is found by a lookup is shown as ``needsLookup`` with what would be
looked up, not resolved.

Which events count: the newest first, from the history's requests, those that carry a payload to run rules
on. Requests of the direct API (no event), unusable events, replays (a copy of an event already counted)
and duplicates (dropped by the dedup mark before any rule ran) are passed over and not counted.

The summary, against the published version: ``events`` previewed; ``wouldLink`` the events for which the
draft plans at least one association (lookups included); ``newlyUnmatched`` the events a published rule
matches and no draft rule does; ``changed`` the events whose planned associations differ between the two.
Fails closed: raises StoreUnavailableError without Redis.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from hublink.domain.associations import AssociationRequest
from hublink.domain.events import CrmEvent
from hublink.domain.lookups import LookupRequest, Work, describe
from hublink.domain.rules import Fixed, RuleSet
from hublink.domain.times import iso
from hublink.intake.expansion import plan_named
from hublink.intake.history import EventFilter, EventHistory, event_of, record_name

#: Events previewed when no limit is given, and the most one preview runs.
DEFAULT_LIMIT = 200
MAX_LIMIT = 1000
#: History outcomes whose events are not previewed: a duplicate never reached the rules.
SKIPPED_OUTCOMES = frozenset({"duplicate"})


@dataclass(frozen=True, slots=True)
class Planned:
    """What one rule set makes of one event: the rules that match, the associations, the problems."""

    rules: tuple[str, ...]
    associations: tuple[dict[str, Any], ...]
    problems: tuple[str, ...]

    @property
    def keys(self) -> frozenset[tuple[Any, ...]]:
        """The associations as comparable values (the rule that asked is not part of what is made)."""
        return frozenset(
            (a["from"], a["to"], a["action"], a.get("label"), a.get("types"), a["mode"], a["needsLookup"])
            for a in self.associations
        )

    def to_wire(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"rules": list(self.rules), "associations": list(self.associations), "problems": list(self.problems)}


@dataclass(frozen=True, slots=True)
class Published:
    """The published rules a draft is compared with: their version (None for a rules file) and text."""

    version: int | None
    text: str | None


def association_of(work: Work, rule: str | None) -> dict[str, Any]:
    """One planned item as the preview shows it; a lookup names what would be looked up (HubSpot is not asked)."""
    if isinstance(work, LookupRequest):
        shown: dict[str, Any] = {
            "rule": work.rule,
            "from": describe(work.from_side),
            "to": describe(work.to_side),
            "needsLookup": True,
        }
    else:
        shown = {
            "rule": rule,
            "from": record_name(work.from_object_type, work.from_object_id),
            "to": record_name(work.to_object_type, work.to_object_id),
            "needsLookup": False,
        }
    shown["action"] = work.action
    shown["mode"] = work.mode
    if work.label is not None:
        shown["label"] = work.label
    if work.types:
        shown["types"] = ", ".join(f"{category}/{type_id}" for category, type_id in work.types)
    return shown


def planned_by(rules: RuleSet, event: CrmEvent, now: float, own_app_id: str | None) -> Planned:
    """Run ``rules`` on ``event`` as a worker's expansion would, and say which rule asked for each association."""
    work, problems, matched = plan_named(event, rules, now, own_app_id=own_app_id)
    # plan_named's associations do not carry their rule: evaluation's plan does, in the same order.
    asked: dict[tuple[str, str, str, str, str], str] = {}
    for planned in rules.evaluate(event, own_app_id=own_app_id).planned:
        if isinstance(planned.from_side, Fixed) and isinstance(planned.to_side, Fixed):
            key = (*_named(planned.from_side), *_named(planned.to_side), planned.action)
            asked.setdefault(key, planned.rule)
    shown = []
    for item in work:
        rule = None
        if isinstance(item, AssociationRequest):
            key = (item.from_object_type, item.from_object_id, item.to_object_type, item.to_object_id, item.action)
            rule = asked.get(key)
        shown.append(association_of(item, rule))
    return Planned(tuple(matched), tuple(shown), tuple(problems))


def _named(side: Fixed) -> tuple[str, str]:
    """A fixed side's (type, id), the way an AssociationRequest holds them."""
    return side.object_type, side.object_id


def previewed_events(
    history: EventHistory, flt: EventFilter, limit: int
) -> Iterator[tuple[dict[str, Any], dict[str, Any], CrmEvent]]:
    """(request, stored event, event) of the newest ``limit`` events the rules can run on (see the docstring)."""
    taken = 0
    for entry, stored in history.matching(flt):
        if taken >= limit:
            return
        if stored.get("rp") or stored.get("o") in SKIPPED_OUTCOMES:
            continue
        event = event_of(stored)
        if event is None:
            continue
        taken += 1
        yield entry, stored, event


def preview(
    draft_text: str,
    published_text: str | None,
    history: EventHistory,
    *,
    limit: int = DEFAULT_LIMIT,
    source: str | None = None,
    subscription_type: str | None = None,
    own_app_id: str | None = None,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """The draft and the published rules over the last ``limit`` events; stores nothing, calls no one.

    ``published_text`` None means nothing is published (every event is unmatched on that side).
    ``source`` (``hubspot``, ``workflow``, ``forms:<name>``) and ``subscription_type`` narrow the events.
    ``own_app_id`` (HUBSPOT_APP_ID) drops HubLink's own association changes as the workers do.
    Raises ValueError for a limit outside 1..1000, RulesError when a text does not check (check it first),
    StoreUnavailableError without Redis.
    """
    if isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit: expected 1 to {MAX_LIMIT}, got {limit}")
    draft = RuleSet.load(draft_text, "<draft>")
    published = RuleSet.load(published_text, "<published>") if published_text else RuleSet.empty()
    now = float(clock())
    flt = EventFilter(source=source or None, subscription_type=subscription_type or None)
    items: list[dict[str, Any]] = []
    would_link = newly_unmatched = changed = 0
    for entry, stored, event in previewed_events(history, flt, limit):
        then = planned_by(published, event, now, own_app_id)
        now_ = planned_by(draft, event, now, own_app_id)
        is_changed = then.keys != now_.keys
        is_newly_unmatched = bool(then.rules) and not now_.rules
        would_link += bool(now_.associations)
        newly_unmatched += is_newly_unmatched
        changed += is_changed
        items.append(
            {
                "id": f"{entry['id']}.{stored['i']}",
                "receivedAt": iso(entry["at"]),
                "source": event.source,
                "subscriptionType": event.subscription_type,
                "portalId": event.portal_id,
                "objectId": event.object_id,
                "outcome": stored.get("o"),
                "draft": now_.to_wire(),
                "published": then.to_wire(),
                "changed": is_changed,
                "newlyUnmatched": is_newly_unmatched,
            }
        )
    summary = {"wouldLink": would_link, "newlyUnmatched": newly_unmatched, "changed": changed, "events": len(items)}
    return {"summary": summary, "events": items}
