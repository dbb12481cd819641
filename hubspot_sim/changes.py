"""Changes to the CRM and the webhook events HubSpot makes of them (docs/reference/hubspot.md §4.2, §9.2-§9.5).

A ``Change`` is one thing that happened to one record (created, deleted, privacy-deleted, merged, or an
association added or removed on its side). ``push_event`` renders it as the event a push subscription
receives; ``journal_event`` as the event the journal holds (the same fields, plus the journal's ``action``
and ``objectTypeId``). ``covers`` decides which push subscriptions a change belongs to: the legacy
``<object>.<kind>`` types for contacts, companies, deals, tickets, line items and products, and the generic
``object.<kind>`` with its ``objectTypeId``. Pure: no state, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hubspot_sim.object_types import NAME_TO_TYPE_ID, SINGULAR_TO_NAME, label

#: Canonical type -> the name legacy subscription types use (``deals`` -> ``deal``).
LEGACY_NAMES = {
    name: singular
    for singular, name in SINGULAR_TO_NAME.items()
    if name in ("contacts", "companies", "deals", "tickets", "line_items", "products")
}
#: Kinds of change and the journal's action for each.
ACTIONS = {
    "creation": "CREATE",
    "deletion": "DELETE",
    "merge": "MERGE",
    "privacyDeletion": "GDPR_DELETE",
}


@dataclass(frozen=True, slots=True)
class Change:
    """One change to one record; ``fields`` are the kind's own event fields (merge ids, association sides)."""

    kind: str  # creation | deletion | privacyDeletion | merge | associationChange
    object_type: str  # canonical
    object_id: str
    portal_id: int
    occurred_at: float
    change_source: str = "CRM"
    source_id: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    to_type: str | None = None  # association changes: the type of the other side

    @property
    def type_id(self) -> str:
        """The object type id (``0-3``; custom types as they are)."""
        return NAME_TO_TYPE_ID.get(self.object_type, self.object_type)

    @property
    def action(self) -> str:
        """The journal's name for the kind (``CREATE``, ``ASSOCIATION_REMOVED``...)."""
        if self.kind == "associationChange":
            return "ASSOCIATION_REMOVED" if self.fields.get("associationRemoved") else "ASSOCIATION_ADDED"
        return ACTIONS[self.kind]

    def covers(self, event_type: str, object_type_id: str | None) -> bool:
        """True when a push subscription of ``event_type`` (``object.*`` with ``object_type_id``) gets this change."""
        subject, _, kind = event_type.partition(".")
        if kind != self.kind:
            return False
        if subject == "object":
            return self.kind != "privacyDeletion" and object_type_id == self.type_id
        return LEGACY_NAMES.get(self.object_type) == subject

    def _common(self) -> dict[str, Any]:
        event: dict[str, Any] = {
            "portalId": self.portal_id,
            "occurredAt": int(self.occurred_at * 1000),
            "changeSource": self.change_source,
        }
        if self.source_id is not None:
            event["sourceId"] = self.source_id
        if self.kind != "associationChange":
            # HubSpot's association-change events name the pair instead (docs/reference/hubspot.md §8).
            event["objectId"] = int(self.object_id)
        if self.kind == "creation":
            event["changeFlag"] = "CREATED"
        return {**event, **self.fields}

    def push_event(self, event_id: int, app_id: str, subscription_id: str, event_type: str) -> dict[str, Any]:
        """The event as a push subscription's delivery carries it (``attemptNumber`` is the sender's)."""
        event: dict[str, Any] = {
            "eventId": event_id,
            "subscriptionId": int(subscription_id),
            "appId": int(app_id),
            "subscriptionType": event_type,
            **self._common(),
        }
        if event_type.startswith("object."):
            event["objectTypeId"] = self.type_id
        return event

    def journal_event(self, event_id: int, subscription_id: int | None = None) -> dict[str, Any]:
        """The event as the journal holds it: the push fields under the legacy type, plus ``action``."""
        legacy = LEGACY_NAMES.get(self.object_type, "object")
        event: dict[str, Any] = {
            "eventId": event_id,
            "subscriptionType": f"{legacy}.{self.kind}",
            "action": self.action,
            "objectTypeId": self.type_id,
            **self._common(),
        }
        if subscription_id is not None:
            event["subscriptionId"] = subscription_id
        return event


def association_fields(
    direction: tuple[str, str, str, str], spec: tuple[str, int], *, removed: bool, primary: bool
) -> dict[str, Any]:
    """The fields of an association-change event for one direction and type."""
    from_type, from_id, to_type, to_id = direction
    return {
        "associationType": f"{label(from_type)}_TO_{label(to_type)}",
        "fromObjectId": int(from_id),
        "toObjectId": int(to_id),
        "fromObjectTypeId": NAME_TO_TYPE_ID.get(from_type, from_type),
        "toObjectTypeId": NAME_TO_TYPE_ID.get(to_type, to_type),
        "associationCategory": spec[0],
        "associationTypeId": spec[1],
        "associationRemoved": removed,
        "isPrimaryAssociation": primary,
    }
