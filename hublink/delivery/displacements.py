"""Displacements: what HubLink's write of a single-valued association type moved away from another record.

HubSpot keeps one Primary company per contact, deal or ticket and one parent per company
(docs/reference/hubspot.md §9.4): writing it with another record moves it there without a word (the old
record stays associated, unlabelled). Only a read before the write can say from where, and a read spends a
rate-limit token. So HubLink reads only before a labelled create that names such a type: one ``batch/read``
of the run's from records, skipped (nothing recorded, the write goes on) when no token is near or the read
fails. What the write moved is kept in the event history as an entry of kind ``displaced``, indexed under
the record and both companies, so each one's trace shows it. Pure but for :class:`DisplacementHistory`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from hublink.domain.associations import AssociationRequest, AssociationType
from hublink.intake.history import EventHistory, EventOutcome, record_name

Pair = tuple[str, str]
#: The read's answer: each from id's associated records with their types (``reconcile.Existing``).
Existing = Mapping[str, Sequence[tuple[str, tuple[AssociationType, ...]]]]

#: Single-valued HubSpot-defined types, (from, to, type id): a record holds each with one record at most.
SINGLE_VALUED: dict[tuple[str, str, int], str] = {
    ("contacts", "companies", 1): "Primary",
    ("deals", "companies", 5): "Primary",
    ("tickets", "companies", 26): "Primary",
    ("companies", "companies", 14): "Parent Company",
}
#: The event history's kind, and the outcome of its one event, for a displacement.
DISPLACED = "displaced"


@dataclass(frozen=True, slots=True, kw_only=True)
class Displacement:
    """HubLink's write of ``type_id`` for (from, ``new_to_id``) moved it from (from, ``old_to_id``)."""

    portal_id: str | None
    association_id: str
    from_type: str
    from_id: str
    to_type: str
    old_to_id: str
    new_to_id: str
    type_id: int

    @property
    def text(self) -> str:
        """One sentence for people: what moved, from where, to where."""
        name = SINGLE_VALUED.get((self.from_type, self.to_type, self.type_id), f"type {self.type_id}")
        return (
            f"{name} of {record_name(self.from_type, self.from_id)} moved from "
            f"{record_name(self.to_type, self.old_to_id)} to {record_name(self.to_type, self.new_to_id)} "
            "by HubLink's write"
        )


def watched(
    from_type: str, to_type: str, types: Mapping[Pair, Sequence[AssociationType]]
) -> dict[Pair, tuple[int, ...]]:
    """The pairs whose write names a single-valued type, with those type ids (the only ones worth a read)."""
    found: dict[Pair, tuple[int, ...]] = {}
    for pair, specs in types.items():
        ids = tuple(
            type_id
            for category, type_id in specs
            if category == "HUBSPOT_DEFINED" and (from_type, to_type, type_id) in SINGLE_VALUED
        )
        if ids:
            found[pair] = ids
    return found


def moved(
    existing: Existing,
    watch: Mapping[Pair, tuple[int, ...]],
    linked: Iterable[tuple[Pair, str]],
    *,
    portal_id: str | None,
    from_type: str,
    to_type: str,
) -> list[Displacement]:
    """What the writes of ``linked`` (pair, association id) moved: a holder read before, other than the pair."""
    found: list[Displacement] = []
    seen: set[tuple[Pair, int]] = set()
    for pair, association_id in linked:
        for type_id in watch.get(pair, ()):
            if (pair, type_id) in seen:
                continue
            seen.add((pair, type_id))
            for to_id, specs in existing.get(pair[0], ()):
                if to_id != pair[1] and ("HUBSPOT_DEFINED", type_id) in specs:
                    found.append(
                        Displacement(
                            portal_id=portal_id,
                            association_id=association_id,
                            from_type=from_type,
                            from_id=pair[0],
                            to_type=to_type,
                            old_to_id=to_id,
                            new_to_id=pair[1],
                            type_id=type_id,
                        )
                    )
    return found


class DisplacementLog:
    """Where the drain keeps displacements: an interface with a memory twin (``MemoryDisplacements``)."""

    def record(self, displacements: Sequence[Displacement]) -> None:
        """Keep ``displacements``."""
        raise NotImplementedError


class MemoryDisplacements(DisplacementLog):
    """The unit tests' twin: a list."""

    def __init__(self) -> None:
        self.kept: list[Displacement] = []

    def record(self, displacements: Sequence[Displacement]) -> None:
        """Append."""
        self.kept.extend(displacements)


class DisplacementHistory(DisplacementLog):
    """Keeps each displacement in the event history, indexed under the record and both of the other side."""

    def __init__(self, history: EventHistory, *, clock: Callable[[], float] = time.time) -> None:
        self._history = history
        self._clock = clock

    def record(self, displacements: Sequence[Displacement]) -> None:
        """One history entry per displacement (kind and outcome ``displaced``), naming the three records."""
        now = self._clock()
        for d in displacements:
            pairs = [(d.new_to_id, d.association_id), (d.old_to_id, f"{d.association_id}:moved-from")]
            produced = tuple(
                (
                    association_id,
                    AssociationRequest.create(
                        from_object_type=d.from_type,
                        from_object_id=d.from_id,
                        to_object_type=d.to_type,
                        to_object_id=to_id,
                        source="hublink",
                        portal_id=d.portal_id,
                        received_at=now,
                    ),
                )
                for to_id, association_id in pairs
            )
            outcome = EventOutcome(0, DISPLACED, produced=produced, problems=(d.text,))
            entry = f"{DISPLACED}-{d.association_id}-{d.type_id}-{d.old_to_id}"
            self._history.record(entry, now, DISPLACED, [outcome])
