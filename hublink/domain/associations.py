"""AssociationRequest: one "link record A to record B" order, validated once, trusted after.

Object types are HubSpot object names (singular or plural) or type ids (``0-3``, ``2-143967026``);
they are canonicalised so that ``deal``, ``deals`` and ``0-3`` land in the same lane and the same
batch call. Ids are positive decimal integers as strings, at most 20 digits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hublink.domain.errors import FieldProblem, InvalidInputError

#: Schema version of the stored form (``as_record``); bump only by adding fields with defaults.
RECORD_VERSION = 1

#: HubSpot's standard objects: canonical plural name -> object type id.
STANDARD_OBJECTS: Mapping[str, str] = {
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
_SINGULAR = {
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
_BY_TYPE_ID = {type_id: name for name, type_id in STANDARD_OBJECTS.items()}
# Custom objects are 2-<n>; HubSpot's own ids are 0-<n>. Bounded so a hostile id cannot be huge.
_TYPE_ID = re.compile(r"\A[02]-[1-9][0-9]{0,11}\Z")
_OBJECT_ID = re.compile(r"\A[1-9][0-9]{0,19}\Z")
_PORTAL_ID = re.compile(r"\A[1-9][0-9]{0,19}\Z")
_SOURCE = re.compile(r"\A[a-z0-9][a-z0-9_.-]{0,63}\Z")
MAX_EVENT_ID_CHARS = 200
#: Longest label name accepted (HubSpot's label names are short; this only bounds what is stored).
MAX_LABEL_CHARS = 100
#: Most association types one item may name.
MAX_TYPES = 10
#: HubSpot's association categories (``WORK`` is in the 2026-03 spec but not for integrations).
CATEGORIES = ("HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED")
ACTIONS = ("link", "unlink")
Action = Literal["link", "unlink"]
#: One association type as HubSpot names it: (associationCategory, associationTypeId).
AssociationType = tuple[str, int]
#: ``add`` links; ``replace`` (rules only) makes the from record's associations of that type and label exactly
#: the ones its rule names, removing the others (a reconcile).
Mode = Literal["add", "replace"]
#: Which HubSpot call a request needs; a batch call carries one kind only (``replace``: read, remove, create).
CallKind = Literal["default", "create", "archive", "labels_archive", "replace"]
#: The fields a direct-API item may have; any other is refused (it may be a typo of one that matters).
API_ITEM_FIELDS = (
    "fromObjectType",
    "fromObjectId",
    "toObjectType",
    "toObjectId",
    "portalId",
    "sourceEventId",
    "action",
    "label",
    "types",
)


def _shown(value: object) -> str:
    """Render a refused value for a message, cut short so a hostile value cannot flood logs."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def canonical_object_type(value: object) -> str:
    """Return the canonical form of an object type: the plural name for standard objects, else the id.

    Raises ValueError with a message saying what was expected.
    """
    # ASCII only: str.lower() maps look-alikes such as the Kelvin sign onto letters ("TAS\u212aS" -> "tasks").
    if not isinstance(value, str) or not value.isascii():
        raise ValueError(f"expected an object type name or type id string, got {_shown(value)}")
    lowered = value.lower()
    if lowered in STANDARD_OBJECTS:
        return lowered
    if lowered in _SINGULAR:
        return _SINGULAR[lowered]
    if _TYPE_ID.match(value):
        return _BY_TYPE_ID.get(value, value)
    raise ValueError(
        "expected a HubSpot object name (contacts, companies, deals, tickets, line_items, products, notes, "
        f"calls, emails, meetings, tasks, leads; singular or plural) or a type id like 0-3 or 2-123, "
        f"got {_shown(value)}"
    )


