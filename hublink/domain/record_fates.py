"""Record fates: what HubSpot's lifecycle events say became of a record (merged into a new one, deleted, restored).

HubSpot reports them as events like any other (``docs/reference/hubspot.md`` §9.2, §9.3): ``<object>.merge``
names the merged ids (``mergedObjectIds``, ``primaryObjectId``) and the new record (``newObjectId``);
``<object>.deletion`` the archived record (``objectId``), one also for each id a merge took away;
``<object>.restore`` a record brought back. Pure: the intake keeps the fates (``hublink.intake.record_fates``)
and the drain applies them to the work it claims.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hublink.domain.associations import canonical_object_type
from hublink.domain.events import CrmEvent

Fate = Literal["deleted", "merged", "restored"]

#: The event history's outcome of a deletion event and of a merge event that no rule matched.
RECORD_DELETED = "record_deleted"
RECORD_MERGED = "record_merged"
#: The dead-letter reason and category of work that names a deleted record.
RECORD_DELETED_CATEGORY = "RECORD_DELETED"


@dataclass(frozen=True, slots=True)
class RecordFate:
    """What became of one record of one portal (``new_id``: the record a merged one became)."""

    portal: str | None
    object_type: str
    object_id: str
    fate: Fate
    new_id: str | None = None


def _id(value: Any) -> str | None:
    """A record id from an event field (an integer or digit string), else None."""
    if isinstance(value, bool):
        return None
    text = str(value) if isinstance(value, int | str) else ""
    return text if text.isdigit() and 0 < len(text) <= 20 else None


def _object_type(event: CrmEvent) -> str | None:
    """The object type of a lifecycle event: its ``objectTypeId``, else its subscription's prefix."""
    for value in (event.object_type_id, (event.subscription_type or "").split(".", 1)[0]):
        try:
            return canonical_object_type(value)
        except ValueError:
            continue
    return None


def fates_of(event: CrmEvent) -> list[RecordFate]:
    """The record fates one event reports (none for events that are not merges, deletions or restores)."""
    subscription = event.subscription_type or ""
    if event.source != "hubspot" or "." not in subscription:
        return []
    kind = subscription.rsplit(".", 1)[1]
    if kind not in ("merge", "deletion", "restore"):
        return []
    object_type = _object_type(event)
    if object_type is None:
        return []
    payload = event.payload
    if kind == "merge":
        new_id = _id(payload.get("newObjectId")) or _id(payload.get("objectId"))
        if new_id is None:
            return []
        merged = payload.get("mergedObjectIds")
        named = [*(merged if isinstance(merged, list) else ()), payload.get("primaryObjectId")]
        ids = [i for i in dict.fromkeys(_id(v) for v in named) if i is not None and i != new_id]
        return [RecordFate(event.portal_id, object_type, i, "merged", new_id) for i in ids]
    object_id = _id(payload.get("objectId")) or event.object_id
    if object_id is None:
        return []
    return [RecordFate(event.portal_id, object_type, object_id, "deleted" if kind == "deletion" else "restored")]


def batch_fates(events: Sequence[CrmEvent]) -> tuple[list[RecordFate], dict[int, str]]:
    """The fates a batch of events reports, merges first, and the history outcome of each lifecycle event.

    A merge's deletions (HubSpot reports one for each id a merge took away) are merges, not deletions: work
    naming those ids goes to the new record. Their events end as ``record_merged``.
    """
    merged: list[RecordFate] = []
    others: list[tuple[int, RecordFate]] = []
    outcomes: dict[int, str] = {}
    for index, event in enumerate(events):
        for fate in fates_of(event):
            if fate.fate == "merged":
                merged.append(fate)
                outcomes[index] = RECORD_MERGED
            else:
                others.append((index, fate))
    taken = {(f.portal, f.object_type, f.object_id) for f in merged}
    kept: list[RecordFate] = list(merged)
    for index, fate in others:
        if (fate.portal, fate.object_type, fate.object_id) in taken:
            outcomes[index] = RECORD_MERGED
            continue
        kept.append(fate)
        if fate.fate == "deleted":
            outcomes[index] = RECORD_DELETED
    return kept, outcomes


#: The lifecycle event by which HubSpot asks integrations to erase a contact's data (§9.3).
PRIVACY_DELETION = "privacyDeletion"


def privacy_deletions(events: Sequence[CrmEvent]) -> dict[int, tuple[str | None, str]]:
    """The ``contact.privacyDeletion`` events of a batch: (portal, contact id) by the event's index.

    They are not fates: a fate is kept under the record's id, and this event asks that nothing keep it
    (``hublink.ops.privacy`` erases the contact's data instead).
    """
    found: dict[int, tuple[str | None, str]] = {}
    for index, event in enumerate(events):
        subscription = event.subscription_type or ""
        if event.source != "hubspot" or not subscription.endswith(f".{PRIVACY_DELETION}"):
            continue
        if _object_type(event) != "contacts":
            continue
        object_id = _id(event.payload.get("objectId")) or event.object_id
        if object_id is not None:
            found[index] = (event.portal_id, object_id)
    return found
