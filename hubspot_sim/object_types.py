"""HubSpot's object types as the simulator knows them: names, type ids, and default association type ids."""

from __future__ import annotations

import re

NAME_TO_ID = {
    "contacts": "0-1",
    "companies": "0-2",
    "deals": "0-3",
    "tickets": "0-5",
    "products": "0-7",
    "line_items": "0-8",
    "notes": "0-46",
    "meetings": "0-47",
    "calls": "0-48",
    "emails": "0-49",
    "tasks": "0-27",
    "leads": "0-136",
}
SINGULAR = {
    "contact": "contacts",
    "company": "companies",
    "deal": "deals",
    "ticket": "tickets",
    "product": "products",
    "line_item": "line_items",
    "note": "notes",
    "meeting": "meetings",
    "call": "calls",
    "email": "emails",
    "task": "tasks",
    "lead": "leads",
}
ID_TO_NAME = {v: k for k, v in NAME_TO_ID.items()}
_TYPE_ID = re.compile(r"\A[02]-[1-9][0-9]{0,11}\Z")
OBJECT_ID = re.compile(r"\A[1-9][0-9]{0,19}\Z")

#: HubSpot-defined default (unlabelled) association type ids for the common pairs (hubspot-api.md §1.2).
DEFAULT_TYPE_IDS = {
    ("deals", "contacts"): 3,
    ("contacts", "deals"): 4,
    ("deals", "companies"): 341,
    ("companies", "deals"): 342,
    ("contacts", "companies"): 279,
    ("companies", "contacts"): 280,
    ("deals", "tickets"): 27,
    ("tickets", "deals"): 28,
    ("contacts", "tickets"): 15,
    ("tickets", "contacts"): 16,
    ("deals", "line_items"): 19,
    ("line_items", "deals"): 20,
    ("deals", "deals"): 451,
}


def normalise(object_type: str) -> str | None:
    """The canonical name (or custom type id) of ``object_type``; None if HubSpot would not know it."""
    lowered = object_type.lower()
    if lowered in NAME_TO_ID:
        return lowered
    if lowered in SINGULAR:
        return SINGULAR[lowered]
    if _TYPE_ID.match(object_type):
        return ID_TO_NAME.get(object_type, object_type)
    return None


def association_type_id(from_type: str, to_type: str) -> int:
    """The default association type id of a pair (a stable made-up one for pairs the table lacks)."""
    known = DEFAULT_TYPE_IDS.get((from_type, to_type))
    if known is not None:
        return known
    return 1000 + sum(ord(c) for c in f"{from_type}>{to_type}") % 9000
