"""HubSpot's CRM object types and ids as the simulator knows them: names, type ids and labels.

Types arrive in paths by name (singular or plural) or by type id (docs/reference/hubspot.md §1.3). They are
normalised to one canonical name for lookups (association types, records), while associations are recorded
exactly as the path spelled them, so that tests see what the client sent.
"""

from __future__ import annotations

import re

#: Standard object names and their type ids (docs/reference/hubspot.md §1.3).
NAME_TO_TYPE_ID = {
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
TYPE_ID_TO_NAME = {type_id: name for name, type_id in NAME_TO_TYPE_ID.items()}
SINGULAR_TO_NAME = {
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
#: The upper-case singular HubSpot uses in error contexts ("CONTACT=38374264688 is not valid").
NAME_TO_LABEL = {name: singular.upper() for singular, name in SINGULAR_TO_NAME.items()}

_CUSTOM_TYPE_ID = re.compile(r"2-[1-9][0-9]{0,11}")
# HubSpot record ids are positive integers written in decimal: 1 to 20 digits, no leading zero.
_OBJECT_ID = re.compile(r"[1-9][0-9]{0,19}")
_OBJECT_IDS = re.compile(r"[1-9][0-9]{0,19}(?:,[1-9][0-9]{0,19})*")


def canonical_type(raw: str) -> str | None:
    """The canonical plural name (or custom ``2-<n>`` type id) of ``raw``; None if HubSpot would refuse it."""
    lowered = raw.lower()
    if lowered in NAME_TO_TYPE_ID:
        return lowered
    if lowered in SINGULAR_TO_NAME:
        return SINGULAR_TO_NAME[lowered]
    if raw in TYPE_ID_TO_NAME:
        return TYPE_ID_TO_NAME[raw]
    if _CUSTOM_TYPE_ID.fullmatch(raw):
        return raw
    return None


def is_object_id(value: str) -> bool:
    """True for a HubSpot record id: 1 to 20 decimal digits, not starting with 0."""
    return _OBJECT_ID.fullmatch(value) is not None


def are_object_ids(values: list[str]) -> bool:
    """True when every one of ``values`` (strings) is a record id; one regex pass for a whole batch.

    The comma count guards against an id that itself contains a comma. Raises TypeError for a non-string.
    """
    joined = ",".join(values)
    return joined.count(",") == len(values) - 1 and _OBJECT_IDS.fullmatch(joined) is not None


def label(object_type: str) -> str:
    """HubSpot's upper-case singular of a canonical type (``line_items`` → ``LINE_ITEM``; custom: as is)."""
    return NAME_TO_LABEL.get(object_type, object_type.upper())
