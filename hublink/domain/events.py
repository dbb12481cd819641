"""CrmEvent: one event from any source (HubSpot app webhook, workflow action, form), validated once.

The rules see ``payload``: the event object for HubSpot webhooks, the whole body for workflows and forms.
``dedup_key`` says which redeliveries are "the same event"; it is a plain string built from what the sender
sent, so the caller hashes it before it becomes a Redis key. The parsers raise only
:class:`~hublink.domain.errors.InvalidInputError`, whatever they are handed, and never echo more than a
short excerpt of a refused value.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hublink.domain.errors import FieldProblem, InvalidInputError

#: HubSpot sends at most 100 events per request (docs/reference/hubspot.md §4.2).
MAX_EVENTS = 100
#: Longest sender-chosen id (event id, dedup header, form id) kept as is; longer ones are replaced by a digest.
MAX_ID_CHARS = 200
#: Largest integer accepted for HubSpot's numeric fields: 20 digits, as record ids are (associations.py).
MAX_INT = 10**20 - 1

#: Legacy subscription types name the object in their prefix (``deal.creation``); ``object.*`` ones carry
#: ``objectTypeId`` instead.
PREFIX_TYPE_IDS: Mapping[str, str] = {
    "contact": "0-1",
    "company": "0-2",
    "deal": "0-3",
    "ticket": "0-5",
    "product": "0-7",
    "line_item": "0-8",
}
# eventId and occurredAt may be 0; the others name a portal, subscription or record, which start at 1.
_INT_FIELDS = (("portalId", 1), ("eventId", 0), ("occurredAt", 0))
#: Fields some event shapes lack: association-change events carry neither ``objectId`` nor, in a captured
#: real delivery, ``subscriptionId`` (docs/reference/hubspot.md §8); they name the pair with these instead.
_ASSOCIATION_FIELDS = (("fromObjectId", 1), ("toObjectId", 1))
#: Optional association-change fields and the JSON types they must have when present.
_ASSOCIATION_EXTRAS: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("associationType", str),
    ("associationCategory", str),
    ("associationRemoved", bool),
    ("isPrimaryAssociation", bool),
)
# Loose on purpose: HubSpot adds subscription types, and refusing a real one makes it retry for 24 hours.
_SUBSCRIPTION_TYPE = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}\Z")
_TYPE_ID = re.compile(r"\A[0-9]{1,4}-[0-9]{1,12}\Z")
_FORM_NAME = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,63}\Z")


@dataclass(frozen=True, slots=True, kw_only=True)
class CrmEvent:
    """An event the rules can act on; build it with a ``parse_*`` function, which validates.

    ``source`` is ``hubspot``, ``workflow`` or ``forms:<name>``; ``occurred_at`` is epoch seconds; ``portal_id``
    and ``object_id`` are decimal strings; ``event_id`` is a decimal string for HubSpot events and any short
    string for forms and workflows; ``object_type_id`` is a HubSpot type id such as ``0-3``.
    """

    source: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    portal_id: str | None = None
    event_id: str | None = None
    occurred_at: float | None = None
    subscription_type: str | None = None
    object_type_id: str | None = None
    object_id: str | None = None
    dedup_key: str | None = None

    def as_record(self) -> dict[str, Any]:
        """The stored form (the inbox's wire format: add fields, never rename)."""
        return {
            "source": self.source,
            "payload": self.payload,
            "portal_id": self.portal_id,
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "subscription_type": self.subscription_type,
            "object_type_id": self.object_type_id,
            "object_id": self.object_id,
            "dedup_key": self.dedup_key,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> CrmEvent:
        """Rebuild from :meth:`as_record` output (validated when it was parsed), ignoring unknown fields."""
        return cls(**{name: record[name] for name in _RECORD_FIELDS if name in record})


_RECORD_FIELDS = tuple(CrmEvent.__dataclass_fields__)


def _shown(value: object) -> str:
    """A refused value for a message: short whatever it is, and never a whole object or a huge number."""
    if isinstance(value, str):
        return repr(value[:40] + "...") if len(value) > 40 else repr(value)
    if isinstance(value, bool) or value is None or (isinstance(value, int | float) and abs(value) < 10**40):
        return repr(value)
    return {dict: "an object", list: "an array", int: "a huge integer"}.get(type(value), type(value).__name__)


def _int_like(value: object) -> int | None:
    """A JSON integer, or a string of ASCII digits, from 0 to MAX_INT; None otherwise (booleans are not numbers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= MAX_INT else None
    # isascii first: str.isdigit() is true for '²' and other digits int() refuses or reads differently.
    if isinstance(value, str) and 0 < len(value) <= 20 and value.isascii() and value.isdigit():
        return int(value)
    return None


def _bounded(text: str) -> str:
    """A sender-chosen id kept as is when short, else replaced by its digest (so distinct ids stay distinct)."""
    if len(text) <= MAX_ID_CHARS:
        return text
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class UnusableEvent:
    """An event of a genuine batch that HubLink cannot use: kept with its reason, never a reason to refuse."""

    index: int
    raw: Any
    reason: str


@dataclass(frozen=True, slots=True)
class HubSpotBatch:
    """A delivery read event by event: the events the rules can see, and those set aside with a reason."""

    events: list[CrmEvent]
    unusable: list[UnusableEvent]


def read_hubspot_batch(body: Any) -> HubSpotBatch:
    """Read an app webhook delivery event by event; one event HubLink cannot use never sinks the others.

    HubSpot retries a refused batch (any 4xx) at most 10 times over 24 hours and then drops it, with every
    valid event in it, and it adds subscription types over time: so only a body that is not a JSON array
    of at most 100 items is refused. Each item is parsed as :func:`parse_hubspot_batch` describes; an item
    that fails is an :class:`UnusableEvent` carrying its problems as the reason.

    Raises InvalidInputError (a 4xx for the sender) only for the shape of the whole body.
    """
    if not isinstance(body, list):
        raise InvalidInputError(
            "expected a JSON array of events", [FieldProblem("/", f"expected an array of events, got {_shown(body)}")]
        )
    if len(body) > MAX_EVENTS:
        message = f"expected at most {MAX_EVENTS} events, got {len(body)}"
        raise InvalidInputError(message, [FieldProblem("/", message)])
    events: list[CrmEvent] = []
    unusable: list[UnusableEvent] = []
    for index, raw in enumerate(body):
        problems: list[FieldProblem] = []
        event = _parse_hubspot_event(raw, f"/{index}", problems)
        if event is not None:
            events.append(event)
        else:
            unusable.append(UnusableEvent(index, raw, "; ".join(p.message for p in problems)[:500]))
    return HubSpotBatch(events, unusable)


def parse_hubspot_batch(body: Any) -> list[CrmEvent]:
    """Parse an app webhook delivery strictly: a JSON array of up to 100 event objects, all or nothing.

    Each event needs ``portalId``, ``eventId``, ``occurredAt`` (epoch ms) as integers or digit strings, and
    ``subscriptionType`` (or its legacy alias ``eventType``); ``objectId`` for record events, or
    ``fromObjectId`` and ``toObjectId`` for association-change events (``*.associationChange``), whose
    ``associationType``/``associationTypeId``, ``associationCategory``, ``associationRemoved`` and
    ``isPrimaryAssociation`` are checked when present; ``subscriptionId`` and ``objectTypeId`` are optional.
    The payload is the event as sent, plus ``subscriptionType`` when only ``eventType`` came and
    ``objectTypeId`` when it was derived from the type's prefix, so that rules can match on both whatever
    the event's vintage. The dedup key is the composite
    ``hubspot:portal:subscription:event:object:occurredAt`` (the pair and its association type for
    association changes), because ``eventId`` alone is not unique (§4.2).

    The webhook endpoint uses :func:`read_hubspot_batch`, which keeps the events that parse; this strict
    form serves ``rules try`` and tests. Raises InvalidInputError with one FieldProblem per bad field.
    """
    batch = read_hubspot_batch(body)
    if batch.unusable:
        problems: list[FieldProblem] = []
        for item in batch.unusable:
            _parse_hubspot_event(item.raw, f"/{item.index}", problems)
        raise InvalidInputError(f"{len(problems)} invalid field(s) in the event batch", problems)
    return batch.events


def _parse_hubspot_event(raw: object, where: str, problems: list[FieldProblem]) -> CrmEvent | None:
    """One event of a batch, or None with its problems appended."""
    if not isinstance(raw, dict):
        problems.append(FieldProblem(where, f"expected an event object, got {_shown(raw)}"))
        return None
    found = len(problems)
    type_field_name = "subscriptionType" if "subscriptionType" in raw or "eventType" not in raw else "eventType"
    named = raw.get(type_field_name)
    is_association_change = isinstance(named, str) and named.endswith(".associationChange")
    required = (*_INT_FIELDS, *(_ASSOCIATION_FIELDS if is_association_change else (("objectId", 1),)))
    optional = (("subscriptionId", 1),)
    ints: dict[str, int] = {}
    for (name, least), needed in [*((f, True) for f in required), *((f, False) for f in optional)]:
        value = raw.get(name)
        if value is None and not needed:
            continue
        if value.__class__ is not int:  # JSON numbers skip the call; bool's class is bool, so it is checked
            value = _int_like(value)
        if value is not None and least <= value <= MAX_INT:
            ints[name] = value
            continue
        what = "a positive" if least else "a non-negative"
        got = "nothing" if name not in raw else _shown(raw[name])
        problems.append(FieldProblem(f"{where}/{name}", f"{name}: expected {what} integer or digit string, got {got}"))
    if is_association_change:
        _check_association_extras(raw, where, problems)
    type_field = "subscriptionType" if "subscriptionType" in raw or "eventType" not in raw else "eventType"
    subscription = raw.get(type_field)
    if not isinstance(subscription, str) or not _SUBSCRIPTION_TYPE.match(subscription):
        got = "nothing" if type_field not in raw else _shown(subscription)
        problems.append(
            FieldProblem(
                f"{where}/{type_field}",
                f"{type_field}: expected a subscription type such as 'deal.creation' (at most 100 characters), "
                f"got {got}",
            )
        )
    type_id = raw.get("objectTypeId")
    if type_id is not None and (not isinstance(type_id, str) or not _TYPE_ID.match(type_id)):
        problems.append(
            FieldProblem(
                f"{where}/objectTypeId", f"objectTypeId: expected a type id such as '0-3', got {_shown(type_id)}"
            )
        )
    if len(problems) > found or not isinstance(subscription, str):
        return None
    payload: dict[str, Any] = raw
    if type_id is None:
        type_id = PREFIX_TYPE_IDS.get(subscription.split(".", 1)[0])
    if type_field != "subscriptionType" or (type_id is not None and "objectTypeId" not in raw):
        payload = {**raw, "subscriptionType": subscription}
        if type_id is not None:
            payload["objectTypeId"] = type_id
    subscription_id = ints.get("subscriptionId", "-")
    if is_association_change:
        kind = raw.get("associationTypeId", raw.get("associationType", ""))
        removed = "removed" if raw.get("associationRemoved") is True else "added"
        object_part = f"{ints['fromObjectId']}>{ints['toObjectId']}:{kind}:{removed}"
        object_id = str(ints["fromObjectId"])
    else:
        object_part = str(ints["objectId"])
        object_id = object_part
    return CrmEvent(
        source="hubspot",
        payload=payload,
        portal_id=str(ints["portalId"]),
        event_id=str(ints["eventId"]),
        occurred_at=ints["occurredAt"] / 1000,
        subscription_type=subscription,
        object_type_id=type_id,
        object_id=object_id,
        dedup_key=f"hubspot:{ints['portalId']}:{subscription_id}:{ints['eventId']}:{object_part}:{ints['occurredAt']}",
    )


def _check_association_extras(raw: Mapping[str, Any], where: str, problems: list[FieldProblem]) -> None:
    """The optional fields of an association-change event, when present, have the documented JSON types."""
    for name, kind in _ASSOCIATION_EXTRAS:
        value = raw.get(name)
        if value is not None and not isinstance(value, kind):
            expected = "true or false" if kind is bool else "a string"
            problems.append(FieldProblem(f"{where}/{name}", f"{name}: expected {expected}, got {_shown(value)}"))
    type_id = raw.get("associationTypeId")
    if type_id is not None and _int_like(type_id) is None:
        problems.append(
            FieldProblem(f"{where}/associationTypeId", f"associationTypeId: expected an integer, got {_shown(type_id)}")
        )


def _optional_portal(body: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    """The portal id a body names under the first of ``names`` it has (null is absent); refused when bad."""
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        portal = _int_like(value)
        if portal is None or portal == 0:
            message = f"{name}: expected a positive integer portal id, got {_shown(value)}"
            raise InvalidInputError(message, [FieldProblem(f"/{name}", message)])
        return str(portal)
    return None


def _optional_id(value: object) -> str | None:
    """A sender-chosen id: a non-empty string or an integer, bounded; None for anything else."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_INT:
        return str(value)
    if isinstance(value, str) and value.strip():
        return _bounded(value.strip())
    return None


def _canonical_digest(body: Any) -> str:
    """SHA-256 of the body as canonical JSON (sorted keys, no spaces, ASCII), so key order does not matter.

    Raises InvalidInputError for what JSON cannot print (an integer too long, nesting too deep).
    """
    try:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    except (TypeError, ValueError, RecursionError) as exc:
        message = f"the body cannot be put in canonical JSON form: {str(exc)[:80]}"
        raise InvalidInputError(message, [FieldProblem("/", message)]) from None
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def parse_workflow(body: Any, *, received_at: float, dedup_header: str | None = None) -> CrmEvent:
    """Parse a workflow "Send a webhook" body: the default one or any custom JSON object.

    ``portal_id`` comes from ``portalId`` or ``portal_id`` when present; ``object_id`` from ``objectId`` or
    ``hs_object_id`` when it is an id (otherwise None: rules read the payload anyway); ``event_id`` from
    ``callbackId`` or ``eventId``; ``occurred_at`` is ``received_at`` (epoch seconds). The dedup key is
    ``workflow:<dedup_header>`` when the sender gives one, else ``workflow:<sha256 of the canonical body>``:
    an identical body resent inside the dedup window is taken for a redelivery (HubSpot retries a failed
    action with the same body). Two enrolments that send the very same body inside the window therefore
    count once, which is harmless because they would ask for the same associations.

    Raises InvalidInputError when the body is not a JSON object or names a bad portal.
    """
    if not isinstance(body, dict):
        message = f"expected a JSON object, got {_shown(body)}"
        raise InvalidInputError(message, [FieldProblem("/", message)])
    portal_id = _optional_portal(body, ("portalId", "portal_id"))
    object_ids = (_int_like(body.get(name)) for name in ("objectId", "hs_object_id"))
    object_id = next((str(n) for n in object_ids if n), None)
    event_id = _optional_id(body.get("callbackId")) or _optional_id(body.get("eventId"))
    header = _optional_id(dedup_header)
    return CrmEvent(
        source="workflow",
        payload=body,
        portal_id=portal_id,
        event_id=event_id,
        occurred_at=received_at,
        object_id=object_id,
        dedup_key=f"workflow:{header}" if header else f"workflow:{_canonical_digest(body)}",
    )


def parse_form(
    source_name: str, fields: Mapping[str, Any], *, id_field: str | None, id_value: str | None, raw_body: bytes
) -> CrmEvent:
    """Parse a form submission whose fields the web layer has already decoded (JSON, or urlencoded strings).

    The submission's id is ``fields[id_field]`` when that is a non-empty string or an integer, else
    ``id_value`` (a header's value) when non-empty; ids longer than MAX_ID_CHARS are replaced by their digest.
    The dedup key is ``forms:<name>:<id>``, or ``forms:<name>:<sha256 of raw_body>`` without an id, so a
    resent identical body is a redelivery. ``portal_id`` comes from a ``portalId`` field when present.

    Raises InvalidInputError when ``source_name`` is not a source slug or ``portalId`` is not a portal id.
    """
    if not isinstance(source_name, str) or not _FORM_NAME.match(source_name):
        message = f"source: expected a form source name ([a-z0-9_-], at most 64), got {_shown(source_name)}"
        raise InvalidInputError(message, [FieldProblem("/source", message)])
    key = (_optional_id(fields.get(id_field)) if id_field else None) or _optional_id(id_value)
    dedup = key if key is not None else hashlib.sha256(raw_body).hexdigest()
    return CrmEvent(
        source=f"forms:{source_name}",
        payload=dict(fields),
        portal_id=_optional_portal(fields, ("portalId",)),
        event_id=key,
        dedup_key=f"forms:{source_name}:{dedup}",
    )
