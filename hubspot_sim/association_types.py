"""HubSpot's association types: which pairs of objects have a default association, and the labels defined.

Source: HubSpot's association type id tables in the v4 associations guide ("Association type id values",
https://developers.hubspot.com/docs/api-reference/legacy/crm/associations/associate-records/guide, modified
30 Mar 2026) and the Python SDK's ``hubspot.crm.AssociationType``; see also hubspot-api.md §1.2 and §8.
Every pair below is one HubSpot lists with an unlabelled (default) type id: the standard objects (contacts,
companies, deals, tickets) with each other, deals with line items, and the engagements (calls, emails,
meetings, notes, tasks) with each of the four standard objects. Any other pair of standard types has no
default association, and HubSpot refuses it (400 ``VALIDATION_ERROR``) as the simulator does.

Custom object types (``2-<n>``) have default associations only once the simulator knows the type (declared
through ``POST /_sim/object-types`` or seeded as a record's type); their type ids are made up (stable, per
direction, far above HubSpot's own), since every portal's custom ids differ.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

#: (fromType, toType) -> HubSpot's unlabelled (default) association type id, both directions listed.
DEFAULT_TYPE_IDS: dict[tuple[str, str], int] = {
    # The standard objects with each other.
    ("contacts", "companies"): 279,
    ("companies", "contacts"): 280,
    ("deals", "contacts"): 3,
    ("contacts", "deals"): 4,
    ("deals", "companies"): 341,
    ("companies", "deals"): 342,
    ("contacts", "tickets"): 15,
    ("tickets", "contacts"): 16,
    ("deals", "tickets"): 27,
    ("tickets", "deals"): 28,
    ("tickets", "companies"): 339,
    ("companies", "tickets"): 340,
    ("contacts", "contacts"): 449,
    ("companies", "companies"): 450,
    ("deals", "deals"): 451,
    ("tickets", "tickets"): 452,
    # Line items belong to deals.
    ("deals", "line_items"): 19,
    ("line_items", "deals"): 20,
    # Engagements with the standard objects.
    ("companies", "calls"): 181,
    ("calls", "companies"): 182,
    ("companies", "emails"): 185,
    ("emails", "companies"): 186,
    ("companies", "meetings"): 187,
    ("meetings", "companies"): 188,
    ("companies", "notes"): 189,
    ("notes", "companies"): 190,
    ("companies", "tasks"): 191,
    ("tasks", "companies"): 192,
    ("contacts", "calls"): 193,
    ("calls", "contacts"): 194,
    ("contacts", "emails"): 197,
    ("emails", "contacts"): 198,
    ("contacts", "meetings"): 199,
    ("meetings", "contacts"): 200,
    ("contacts", "notes"): 201,
    ("notes", "contacts"): 202,
    ("contacts", "tasks"): 203,
    ("tasks", "contacts"): 204,
    ("deals", "calls"): 205,
    ("calls", "deals"): 206,
    ("deals", "emails"): 209,
    ("emails", "deals"): 210,
    ("deals", "meetings"): 211,
    ("meetings", "deals"): 212,
    ("deals", "notes"): 213,
    ("notes", "deals"): 214,
    ("deals", "tasks"): 215,
    ("tasks", "deals"): 216,
    ("tickets", "calls"): 219,
    ("calls", "tickets"): 220,
    ("tickets", "emails"): 223,
    ("emails", "tickets"): 224,
    ("tickets", "meetings"): 225,
    ("meetings", "tickets"): 226,
    ("tickets", "notes"): 227,
    ("notes", "tickets"): 228,
    ("tickets", "tasks"): 229,
    ("tasks", "tickets"): 230,
}

#: HubSpot-defined labelled types (the "Primary" labels), from the same table: (from, to) -> [(id, label)].
PRIMARY_TYPE_IDS: dict[tuple[str, str], tuple[int, str]] = {
    ("contacts", "companies"): (1, "Primary"),
    ("companies", "contacts"): (2, "Primary"),
    ("deals", "companies"): (5, "Primary"),
    ("companies", "deals"): (6, "Primary"),
    ("companies", "tickets"): (25, "Primary"),
    ("tickets", "companies"): (26, "Primary"),
}

# Made-up ids for custom pairs sit far above HubSpot's documented ones, so they cannot be mistaken for them.
_MADE_UP_BASE = 100_000
_MADE_UP_SPAN = 900_000
#: User-defined labels get ids from here up, per pair and direction, as HubSpot's do.
FIRST_USER_TYPE_ID = 1000


def is_custom(object_type: str) -> bool:
    """True for a custom object type id (``2-<n>``)."""
    return object_type.startswith("2-")


def made_up_type_id(from_type: str, to_type: str) -> int:
    """A stable type id for a pair HubSpot's table lacks (a CRC of the ordered pair: differs by direction)."""
    return _MADE_UP_BASE + zlib.crc32(f"{from_type}>{to_type}".encode()) % _MADE_UP_SPAN


def default_type_id(from_type: str, to_type: str, custom_types: frozenset[str] | set[str]) -> int | None:
    """The default association type id of a canonical pair, or None where HubSpot has no default for it.

    A pair with a custom type has one when every custom type in it is known (in ``custom_types``).
    """
    known = DEFAULT_TYPE_IDS.get((from_type, to_type))
    if known is not None:
        return known
    customs = [t for t in (from_type, to_type) if is_custom(t)]
    if customs and all(t in custom_types for t in customs):
        return made_up_type_id(from_type, to_type)
    return None


@dataclass(frozen=True, slots=True)
class LabelDefinition:
    """One association type between two object types: HubSpot's ``AssociationSpecWithLabel``."""

    category: str
    type_id: int
    label: str | None

    def as_dict(self) -> dict[str, object]:
        """The v4 labels answer's entry: ``{"category", "typeId", "label"}``."""
        return {"category": self.category, "typeId": self.type_id, "label": self.label}


def hubspot_labels(from_type: str, to_type: str, custom_types: frozenset[str] | set[str]) -> list[LabelDefinition]:
    """The HubSpot-defined types from ``from_type`` to ``to_type``: the unlabelled one, then Primary."""
    found = []
    unlabelled = default_type_id(from_type, to_type, custom_types)
    if unlabelled is not None:
        found.append(LabelDefinition("HUBSPOT_DEFINED", unlabelled, None))
    primary = PRIMARY_TYPE_IDS.get((from_type, to_type))
    if primary is not None:
        found.append(LabelDefinition("HUBSPOT_DEFINED", primary[0], primary[1]))
    return found