def check_label(value: object) -> str:
    """Return a label name (1-100 characters, not blank), stripped; else ValueError."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_LABEL_CHARS:
        raise ValueError(f"expected a label name of 1-{MAX_LABEL_CHARS} characters, got {_shown(value)}")
    return value.strip()


def check_types(value: object) -> tuple[AssociationType, ...]:
    """Return association types from ``[{"associationCategory", "associationTypeId"}]``; else ValueError."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_TYPES:
        raise ValueError(f"expected an array of 1-{MAX_TYPES} association types, got {_shown(value)}")
    types: list[AssociationType] = []
    for index, entry in enumerate(value):
        if not isinstance(entry, dict) or set(entry) != {"associationCategory", "associationTypeId"}:
            raise ValueError(f"[{index}]: expected exactly associationCategory and associationTypeId")
        category, type_id = entry["associationCategory"], entry["associationTypeId"]
        if category not in CATEGORIES:
            raise ValueError(f"[{index}].associationCategory: expected one of {', '.join(CATEGORIES)}")
        if not isinstance(type_id, int) or isinstance(type_id, bool) or not 0 < type_id < 2**31:
            raise ValueError(f"[{index}].associationTypeId: expected a positive integer, got {_shown(type_id)}")
        if (category, type_id) not in types:
            types.append((category, type_id))
    return tuple(types)


def types_wire(types: Sequence[AssociationType]) -> list[dict[str, Any]]:
    """HubSpot's ``AssociationSpec`` list for ``types``."""
    return [{"associationCategory": c, "associationTypeId": t} for c, t in types]


def is_object_id(value: object) -> bool:
    """True for a HubSpot record (or portal) id: 1-20 ASCII decimal digits, not starting with 0.

    The one test of a record id, for every route, form, filter and file that takes one: ``str.isdigit()``
    also accepts '²' and other non-ASCII digits, and cutting a longer id to 20 names another record.
    """
    return isinstance(value, str) and _OBJECT_ID.match(value) is not None


