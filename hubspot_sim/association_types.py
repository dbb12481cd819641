"""HubSpot's association types: which pairs of objects have a default association, and the labels defined.

Source: HubSpot's association type id tables in the v4 associations guide ("Association type id values",
https://developers.hubspot.com/docs/api-reference/legacy/crm/associations/associate-records/guide, modified
30 Mar 2026) and the Python SDK's ``hubspot.crm.AssociationType``; see also docs/reference/hubspot.md §1.2 and §8.
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

#: A company's parent and children (HubSpot's type ids 13 and 14, docs/reference/hubspot.md §9.4): 14 from a
#: child to its parent, 13 from a parent to a child. The label names are [I]: HubSpot's table names the
#: directions only.
COMPANY_HIERARCHY: dict[int, str] = {13: "Child Company", 14: "Parent Company"}
#: Single-valued types, (from, to, type id): a record holds each with one record at most, and writing it
#: with another record moves it there (one Primary company, one parent company; §9.4).
SINGLE_VALUED: frozenset[tuple[str, str, int]] = frozenset(
    {
        ("contacts", "companies", 1),
        ("deals", "companies", 5),
        ("tickets", "companies", 26),
        ("companies", "companies", 14),
    }
)

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
        """An ``AssociationSpecWithLabel``: ``label`` left out where there is none (the spec has no null)."""
        body: dict[str, object] = {"category": self.category, "typeId": self.type_id}
        if self.label is not None:
            body["label"] = self.label
        return body


def hubspot_labels(from_type: str, to_type: str, custom_types: frozenset[str] | set[str]) -> list[LabelDefinition]:
    """The HubSpot-defined types from ``from_type`` to ``to_type``: the unlabelled one, then Primary."""
    found = []
    unlabelled = default_type_id(from_type, to_type, custom_types)
    if unlabelled is not None:
        found.append(LabelDefinition("HUBSPOT_DEFINED", unlabelled, None))
    primary = PRIMARY_TYPE_IDS.get((from_type, to_type))
    if primary is not None:
        found.append(LabelDefinition("HUBSPOT_DEFINED", primary[0], primary[1]))
    if (from_type, to_type) == ("companies", "companies"):
        found.extend(LabelDefinition("HUBSPOT_DEFINED", i, name) for i, name in sorted(COMPANY_HIERARCHY.items()))
    return found


#: One association type as the API names it: (associationCategory, associationTypeId).
Spec = tuple[str, int]


class LabelRegistry:
    """The association types of each pair: HubSpot's (the table above) plus user-defined labels.

    User-defined labels are made through ``POST /_sim/labels``; each is a pair of type ids, one per
    direction, as HubSpot's association schema API makes them. Not thread-safe: ``SimState`` holds the lock.
    """

    def __init__(self) -> None:
        self._user: dict[tuple[str, str], list[LabelDefinition]] = {}
        self._reverse: dict[tuple[str, str, int], int] = {}
        self._next_id = FIRST_USER_TYPE_ID

    def create(
        self, from_type: str, to_type: str, label: str, inverse_label: str | None = None
    ) -> list[LabelDefinition]:
        """A USER_DEFINED label from ``from_type`` to ``to_type`` and its inverse: [forward, backward].

        Raises ValueError if the pair already has a label of that name.
        """
        if any(d.label == label for d in self._user.get((from_type, to_type), [])):
            raise ValueError(f"label: {from_type} to {to_type} already has a label {label!r}")
        forward = LabelDefinition("USER_DEFINED", self._next_id, label)
        backward = LabelDefinition("USER_DEFINED", self._next_id + 1, inverse_label or label)
        self._next_id += 2
        self._user.setdefault((from_type, to_type), []).append(forward)
        self._reverse[(from_type, to_type, forward.type_id)] = backward.type_id
        if (from_type, to_type) != (to_type, from_type):
            self._user.setdefault((to_type, from_type), []).append(backward)
            self._reverse[(to_type, from_type, backward.type_id)] = forward.type_id
        else:
            self._user[(from_type, to_type)].append(backward)
            self._reverse[(from_type, to_type, backward.type_id)] = forward.type_id
        return [forward, backward]

    def definitions(
        self, from_type: str, to_type: str, custom_types: frozenset[str] | set[str]
    ) -> list[LabelDefinition]:
        """Every type from ``from_type`` to ``to_type``: HubSpot's first, then user-defined ones."""
        return hubspot_labels(from_type, to_type, custom_types) + list(self._user.get((from_type, to_type), []))

    def find(
        self, from_type: str, to_type: str, spec: Spec, custom_types: frozenset[str] | set[str]
    ) -> LabelDefinition | None:
        """The definition of ``spec`` (category, type id) for the pair, or None if the pair has no such type."""
        for definition in self.definitions(from_type, to_type, custom_types):
            if (definition.category, definition.type_id) == spec:
                return definition
        return None

    def reverse_held(self, from_type: str, to_type: str, spec: Spec, custom_types: frozenset[str] | set[str]) -> Spec:
        """The reverse of a type an association holds: as ``reverse``, and a made-up type's made-up reverse.

        Associations recorded through ``SimState.associate`` for a pair without a default hold made-up ids.
        """
        try:
            return self.reverse(from_type, to_type, spec, custom_types)
        except ValueError:
            return (spec[0], made_up_type_id(to_type, from_type))

    def reverse(self, from_type: str, to_type: str, spec: Spec, custom_types: frozenset[str] | set[str]) -> Spec:
        """The same association seen from the other side (e.g. deal→contact 3 is contact→deal 4).

        Raises ValueError when ``spec`` is not a type of the pair.
        """
        category, type_id = spec
        if category == "USER_DEFINED":
            other = self._reverse.get((from_type, to_type, type_id))
            if other is not None:
                return (category, other)
        elif category == "HUBSPOT_DEFINED":
            if type_id == default_type_id(from_type, to_type, custom_types):
                backward = default_type_id(to_type, from_type, custom_types)
                if backward is not None:
                    return (category, backward)
            primary = PRIMARY_TYPE_IDS.get((from_type, to_type))
            if primary is not None and primary[0] == type_id:
                return (category, PRIMARY_TYPE_IDS[(to_type, from_type)][0])
            if (from_type, to_type) == ("companies", "companies") and type_id in COMPANY_HIERARCHY:
                return (category, 27 - type_id)  # 13 <-> 14
        raise ValueError(f"associationTypeId: {category} {type_id} is not a type from {from_type} to {to_type}")
