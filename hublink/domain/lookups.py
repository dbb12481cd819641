"""LookupRequest: an association whose ends must first be found in HubSpot (a rule's ``lookup``).

Lookups run in the worker, never in the request: the planned association waits in its portal's lookup
lane, a worker resolves each side (reading a record's property, or searching by property equality) within
the shared rate limits, and the resolved association goes into its ordinary lane.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hublink.domain.associations import (
    Action,
    AssociationRequest,
    AssociationType,
    Mode,
    action_extras,
    types_wire,
)
from hublink.domain.rules import Fixed, PlannedAssociation, PropertyLookup, SearchLookup, Side

#: The middle part of a lookup lane's name (``<portal>|lookup|<rule>``), never an object type name.
LOOKUP_LANE_KIND = "lookup"
RECORD_KIND = "lookup"


def side_to_dict(side: Side) -> dict[str, Any]:
    """The stored form of one side."""
    if isinstance(side, Fixed):
        return {"kind": "fixed", "objectType": side.object_type, "id": side.object_id}
    if isinstance(side, PropertyLookup):
        return {
            "kind": "property",
            "targetType": side.target_type,
            "objectType": side.object_type,
            "id": side.object_id,
            "property": side.property,
        }
    return {
        "kind": "search",
        "targetType": side.target_type,
        "property": side.property,
        "value": side.value,
        "onMultiple": side.on_multiple,
    }


def side_from_dict(data: Mapping[str, Any]) -> Side:
    """Inverse of :func:`side_to_dict`."""
    kind = data["kind"]
    if kind == "fixed":
        return Fixed(data["objectType"], data["id"])
    if kind == "property":
        return PropertyLookup(data["targetType"], data["objectType"], data["id"], data["property"])
    return SearchLookup(data["targetType"], data["property"], data["value"], data["onMultiple"])


def target_type(side: Side) -> str:
    """The object type the side resolves to."""
    return side.object_type if isinstance(side, Fixed) else side.target_type


def describe(side: Side) -> str:
    """A short human description, for dead letters and logs."""
    if isinstance(side, Fixed):
        return f"{side.object_type}/{side.object_id}"
    if isinstance(side, PropertyLookup):
        return f"{side.target_type} named by {side.object_type}/{side.object_id}.{side.property}"
    return f"{side.target_type} where {side.property} = {side.value!r}"


@dataclass(frozen=True, slots=True, kw_only=True)
class LookupRequest:
    """A planned association with at least one side still to be found."""

    rule: str
    from_side: Side
    to_side: Side
    portal_id: str | None = None
    source: str = "hubspot"
    source_event_id: str | None = None
    received_at: float = 0.0
    occurred_at: float | None = None
    action: Action = "link"
    label: str | None = None
    types: tuple[AssociationType, ...] = ()
    mode: Mode = "add"

    @classmethod
    def plan(
        cls,
        planned: PlannedAssociation,
        *,
        portal_id: str | None,
        source: str,
        source_event_id: str | None,
        received_at: float,
        occurred_at: float | None,
    ) -> LookupRequest:
        """Wrap a rule's planned association with its event's facts."""
        return cls(
            rule=planned.rule,
            from_side=planned.from_side,
            to_side=planned.to_side,
            portal_id=portal_id,
            source=source,
            source_event_id=source_event_id,
            received_at=received_at,
            occurred_at=occurred_at,
            action=planned.action,
            label=planned.label,
            types=planned.types,
            mode=planned.mode,
        )

    @property
    def lane(self) -> str:
        """The portal's lookup lane."""
        return f"{self.portal_id or '_'}|{LOOKUP_LANE_KIND}|{self.rule}"

    def resolved(self, from_id: str, to_id: str) -> AssociationRequest:
        """The ordinary association once both ids are known (validated like any other)."""
        return AssociationRequest.create(
            from_object_type=target_type(self.from_side),
            from_object_id=from_id,
            to_object_type=target_type(self.to_side),
            to_object_id=to_id,
            portal_id=self.portal_id,
            source=self.source,
            source_event_id=self.source_event_id,
            received_at=self.received_at,
            occurred_at=self.occurred_at,
            action=self.action,
            label=self.label,
            types=types_wire(self.types) if self.types else None,
            mode=self.mode,
        )

    def as_record(self) -> dict[str, Any]:
        """The stored form (a wire format: add fields, never rename)."""
        return {
            "kind": RECORD_KIND,
            "v": 1,
            "rule": self.rule,
            "from": side_to_dict(self.from_side),
            "to": side_to_dict(self.to_side),
            "portal_id": self.portal_id,
            "source": self.source,
            "source_event_id": self.source_event_id,
            "received_at": self.received_at,
            "occurred_at": self.occurred_at,
        } | self._extras()

    def _extras(self) -> dict[str, Any]:
        """The optional fields, only when not their default (a record without them plans a default link)."""
        return action_extras(self.action, self.label, self.types, self.mode)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> LookupRequest:
        """Inverse of :meth:`as_record`."""
        return cls(
            rule=record["rule"],
            from_side=side_from_dict(record["from"]),
            to_side=side_from_dict(record["to"]),
            portal_id=record.get("portal_id"),
            source=record.get("source", "hubspot"),
            source_event_id=record.get("source_event_id"),
            received_at=record.get("received_at", 0.0),
            occurred_at=record.get("occurred_at"),
            action="unlink" if record.get("action") == "unlink" else "link",
            label=record.get("label"),
            types=tuple((str(c), int(t)) for c, t in record.get("types") or ()),
            mode="replace" if record.get("mode") == "replace" else "add",
        )


Work = AssociationRequest | LookupRequest


def work_from_record(record: Mapping[str, Any]) -> Work:
    """Rebuild whatever kind of work a lane holds."""
    if record.get("kind") == RECORD_KIND:
        return LookupRequest.from_record(record)
    return AssociationRequest.from_record(record)


def is_lookup_lane(lane: str) -> bool:
    """True for a portal's lookup lane."""
    return lane.split("|")[1:2] == [LOOKUP_LANE_KIND]