def check_object_id(value: object) -> str:
    """Return ``value`` if :func:`is_object_id`; else ValueError saying what was expected."""
    if not isinstance(value, str) or not is_object_id(value):
        raise ValueError(f"expected 1-20 decimal digits not starting with 0, as a string, got {_shown(value)}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class AssociationRequest:
    """An order to link (or unlink) two HubSpot records: by default with their unlabelled association.

    ``action`` is ``link`` or ``unlink``; ``label`` (a label's name, resolved to ``types`` by the drain
    through HubSpot's label definitions) or ``types`` (explicit ``(category, typeId)`` pairs) make it
    labelled: a labelled link adds that label, a labelled unlink removes only that label, an unlabelled
    unlink removes the whole association. ``portal_id`` is None in single-portal mode. ``received_at`` is
    epoch seconds at intake and anchors the fresh-record grace. Construct through :meth:`create` (which
    validates) unless the values come from :meth:`from_record` of something already validated.
    """

    from_object_type: str
    from_object_id: str
    to_object_type: str
    to_object_id: str
    portal_id: str | None = None
    source: str = "api"
    source_event_id: str | None = None
    received_at: float = 0.0
    occurred_at: float | None = None
    action: Action = "link"
    label: str | None = None
    types: tuple[AssociationType, ...] = ()
    mode: Mode = "add"

    @classmethod
    def create(
        cls,
        *,
        from_object_type: object,
        from_object_id: object,
        to_object_type: object,
        to_object_id: object,
        portal_id: object = None,
        source: str = "api",
        source_event_id: object = None,
        received_at: float,
        occurred_at: float | None = None,
        action: object = "link",
        label: object = None,
        types: object = None,
        mode: object = "add",
        where: str = "",
    ) -> AssociationRequest:
        """Validate and build one request; raise InvalidInputError naming every bad field.

        ``where`` prefixes field names in problems (``/associations/3``) so a batch can say which item.
        """
        problems: list[FieldProblem] = []
        values: dict[str, Any] = {}

        def check(name: str, key: str, raw: object, fn: Any) -> None:
            try:
                values[key] = fn(raw)
            except ValueError as exc:
                problems.append(FieldProblem(f"{where}/{name}", f"{name}: {exc}"))

        check("fromObjectType", "from_object_type", from_object_type, canonical_object_type)
        check("fromObjectId", "from_object_id", from_object_id, check_object_id)
        check("toObjectType", "to_object_type", to_object_type, canonical_object_type)
        check("toObjectId", "to_object_id", to_object_id, check_object_id)
        if portal_id is not None:
            check("portalId", "portal_id", portal_id, _check_portal_id)
        if not _SOURCE.match(source):
            problems.append(FieldProblem(f"{where}/source", f"source: expected a short slug, got {_shown(source)}"))
        if source_event_id is not None and (
            not isinstance(source_event_id, str) or not 0 < len(source_event_id) <= MAX_EVENT_ID_CHARS
        ):
            problems.append(
                FieldProblem(
                    f"{where}/sourceEventId",
                    f"sourceEventId: expected a string of 1-{MAX_EVENT_ID_CHARS} characters, "
                    f"got {_shown(source_event_id)}",
                )
            )
        if action not in ACTIONS:
            problems.append(FieldProblem(f"{where}/action", f"action: expected link or unlink, got {_shown(action)}"))
        if label is not None:
            check("label", "label", label, check_label)
        if types is not None:
            check("types", "types", types, check_types)
        if label is not None and types is not None:
            problems.append(FieldProblem(f"{where}/types", "types: give a label or types, not both"))
        if mode not in ("add", "replace"):
            problems.append(FieldProblem(f"{where}/mode", f"mode: expected add or replace, got {_shown(mode)}"))
        if problems:
            raise InvalidInputError("invalid association", problems)
        return cls(
            portal_id=values.pop("portal_id", None),
            source=source,
            source_event_id=source_event_id if isinstance(source_event_id, str) else None,
            received_at=received_at,
            occurred_at=occurred_at,
            action="unlink" if action == "unlink" else "link",
            mode="replace" if mode == "replace" else "add",
            **values,
        )

    @property
    def lane(self) -> str:
        """The lane this request waits in (see :func:`lane_of`)."""
        return f"{self.portal_id or '_'}|{self.from_object_type}|{self.to_object_type}"

    @property
    def is_labelled(self) -> bool:
        """True when the request names a label or explicit types (not the default association)."""
        return self.label is not None or bool(self.types)

    @property
    def call_kind(self) -> CallKind:
        """Which HubSpot call carries this request: default, create (labelled), archive or labels_archive."""
        if self.mode == "replace":
            return "replace"
        if self.action == "unlink":
            return "labels_archive" if self.is_labelled else "archive"
        return "create" if self.is_labelled else "default"

    @property
    def pair(self) -> tuple[str, str]:
        """The (from id, to id) pair that a batch input and a batch result name."""
        return (self.from_object_id, self.to_object_id)

    def as_record(self) -> dict[str, Any]:
        """Return the JSON-safe stored form (the wire format of queued work: add fields, never rename)."""
        # Written out rather than dataclasses.asdict, which deep-copies and costs ~40 us on the intake path.
        return {
            "from_object_type": self.from_object_type,
            "from_object_id": self.from_object_id,
            "to_object_type": self.to_object_type,
            "to_object_id": self.to_object_id,
            "portal_id": self.portal_id,
            "source": self.source,
            "source_event_id": self.source_event_id,
            "received_at": self.received_at,
            "occurred_at": self.occurred_at,
            "v": RECORD_VERSION,
        } | self._extras()

    def _extras(self) -> dict[str, Any]:
        """The optional fields, written only when not their default: a record without them is a default link."""
        return action_extras(self.action, self.label, self.types, self.mode)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> AssociationRequest:
        """Rebuild from :meth:`as_record` output, ignoring fields a newer version may have added."""
        known = {f: record[f] for f in cls.__dataclass_fields__ if f in record}
        if "types" in known:
            known["types"] = tuple((str(c), int(t)) for c, t in known["types"])
        return cls(**known)


def is_source(value: str) -> bool:
    """True for a valid source slug (``api``, ``hubspot``, ``forms.demo``...)."""
    return bool(_SOURCE.match(value))


def is_portal_id(value: str) -> bool:
    """True for a portal id in its canonical form (a positive integer as a string)."""
    return bool(_PORTAL_ID.match(value))


def _check_portal_id(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        value = str(value)
    if not isinstance(value, str) or not _PORTAL_ID.match(value):
        raise ValueError(f"expected a positive integer portal id, got {_shown(value)}")
    return value


def parse_api_items(items: object, *, received_at: float, max_items: int) -> list[AssociationRequest]:
    """Parse the direct API's ``associations`` array, all or nothing.

    Raises InvalidInputError with one problem per bad field of every bad item.
    """
    if not isinstance(items, list):
        raise InvalidInputError(
            "associations: expected an array", [FieldProblem("/associations", "expected an array of objects")]
        )
    if not 1 <= len(items) <= max_items:
        raise InvalidInputError(
            f"associations: expected 1 to {max_items} items, got {len(items)}",
            [FieldProblem("/associations", f"expected 1 to {max_items} items, got {len(items)}")],
        )
    requests: list[AssociationRequest] = []
    problems: list[FieldProblem] = []
    for index, item in enumerate(items):
        where = f"/associations/{index}"
        if not isinstance(item, dict):
            problems.append(FieldProblem(where, f"expected an object, got {type(item).__name__}"))
            continue
        # Unknown fields are refused: an ignored {"action": "unlink"} would create the link it meant to remove.
        problems.extend(
            FieldProblem(f"{where}/{str(k)[:60]}", f"unknown field {_shown(k)} (expected {', '.join(API_ITEM_FIELDS)})")
            for k in item
            if k not in API_ITEM_FIELDS
        )
        # Optional fields may be left out, but not sent as null: null is not a value the API documents.
        optional = ("portalId", "sourceEventId", "action", "label", "types")
        nulls = [f"{where}/{k}" for k in optional if k in item and item[k] is None]
        problems.extend(
            FieldProblem(n, f"{n.rsplit('/', 1)[1]}: expected a value or no field, got null") for n in nulls
        )
        try:
            requests.append(
                AssociationRequest.create(
                    from_object_type=item.get("fromObjectType"),
                    from_object_id=item.get("fromObjectId"),
                    to_object_type=item.get("toObjectType"),
                    to_object_id=item.get("toObjectId"),
                    portal_id=item.get("portalId"),
                    source="api",
                    source_event_id=item.get("sourceEventId"),
                    received_at=received_at,
                    action=item.get("action") or "link",
                    label=item.get("label"),
                    types=item.get("types"),
                    where=where,
                )
            )
        except InvalidInputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise InvalidInputError(f"{len(problems)} invalid field(s) in associations", problems)
    return requests


def lane_of(request: AssociationRequest) -> str:
    """Name the lane a request waits in: work that may share one batch call.

    HubSpot's batch endpoint takes one (fromObjectType, toObjectType) pair per call and one token per
    portal, hence the key. The portal is ``_`` in single-portal mode.
    """
    return request.lane


def split_lane(lane: str) -> tuple[str | None, str, str]:
    """Invert :func:`lane_of`: (portal id or None, from type, to type)."""
    portal, from_type, to_type = lane.split("|")
    return (None if portal == "_" else portal, from_type, to_type)


def group_by_lane(requests: Sequence[AssociationRequest]) -> dict[str, list[AssociationRequest]]:
    """Group requests by lane, keeping order within each lane."""
    lanes: dict[str, list[AssociationRequest]] = {}
    for request in requests:
        lanes.setdefault(lane_of(request), []).append(request)
    return lanes


def action_extras(action: str, label: str | None, types: Sequence[AssociationType], mode: str) -> dict[str, Any]:
    """A stored record's optional action fields, only those not at their default (absent: a default link).

    Shared by associations and lookups, whose records must read the same way in either version.
    """
    extras: dict[str, Any] = {}
    if action != "link":
        extras["action"] = action
    if label is not None:
        extras["label"] = label
    if types:
        extras["types"] = [list(t) for t in types]
    if mode != "add":
        extras["mode"] = mode
    return extras
