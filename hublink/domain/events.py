"""CrmEvent: one event from any source (HubSpot app webhook, workflow action, form), validated once.

The rules see ``payload``: the event object itself for HubSpot webhooks, the whole body for workflows and
forms. ``dedup_key`` says which redeliveries are "the same event" (the caller hashes it into a key).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hublink.domain.errors import FieldProblem, InvalidInputError

MAX_EVENTS = 100
_PREFIX_TYPE_IDS = {
    "contact": "0-1",
    "company": "0-2",
    "deal": "0-3",
    "ticket": "0-5",
    "line_item": "0-8",
    "product": "0-7",
}
_MAX_TEXT = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class CrmEvent:
    """An event the rules can act on."""

    source: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    portal_id: str | None = None
    event_id: str | None = None
    occurred_at: float | None = None
    subscription_type: str | None = None
    object_type_id: str | None = None
    object_id: str | None = None
    dedup_key: str | None = None


def _int_like(value: object) -> int | None:
    """An int, or a decimal string of one; None otherwise (booleans are not numbers here)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit() and len(value) <= 20:
        return int(value)
    return None


def parse_hubspot_batch(body: Any) -> list[CrmEvent]:
    """Parse an app webhook delivery: a JSON array of at most 100 events. Raises InvalidInputError."""
    if not isinstance(body, list):
        raise InvalidInputError("expected a JSON array of events", [FieldProblem("/", "expected an array")])
    if len(body) > MAX_EVENTS:
        raise InvalidInputError(
            f"expected at most {MAX_EVENTS} events, got {len(body)}",
            [FieldProblem("/", f"expected at most {MAX_EVENTS} events, got {len(body)}")],
        )
    events: list[CrmEvent] = []
    problems: list[FieldProblem] = []
    for index, raw in enumerate(body):
        where = f"/{index}"
        if not isinstance(raw, dict):
            problems.append(FieldProblem(where, f"expected an event object, got {type(raw).__name__}"))
            continue
        values: dict[str, int] = {}
        for name in ("portalId", "subscriptionId", "eventId", "occurredAt", "objectId"):
            value = _int_like(raw.get(name))
            if value is None or value < 0:
                problems.append(FieldProblem(f"{where}/{name}", f"{name}: expected a non-negative integer"))
            else:
                values[name] = value
        subscription = raw.get("subscriptionType", raw.get("eventType"))
        if not isinstance(subscription, str) or not 0 < len(subscription) <= _MAX_TEXT:
            problems.append(FieldProblem(f"{where}/subscriptionType", "subscriptionType: expected a short string"))
            continue
        type_id = raw.get("objectTypeId")
        if type_id is not None and (not isinstance(type_id, str) or len(type_id) > 20):
            problems.append(FieldProblem(f"{where}/objectTypeId", "objectTypeId: expected a type id like 0-3"))
            continue
        if len(values) < 5:
            continue
        prefix = subscription.split(".", 1)[0]
        events.append(
            CrmEvent(
                source="hubspot",
                payload=raw,
                portal_id=str(values["portalId"]),
                event_id=str(values["eventId"]),
                occurred_at=values["occurredAt"] / 1000,
                subscription_type=subscription,
                object_type_id=type_id or _PREFIX_TYPE_IDS.get(prefix),
                object_id=str(values["objectId"]),
                # eventId alone is not unique (hubspot-api.md §4.2): the composite is.
                dedup_key=(
                    f"hubspot:{values['portalId']}:{values['subscriptionId']}:{values['eventId']}:"
                    f"{values['objectId']}:{values['occurredAt']}"
                ),
            )
        )
    if problems:
        raise InvalidInputError(f"{len(problems)} invalid field(s) in the event batch", problems)
    return events


def _canonical_digest(body: Any) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_workflow(body: Any, *, received_at: float, dedup_header: str | None = None) -> CrmEvent:
    """Parse a workflow "Send a webhook" body (default or custom; must be a JSON object).

    An identical body resent inside the dedup window is a redelivery (HubSpot retries failed actions with
    the same body); a ``dedup_header`` value, when the sender gives one, wins.
    """
    if not isinstance(body, dict):
        raise InvalidInputError("expected a JSON object", [FieldProblem("/", "expected a JSON object")])
    portal = _int_like(body.get("portalId", body.get("portal_id")))
    object_id = _int_like(body.get("objectId", body.get("hs_object_id")))
    return CrmEvent(
        source="workflow",
        payload=body,
        portal_id=str(portal) if portal else None,
        event_id=str(body["callbackId"])[:_MAX_TEXT] if isinstance(body.get("callbackId"), str | int) else None,
        occurred_at=received_at,
        object_id=str(object_id) if object_id is not None else None,
        dedup_key=f"workflow:{dedup_header}" if dedup_header else f"workflow:{_canonical_digest(body)}",
    )


def parse_form(
    source_name: str, fields: Mapping[str, Any], *, id_field: str | None, id_value: str | None, raw_body: bytes
) -> CrmEvent:
    """A form submission (JSON or urlencoded, already a mapping); dedup on its id field, header or body hash."""
    key_value: str | None = id_value
    if key_value is None and id_field and isinstance(fields.get(id_field), str | int):
        key_value = str(fields[id_field])
    if key_value is not None:
        key_value = key_value[:_MAX_TEXT]
    dedup = key_value if key_value else hashlib.sha256(raw_body).hexdigest()
    portal = _int_like(fields.get("portalId"))
    return CrmEvent(
        source=f"forms:{source_name}",
        payload=dict(fields),
        portal_id=str(portal) if portal else None,
        event_id=key_value,
        dedup_key=f"forms:{source_name}:{dedup}",
    )
